package server

import (
	"bytes"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/stompica/stompica/frame"
)

// hostileInput is one malformed thing a client may send.
type hostileInput struct {
	name string
	tr   string // transport: "tcp", "ws", or "" for both
	raw  []byte // written to the socket as is (after the WebSocket handshake for ws)
	wrap bool   // ws: send raw inside a proper masked WebSocket message
}

func hostileCorpus() []hostileInput {
	connect := "CONNECT\naccept-version:1.2\n\n\x00"
	masked := func(op ws.OpCode, fin bool, p []byte) []byte { return wsClientFrame(op, fin, p) }
	var unmasked bytes.Buffer
	ws.WriteFrame(&unmasked, ws.NewTextFrame([]byte(connect))) //nolint:errcheck // bytes.Buffer
	bigControl := make([]byte, 200)
	garbage := make([]byte, 4096)
	for i := range garbage {
		garbage[i] = byte(i*7 + 3)
	}
	both := []hostileInput{
		{name: "truncated frame", raw: []byte(connect + "SEND\ndestination:/topic/x\ncontent-le"), wrap: true},
		{name: "NUL flood", raw: bytes.Repeat([]byte{0}, 64<<10), wrap: true},
		{name: "binary garbage", raw: garbage, wrap: true},
		{name: "garbage after connect", raw: append([]byte(connect), garbage...), wrap: true},
		{name: "huge header", raw: []byte(connect + "SEND\ndestination:/topic/x\nk:" + strings.Repeat("v", 64<<10) + "\n\n\x00"), wrap: true},
		{name: "many headers", raw: []byte(connect + "SEND\ndestination:/topic/x\n" + strings.Repeat("k:v\n", 5000) + "\n\x00"), wrap: true},
		{name: "invalid escape", raw: []byte(connect + "SEND\ndestination:/topic/x\nk:\\q\n\nbody\x00"), wrap: true},
		{name: "invalid UTF-8 header", raw: []byte(connect + "SEND\ndestination:/topic/\xff\xfe\nk:\xc3\x28\n\nbody\x00SEND\n\n\x00"), wrap: true},
		{name: "bogus content-length", raw: []byte(connect + "SEND\ndestination:/topic/x\ncontent-length:-5\n\nbody\x00"), wrap: true},
		{name: "huge content-length", raw: []byte(connect + "SEND\ndestination:/topic/x\ncontent-length:99999999999\n\nbody\x00"), wrap: true},
		{name: "content-length lies", raw: []byte(connect + "SEND\ndestination:/topic/x\ncontent-length:2\n\nbody\x00"), wrap: true},
		{name: "spoofed broker headers", raw: []byte(connect + "SEND\ndestination:/topic/spoof\nmessage-id:evil\nsubscription:evil\nack:evil\nredelivered:true\n\nspoof\x00SEND\n\n\x00"), wrap: true},
		{name: "frame before connect", raw: []byte("SEND\ndestination:/topic/good\n\ninjected\x00"), wrap: true},
		{name: "subscribe flood", raw: []byte(connect + strings.Repeat("SUBSCRIBE\ndestination:/topic/flood\nid:x\n\n\x00", 3)), wrap: true},
	}
	wsOnly := []hostileInput{
		{name: "unmasked client frame", tr: "ws", raw: unmasked.Bytes()},
		{name: "oversized control frame", tr: "ws", raw: masked(ws.OpPing, true, bigControl)},
		{name: "fragmented control frame", tr: "ws", raw: masked(ws.OpPing, false, []byte("x"))},
		{name: "continuation without start", tr: "ws", raw: masked(ws.OpContinuation, true, []byte(connect))},
		{name: "reserved opcode", tr: "ws", raw: masked(ws.OpCode(3), true, []byte(connect))},
		{name: "reserved bits", tr: "ws", raw: func() []byte { b := masked(ws.OpText, true, []byte(connect)); b[0] |= 0x40; return b }()},
		{name: "length MSB set", tr: "ws", raw: []byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}},
		{name: "message over the limit", tr: "ws", raw: masked(ws.OpBinary, true, make([]byte, 80<<10))},
		{name: "truncated ws header", tr: "ws", raw: []byte{0x81}},
	}
	return append(both, wsOnly...)
}

// TestHostileInput throws malformed input at the broker over both transports
// while well-behaved clients keep publishing and receiving: they lose
// nothing, every hostile connection is closed, and the broker's goroutines
// and heap return to where they were.
func TestHostileInput(t *testing.T) {
	srv := startServer(t, func(o *Options) {
		o.MaxFrameSize = 32 << 10
		o.MaxWebSocketMessage = 64 << 10
		o.MaxHeaders = 100
		o.MaxSubscriptions = 2
		o.FrameTimeout = 300 * time.Millisecond
		o.ConnectTimeout = time.Second
	})
	// Good clients on both transports.
	subs := []*client{connected(t, srv, "tcp"), connected(t, srv, "ws")}
	for i, s := range subs {
		s.subscribe("/topic/good", "g"+strconv.Itoa(i))
	}
	pubs := []*client{connected(t, srv, "tcp"), connected(t, srv, "ws")}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	baseGoroutines := runtime.NumGoroutine()

	const perRound = 5
	sent := 0
	publish := func() {
		for _, p := range pubs {
			for range perRound {
				p.sendFrame(frame.SEND, "ok-"+strconv.Itoa(sent), "destination", "/topic/good")
				sent++
			}
			p.sync()
		}
	}
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		for _, h := range hostileCorpus() {
			for _, tr := range transports {
				if h.tr != "" && h.tr != tr {
					continue
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := dial(t, srv, tr)
					var err error
					if tr == "ws" && h.wrap {
						err = c.write(h.raw)
					} else {
						c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
						_, err = c.nc.Write(h.raw)
					}
					_ = err // the broker may close before reading it all
					c.waitEnd(t, h.name)
				}()
			}
		}
		publish()
		wg.Wait()
	}
	// Every good message arrived, in order, unspoofed; nothing else did.
	for _, s := range subs {
		for i := 0; i < sent; i++ {
			m := s.expect(frame.MESSAGE)
			if want := "ok-" + strconv.Itoa(i); string(m.Body) != want {
				t.Fatalf("%s subscriber: message %d is %s, want %q", s.tr, i, fmtFrame(m), want)
			}
		}
	}
	for _, p := range pubs {
		p.publish("/topic/good", "end")
	}
	for _, s := range subs {
		s.expectMessage("end")
		s.expectMessage("end")
	}
	// Goroutines and memory back to where they were.
	if !poll(waitTimeout, pollEvery, func() bool { return runtime.NumGoroutine() <= baseGoroutines+2 }) {
		t.Fatalf("goroutines: %d after the hostile input, %d before", runtime.NumGoroutine(), baseGoroutines)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 8<<20 {
		t.Errorf("heap in use grew by %d bytes", grown)
	}
	if srv.stats.connsTotal.Load() < 40 {
		t.Errorf("only %d connections were made", srv.stats.connsTotal.Load())
	}
}

// waitEnd reads and drops whatever the broker sends until it closes the
// connection; it reports an error if that takes longer than waitTimeout.
func (c *client) waitEnd(t *testing.T, what string) {
	deadline := time.Now().Add(waitTimeout)
	for {
		_, ended, _ := c.next(time.Until(deadline))
		if ended {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s over %s: the broker did not close the connection", what, c.tr)
			c.close()
			return
		}
	}
}
