package server

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stompica/stompica/cluster"
	"github.com/stompica/stompica/store"
	"github.com/stompica/stompica/sublist"
)

// router owns destinations: topic subscriptions (exact names in a map,
// patterns in a sublist), queues, and retained (TTL) topic messages.
type router struct {
	s     *Server
	store store.Store // where queue messages live
	// persistent is set when the store keeps messages on disk; temporary
	// queues then live in mem.
	persistent bool
	mem        store.Store

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

	dur durables // durable topic subscriptions

	// Topic messages held by client-ack subscriptions for prefetch credit.
	heldMsgs, heldBytes atomic.Int64

	// link carries topic messages and interest to other nodes (nil: this
	// node is alone). node is this node's id, in the top bits of its
	// message ids. patternRefs counts the subscriptions of each topic
	// pattern, for Interest (only with a link). Guarded by mu.
	link        cluster.Link
	node        uint16
	patternRefs map[string]int

	// nextID gives every message its id: every SEND, on every core, adds
	// to it, so it has a cache line of its own (the fields above are
	// read on every publish and ACK; sharing its line, each of those
	// reads would miss after the other core's last id).
	_      [64]byte
	nextID atomic.Uint64
	_      [56]byte
}

func newRouter(s *Server, st store.Store) *router {
	r := &router{
		s:             s,
		store:         st,
		topics:        make(map[string][]*subscription),
		patterns:      sublist.New[*subscription](0),
		queues:        make(map[string]*queue),
		queuePatterns: sublist.New[*subscription](0),
		link:          s.opts.Cluster,
		node:          s.opts.NodeID,
	}
	r.nextID.Store(cluster.IDBase(r.node))
	if r.link != nil {
		r.patternRefs = make(map[string]int)
	}
	if p, ok := st.(store.Persistent); ok {
		r.persistent, r.mem = true, store.NewMemory()
		r.nextID.Store(max(p.IDFloor(), cluster.IDBase(r.node)))
		// The input gate then counts messages the store has yet to
		// confirm (and the few it keeps in memory): buffering more than
		// a moment of the store's rate only costs memory.
		s.opts.MaxInputQueueSize = min(s.opts.MaxInputQueueSize, PersistentMaxInputQueueSize)
	}
	return r
}

// storeFor is the store of the named queue: temporary queues stay in
// memory whatever the store.
func (r *router) storeFor(name string) store.Store {
	if r.persistent && (strings.HasPrefix(name, tempPrefix) || strings.HasPrefix(name, replyPrefix)) {
		return r.mem
	}
	return r.store
}

// isQueue reports whether dest is a work queue: "/queue/...", the original's
// "#name" (but not the "#" wildcard), or a temporary queue.
func isQueue(dest string) bool {
	if strings.HasPrefix(dest, "/queue/") || strings.HasPrefix(dest, tempPrefix) || strings.HasPrefix(dest, replyPrefix) {
		return true
	}
	return len(dest) > 1 && dest[0] == '#' && dest[1] != '/' && dest[1] != '.'
}

// publish routes a message to its topic subscribers or its queue. It
// fails when the queue's store refuses the message.
func (r *router) publish(m *message, b *batch) error { return r.publishFrom(m, b, nil) }

// publishFrom is publish for a client's SEND or COMMIT: x holds back the
// frame's RECEIPT while an asynchronous store has not confirmed.
func (r *router) publishFrom(m *message, b *batch, x *sendCtx) error {
	_, err := r.publishTo(m, b, x, nil)
	return err
}

// publishTo is publishFrom with the message's queue, for a queue message,
// as the caller found it last (nil: looked up here; one deleted since is
// fine, enqueue goes on to its successor). It returns the queue it used
// (nil if none).
func (r *router) publishTo(m *message, b *batch, x *sendCtx, q *queue) (*queue, error) {
	b.msgs++ // counted when the batch is flushed
	b.st = &r.s.stats
	if m.pooled || isQueue(m.dest) { // pooled: a queue message from newMessage
		if !r.replyDeliverable(m.dest) {
			r.undeliverable.Add(1)
			return nil, nil
		}
		if m.expires != 0 && m.expired(time.Now().UnixMilli()) {
			r.s.stats.expired.Add(1)
			return nil, nil
		}
		if x != nil {
			x.flow = true
		}
		if q == nil {
			q = r.queue(m.dest)
		}
		return q, q.enqueue(m, b, x)
	}
	if m.expires != 0 && m.expired(time.Now().UnixMilli()) {
		r.s.stats.expired.Add(1)
		return nil, nil
	}
	if isStream(m.dest) || len(r.s.opts.Record) > 0 {
		if st := r.streams(); st != nil && r.recorded(m.dest) {
			r.record(st, m, x)
		} else if isStream(m.dest) {
			return nil, errNoStreams
		}
	}
	if r.dur.count.Load() > 0 {
		if err := r.copyToDurables(m, b, x); err != nil {
			return nil, err
		}
	}
	if r.link != nil {
		r.link.Published(m.dest, m.shared)
	}
	r.deliverTopic(m, b)
	return nil, nil
}

// deliverTopic hands a topic message to this node's subscribers, or
// retains it (with a TTL) when none matched.
func (r *router) deliverTopic(m *message, b *batch) {
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

func (r *router) subscribe(sub *subscription, b *batch) {
	r.s.stats.subscriptions.Add(1)
	sub.c.adminSub(sub, true)
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
	if sub.follow != nil {
		return // its stream reader delivers
	}
	r.mu.Lock()
	first := false
	if sub.pattern {
		r.patterns.Insert(sub.dest, sub)
		r.patternCount++
		if r.link != nil {
			r.patternRefs[sub.dest]++
			first = r.patternRefs[sub.dest] == 1
		}
	} else {
		first = len(r.topics[sub.dest]) == 0
		r.topics[sub.dest] = append(slices.Clip(r.topics[sub.dest]), sub)
	}
	if first && r.link != nil {
		r.link.Interest(sub.dest, true) // under mu: on and off come in order
	}
	r.mu.Unlock()
	r.takeRetained(sub, b)
}

func (r *router) unsubscribe(sub *subscription, b *batch) {
	r.s.stats.subscriptions.Add(^uint64(0))
	sub.c.adminSub(sub, false)
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
	if sub.follow != nil {
		sub.stopFollow()
		sub.dropUnacked()
		return
	}
	r.mu.Lock()
	last := false
	if sub.pattern {
		if r.patterns.Remove(sub.dest, sub) {
			r.patternCount--
			if r.link != nil {
				if r.patternRefs[sub.dest]--; r.patternRefs[sub.dest] <= 0 {
					delete(r.patternRefs, sub.dest)
					last = true
				}
			}
		}
	} else {
		old := r.topics[sub.dest]
		if i := slices.Index(old, sub); i >= 0 {
			nw := make([]*subscription, 0, len(old)-1)
			nw = append(append(nw, old[:i]...), old[i+1:]...)
			if len(nw) == 0 {
				delete(r.topics, sub.dest)
				last = true
			} else {
				r.topics[sub.dest] = nw
			}
		}
	}
	if last && r.link != nil {
		r.link.Interest(sub.dest, false)
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
	c.ackSub = nil
	for id, sub := range c.subs {
		delete(c.subs, id)
		r.unsubscribe(sub, b)
	}
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
