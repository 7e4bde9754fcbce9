package server

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"stompica/frame"
	"stompica/store"
)

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
	gated       bool           // counted by the input gate (see inputGate.hold)
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
	m.id, m.dest = r.newID(), dest
	m.fill(f.Headers, f.Body, now)
	return m
}

// newID is a fresh message id.
func (r *router) newID() uint64 { return r.nextID.Add(1) }

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
