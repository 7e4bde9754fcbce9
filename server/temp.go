package server

import (
	"strconv"
	"strings"

	"github.com/stompica/stompica/frame"
)

// Temporary queues for request-reply, as RabbitMQ and ActiveMQ clients use
// them. "/temp-queue/NAME" is private to the connection that uses it: the
// broker keeps it as the queue "/reply-queue/ID.NAME" (ID is the session),
// which is what other clients see and send replies to.
//
//   - SUBSCRIBE to /temp-queue/NAME consumes the connection's private queue.
//   - A SEND with "reply-to:/temp-queue/NAME" is forwarded with reply-to set
//     to /reply-queue/ID.NAME; if the connection has no subscription to it,
//     one is made for it with the id "/temp-queue/NAME" (as RabbitMQ does).
//   - A SEND to /temp-queue/NAME goes to the sender's own private queue.
//   - When the connection ends its private queues go, and later replies to
//     them are dropped (counted as "undeliverable" in DIAG stale).
const (
	tempPrefix  = "/temp-queue/"
	replyPrefix = "/reply-queue/"
)

// tempName is the broker's name for this connection's /temp-queue/NAME.
func (c *conn) tempName(dest string) string {
	return replyPrefix + itoa(c.id) + "." + strings.TrimPrefix(dest, tempPrefix)
}

// replyOwner is the session id a /reply-queue/ID.NAME destination belongs to.
func replyOwner(dest string) (uint64, bool) {
	rest, ok := strings.CutPrefix(dest, replyPrefix)
	if !ok {
		return 0, false
	}
	id, _, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(id, 10, 64)
	return n, err == nil
}

// useTemp registers c as the owner of private queues.
func (c *conn) useTemp() {
	if c.ownsTemp {
		return
	}
	c.ownsTemp = true
	c.s.router.addTempOwner(c.id)
}

// addTempOwner records that session id has private queues: replies to
// them are queued while it lives.
func (r *router) addTempOwner(id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tempOwners == nil {
		r.tempOwners = make(map[uint64]bool)
	}
	r.tempOwners[id] = true
}

// replyTo rewrites a SEND's reply-to:/temp-queue/NAME header and makes sure
// the sender consumes the private queue the replies will go to.
func (c *conn) replyTo(f *frame.Frame) {
	for i := range f.Headers {
		h := &f.Headers[i]
		if string(h.Key) != "reply-to" {
			continue
		}
		if !strings.HasPrefix(string(h.Value), tempPrefix) {
			return
		}
		orig := string(h.Value)
		private := c.tempName(orig)
		h.Value = []byte(private)
		f.Plain = f.Plain && !frame.NeedsEscape(private) // see frame.Frame.Plain
		c.useTemp()
		for _, sub := range c.subs {
			if sub.dest == private {
				return
			}
		}
		if _, taken := c.subs[orig]; taken || len(c.subs) >= c.s.opts.MaxSubscriptions {
			return
		}
		c.subSeq++
		sub := newSubscription(c, orig, private, ackAuto, c.s.opts.Prefetch, c.subSeq)
		if c.subs == nil {
			c.subs = make(map[string]*subscription)
		}
		c.subs[sub.id] = sub
		c.s.router.subscribe(sub, &c.batch)
		return // STOMP: the first header wins
	}
}

// replyDeliverable reports whether a message for dest may be queued: a
// reply to a connection that has gone would never be read.
func (r *router) replyDeliverable(dest string) bool {
	owner, ok := replyOwner(dest)
	if !ok {
		return true
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.tempOwners[owner]
}

// dropTemp forgets a closing connection's private queues and their messages.
func (r *router) dropTemp(c *conn) {
	if !c.ownsTemp {
		return
	}
	prefix := replyPrefix + itoa(c.id) + "."
	r.mu.Lock()
	delete(r.tempOwners, c.id)
	var qs []*queue
	for name, q := range r.queues {
		if strings.HasPrefix(name, prefix) {
			qs = append(qs, q)
			delete(r.queues, name)
		}
	}
	r.mu.Unlock()
	for _, q := range qs {
		q.remove(func(*message) { r.undeliverable.Add(1) })
	}
}
