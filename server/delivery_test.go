package server

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

// TestTopicCumulativeAckConcurrentPublishers: ack:client topic subscribers
// that acknowledge cumulatively (some every message, some every few) while
// four publishers send at once get every message and no ERROR: a cumulative
// ACK covers exactly the messages the client has seen, because the
// unacknowledged list is in wire order.
func TestTopicCumulativeAckConcurrentPublishers(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		const dest = "/topic/cumulative"
		const pubs, per = 4, 1000
		const total = pubs * per
		every := []int{1, 1, 2, 3, 5, 7, 10, 16, 1, 4} // ACK every n-th message
		subs := make([]*client, len(every))
		for i := range subs {
			subs[i] = connected(t, srv, tr)
			subs[i].subscribe(dest, "s", "ack", "client")
		}
		type result struct {
			got, errors int
			err         error
		}
		results := make([]result, len(subs))
		var wg sync.WaitGroup
		for i, c := range subs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := &results[i]
				seen := map[string]bool{}
				deadline := time.Now().Add(60 * time.Second)
				for done := false; !done; {
					ev, ended, err := c.next(time.Until(deadline))
					if ended || err != nil {
						r.err = fmt.Errorf("after %d messages: ended=%v err=%v (%v)", r.got, ended, err, r.err)
						return
					}
					if ev.kind != evFrame {
						continue
					}
					switch ev.f.Command {
					case frame.ERROR:
						r.errors++
						r.err = fmt.Errorf("ERROR after %d messages: %s", r.got, fmtFrame(ev.f))
						return
					case frame.RECEIPT: // of the last ACK
						done = true
						continue
					case frame.MESSAGE:
					default:
						r.err = fmt.Errorf("unexpected %s", fmtFrame(ev.f))
						return
					}
					body := string(ev.f.Body)
					if seen[body] {
						r.err = fmt.Errorf("duplicate %s", body)
						return
					}
					seen[body] = true
					r.got++
					kv := []string{"id", ev.f.GetString("ack")}
					if r.got == total {
						kv = append(kv, "receipt", "last")
					} else if r.got%every[i] != 0 {
						continue
					}
					if err := c.write(c.encode(frame.ACK, "", kv...)); err != nil {
						// Closed: read on, for the ERROR that says why.
						r.err = err
						deadline = time.Now().Add(waitTimeout)
					}
				}
			}()
		}
		var pwg sync.WaitGroup
		for p := range pubs {
			pub := connected(t, srv, tr)
			pwg.Add(1)
			go func() {
				defer pwg.Done()
				for k := range per {
					raw := pub.encode(frame.SEND, "p"+strconv.Itoa(p)+"-"+strconv.Itoa(k), "destination", dest)
					if err := pub.write(raw); err != nil {
						t.Errorf("publisher %d: %v", p, err)
						return
					}
				}
			}()
		}
		pwg.Wait()
		wg.Wait()
		for i, r := range results {
			if r.err != nil || r.got != total || r.errors != 0 {
				t.Errorf("subscriber %d (ACK every %d): %d of %d messages, %d ERRORs, %v", i, every[i], r.got, total, r.errors, r.err)
			}
		}
		if n := srv.stats.acks.Load(); n != uint64(total*len(subs)) {
			t.Errorf("acknowledged %d messages, want %d", n, total*len(subs))
		}
	})
}

// TestNackClientCumulative: in ack mode client a NACK, like an ACK, covers
// the message it names and every earlier unacknowledged one (STOMP 1.2);
// all of them come back at once, in order, flagged redelivered, with no
// further SEND needed.
func TestNackClientCumulative(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		a := connected(t, srv, tr)
		a.subscribe("/queue/nack", "a", "ack", "client", "prefetch-count", "10")
		pub := connected(t, srv, tr)
		pub.publish("/queue/nack", "m1")
		pub.publish("/queue/nack", "m2")
		a.expectMessage("m1")
		m2 := a.expectMessage("m2")
		id := a.newReceipt()
		a.sendFrame(frame.NACK, "", "id", ackID(t, m2), "receipt", id)
		got := a.messagesUntilReceipt(id)
		var bodies []string
		for _, m := range got {
			bodies = append(bodies, string(m.Body))
			if m.GetString("redelivered") != "true" {
				t.Errorf("redelivery without redelivered:true: %s", fmtFrame(m))
			}
		}
		if !slices.Equal(bodies, []string{"m1", "m2"}) {
			t.Fatalf("after NACK of m2 in client mode got %q, want [m1 m2]", bodies)
		}
		if n := srv.stats.nacks.Load(); n != 2 {
			t.Errorf("nacks = %d, want 2", n)
		}
		// Acknowledging the second redelivery covers both: nothing is left.
		a.request(frame.ACK, "", "id", ackID(t, got[1]))
		a.sync()
		if qs := srv.router.queueStats(); len(qs) != 1 || qs[0].Depth != 0 {
			t.Errorf("queue after ACK: %+v", qs)
		}
		a.request(frame.UNSUBSCRIBE, "", "id", "a")
		b := connected(t, srv, tr)
		b.subscribe("/queue/nack", "b") // nothing to redeliver: RECEIPT first
	})
}

// TestPatternQueueUnsubscribe: UNSUBSCRIBE of a pattern queue subscription
// holding unacknowledged messages of two queues gives them to the other
// consumer of one queue and back to the other queue, never to itself.
func TestPatternQueueUnsubscribe(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		pub := connected(t, srv, tr)
		for _, q := range []string{"a", "b"} {
			for i := 1; i <= 2; i++ {
				pub.publish("/queue/x."+q, q+strconv.Itoa(i))
			}
		}
		a := connected(t, srv, tr)
		a.subscribeNoWait("/queue/x.*", "pat", "ack", "client-individual")
		var held []string
		for range 4 {
			held = append(held, string(a.expect(frame.MESSAGE).Body))
		}
		a.sync()
		slices.Sort(held)
		if !slices.Equal(held, []string{"a1", "a2", "b1", "b2"}) {
			t.Fatalf("pattern consumer got %q", held)
		}
		other := connected(t, srv, tr)
		other.subscribe("/queue/x.a", "xa", "ack", "client-individual") // all are with a: nothing yet

		id := a.newReceipt()
		a.sendFrame(frame.UNSUBSCRIBE, "", "id", "pat", "receipt", id)
		if ms := a.messagesUntilReceipt(id); len(ms) != 0 {
			t.Fatalf("%d MESSAGEs came back to the unsubscribing consumer, first %s", len(ms), fmtFrame(ms[0]))
		}
		a.sync() // and none after the RECEIPT

		var taken []*frame.Frame
		for _, body := range []string{"a1", "a2"} {
			m := other.expectMessage(body)
			if m.GetString("redelivered") != "true" || m.GetString("subscription") != "xa" {
				t.Errorf("%s: want redelivered:true for subscription xa, got %s", body, fmtFrame(m))
			}
			taken = append(taken, m)
		}
		for _, m := range taken {
			other.request(frame.ACK, "", "id", ackID(t, m))
		}
		other.sync()
		depth := map[string]int{}
		for _, q := range srv.router.queueStats() {
			depth[q.Name] = q.Depth
		}
		if depth["/queue/x.a"] != 0 || depth["/queue/x.b"] != 2 {
			t.Fatalf("queue depths after UNSUBSCRIBE: %v, want x.a 0 and x.b 2", depth)
		}
		late := connected(t, srv, tr)
		late.subscribeNoWait("/queue/x.b", "xb")
		for _, body := range []string{"b1", "b2"} {
			if m := late.expectMessage(body); m.GetString("redelivered") != "true" {
				t.Errorf("%s: want redelivered:true, got %s", body, fmtFrame(m))
			}
		}
		late.sync()
		a.sync()
	})
}

// TestTopicPrefetch: a client-ack topic subscription with prefetch-count 5
// gets 5 of 10 messages; each ACK or NACK (which drops a topic message)
// lets one more through, in order.
func TestTopicPrefetch(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		for _, mode := range []string{"client-individual", "client"} {
			t.Run(mode, func(t *testing.T) {
				srv := startServer(t, nil)
				c := connected(t, srv, tr)
				c.subscribe("/topic/pf", "s", "ack", mode, "prefetch-count", "5")
				pub := connected(t, srv, tr)
				for i := range 10 {
					pub.publish("/topic/pf", "m"+strconv.Itoa(i))
				}
				var ms []*frame.Frame
				for i := range 5 {
					ms = append(ms, c.expectMessage("m"+strconv.Itoa(i)))
				}
				c.sync() // five is the prefetch: the other five are held
				if n := srv.router.heldMsgs.Load(); n != 5 {
					t.Errorf("held messages = %d, want 5", n)
				}
				// ACK two (in client mode, the ACK of m1 covers m0): two more.
				var kv []string
				if mode == "client" {
					kv = []string{"id", ackID(t, ms[1])}
				} else {
					c.sendFrame(frame.ACK, "", "id", ackID(t, ms[0]))
					kv = []string{"id", ackID(t, ms[1])}
				}
				id := c.newReceipt()
				c.sendFrame(frame.ACK, "", append(kv, "receipt", id)...)
				got := c.messagesUntilReceipt(id)
				if len(got) != 2 || string(got[0].Body) != "m5" || string(got[1].Body) != "m6" {
					t.Fatalf("after acknowledging two: got %d messages %v, want m5 m6", len(got), got)
				}
				ms = append(ms, got...)
				c.sync()
				// NACK one: the topic message is dropped, and one more comes.
				id = c.newReceipt()
				c.sendFrame(frame.NACK, "", "id", ackID(t, ms[2]), "receipt", id)
				got = c.messagesUntilReceipt(id)
				if len(got) != 1 || string(got[0].Body) != "m7" {
					t.Fatalf("after a NACK: got %v, want m7", got)
				}
				ms = append(ms, got...)
				// Acknowledge everything delivered: the last two come.
				for _, m := range ms[3:] {
					c.sendFrame(frame.ACK, "", "id", ackID(t, m))
				}
				c.expectMessage("m8")
				last := c.expectMessage("m9")
				c.request(frame.ACK, "", "id", ackID(t, last))
				c.sync()
				if n, b := srv.router.heldMsgs.Load(), srv.router.heldBytes.Load(); n != 0 || b != 0 {
					t.Errorf("held after all delivered: %d messages, %d bytes", n, b)
				}
			})
		}
	})
}

// TestTopicPrefetchDefault: without a prefetch header, a client-ack topic
// subscription gets Options.Prefetch messages at a time (like a queue).
func TestTopicPrefetchDefault(t *testing.T) {
	srv := startServer(t, func(o *Options) { o.Prefetch = 3 })
	c := connected(t, srv, "tcp")
	c.subscribe("/topic/d", "s", "ack", "client-individual")
	auto := connected(t, srv, "tcp")
	auto.subscribe("/topic/d", "auto") // ack:auto has no prefetch
	pub := connected(t, srv, "tcp")
	for i := range 5 {
		pub.publish("/topic/d", "m"+strconv.Itoa(i))
	}
	for i := range 5 {
		auto.expectMessage("m" + strconv.Itoa(i))
	}
	first := c.expectMessage("m0")
	c.expectMessage("m1")
	c.expectMessage("m2")
	c.sync()
	c.sendFrame(frame.ACK, "", "id", ackID(t, first))
	c.expectMessage("m3")
	c.sync()
}

// TestTopicHeldBounded: messages held for prefetch credit count against
// the pending-bytes cap; past it the subscriber is disconnected as a slow
// consumer, and what it held is freed. An UNSUBSCRIBE frees them too.
func TestTopicHeldBounded(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		const limit = 64 << 10
		srv := startServer(t, func(o *Options) { o.MaxPendingBytes = limit })
		body := strings.Repeat("x", 4<<10)

		// UNSUBSCRIBE frees the held messages.
		u := connected(t, srv, tr)
		u.subscribe("/topic/held", "u", "ack", "client-individual", "prefetch-count", "1")
		pub := connected(t, srv, tr)
		for range 4 {
			pub.publish("/topic/held", body)
		}
		u.expectMessage(body)
		u.sync()
		if n := srv.router.heldMsgs.Load(); n != 3 {
			t.Fatalf("held = %d, want 3", n)
		}
		u.request(frame.UNSUBSCRIBE, "", "id", "u")
		if n, b := srv.router.heldMsgs.Load(), srv.router.heldBytes.Load(); n != 0 || b != 0 {
			t.Fatalf("after UNSUBSCRIBE %d messages (%d bytes) still held", n, b)
		}

		// Past the cap: disconnected as a slow consumer.
		c := connected(t, srv, tr)
		c.subscribe("/topic/held", "s", "ack", "client-individual", "prefetch-count", "1")
		sent := 0
		for sent < 2*limit/len(body) {
			pub.publish("/topic/held", body)
			sent++
		}
		c.expectMessage(body)
		e := c.expectError("slow consumer")
		if !strings.Contains(e.GetString("message"), "pending output over "+strconv.Itoa(limit)) {
			t.Errorf("ERROR: %s", fmtFrame(e))
		}
		c.expectClosed()
		if n := srv.stats.slowConsumers.Load(); n != 1 {
			t.Errorf("slow consumers = %d, want 1", n)
		}
		waitFor(t, "held messages freed", func() bool {
			return srv.router.heldMsgs.Load() == 0 && srv.router.heldBytes.Load() == 0
		})
		pub.sync()
	})
}

// TestPatternQueueAckFreesCredit: the credit an ACK frees on a pattern
// queue subscription serves any of its queues, not only the queue of the
// acknowledged message.
func TestPatternQueueAckFreesCredit(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		pub := connected(t, srv, tr)
		pub.publish("/queue/y.a", "a")
		pub.publish("/queue/y.b", "b")
		c := connected(t, srv, tr)
		c.subscribeNoWait("/queue/y.*", "p", "ack", "client-individual", "prefetch-count", "1")
		first := c.expect(frame.MESSAGE)
		c.sync() // one unacknowledged message is the limit
		id := c.newReceipt()
		c.sendFrame(frame.ACK, "", "id", ackID(t, first), "receipt", id)
		other := map[string]string{"a": "b", "b": "a"}[string(first.Body)]
		c.freedMessage(other, id) // the other queue's message
	})
}
