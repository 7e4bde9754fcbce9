package server

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/stompica/stompica/frame"
)

func TestWireCRLF(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := dial(t, srv, tr)
		c.send("CONNECT\r\naccept-version:1.2\r\nhost:localhost\r\n\r\n\x00")
		c.expect(frame.CONNECTED)
		c.send("SUBSCRIBE\r\ndestination:/topic/crlf\r\nid:1\r\nreceipt:r1\r\n\r\n\x00")
		c.expectReceipt("r1")
		c.send("SEND\r\ndestination:/topic/crlf\r\nx-h:v\r\n\r\ncrlf body\x00")
		m := c.expectMessage("crlf body")
		if got := m.GetString("x-h"); got != "v" {
			t.Errorf("header x-h = %q, want v (CR stripped)", got)
		}
		if got := m.GetString("destination"); got != "/topic/crlf" {
			t.Errorf("destination = %q", got)
		}
	})
}

func TestWireEOLsBetweenFrames(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := dial(t, srv, tr)
		c.send("\n\r\n\nCONNECT\naccept-version:1.2\nhost:h\n\n\x00\n\n\r\n")
		c.expect(frame.CONNECTED)
		c.send("\nSUBSCRIBE\ndestination:/topic/eol\nid:1\n\n\x00\r\n\n\nSEND\ndestination:/topic/eol\nreceipt:r\n\nx\x00\n")
		c.expectMessage("x")
		c.expectReceipt("r")
	})
}

func TestWireSeveralFramesInOneWrite(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := dial(t, srv, tr)
		var b []byte
		b = append(b, c.encode(frame.CONNECT, "", "accept-version", "1.2", "host", "h")...)
		b = append(b, "SUBSCRIBE\ndestination:/topic/multi\nid:1\n\n\x00"...)
		for i := range 5 {
			b = append(b, "SEND\ndestination:/topic/multi\n\nm"+strconv.Itoa(i)+"\x00"...)
		}
		b = append(b, "DISCONNECT\nreceipt:bye\n\n\x00"...)
		c.send(string(b))
		c.expect(frame.CONNECTED)
		for i := range 5 {
			c.expectMessage("m" + strconv.Itoa(i))
		}
		c.expectReceipt("bye")
		c.expectClosed()
	})
}

func TestWireByteByByte(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := dial(t, srv, tr)
		raw := "CONNECT\naccept-version:1.2\nhost:h\n\n\x00" +
			"SUBSCRIBE\ndestination:/topic/bytes\nid:1\n\n\x00" +
			"SEND\ndestination:/topic/bytes\ncontent-length:5\nreceipt:r\n\na\x00b\x00c\x00"
		for i := 0; i < len(raw); i++ {
			c.send(raw[i : i+1])
		}
		c.expect(frame.CONNECTED)
		m := c.expectMessage("a\x00b\x00c")
		if got := m.GetString("content-length"); got != "5" {
			t.Errorf("content-length = %q, want 5", got)
		}
		c.expectReceipt("r")
	})
}

func TestWireLargeBinaryBody(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		body := make([]byte, 1<<20)
		for i := range body {
			body[i] = byte(i * 7)
		}
		if bytes.IndexByte(body, 0) < 0 {
			t.Fatal("test body has no NUL")
		}
		s := connected(t, srv, tr)
		s.subscribe("/topic/big", "b")
		pub := connected(t, srv, tr)
		pub.publish("/topic/big", string(body), "content-type", "application/octet-stream")
		m := s.expect(frame.MESSAGE)
		if !bytes.Equal(m.Body, body) {
			t.Fatalf("1 MiB body corrupted: got %d bytes", len(m.Body))
		}
		if got := m.GetString("content-length"); got != strconv.Itoa(len(body)) {
			t.Errorf("content-length = %q, want %d", got, len(body))
		}
		// The stream is still in step.
		pub.publish("/topic/big", "after")
		s.expectMessage("after")
	})
}

func TestWireBodyWithoutContentLength(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		s := connected(t, srv, tr)
		s.subscribe("/topic/nul", "n")
		pub := connected(t, srv, tr)
		pub.send("SEND\ndestination:/topic/nul\n\nup to the NUL\x00SEND\ndestination:/topic/nul\nreceipt:r\n\nnext\x00")
		pub.expectReceipt("r")
		m := s.expectMessage("up to the NUL")
		if got := m.GetString("content-length"); got != "13" {
			t.Errorf("content-length = %q, want 13 (the broker adds it)", got)
		}
		s.expectMessage("next")
	})
}

func TestWireEmptyBody(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		s := connected(t, srv, tr)
		s.subscribe("/topic/empty", "e")
		pub := connected(t, srv, tr)
		pub.publish("/topic/empty", "")
		m := s.expectMessage("")
		if got := m.GetString("content-length"); got != "0" && got != "" {
			t.Errorf("content-length = %q for an empty body", got)
		}
	})
}

// TestHeaderEscaping: a header value with ':', '\' and LF published by a
// 1.2 client reaches 1.1 and 1.2 subscribers intact (escaped on their
// wire); a 1.0 subscriber (no escaping in 1.0) gets ':' and '\' as they are.
func TestHeaderEscaping(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		subs := map[string]*client{}
		for _, v := range []string{"1.0", "1.1", "1.2"} {
			c := dial(t, srv, tr)
			c.connect(v)
			c.request(frame.SUBSCRIBE, "", "destination", "/topic/esc:a", "id", "s:"+v)
			subs[v] = c
		}
		pub := connected(t, srv, tr)
		// frame.Append escapes for 1.2: colon\c, back\\slash, line\nfeed.
		pub.publish("/topic/esc:a", "b", "colon", "a:b", "back", `a\b`, "k:ey", "v")
		for _, v := range []string{"1.1", "1.2"} {
			m := subs[v].expectMessage("b")
			for k, want := range map[string]string{"colon": "a:b", "back": `a\b`, "k:ey": "v", "destination": "/topic/esc:a", "subscription": "s:" + v} {
				if got := m.GetString(k); got != want {
					t.Errorf("%s subscriber: header %q = %q, want %q: %s", v, k, got, want, fmtFrame(m))
				}
			}
		}
		m := subs["1.0"].expectMessage("b")
		for k, want := range map[string]string{"colon": "a:b", "back": `a\b`, "destination": "/topic/esc:a", "subscription": "s:1.0"} {
			if got := m.GetString(k); got != want {
				t.Errorf("1.0 subscriber: header %q = %q, want %q: %s", k, got, want, fmtFrame(m))
			}
		}

		// A 1.0 publisher's backslashes are literal.
		old := dial(t, srv, tr)
		old.connect("1.0")
		old.send("SEND\ndestination:/topic/esc:a\nlit:x\\cy\nreceipt:r\n\nold\x00")
		old.expectReceipt("r")
		for _, v := range []string{"1.0", "1.1", "1.2"} {
			m := subs[v].expectMessage("old")
			if got := m.GetString("lit"); got != `x\cy` {
				t.Errorf("%s subscriber: 1.0 header lit = %q, want %q", v, got, `x\cy`)
			}
		}
	})
}

// TestHeaderNewlineTo10Subscriber: STOMP 1.0 cannot carry a LF in a header
// value. Whatever the broker does with it, the 1.0 subscriber's stream must
// stay well-formed (never corrupt another client's stream).
func TestHeaderNewlineTo10Subscriber(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		s12 := connected(t, srv, tr)
		s12.subscribe("/topic/nl", "s")
		s10 := dial(t, srv, tr)
		s10.connect("1.0")
		s10.request(frame.SUBSCRIBE, "", "destination", "/topic/nl", "id", "s")
		pub := connected(t, srv, tr)
		pub.publish("/topic/nl", "body", "multi", "line1\nline2", "after", "ok")
		pub.publish("/topic/nl", "next")
		m := s12.expectMessage("body")
		if got := m.GetString("multi"); got != "line1\nline2" {
			t.Errorf("1.2 subscriber: multi = %q, want %q", got, "line1\nline2")
		}
		m = s10.expectMessage("body")
		if got := m.GetString("after"); got != "ok" {
			t.Errorf("1.0 subscriber: header after = %q, want ok: %s", got, fmtFrame(m))
		}
		s10.expectMessage("next")
	})
}

func TestUndefinedEscape(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		for _, v := range []string{"1.1", "1.2"} {
			t.Run(v, func(t *testing.T) {
				c := dial(t, srv, tr)
				c.connect(v)
				c.send("SEND\ndestination:/topic/a\nk:a\\tb\n\n\x00")
				c.expectError("escape")
				c.expectClosed()
			})
		}
		t.Run("1.1-cr", func(t *testing.T) {
			c := dial(t, srv, tr)
			c.connect("1.1")
			c.send("SEND\ndestination:/topic/a\nk:a\\rb\n\n\x00") // \r is 1.2 only
			c.expectError("escape")
			c.expectClosed()
		})
		t.Run("1.0-literal", func(t *testing.T) {
			c := dial(t, srv, tr)
			c.connect("1.0")
			c.send("SEND\ndestination:/topic/a\nk:a\\tb\nreceipt:r\n\n\x00")
			c.expectReceipt("r")
		})
	})
}

func TestWireMalformedHeader(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.send("SEND\ndestination:/topic/a\nno colon here\n\n\x00")
		c.expect(frame.ERROR)
		c.expectClosed()
	})
}

func TestWireBadContentLength(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.send("SEND\ndestination:/topic/a\ncontent-length:3\n\nabcdef\x00")
		c.expect(frame.ERROR)
		c.expectClosed()
	})
}
