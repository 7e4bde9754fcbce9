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
