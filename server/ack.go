package server

import (
	"slices"
)

type ackMode uint8

const (
	ackAuto ackMode = iota
	ackClient
	ackIndividual
)

// unacked is a delivery awaiting ACK or NACK; q is nil for topic messages.
// at is when a queue message went out (Unix ns), with Options.AckTimeout.
type unacked struct {
	m  *message
	q  *queue
	at int64
}

// has reports whether mid awaits acknowledgement, or did until the ack
// timeout took it back (its late ACK or NACK is then ignored).
func (s *subscription) has(mid uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.unacked {
		if u.m.id == mid {
			return true
		}
	}
	return len(s.expired) > 0 && slices.Contains(s.expired, mid)
}

// take removes and returns the delivery mid (and, in ack mode client, all
// earlier ones). nil when mid is not pending.
func (s *subscription) take(mid uint64) []unacked {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.unacked, func(u unacked) bool { return u.m.id == mid })
	if i < 0 {
		return nil
	}
	var out []unacked
	if s.ack == ackClient {
		out = slices.Clone(s.unacked[:i+1])
		n := copy(s.unacked, s.unacked[i+1:])
		clear(s.unacked[n:])
		s.unacked = s.unacked[:n]
	} else {
		out = []unacked{s.unacked[i]}
		s.unacked = slices.Delete(s.unacked, i, i+1)
	}
	return out
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
	list := s.unacked
	s.unacked = nil
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
		s.unacked = append(slices.Clip(list), s.unacked...)
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
		go func() { // queue() takes router.mu, which must not be taken under q.mu
			var b batch
			q.r.queue(q.name).requeue(m, &b)
			b.flush()
		}()
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
	if max := q.r.s.opts.MaxRedeliveries; max > 0 && sm.Deliveries > max && q.name != dlqName {
		q.r.s.stats.deadLettered.Add(1)
		delete(q.avoid, m)
		// queue() takes router.mu, which must not be taken under q.mu.
		// The message leaves this queue's store once it is in the dead-
		// letter queue's: a crash in between repeats it, never loses it.
		go func() {
			var b batch
			if err := q.r.queue(dlqName).enqueue(m, &b, nil); err != nil {
				q.r.s.log.Error("store: cannot dead-letter; the message stays in its queue's store", "queue", q.name, "id", m.id, "err", err)
			} else if err := q.ack(m); err != nil {
				q.r.s.log.Warn("store: ack on dead-lettering failed", "queue", q.name, "id", m.id, "err", err)
			}
			b.flush()
		}()
		return
	}
	q.r.s.input.hold(m)
	if err := st.Requeue(sm, true); err != nil {
		q.r.s.input.free(m)
		q.r.s.log.Error("store: requeue failed", "queue", q.name, "id", m.id, "err", err)
	}
}

// ack tells the store that a delivered message is done with. A message of
// a queue dropped since (empty and unused) is not in any store queue the
// broker holds: the memory store forgets it anyway, a persistent one
// delivers it again after a restart.
func (q *queue) ack(m *message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.st == nil {
		return nil
	}
	if err := q.st.Ack(m.sm); err != nil {
		return &storeError{op: "ack on", queue: q.name, err: err}
	}
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
	taken := sub.take(mid)
	if taken == nil {
		// Taken back by the ack timeout: too late, but not an error.
		return sub.timedOut(mid), nil
	}
	if nack {
		r.s.stats.nacks.Add(uint64(len(taken)))
	} else {
		r.s.stats.acks.Add(uint64(len(taken)))
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
			if u.q != nil {
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
	for _, q := range qs {
		q.dispatch(b)
	}
	return true, err
}
