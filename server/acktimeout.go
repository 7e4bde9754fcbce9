package server

import (
	"slices"
	"time"

	"github.com/stompica/stompica/internal/tick"
)

// ackTimeoutMemory is how many taken-back delivery ids a subscription
// remembers, so that their late ACK or NACK is ignored rather than an error.
const ackTimeoutMemory = 1024

// ackTimeoutLoop takes back, every quarter of Options.AckTimeout (between
// 10 ms and 1 s), the queue deliveries held past it.
func (s *Server) ackTimeoutLoop() {
	tick.Every(s.done, min(max(s.opts.AckTimeout/4, 10*time.Millisecond), time.Second), s.expireAcks)
}

// expireAcks redelivers the queue messages of client-ack subscriptions
// unacknowledged since before now - AckTimeout.
func (s *Server) expireAcks(now time.Time) {
	deadline := now.Add(-s.opts.AckTimeout).UnixNano()
	for _, c := range s.connList() {
		for _, sub := range c.queueSubs() {
			if sub.ack == ackAuto {
				continue
			}
			expired := sub.takeExpired(deadline)
			if len(expired) == 0 {
				continue
			}
			s.log.Debug("ack timeout: redelivering", "conn", c.id, "subscription", sub.id, "messages", len(expired))
			var b batch
			for i := len(expired) - 1; i >= 0; i-- {
				u := expired[i]
				u.q.avoidFor(u.m, sub)
				u.q.requeue(u.m, &b)
			}
			var qs []*queue
			for _, u := range expired {
				if !slices.Contains(qs, u.q) {
					qs = append(qs, u.q)
					u.q.dispatch(&b)
				}
			}
			if sub.pattern {
				// The credit freed is the consumer's on every queue it
				// matches: one that waits for it (see queue.noCredit)
				// looks again, as after an ACK (see router.ack).
				for _, q := range sub.queueList() {
					if !slices.Contains(qs, q) {
						qs = append(qs, q)
						q.dispatch(&b)
					}
				}
			}
			b.flush()
		}
	}
}

// avoidFor notes that m should go to another consumer than sub.
func (q *queue) avoidFor(m *message, sub *subscription) {
	q.mu.Lock()
	if q.avoid == nil {
		q.avoid = make(map[*message]*subscription)
	}
	q.avoid[m] = sub
	q.mu.Unlock()
}

// takeExpired removes the queue deliveries made before deadline (Unix ns)
// from the unacknowledged list, remembering their ids.
func (s *subscription) takeExpired(deadline int64) []unacked {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []uint64
	for u := range s.unacked.all() {
		if u.q != nil && u.sentAt() != 0 && u.sentAt() <= deadline {
			ids = append(ids, u.id)
		}
	}
	out := make([]unacked, 0, len(ids))
	for _, id := range ids {
		if i := s.unacked.find(id); i >= 0 {
			out = append(out, s.unacked.takeAt(i))
			s.expired = append(s.expired, id)
		}
	}
	if n := len(s.expired); n > ackTimeoutMemory {
		s.expired = slices.Delete(s.expired, 0, n-ackTimeoutMemory)
	}
	return out
}

// timedOut reports whether mid was taken back by the ack timeout.
func (s *subscription) timedOut(mid uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.expired, mid)
}
