package server

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stompica/stompica/frame"
	"github.com/stompica/stompica/store"
)

// queue is a work queue: messages wait in its store until one consumer
// with credit takes each, round-robin.
type queue struct {
	r    *router
	name string

	enqueued  atomic.Uint64 // messages ever put on the queue
	delivered atomic.Uint64 // messages ever handed to a consumer (redeliveries included)
	// redelivered counts messages put back for redelivery (NACK, consumer gone).
	redelivered atomic.Uint64

	mu        sync.Mutex
	dead      bool        // removed from the router; use r.queue(name) instead
	st        store.Queue // nil until opened (see open)
	consumers []*subscription
	next      int
	// pending are messages an asynchronous store has not yet confirmed,
	// with the SEND or COMMIT waiting on them (nil when none waits). They
	// are not recycled (see release) before the store's answer.
	pending map[*store.Message]*sendWait
	// avoid are messages the ack timeout took back, with the consumer
	// that held them (they go to another one if it can).
	avoid map[*message]*subscription
	// uncrowded is closed when the queue is no longer crowded (see
	// crowdedLocked): publishers paused on it read again. Nil when none
	// waits.
	uncrowded chan struct{}
	// stalled is set when a publisher waited stallAfter on a crowded
	// queue that handed out nothing in that time (see delivered), and
	// cleared by the next message handed out.
	stalled bool
	// volatile is set when the queue's store is the memory store (see
	// store.Volatile); it never changes.
	volatile bool
	// runBuf is dispatchRun's scratch (see queueRun).
	runBuf []*message
	// gateMsgs and gateBytes are what the input gate has yet to count
	// (see gateHold).
	gateMsgs, gateBytes int64
	// noCredit is set when a dispatch found no consumer with credit for a
	// waiting message. A message added then (enqueue, Appended) gives no
	// consumer credit, so it waits without another look at each consumer;
	// dispatch, which runs after whatever may give some, clears it.
	noCredit bool
}

// stallAfter is how long a crowded queue may hand out nothing before its
// publishers stop waiting for it: flow control keeps producers to the
// pace of consumers that consume, and a stuck consumer (prefetch full,
// never acknowledging) must not hold every producer of the queue forever.
// The queue then grows, within the memory budget, as it would without
// flow control.
const stallAfter = time.Second

// crowdedLocked reports whether more than n messages wait in a queue
// that has consumers: they are not keeping up, and its publishers pause
// (see Options.QueueFlowLimit). A queue nobody consumes is bounded by the
// memory budget only, and a stored (durable) one not at all: its backlog
// lives on disk, which is what it is for, and the store bounds what it
// holds in memory. Lock held: q.mu.
func (q *queue) crowdedLocked(n int) bool {
	return !q.dead && !q.stalled && len(q.consumers) > 0 && q.st != nil && q.st.Len() > n && !q.r.stores(q.name)
}

// flowLimit is Options.QueueFlowLimit (0 = off).
func (q *queue) flowLimit() int { return max(q.r.s.opts.QueueFlowLimit, 0) }

// uncrowdLocked wakes the publishers paused on the queue once it has
// drained to half its flow limit (or lost its consumers). Lock held: q.mu.
func (q *queue) uncrowdLocked() {
	if q.uncrowded != nil && !q.crowdedLocked(q.flowLimit()/2) {
		close(q.uncrowded)
		q.uncrowded = nil
	}
}

// waitUncrowded pauses a publisher's read loop while the queue is crowded,
// until it drains to half the flow limit. It re-checks periodically, so
// that a missed wake-up, a shutdown or the connection's close (closed
// reports it) never leaves a reader stuck.
// When the queue hands out nothing for stallAfter, it is marked stalled
// and every publisher waiting on it goes on.
func (q *queue) waitUncrowded(done <-chan struct{}, closed func() bool) {
	q.mu.Lock()
	seen, since := q.delivered.Load(), time.Now()
	q.mu.Unlock()
	for !closed() {
		q.mu.Lock()
		if !q.crowdedLocked(q.flowLimit() / 2) {
			q.mu.Unlock()
			return
		}
		if n := q.delivered.Load(); n != seen {
			seen, since = n, time.Now()
		} else if time.Since(since) >= q.r.s.opts.flowStall {
			q.stalled = true
			q.uncrowdLocked()
			q.mu.Unlock()
			return
		}
		if q.uncrowded == nil {
			q.uncrowded = make(chan struct{})
		}
		ch := q.uncrowded
		q.mu.Unlock()
		if !awaitRelease(ch, done) {
			return
		}
	}
}

// open returns the queue's store, opening it on first use (and again after
// a failed attempt). Lock held: q.mu.
func (q *queue) open() (store.Queue, error) {
	if q.st == nil {
		st, err := q.r.storeFor(q.name).Open(q.name)
		if err != nil {
			q.r.s.log.Warn("store: cannot open queue", "queue", q.name, "err", err)
			return nil, &storeError{op: "open", queue: q.name, err: err}
		}
		q.st = st
		if n, ok := st.(store.Notifier); ok {
			n.Notify(q.ready)
		}
	}
	return q.st, nil
}

// enqueue stores m at the tail of the queue and dispatches. With an
// asynchronous store the outcome may come later: the message then joins
// the wait of x (when not nil), which holds back the publisher's RECEIPT
// until the store confirms.
func (q *queue) enqueue(m *message, b *batch, x *sendCtx) error {
	q.mu.Lock()
	if q.dead { // deleted since it was looked up: use its successor
		q.mu.Unlock()
		return q.r.queue(q.name).enqueue(m, b, x)
	}
	st, err := q.open()
	if err != nil {
		q.mu.Unlock()
		return err
	}
	sm := m.record()
	q.gateHold(m)
	switch err := st.Append(sm, q); {
	case err == nil:
		q.enqueued.Add(1)
		q.dispatchLocked(b)
		if x != nil && x.flow {
			if lim := q.flowLimit(); lim > 0 && q.crowdedLocked(lim) {
				x.c.crowded = q // the read loop pauses (see conn.readLoop)
			}
		}
	case errors.Is(err, store.ErrPending):
		// Tracked even without a waiter: the queue is not dropped while
		// the store has yet to confirm.
		if q.pending == nil {
			q.pending = make(map[*store.Message]*sendWait)
		}
		var sw *sendWait
		if x != nil {
			sw = x.wait()
		}
		q.pending[sm] = sw
	default:
		q.gateFree(m)
		q.gateSettle()
		q.mu.Unlock()
		return &storeError{op: "append to", queue: q.name, err: err}
	}
	q.gateSettle()
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
			q.r.s.input.free(m)
		}
		err = &storeError{op: "append to", queue: q.name, err: err}
	} else {
		q.enqueued.Add(1)
		if m, ok := sm.Value.(*message); ok && q.r.persistent {
			// On disk now: read back when due, not held in memory.
			q.r.s.input.free(m)
		}
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
	flow    bool // a SEND to a queue: a crowded queue pauses c (Options.QueueFlowLimit)
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
		c.logger().Info("client error", "err", err)
		c.fail(err, w.receipt)
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

// ready is called by a store whose Next came back empty when messages
// have arrived since (see store.Notifier).
func (q *queue) ready() {
	var b batch
	q.dispatch(&b)
	b.flush()
}

// dispatch runs after whatever may have given a consumer credit (an ACK
// or NACK, a consumer added, a connection's output drained, messages put
// back), or brought messages to hand out.
func (q *queue) dispatch(b *batch) {
	q.mu.Lock()
	q.noCredit = false
	q.dispatchLocked(b)
	q.mu.Unlock()
}

// dispatchLocked hands waiting messages, one at a time, to the next
// consumer (round-robin) that has credit, until the queue or the credit
// runs out. Expired messages are dropped as they come. Publishers paused
// on the queue resume once it has drained enough. Lock held: q.mu.
func (q *queue) dispatchLocked(b *batch) {
	q.dispatchRun(b)
	q.gateSettle()
	if q.uncrowded != nil {
		q.uncrowdLocked()
	}
}

// gateHold counts m in the input gate while it waits in the queue (see
// inputGate.hold), as a change the queue settles (gateSettle) before it
// lets q.mu go: a message that enqueue appends and dispatchRun hands out
// at once costs the gate's shared counters nothing, and a run of messages
// handed out updates them once. Lock held: q.mu.
func (q *queue) gateHold(m *message) {
	if !m.gated {
		m.gated = true
		q.gateMsgs++
		q.gateBytes += int64(len(m.shared))
	}
}

// gateFree stops counting m in the input gate (see gateHold). Lock held:
// q.mu.
func (q *queue) gateFree(m *message) {
	if m.gated {
		m.gated = false
		q.gateMsgs--
		q.gateBytes -= int64(len(m.shared))
	}
}

// gateSettle passes what gateHold and gateFree counted to the input gate.
// Lock held: q.mu.
func (q *queue) gateSettle() {
	if q.gateMsgs != 0 || q.gateBytes != 0 {
		q.r.s.input.settle(q.gateMsgs, q.gateBytes)
		q.gateMsgs, q.gateBytes = 0, 0
	}
}

// dispatchRun is dispatchLocked's loop. Lock held: q.mu.
//
// A run of deliveries to the same consumer (the usual case: the ACKs a
// consumer's read batch carried free its credit, every other consumer's
// window is full) takes that consumer's connection lock once, and records
// the run in its unacknowledged list, counts and stamps it once, when the
// lock is let go (see queueRun). With a store that may lock or block (not
// store.Volatile), the connection lock is let go around each call to it.
func (q *queue) dispatchRun(b *batch) {
	st := q.st
	if st == nil || q.noCredit {
		return
	}
	run := queueRun{q: q, msgs: q.runBuf[:0]}
	defer run.end()
	now := int64(0)
	for st.Len() > 0 && len(q.consumers) > 0 {
		sub, next := run.pick()
		if sub == nil {
			q.noCredit = true
			return
		}
		if !q.volatile {
			run.end()
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
				q.end(st, m, "expired")
				continue
			}
		}
		if q.avoid != nil {
			if s, ok := q.avoid[m]; ok {
				if s == sub {
					run.end() // otherConsumer takes other connections' locks
					sub, next = q.otherConsumer(sub, next)
				}
				delete(q.avoid, m)
			}
		}
		q.next = next
		if !run.deliver(sub, m, b) {
			run.end()
			q.gateHold(m)
			if err := st.Requeue(m.sm, false); err != nil {
				q.gateFree(m)
				q.r.s.log.Error("store: requeue failed", "queue", q.name, "id", m.id, "err", err)
			}
			return
		}
		if sub.ack == ackAuto { // done with once written out
			if !q.volatile {
				run.end()
			}
			q.end(st, m, "consumed")
		}
	}
}

// queueRun is the consumer whose connection lock a dispatch run holds
// (sub; nil when none), and the messages delivered to it under that lock,
// in wire order, that its unacknowledged list does not show yet. They
// join it before the lock is let go, so that no ACK, credit check or
// requeue of another goroutine can miss them: the client cannot have seen
// them before, and whoever checks the credit of sub does it under its
// connection lock. Used under q.mu.
type queueRun struct {
	q         *queue
	sub       *subscription
	msgs      []*message
	delivered uint64
}

// pick is the next consumer, round-robin, that has credit, and the
// round-robin position after it; nil when none has. The consumer's
// connection lock is held on return (see queueRun); the credit of the
// others is first read without locks (an atomic read of their
// unacknowledged count, as momentary as one under the lock).
func (r *queueRun) pick() (*subscription, int) {
	q := r.q
	n := len(q.consumers)
	j := q.next
	for range n {
		s := q.consumers[j]
		if j++; j == n {
			j = 0
		}
		if s != r.sub {
			if s.ack != ackAuto && s.unacked.len() >= s.prefetch {
				continue
			}
			r.end()
			s.c.mu.Lock()
			r.sub = s
		}
		if s.creditLocked(len(r.msgs)) {
			return s, j
		}
	}
	return nil, q.next
}

// deliver appends m to the output of sub, taking its connection lock
// unless the run holds it; false if the connection is gone.
func (r *queueRun) deliver(sub *subscription, m *message, b *batch) bool {
	c := sub.c
	if r.sub != sub {
		r.end()
		c.mu.Lock()
		r.sub = sub
		if !c.takesDeliveriesLocked() {
			return false
		}
	}
	if sub.ack != ackAuto {
		r.msgs = append(r.msgs, m)
	}
	c.appendDeliveryLocked(b, sub, m, m.redelivered)
	r.delivered++
	return true
}

// end records the run's deliveries in the consumer's unacknowledged list
// and lets its connection lock go.
func (r *queueRun) end() {
	if s := r.sub; s != nil {
		if len(r.msgs) > 0 {
			var at int64
			if s.c.s.opts.AckTimeout > 0 {
				at = time.Now().UnixNano()
			}
			s.mu.Lock()
			s.unacked.pushAll(r.msgs, r.q, at)
			s.mu.Unlock()
			clear(r.msgs)
			r.msgs = r.msgs[:0]
		}
		s.c.mu.Unlock()
		r.sub = nil
	}
	if r.delivered > 0 {
		r.q.delivered.Add(r.delivered)
		r.delivered = 0
		r.q.stalled = false
	}
	r.q.runBuf = r.msgs
}

// end acknowledges in the store a message that needs no ACK from a client
// (expired, or delivered to an auto-ack subscriber) and recycles it. Lock
// held: q.mu.
func (q *queue) end(st store.Queue, m *message, why string) {
	if err := st.Ack(m.sm); err != nil {
		q.r.s.log.Warn("store: ack failed", "queue", q.name, "id", m.id, "message", why, "err", err)
	}
	q.release(m)
}

// release recycles a message done with, unless an asynchronous store has
// yet to confirm it (its answer names it). The queue forgets the consumer
// it was to avoid (one the ack timeout took it back from, see avoidFor)
// when it ends before it went out again (expired, purged): recycled, it
// becomes another message. Lock held: q.mu.
func (q *queue) release(m *message) {
	if q.avoid != nil {
		delete(q.avoid, m)
	}
	if len(q.pending) > 0 {
		if _, ok := q.pending[m.sm]; ok {
			return
		}
	}
	m.release()
}

// otherConsumer is the next consumer after sub (at next) that has
// credit, or sub itself when there is none. Lock held: q.mu.
func (q *queue) otherConsumer(sub *subscription, next int) (*subscription, int) {
	n := len(q.consumers)
	for i := 0; i < n-1; i++ {
		j := (next + i) % n
		if s := q.consumers[j]; s != sub && s.credit() {
			return s, (j + 1) % n
		}
	}
	return sub, next
}

// take takes the head message from the store; the memory budget stops
// counting it once the queue settles: the caller calls gateSettle before
// it lets q.mu go. Lock held: q.mu.
func (q *queue) take(st store.Queue) (*message, error) {
	for {
		sm, err := st.Next()
		if sm == nil {
			return nil, err
		}
		if m, ok := sm.Value.(*message); ok {
			q.gateFree(m)
			return m, nil
		}
		// Read back from storage: never counted in the budget. Flagged
		// redelivered when it may have been delivered before.
		m, err := q.r.decode(sm)
		if err == nil {
			m.redelivered = sm.Deliveries > 1
			return m, nil
		}
		q.r.s.log.Error("store: undecodable message dropped", "queue", q.name, "id", sm.ID, "err", err)
		st.Ack(sm) //nolint:errcheck // dropped either way
	}
}

// drainLocked empties a queue being deleted, passing each message to fn. Lock
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
		q.release(m)
	}
	q.gateSettle()
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

// depthLocked is the number of waiting messages. Lock held: q.mu.
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
	q.uncrowdLocked()
	q.mu.Unlock()
}

// queue returns the named queue, creating it (and attaching matching
// pattern consumers) on first use.
func (r *router) queue(name string) *queue {
	r.mu.RLock()
	q := r.queues[name]
	r.mu.RUnlock()
	if q != nil {
		return q
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if q = r.queues[name]; q != nil {
		return q
	}
	q = newQueue(r, name, r.queuePatterns.Match(name))
	r.queues[name] = q
	return q
}

// newQueue makes a queue with the given consumers (the pattern
// subscriptions that match its name).
func newQueue(r *router, name string, consumers []*subscription) *queue {
	q := &queue{r: r, name: name, consumers: slices.Clone(consumers)}
	_, q.volatile = r.storeFor(name).(store.Volatile)
	for _, sub := range consumers {
		sub.addQueue(q)
	}
	return q
}

// dropIfUnused forgets a queue that has neither messages nor consumers, so
// that short-lived queue names do not accumulate.
func (r *router) dropIfUnused(q *queue) {
	if q.name == dlqName {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.queues[q.name] == q && q.retireIfUnused() {
		delete(r.queues, q.name)
	}
}

// retireIfUnused ends a queue that has neither messages nor consumers: it
// is dead (users go to its successor) and its store is closed. Lock held:
// router.mu, so that no one finds the queue meanwhile.
func (q *queue) retireIfUnused() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.consumers) > 0 || q.depthLocked() > 0 || len(q.pending) > 0 {
		return false
	}
	q.dead = true
	q.uncrowdLocked()
	q.closeLocked()
	return true
}

// remove ends a queue the router has forgotten (a closing connection's
// temporary queue) with its messages, each passed to fn.
func (q *queue) remove(fn func(*message)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dead = true
	q.uncrowdLocked()
	q.drainLocked(fn)
}

// openStore opens the queue's store now (at start, for what it holds).
func (q *queue) openStore() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, err := q.open()
	return err
}

// close releases the queue's store (at shutdown).
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closeLocked()
}

// queueList is every queue now.
func (r *router) queueList() []*queue {
	r.mu.RLock()
	defer r.mu.RUnlock()
	qs := make([]*queue, 0, len(r.queues))
	for _, q := range r.queues {
		qs = append(qs, q)
	}
	return qs
}

// load opens the queues the store already holds (a persistent store after
// a restart), so that they show in the stats and dispatch as soon as a
// consumer comes.
func (r *router) load() error {
	names, err := r.store.Load()
	if err != nil {
		return err
	}
	if err := r.loadDurables(); err != nil {
		return err
	}
	for _, name := range names {
		q := r.queue(name)
		if err := q.openStore(); err != nil {
			return err
		}
		// Its stored records may all have been acknowledged, the last
		// acknowledgement written down at the stop (the store keeps the
		// record until then): an empty queue nobody consumes is not
		// kept, as at any other time.
		r.dropIfUnused(q)
	}
	return nil
}

// closeQueues releases every queue's store, then the store (at shutdown,
// once no connection is left).
func (r *router) closeQueues() {
	for _, q := range r.queueList() {
		q.close()
	}
	if err := r.store.Close(); err != nil {
		r.s.log.Warn("store: close failed", "err", err)
	}
}

// consumerReady runs after a connection's writer drained: queues that skipped
// its consumers for lack of room get another dispatch.
func (r *router) consumerReady(c *conn, b *batch) {
	for _, sub := range c.queueSubs() {
		for _, q := range sub.queueList() {
			q.dispatch(b)
		}
	}
}
