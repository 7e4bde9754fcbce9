package server

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"stompica/frame"
	"stompica/store"
	"stompica/sublist"
)

// router owns destinations: topic subscriptions (exact names in a map,
// patterns in a sublist), queues, and retained (TTL) topic messages.
type router struct {
	s      *Server
	nextID atomic.Uint64
	store  store.Store // where queue messages live

	mu            sync.RWMutex
	topics        map[string][]*subscription // copy-on-write slices
	patterns      *sublist.Sublist[*subscription]
	patternCount  int
	queues        map[string]*queue
	queuePatterns *sublist.Sublist[*subscription]

	tempOwners    map[uint64]bool // sessions with private /temp-queue/ queues
	undeliverable atomic.Uint64   // replies to private queues of closed sessions

	retMu    sync.Mutex
	retained []*message

	// Topic messages held by client-ack subscriptions for prefetch credit.
	heldMsgs, heldBytes atomic.Int64
}

func newRouter(s *Server, st store.Store) *router {
	return &router{
		s:             s,
		store:         st,
		topics:        make(map[string][]*subscription),
		patterns:      sublist.New[*subscription](0),
		queues:        make(map[string]*queue),
		queuePatterns: sublist.New[*subscription](0),
	}
}

// isQueue reports whether dest is a work queue: "/queue/...", the original's
// "#name" (but not the "#" wildcard), or a temporary queue.
func isQueue(dest string) bool {
	if strings.HasPrefix(dest, "/queue/") || strings.HasPrefix(dest, tempPrefix) || strings.HasPrefix(dest, replyPrefix) {
		return true
	}
	return len(dest) > 1 && dest[0] == '#' && dest[1] != '/' && dest[1] != '.'
}

// message is a published message, encoded once: shared holds everything of
// the MESSAGE frame after the per-subscription prefix (message-id,
// destination, user headers, content-length, body, NUL).
type message struct {
	id      uint64
	dest    string
	shared  []byte // headers escaped for STOMP 1.2
	binary  bool   // body is not valid UTF-8 or has NULs (WebSocket opcode)
	expires int64  // unix ms; 0 = never

	// Guarded by the owning queue's mu (queue messages only).
	redelivered bool
	sm          *store.Message // the store's record (see record)

	// Only when some header needs escaping: the other versions' encodings.
	raw     []frame.Header
	body    []byte
	encMu   sync.Mutex
	shared0 []byte // 1.0: no escaping
	shared1 []byte // 1.1: no \r escape
}

// brokerHeaders are set by the broker and never copied from a SEND.
func brokerHeader(k []byte) bool {
	switch string(k) {
	case "destination", "message-id", "subscription", "ack", "redelivered",
		"content-length", "receipt", "transaction":
		return true
	}
	return false
}

// queueMessage is a queue message and its store record, allocated at once.
type queueMessage struct {
	m  message
	sm store.Message
}

// newMessage copies what outlives the read buffer out of a SEND frame.
func (r *router) newMessage(f *frame.Frame, dest string, now time.Time) *message {
	var m *message
	if isQueue(dest) {
		qm := &queueMessage{}
		m = &qm.m
		m.sm = &qm.sm
	} else {
		m = &message{}
	}
	m.id, m.dest = r.nextID.Add(1), dest
	m.fill(f.Headers, f.Body, now)
	return m
}

// fill encodes the message from a SEND's (or a stored MESSAGE's) headers
// and body.
func (m *message) fill(hdrs []frame.Header, body []byte, now time.Time) {
	m.binary = isBinary(body)
	size := len(body) + len(m.dest) + 64
	escape := frame.NeedsEscape(m.dest)
	for _, h := range hdrs {
		size += len(h.Key) + len(h.Value) + 2
		if !escape && (frame.NeedsEscape(h.Key) || frame.NeedsEscape(h.Value)) {
			escape = true
		}
		switch string(h.Key) {
		case "expires":
			if ms, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil && ms > 0 && m.expires == 0 {
				m.expires = ms
			}
		case "ttl":
			if ms, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil && ms > 0 && m.expires == 0 {
				m.expires = now.UnixMilli() + ms
			}
		}
	}
	m.shared = m.encode(make([]byte, 0, size), hdrs, body, frame.Version12)
	if escape {
		m.raw = make([]frame.Header, 0, len(hdrs))
		for _, h := range hdrs {
			if !brokerHeader(h.Key) {
				m.raw = append(m.raw, frame.Header{Key: slices.Clone(h.Key), Value: slices.Clone(h.Value)})
			}
		}
		m.body = m.shared[len(m.shared)-1-len(body) : len(m.shared)-1]
	}
}

// record is the message as its queue's store holds it: its 1.2 encoding
// (what a persistent store writes), expiry, delivery count, and the
// message itself for the store to hand back.
func (m *message) record() *store.Message {
	if m.sm == nil {
		m.sm = &store.Message{}
	}
	if m.sm.Value == nil {
		m.sm.ID, m.sm.Data, m.sm.Expires, m.sm.Value = m.id, m.shared, m.expires, m
	}
	return m.sm
}

// decode rebuilds a message that a persistent store read back from
// storage (its Value is nil): the MESSAGE frame encoded in Data, with its
// id and expiry. Message ids given later stay above it.
func (r *router) decode(sm *store.Message) (*message, error) {
	p := frame.Parser{Version: frame.Version12, MaxFrame: len(sm.Data) + 16, MaxHeaders: 1 << 20, MaxHeaderLine: len(sm.Data) + 16}
	buf := append([]byte("MESSAGE\n"), sm.Data...)
	f, _, err := p.Parse(buf)
	if err != nil {
		return nil, err
	}
	if f == nil || f.Command != frame.MESSAGE {
		return nil, errors.New("not an encoded MESSAGE frame")
	}
	dest, ok := f.Get("destination")
	if !ok {
		return nil, errors.New("no destination header")
	}
	m := &message{id: sm.ID, dest: string(dest), sm: sm}
	m.fill(f.Headers, f.Body, time.Time{})
	m.expires = sm.Expires
	sm.Value = m
	for {
		n := r.nextID.Load()
		if n >= sm.ID || r.nextID.CompareAndSwap(n, sm.ID) {
			break
		}
	}
	return m, nil
}

func (m *message) encode(b []byte, hdrs []frame.Header, body []byte, v frame.Version) []byte {
	b = append(b, "message-id:"...)
	b = strconv.AppendUint(b, m.id, 10)
	b = append(b, '\n')
	b = frame.AppendHeader(b, "destination", m.dest, v)
	for _, h := range hdrs {
		if brokerHeader(h.Key) {
			continue
		}
		if v == frame.Version10 && (bytes.ContainsAny(h.Key, ":\r\n") || bytes.ContainsAny(h.Value, "\r\n")) {
			continue // STOMP 1.0 has no escaping: such a header cannot be sent
		}
		b = frame.AppendEscaped(b, h.Key, v)
		b = append(b, ':')
		b = frame.AppendEscaped(b, h.Value, v)
		b = append(b, '\n')
	}
	b = append(b, "content-length:"...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, '\n', '\n')
	b = append(b, body...)
	return append(b, 0)
}

// sharedFor returns the encoding for a subscriber speaking v.
func (m *message) sharedFor(v frame.Version) []byte {
	if m.raw == nil || v == frame.Version12 {
		return m.shared
	}
	m.encMu.Lock()
	defer m.encMu.Unlock()
	if v == frame.Version10 {
		if m.shared0 == nil {
			m.shared0 = m.encode(nil, m.raw, m.body, v)
		}
		return m.shared0
	}
	if m.shared1 == nil {
		m.shared1 = m.encode(nil, m.raw, m.body, v)
	}
	return m.shared1
}

func (m *message) expired(nowMs int64) bool { return m.expires != 0 && m.expires <= nowMs }

// publish routes a message to its topic subscribers or its queue. It
// fails when the queue's store refuses the message.
func (r *router) publish(m *message, b *batch) error { return r.publishFrom(m, b, nil) }

// publishFrom is publish for a client's SEND or COMMIT: x holds back the
// frame's RECEIPT while an asynchronous store has not confirmed.
func (r *router) publishFrom(m *message, b *batch, x *sendCtx) error {
	r.s.stats.msgsIn.Add(1)
	if isQueue(m.dest) {
		if !r.replyDeliverable(m.dest) {
			r.undeliverable.Add(1)
			return nil
		}
		if m.expired(time.Now().UnixMilli()) {
			r.s.stats.expired.Add(1)
			return nil
		}
		return r.queue(m.dest).enqueue(m, b, x)
	}
	if m.expires != 0 && m.expired(time.Now().UnixMilli()) {
		r.s.stats.expired.Add(1)
		return nil
	}
	r.mu.RLock()
	subs := r.topics[m.dest]
	havePatterns := r.patternCount > 0
	r.mu.RUnlock()
	n := 0
	for _, sub := range subs {
		if sub.deliverTopic(m, b) {
			n++
		}
	}
	if havePatterns {
		for _, sub := range r.patterns.Match(m.dest) {
			if sub.deliverTopic(m, b) {
				n++
			}
		}
	}
	if n == 0 {
		r.retain(m)
	}
	return nil
}

// retain keeps a topic message that found no subscriber when it has a TTL
// (its own, or the broker default), for the first matching subscriber.
func (r *router) retain(m *message) {
	if m.expires == 0 {
		if r.s.opts.TTL <= 0 {
			return
		}
		m.expires = time.Now().Add(r.s.opts.TTL).UnixMilli()
	}
	r.retMu.Lock()
	defer r.retMu.Unlock()
	if len(r.retained) >= r.s.opts.MaxStaleQueueSize {
		drop := len(r.retained) - r.s.opts.MaxStaleQueueSize + 1
		clear(r.retained[:drop])
		r.retained = r.retained[drop:]
		r.s.stats.staleDropped.Add(uint64(drop))
	}
	r.retained = append(r.retained, m)
}

// takeRetained hands retained messages matching a new subscription to it.
func (r *router) takeRetained(sub *subscription, b *batch) {
	r.retMu.Lock()
	if len(r.retained) == 0 {
		r.retMu.Unlock()
		return
	}
	now := time.Now().UnixMilli()
	var take []*message
	kept := r.retained[:0]
	for _, m := range r.retained {
		switch {
		case m.expired(now):
			r.s.stats.expired.Add(1)
		case sub.matches(m.dest):
			take = append(take, m)
		default:
			kept = append(kept, m)
		}
	}
	clear(r.retained[len(kept):])
	r.retained = kept
	r.retMu.Unlock()
	for _, m := range take {
		sub.deliverTopic(m, b)
	}
}

func (r *router) retainedCount() int {
	r.retMu.Lock()
	defer r.retMu.Unlock()
	return len(r.retained)
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
	q = &queue{r: r, name: name}
	r.queues[name] = q
	for _, sub := range r.queuePatterns.Match(name) {
		q.consumers = append(q.consumers, sub)
		sub.addQueue(q)
	}
	return q
}

// dropIfUnused forgets a queue that has neither messages nor consumers, so
// that short-lived queue names do not accumulate.
func (r *router) dropIfUnused(q *queue) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.consumers) == 0 && q.depthLocked() == 0 && len(q.pending) == 0 && r.queues[q.name] == q && q.name != dlqName {
		delete(r.queues, q.name)
		q.dead = true
		q.closeLocked()
	}
}

// load opens the queues the store already holds (a persistent store after
// a restart), so that they show in the stats and dispatch as soon as a
// consumer comes.
func (r *router) load() error {
	names, err := r.store.Load()
	if err != nil {
		return err
	}
	for _, name := range names {
		q := r.queue(name)
		q.mu.Lock()
		_, err := q.open()
		q.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// closeQueues releases every queue's store, then the store (at shutdown,
// once no connection is left).
func (r *router) closeQueues() {
	r.mu.Lock()
	qs := make([]*queue, 0, len(r.queues))
	for _, q := range r.queues {
		qs = append(qs, q)
	}
	r.mu.Unlock()
	for _, q := range qs {
		q.mu.Lock()
		q.closeLocked()
		q.mu.Unlock()
	}
	if err := r.store.Close(); err != nil {
		r.s.log.Warn("store: close failed", "err", err)
	}
}

func (r *router) subscribe(sub *subscription, b *batch) {
	r.s.stats.subscriptions.Add(1)
	if sub.queue {
		if sub.pattern {
			r.mu.Lock()
			r.queuePatterns.Insert(sub.dest, sub)
			var qs []*queue
			for name, q := range r.queues {
				if sublist.Matches(sub.dest, name) {
					qs = append(qs, q)
				}
			}
			r.mu.Unlock()
			for _, q := range qs {
				q.addConsumer(sub, b)
			}
		} else {
			r.queue(sub.dest).addConsumer(sub, b)
		}
		sub.c.addQueueSub(sub)
		return
	}
	r.mu.Lock()
	if sub.pattern {
		r.patterns.Insert(sub.dest, sub)
		r.patternCount++
	} else {
		r.topics[sub.dest] = append(slices.Clip(r.topics[sub.dest]), sub)
	}
	r.mu.Unlock()
	r.takeRetained(sub, b)
}

func (r *router) unsubscribe(sub *subscription, b *batch) {
	r.s.stats.subscriptions.Add(^uint64(0))
	if sub.queue {
		sub.c.removeQueueSub(sub)
		if sub.pattern {
			r.mu.Lock()
			r.queuePatterns.Remove(sub.dest, sub)
			r.mu.Unlock()
		}
		// Detach from every queue first: what the subscription held then
		// goes to other consumers (or waits), never back to itself.
		qs := sub.takeQueues()
		for _, q := range qs {
			q.removeConsumer(sub)
		}
		sub.dropUnacked()
		for _, q := range qs {
			r.dropIfUnused(q)
		}
		return
	}
	r.mu.Lock()
	if sub.pattern {
		if r.patterns.Remove(sub.dest, sub) {
			r.patternCount--
		}
	} else {
		old := r.topics[sub.dest]
		if i := slices.Index(old, sub); i >= 0 {
			nw := make([]*subscription, 0, len(old)-1)
			nw = append(append(nw, old[:i]...), old[i+1:]...)
			if len(nw) == 0 {
				delete(r.topics, sub.dest)
			} else {
				r.topics[sub.dest] = nw
			}
		}
	}
	r.mu.Unlock()
	sub.dropUnacked()
}

// dropConn removes every subscription of a closing connection.
func (r *router) dropConn(c *conn, b *batch) {
	// No more deliveries to this connection: messages its subscriptions
	// give back must not land on its other subscriptions.
	c.mu.Lock()
	c.leaving = true
	c.mu.Unlock()
	for id, sub := range c.subs {
		delete(c.subs, id)
		r.unsubscribe(sub, b)
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
		return false, nil
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

// queueInfo is a queue's depth, consumers and counters at one moment.
type queueInfo struct {
	Name      string `json:"name"`
	Depth     int    `json:"depth"`
	Consumers int    `json:"consumers"`
	Enqueued  uint64 `json:"enqueued"`
	Delivered uint64 `json:"delivered"`
}

// queueStats lists every queue (for DIAG, metrics and the console).
func (r *router) queueStats() []queueInfo {
	r.mu.RLock()
	qs := make([]*queue, 0, len(r.queues))
	for _, q := range r.queues {
		qs = append(qs, q)
	}
	r.mu.RUnlock()
	out := make([]queueInfo, 0, len(qs))
	for _, q := range qs {
		q.mu.Lock()
		info := queueInfo{Name: q.name, Depth: q.depthLocked(), Consumers: len(q.consumers)}
		q.mu.Unlock()
		info.Enqueued, info.Delivered = q.enqueued.Load(), q.delivered.Load()
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b queueInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// topicInfo is a topic's subscriber count.
type topicInfo struct {
	Name        string `json:"name"`
	Subscribers int    `json:"subscribers"`
}

// topicStats lists topics with exact-name subscribers and every pattern.
func (r *router) topicStats() []topicInfo {
	r.mu.RLock()
	out := make([]topicInfo, 0, len(r.topics))
	for name, subs := range r.topics {
		out = append(out, topicInfo{Name: name, Subscribers: len(subs)})
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b topicInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}
