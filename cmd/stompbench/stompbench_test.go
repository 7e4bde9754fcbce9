package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/stompica/stompica/frame"
)

func TestPercentiles(t *testing.T) {
	v := make([]int64, 100)
	for i := range v {
		v[len(v)-1-i] = int64(i + 1) // unsorted on purpose
	}
	got := percentiles(v, 0.5, 0.9, 0.99, 0.999, 1)
	want := []int64{50, 90, 99, 100, 100}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("percentiles = %v, want %v", got, want)
		}
	}
	if got := percentiles(nil, 0.5); got[0] != 0 {
		t.Fatalf("empty: %v", got)
	}
	if got := percentiles([]int64{7}, 0.001, 1); got[0] != 7 || got[1] != 7 {
		t.Fatalf("single: %v", got)
	}
}

func TestAccounting(t *testing.T) {
	const expected = 6
	a := &subStat{set: newSeqSet(expected), ordered: true}
	for _, seq := range []uint64{0, 1, 1, 3, 2, 5} { // 4 lost, 1 twice, 2 late
		a.record(seq, 10)
	}
	b := &subStat{set: newSeqSet(expected), ordered: true}
	for seq := range uint64(expected) {
		b.record(seq, 20)
	}
	acc := accountSubs([]*subStat{a, b}, expected)
	if acc.delivered != 12 || acc.loss != 1 || acc.dups != 1 || acc.ooo != 1 || acc.lastNS != 20 {
		t.Fatalf("accounting = %+v", acc)
	}
	if acc.lossPer[0] != 1 || acc.lossPer[1] != 0 || acc.dupsPer[0] != 1 {
		t.Fatalf("per subscriber: loss %v dups %v", acc.lossPer, acc.dupsPer)
	}
}

func TestSharedSeqSet(t *testing.T) {
	set := newSeqSet(1000)
	subs := make([]*subStat, 4)
	var wg sync.WaitGroup
	for i := range subs {
		subs[i] = &subStat{set: set}
		wg.Go(func() {
			for seq := range uint64(1000) {
				subs[i].record(seq, 1)
			}
		})
	}
	wg.Wait()
	acc := accountSubs(subs, 0)
	if set.count() != 1000 || acc.dups != 3000 || acc.delivered != 4000 {
		t.Fatalf("count %d dups %d delivered %d", set.count(), acc.dups, acc.delivered)
	}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in, addr, url string
		ws            bool
	}{
		{"tcp://127.0.0.1:61613", "127.0.0.1:61613", "tcp://127.0.0.1:61613", false},
		{"tcp://localhost", "localhost:61613", "tcp://localhost:61613", false},
		{"stomp://[::1]:1234", "[::1]:1234", "tcp://[::1]:1234", false},
		{"ws://127.0.0.1:15674/ws", "127.0.0.1:15674", "ws://127.0.0.1:15674/ws", true},
		{"ws://h/stomp?x=1", "h:80", "ws://h:80/stomp?x=1", true},
	} {
		got, err := parseTarget(tc.in)
		if err != nil || got.addr != tc.addr || got.url != tc.url || got.ws != tc.ws {
			t.Errorf("parseTarget(%q) = %+v, %v", tc.in, got, err)
		}
	}
	for _, bad := range []string{"http://h:1", "127.0.0.1:61613", "tcp://", "ws:///x"} {
		if _, err := parseTarget(bad); err == nil {
			t.Errorf("parseTarget(%q) accepted", bad)
		}
	}
}

func TestParseArgs(t *testing.T) {
	cfg, err := parseArgs(strings.Fields("latency --rate 500 ws://h:1/ws --duration 2s --json"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.url != "ws://h:1/ws" || cfg.subs != 20 || cfg.msgs != 1000 || !cfg.json || cfg.dest != "/topic/bench.latency" {
		t.Fatalf("cfg = %+v", cfg)
	}
	cfg, err = parseArgs(strings.Fields("fanout --url tcp://h:1"), io.Discard)
	if err != nil || cfg.subs != 75 || cfg.msgs != 100000 || cfg.rate != 0 {
		t.Fatalf("cfg = %+v, %v", cfg, err)
	}
	for _, bad := range []string{"", "nope tcp://h", "fanout", "fanout --size 10 tcp://h", "queue --ack client tcp://h",
		"fanout tcp://h tcp://g", "conns --bogus tcp://h"} {
		_, err := parseArgs(strings.Fields(bad), io.Discard)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("parseArgs(%q) = %v, want a usage error", bad, err)
		}
	}
	if code := run([]string{"fanout", "--size", "1", "tcp://h"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("exit status %d for a usage error", code)
	}
}

func TestTemplateBody(t *testing.T) {
	tpl := newSendTemplate("/queue/a:b", 117, "0badcafe", 42, frame.Version12)
	tpl.setSeq(1234567)
	var p frame.Parser
	p.Version = frame.Version12
	f, n, err := p.Parse(tpl.buf)
	if err != nil || f == nil || n != len(tpl.buf) {
		t.Fatalf("parse template: %v %v %d", f, err, n)
	}
	if f.GetString("destination") != "/queue/a:b" || len(f.Body) != 117 {
		t.Fatalf("frame %q", tpl.buf)
	}
	seq, prod, _, ok := parseBody(f.Body, "0badcafe")
	if !ok || seq != 1234567 || prod != 42 {
		t.Fatalf("parseBody = %d %d %v (%q)", seq, prod, ok, f.Body)
	}
	if _, _, _, ok := parseBody(f.Body, "00000000"); ok {
		t.Fatal("body of another run accepted")
	}
}

func TestAppendAck(t *testing.T) {
	m := frame.New(frame.MESSAGE, "subscription", "1", "message-id", "m:1", "ack", "a:1")
	for v, want := range map[frame.Version]string{
		frame.Version12: "ACK\nid:a\\c1\n\n\x00",
		frame.Version11: "ACK\nsubscription:1\nmessage-id:m\\c1\n\n\x00",
		frame.Version10: "ACK\nmessage-id:m:1\n\n\x00",
	} {
		if got := string(appendAck(nil, m, "1", v)); got != want {
			t.Errorf("%s: %q, want %q", v, got, want)
		}
	}
}

func TestProcStat(t *testing.T) {
	line := []byte("123 (a b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 2000 300")
	cpu, err := parseProcStat(line)
	if err != nil || cpu != 3*time.Second {
		t.Fatalf("cpu = %v, %v", cpu, err)
	}
	if _, rss, err := procStats(os.Getpid()); err != nil || rss <= 0 {
		t.Fatalf("own process: rss %d, %v", rss, err)
	}
}

// TestWebSocketFraming runs the client's WebSocket framing against a fake
// server on a net.Pipe: client frames must be masked, one STOMP frame each,
// and the reader must reassemble STOMP frames split across WS messages and
// split several frames out of one message, answer pings, and accept 16- and
// 64-bit payload lengths.
func TestWebSocketFraming(t *testing.T) {
	cli, srv := net.Pipe()
	defer cli.Close()
	defer srv.Close()
	c := newConn(cli, nil, true, 1024, 512)
	c.owner = true

	bodies := []string{"hello", strings.Repeat("a", 300), strings.Repeat("b", 70000)}
	var stream []byte
	for i, b := range bodies {
		f := frame.New(frame.MESSAGE, "destination", "/topic/x", "message-id", string(rune('0'+i)))
		f.Body = []byte(b)
		stream = frame.Append(stream, f, frame.Version12)
	}
	split := []int{10, 40, len(stream)} // second and third messages hold several frames
	ping := []byte("pp")

	serverErr := make(chan error, 2)
	go func() { // server writer
		prev := 0
		for i, end := range split {
			if err := ws.WriteFrame(srv, ws.NewTextFrame(stream[prev:end])); err != nil {
				serverErr <- err
				return
			}
			prev = end
			if i == 0 {
				if err := ws.WriteFrame(srv, ws.NewPingFrame(ping)); err != nil {
					serverErr <- err
					return
				}
			}
		}
		serverErr <- nil
	}()
	got := make(chan []ws.Frame, 1)
	go func() { // server reader: two client frames, then the pong
		var frames []ws.Frame
		for len(frames) < 3 {
			f, err := ws.ReadFrame(srv)
			if err != nil {
				serverErr <- err
				return
			}
			frames = append(frames, f)
		}
		got <- frames
	}()

	binBody := []byte("SEND\ndestination:/q\n\n\xff\xfe\x00")
	c.Write([]byte("SEND\ndestination:/q\n\nhi\x00"))
	c.Write(binBody)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for i, want := range bodies {
		f, err := c.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Command != frame.MESSAGE || string(f.Body) != want || f.GetString("message-id") != string(rune('0'+i)) {
			t.Fatalf("frame %d: %s %q", i, f.Command, f.Body)
		}
	}
	if err := <-serverErr; err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil { // the pong
		t.Fatal(err)
	}
	frames := <-got
	wantOps := []ws.OpCode{ws.OpText, ws.OpBinary, ws.OpPong}
	wantPayload := [][]byte{[]byte("SEND\ndestination:/q\n\nhi\x00"), binBody, ping}
	for i, f := range frames {
		if !f.Header.Masked || !f.Header.Fin || f.Header.OpCode != wantOps[i] {
			t.Fatalf("client frame %d header %+v", i, f.Header)
		}
		ws.Cipher(f.Payload, f.Header.Mask, 0)
		if !bytes.Equal(f.Payload, wantPayload[i]) {
			t.Fatalf("client frame %d payload %q", i, f.Payload)
		}
	}
}

func TestAppendWSFrameLengths(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte{'x'}, n)
		b := appendWSFrame(nil, opText, payload, [4]byte{1, 2, 3, 4})
		f, err := ws.ReadFrame(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%d: %v", n, err)
		}
		ws.Cipher(f.Payload, f.Header.Mask, 0)
		if int(f.Header.Length) != n || !bytes.Equal(f.Payload, payload) {
			t.Fatalf("%d: header %+v", n, f.Header)
		}
	}
}

// loopConn is a net.Conn whose reads replay one chunk of bytes forever.
type loopConn struct {
	net.Conn
	chunk []byte
	pos   int
}

func (l *loopConn) Read(p []byte) (int, error) {
	n := copy(p, l.chunk[l.pos:])
	l.pos = (l.pos + n) % len(l.chunk)
	return n, nil
}

func (l *loopConn) Write(p []byte) (int, error) { return len(p), nil }

// TestReceivePathAllocs checks that reading, accounting and acknowledging a
// message allocates nothing, over TCP and WebSocket.
func TestReceivePathAllocs(t *testing.T) {
	body := newSendTemplate("/q", 117, "0badcafe", 1, frame.Version12)
	f := frame.New(frame.MESSAGE, "destination", "/q", "message-id", "T_1@@session-1@@1", "ack", "42", "subscription", "1")
	f.Body = body.buf[body.body : len(body.buf)-1]
	msg := frame.Append(nil, f, frame.Version12)
	for _, isWS := range []bool{false, true} {
		var chunk []byte
		for range 7 {
			if isWS {
				chunk = append(chunk, 0x81, 126, byte(len(msg)>>8), byte(len(msg)))
				chunk = append(chunk, msg...)
			} else {
				chunk = append(chunk, msg...)
			}
		}
		c := newConn(&loopConn{chunk: chunk}, nil, isWS, 1000, 4096)
		c.owner = true
		c.p.Version = frame.Version12
		s := &subStat{set: newSeqSet(1 << 20), ordered: true}
		var scratch []byte
		i := uint64(0)
		allocs := testing.AllocsPerRun(2000, func() {
			m, err := c.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			seq, _, _, ok := parseBody(m.Body, "0badcafe")
			if !ok {
				t.Fatalf("body %q", m.Body)
			}
			s.record(seq+i, 1)
			i++
			scratch = appendAck(scratch[:0], m, "1", frame.Version12)
			c.WriteOp(scratch, opText)
		})
		if allocs != 0 {
			t.Errorf("ws=%v: %.1f allocations per message", isWS, allocs)
		}
	}
}
