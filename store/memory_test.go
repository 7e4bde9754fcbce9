package store

import (
	"testing"

	"github.com/stompica/stompica/internal/deque"
)

// TestMemoryQueueOrder: messages come out in the order appended; ones put
// back come out first, in the order they were taken, and a put-back that
// undoes a delivery does not count it.
func TestMemoryQueueOrder(t *testing.T) {
	q, err := NewMemory().Open("/queue/a")
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]*Message, 6)
	for i := range msgs {
		msgs[i] = &Message{ID: uint64(i + 1)}
		if err := q.Append(msgs[i], nil); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
	take := func() *Message {
		t.Helper()
		m, err := q.Next()
		if err != nil || m == nil {
			t.Fatalf("next: %v, %v", m, err)
		}
		return m
	}
	a, b, c := take(), take(), take()
	if a.ID != 1 || b.ID != 2 || c.ID != 3 || a.Deliveries != 1 {
		t.Fatalf("took %d %d %d (deliveries %d), want 1 2 3 (1)", a.ID, b.ID, c.ID, a.Deliveries)
	}
	// Back in reverse order: the run keeps its order at the head.
	for _, m := range []*Message{c, b} {
		if err := q.Requeue(m, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Requeue(a, false); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(a); err != nil {
		t.Fatal(err)
	}
	if q.Len() != 6 {
		t.Fatalf("len %d, want 6", q.Len())
	}
	want := []struct {
		id         uint64
		deliveries int
	}{{1, 1}, {2, 2}, {3, 2}, {4, 1}, {5, 1}, {6, 1}}
	for _, w := range want {
		m := take()
		if m.ID != w.id || m.Deliveries != w.deliveries {
			t.Fatalf("took %d (deliveries %d), want %d (%d)", m.ID, m.Deliveries, w.id, w.deliveries)
		}
	}
	if m, err := q.Next(); m != nil || err != nil {
		t.Fatalf("empty queue gave %v, %v", m, err)
	}
	if names, err := NewMemory().Load(); len(names) != 0 || err != nil {
		t.Fatalf("memory Load = %v, %v", names, err)
	}
}

// TestMemoryQueueReleasesRing: a queue 500,000 deep that drains keeps a
// ring of the minimum size.
func TestMemoryQueueReleasesRing(t *testing.T) {
	s := NewMemory()
	q, _ := s.Open("/queue/deep")
	mq := q.(*memoryQueue)
	const depth = 500_000
	m := &Message{}
	for range depth {
		q.Append(m, nil)
	}
	if c := mq.Cap(); c < depth {
		t.Fatalf("ring of %d slots at depth %d", c, depth)
	}
	for q.Len() > 0 {
		q.Next()
	}
	if c := mq.Cap(); c > deque.MinCap {
		t.Errorf("drained queue keeps %d slots, want <= %d", c, deque.MinCap)
	}
	if err := q.Close(); err != nil || s.Close() != nil {
		t.Fatal("close failed")
	}
}

// TestMemoryQueueKeepsRing: a queue whose depth swings between 200 and
// 600 keeps its ring (no allocation per swing); once the depth stays low
// for half a ring of messages taken, the ring shrinks to what it needs.
func TestMemoryQueueKeepsRing(t *testing.T) {
	q, _ := NewMemory().Open("/queue/swings")
	mq := q.(*memoryQueue)
	m := &Message{}
	to := func(depth int) {
		for q.Len() < depth {
			q.Append(m, nil)
		}
		for q.Len() > depth {
			q.Next()
		}
	}
	to(600)
	if c := mq.Cap(); c != 1024 {
		t.Fatalf("600 deep: %d slots, want 1024", c)
	}
	swing := func() {
		to(200)
		to(600)
	}
	if allocs := testing.AllocsPerRun(20, swing); allocs != 0 || mq.Cap() != 1024 {
		t.Errorf("%v allocations per swing between 200 and 600 deep, and %d slots; want 0 and 1024", allocs, mq.Cap())
	}
	// Staying 200 deep (one in, one out): the ring is halved once half a
	// ring of messages (512) were taken since it was over 512 deep (the
	// last 400 on the way down from 600 count), and not before.
	to(200)
	for range 100 {
		q.Append(m, nil)
		q.Next()
	}
	if c := mq.Cap(); c != 1024 {
		t.Fatalf("%d slots after 500 messages taken at most 512 deep, want 1024", c)
	}
	for range 12 {
		q.Append(m, nil)
		q.Next()
	}
	if c := mq.Cap(); c != 512 {
		t.Errorf("%d slots after 512 messages taken at most 512 deep, want 512", c)
	}
	to(0)
	if c := mq.Cap(); c != deque.MinCap {
		t.Errorf("an empty queue keeps %d slots, want %d", c, deque.MinCap)
	}
}

// TestMemoryAppendAllocs: the memory store's hot path allocates nothing.
func TestMemoryAppendAllocs(t *testing.T) {
	q, _ := NewMemory().Open("/queue/a")
	m := &Message{}
	for range 64 { // grow the ring first
		q.Append(m, nil)
	}
	for q.Len() > 0 {
		q.Next()
	}
	allocs := testing.AllocsPerRun(1000, func() {
		q.Append(m, nil)
		got, _ := q.Next()
		q.Requeue(got, true)
		got, _ = q.Next()
		q.Ack(got)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per append/next/requeue/ack, want 0", allocs)
	}
}

func BenchmarkMemoryQueue(b *testing.B) {
	q, _ := NewMemory().Open("/queue/a")
	m := &Message{}
	b.ReportAllocs()
	for range b.N {
		q.Append(m, nil)
		got, _ := q.Next()
		q.Ack(got)
	}
}
