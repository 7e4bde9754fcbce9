//go:build unix

package server

import (
	"bytes"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

// BenchmarkConnQueueLoopback runs the queue path over loopback TCP, as
// stompbench's queue scenario does: 2 producers, 2 consumers that ACK
// (client-individual) each message in its own frame, many per write. One op
// is one message sent, delivered and acknowledged. Besides ns/op it reports
// the process's CPU time and context switches per message (clients
// included: they are the same in old and new runs).
func BenchmarkConnQueueLoopback(b *testing.B) {
	for _, prefetch := range []int{100, 0} {
		b.Run("prefetch="+strconv.Itoa(prefetch), func(b *testing.B) {
			benchQueueLoopback(b, prefetch)
		})
	}
}

func benchQueueLoopback(b *testing.B, prefetch int) {
	const producers, consumers = 2, 2
	s, err := New(&Options{Host: "127.0.0.1", Port: -1, Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Shutdown(b.Context()) }) //nolint:errcheck
	addr := s.Addr().String()
	open := func(sub string) net.Conn {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		nc.Write([]byte("CONNECT\naccept-version:1.2\nhost:localhost\n\n\x00" + sub)) //nolint:errcheck
		var buf [512]byte
		got := 0
		for !bytes.Contains(buf[:got], []byte("RECEIPT")) {
			n, err := nc.Read(buf[got:])
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
		return nc
	}
	sub := "SUBSCRIBE\nid:0\ndestination:/queue/bench\nack:client-individual\nreceipt:r\n"
	if prefetch > 0 {
		sub += "activemq.prefetchSize:" + strconv.Itoa(prefetch) + "\n"
	}
	sub += "\n\x00"
	var received sync.WaitGroup
	received.Add(consumers)
	var got atomic.Int64
	done := make(chan struct{})
	var conns []net.Conn
	for range consumers {
		nc := open(sub)
		conns = append(conns, nc)
		go func() {
			defer received.Done()
			p := frame.Parser{Version: frame.Version12}
			buf := make([]byte, 64<<10)
			var acks []byte
			have := 0
			for {
				n, err := nc.Read(buf[have:])
				if err != nil {
					return
				}
				have += n
				off, k := 0, int64(0)
				for {
					f, used, err := p.Parse(buf[off:have])
					if err != nil {
						b.Error(err)
						return
					}
					if used == 0 {
						break
					}
					off += used
					if f == nil || f.Command != frame.MESSAGE {
						continue
					}
					acks = append(acks, "ACK\nid:"...)
					id, _ := f.Get("ack")
					acks = append(acks, id...)
					acks = append(acks, "\n\n\x00"...)
					k++
				}
				have = copy(buf, buf[off:have])
				if len(acks) > 0 {
					if _, err := nc.Write(acks); err != nil {
						return
					}
					acks = acks[:0]
				}
				if k > 0 && got.Add(k) == int64(b.N) {
					close(done)
				}
			}
		}()
	}
	body := bytes.Repeat([]byte("x"), 117)
	one := []byte("SEND\ndestination:/queue/bench\ncontent-length:117\n\n" + string(body) + "\x00")
	pubs := make([]net.Conn, producers)
	for i := range pubs {
		pubs[i] = open("SUBSCRIBE\nid:x\ndestination:/topic/none\nreceipt:r\n\n\x00")
	}
	var ru0, ru1 syscall.Rusage
	b.ResetTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0) //nolint:errcheck
	var sent sync.WaitGroup
	for i, nc := range pubs {
		n := b.N / producers
		if i < b.N%producers {
			n++
		}
		sent.Add(1)
		go func() {
			defer sent.Done()
			batch := bytes.Repeat(one, 64)
			for n > 0 {
				k := min(n, 64)
				if _, err := nc.Write(batch[:k*len(one)]); err != nil {
					b.Error(err)
					return
				}
				n -= k
			}
		}()
	}
	sent.Wait()
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("received %d of %d messages", got.Load(), b.N)
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1) //nolint:errcheck
	b.StopTimer()
	for _, nc := range append(conns, pubs...) {
		nc.Close()
	}
	received.Wait()
	if n := got.Load(); n != int64(b.N) {
		b.Fatalf("received %d messages, want %d (exactly once)", n, b.N)
	}
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
	b.ReportMetric(float64(ru1.Nvcsw+ru1.Nivcsw-ru0.Nvcsw-ru0.Nivcsw)/float64(b.N), "ctxsw/msg")
}
