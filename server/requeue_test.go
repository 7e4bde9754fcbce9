package server

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stompica/stompica/internal/deque"
)

// routerServer is a broker that is not listening, for tests that drive the
// router directly with connections whose writes vanish.
func routerServer(t testing.TB, o Options) *Server {
	t.Helper()
	o.Port = -1
	o.Logger = discardLogger()
	s, err := New(&o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.httpLn.Close() })
	return s
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestQueueRequeueDeep: a consumer holding 10,000 unacknowledged messages
// of a 500,000-deep queue leaves; its messages go back to the head of the
// queue, in their original order, flagged redelivered, in far less than the
// ~8 s of CPU it took when every requeue moved the whole queue.
func TestQueueRequeueDeep(t *testing.T) {
	const held, depth = 10_000, 500_000
	const dest = "/queue/deep"
	s := routerServer(t, Options{MaxPendingBytes: 1 << 30, MaxUnacked: held})
	var b batch
	sub := newSubscription(benchConn(s), "s", dest, ackClient, held, 1)
	s.router.subscribe(sub, &b)
	shared := []byte("message-id:0\ndestination:" + dest + "\ncontent-length:1\n\nx\x00")
	ids := make([]uint64, held)
	for i := range held {
		ids[i] = s.router.nextID.Add(1)
		s.router.publish(&message{id: ids[i], dest: dest, shared: shared}, &b)
	}
	b.flush()
	if n := sub.unacked.len(); n != held {
		t.Fatalf("consumer holds %d messages, want %d", n, held)
	}
	filler := &message{id: s.router.nextID.Add(1), dest: dest, shared: shared}
	for range depth {
		s.router.publish(filler, &b) // waits: the consumer has no credit left
	}

	cpu0, wall0 := cpuTime(t), time.Now()
	s.router.unsubscribe(sub, &b)
	cpu, wall := cpuTime(t)-cpu0, time.Since(wall0)
	b.flush()
	t.Logf("requeue of %d messages into a %d-deep queue: %v CPU, %v wall", held, depth, cpu, wall)
	// Generous: about 10 ms of work without the race detector.
	if cpu > time.Second {
		t.Errorf("requeue took %v of CPU, want well under 1s", cpu)
	}

	qs := s.router.queueStats()
	if len(qs) != 1 || qs[0].Depth != held+depth {
		t.Fatalf("queues after the requeue: %+v, want %s with depth %d", qs, dest, held+depth)
	}
	// A new consumer gets the requeued messages first, in order.
	next := newSubscription(benchConn(s), "n", dest, ackClient, held, 2)
	s.router.subscribe(next, &b)
	b.flush()
	if n := next.unacked.len(); n != held {
		t.Fatalf("new consumer got %d messages, want %d", n, held)
	}
	i := 0
	for u := range next.unacked.all() {
		if u.m.id != ids[i] || !u.m.redelivered {
			t.Fatalf("delivery %d: message %d (redelivered %v), want %d redelivered", i, u.m.id, u.m.redelivered, ids[i])
		}
		i++
	}

	// The queue's memory goes back as it drains.
	q := s.router.queue(dest)
	q.mu.Lock()
	mem := q.st.(interface{ Cap() int }) // the memory store's ring
	ring := mem.Cap()
	for q.depthLocked() > 0 {
		q.take(q.st)
	}
	q.gateSettle()
	drained := mem.Cap()
	q.mu.Unlock()
	if ring < depth || drained > deque.MinCap {
		t.Errorf("queue ring: %d slots at depth %d, %d once drained (want <= %d)", ring, depth, drained, deque.MinCap)
	}
}

// BenchmarkQueueRequeue puts messages back at the head of a queue of the
// given depth (what a NACK or a departing consumer does); one op is one
// message. The cost must not depend on the depth.
func BenchmarkQueueRequeue(b *testing.B) {
	for _, depth := range []int{1_000, 500_000} {
		b.Run(strconv.Itoa(depth), func(b *testing.B) {
			const dest = "/queue/requeue"
			s := routerServer(b, Options{})
			shared := []byte("message-id:0\ndestination:" + dest + "\ncontent-length:1\n\nx\x00")
			q := s.router.queue(dest)
			var bt batch
			filler := &message{dest: dest, shared: shared}
			for range depth {
				q.enqueue(filler, &bt, nil)
			}
			const chunk = 1000
			back := make([]*message, chunk)
			for i := range back {
				back[i] = &message{id: uint64(i + 1), dest: dest, shared: shared}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += chunk {
				k := min(chunk, b.N-i)
				for j := k - 1; j >= 0; j-- {
					q.requeue(back[j], &bt)
				}
				b.StopTimer()
				q.mu.Lock()
				for range k {
					q.take(q.st)
				}
				q.gateSettle()
				q.mu.Unlock()
				b.StartTimer()
			}
		})
	}
}

// TestRequeueToDeletedQueueDispatches: a message put back to a queue that
// was deleted meanwhile goes to the queue of the same name that followed
// it, and out to that queue's consumer, without waiting for another SEND.
func TestRequeueToDeletedQueueDispatches(t *testing.T) {
	s := routerServer(t, Options{})
	old := s.router.queue("/queue/gone")
	if _, err := s.router.deleteQueue("/queue/gone"); err != nil {
		t.Fatal(err)
	}
	var b batch
	c := benchConn(s)
	c.writing = true // no writer: the output stays in c.out
	sub := newSubscription(c, "s", "/queue/gone", ackIndividual, 10, 1)
	s.router.subscribe(sub, &b)
	b.flush()
	m := s.router.newMessage(benchSend("/queue/gone"), "/queue/gone", time.Time{})
	old.requeue(m, &b) // the deleted queue hands it on (a tracked goroutine)
	b.flush()
	waitFor(t, "the message to reach the successor's consumer", func() bool {
		return sub.unacked.len() == 1
	})
}
