package server

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

func TestMaxFrameSize(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.MaxFrameSize = 4096 })
		s := connected(t, srv, tr)
		s.subscribe("/topic/size", "s")
		c := connected(t, srv, tr)
		// Just under the limit passes.
		ok := strings.Repeat("a", 3000)
		c.publish("/topic/size", ok)
		s.expectMessage(ok)
		// Over it: ERROR, close. Over WebSocket the frame travels in
		// messages under the limit, so the STOMP limit is what trips.
		raw := string(c.encode(frame.SEND, strings.Repeat("b", 8000), "destination", "/topic/size"))
		if tr == "ws" {
			for i := 0; i < len(raw); i += 2000 {
				c.trySend(raw[i:min(i+2000, len(raw))])
			}
		} else {
			c.trySend(raw)
		}
		c.expectError("frame too large")
		c.expectClosed()
		s.sync()
	})
}

func TestMaxFrameSizeNoContentLength(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.MaxFrameSize = 1024 })
		c := connected(t, srv, tr)
		// A body without content-length and without NUL, growing forever.
		c.trySend("SEND\ndestination:/topic/x\n\n" + strings.Repeat("x", 600))
		c.trySend(strings.Repeat("y", 600))
		c.expectError("frame too large")
		c.expectClosed()
	})
}

func TestMaxHeaders(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.MaxHeaders = 4 })
		c := connected(t, srv, tr)
		c.publish("/topic/h", "", "a", "1", "b", "2") // 4 headers with the receipt
		c.trySend("SEND\ndestination:/topic/h\na:1\nb:2\nc:3\nd:4\n\n\x00")
		c.expectError("too many headers")
		c.expectClosed()
	})
}

// TestManyHeadersByDefault: with the default MaxHeaders (1000, as Apache
// Apollo) a SEND with 100 custom headers is accepted and delivered with all
// of them, in order; 1000 header lines still pass and 1001 are refused.
func TestManyHeadersByDefault(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		if got := srv.Options().MaxHeaders; got != 1000 {
			t.Fatalf("default MaxHeaders = %d, want 1000", got)
		}
		sub := connected(t, srv, tr)
		sub.subscribe("/topic/many", "s")
		pub := connected(t, srv, tr)
		var kv []string
		for i := range 100 {
			kv = append(kv, "x-h"+strconv.Itoa(i), "v"+strconv.Itoa(i))
		}
		pub.publish("/topic/many", "body", kv...)
		m := sub.expectMessage("body")
		n := 0
		for _, h := range m.Headers {
			if !strings.HasPrefix(string(h.Key), "x-h") {
				continue
			}
			if want := "x-h" + strconv.Itoa(n); string(h.Key) != want || string(h.Value) != "v"+strconv.Itoa(n) {
				t.Fatalf("custom header %d is %s:%s, want %s:v%d", n, h.Key, h.Value, want, n)
			}
			n++
		}
		if n != 100 {
			t.Fatalf("MESSAGE carries %d of the 100 custom headers: %s", n, fmtFrame(m))
		}

		// destination + receipt + 998 = 1000 header lines: accepted (to a
		// destination nobody reads: the MESSAGE would have more).
		for i := 100; i < 999; i++ {
			kv = append(kv, "x-h"+strconv.Itoa(i), "v")
		}
		pub.publish("/topic/edge", "", kv[:2*998]...) // no body: no content-length
		pub.sendFrame(frame.SEND, "", append([]string{"destination", "/topic/edge", "receipt", "r"}, kv...)...)
		pub.expectError("too many headers")
		pub.expectClosed()
	})
}

func TestMaxHeaderLine(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.MaxHeaderLine = 128 })
		c := connected(t, srv, tr)
		c.publish("/topic/h", "ok", "k", strings.Repeat("v", 100))
		c.trySend("SEND\ndestination:/topic/h\nk:" + strings.Repeat("v", 300) + "\n\n\x00")
		c.expectError("header line too long")
		c.expectClosed()
	})
}

func TestMaxSubscriptions(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.MaxSubscriptions = 2 })
		c := connected(t, srv, tr)
		c.subscribe("/topic/a", "a")
		c.subscribe("/queue/b", "b")
		c.request(frame.UNSUBSCRIBE, "", "id", "a")
		c.subscribe("/topic/c", "c") // the freed slot is reusable
		c.sendFrame(frame.SUBSCRIBE, "", "destination", "/topic/d", "id", "d", "receipt", "r")
		if got := c.expectError("subscriptions").GetString("receipt-id"); got != "r" {
			t.Errorf("receipt-id = %q, want r", got)
		}
		c.expectClosed()
		// Another connection has its own budget.
		d := connected(t, srv, tr)
		d.subscribe("/topic/a", "a")
		d.subscribe("/topic/b", "b")
	})
}

func TestMaxTransactions(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.MaxTransactions = 2 })
		c := connected(t, srv, tr)
		c.request(frame.BEGIN, "", "transaction", "t1")
		c.request(frame.BEGIN, "", "transaction", "t2")
		c.request(frame.COMMIT, "", "transaction", "t1")
		c.request(frame.BEGIN, "", "transaction", "t3")
		c.sendFrame(frame.BEGIN, "", "transaction", "t4")
		c.expectError("transactions")
		c.expectClosed()
	})
}

func TestMaxConnections(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.MaxConnections = 2 })
		a := connected(t, srv, tr)
		connected(t, srv, tr)
		extra := dial(t, srv, tr)
		extra.trySend(string(extra.encode(frame.CONNECT, "", "accept-version", "1.2", "host", "h")))
		extra.expectError("too many connections")
		extra.expectClosed()
		// The first two are unaffected.
		a.sync()
		// Once one leaves, a new one gets in (the slot is freed just after
		// the socket closes, so poll).
		a.sendFrame(frame.DISCONNECT, "", "receipt", "bye")
		a.expectReceipt("bye")
		a.expectClosed()
		var ev event
		if !poll(waitTimeout, pollEvery, func() bool {
			c := dial(t, srv, tr)
			c.trySend(string(c.encode(frame.CONNECT, "", "accept-version", "1.2", "host", "h")))
			if ev = c.nextFrame("CONNECTED"); ev.f.Command == frame.CONNECTED {
				c.sync()
				return true
			}
			c.close()
			return false
		}) {
			t.Fatalf("no connection accepted after one of %d left: %s", 2, fmtFrame(ev.f))
		}
	})
}

// TestMaxConnectionsPipelinedClient: a refused client that already sent
// more than the broker read (CONNECT and a SEND in one write, as pipelining
// clients do) must still receive the ERROR, not a connection reset.
func TestMaxConnectionsPipelinedClient(t *testing.T) {
	srv := startServer(t, func(o *Options) { o.MaxConnections = 1 })
	connected(t, srv, "tcp")
	for range 5 {
		extra := dial(t, srv, "tcp")
		extra.trySend(string(extra.encode(frame.CONNECT, "", "accept-version", "1.2", "host", "h")) +
			string(extra.encode(frame.SEND, strings.Repeat("p", 100<<10), "destination", "/queue/p")))
		extra.expectError("too many connections")
		extra.expectClosed()
	}
}

func TestConnectTimeout(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.ConnectTimeout = 200 * time.Millisecond })
		t.Run("partial-frame", func(t *testing.T) {
			c := dial(t, srv, tr)
			start := time.Now()
			c.send("CONNECT\naccept-version:1.2\n")
			c.expectError("CONNECT")
			if d := time.Since(start); d < 150*time.Millisecond {
				t.Errorf("closed after %v, before ConnectTimeout", d)
			}
			c.expectClosed()
		})
		t.Run("heart-beats-only", func(t *testing.T) {
			c := dial(t, srv, tr)
			c.send("\n")
			c.expectError("CONNECT")
			c.expectClosed()
		})
		t.Run("nothing", func(t *testing.T) {
			c := dial(t, srv, tr)
			c.expectError("CONNECT")
			c.expectClosed()
		})
		t.Run("connected-in-time", func(t *testing.T) {
			c := connected(t, srv, tr)
			time.Sleep(300 * time.Millisecond) // past ConnectTimeout: no longer applies
			c.sync()
		})
	})
}

// TestSlowConsumer: a topic subscriber that does not read is disconnected
// once its pending output passes MaxPendingBytes, while the publisher is
// never blocked and another subscriber gets every message.
func TestSlowConsumer(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.MaxPendingBytes = 64 << 10 })
		slow := dial(t, srv, tr, withRcvBuf(4096))
		slow.connect("1.2")
		slow.subscribe("/topic/firehose", "slow")
		slow.pause() // from now on it reads (almost) nothing
		fast := connected(t, srv, tr)
		fast.subscribe("/topic/firehose", "fast")
		pub := connected(t, srv, tr)
		// The publisher sends rounds of 8 messages of 8 KiB (64 KiB, well
		// under the cap) and the fast subscriber reads each round before
		// the next, so only the slow one falls behind: 8 MB in all, far
		// more than socket buffers and the cap.
		body := strings.Repeat("x", 8<<10)
		const rounds, per = 128, 8
		start := time.Now()
		seq := 0
		for range rounds {
			for i := range per {
				kv := []string{"destination", "/topic/firehose", "seq", strconv.Itoa(seq)}
				seq++
				if i == per-1 {
					pub.request(frame.SEND, body, kv...) // never blocked
				} else {
					pub.sendFrame(frame.SEND, body, kv...)
				}
			}
			for i := seq - per; i < seq; i++ {
				m := fast.expect(frame.MESSAGE)
				if got := m.GetString("seq"); got != strconv.Itoa(i) {
					t.Fatalf("fast subscriber: message %d has seq %q", i, got)
				}
			}
		}
		const n = rounds * per
		t.Logf("%d messages published and received by the fast subscriber in %v", n, time.Since(start))
		fast.sync()
		// Now the slow client reads: some messages, then the ERROR, then
		// the close.
		slow.resume()
		got := 0
		for {
			ev := slow.nextFrame("ERROR")
			if ev.f.Command == frame.MESSAGE {
				got++
				continue
			}
			if ev.f.Command != frame.ERROR || !strings.Contains(ev.f.GetString("message"), "slow consumer") {
				t.Fatalf("slow subscriber: expected MESSAGEs then ERROR slow consumer, got %s", fmtFrame(ev.f))
			}
			break
		}
		if got >= n {
			t.Errorf("slow subscriber got all %d messages", got)
		}
		t.Logf("slow subscriber got %d of %d messages before the ERROR", got, n)
		slow.expectClosed()
	})
}

// TestSlowQueueConsumer: a queue consumer that does not read is not
// disconnected; the queue gives it no more once its output is over half
// the cap, another consumer takes the rest, and when it reads again it
// gets what it was given. Every message is delivered exactly once.
func TestSlowQueueConsumer(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.MaxPendingBytes = 64 << 10 })
		slow := dial(t, srv, tr, withRcvBuf(4096))
		slow.connect("1.2")
		slow.subscribe("/queue/bulk", "slow")
		slow.pause()
		fast := connected(t, srv, tr)
		fast.subscribe("/queue/bulk", "fast")
		pub := connected(t, srv, tr)
		body := strings.Repeat("y", 8<<10)
		const n = 1000 // 8 MB: far more than the slow consumer's socket buffers hold
		for i := range n - 1 {
			pub.sendFrame(frame.SEND, body, "destination", "/queue/bulk", "seq", strconv.Itoa(i))
		}
		pub.request(frame.SEND, body, "destination", "/queue/bulk", "seq", strconv.Itoa(n-1))
		seen := map[string]string{}
		take := func(c *client, who string, d time.Duration) bool {
			ev, ended, err := c.next(d)
			if ended {
				t.Fatalf("%s consumer disconnected (%v) after %d messages in all", who, err, len(seen))
			}
			if err != nil {
				return false
			}
			if ev.kind != evFrame {
				return true
			}
			if ev.f.Command != frame.MESSAGE {
				t.Fatalf("%s consumer: %s", who, fmtFrame(ev.f))
			}
			seq := ev.f.GetString("seq")
			if prev, dup := seen[seq]; dup {
				t.Fatalf("message %s delivered twice (%s, then %s)", seq, prev, who)
			}
			seen[seq] = who
			return true
		}
		// The fast consumer gets most; then the slow one reads again.
		for len(seen) < n/2 {
			if !take(fast, "fast", waitTimeout) {
				t.Fatalf("fast consumer: only %d messages", len(seen))
			}
		}
		slow.resume()
		poll(waitTimeout, 0, func() bool {
			for take(slow, "slow", 5*time.Millisecond) {
			}
			for take(fast, "fast", 5*time.Millisecond) {
			}
			return len(seen) >= n
		})
		if len(seen) != n {
			t.Fatalf("%d of %d messages delivered", len(seen), n)
		}
		bySlow := 0
		for _, who := range seen {
			if who == "slow" {
				bySlow++
			}
		}
		t.Logf("slow consumer got %d of %d", bySlow, n)
		if bySlow == 0 || bySlow > n/2 {
			t.Errorf("slow consumer got %d of %d messages: want some, but not its round-robin half", bySlow, n)
		}
		slow.sync()
		fast.sync()
	})
}
