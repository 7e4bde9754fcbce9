package server

import (
	"strconv"
	"testing"

	"github.com/stompica/stompica/frame"
)

// TestSendQueueDeleted: a publisher keeps sending to a queue that was
// deleted between its SENDs (its consumer left and it drained): the
// messages go to the queue that replaces it, in order, none lost, also
// after the connection's reference to the queue is renewed (every 256
// SENDs).
func TestSendQueueDeleted(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		pub := connected(t, srv, tr)
		con := connected(t, srv, tr)
		con.subscribe("/queue/ref", "1")
		pub.publish("/queue/ref", "one")
		con.expectMessage("one")
		srv.router.mu.RLock()
		old := srv.router.queues["/queue/ref"]
		srv.router.mu.RUnlock()
		if old == nil {
			t.Fatal("no queue /queue/ref")
		}
		con.request(frame.UNSUBSCRIBE, "", "id", "1")
		waitFor(t, "the unused queue deleted", func() bool {
			srv.router.mu.RLock()
			defer srv.router.mu.RUnlock()
			return srv.router.queues["/queue/ref"] == nil
		})
		const n = 300
		for i := range n {
			pub.trySend(string(pub.encode(frame.SEND, "m"+strconv.Itoa(i), "destination", "/queue/ref")))
		}
		pub.publish("/queue/ref", "last")
		srv.router.mu.RLock()
		q := srv.router.queues["/queue/ref"]
		srv.router.mu.RUnlock()
		if q == nil || q == old {
			t.Fatalf("queue after deletion: %p (deleted one %p)", q, old)
		}
		con.subscribeNoWait("/queue/ref", "2")
		for i := range n {
			con.expectMessage("m" + strconv.Itoa(i))
		}
		con.expectMessage("last")
	})
}

// TestQueueRef: the reference serves only its destination, and is given
// up every 256 uses, so that a deleted queue is looked up again.
func TestQueueRef(t *testing.T) {
	q := &queue{name: "/queue/x"}
	r := queueRef{q: q}
	if got := r.get(false); got != nil {
		t.Fatalf("get(false) = %p", got)
	}
	for i := 1; i < 256; i++ {
		if got := r.get(true); got != q {
			t.Fatalf("use %d: %p, want %p", i, got, q)
		}
	}
	if got := r.get(true); got != nil {
		t.Fatalf("use 256: %p, want nil (looked up again)", got)
	}
}
