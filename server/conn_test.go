package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

// TestInlineWriteOverflowKeepsOrder: a subscriber that stops reading fills
// its socket; the publisher's read loop writes what the socket takes itself
// (kick), and a writer goroutine takes over the rest and what follows. Once
// the subscriber reads again, every message arrives once, in order.
func TestInlineWriteOverflowKeepsOrder(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		sub := connected(t, srv, tr, withRcvBuf(4096))
		sub.subscribe("/topic/order", "s")
		bc := onlyConn(t, srv)
		shrinkSendBuffer(t, bc.nc)
		sub.pause()

		const n = 300
		pad := strings.Repeat("p", 2000)
		pub := connected(t, srv, tr)
		for i := range n {
			pub.sendFrame(frame.SEND, fmt.Sprintf("m%03d %s", i, pad), "destination", "/topic/order")
		}
		pub.sync()
		// 600 KB do not fit in the two small socket buffers: a writer
		// holds the rest, waiting for the subscriber.
		waitFor(t, "the subscriber's output to wait for the socket", func() bool {
			bc.mu.Lock()
			defer bc.mu.Unlock()
			return bc.writing && bc.heldLocked() > 64<<10
		})
		sub.resume()
		for i := range n {
			want := fmt.Sprintf("m%03d %s", i, pad)
			if f := sub.expect(frame.MESSAGE); string(f.Body) != want {
				t.Fatalf("message %d: got %.8q, want %.8q", i, f.Body, want)
			}
		}
		sub.sync()
		// The RECEIPT may reach the client before its writer has noted
		// the write; then the writer ends, holding nothing.
		waitFor(t, "the subscriber's writer to end with nothing held", func() bool {
			bc.mu.Lock()
			defer bc.mu.Unlock()
			return !bc.writing && bc.heldLocked() == 0 && bc.out == nil
		})
	})
}

// TestInlineOwnWriteOverflowKeepsOrder: a client's own output (here its
// RECEIPTs) is written by its read loop itself; what the socket does not
// take goes to a writer goroutine, and everything arrives once, in order.
func TestInlineOwnWriteOverflowKeepsOrder(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr, withRcvBuf(4096))
		bc := onlyConn(t, srv)
		shrinkSendBuffer(t, bc.nc)
		c.pause()

		const n = 3000 // about 80 KB of RECEIPTs
		for i := range n {
			c.sendFrame(frame.SEND, "x", "destination", "/topic/nobody", "receipt", fmt.Sprintf("r%04d", i))
		}
		waitFor(t, "the client's own output to wait for the socket", func() bool {
			bc.mu.Lock()
			defer bc.mu.Unlock()
			return bc.writing && bc.heldLocked() > 16<<10
		})
		c.resume()
		for i := range n {
			want := fmt.Sprintf("r%04d", i)
			if id, _ := c.expect(frame.RECEIPT).Get("receipt-id"); string(id) != want {
				t.Fatalf("RECEIPT %d: receipt-id %q, want %q", i, id, want)
			}
		}
		waitFor(t, "the writer to end with nothing held", func() bool {
			bc.mu.Lock()
			defer bc.mu.Unlock()
			return !bc.writing && bc.heldLocked() == 0 && bc.out == nil
		})
	})
}

// TestBusyReadLoopHandsOffAfterGrace: a client whose frames come in quick
// succession makes its connection busy (its read loop waits idleGrace for
// the next bytes in place, see busy); once it goes quiet for longer, the
// read loop still moves to a fresh goroutine that waits without a buffer,
// and later frames are handled there.
func TestBusyReadLoopHandsOffAfterGrace(t *testing.T) {
	if !peekSupported {
		t.Skip("no buffer-less wait on this platform")
	}
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.subscribe("/topic/busy", "s")
		for range 2 * busyAfter {
			c.sync()
		}
		waitHandedOff(t, "the busy read loop in a fresh goroutine")
		pub := connected(t, srv, tr)
		pub.publish("/topic/busy", "after the grace")
		c.expectMessage("after the grace")
		c.sync()
	})
}

// TestInlineWriteAfterWriteDeadlinePassed: a writer goroutine arms a write
// deadline writeTimeout ahead and leaves it armed when it ends; a
// connection that stays quiet for longer has one in the past. The next
// output written inline (kick) must still go out: the passed deadline is
// no write error, it only sends the output to a writer goroutine, which
// arms a fresh one.
func TestInlineWriteAfterWriteDeadlinePassed(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		sub := connected(t, srv, tr)
		sub.subscribe("/topic/late", "s")
		bc := onlyConn(t, srv)
		// What a writer that ended writeTimeout ago leaves behind.
		bc.nc.SetWriteDeadline(time.Now().Add(-time.Second))
		pub := connected(t, srv, tr)
		for i := range 3 {
			pub.publish("/topic/late", fmt.Sprintf("after the deadline %d", i))
			sub.expectMessage(fmt.Sprintf("after the deadline %d", i))
		}
		sub.sync()
		if st := bc.closedState(); st != Open {
			t.Fatalf("subscriber closed (%s), want open", st)
		}
	})
}
