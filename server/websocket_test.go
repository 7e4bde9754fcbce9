package server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/stompica/stompica/frame"
)

// writeWS writes one masked WebSocket frame.
func (c *client) writeWS(op ws.OpCode, fin bool, payload []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	if err := ws.WriteFrame(c.nc, ws.MaskFrame(ws.NewFrame(op, fin, payload))); err != nil {
		c.t.Fatalf("ws write: %v", err)
	}
}

func TestWSFragmentedMessage(t *testing.T) {
	srv := startServer(t, nil)
	c := connected(t, srv, "ws")
	c.subscribe("/topic/frag", "f")
	raw := c.encode(frame.SEND, "fragmented body", "destination", "/topic/frag", "receipt", "r")
	// Text frame, continuation, a ping between fragments (allowed), final continuation.
	c.writeWS(ws.OpText, false, raw[:5])
	c.writeWS(ws.OpContinuation, false, raw[5:20])
	c.writeWS(ws.OpPing, true, []byte("mid"))
	c.writeWS(ws.OpContinuation, true, raw[20:])
	if got := c.expectControl(ws.OpPong); string(got) != "mid" {
		t.Errorf("pong payload %q, want mid", got)
	}
	c.expectMessage("fragmented body")
	c.expectReceipt("r")
}

func TestWSFrameAcrossMessages(t *testing.T) {
	srv := startServer(t, nil)
	c := connected(t, srv, "ws")
	c.subscribe("/topic/split", "s")
	raw := string(c.encode(frame.SEND, "split body", "destination", "/topic/split", "receipt", "r"))
	c.send(raw[:len(raw)/2])
	c.send(raw[len(raw)/2:])
	c.expectMessage("split body")
	c.expectReceipt("r")
}

func TestWSTwoFramesInOneMessage(t *testing.T) {
	srv := startServer(t, nil)
	c := connected(t, srv, "ws")
	c.subscribe("/topic/two", "t")
	c.send(string(c.encode(frame.SEND, "one", "destination", "/topic/two")) +
		string(c.encode(frame.SEND, "two", "destination", "/topic/two", "receipt", "r")))
	c.expectMessage("one")
	c.expectMessage("two")
	c.expectReceipt("r")
}

func TestWSPing(t *testing.T) {
	srv := startServer(t, nil)
	c := dial(t, srv, "ws")
	c.writeWS(ws.OpPing, true, []byte("before connect"))
	if got := c.expectControl(ws.OpPong); string(got) != "before connect" {
		t.Errorf("pong payload %q, want %q", got, "before connect")
	}
	c.connect("1.2")
	c.writeWS(ws.OpPing, true, nil)
	if got := c.expectControl(ws.OpPong); len(got) != 0 {
		t.Errorf("pong payload %q, want empty", got)
	}
	c.writeWS(ws.OpPing, true, []byte("ping \x00 payload"))
	if got := c.expectControl(ws.OpPong); string(got) != "ping \x00 payload" {
		t.Errorf("pong payload %q", got)
	}
	c.sync()
}

func TestWSClientClose(t *testing.T) {
	for _, code := range []ws.StatusCode{ws.StatusNormalClosure, ws.StatusGoingAway, 4000} {
		t.Run(strconv.Itoa(int(code)), func(t *testing.T) {
			srv := startServer(t, nil)
			c := connected(t, srv, "ws")
			c.writeWS(ws.OpClose, true, ws.NewCloseFrameBody(code, "bye"))
			if got := c.expectClosed(); got != code {
				t.Errorf("server close code %d, want the client's %d", got, code)
			}
		})
	}
}

func TestWSClientCloseNoCode(t *testing.T) {
	srv := startServer(t, nil)
	c := connected(t, srv, "ws")
	c.writeWS(ws.OpClose, true, nil)
	// RFC 6455 7.4.1: 1005 must not be sent; a close frame without a
	// code (or 1000) answers a close without one.
	if got := c.expectClosed(); got != 0 && got != ws.StatusNormalClosure {
		t.Errorf("close code %d, want none or 1000", got)
	}
}

// expectWSClose expects, after any ERROR frames, a WebSocket close frame
// with code want, and then the end of the connection.
func expectWSClose(t *testing.T, c *client, want ws.StatusCode) {
	t.Helper()
	for {
		ev, ended, err := c.next(waitTimeout)
		if ended || err != nil {
			t.Fatalf("no close frame: ended=%v err=%v", ended, err)
		}
		if ev.kind == evControl && ev.op == ws.OpClose {
			c.recordClose(ev)
			break
		}
		if ev.kind == evFrame && ev.f.Command != frame.ERROR {
			t.Fatalf("unexpected %s", fmtFrame(ev.f))
		}
	}
	if c.closeCode != want {
		t.Errorf("close code %d, want %d", c.closeCode, want)
	}
	c.expectClosed()
}

func TestWSUnmaskedFrame(t *testing.T) {
	srv := startServer(t, nil)
	c := connected(t, srv, "ws")
	c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	ws.WriteFrame(c.nc, ws.NewTextFrame(c.encode(frame.SEND, "x", "destination", "/topic/a"))) //nolint:errcheck
	expectWSClose(t, c, ws.StatusProtocolError)
}

func TestWSMessageTooBig(t *testing.T) {
	srv := startServer(t, func(o *Options) { o.MaxFrameSize = 4096 })
	c := connected(t, srv, "ws")
	c.trySend(string(c.encode(frame.SEND, strings.Repeat("z", 5000), "destination", "/topic/a")))
	expectWSClose(t, c, ws.StatusMessageTooBig)
}

// handshake performs a raw WebSocket upgrade and returns the response.
func handshake(t *testing.T, srv *Server, protocolHeader string) *http.Response {
	t.Helper()
	nc, err := net.DialTimeout("tcp", srv.Addr().String(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(waitTimeout))
	req := "GET /stomp HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if protocolHeader != "" {
		req += "Sec-WebSocket-Protocol: " + protocolHeader + "\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: status %s", resp.Status)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("Sec-WebSocket-Accept = %q", got)
	}
	return resp
}

func TestWSSubprotocol(t *testing.T) {
	srv := startServer(t, nil)
	cases := []struct{ offer, want string }{
		{"v10.stomp, v12.stomp", "v12.stomp"},
		{"v10.stomp,v11.stomp", "v11.stomp"},
		{"v10.stomp", "v10.stomp"},
		{"mqtt, v11.stomp", "v11.stomp"},
		{"", ""},
		{"mqtt", ""},
	}
	for _, tc := range cases {
		t.Run(tc.offer, func(t *testing.T) {
			resp := handshake(t, srv, tc.offer)
			vals := resp.Header.Values("Sec-WebSocket-Protocol")
			if tc.want == "" {
				if len(vals) != 0 {
					t.Errorf("offer %q: response has Sec-WebSocket-Protocol %q, want none", tc.offer, vals)
				}
				return
			}
			if len(vals) != 1 || vals[0] != tc.want {
				t.Errorf("offer %q: Sec-WebSocket-Protocol %q, want %q", tc.offer, vals, tc.want)
			}
		})
	}
	// The gobwas dialer agrees.
	c := dial(t, srv, "ws", withProtocols("v10.stomp", "v12.stomp"))
	if c.hs.Protocol != "v12.stomp" {
		t.Errorf("dialer negotiated %q, want v12.stomp", c.hs.Protocol)
	}
	c.connect("1.2")
	n := dial(t, srv, "ws", withProtocols())
	if n.hs.Protocol != "" {
		t.Errorf("dialer negotiated %q with no offer", n.hs.Protocol)
	}
	n.connect("1.2")
	n.sync()
}

func TestWSBinaryAndTextMessages(t *testing.T) {
	srv := startServer(t, nil)
	s := connected(t, srv, "ws")
	s.subscribe("/topic/bin", "b")
	pub := connected(t, srv, "tcp")
	pub.publish("/topic/bin", "plain text ✓")
	pub.publish("/topic/bin", "bin\x00ary")
	pub.publish("/topic/bin", "\xff\xfe not utf-8")
	for _, tc := range []struct {
		body string
		op   ws.OpCode
	}{
		{"plain text ✓", ws.OpText},
		{"bin\x00ary", ws.OpBinary},
		{"\xff\xfe not utf-8", ws.OpBinary},
	} {
		ev := s.expectEvent(frame.MESSAGE)
		if string(ev.f.Body) != tc.body {
			t.Fatalf("body %q, want %q", ev.f.Body, tc.body)
		}
		if ev.op != tc.op {
			t.Errorf("body %q arrived in a %v message, want %v", tc.body, ev.op, tc.op)
		}
		if !ev.whole {
			t.Errorf("body %q: the MESSAGE frame was not exactly one WebSocket message", tc.body)
		}
	}
	// RECEIPT and ERROR frames are text messages too.
	s.sendFrame(frame.SEND, "", "destination", "sync-noop", "receipt", "r")
	ev := s.expectEvent(frame.RECEIPT)
	if ev.op != ws.OpText || !ev.whole {
		t.Errorf("RECEIPT: op %v whole %v, want one text message", ev.op, ev.whole)
	}
}

func httpGet(t *testing.T, srv *Server, path string) (*http.Response, string) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: waitTimeout}
	resp, err := hc.Get("http://" + srv.Addr().String() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp, string(b)
}

func TestHTTPPage(t *testing.T) {
	srv := startServer(t, nil)
	for _, path := range []string{"/", "/ws", "/stomp"} {
		resp, body := httpGet(t, srv, path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %s", path, resp.Status)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/") {
			t.Errorf("GET %s: Content-Type %q, want text", path, ct)
		}
		if !strings.Contains(body, "STOMP") {
			t.Errorf("GET %s: page %q does not say it serves STOMP", path, body)
		}
	}
	// STOMP still works next to HTTP.
	c := connected(t, srv, "tcp")
	c.sync()
}

func TestHTTPHealthz(t *testing.T) {
	srv := startServer(t, nil)
	resp, body := httpGet(t, srv, "/healthz")
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Errorf("GET /healthz: %s %q, want 200 ok", resp.Status, body)
	}
}

func TestWSAnyPath(t *testing.T) {
	srv := startServer(t, nil)
	for _, path := range []string{"/", "/ws", "/stomp", "/anything/else"} {
		d := ws.Dialer{Timeout: waitTimeout, Protocols: []string{"v12.stomp"}}
		nc, _, hs, err := d.Dial(t.Context(), "ws://"+srv.Addr().String()+path)
		if err != nil {
			t.Errorf("upgrade on %s: %v", path, err)
			continue
		}
		if hs.Protocol != "v12.stomp" {
			t.Errorf("upgrade on %s: protocol %q", path, hs.Protocol)
		}
		nc.Close()
	}
}

func TestWSServerFramesUnmasked(t *testing.T) {
	// The reader fails on masked server frames; a round trip proves none.
	srv := startServer(t, nil)
	c := connected(t, srv, "ws")
	var big bytes.Buffer
	for range 70000 {
		big.WriteByte('q') // needs a 64-bit WebSocket length
	}
	c.subscribe("/topic/len", "l")
	c.sendFrame(frame.SEND, big.String(), "destination", "/topic/len", "receipt", "r")
	c.expectMessage(big.String())
	c.expectReceipt("r")
}

// TestWSInvalidUTF8 checks RFC 6455 §8.1: a text message that is not valid
// UTF-8, whether in one frame, in a continuation frame, split across frames
// or cut short at its end, fails the connection: an ERROR, then a close
// frame with code 1007, then the close. The bad SEND is not delivered.
func TestWSInvalidUTF8(t *testing.T) {
	srv := startServer(t, nil)
	sub := connected(t, srv, "tcp")
	sub.subscribe("/topic/u8", "s")
	send := func(c *client, body string) []byte {
		return c.encode(frame.SEND, body, "destination", "/topic/u8", "receipt", "r")
	}
	for i, tc := range []struct {
		name string
		run  func(c *client)
	}{
		{"one text frame", func(c *client) { c.writeWS(ws.OpText, true, send(c, "bad \xff byte")) }},
		{"surrogate", func(c *client) { c.writeWS(ws.OpText, true, send(c, "\xed\xa0\x80")) }},
		{"overlong", func(c *client) { c.writeWS(ws.OpText, true, send(c, "\xc0\xaf")) }},
		{"in a continuation frame", func(c *client) {
			raw := send(c, "ok then \xfe")
			c.writeWS(ws.OpText, false, raw[:10])
			c.writeWS(ws.OpContinuation, true, raw[10:])
		}},
		{"a sequence split across frames, overlong", func(c *client) {
			raw := send(c, "x\xe0\x80\x80y")
			cut := bytes.Index(raw, []byte("\xe0")) + 1
			c.writeWS(ws.OpText, false, raw[:cut])
			c.writeWS(ws.OpContinuation, true, raw[cut:])
		}},
		{"a sequence split across frames, bad continuation", func(c *client) {
			raw := send(c, "x\xe2\x82Ay")
			cut := bytes.Index(raw, []byte("\xe2")) + 2
			c.writeWS(ws.OpText, false, raw[:cut])
			c.writeWS(ws.OpContinuation, true, raw[cut:])
		}},
		{"cut short at the end of the message", func(c *client) {
			c.writeWS(ws.OpText, true, []byte("SEND\ndestination:/topic/u8\n\n\xe2\x82"))
		}},
		{"cut short before an empty final frame", func(c *client) {
			c.writeWS(ws.OpText, false, []byte("SEND\ndestination:/topic/u8\n\n\xf0\x9f"))
			c.writeWS(ws.OpContinuation, true, nil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := connected(t, srv, "ws")
			tc.run(c)
			c.expectError("invalid UTF-8")
			if code := c.expectClosed(); code != ws.StatusInvalidFramePayloadData {
				t.Errorf("close code %d, want 1007", code)
			}
			sub.sync() // no MESSAGE came first
			waitFor(t, "the close counted", func() bool { return closedCount(srv, WebSocketError) == uint64(i+1) })
			if n := errorCount(srv, kindWebSocket); n != uint64(i+1) {
				t.Errorf("websocket errors = %d, want %d", n, i+1)
			}
		})
	}
}

// TestWSUTF8AcrossFrames: characters split across the frames of a text
// message (even one byte per frame, with a ping between) are valid, and a
// binary message is never checked.
func TestWSUTF8AcrossFrames(t *testing.T) {
	srv := startServer(t, nil)
	c := connected(t, srv, "ws")
	c.subscribe("/topic/u8", "s")
	body := "price: 3€, mood: 😀, ok"
	raw := c.encode(frame.SEND, body, "destination", "/topic/u8", "receipt", "r1")
	euro := bytes.Index(raw, []byte("€"))
	smile := bytes.Index(raw, []byte("😀"))
	cuts := []int{euro + 1, euro + 2, smile + 1, smile + 2, smile + 3, len(raw)}
	prev := 0
	for i, cut := range cuts {
		op := ws.OpContinuation
		if i == 0 {
			op = ws.OpText
		}
		c.writeWS(op, i == len(cuts)-1, raw[prev:cut])
		if i == 2 {
			c.writeWS(ws.OpPing, true, []byte("p"))
		}
		prev = cut
	}
	c.expectControl(ws.OpPong)
	c.expectMessage(body)
	c.expectReceipt("r1")

	bin := "\xff\xfe\xed\xa0\x80 binary"
	c.writeWS(ws.OpBinary, true, c.encode(frame.SEND, bin, "destination", "/topic/u8", "receipt", "r2"))
	c.expectMessage(bin)
	c.expectReceipt("r2")
}

// TestWSValidTextIncremental checks validText against utf8.Valid for
// every way of cutting a message into two or three frames.
func TestWSValidTextIncremental(t *testing.T) {
	for _, msg := range []string{
		"", "a", "€", "😀", "a€b😀c", "\xff", "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80",
		"€\x80", "\xe2\x82\xac\xac", "ab\xf0\x9f\x98", "\x80abc", "\xf0\x9f\x98\x80\xf0",
	} {
		b := []byte(msg)
		want := utf8.Valid(b)
		for i := 0; i <= len(b); i++ {
			for j := i; j <= len(b); j++ {
				w := &wsReader{text: true}
				ok := true
				parts := [][]byte{b[:i], b[i:j], b[j:]}
				for k, p := range parts {
					w.inMessage = k < len(parts)-1
					if !w.validText(p) {
						ok = false
						break
					}
				}
				if ok != want {
					t.Errorf("%q cut at %d, %d: valid=%v, utf8.Valid=%v", msg, i, j, ok, want)
				}
			}
		}
	}
}

// isParked reports whether the goroutine g waits for data without a read
// buffer: in conn.waitReadable, or in conn.readRaw (plain TCP).
func isParked(g string) bool {
	return strings.Contains(g, "(*conn).waitReadable(") || strings.Contains(g, "(*conn).readRaw(")
}

// waitParked waits until n connection read loops wait for data without a
// read buffer (see parked), as idle connections do.
func waitParked(t *testing.T, n int) {
	t.Helper()
	waitFor(t, strconv.Itoa(n)+" parked read loops", func() bool {
		parked := 0
		for _, g := range brokerGoroutines() {
			if isParked(g) {
				parked++
			}
		}
		return parked == n
	})
}

// TestWSIdleAfterControlFrames: a WebSocket connection that received only
// a ping, a pong or an empty message goes back to waiting without a read
// buffer, as after a STOMP frame (idle connections hold no 32 KiB buffer).
func TestWSIdleAfterControlFrames(t *testing.T) {
	if !peekSupported {
		t.Skip("no buffer-less wait on this platform")
	}
	srv := startServer(t, nil)
	c := connected(t, srv, "ws")
	c.subscribe("/topic/idle", "s")
	waitParked(t, 1)
	c.writeWS(ws.OpPing, true, []byte("p"))
	c.expectControl(ws.OpPong)
	waitParked(t, 1)
	c.writeWS(ws.OpPong, true, nil)
	c.writeWS(ws.OpText, true, nil)
	waitParked(t, 1)
	c.sync() // still served
	waitParked(t, 1)
}

// TestWSUpgradeRoutes: the upgrade is answered whichever way it comes: on
// its own (answered before net/http sees the connection), with the
// client's first frame sent before the 101 arrived, with a request head
// longer than the broker reads itself, and after a plain HTTP request on
// the same keep-alive connection (both served through net/http).
func TestWSUpgradeRoutes(t *testing.T) {
	srv := startServer(t, nil)
	upgrade := "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n"
	connect := wsClientFrame(ws.OpText, true, []byte("CONNECT\naccept-version:1.2\nhost:x\n\n\x00"))
	for _, tc := range []struct {
		name   string
		before string // a plain HTTP request first, on the same connection
		extra  string // more request headers
		early  bool   // CONNECT in the same write as the request
	}{
		{name: "direct"},
		{name: "first frame with the request", early: true},
		{name: "long head", extra: "X-Pad: " + strings.Repeat("p", maxHTTPHead) + "\r\n"},
		{name: "after a plain request", before: "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.DialTimeout("tcp", srv.Addr().String(), waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(waitTimeout))
			br := bufio.NewReader(nc)
			if tc.before != "" {
				io.WriteString(nc, tc.before) //nolint:errcheck
				resp, err := http.ReadResponse(br, nil)
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("plain request first: %v %v", resp, err)
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck
				resp.Body.Close()
			}
			req := []byte(upgrade + tc.extra + "\r\n")
			if tc.early {
				req = append(req, connect...)
			}
			if _, err := nc.Write(req); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Protocol") != "v12.stomp" {
				t.Fatalf("upgrade: %s, protocol %q", resp.Status, resp.Header.Get("Sec-WebSocket-Protocol"))
			}
			if !tc.early {
				if _, err := nc.Write(connect); err != nil {
					t.Fatal(err)
				}
			}
			fr, err := ws.ReadFrame(br)
			if err != nil {
				t.Fatal(err)
			}
			if fr.Header.OpCode != ws.OpText || !bytes.HasPrefix(fr.Payload, []byte("CONNECTED\n")) {
				t.Fatalf("got %v %q, want a CONNECTED frame", fr.Header.OpCode, fr.Payload)
			}
		})
	}
}

// TestIdleReadLoopHandsOff: once a connection has nothing to read, its read
// loop goes on in a fresh goroutine (resume) that waits without a buffer;
// the goroutine whose stack grew handling CONNECT and SUBSCRIBE is gone.
// Frames that come later are handled as before.
func TestIdleReadLoopHandsOff(t *testing.T) {
	if !peekSupported {
		t.Skip("no buffer-less wait on this platform")
	}
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.subscribe("/topic/idle", "s")
		waitHandedOff(t, "the read loop in a fresh goroutine")
		pub := connected(t, srv, tr)
		pub.publish("/topic/idle", "after idle")
		c.expectMessage("after idle")
		c.sync()
	})
}
