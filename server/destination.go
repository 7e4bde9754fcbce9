package server

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"stompica/frame"
	"stompica/internal/deque"
	"stompica/store"
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
	held      deque.Deque[*message]
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
		if len(s.unacked)+s.held.Len() >= c.s.opts.MaxUnacked {
			s.mu.Unlock()
			c.mu.Unlock()
			// A topic does not wait for acknowledgements (publishers never
			// block): a subscriber that stops acknowledging is cut off.
			c.slowConsumer("more than " + strconv.Itoa(c.s.opts.MaxUnacked) + " unacknowledged messages")
			return false
		}
		if s.held.Len() > 0 || len(s.unacked) >= s.prefetch {
			size := s.heldSize(m)
			if c.pendingLocked()+s.heldBytes+size > limit {
				s.mu.Unlock()
				c.mu.Unlock()
				c.slowConsumer("pending output over " + strconv.Itoa(limit) + " bytes (messages held for prefetch credit included)")
				return false
			}
			s.held.PushBack(m)
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
	if s.held.Len() == 0 || !c.takesDeliveriesLocked() || s.gone {
		s.mu.Unlock()
		c.mu.Unlock()
		return
	}
	now := int64(0)
	n, bytes := 0, 0
	for s.held.Len() > 0 && len(s.unacked) < s.prefetch {
		m := s.held.PopFront()
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

// queue is a work queue: messages wait in its store until one consumer
// with credit takes each, round-robin.
type queue struct {
	r    *router
	name string

	enqueued  atomic.Uint64 // messages ever put on the queue
	delivered atomic.Uint64 // messages ever handed to a consumer (redeliveries included)

	mu        sync.Mutex
	dead      bool        // removed from the router; use r.queue(name) instead
	st        store.Queue // nil until opened (see open)
	consumers []*subscription
	next      int
	// pending are messages an asynchronous store has not yet confirmed,
	// with the SEND or COMMIT waiting on them (nil when none waits).
	pending map[*store.Message]*sendWait
}

// open returns the queue's store, opening it on first use (and again after
// a failed attempt). Lock held: q.mu.
func (q *queue) open() (store.Queue, error) {
	if q.st == nil {
		st, err := q.r.store.Open(q.name)
		if err != nil {
			q.r.s.log.Warn("store: cannot open queue", "queue", q.name, "err", err)
			return nil, &storeError{op: "open", queue: q.name, err: err}
		}
		q.st = st
	}
	return q.st, nil
}

// enqueue stores m at the tail of the queue and dispatches. With an
// asynchronous store the outcome may come later: the message then joins w,
// which holds back the publisher's RECEIPT until the store confirms.
func (q *queue) enqueue(m *message, b *batch, w *sendCtx) error {
	q.mu.Lock()
	if q.dead { // deleted since it was looked up: use its successor
		q.mu.Unlock()
		return q.r.queue(q.name).enqueue(m, b, w)
	}
	st, err := q.open()
	if err != nil {
		q.mu.Unlock()
		return err
	}
	sm := m.record()
	q.r.s.input.add(m)
	switch err := st.Append(sm, q); err {
	case nil:
		q.enqueued.Add(1)
		q.dispatchLocked(b)
	case store.ErrPending:
		if w != nil {
			if q.pending == nil {
				q.pending = make(map[*store.Message]*sendWait)
			}
			q.pending[sm] = w.wait()
		}
	default:
		q.r.s.input.remove(m)
		q.mu.Unlock()
		return &storeError{op: "append to", queue: q.name, err: err}
	}
	q.mu.Unlock()
	return nil
}

// Appended is called by an asynchronous store once it has stored or
// refused a message that Append left pending.
func (q *queue) Appended(sm *store.Message, err error) {
	q.mu.Lock()
	w := q.pending[sm]
	delete(q.pending, sm)
	if err != nil {
		if m, ok := sm.Value.(*message); ok {
			q.r.s.input.remove(m)
		}
		err = &storeError{op: "append to", queue: q.name, err: err}
	} else {
		q.enqueued.Add(1)
	}
	var b batch
	if err == nil {
		q.dispatchLocked(&b)
	}
	q.mu.Unlock()
	b.flush()
	if w != nil {
		w.done(err)
	} else if err != nil {
		q.r.s.log.Warn("store refused a message", "err", err)
	}
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
		if err := st.Ack(sm); err != nil {
			q.r.s.log.Warn("store: ack on dead-lettering failed", "queue", q.name, "id", m.id, "err", err)
		}
		// queue() takes router.mu, which must not be taken under q.mu.
		go func() {
			var b batch
			if err := q.r.queue(dlqName).enqueue(m, &b, nil); err != nil {
				q.r.s.log.Error("store: message lost on dead-lettering", "id", m.id, "err", err)
			}
			b.flush()
		}()
		return
	}
	q.r.s.input.add(m)
	if err := st.Requeue(sm, true); err != nil {
		q.r.s.input.remove(m)
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

// storeError is a failure of a queue's store; the frame that met it is
// answered with an ERROR (never a RECEIPT).
type storeError struct {
	op, queue string
	err       error
}

func (e *storeError) Error() string {
	return "store: cannot " + e.op + " queue " + strconv.Quote(e.queue) + ": " + e.err.Error()
}

func (e *storeError) Unwrap() error { return e.err }

// sendCtx is the SEND or COMMIT a publish comes from. When an asynchronous
// store leaves a message pending, it makes the wait that holds back the
// frame's RECEIPT until every such message is confirmed.
type sendCtx struct {
	c       *conn
	receipt []byte // the frame's receipt header (nil = none)
	w       *sendWait
}

// wait adds one pending message to the frame's wait. Lock held: q.mu.
func (x *sendCtx) wait() *sendWait {
	if x.w == nil {
		x.w = &sendWait{c: x.c, receipt: string(x.receipt)}
		x.w.n.Store(1) // the frame's own hold, released by finish
	}
	x.w.n.Add(1)
	return x.w
}

// finish ends the frame's handling. It reports whether the RECEIPT waits
// for the store, in which case the wait sends it.
func (x *sendCtx) finish() bool {
	if x.w == nil {
		return false
	}
	x.w.done(nil)
	return true
}

// sendWait counts a frame's messages that a store has yet to confirm
// (plus one while the frame is handled). The RECEIPT goes out when the
// count reaches zero; the first refusal closes the connection with an
// ERROR carrying the receipt-id instead.
type sendWait struct {
	c       *conn
	receipt string
	n       atomic.Int32
	failed  atomic.Bool
}

func (w *sendWait) done(err error) {
	c := w.c
	if err != nil && w.failed.CompareAndSwap(false, true) {
		c.s.stats.countError(errorKindOf(err))
		c.logger().Info("client error", "err", err)
		c.closeWithError(err.Error(), w.receipt)
	}
	if w.n.Add(-1) == 0 && !w.failed.Load() && w.receipt != "" {
		var b batch
		c.sendFrame(frame.New(frame.RECEIPT, "receipt-id", w.receipt), &b)
		b.flush()
	}
}

// errReceiptLater tells handle that a frame succeeded and that its RECEIPT
// goes out once the store confirms (see sendWait).
var errReceiptLater = errors.New("receipt after the store confirms")

// dlqName is where messages go after Options.MaxRedeliveries.
const dlqName = "/queue/DLQ"

func (q *queue) dispatch(b *batch) {
	q.mu.Lock()
	q.dispatchLocked(b)
	q.mu.Unlock()
}

// dispatchLocked hands waiting messages, one at a time, to the next
// consumer (round-robin) that has credit, until the queue or the credit
// runs out. Expired messages are dropped as they come. Lock held: q.mu.
func (q *queue) dispatchLocked(b *batch) {
	st := q.st
	if st == nil {
		return
	}
	now := int64(0)
	for st.Len() > 0 && len(q.consumers) > 0 {
		var sub *subscription
		next := q.next
		n := len(q.consumers)
		for i := 0; i < n; i++ {
			s := q.consumers[(q.next+i)%n]
			if s.credit() {
				sub = s
				next = (q.next + i + 1) % n
				break
			}
		}
		if sub == nil {
			return
		}
		m, err := q.take(st)
		if m == nil {
			if err != nil {
				q.r.s.log.Warn("store: cannot take the next message", "queue", q.name, "err", err)
			}
			return
		}
		if m.expires != 0 {
			if now == 0 {
				now = time.Now().UnixMilli()
			}
			if m.expired(now) {
				q.r.s.stats.expired.Add(1)
				if err := st.Ack(m.sm); err != nil {
					q.r.s.log.Warn("store: ack of an expired message failed", "queue", q.name, "id", m.id, "err", err)
				}
				continue
			}
		}
		q.next = next
		if !sub.deliverQueued(m, q, b) {
			q.r.s.input.add(m)
			if err := st.Requeue(m.sm, false); err != nil {
				q.r.s.input.remove(m)
				q.r.s.log.Error("store: requeue failed", "queue", q.name, "id", m.id, "err", err)
			}
			return
		}
		q.delivered.Add(1)
	}
}

// take takes the head message from the store; the memory budget stops
// counting it. Lock held: q.mu.
func (q *queue) take(st store.Queue) (*message, error) {
	for {
		sm, err := st.Next()
		if sm == nil {
			return nil, err
		}
		if m, ok := sm.Value.(*message); ok {
			q.r.s.input.remove(m)
			return m, nil
		}
		// Read back from storage: never counted in the budget.
		m, err := q.r.decode(sm)
		if err == nil {
			return m, nil
		}
		q.r.s.log.Error("store: undecodable message dropped", "queue", q.name, "id", sm.ID, "err", err)
		st.Ack(sm) //nolint:errcheck // dropped either way
	}
}

// drain empties a queue being deleted, passing each message to fn. Lock
// held: q.mu.
func (q *queue) drainLocked(fn func(*message)) {
	if q.st == nil {
		return
	}
	for {
		m, _ := q.take(q.st)
		if m == nil {
			break
		}
		q.st.Ack(m.sm) //nolint:errcheck // the queue is going
		fn(m)
	}
	q.closeLocked()
}

// closeLocked releases the queue's store. Lock held: q.mu.
func (q *queue) closeLocked() {
	if q.st != nil {
		if err := q.st.Close(); err != nil {
			q.r.s.log.Warn("store: close failed", "queue", q.name, "err", err)
		}
		q.st = nil
	}
}

// depth is the number of waiting messages. Lock held: q.mu.
func (q *queue) depthLocked() int {
	if q.st == nil {
		return 0
	}
	return q.st.Len()
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
