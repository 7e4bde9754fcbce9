package server

import (
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/stompica/stompica/frame"
	"github.com/stompica/stompica/internal/deque"
	"github.com/stompica/stompica/sublist"
)

// subscription is one SUBSCRIBE of one connection.
type subscription struct {
	c        *conn
	id       string
	idx      uint64 // per-connection number used in ack ids
	dest     string
	pattern  bool
	queue    bool
	follow   *streamFollow // reads a stream (see stream.go), not the live topic
	ack      ackMode
	prefetch int    // client ack modes: most unacknowledged deliveries at once
	prefix   []byte // "MESSAGE\nsubscription:<id>\n", escaped for the connection's version
	ackHead  []byte // prefix then "ack:<idx>-" (STOMP 1.2 client ack modes), else nil

	// gone is set, under c.mu and mu, when the subscription ends: no
	// delivery is appended after it (so none follows the UNSUBSCRIBE's
	// RECEIPT).
	gone bool

	mu      sync.Mutex
	unacked ackList // wire order: appended under c.mu with the MESSAGE
	queues  []*queue
	// held are topic messages waiting for prefetch credit (client ack
	// modes), oldest first; heldBytes counts them against the connection's
	// pending-bytes cap.
	held      deque.Deque[*message]
	heldBytes int
	// expired are ids of deliveries the ack timeout took back (the
	// latest ackTimeoutMemory), so a late ACK of one is not an error.
	expired []uint64
}

func newSubscription(c *conn, id, dest string, mode ackMode, prefetch int, idx uint64) *subscription {
	sub := &subscription{
		c: c, id: id, idx: idx, dest: dest, ack: mode, prefetch: max(prefetch, 1),
		pattern: sublist.IsPattern(dest),
		queue:   isQueue(dest),
	}
	p := append([]byte(nil), "MESSAGE\nsubscription:"...)
	p = frame.AppendEscaped(p, id, c.version)
	p = append(p, '\n')
	if mode != ackAuto && c.version >= frame.Version12 {
		// The ack header up to the message id: "ack:<idx>-".
		n := len(p)
		p = append(p, "ack:"...)
		p = strconv.AppendUint(p, idx, 10)
		p = append(p, '-')
		sub.ackHead = p
		p = p[:n:n]
	}
	sub.prefix = p
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
	if s.ackHead != nil {
		b = append(b, s.ackHead...)
		b = m.appendID(b)
		b = append(b, '\n')
	} else {
		b = append(b, s.prefix...)
	}
	if redelivered {
		b = append(b, redeliveredLine...)
	}
	return b
}

// prefixMax bounds what appendPrefix writes for one delivery.
func (s *subscription) prefixMax() int {
	return max(len(s.ackHead)+maxIDDigits+1, len(s.prefix)) + len(redeliveredLine)
}

// maxIDDigits is the most digits a message id has (a uint64), and
// redeliveredLine the header appendPrefix adds to a redelivery.
const (
	maxIDDigits     = 20
	redeliveredLine = "redelivered:true\n"
)

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
		if s.unacked.len()+s.held.Len() >= c.s.opts.MaxUnacked {
			s.mu.Unlock()
			c.mu.Unlock()
			// A topic does not wait for acknowledgements (publishers never
			// block): a subscriber that stops acknowledging is cut off.
			c.slowConsumer("more than " + strconv.Itoa(c.s.opts.MaxUnacked) + " unacknowledged messages")
			return false
		}
		if s.held.Len() > 0 || s.unacked.len() >= s.prefetch {
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
		s.unacked.push(m, nil, 0)
		s.mu.Unlock()
	}
	c.appendDeliveryLocked(b, s, m, false)
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
	for s.held.Len() > 0 && s.unacked.len() < s.prefetch {
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
		s.unacked.push(m, nil, 0)
		c.appendDeliveryLocked(b, s, m, false)
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
	if s.ack != ackAuto && s.unacked.len() >= s.prefetch {
		return false // an atomic read, as momentary as one under s.mu
	}
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return s.creditLocked(0)
}

// creditLocked is credit for a consumer that has been handed run more
// messages than its unacknowledged list shows (see queueRun). Lock held:
// s.c.mu.
func (s *subscription) creditLocked(run int) bool {
	if s.ack != ackAuto && s.unacked.len()+run >= s.prefetch {
		return false
	}
	c := s.c
	if !c.takesDeliveriesLocked() {
		return false
	}
	if c.pendingLocked() >= c.s.opts.MaxPendingBytes/2 {
		c.queueWait = true
		return false
	}
	return true
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
