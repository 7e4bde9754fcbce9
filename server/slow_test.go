package server

import (
	"bufio"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

// countingSubscriber is a raw TCP subscriber that counts the MESSAGE frames
// it reads and keeps nothing, so the test's heap is the broker's.
func countingSubscriber(t *testing.T, addr, dest string, want int64, wg *sync.WaitGroup, got *atomic.Int64) net.Conn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = nc.Write([]byte("CONNECT\naccept-version:1.2\n\n\x00SUBSCRIBE\nid:s\ndestination:" + dest + "\nreceipt:sub\n\n\x00"))
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	ready := make(chan struct{})
	go func() {
		defer wg.Done()
		var p frame.Parser
		p.Version = frame.Version12
		r := bufio.NewReaderSize(nc, 64<<10)
		buf := make([]byte, 0, 128<<10)
		tmp := make([]byte, 64<<10)
		for got.Load() < want {
			// A bound on silence, not on the whole run (which takes tens
			// of seconds under -race on a loaded machine).
			nc.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, err := r.Read(tmp)
			buf = append(buf, tmp[:n]...)
			for {
				f, k, perr := p.Parse(buf)
				if perr != nil || k == 0 {
					break
				}
				if f != nil && f.Command == frame.RECEIPT {
					close(ready)
				}
				if f != nil && f.Command == frame.MESSAGE {
					got.Add(1)
				}
				buf = buf[:copy(buf, buf[k:])]
			}
			if err != nil {
				return
			}
		}
	}()
	<-ready
	return nc
}

// TestSlowConsumerDoesNotHurtOthers: one topic subscriber that stops
// reading does not slow the publisher or the 74 other subscribers, and the
// broker's memory stays bounded (by the pending-bytes cap) while it hangs.
func TestSlowConsumerDoesNotHurtOthers(t *testing.T) {
	srv := startServer(t, func(o *Options) { o.MaxPendingBytes = 256 << 10 })
	addr := srv.Addr().String()
	const subs, msgs = 74, 3000
	body := strings.Repeat("x", 1024)

	slow := connected(t, srv, "tcp", withRcvBuf(4096))
	slow.subscribe("/topic/hang", "slow")
	slow.pause()

	got := make([]atomic.Int64, subs)
	var wg sync.WaitGroup
	conns := make([]net.Conn, subs)
	for i := range subs {
		conns[i] = countingSubscriber(t, addr, "/topic/hang", msgs, &wg, &got[i])
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	peak := base

	pub := connected(t, srv, "tcp")
	// Rounds of 100 KiB (under the 256 KiB cap) that the 74 readers take in
	// before the next round: only the hung subscriber falls behind.
	const round = 100
	for i := range msgs {
		kv := []string{"destination", "/topic/hang", "seq", strconv.Itoa(i)}
		if i%round < round-1 {
			pub.sendFrame(frame.SEND, body, kv...)
			continue
		}
		pub.request(frame.SEND, body, kv...) // the publisher is never held up
		// What is retained, not the garbage the traffic leaves (under load
		// the collector runs late, and garbage alone passed the bound once).
		runtime.GC()
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		for k := range got {
			waitFor(t, "subscriber "+strconv.Itoa(k)+" to catch up", func() bool { return got[k].Load() >= int64(i+1) })
		}
	}
	wg.Wait()
	for i := range got {
		if n := got[i].Load(); n != msgs {
			t.Errorf("subscriber %d got %d of %d messages", i, n, msgs)
		}
	}
	// 74 x 3000 x 1 KiB = 222 MB went out; the hung subscriber may hold at
	// most its cap (plus what the kernel took) before being cut off.
	if grown := int64(peak) - int64(base); grown > 64<<20 {
		t.Errorf("heap grew by %d MB while a subscriber hung", grown>>20)
	}
	if srv.stats.slowConsumers.Load() != 1 {
		t.Errorf("slow consumer disconnects = %d, want 1", srv.stats.slowConsumers.Load())
	}
	slow.resume()
	for {
		ev := slow.nextFrame("ERROR")
		if ev.f.Command == frame.ERROR {
			if !strings.Contains(ev.f.GetString("message"), "slow consumer") {
				t.Errorf("slow subscriber ERROR: %s", fmtFrame(ev.f))
			}
			break
		}
	}
	slow.expectClosed()
}
