package server

import (
	"iter"
	"slices"
	"sync/atomic"

	"github.com/stompica/stompica/internal/deque"
	"github.com/stompica/stompica/store"
)

type ackMode uint8

const (
	ackAuto ackMode = iota
	ackClient
	ackIndividual
)

// unacked is a delivery awaiting ACK or NACK; q is nil for topic messages.
// In an ackList, m is nil for a delivery acknowledged out of order (a
// hole, whose id stays for the binary search). at is when a queue message
// went out (Unix ns), with Options.AckTimeout; its lowest bit is
// m.pooled instead (see sentAt and pooled), noted at delivery while the
// message was in the cache, so that an ACK recycles the message without
// reading it (see router.ack), and an entry stays 32 bytes.
type unacked struct {
	id uint64
	m  *message
	q  *queue
	at int64
}

// sentAt is when the delivery went out (Unix ns; 0 when not noted).
func (u unacked) sentAt() int64 { return u.at &^ 1 }

// pooled reports whether the delivery's message is pooled (m.pooled).
func (u unacked) pooled() bool { return u.at&1 != 0 }

// ackList is a subscription's unacknowledged deliveries in wire order. It
// is a ring: ACKs of the oldest delivery (the usual order) pop the front,
// and an ACK further in leaves a hole, skipped as the front reaches it and
// compacted away once holes outnumber deliveries. While message ids
// ascend in wire order (always, until a redelivery or a second queue comes
// in between) a lookup is a binary search, otherwise a scan. So no ACK
// moves the others, whatever the prefetch. The zero value is empty.
type ackList struct {
	d        deque.Deque[unacked]
	live     atomic.Int32 // deliveries (d.Len() minus holes); read without the lock by credit
	unsorted bool         // some id is not above the one before it
	last     uint64       // id of the last delivery pushed
}

func (l *ackList) len() int { return int(l.live.Load()) }

// reset empties the list.
func (l *ackList) reset() {
	l.d.Reset()
	l.live.Store(0)
	l.unsorted, l.last = false, 0
}

// push appends a delivery (the newest on the wire).
func (l *ackList) push(m *message, q *queue, at int64) {
	l.add(m, q, at)
	l.live.Add(1)
}

// pushAll appends deliveries of q (the newest on the wire, in order),
// counting them at once.
func (l *ackList) pushAll(ms []*message, q *queue, at int64) {
	for _, m := range ms {
		l.add(m, q, at)
	}
	l.live.Add(int32(len(ms)))
}

// add is push without counting the delivery in live.
func (l *ackList) add(m *message, q *queue, at int64) {
	if l.d.Len() > 0 && m.id <= l.last {
		l.unsorted = true
	}
	l.last = m.id
	if m.pooled {
		at |= 1
	} else {
		at &^= 1
	}
	l.d.PushBack(unacked{id: m.id, m: m, q: q, at: at})
}

// find returns the position of delivery mid, or -1.
func (l *ackList) find(mid uint64) int {
	n := l.d.Len()
	if n > 0 && l.d.Front().id == mid {
		return 0 // the oldest: the usual ACK (a hole is never at the front)
	}
	if !l.unsorted {
		lo, hi := 0, n
		for lo < hi {
			h := int(uint(lo+hi) >> 1)
			if l.d.At(h).id < mid {
				lo = h + 1
			} else {
				hi = h
			}
		}
		if lo < n && l.d.At(lo).id == mid && l.d.At(lo).m != nil {
			return lo
		}
		return -1
	}
	for i := range n {
		if u := l.d.At(i); u.id == mid && u.m != nil {
			return i
		}
	}
	return -1
}

// takeAt removes the delivery at position i.
func (l *ackList) takeAt(i int) unacked {
	u := l.d.At(i)
	if i == 0 {
		l.d.PopFrontKeep()
	} else {
		l.d.Set(i, unacked{id: u.id})
	}
	l.live.Add(-1)
	l.tidy()
	return u
}

// takeThrough removes the deliveries up to position i included, appending
// them to out in wire order.
func (l *ackList) takeThrough(i int, out []unacked) []unacked {
	for range i + 1 {
		if u := l.d.PopFrontKeep(); u.m != nil {
			out = append(out, u)
			l.live.Add(-1)
		}
	}
	l.tidy()
	return out
}

// tidy drops holes at the front, and compacts when holes outnumber
// deliveries (so a delivery never acknowledged cannot make the ring grow
// without bound behind it). An empty list starts sorted again.
func (l *ackList) tidy() {
	for l.d.Len() > 0 && l.d.Front().m == nil {
		l.d.PopFrontKeep()
	}
	live := l.len()
	if live == 0 {
		l.unsorted = false
		return
	}
	if holes := l.d.Len() - live; holes > live && holes > 32 {
		w := 0
		for i := range l.d.Len() {
			if u := l.d.At(i); u.m != nil {
				l.d.Set(w, u)
				w++
			}
		}
		for l.d.Len() > w {
			l.d.PopBack()
		}
	}
}

// trim gives back the ring's memory, for a subscription gone quiet (its
// pops keep the ring: a consumer's deliveries fill and drain it over and
// over).
func (l *ackList) trim() { l.d.Trim() }

// pushFront puts deliveries back at the front, in order.
func (l *ackList) pushFront(list []unacked) {
	for i := len(list) - 1; i >= 0; i-- {
		l.d.PushFront(list[i])
		l.live.Add(1)
	}
	if len(list) > 0 {
		l.unsorted = true
	}
}

// all yields the deliveries in wire order.
func (l *ackList) all() iter.Seq[unacked] {
	return func(yield func(unacked) bool) {
		for i := range l.d.Len() {
			if u := l.d.At(i); u.m != nil && !yield(u) {
				return
			}
		}
	}
}

// has reports whether mid awaits acknowledgement, or did until the ack
// timeout took it back (its late ACK or NACK is then ignored).
func (s *subscription) has(mid uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unacked.find(mid) >= 0 || len(s.expired) > 0 && slices.Contains(s.expired, mid)
}

// take removes the delivery mid (and, in ack mode client, all earlier
// ones), appending them to out in wire order. It returns out unchanged
// when mid is not pending.
func (s *subscription) take(mid uint64, out []unacked) []unacked {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.unacked.find(mid)
	if i < 0 {
		return out
	}
	if s.ack == ackClient {
		return s.unacked.takeThrough(i, out)
	}
	return append(out, s.unacked.takeAt(i))
}

// dropUnacked ends the subscription's deliveries: it takes no more, its
// held topic messages are freed, and its unacknowledged queue messages go
// back to their queues (at the head, in order, flagged redelivered) for
// other consumers. A queue subscription must be detached from its queues
// first, or they could come straight back to it.
func (s *subscription) dropUnacked() {
	c := s.c
	c.mu.Lock()
	s.mu.Lock()
	s.gone = true
	list := make([]unacked, 0, s.unacked.len())
	for u := range s.unacked.all() {
		list = append(list, u)
	}
	s.unacked.reset()
	n, bytes := s.held.Len(), s.heldBytes
	s.held.Reset()
	s.heldBytes = 0
	s.mu.Unlock()
	c.mu.Unlock()
	if n > 0 {
		c.s.router.heldMsgs.Add(int64(-n))
		c.s.router.heldBytes.Add(int64(-bytes))
	}
	var b batch
	for i := len(list) - 1; i >= 0; i-- {
		if q := list[i].q; q != nil {
			q.requeue(list[i].m, &b)
		}
	}
	var small [4]*queue
	qs := small[:0]
	for _, u := range list {
		if u.q != nil && !slices.Contains(qs, u.q) {
			qs = append(qs, u.q)
			u.q.dispatch(&b)
		}
	}
	b.flush()
}

// putBack returns deliveries taken by an ACK that did not take effect to
// the head of the unacknowledged list. A subscription that has ended
// requeues them instead.
func (s *subscription) putBack(list []unacked) {
	if len(list) == 0 {
		return
	}
	s.mu.Lock()
	if !s.gone {
		s.unacked.pushFront(list)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	var b batch
	for i := len(list) - 1; i >= 0; i-- {
		list[i].q.requeue(list[i].m, &b)
	}
	b.flush()
}

// requeue puts a rejected or orphaned message back at the head of the queue.
func (q *queue) requeue(m *message, b *batch) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dead {
		// queue() takes router.mu, which must not be taken under q.mu. A
		// tracked goroutine: Shutdown waits for it (and refuses it once
		// begun: the message then stays where a persistent store keeps it).
		// The successor dispatches too: its consumers may have credit,
		// and nothing else may come to make it look.
		if !q.r.s.startGoRoutine(func() {
			var b batch
			nq := q.r.queue(q.name)
			nq.requeue(m, &b)
			nq.dispatch(&b)
			b.flush()
		}) {
			q.r.s.log.Debug("requeue during shutdown dropped", "queue", q.name, "id", m.id)
		}
		return
	}
	st, err := q.open()
	if err != nil {
		q.r.s.log.Error("store: message lost on requeue", "queue", q.name, "id", m.id, "err", err)
		return
	}
	sm := m.record()
	m.redelivered = true
	q.r.s.stats.redeliveries.Add(1)
	q.redelivered.Add(1)
	if max := q.r.s.opts.MaxRedeliveries; max > 0 && sm.Deliveries > max && q.name != dlqName {
		q.r.s.stats.deadLettered.Add(1)
		delete(q.avoid, m)
		// queue() takes router.mu, which must not be taken under q.mu.
		// The message leaves this queue's store once it is in the dead-
		// letter queue's: a crash in between repeats it, never loses it.
		// The dead-letter queue gets a copy: the original is recycled once
		// acknowledged here, and the copy may be consumed meanwhile.
		dead, err := deadLetterCopy(m)
		if err != nil {
			q.r.s.log.Error("store: cannot dead-letter; the message stays in its queue's store", "queue", q.name, "id", m.id, "err", err)
			return
		}
		if !q.r.s.startGoRoutine(func() {
			var b batch
			if err := q.r.queue(dlqName).enqueue(dead, &b, nil); err != nil {
				q.r.s.log.Error("store: cannot dead-letter; the message stays in its queue's store", "queue", q.name, "id", m.id, "err", err)
			} else if err := q.ack(m); err != nil {
				q.r.s.log.Warn("store: ack on dead-lettering failed", "queue", q.name, "id", m.id, "err", err)
			}
			b.flush()
		}) {
			q.r.s.log.Debug("dead-lettering during shutdown dropped", "queue", q.name, "id", m.id)
		}
		return
	}
	q.r.s.input.hold(m)
	if err := st.Requeue(sm, true); err != nil {
		q.r.s.input.free(m)
		q.r.s.log.Error("store: requeue failed", "queue", q.name, "id", m.id, "err", err)
	}
}

// deadLetterCopy is the message as the dead-letter queue takes it: a copy
// of its own (same id, headers, body and expiry), flagged redelivered, that
// keeps its delivery count.
func deadLetterCopy(m *message) (*message, error) {
	d, err := parseEncoded(m.shared)
	if err != nil {
		return nil, err
	}
	d.expires, d.redelivered = m.expires, true
	d.sm = &store.Message{Deliveries: m.sm.Deliveries}
	return d, nil
}

// ack tells the store that a delivered message is done with. A message of
// a queue dropped since (empty and unused) is not in any store queue the
// broker holds: the memory store forgets it anyway, a persistent one
// delivers it again after a restart.
func (q *queue) ack(m *message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.st != nil {
		if err := q.st.Ack(m.sm); err != nil {
			return &storeError{op: "ack on", queue: q.name, err: err}
		}
	}
	q.release(m)
	return nil
}

// dlqName is where messages go after Options.MaxRedeliveries.
const dlqName = "/queue/DLQ"

// ack acknowledges (or, with nack, rejects) the delivery mid of sub and,
// for ack mode client, every earlier one (STOMP 1.2: in client mode a NACK
// is cumulative like an ACK). Rejected queue messages go back to the head of
// their queue, flagged redelivered, in their original order; then every
// queue concerned dispatches once, so all of them go out again without
// waiting for another SEND. It reports false for an unknown id, and an
// error when a queue's store failed to record an ACK (the message then
// stays unacknowledged there and is delivered again).
func (r *router) ack(sub *subscription, mid uint64, nack bool, b *batch) (bool, error) {
	var one [1]unacked
	taken := sub.take(mid, one[:0])
	if len(taken) == 0 {
		// Taken back by the ack timeout: too late, but not an error.
		return sub.timedOut(mid), nil
	}
	if len(taken) == 1 && !nack && sub.queue && !sub.pattern {
		if u := taken[0]; u.q != nil && u.q.volatile {
			// The usual ACK: one delivery of a memory queue to a plain
			// queue subscription. What the general path below does for
			// it, without its lists: the message is done with (see
			// unacked: it is not read), and its queue dispatches once
			// per batch.
			b.acks++
			b.st = &r.s.stats
			if u.pooled() {
				u.m.recycle()
			}
			b.dispatchLater(u.q)
			return true, nil
		}
	}
	if nack {
		r.s.stats.nacks.Add(uint64(len(taken)))
	} else {
		b.acks += uint64(len(taken)) // counted once per batch
		b.st = &r.s.stats
	}
	if !sub.queue {
		// Topic messages are simply forgotten (a NACK drops them); the
		// credit freed lets held messages go out.
		sub.fillTopic(b)
		return true, nil
	}
	var err error
	if nack {
		for i := len(taken) - 1; i >= 0; i-- {
			if u := taken[i]; u.q != nil {
				u.q.requeue(u.m, b)
			}
		}
	} else {
		var failed []unacked
		for _, u := range taken {
			if u.q != nil && u.q.volatile {
				// The memory store's Ack does nothing, and its queues
				// have no pending appends (see queue.release): the
				// message is done with, without the queue's lock (and
				// without reading it: see unacked).
				if u.pooled() {
					u.m.recycle()
				}
			} else if u.q != nil {
				if e := u.q.ack(u.m); e != nil {
					err = e
					failed = append(failed, u)
				}
			}
		}
		// Still unacknowledged: they go back to the queue with the rest of
		// what the consumer holds when the ERROR closes it.
		sub.putBack(failed)
	}
	// The freed credit (and the requeued messages) may go to any queue of
	// the subscription: dispatch each one once.
	var small [4]*queue
	qs := small[:0]
	for _, u := range taken {
		if u.q != nil && !slices.Contains(qs, u.q) {
			qs = append(qs, u.q)
		}
	}
	if sub.pattern {
		for _, q := range sub.queueList() {
			if !slices.Contains(qs, q) {
				qs = append(qs, q)
			}
		}
	}
	// Once per batch, not per ACK: a run of ACKs read together hands out
	// what they freed in one pass (see batch.dispatchLater).
	for _, q := range qs {
		b.dispatchLater(q)
	}
	return true, err
}
