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
type memoryQueue struct {
	msgs deque.Deque[*Message]
}

func (q *memoryQueue) Append(m *Message, _ Done) error {
	q.msgs.PushBack(m)
	return nil
}

func (q *memoryQueue) Next() (*Message, error) {
	if q.msgs.Len() == 0 {
		return nil, nil
	}
	m := q.msgs.PopFront()
	m.Deliveries++
	return m, nil
}

func (q *memoryQueue) Ack(*Message) error { return nil }

func (q *memoryQueue) Requeue(m *Message, delivered bool) error {
	if !delivered {
		m.Deliveries--
	}
	q.msgs.PushFront(m)
	return nil
}

func (q *memoryQueue) Len() int { return q.msgs.Len() }

func (q *memoryQueue) Close() error {
	q.msgs.Reset()
	return nil
}

// Cap is the number of slots the queue's ring holds in memory.
func (q *memoryQueue) Cap() int { return q.msgs.Cap() }
