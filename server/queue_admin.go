package server

import (
	"errors"
	"slices"
	"strconv"
	"strings"
)

// Queue administration for the management API, the console, DIAG and
// /metrics: each queue's figures (in-flight messages included), purge and
// delete. It reaches into a queue only under the queue's lock, through its
// waiting messages and its consumers.

// queueInfo is a queue's depth, consumers and counters at one moment.
type queueInfo struct {
	Name        string `json:"name"`
	Depth       int    `json:"depth"`     // messages waiting for a consumer
	Consumers   int    `json:"consumers"` // subscriptions the queue dispatches to
	Unacked     int    `json:"unacked"`   // delivered to a consumer, not yet ACKed or NACKed
	Enqueued    uint64 `json:"enqueued"`
	Delivered   uint64 `json:"delivered"`   // redeliveries included
	Redelivered uint64 `json:"redelivered"` // put back after a NACK or a lost consumer
	// Durable is set when the queue's messages are stored (--data-dir or
	// --nats), so they survive a restart; temporary queues never are.
	// Left out when false: DIAG's answer is as it was without a store.
	Durable bool `json:"durable,omitempty"`
}

// queueStats lists every queue in name order.
func (r *router) queueStats() []queueInfo {
	r.mu.RLock()
	qs := make([]*queue, 0, len(r.queues))
	for _, q := range r.queues {
		qs = append(qs, q)
	}
	r.mu.RUnlock()
	slices.SortFunc(qs, func(a, b *queue) int { return strings.Compare(a.name, b.name) })
	return queueFigures(qs)
}

// queueInfoOf returns the figures of the queue name, or false when no such
// queue exists.
func (r *router) queueInfoOf(name string) (queueInfo, bool) {
	r.mu.RLock()
	q := r.queues[name]
	r.mu.RUnlock()
	if q == nil {
		return queueInfo{}, false
	}
	return queueFigures([]*queue{q})[0], true
}

// queueFigures reads the figures of qs. One pass takes each queue's lock
// once; then the distinct consumers' unacknowledged lists are counted by
// queue (a consumer of a pattern holds messages of several queues).
func queueFigures(qs []*queue) []queueInfo {
	out := make([]queueInfo, len(qs))
	var subs []*subscription
	seen := make(map[*subscription]bool)
	for i, q := range qs {
		q.mu.Lock()
		out[i] = queueInfo{Name: q.name, Depth: q.depthLocked(), Consumers: len(q.consumers), Durable: q.r.stores(q.name)}
		for _, sub := range q.consumers {
			if sub.ack != ackAuto && !seen[sub] {
				seen[sub] = true
				subs = append(subs, sub)
			}
		}
		q.mu.Unlock()
		out[i].Enqueued, out[i].Delivered, out[i].Redelivered = q.enqueued.Load(), q.delivered.Load(), q.redelivered.Load()
	}
	if len(subs) == 0 {
		return out
	}
	index := make(map[*queue]int, len(qs))
	for i, q := range qs {
		index[q] = i
	}
	for _, sub := range subs {
		sub.mu.Lock()
		for u := range sub.unacked.all() {
			if i, ok := index[u.q]; ok {
				out[i].Unacked++
			}
		}
		sub.mu.Unlock()
	}
	return out
}

// stores reports whether the queue name keeps its messages in a
// persistent store.
func (r *router) stores(name string) bool {
	return r.persistent && r.storeFor(name) == r.store
}

// errNoQueue answers an action on a queue name that does not exist.
var errNoQueue = errors.New("no such queue")

// queueInUseError refuses to delete a queue that consumers subscribe to:
// they would keep a queue nobody can publish to.
type queueInUseError int

func (e queueInUseError) Error() string {
	return "the queue has " + strconv.Itoa(int(e)) + " consumer(s): close their connections (or purge the queue) instead"
}

// purgeQueue drops the messages waiting in the queue name and returns how
// many. Messages in flight (delivered, not yet acknowledged) stay with
// their consumers; a NACK or a lost consumer brings them back.
func (r *router) purgeQueue(name string) (int, error) {
	r.mu.RLock()
	q := r.queues[name]
	r.mu.RUnlock()
	if q == nil {
		return 0, errNoQueue
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropWaitingLocked(), nil
}

// deleteQueue forgets the queue name and drops its waiting messages
// (returning how many). A queue with consumers is not deleted
// (queueInUseError); a queue without any holds no message in flight. A
// later SEND or SUBSCRIBE to the name starts a new, empty queue.
func (r *router) deleteQueue(name string) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.queues[name]
	if q == nil {
		return 0, errNoQueue
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if n := len(q.consumers); n > 0 {
		return 0, queueInUseError(n)
	}
	n := q.dropWaitingLocked()
	q.closeLocked()
	delete(r.queues, name)
	q.dead = true
	return n, nil
}

// dropWaitingLocked removes every waiting message (and its share of the
// memory budget). q.mu must be held.
func (q *queue) dropWaitingLocked() int {
	if q.st == nil {
		return 0
	}
	n := 0
	for {
		m, _ := q.take(q.st)
		if m == nil {
			q.gateSettle()
			return n
		}
		q.st.Ack(m.sm) //nolint:errcheck // dropped either way
		q.release(m)
		n++
	}
}
