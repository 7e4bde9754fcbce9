package server

import (
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

// A pause lasts until the queues drain to 90% of the bound, not just below
// it: a broker at its budget must not flap between pausing and resuming on
// every message (the soak saw 1,556 pause/resume pairs a minute without it).
func TestInputGateHysteresis(t *testing.T) {
	s := &Server{opts: Options{MaxInputQueueSize: 100, MemoryBudget: 1 << 30}.withDefaults()}
	s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	g := &s.input
	g.s = s
	m := &message{shared: make([]byte, 10)}
	for range 100 {
		g.add(m)
	}
	if !g.blocked() {
		t.Fatal("100 of 100 messages queued: not blocked")
	}
	done := make(chan struct{})
	close(done) // wait returns at once; it only has to start the pause
	g.wait(done, func() bool { return false })
	if !g.paused.Load() || g.pauses.Load() != 1 {
		t.Fatalf("paused=%v pauses=%d, want a pause", g.paused.Load(), g.pauses.Load())
	}
	for i := range 10 {
		g.remove(m)
		if !g.paused.Load() || !g.blocked() {
			t.Fatalf("%d queued (resume mark 90): pause ended", 99-i)
		}
	}
	g.remove(m) // 89 queued: under the resume mark
	if g.paused.Load() || g.blocked() {
		t.Fatalf("89 queued: still paused=%v blocked=%v", g.paused.Load(), g.blocked())
	}
	g.add(m) // 90: not over the bound, so no new pause
	if g.blocked() {
		t.Fatal("90 of 100 queued after the pause ended: blocked again")
	}
}

// A queue whose consumers do not keep up holds at most QueueFlowLimit
// waiting messages: the publisher's next frames are not read until the
// queue drains to half the limit, then everything arrives exactly once, in
// order. A queue nobody consumes is not bounded by it.
func TestQueueFlowLimit(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		const limit = 20
		srv := startServer(t, func(o *Options) {
			o.QueueFlowLimit = limit
			o.flowStall = time.Hour // the consumer here always makes progress
		})
		depth := func() int {
			qi, ok := srv.router.queueInfoOf("/queue/flow")
			if !ok {
				t.Fatal("no queue /queue/flow")
			}
			return qi.Depth
		}
		pub := connected(t, srv, tr)
		// Nobody consumes: the flow limit does not apply.
		for i := range 3 * limit {
			pub.publish("/queue/idle", strconv.Itoa(i))
		}
		if n := srv.stats.flowPaused.Load(); n != 0 {
			t.Fatalf("%d read loops paused on a queue without consumers", n)
		}

		con := connected(t, srv, tr)
		con.subscribe("/queue/flow", "c", "ack", "client-individual", "prefetch-count", "1")
		// The consumer holds message 0; 1..limit+1 wait: one over the limit.
		for i := range limit + 2 {
			pub.publish("/queue/flow", strconv.Itoa(i))
		}
		waitFor(t, "the publisher paused", func() bool { return srv.stats.flowPaused.Load() == 1 })
		if m := scrapeMetrics(t, srv); !strings.Contains(m, "stompica_flow_paused_connections 1\n") || !strings.Contains(m, "stompica_flow_pauses_total 1\n") {
			t.Errorf("/metrics while the publisher is paused:\n%s", m)
		}
		pub.sendFrame(frame.SEND, strconv.Itoa(limit+2), "destination", "/queue/flow", "receipt", "late")
		if d := depth(); d != limit+1 {
			t.Fatalf("depth %d while the publisher is paused, want %d", d, limit+1)
		}
		next := 0
		var held []*frame.Frame // delivered, not yet acknowledged
		ack := func() {
			if len(held) == 0 {
				held = append(held, con.expect(frame.MESSAGE))
			}
			m := held[0]
			held = held[1:]
			if string(m.Body) != strconv.Itoa(next) {
				t.Fatalf("message %q, want %d", m.Body, next)
			}
			next++
			id := con.newReceipt()
			con.sendFrame(frame.ACK, "", "id", ackID(t, m), "receipt", id)
			held = append(held, con.messagesUntilReceipt(id)...) // the next one may come first
		}
		// Each ACK lets one waiting message out. Down to limit/2+1 waiting
		// the publisher stays paused: the late SEND is not read.
		for range limit/2 - 1 {
			ack()
		}
		if d, p := depth(), srv.stats.flowPaused.Load(); d != limit/2+2 || p != 1 {
			t.Fatalf("depth %d, %d paused; want %d and 1 (the late SEND not read)", d, p, limit/2+2)
		}
		ack()
		ack() // limit/2 waiting: the publisher reads again
		pub.expectReceipt("late")
		for next <= limit+2 {
			ack()
		}
		if d := depth(); d != 0 {
			t.Fatalf("depth %d after all %d messages were acknowledged", d, limit+3)
		}
		con.sync()
		if n := srv.stats.flowPaused.Load(); n != 0 {
			t.Fatalf("%d read loops still paused", n)
		}
		if m := scrapeMetrics(t, srv); !strings.Contains(m, "stompica_flow_paused_connections 0\n") {
			t.Errorf("/metrics after the pause:\n%s", m)
		}

		// A publisher that holds unacknowledged messages is not paused: its
		// ACKs may be what the queue waits for.
		self := connected(t, srv, tr)
		self.subscribe("/queue/self", "s", "ack", "client-individual", "prefetch-count", "1")
		for i := range 2 * limit {
			id := self.newReceipt()
			self.sendFrame(frame.SEND, strconv.Itoa(i), "destination", "/queue/self", "receipt", id)
			want := 0 // the first one goes to the subscription, which holds it
			if i == 0 {
				want = 1
			}
			if ms := self.messagesUntilReceipt(id); len(ms) != want {
				t.Fatalf("SEND %d: %d MESSAGEs before its RECEIPT, want %d", i, len(ms), want)
			}
		}
		if n := srv.stats.flowPaused.Load(); n != 0 {
			t.Fatalf("%d read loops paused, want none", n)
		}
	})
}

// A consumer that holds its prefetch and never acknowledges does not hold
// the queue's publishers forever: once the crowded queue has handed out
// nothing for the stall time, they are read again and the queue grows
// (bounded by the memory budget); a message handed out again brings flow
// control back.
func TestQueueFlowStalledConsumer(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		const limit = 20
		srv := startServer(t, func(o *Options) {
			o.QueueFlowLimit = limit
			o.flowStall = 200 * time.Millisecond
		})
		con := connected(t, srv, tr)
		con.subscribe("/queue/stuck", "c", "ack", "client-individual", "prefetch-count", "1")
		pub := connected(t, srv, tr)
		const total = 5 * limit
		pauses := srv.stats.flowPauses.Load()
		for i := range total { // each RECEIPT awaited: one SEND per read
			pub.publish("/queue/stuck", strconv.Itoa(i))
		}
		// Every SEND read: the publisher paused once, and was let go.
		if n := srv.stats.flowPauses.Load(); n != pauses+1 {
			t.Fatalf("%d flow pauses, want 1", n-pauses)
		}
		qi, _ := srv.router.queueInfoOf("/queue/stuck")
		if qi.Depth != total-1 {
			t.Fatalf("depth %d, want %d (one held by the consumer)", qi.Depth, total-1)
		}
		if n := srv.stats.flowPaused.Load(); n != 0 {
			t.Fatalf("%d read loops paused on a stalled queue", n)
		}
		m := con.expect(frame.MESSAGE)
		if string(m.Body) != "0" {
			t.Fatalf("first message %q", m.Body)
		}
		// The consumer acknowledges: the queue moves again, and the next
		// SEND over the limit pauses its publisher again.
		pauses = srv.stats.flowPauses.Load()
		con.sendFrame(frame.ACK, "", "id", ackID(t, m))
		con.expect(frame.MESSAGE)           // the queue moves
		pub.publish("/queue/stuck", "more") // read, then its publisher pauses (and is let go again)
		waitFor(t, "the publisher paused again", func() bool { return srv.stats.flowPauses.Load() == pauses+1 })
	})
}
