package server

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

func TestQueueRoundRobin(t *testing.T) {
	for _, q := range []string{"/queue/work", "#work"} {
		t.Run(q, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr string) {
				srv := startServer(t, nil)
				var cons []*client
				for i := range 3 {
					c := connected(t, srv, tr)
					c.subscribe(q, "c"+strconv.Itoa(i))
					cons = append(cons, c)
				}
				pub := connected(t, srv, tr)
				const n = 9
				for i := range n {
					pub.publish(q, "job "+strconv.Itoa(i))
				}
				var all []string
				for i, c := range cons {
					for range n / len(cons) {
						m := c.expect(frame.MESSAGE)
						if got := m.GetString("destination"); got != q {
							t.Errorf("destination = %q, want %q", got, q)
						}
						if got := m.GetString("subscription"); got != "c"+strconv.Itoa(i) {
							t.Errorf("subscription = %q, want c%d", got, i)
						}
						all = append(all, string(m.Body))
					}
					c.sync() // exactly n/3 each: round-robin
				}
				slices.Sort(all)
				var want []string
				for i := range n {
					want = append(want, "job "+strconv.Itoa(i))
				}
				slices.Sort(want)
				if !slices.Equal(all, want) {
					t.Errorf("consumers got %q, want each of %q exactly once", all, want)
				}
			})
		})
	}
}

func TestQueueKeepsMessagesUntilConsumer(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		pub := connected(t, srv, tr)
		for i := range 3 {
			pub.publish("#jobs", "early "+strconv.Itoa(i))
		}
		c := connected(t, srv, tr)
		c.subscribeNoWait("#jobs", "j")
		for i := range 3 {
			m := c.expectMessage("early " + strconv.Itoa(i))
			if m.Has("redelivered") {
				t.Errorf("first delivery marked redelivered: %s", fmtFrame(m))
			}
		}
		c.sync()
		// Consumed with auto ack: a second consumer gets nothing.
		d := connected(t, srv, tr)
		d.subscribe("#jobs", "j")
	})
}

func TestQueueAutoAckConsumed(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		a := connected(t, srv, tr)
		a.subscribe("/queue/auto", "a")
		pub := connected(t, srv, tr)
		pub.publish("/queue/auto", "m")
		a.expectMessage("m")
		a.sendFrame(frame.DISCONNECT, "", "receipt", "bye")
		a.expectReceipt("bye")
		a.expectClosed()
		b := connected(t, srv, tr)
		b.subscribe("/queue/auto", "b") // nothing to redeliver: RECEIPT comes first
	})
}

func TestQueueAckClientCumulative(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		a := connected(t, srv, tr)
		a.subscribe("/queue/cum", "a", "ack", "client")
		pub := connected(t, srv, tr)
		for i := 1; i <= 5; i++ {
			pub.publish("/queue/cum", "m"+strconv.Itoa(i))
		}
		var ms []*frame.Frame
		for i := 1; i <= 5; i++ {
			ms = append(ms, a.expectMessage("m"+strconv.Itoa(i)))
		}
		// ACK of the third acknowledges 1..3; 4 and 5 come back when the
		// consumer leaves.
		a.request(frame.ACK, "", "id", ackID(t, ms[2]))
		a.sendFrame(frame.DISCONNECT, "", "receipt", "bye")
		a.expectReceipt("bye")
		a.expectClosed()
		b := connected(t, srv, tr)
		b.subscribeNoWait("/queue/cum", "b")
		for _, body := range []string{"m4", "m5"} {
			m := b.expectMessage(body)
			if m.GetString("redelivered") != "true" {
				t.Errorf("%s after the consumer left: want redelivered:true, got %s", body, fmtFrame(m))
			}
		}
		b.sync() // m1..m3 were acknowledged: not redelivered
	})
}

func TestQueueAckClientCumulativeOldID(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		a := connected(t, srv, tr)
		a.subscribe("/queue/cum", "a", "ack", "client")
		pub := connected(t, srv, tr)
		pub.publish("/queue/cum", "m1")
		pub.publish("/queue/cum", "m2")
		m1 := a.expectMessage("m1")
		m2 := a.expectMessage("m2")
		a.request(frame.ACK, "", "id", ackID(t, m2))
		// m1 was acknowledged cumulatively: acknowledging it again is an error.
		a.sendFrame(frame.ACK, "", "id", ackID(t, m1), "receipt", "again")
		if got := a.expect(frame.ERROR).GetString("receipt-id"); got != "again" {
			t.Errorf("receipt-id = %q, want again", got)
		}
		a.expectClosed()
	})
}

func TestQueueAckClientIndividual(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		a := connected(t, srv, tr)
		a.subscribe("/queue/ind", "a", "ack", "client-individual")
		pub := connected(t, srv, tr)
		pub.publish("/queue/ind", "m1")
		pub.publish("/queue/ind", "m2")
		m1 := a.expectMessage("m1")
		m2 := a.expectMessage("m2")
		if ackID(t, m1) == ackID(t, m2) {
			t.Fatalf("two deliveries share the ack id %q", ackID(t, m1))
		}
		// ACK the second only: the first stays unacknowledged.
		a.request(frame.ACK, "", "id", ackID(t, m2))
		// NACK the first: it comes back, flagged.
		a.sendFrame(frame.NACK, "", "id", ackID(t, m1), "receipt", "nack")
		r := a.expectMessage("m1")
		if r.GetString("redelivered") != "true" {
			t.Errorf("NACKed message: want redelivered:true, got %s", fmtFrame(r))
		}
		a.expectReceipt("nack")
		a.request(frame.ACK, "", "id", ackID(t, r))
		a.sendFrame(frame.DISCONNECT, "", "receipt", "bye")
		a.expectReceipt("bye")
		a.expectClosed()
		b := connected(t, srv, tr)
		b.subscribe("/queue/ind", "b") // everything was acknowledged
	})
}

func TestQueueNackWithTwoConsumers(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		a := connected(t, srv, tr)
		a.subscribe("/queue/n", "a", "ack", "client-individual", "prefetch-count", "1")
		pub := connected(t, srv, tr)
		pub.publish("/queue/n", "m1")
		m1 := a.expectMessage("m1")
		b := connected(t, srv, tr)
		b.subscribe("/queue/n", "b", "ack", "client-individual") // m1 is with a: nothing for b
		// NACK: m1 goes back and to exactly one consumer, flagged.
		a.sendFrame(frame.NACK, "", "id", ackID(t, m1), "receipt", "nack")
		got := a.messagesUntilReceipt("nack")
		got = append(got, b.messagesUntilReceipt(b.sendSync())...)
		if len(got) != 1 || string(got[0].Body) != "m1" || got[0].GetString("redelivered") != "true" {
			t.Fatalf("after NACK want m1 redelivered:true to one consumer, got %d messages: %v", len(got), got)
		}
	})
}

func TestQueueRedeliverOnDisconnect(t *testing.T) {
	for _, how := range []string{"disconnect", "drop"} {
		t.Run(how, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr string) {
				srv := startServer(t, nil)
				a := connected(t, srv, tr)
				a.subscribe("/queue/r", "a", "ack", "client-individual")
				pub := connected(t, srv, tr)
				pub.publish("/queue/r", "m1")
				pub.publish("/queue/r", "m2")
				a.expectMessage("m1")
				a.expectMessage("m2")
				b := connected(t, srv, tr)
				b.subscribe("/queue/r", "b") // both are with a
				if how == "disconnect" {
					a.sendFrame(frame.DISCONNECT, "", "receipt", "bye")
					a.expectReceipt("bye")
					a.expectClosed()
				} else {
					a.nc.Close() // the client vanishes
				}
				for _, body := range []string{"m1", "m2"} {
					m := b.expectMessage(body)
					if m.GetString("redelivered") != "true" {
						t.Errorf("%s: want redelivered:true, got %s", body, fmtFrame(m))
					}
					if m.GetString("subscription") != "b" {
						t.Errorf("%s: subscription = %q, want b", body, m.GetString("subscription"))
					}
				}
				b.sync()
			})
		})
	}
}

// TestQueueUnackedNotLostOnDisconnect: unacknowledged messages of a
// departing connection must go to a live consumer, never to another
// subscription of the same departing connection (where they would be lost).
func TestQueueUnackedNotLostOnDisconnect(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		pub := connected(t, srv, tr)
		// Map iteration order decides which subscription is dropped first,
		// so try a few times.
		for i := range 8 {
			q := "/queue/lost" + strconv.Itoa(i)
			a := connected(t, srv, tr)
			a.subscribe(q, "held", "ack", "client-individual")
			pub.publish(q, "m")
			a.expectMessage("m")
			a.subscribe(q, "auto") // a second, auto-ack consumer on the same connection
			a.sendFrame(frame.DISCONNECT, "", "receipt", "bye")
			a.expectReceipt("bye")
			a.expectClosed()
			b := connected(t, srv, tr)
			b.subscribeNoWait(q, "b")
			m := b.expectMessage("m")
			if m.GetString("redelivered") != "true" {
				t.Errorf("want redelivered:true, got %s", fmtFrame(m))
			}
		}
	})
}

func TestQueuePrefetch(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		a := connected(t, srv, tr)
		a.subscribe("/queue/pf", "a", "ack", "client-individual", "prefetch-count", "1")
		pub := connected(t, srv, tr)
		pub.publish("/queue/pf", "m1")
		pub.publish("/queue/pf", "m2")
		m1 := a.expectMessage("m1")
		a.sync() // m2 waits: one unacknowledged message is the limit
		a.sendFrame(frame.ACK, "", "id", ackID(t, m1), "receipt", "ack1")
		m2 := a.freedMessage("m2", "ack1") // the ACK frees the slot
		a.request(frame.ACK, "", "id", ackID(t, m2))
		a.sync()
	})
}

func TestQueuePrefetchActiveMQHeader(t *testing.T) {
	srv := startServer(t, nil)
	a := connected(t, srv, "tcp")
	a.subscribe("/queue/pf", "a", "ack", "client", "activemq.prefetchSize", "2")
	pub := connected(t, srv, "tcp")
	for i := 1; i <= 3; i++ {
		pub.publish("/queue/pf", "m"+strconv.Itoa(i))
	}
	a.expectMessage("m1")
	m2 := a.expectMessage("m2")
	a.sync()
	a.sendFrame(frame.ACK, "", "id", ackID(t, m2), "receipt", "r")
	a.freedMessage("m3", "r")
}

func TestAckUnknownID(t *testing.T) {
	cases := []struct {
		version string
		cmd     string
		kv      []string
	}{
		{"1.2", frame.ACK, []string{"id", "999-999"}},
		{"1.2", frame.NACK, []string{"id", "999-999"}},
		{"1.2", frame.ACK, []string{"id", "garbage"}},
		{"1.2", frame.ACK, nil},
		{"1.1", frame.ACK, []string{"message-id", "999", "subscription", "a"}},
		{"1.1", frame.NACK, []string{"message-id", "999", "subscription", "a"}},
		{"1.0", frame.ACK, []string{"message-id", "999"}},
	}
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s-%s-%v", tc.version, tc.cmd, tc.kv), func(t *testing.T) {
				c := dial(t, srv, tr)
				c.connect(tc.version)
				c.request(frame.SUBSCRIBE, "", "destination", "/queue/u", "id", "a", "ack", "client-individual")
				c.sendFrame(tc.cmd, "", tc.kv...)
				c.expect(frame.ERROR)
				c.expectClosed()
			})
		}
	})
}

func TestAckAutoSubscription(t *testing.T) {
	// Messages of an auto-ack subscription are not awaiting any ACK.
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := dial(t, srv, tr)
		c.connect("1.1")
		c.subscribe("/queue/auto", "a")
		pub := connected(t, srv, tr)
		pub.publish("/queue/auto", "m")
		m := c.expectMessage("m")
		c.sendFrame(frame.ACK, "", "message-id", m.GetString("message-id"), "subscription", "a")
		c.expect(frame.ERROR)
		c.expectClosed()
	})
}

func TestAck11(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := dial(t, srv, tr)
		c.connect("1.1")
		c.subscribe("/queue/11", "s11", "ack", "client-individual")
		pub := connected(t, srv, tr)
		pub.publish("/queue/11", "m1")
		pub.publish("/queue/11", "m2")
		m1 := c.expectMessage("m1")
		m2 := c.expectMessage("m2")
		if m1.GetString("message-id") == "" || m1.GetString("subscription") != "s11" {
			t.Fatalf("1.1 MESSAGE needs message-id and subscription: %s", fmtFrame(m1))
		}
		c.request(frame.ACK, "", "message-id", m1.GetString("message-id"), "subscription", "s11")
		c.sendFrame(frame.NACK, "", "message-id", m2.GetString("message-id"), "subscription", "s11", "receipt", "n")
		r := c.expectMessage("m2")
		if r.GetString("redelivered") != "true" {
			t.Errorf("want redelivered:true, got %s", fmtFrame(r))
		}
		c.expectReceipt("n")
		c.request(frame.ACK, "", "message-id", r.GetString("message-id"), "subscription", "s11")
		c.sync()
	})
}

func TestAck10(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := dial(t, srv, tr)
		c.connect("")
		c.request(frame.SUBSCRIBE, "", "destination", "/queue/10", "ack", "client")
		pub := connected(t, srv, tr)
		pub.publish("/queue/10", "m1")
		pub.publish("/queue/10", "m2")
		c.expectMessage("m1")
		m2 := c.expectMessage("m2")
		c.request(frame.ACK, "", "message-id", m2.GetString("message-id")) // cumulative: m1 too
		c.sendFrame(frame.DISCONNECT, "", "receipt", "bye")
		c.expectReceipt("bye")
		c.expectClosed()
		d := connected(t, srv, tr)
		d.subscribe("/queue/10", "d") // nothing left
	})
}

// TestQueueDispatchRun drives the router directly: two client-individual
// consumers with prefetch 3 and ten messages. Round-robin hands out 1-6;
// the ACKs of A's three, read in one batch, free its credit, and the
// batch's flush hands it 7, 8 and 9 in one run (B has no credit), in wire
// order in both its output and its unacknowledged list. The memory budget
// counts exactly the messages still waiting, and the stats count every
// delivery and ACK once the batches are flushed.
func TestQueueDispatchRun(t *testing.T) {
	const dest = "/queue/run"
	s := routerServer(t, Options{})
	var b batch
	mk := func(name string) (*conn, *subscription) {
		c := benchConn(s)
		c.writing = true // no writer: the output stays in c.out for the test to read
		sub := newSubscription(c, name, dest, ackIndividual, 3, 1)
		s.router.subscribe(sub, &b)
		return c, sub
	}
	ca, a := mk("a")
	cb, bsub := mk("b")
	f := benchSend(dest)
	ids := make([]uint64, 10)
	sizes := make([]int, 10)
	for i := range ids {
		m := s.router.newMessage(f, dest, time.Time{})
		ids[i], sizes[i] = m.id, len(m.shared)
		s.router.publish(m, &b)
	}
	b.flush()
	// outIDs is the message-ids of the MESSAGEs in c's output, which it
	// then drops.
	outIDs := func(c *conn) []uint64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		var p frame.Parser
		p.Version = frame.Version12
		var got []uint64
		for buf := c.out; len(buf) > 0; {
			fr, n, err := p.Parse(buf)
			if err != nil || fr == nil {
				t.Fatalf("output does not parse: %v", err)
			}
			id, _ := strconv.ParseUint(fr.GetString("message-id"), 10, 64)
			if ack := fr.GetString("ack"); ack != "1-"+strconv.FormatUint(id, 10) {
				t.Errorf("message %d has ack header %q", id, ack)
			}
			got = append(got, id)
			buf = buf[n:]
		}
		c.out = c.out[:0]
		return got
	}
	pending := func(sub *subscription) []uint64 {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		var got []uint64
		for u := range sub.unacked.all() {
			got = append(got, u.id)
		}
		return got
	}
	check := func(what string, got, want []uint64) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	gate := func(msgs int) { // the last msgs messages wait
		t.Helper()
		size := 0
		for _, n := range sizes[len(sizes)-msgs:] {
			size += n
		}
		if n, by := s.input.msgs.Load(), s.input.bytes.Load(); n != int64(msgs) || by != int64(size) {
			t.Errorf("memory budget counts %d messages, %d bytes; want %d, %d", n, by, msgs, size)
		}
	}
	check("A's first deliveries", outIDs(ca), []uint64{ids[0], ids[2], ids[4]})
	check("B's first deliveries", outIDs(cb), []uint64{ids[1], ids[3], ids[5]})
	gate(4)

	var ab batch // A's read batch: three ACKs
	for _, id := range pending(a) {
		if ok, err := s.router.ack(a, id, false, &ab); !ok || err != nil {
			t.Fatalf("ack %d: %v, %v", id, ok, err)
		}
	}
	if n := s.stats.acks.Load(); n != 0 {
		t.Errorf("%d ACKs counted before the batch is flushed", n)
	}
	ab.flush()
	check("A's run after its ACKs", outIDs(ca), ids[6:9])
	check("A's unacknowledged list", pending(a), ids[6:9])
	check("B's output meanwhile", outIDs(cb), nil)
	gate(1)

	var bb batch
	for _, id := range pending(bsub) {
		s.router.ack(bsub, id, false, &bb)
	}
	bb.flush()
	check("B after its ACKs", outIDs(cb), ids[9:])
	gate(0)
	if d, n := s.stats.deliveries.Load(), s.stats.acks.Load(); d != 10 || n != 6 {
		t.Errorf("stats: %d deliveries, %d acks; want 10, 6", d, n)
	}
}

// TestQueueDispatchRunPattern: a pattern consumer of two queues never
// holds more than its prefetch, whichever queue hands out: the deliveries
// of a run count against its credit before they reach its list.
func TestQueueDispatchRunPattern(t *testing.T) {
	s := routerServer(t, Options{})
	var b batch
	c := benchConn(s)
	c.writing = true
	sub := newSubscription(c, "p", "/queue/pat.*", ackIndividual, 4, 1)
	s.router.subscribe(sub, &b)
	f := benchSend("/queue/pat.a")
	for i := range 10 {
		dest := "/queue/pat.a"
		if i%2 == 1 {
			dest = "/queue/pat.b"
		}
		s.router.publish(s.router.newMessage(f, dest, time.Time{}), &b)
	}
	b.flush()
	for round := range 3 {
		if n := sub.unacked.len(); n != 4 {
			t.Fatalf("round %d: %d unacknowledged, want the prefetch of 4", round, n)
		}
		sub.mu.Lock()
		first := sub.unacked.d.Front().id
		sub.mu.Unlock()
		s.router.ack(sub, first, false, &b)
		b.flush()
	}
	if n := sub.unacked.len(); n != 4 {
		t.Errorf("%d unacknowledged after 3 ACKs, want 4", n)
	}
	depth := 0
	for _, qs := range s.router.queueStats() {
		depth += qs.Depth
	}
	if depth != 3 {
		t.Errorf("%d messages waiting, want 3", depth)
	}
}
