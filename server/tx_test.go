package server

import (
	"testing"

	"github.com/stompica/stompica/frame"
)

func TestTxSendDeliveredAtCommit(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		s := connected(t, srv, tr)
		s.subscribe("/topic/tx", "s")
		s.subscribe("/topic/marker", "m")
		pub := connected(t, srv, tr)
		other := connected(t, srv, tr)
		pub.request(frame.BEGIN, "", "transaction", "t1")
		pub.request(frame.SEND, "in tx 1", "destination", "/topic/tx", "transaction", "t1")
		pub.request(frame.SEND, "in tx 2", "destination", "/topic/tx", "transaction", "t1")
		// Not delivered yet: a marker sent after the SENDs arrives first.
		other.publish("/topic/marker", "marker 1")
		s.expectMessage("marker 1")
		pub.request(frame.COMMIT, "", "transaction", "t1")
		m := s.expectMessage("in tx 1")
		if m.Has("transaction") {
			t.Errorf("MESSAGE carries the publisher's transaction header: %s", fmtFrame(m))
		}
		s.expectMessage("in tx 2")
		s.sync()
	})
}

func TestTxAbortDiscards(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		s := connected(t, srv, tr)
		s.subscribe("/topic/tx", "s")
		pub := connected(t, srv, tr)
		pub.request(frame.BEGIN, "", "transaction", "t1")
		pub.request(frame.SEND, "aborted", "destination", "/topic/tx", "transaction", "t1")
		pub.request(frame.ABORT, "", "transaction", "t1")
		pub.publish("/topic/tx", "after abort")
		s.expectMessage("after abort")
		s.sync()
		// The transaction is gone.
		pub.sendFrame(frame.COMMIT, "", "transaction", "t1")
		pub.expectError("transaction")
		pub.expectClosed()
	})
}

func TestTxDisconnectDiscards(t *testing.T) {
	for _, how := range []string{"disconnect", "drop"} {
		t.Run(how, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr string) {
				srv := startServer(t, nil)
				s := connected(t, srv, tr)
				s.subscribe("/topic/tx", "s")
				s.subscribe("/queue/txq", "q")
				pub := connected(t, srv, tr)
				pub.request(frame.BEGIN, "", "transaction", "t1")
				pub.request(frame.SEND, "never", "destination", "/topic/tx", "transaction", "t1")
				pub.request(frame.SEND, "never", "destination", "/queue/txq", "transaction", "t1")
				if how == "disconnect" {
					pub.sendFrame(frame.DISCONNECT, "", "receipt", "bye")
					pub.expectReceipt("bye")
					pub.expectClosed()
				} else {
					pub.close()
				}
				// The broker may notice a dropped connection a little later;
				// a second publisher's message must still be the first to arrive.
				other := connected(t, srv, tr)
				other.publish("/topic/tx", "marker")
				other.publish("/queue/txq", "qmarker")
				s.expectMessage("marker")
				s.expectMessage("qmarker")
				s.sync()
			})
		})
	}
}

func TestTxAckAtCommit(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.subscribe("/queue/txa", "q", "ack", "client-individual", "prefetch-count", "1")
		pub := connected(t, srv, tr)
		pub.publish("/queue/txa", "m1")
		pub.publish("/queue/txa", "m2")
		m1 := c.expectMessage("m1")
		c.request(frame.BEGIN, "", "transaction", "t1")
		c.request(frame.ACK, "", "id", ackID(t, m1), "transaction", "t1")
		c.sync() // the ACK has not taken effect: m2 still waits (prefetch 1)
		c.sendFrame(frame.COMMIT, "", "transaction", "t1", "receipt", "commit")
		c.freedMessage("m2", "commit") // the ACK took effect at COMMIT
	})
}

func TestTxNackAbortKeepsUnacked(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.subscribe("/queue/txn", "q", "ack", "client-individual", "prefetch-count", "1")
		pub := connected(t, srv, tr)
		pub.publish("/queue/txn", "m1")
		pub.publish("/queue/txn", "m2")
		m1 := c.expectMessage("m1")
		c.request(frame.BEGIN, "", "transaction", "t1")
		c.request(frame.NACK, "", "id", ackID(t, m1), "transaction", "t1")
		c.request(frame.ABORT, "", "transaction", "t1")
		c.sync() // no redelivery of m1, and m2 still waits: m1 is still unacknowledged
		c.sendFrame(frame.ACK, "", "id", ackID(t, m1), "receipt", "ack")
		c.freedMessage("m2", "ack")
	})
}

func TestTxUnknown(t *testing.T) {
	cases := []struct {
		name string
		cmd  string
		kv   []string
	}{
		{"send", frame.SEND, []string{"destination", "/topic/x", "transaction", "nope"}},
		{"commit", frame.COMMIT, []string{"transaction", "nope"}},
		{"abort", frame.ABORT, []string{"transaction", "nope"}},
		{"begin-without-id", frame.BEGIN, nil},
		{"commit-without-id", frame.COMMIT, nil},
	}
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c := connected(t, srv, tr)
				c.sendFrame(tc.cmd, "", append(tc.kv, "receipt", "r")...)
				f := c.expectError("transaction")
				if got := f.GetString("receipt-id"); got != "r" {
					t.Errorf("receipt-id = %q, want r", got)
				}
				c.expectClosed()
			})
		}
	})
}

func TestTxUnknownAck(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.subscribe("/queue/u", "q", "ack", "client-individual")
		pub := connected(t, srv, tr)
		pub.publish("/queue/u", "m")
		m := c.expectMessage("m")
		c.sendFrame(frame.ACK, "", "id", ackID(t, m), "transaction", "nope")
		c.expectError("transaction")
		c.expectClosed()
	})
}

func TestTxDuplicateBegin(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.request(frame.BEGIN, "", "transaction", "t1")
		c.sendFrame(frame.BEGIN, "", "transaction", "t1")
		c.expectError("t1")
		c.expectClosed()
	})
}

func TestTxIDReusableAfterCommit(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		for range 3 {
			c.request(frame.BEGIN, "", "transaction", "t")
			c.request(frame.COMMIT, "", "transaction", "t")
		}
	})
}
