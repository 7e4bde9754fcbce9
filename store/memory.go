package store

import "github.com/stompica/stompica/internal/deque"

// NewMemory returns the default store: each queue is a ring of *Message in
// the broker's memory, lost when the process ends. Every operation is O(1)
// whatever the depth, allocates nothing per message, and never fails.
func NewMemory() Store { return memory{} }

type memory struct{}

func (memory) Load() ([]string, error)    { return nil, nil }
func (memory) Open(string) (Queue, error) { return &memoryQueue{}, nil }
func (memory) Close() error               { return nil }

// Volatile marks the memory store (see Volatile).
func (memory) Volatile() {}

// memoryQueue keeps the waiting messages; the ones in flight are the
// broker's (in its consumers' unacknowledged lists) until they come back.
//
// Its ring grows by doubling as messages arrive. It shrinks when the queue
// empties, and before that only once the depth has stayed at most half
// the ring for half a ring of messages taken, and is down to a quarter: a
// depth that swings up and down (producers ahead of consumers, then
// behind) keeps the ring it needs instead of giving it back and growing it
// again on every swing.
type memoryQueue struct {
	msgs deque.Deque[*Message]
	low  int // messages taken since the queue was last over half its ring
}

func (q *memoryQueue) Append(m *Message, _ Done) error {
	q.msgs.PushBack(m)
	q.pushed()
	return nil
}

// pushed notes a message added.
func (q *memoryQueue) pushed() {
	if q.msgs.Len() > q.msgs.Cap()/2 {
		q.low = 0
	}
}

func (q *memoryQueue) Next() (*Message, error) {
	if q.msgs.Len() == 0 {
		return nil, nil
	}
	m := q.msgs.PopFrontKeep()
	q.low++
	if n, c := q.msgs.Len(), q.msgs.Cap(); n == 0 && c > deque.MinCap || q.low >= c/2 && n <= c/4 {
		q.msgs.Shrink()
		q.low = 0
	}
	m.Deliveries++
	return m, nil
}

func (q *memoryQueue) Ack(*Message) error { return nil }

func (q *memoryQueue) Requeue(m *Message, delivered bool) error {
	if !delivered {
		m.Deliveries--
	}
	q.msgs.PushFront(m)
	q.pushed()
	return nil
}

func (q *memoryQueue) Len() int { return q.msgs.Len() }

func (q *memoryQueue) Close() error {
	*q = memoryQueue{}
	return nil
}

// Cap is the number of slots the queue's ring holds in memory.
func (q *memoryQueue) Cap() int { return q.msgs.Cap() }
