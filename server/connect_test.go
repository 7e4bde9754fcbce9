package server

import (
	"strings"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

func TestConnectCommands(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) {
			o.HeartBeatSend = 3 * time.Second
			o.HeartBeatRecv = 4 * time.Second
		})
		for _, cmd := range []string{frame.CONNECT, frame.STOMP} {
			t.Run(cmd, func(t *testing.T) {
				c := dial(t, srv, tr)
				c.sendFrame(cmd, "", "accept-version", "1.2", "host", "localhost")
				f := c.expect(frame.CONNECTED)
				if got := f.GetString("version"); got != "1.2" {
					t.Errorf("version = %q, want 1.2", got)
				}
				if got := f.GetString("heart-beat"); got != "3000,4000" {
					t.Errorf("heart-beat = %q, want 3000,4000 (the server's offer)", got)
				}
				if got := f.GetString("server"); !strings.HasPrefix(got, "stompica/") {
					t.Errorf("server = %q, want stompica/<version>", got)
				}
				if f.GetString("session") == "" {
					t.Errorf("CONNECTED has no session header: %s", fmtFrame(f))
				}
				c.sync()
			})
		}
	})
}

func TestConnectSessionsDiffer(t *testing.T) {
	srv := startServer(t, nil)
	a := dial(t, srv, "tcp").connect("1.2").GetString("session")
	b := dial(t, srv, "ws").connect("1.2").GetString("session")
	if a == b {
		t.Errorf("two connections got the same session %q", a)
	}
}

func TestVersionNegotiation(t *testing.T) {
	cases := []struct {
		accept string // "" = no accept-version header
		want   string
	}{
		{"", "1.0"},
		{"1.0", "1.0"},
		{"1.1", "1.1"},
		{"1.2", "1.2"},
		{"1.0,1.1", "1.1"},
		{"1.2,1.1,1.0", "1.2"},
		{"1.0,1.2", "1.2"},
		{"1.1,2.0", "1.1"},
		{"1.1, 1.0", "1.1"},
	}
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		for _, tc := range cases {
			t.Run("accept="+tc.accept, func(t *testing.T) {
				c := dial(t, srv, tr)
				f := c.connect(tc.accept)
				if got := f.GetString("version"); got != tc.want {
					t.Errorf("accept-version %q: negotiated %q, want %q", tc.accept, got, tc.want)
				}
				c.sync()
			})
		}
	})
}

func TestVersionUnsupported(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := dial(t, srv, tr)
		c.sendFrame(frame.CONNECT, "", "accept-version", "2.0", "host", "localhost")
		f := c.expect(frame.ERROR)
		if v := f.GetString("version"); !strings.Contains(v, "1.2") {
			t.Errorf("ERROR for an unsupported version has version header %q, want the supported versions: %s", v, fmtFrame(f))
		}
		if f.GetString("message") == "" {
			t.Errorf("ERROR has no message header: %s", fmtFrame(f))
		}
		c.expectClosed()
	})
}

func TestFrameBeforeConnect(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := dial(t, srv, tr)
		c.sendFrame(frame.SUBSCRIBE, "", "destination", "/topic/a", "id", "0")
		c.expectError("CONNECT")
		c.expectClosed()

		// A SEND before CONNECT publishes nothing.
		sub := connected(t, srv, tr)
		sub.subscribe("/topic/a", "s")
		c2 := dial(t, srv, tr)
		c2.sendFrame(frame.SEND, "sneaky", "destination", "/topic/a")
		c2.expectError("CONNECT")
		c2.expectClosed()
		pub := connected(t, srv, tr)
		pub.publish("/topic/a", "marker")
		sub.expectMessage("marker")
	})
}

func TestSecondConnect(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.sendFrame(frame.CONNECT, "", "accept-version", "1.2", "host", "localhost", "receipt", "again")
		f := c.expectError("already connected")
		if got := f.GetString("receipt-id"); got != "again" {
			t.Errorf("receipt-id = %q, want again", got)
		}
		c.expectClosed()
	})
}

func TestUnknownCommand(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.send("FROB\nx:y\n\n\x00")
		c.expectError("unknown command")
		c.expectClosed()
	})
}

func TestBadCommandCharset(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.send("send\ndestination:/topic/a\n\n\x00")
		c.expect(frame.ERROR)
		c.expectClosed()
	})
}

func TestDisconnectReceipt(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.sendFrame(frame.DISCONNECT, "", "receipt", "bye")
		c.expectReceipt("bye")
		code := c.expectClosed()
		if tr == "ws" && code != 1000 {
			t.Errorf("WebSocket close code after DISCONNECT = %d, want 1000", code)
		}
	})
}

func TestDisconnectWithoutReceipt(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.sendFrame(frame.DISCONNECT, "")
		c.expectClosed()
	})
}

func TestReceipts(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.request(frame.SUBSCRIBE, "", "destination", "/queue/r", "id", "q", "ack", "client-individual")
		c.sendFrame(frame.SEND, "one", "destination", "/queue/r", "receipt", "s1")
		m := c.expectMessage("one") // the broker delivers before it answers
		c.expectReceipt("s1")
		c.request(frame.ACK, "", "id", ackID(t, m))
		c.sendFrame(frame.SEND, "two", "destination", "/queue/r", "receipt", "s2")
		m = c.expectMessage("two")
		c.expectReceipt("s2")
		c.sendFrame(frame.NACK, "", "id", ackID(t, m), "receipt", "n1")
		m = c.expectMessage("two") // redelivered at once: the only consumer
		if m.GetString("redelivered") != "true" {
			t.Errorf("NACKed message redelivered without redelivered:true: %s", fmtFrame(m))
		}
		c.expectReceipt("n1")
		c.request(frame.BEGIN, "", "transaction", "t1")
		c.request(frame.ACK, "", "id", ackID(t, m), "transaction", "t1")
		c.request(frame.SEND, "tx", "destination", "/topic/none", "transaction", "t1")
		c.request(frame.COMMIT, "", "transaction", "t1")
		c.request(frame.BEGIN, "", "transaction", "t2")
		c.request(frame.ABORT, "", "transaction", "t2")
		c.request(frame.UNSUBSCRIBE, "", "id", "q")
		c.sendFrame(frame.DISCONNECT, "", "receipt", "last")
		c.expectReceipt("last")
		c.expectClosed()
	})
}

func TestErrorCarriesReceiptID(t *testing.T) {
	cases := []struct {
		name  string
		frame string
		want  string
	}{
		{"send-no-destination", "SEND\nreceipt:r-send\n\nx\x00", "destination"},
		{"subscribe-no-id", "SUBSCRIBE\ndestination:/topic/a\nreceipt:r-sub\n\n\x00", "id"},
		{"unsubscribe-unknown", "UNSUBSCRIBE\nid:nope\nreceipt:r-unsub\n\n\x00", "subscription"},
		{"commit-unknown", "COMMIT\ntransaction:nope\nreceipt:r-commit\n\n\x00", "transaction"},
		{"ack-unknown", "ACK\nid:1-1\nreceipt:r-ack\n\n\x00", "ack"},
		{"unknown-command", "FROB\nreceipt:r-frob\n\n\x00", "unknown command"},
	}
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c := connected(t, srv, tr)
				c.send(tc.frame)
				f := c.expectError(tc.want)
				rid := tc.frame[strings.Index(tc.frame, "receipt:")+len("receipt:"):]
				rid = rid[:strings.IndexByte(rid, '\n')]
				if got := f.GetString("receipt-id"); got != rid {
					t.Errorf("ERROR receipt-id = %q, want %q: %s", got, rid, fmtFrame(f))
				}
				c.expectClosed()
			})
		}
	})
}
