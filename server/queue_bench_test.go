package server

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkQueueDispatchAck is the queue path of stompbench's queue
// scenario without the parser and the message's encoding (made once, the
// messages are published again once acknowledged): 4 client-individual
// consumers hold full prefetch windows; each round publishes 16 messages
// (no consumer has credit: they wait in the queue), then one consumer (in
// turn) acknowledges its 16 oldest deliveries in one read batch, whose
// flush dispatches the 16 waiting messages to it. One op is one message:
// enqueue, dispatch and ACK. The consumers' output is dropped as if
// written, without their writers: the connection's I/O is measured
// elsewhere.
func BenchmarkQueueDispatchAck(b *testing.B) {
	const round = 16
	for _, prefetch := range []int{100, 1000} {
		b.Run(strconv.Itoa(prefetch), func(b *testing.B) {
			s := benchServer(b)
			var bt batch
			subs := make([]*subscription, 4)
			cons := make([]*conn, len(subs))
			for i := range subs {
				cons[i] = benchConn(s)
				cons[i].writing = true // no writer: the benchmark drops the output (see drop)
				subs[i] = newSubscription(cons[i], "q", "/queue/bench", ackIndividual, prefetch, 1)
				s.router.subscribe(subs[i], &bt)
			}
			f := benchSend("/queue/bench")
			free := make([]*message, 0, len(subs)*prefetch+round)
			for range cap(free) {
				m := s.router.newMessage(f, "/queue/bench", time.Time{})
				m.pooled = false // published again once acknowledged
				free = append(free, m)
			}
			pub := benchConn(s)
			for _, m := range free[round:] { // fill every window
				s.router.publish(m, &bt)
			}
			free = free[:round]
			bt.flush()
			drop := func(c *conn) {
				c.mu.Lock()
				c.out = c.out[:0]
				c.mu.Unlock()
			}
			for _, c := range cons {
				drop(c)
			}
			oldest := func(sub *subscription) *message {
				sub.mu.Lock()
				defer sub.mu.Unlock()
				return sub.unacked.d.Front().m
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += round {
				for _, m := range free {
					s.router.publish(m, &pub.batch)
				}
				free = free[:0]
				pub.batch.flush()
				sub := subs[(i/round)%len(subs)]
				c := cons[(i/round)%len(subs)]
				for range round {
					m := oldest(sub)
					if ok, _ := s.router.ack(sub, m.id, false, &c.batch); !ok {
						b.Fatal("ack of the oldest delivery failed")
					}
					free = append(free, m)
				}
				c.batch.flush()
				drop(c)
			}
		})
	}
}
