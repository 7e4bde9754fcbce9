package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

// TTL "stale queue": a topic message that found no subscriber is handed to
// the first matching subscriber that arrives before it expires.
func TestTTLLateSubscriber(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.TTL = time.Minute })
		pub := connected(t, srv, tr)
		pub.publish("/topic/late", "m1", "x-app", "kept")
		first := connected(t, srv, tr)
		first.subscribeNoWait("/topic/late.#", "p") // a pattern matches too
		m := first.expectMessage("m1")
		if m.GetString("destination") != "/topic/late" || m.GetString("x-app") != "kept" || m.GetString("subscription") != "p" {
			t.Errorf("retained message: %s", fmtFrame(m))
		}
		// Handed to the first subscriber only: a second one sees only new traffic.
		second := connected(t, srv, tr)
		second.subscribe("/topic/late", "s")
		pub.publish("/topic/late", "marker")
		second.expectMessage("marker")
		first.expectMessage("marker")
	})
}

func TestTTLPerMessageHeaders(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil) // no default TTL
		pub := connected(t, srv, tr)
		future := strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10)
		past := strconv.FormatInt(time.Now().Add(-time.Minute).UnixMilli(), 10)
		pub.publish("/topic/hdr", "plain")                  // no TTL: not retained
		pub.publish("/topic/hdr", "by-ttl", "ttl", "60000") // retained
		pub.publish("/topic/hdr", "expired", "expires", past)
		pub.publish("/topic/hdr", "by-expires", "expires", future)
		sub := connected(t, srv, tr)
		sub.subscribeNoWait("/topic/hdr", "s")
		sub.expectMessage("by-ttl")
		sub.expectMessage("by-expires")
		pub.publish("/topic/hdr", "marker")
		sub.expectMessage("marker")
		if got := srv.stats.expired.Load(); got != 1 {
			t.Errorf("expired counter = %d, want 1", got)
		}
	})
}

func TestTTLExpiredNeverDelivered(t *testing.T) {
	srv := startServer(t, func(o *Options) { o.TTL = 50 * time.Millisecond })
	pub := connected(t, srv, "tcp")
	pub.publish("/topic/exp", "old")
	pub.publish("/queue/exp", "old-q", "ttl", "50")
	time.Sleep(80 * time.Millisecond) // let the clock pass both expiries
	sub := connected(t, srv, "tcp")
	sub.subscribe("/topic/exp", "t")
	sub.subscribeNoWait("/queue/exp", "q")
	pub.publish("/topic/exp", "new")
	pub.publish("/queue/exp", "new-q")
	got := map[string]bool{}
	for range 2 {
		m := sub.expect(frame.MESSAGE)
		got[string(m.Body)] = true
	}
	if !got["new"] || !got["new-q"] {
		t.Fatalf("got %v, want only new and new-q", got)
	}
	if n := srv.stats.expired.Load(); n != 2 {
		t.Errorf("expired counter = %d, want 2", n)
	}
}

func TestTTLStaleQueueCap(t *testing.T) {
	srv := startServer(t, func(o *Options) { o.TTL = time.Minute; o.MaxStaleQueueSize = 3 })
	pub := connected(t, srv, "tcp")
	for i := 1; i <= 5; i++ {
		pub.publish("/topic/cap."+strconv.Itoa(i), "m"+strconv.Itoa(i))
	}
	sub := connected(t, srv, "tcp")
	sub.subscribeNoWait("/topic/cap.*", "s")
	for _, want := range []string{"m3", "m4", "m5"} { // the oldest two were dropped
		sub.expectMessage(want)
	}
	pub.publish("/topic/cap.x", "marker")
	sub.expectMessage("marker")
	if n := srv.stats.staleDropped.Load(); n != 2 {
		t.Errorf("stale dropped = %d, want 2", n)
	}
}

// Over max_input_queue_size the broker stops reading from the publisher;
// once a consumer drains the queue every message arrives, in order.
func TestInputQueueBackpressure(t *testing.T) {
	for _, limit := range []string{"count", "bytes"} {
		t.Run(limit, func(t *testing.T) {
			srv := startServer(t, func(o *Options) {
				if limit == "count" {
					o.MaxInputQueueSize = 20
				} else {
					o.MemoryBudget = 4 << 10
				}
			})
			pub := connected(t, srv, "tcp")
			const n = 400
			var raw strings.Builder
			for i := range n {
				raw.Write(pub.encode(frame.SEND, "msg-"+strconv.Itoa(i)+strings.Repeat(".", 64), "destination", "/queue/bp"))
			}
			raw.Write(pub.encode(frame.SEND, "last", "destination", "/queue/bp", "receipt", "last"))
			pub.send(raw.String())
			waitFor(t, "publisher paused", func() bool { return srv.input.pauses.Load() > 0 })
			if q := srv.input.msgs.Load(); q >= n {
				t.Fatalf("%d messages queued: the broker kept reading", q)
			}
			if m := scrapeMetrics(t, srv); !strings.Contains(m, "stompica_input_paused 1\n") || !strings.Contains(m, "stompica_input_pauses_total 1\n") {
				t.Errorf("metrics do not show the pause:\n%s", grepLines(m, "stompica_input"))
			}
			sub := connected(t, srv, "tcp")
			sub.subscribeNoWait("/queue/bp", "s")
			for i := range n {
				m := sub.expect(frame.MESSAGE)
				if want := "msg-" + strconv.Itoa(i) + "."; !strings.HasPrefix(string(m.Body), want) {
					t.Fatalf("message %d: got %q", i, m.Body)
				}
			}
			sub.expectMessage("last")
			pub.expectReceipt("last")
		})
	}
}

func diagAnswer(t *testing.T, c *client) map[string]any {
	t.Helper()
	m := c.expect(frame.MESSAGE)
	if ct := m.GetString("content-type"); ct != "application/json" {
		t.Errorf("DIAG answer content-type %q", ct)
	}
	var v map[string]any
	if err := json.Unmarshal(m.Body, &v); err != nil {
		t.Fatalf("DIAG answer is not JSON: %v: %q", err, m.Body)
	}
	return v
}

func TestDiag(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.TTL = time.Minute })
		a := connected(t, srv, tr)
		a.subscribe("/topic/d", "t1")
		a.subscribe("/queue/d", "q1")
		pub := connected(t, srv, tr)
		pub.publish("/topic/nobody", "kept") // retained
		pub.publish("/queue/idle", "waiting")

		// The DIAG frame works before CONNECT, as in the original.
		d := dial(t, srv, tr)
		d.sendFrame(frame.DIAG, "session-size")
		if v := diagAnswer(t, d); v["session-size"] != float64(3) {
			t.Errorf("session-size: %v", v)
		}
		d.sendFrame(frame.DIAG, "session-connected-size")
		if v := diagAnswer(t, d); v["session-connected-size"] != float64(2) {
			t.Errorf("session-connected-size: %v", v)
		}
		d.sendFrame(frame.DIAG, "pubsub-size")
		if v := diagAnswer(t, d); v["pubsub-size"] != float64(2) {
			t.Errorf("pubsub-size: %v", v)
		}
		d.sendFrame(frame.DIAG, "")
		v := diagAnswer(t, d)
		if v["clients"] != float64(3) || v["connected"] != float64(2) || v["subscriptions"] != float64(2) {
			t.Errorf("session: %v", v)
		}
		if want := float64(0); tr == "ws" {
			if v["websockets"] != float64(3) {
				t.Errorf("session websockets: %v", v)
			}
		} else if v["websockets"] != want {
			t.Errorf("session websockets: %v", v)
		}
		d.sendFrame(frame.DIAG, "stale")
		v = diagAnswer(t, d)
		if v["stale"] != float64(1) || v["queued"] != float64(1) || v["ttl_ms"] != float64(60000) {
			t.Errorf("stale: %v", v)
		}
		d.sendFrame(frame.DIAG, "subs")
		v = diagAnswer(t, d)
		if v["subscriptions"] != float64(2) || !strings.Contains(toJSON(v["queues"]), `"depth":1,"enqueued":1,"name":"/queue/idle"`) ||
			!strings.Contains(toJSON(v["topics"]), `"name":"/topic/d","subscribers":1`) {
			t.Errorf("subs: %v", v)
		}
		d.sendFrame(frame.DIAG, "ws_buffer")
		if v := diagAnswer(t, d); v["max_pending"] != float64(srv.opts.MaxPendingBytes) {
			t.Errorf("ws_buffer: %v", v)
		}
		d.sendFrame(frame.DIAG, "nonsense")
		if v := diagAnswer(t, d); v["error"] == nil || v["queries"] == nil {
			t.Errorf("unknown query: %v", v)
		}

		// SEND to a DIAG destination answers on the sender's subscription.
		a.subscribe("DIAG.stats", "diag-sub")
		a.sendFrame(frame.SEND, "pubsub-size", "destination", "DIAG.stats")
		m := a.expect(frame.MESSAGE)
		if m.GetString("subscription") != "diag-sub" || m.GetString("destination") != "DIAG.stats" || !strings.Contains(string(m.Body), `"pubsub-size":3`) {
			t.Errorf("SEND to DIAG: %s", fmtFrame(m))
		}
	})
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestFrameTimeout(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.FrameTimeout = 100 * time.Millisecond })
		c := connected(t, srv, tr)
		c.send("SEND\ndestination:/topic/slow\n") // and never the rest
		c.expectError("frame not completed")
		c.expectClosed()
	})
}

func TestMaxDestinationLength(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.MaxDestinationLength = 16 })
		c := connected(t, srv, tr)
		c.sendFrame(frame.SUBSCRIBE, "", "destination", "/topic/"+strings.Repeat("x", 10), "id", "1", "receipt", "r")
		c.expectError("destination longer than 16 bytes")
		c.expectClosed()
	})
}

func TestMaxConnectionsPerAddress(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.MaxConnectionsPerAddress = 2 })
		connected(t, srv, tr).sync()
		connected(t, srv, tr).sync()
		c := dial(t, srv, tr)
		c.trySend("CONNECT\naccept-version:1.2\n\n\x00") // the refusal may come first
		c.expectError("too many connections from this address")
		c.expectClosed()
	})
}

func TestPrefetchCappedByMaxUnacked(t *testing.T) {
	srv := startServer(t, func(o *Options) { o.MaxUnacked = 2 })
	pub := connected(t, srv, "tcp")
	for i := range 3 {
		pub.publish("/queue/cap", "m"+strconv.Itoa(i))
	}
	c := connected(t, srv, "tcp")
	c.subscribeNoWait("/queue/cap", "s", "ack", "client-individual", "prefetch-count", "1000")
	m0 := c.expectMessage("m0")
	c.expectMessage("m1")
	c.sync() // m2 waits: two unacked messages is the cap
	c.sendFrame(frame.ACK, "", "id", ackID(t, m0))
	c.expectMessage("m2") // the ACK frees a slot
}

func scrapeMetrics(t *testing.T, srv *Server) string {
	t.Helper()
	resp, err := http.Get("http://" + srv.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// After Options.MaxRedeliveries redeliveries a queue message goes to the
// dead-letter queue instead of back to its queue.
func TestDeadLetterQueue(t *testing.T) {
	srv := startServer(t, func(o *Options) { o.MaxRedeliveries = 1 })
	pub := connected(t, srv, "tcp")
	pub.publish("/queue/poison", "bad")
	c := connected(t, srv, "tcp")
	c.subscribeNoWait("/queue/poison", "s", "ack", "client-individual")
	m := c.expectMessage("bad") // first delivery
	c.sendFrame(frame.NACK, "", "id", ackID(t, m))
	m = c.expectMessage("bad") // the one redelivery allowed
	if m.GetString("redelivered") != "true" {
		t.Errorf("redelivery: %s", fmtFrame(m))
	}
	c.request(frame.NACK, "", "id", ackID(t, m))
	dlq := connected(t, srv, "tcp")
	dlq.subscribeNoWait(dlqName, "d")
	if m := dlq.expectMessage("bad"); m.GetString("destination") != "/queue/poison" {
		t.Errorf("dead letter: %s", fmtFrame(m))
	}
	c.sync() // nothing more came back to the original consumer
	if n := srv.stats.deadLettered.Load(); n != 1 {
		t.Errorf("dead-lettered = %d, want 1", n)
	}
}

// A queue with neither messages nor consumers is forgotten, so short-lived
// queue names do not pile up; its name works again as a new queue.
func TestUnusedQueueForgotten(t *testing.T) {
	srv := startServer(t, nil)
	c := connected(t, srv, "tcp")
	c.subscribe("/queue/short-lived", "s")
	c.sendFrame(frame.SEND, "m", "destination", "/queue/short-lived")
	c.expectMessage("m")
	if n := len(srv.router.queueStats()); n != 1 {
		t.Fatalf("%d queues while one is in use", n)
	}
	c.request(frame.UNSUBSCRIBE, "", "id", "s")
	if qs := srv.router.queueStats(); len(qs) != 0 {
		t.Fatalf("queues after the last consumer left an empty queue: %+v", qs)
	}
	// A queue holding messages stays until they are consumed.
	c.publish("/queue/short-lived", "kept")
	c.subscribeNoWait("/queue/short-lived", "s2")
	c.expectMessage("kept")
}

// Request-reply with temporary queues, RabbitMQ style (reply-to alone) and
// ActiveMQ style (SUBSCRIBE to the temp queue first), over both transports.
func TestTempQueueRequestReply(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		responder := connected(t, srv, tr)
		responder.subscribe("/queue/rpc", "rpc")
		answer := func() {
			t.Helper()
			req := responder.expect(frame.MESSAGE)
			replyTo := req.GetString("reply-to")
			if !strings.HasPrefix(replyTo, "/reply-queue/") {
				t.Fatalf("reply-to not rewritten: %s", fmtFrame(req))
			}
			responder.publish(replyTo, "re: "+string(req.Body))
		}

		// RabbitMQ style: the broker subscribes the requester for it.
		a := connected(t, srv, tr)
		a.sendFrame(frame.SEND, "q1", "destination", "/queue/rpc", "reply-to", "/temp-queue/answers")
		answer()
		if m := a.expectMessage("re: q1"); m.GetString("subscription") != "/temp-queue/answers" {
			t.Errorf("reply: %s", fmtFrame(m))
		}

		// ActiveMQ style, and privacy: b's /temp-queue/answers is not a's.
		b := connected(t, srv, tr)
		b.subscribe("/temp-queue/answers", "mine")
		b.sendFrame(frame.SEND, "q2", "destination", "/queue/rpc", "reply-to", "/temp-queue/answers")
		answer()
		if m := b.expectMessage("re: q2"); m.GetString("subscription") != "mine" {
			t.Errorf("reply: %s", fmtFrame(m))
		}
		a.sync() // a got nothing of b's

		// A reply to a session that has gone is dropped, and its queue forgotten.
		a.sendFrame(frame.SEND, "q3", "destination", "/queue/rpc", "reply-to", "/temp-queue/answers")
		req := responder.expect(frame.MESSAGE)
		a.close()
		waitFor(t, "a's session gone", func() bool { snap := srv.snapshot(0); return snap.TCP+snap.WS == 2 })
		responder.publish(req.GetString("reply-to"), "too late")
		for _, q := range srv.router.queueStats() {
			if strings.HasPrefix(q.Name, "/reply-queue/") && q.Consumers == 0 {
				t.Errorf("left behind: %+v", q)
			}
		}
		if n := srv.router.undeliverable.Load(); n != 1 {
			t.Errorf("undeliverable = %d, want 1", n)
		}
	})
}

// A topic subscriber in a client ack mode that stops acknowledging is cut
// off at Options.MaxUnacked (publishers never wait for it).
func TestTopicMaxUnacked(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.MaxUnacked = 3 })
		c := connected(t, srv, tr)
		c.subscribe("/topic/acks", "s", "ack", "client-individual")
		pub := connected(t, srv, tr)
		for i := range 4 {
			pub.publish("/topic/acks", "m"+strconv.Itoa(i))
		}
		for i := range 3 {
			c.expectMessage("m" + strconv.Itoa(i))
		}
		c.expectError("more than 3 unacknowledged messages")
		c.expectClosed()
	})
}
