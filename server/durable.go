package server

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/stompica/stompica/frame"
	"github.com/stompica/stompica/store"
	"github.com/stompica/stompica/sublist"
)

// durablePrefix names the queue that keeps a durable topic subscription's
// messages while its subscriber is away (and feeds it while it is there).
const durablePrefix = "/queue/$durable/"

// durables are the durable topic subscriptions: key -> topic (a name or a
// pattern). Every topic message matching one is also put on its queue.
type durables struct {
	mu    sync.RWMutex
	subs  map[string]string
	count atomic.Int32
}

// durableKey is the durable subscription a SUBSCRIBE or UNSUBSCRIBE asks
// for, in the header styles clients send: ActiveMQ (client-id on CONNECT,
// activemq.subscriptionName), Artemis (client-id, durable-subscription-name)
// and RabbitMQ (durable:true or persistent:true, auto-delete:false, and the
// subscription id). "" when it asks for none.
func (c *conn) durableKey(f *frame.Frame) (string, error) {
	for _, h := range []struct{ header, style string }{
		{"activemq.subscriptionName", "activemq"},
		{"durable-subscription-name", "artemis"},
		{"durable-subscriber-name", "artemis"},
	} {
		if n := f.GetString(h.header); n != "" {
			if c.clientID == "" {
				return "", protocolErr("a durable subscription (" + h.header + ") needs a client-id header on CONNECT")
			}
			return h.style + "/" + keyPart(c.clientID) + "/" + keyPart(n), nil
		}
	}
	if (f.GetString("durable") == "true" || f.GetString("persistent") == "true") && f.GetString("auto-delete") == "false" {
		if id := f.GetString("id"); id != "" {
			return "rabbitmq/" + keyPart(id), nil
		}
	}
	return "", nil
}

// keyPart makes a client's name one token of a queue name that cannot be
// taken for a wildcard.
func keyPart(s string) string {
	return "_" + strings.NewReplacer("%", "%25", "/", "%2F", ".", "%2E").Replace(s)
}

// durableSubscribe records the durable subscription key on topic (in the
// store when it keeps them) and returns the queue its subscriber reads.
func (r *router) durableSubscribe(key, topic string) (string, error) {
	r.dur.mu.Lock()
	defer r.dur.mu.Unlock()
	if r.dur.subs[key] != topic {
		if reg, ok := r.store.(store.Registry); ok {
			if err := reg.SaveDurable(key, topic); err != nil {
				return "", &storeError{op: "record the durable subscription on", queue: durablePrefix + key, err: err}
			}
		}
		if r.dur.subs == nil {
			r.dur.subs = make(map[string]string)
		}
		r.dur.subs[key] = topic
		r.dur.count.Store(int32(len(r.dur.subs)))
	}
	return durablePrefix + key, nil
}

// durableRemove ends the durable subscription key and drops what it kept.
func (r *router) durableRemove(key string) error {
	r.dur.mu.Lock()
	_, ok := r.dur.subs[key]
	delete(r.dur.subs, key)
	r.dur.count.Store(int32(len(r.dur.subs)))
	r.dur.mu.Unlock()
	if !ok {
		return nil
	}
	name := durablePrefix + key
	reg, persistent := r.store.(store.Registry)
	if persistent {
		if err := reg.SaveDurable(key, ""); err != nil {
			return &storeError{op: "remove the durable subscription on", queue: name, err: err}
		}
	}
	r.mu.Lock()
	q := r.queues[name]
	if q != nil {
		delete(r.queues, name)
	}
	r.mu.Unlock()
	if q != nil {
		q.remove(func(*message) {})
	}
	if persistent {
		if err := reg.Purge(name); err != nil {
			return &storeError{op: "purge", queue: name, err: err}
		}
	}
	return nil
}

// loadDurables restores the durable subscriptions a store kept.
func (r *router) loadDurables() error {
	reg, ok := r.store.(store.Registry)
	if !ok {
		return nil
	}
	subs, err := reg.LoadDurables()
	if err != nil {
		return err
	}
	r.dur.mu.Lock()
	r.dur.subs = subs
	r.dur.count.Store(int32(len(subs)))
	r.dur.mu.Unlock()
	return nil
}

// copyToDurables puts a topic message on the queue of every durable
// subscription whose topic matches, each as a queue message of its own.
func (r *router) copyToDurables(m *message, b *batch, x *sendCtx) error {
	r.dur.mu.RLock()
	var keys []string
	for key, topic := range r.dur.subs {
		if topic == m.dest || sublist.IsPattern(topic) && sublist.Matches(topic, m.dest) {
			keys = append(keys, key)
		}
	}
	r.dur.mu.RUnlock()
	for _, key := range keys {
		qm := &queueMessage{}
		c := &qm.m
		c.sm = &qm.sm
		c.id, c.dest, c.shared, c.bodyLen, c.expires, c.idEnd = m.id, m.dest, m.shared, m.bodyLen, m.expires, m.idEnd
		c.kind.Store(m.kind.Load())
		c.esc = m.esc
		if err := r.queue(durablePrefix+key).enqueue(c, b, x); err != nil {
			return err
		}
	}
	return nil
}

// durableStats lists the durable subscriptions with their queues' figures,
// in key order.
func (r *router) durableStats() []durableInfo {
	r.dur.mu.RLock()
	out := make([]durableInfo, 0, len(r.dur.subs))
	for key, topic := range r.dur.subs {
		out = append(out, durableInfo{Key: key, Topic: topic, Queue: durablePrefix + key})
	}
	r.dur.mu.RUnlock()
	slices.SortFunc(out, func(a, b durableInfo) int { return strings.Compare(a.Key, b.Key) })
	for i := range out {
		d := &out[i]
		d.Style, _, _ = strings.Cut(d.Key, "/")
		d.Stored = r.persistent
		if q, ok := r.queueInfoOf(d.Queue); ok {
			d.Depth, d.Consumers, d.Unacked = q.Depth, q.Consumers, q.Unacked
		}
		d.Connected = d.Consumers > 0
	}
	return out
}
