package server

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"stompica/frame"
	"stompica/sublist"
)

type ackMode uint8

const (
	ackAuto ackMode = iota
	ackClient
	ackIndividual
)

// unacked is a delivery awaiting ACK or NACK; q is nil for topic messages.
type unacked struct {
	m *message
	q *queue
}

// subscription is one SUBSCRIBE of one connection.
type subscription struct {
	c        *conn
	id       string
	idx      uint64 // per-connection number used in ack ids
	dest     string
	pattern  bool
	queue    bool
	ack      ackMode
	prefetch int    // client ack modes: most unacknowledged deliveries at once
	prefix   []byte // "MESSAGE\nsubscription:<id>\n", escaped for the connection's version

	// gone is set, under c.mu and mu, when the subscription ends: no
	// delivery is appended after it (so none follows the UNSUBSCRIBE's
	// RECEIPT).
	gone bool

	mu      sync.Mutex
	unacked []unacked // wire order: appended under c.mu with the MESSAGE
	queues  []*queue
	// held are topic messages waiting for prefetch credit (client ack
	// modes), oldest first; heldBytes counts them against the connection's
	// pending-bytes cap.
	held      deque[*message]
	heldBytes int
}

func newSubscription(c *conn, id, dest string, mode ackMode, prefetch int, idx uint64) *subscription {
	sub := &subscription{
		c: c, id: id, idx: idx, dest: dest, ack: mode, prefetch: max(prefetch, 1),
		pattern: sublist.IsPattern(dest),
		queue:   isQueue(dest),
	}
	p := append([]byte(nil), "MESSAGE\nsubscription:"...)
	p = frame.AppendEscaped(p, id, c.version)
	sub.prefix = append(p, '\n')
	return sub
}

func (s *subscription) matches(dest string) bool {
	if s.pattern {
		return sublist.Matches(s.dest, dest)
	}
	return s.dest == dest
}

// appendPrefix builds the per-delivery head of a MESSAGE frame.
func (s *subscription) appendPrefix(b []byte, m *message, redelivered bool) []byte {
	b = append(b, s.prefix...)
	if s.ack != ackAuto && s.c.version >= frame.Version12 {
		b = append(b, "ack:"...)
		b = strconv.AppendUint(b, s.idx, 10)
		b = append(b, '-')
		b = strconv.AppendUint(b, m.id, 10)
		b = append(b, '\n')
	}
	if redelivered {
		b = append(b, "redelivered:true\n"...)
	}
	return b
}

// heldSize is what a held topic message counts against the pending-bytes
// cap: about what it will take in the output buffer.
func (s *subscription) heldSize(m *message) int { return len(s.prefix) + 32 + len(m.shared) }

// deliverTopic appends a topic message to the subscriber's connection. A
// subscription in a client ack mode that has no prefetch credit left holds
// the message until ACKs or NACKs free some. A subscriber whose pending
// output (held messages included) is over the cap, or that holds more than
// Options.MaxUnacked messages, is a slow consumer and is disconnected; the
// publisher never waits. The message is added to the unacknowledged list
// under c.mu, with the MESSAGE, so that list is in wire order and a
// cumulative ACK covers exactly what the client has seen.
func (s *subscription) deliverTopic(m *message, b *batch) bool {
	c := s.c
	b.scratch = s.appendPrefix(b.scratch[:0], m, false)
	c.mu.Lock()
	if !c.takesDeliveriesLocked() || s.gone {
		c.mu.Unlock()
		return false
	}
	limit := c.s.opts.MaxPendingBytes
	if c.pendingLocked() > limit {
		c.mu.Unlock()
		c.slowConsumer("pending output over " + strconv.Itoa(limit) + " bytes")
		return false
	}
	if s.ack != ackAuto {
		s.mu.Lock()
		if len(s.unacked)+s.held.len() >= c.s.opts.MaxUnacked {
			s.mu.Unlock()
			c.mu.Unlock()
			// A topic does not wait for acknowledgements (publishers never
			// block): a subscriber that stops acknowledging is cut off.
			c.slowConsumer("more than " + strconv.Itoa(c.s.opts.MaxUnacked) + " unacknowledged messages")
			return false
		}
		if s.held.len() > 0 || len(s.unacked) >= s.prefetch {
			size := s.heldSize(m)
			if c.pendingLocked()+s.heldBytes+size > limit {
				s.mu.Unlock()
				c.mu.Unlock()
				c.slowConsumer("pending output over " + strconv.Itoa(limit) + " bytes (messages held for prefetch credit included)")
				return false
			}
			s.held.pushBack(m)
			s.heldBytes += size
			c.s.router.heldMsgs.Add(1)
			c.s.router.heldBytes.Add(int64(size))
			s.mu.Unlock()
			c.mu.Unlock()
			return true
		}
		s.unacked = append(s.unacked, unacked{m: m})
		s.mu.Unlock()
	}
	c.appendDeliveryLocked(b, m)
	c.mu.Unlock()
	return true
}

// fillTopic sends held topic messages while the subscription has prefetch
// credit (after an ACK or NACK freed some). Expired ones are dropped.
func (s *subscription) fillTopic(b *batch) {
	if s.ack == ackAuto {
		return
	}
	c := s.c
	c.mu.Lock()
	s.mu.Lock()
	if s.held.len() == 0 || !c.takesDeliveriesLocked() || s.gone {
		s.mu.Unlock()
		c.mu.Unlock()
		return
	}
	now := int64(0)
	n, bytes := 0, 0
	for s.held.len() > 0 && len(s.unacked) < s.prefetch {
		m := s.held.popFront()
		n++
		bytes += s.heldSize(m)
		if m.expires != 0 {
			if now == 0 {
				now = time.Now().UnixMilli()
			}
			if m.expired(now) {
				c.s.stats.expired.Add(1)
				continue
			}
		}
		s.unacked = append(s.unacked, unacked{m: m})
		b.scratch = s.appendPrefix(b.scratch[:0], m, false)
		c.appendDeliveryLocked(b, m)
	}
	s.heldBytes -= bytes
	s.mu.Unlock()
	c.mu.Unlock()
	c.s.router.heldMsgs.Add(int64(-n))
	c.s.router.heldBytes.Add(int64(-bytes))
}

// credit reports whether a queue may hand this consumer one more message.
// When its connection's buffer is full it asks to be woken when it drains.
func (s *subscription) credit() bool {
	if s.ack != ackAuto {
		s.mu.Lock()
		full := len(s.unacked) >= s.prefetch
		s.mu.Unlock()
		if full {
			return false
		}
	}
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.takesDeliveriesLocked() {
		return false
	}
	if c.pendingLocked() >= c.s.opts.MaxPendingBytes/2 {
		c.queueWait = true
		return false
	}
	return true
}

// deliverQueued appends a queue message; false if the connection is gone.
func (s *subscription) deliverQueued(m *message, q *queue, b *batch) bool {
	c := s.c
	b.scratch = s.appendPrefix(b.scratch[:0], m, m.redelivered)
	c.mu.Lock()
	if !c.takesDeliveriesLocked() {
		c.mu.Unlock()
		return false
	}
	if s.ack != ackAuto {
		s.mu.Lock()
		s.unacked = append(s.unacked, unacked{m: m, q: q})
		s.mu.Unlock()
	}
	c.appendDeliveryLocked(b, m)
	c.mu.Unlock()
	return true
}

func (s *subscription) has(mid uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.unacked {
		if u.m.id == mid {
			return true
		}
	}
	return false
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
	n, bytes := s.held.len(), s.heldBytes
	s.held.reset()
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

func (s *subscription) addQueue(q *queue) {
	s.mu.Lock()
	s.queues = append(s.queues, q)
	s.mu.Unlock()
}

func (s *subscription) queueList() []*queue {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.queues)
}

func (s *subscription) takeQueues() []*queue {
	s.mu.Lock()
	defer s.mu.Unlock()
	qs := s.queues
	s.queues = nil
	return qs
}

// queue is a work queue: messages wait until one consumer with credit takes
// each, round-robin.
type queue struct {
	r    *router
	name string

	enqueued  atomic.Uint64 // messages ever put on the queue
	delivered atomic.Uint64 // messages ever handed to a consumer (redeliveries included)

	redelivered atomic.Uint64 // messages put back for redelivery (NACK, consumer gone)

	mu        sync.Mutex
	dead      bool            // removed from the router; use r.queue(name) instead
	msgs      deque[*message] // waiting, oldest first
	consumers []*subscription
	next      int
}

func (q *queue) enqueue(m *message, b *batch) {
	q.mu.Lock()
	if q.dead { // deleted since it was looked up: use its successor
		q.mu.Unlock()
		q.r.queue(q.name).enqueue(m, b)
		return
	}
	q.enqueued.Add(1)
	q.r.s.input.add(m)
	q.msgs.pushBack(m)
	q.dispatchLocked(b)
	q.mu.Unlock()
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
	m.redelivered = true
	q.r.s.stats.redeliveries.Add(1)
	q.redelivered.Add(1)
	q.r.s.input.add(m)
	if max := q.r.s.opts.MaxRedeliveries; max > 0 && m.deliveries > max && q.name != dlqName {
		q.r.s.stats.deadLettered.Add(1)
		// queue() takes router.mu, which must not be taken under q.mu.
		q.r.s.input.remove(m)
		go func() {
			var b batch
			q.r.queue(dlqName).enqueue(m, &b)
			b.flush()
		}()
		return
	}
	q.pushFront(m)
}

// pushFront puts m at the head of the waiting messages, in O(1) whatever
// the depth.
func (q *queue) pushFront(m *message) { q.msgs.pushFront(m) }

// dlqName is where messages go after Options.MaxRedeliveries.
const dlqName = "/queue/DLQ"

func (q *queue) dispatch(b *batch) {
	q.mu.Lock()
	q.dispatchLocked(b)
	q.mu.Unlock()
}

func (q *queue) dispatchLocked(b *batch) {
	now := int64(0)
	for q.msgs.len() > 0 && len(q.consumers) > 0 {
		m := q.msgs.front()
		if m.expires != 0 {
			if now == 0 {
				now = time.Now().UnixMilli()
			}
			if m.expired(now) {
				q.pop()
				q.r.s.stats.expired.Add(1)
				continue
			}
		}
		var sub *subscription
		n := len(q.consumers)
		for i := 0; i < n; i++ {
			s := q.consumers[(q.next+i)%n]
			if s.credit() {
				sub = s
				q.next = (q.next + i + 1) % n
				break
			}
		}
		if sub == nil {
			return
		}
		q.pop()
		m.deliveries++
		if !sub.deliverQueued(m, q, b) {
			m.deliveries--
			q.pushFront(m)
			q.r.s.input.add(m)
			return
		}
		q.delivered.Add(1)
	}
}

// pop removes the head message (delivered or expired).
func (q *queue) pop() {
	q.r.s.input.remove(q.msgs.popFront())
}

func (q *queue) addConsumer(sub *subscription, b *batch) {
	q.mu.Lock()
	if q.dead {
		q.mu.Unlock()
		q.r.queue(q.name).addConsumer(sub, b)
		return
	}
	q.consumers = append(q.consumers, sub)
	q.mu.Unlock()
	sub.addQueue(q)
	q.dispatch(b)
}

// removeConsumer detaches sub: the queue dispatches no more to it. The
// caller gives back what sub holds (dropUnacked) once it is detached from
// all its queues.
func (q *queue) removeConsumer(sub *subscription) {
	q.mu.Lock()
	if i := slices.Index(q.consumers, sub); i >= 0 {
		q.consumers = slices.Delete(q.consumers, i, i+1)
		if q.next >= len(q.consumers) {
			q.next = 0
		}
	}
	q.mu.Unlock()
}
