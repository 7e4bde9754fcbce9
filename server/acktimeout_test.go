package server

import (
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

// A client-ack consumer that holds a queue message past the ack timeout
// loses it: it goes to the next consumer, flagged redelivered; the late
// ACK of the first consumer is ignored (no ERROR). On the memory store and
// on JetStream.
func TestAckTimeout(t *testing.T) {
	for _, st := range []string{"memory", "jetstream"} {
		t.Run(st, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr string) {
				const timeout = 150 * time.Millisecond
				srv := startServer(t, func(o *Options) {
					o.AckTimeout = timeout
					if st == "jetstream" {
						o.Store = openJetStream(t, "")
					}
				})
				a := connected(t, srv, tr)
				a.subscribe("/queue/slow", "a", "ack", "client-individual")
				b := connected(t, srv, tr)
				b.subscribe("/queue/slow", "b", "ack", "client-individual")
				pub := connected(t, srv, tr)
				// The broker times m1 from its delivery, which is after
				// this (and may be well before a reads it, on a loaded
				// machine).
				sent := time.Now()
				pub.publish("/queue/slow", "m1")
				pub.publish("/queue/slow", "m2")
				// Round-robin: m1 to a, m2 to b; b acknowledges, a does not.
				m1 := a.expectMessage("m1")
				b.request(frame.ACK, "", "id", ackID(t, b.expectMessage("m2")))
				re := b.expectMessage("m1")
				if waited := time.Since(sent); waited < timeout {
					t.Errorf("m1 taken back after %v, before the %v timeout", waited, timeout)
				}
				if re.GetString("redelivered") != "true" {
					t.Errorf("after the ack timeout: %s", fmtFrame(re))
				}
				a.request(frame.ACK, "", "id", ackID(t, m1)) // late: ignored, no ERROR
				b.request(frame.ACK, "", "id", ackID(t, re))
				a.sync()
				b.sync()
				if n := srv.stats.redeliveries.Load(); n != 1 {
					t.Errorf("redeliveries = %d, want 1", n)
				}
			})
		})
	}
}

// TestAckTimeoutFreesPatternCredit: the ack timeout takes a message back
// from a pattern consumer whose prefetch it filled, and it goes to another
// consumer of its queue; the credit it frees is the pattern consumer's for
// every queue it matches. A message that waits on another of them for lack
// of that credit goes out then, without waiting for another SEND.
func TestAckTimeoutFreesPatternCredit(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.AckTimeout = 150 * time.Millisecond })
		p := connected(t, srv, tr)
		p.subscribe("/queue/pat.*", "p", "ack", "client-individual", "prefetch-count", "1")
		pub := connected(t, srv, tr)
		pub.publish("/queue/pat.x", "m1")
		m1 := p.expectMessage("m1")
		pub.publish("/queue/pat.y", "m2") // waits: p's prefetch is full
		e := connected(t, srv, tr)
		e.subscribe("/queue/pat.x", "e")
		if f := e.expectMessage("m1"); f.GetString("redelivered") != "true" {
			t.Errorf("m1 after the ack timeout: %s", fmtFrame(f))
		}
		m2 := p.expectMessage("m2")
		p.request(frame.ACK, "", "id", ackID(t, m1)) // late: ignored
		p.request(frame.ACK, "", "id", ackID(t, m2))
		pub.publish("/queue/pat.y", "m3")
		p.expectMessage("m3")
		p.sync()
	})
}

// TestAckTimeoutExpiredForgetsConsumer: a message the ack timeout took
// back is remembered with the consumer it should avoid until it goes out
// again. When it expires in the queue instead (or is purged), it is
// recycled for a later message, and the queue must not remember it: that
// later message would avoid the consumer for nothing.
func TestAckTimeoutExpiredForgetsConsumer(t *testing.T) {
	srv := startServer(t, func(o *Options) { o.AckTimeout = 100 * time.Millisecond })
	a := connected(t, srv, "tcp")
	a.subscribe("/queue/avoid", "a", "ack", "client-individual", "prefetch-count", "1")
	pub := connected(t, srv, "tcp")
	pub.publish("/queue/avoid", "m1", "ttl", "50") // expires before it is taken back
	a.expectMessage("m1")
	waitFor(t, "m1 taken back and dropped as expired", func() bool {
		return srv.stats.expired.Load() == 1
	})
	q := srv.router.queue("/queue/avoid")
	q.mu.Lock()
	n := len(q.avoid)
	q.mu.Unlock()
	if n != 0 {
		t.Errorf("the queue remembers %d recycled message(s) to keep from a consumer, want 0", n)
	}
	pub.publish("/queue/avoid", "m2")
	a.expectMessage("m2")
	a.sync()
}
