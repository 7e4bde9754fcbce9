package server

import (
	"bytes"
	"errors"
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/stompica/stompica/cluster"
	"github.com/stompica/stompica/frame"
	"github.com/stompica/stompica/internal/prefetch"
	"github.com/stompica/stompica/store"
)

// message is a published message, encoded once: shared holds everything of
// the MESSAGE frame after the per-subscription prefix (message-id,
// destination, user headers, content-length, body, NUL).
//
// The fields a queue dispatch, an ACK and the input gate read come first,
// in the struct's first 64 bytes (one cache line when the message is, as
// from queueMessages, 64-byte aligned): with thousands of messages in
// flight a message has long left the cache when it is handed out and
// again when it is acknowledged.
type message struct {
	id      uint64
	shared  []byte // headers escaped for STOMP 1.2
	expires int64  // unix ms; 0 = never
	// esc is set only when some header needs escaping: what the other
	// versions' encodings are made from (out of line, so that the usual
	// message stays small).
	esc *escaped
	sm  *store.Message // the store's record (see record); guarded like redelivered
	// idEnd is where the digits of id end in shared, which starts
	// "message-id:<id>" (0: unknown): the ack header copies them.
	idEnd  uint8
	pooled bool // the m of a queueMessage from queueMessages (see release)

	// Guarded by the owning queue's mu (queue messages only).
	redelivered bool
	gated       bool // counted by the input gate (see inputGate.hold)

	// kind caches whether the body is binary (see isBinary): known only
	// when a WebSocket subscriber needs it.
	kind    atomic.Uint32
	dest    string
	bodyLen int // the body is the bodyLen bytes before the final NUL of shared
}

// escaped holds what encodes a message for STOMP 1.0 and 1.1 when some
// header needs escaping (1.2 escapes differently, 1.0 not at all).
type escaped struct {
	raw     []frame.Header
	body    []byte
	mu      sync.Mutex
	shared0 []byte // 1.0: no escaping
	shared1 []byte // 1.1: no \r escape
}

// What a SEND's header is to the message made from it (see headerRole).
const (
	roleUser    = iota // copied into the message
	roleBroker         // set by the broker, never copied from a SEND
	roleExpires        // copied, and sets the expiry (absolute ms)
	roleTTL            // copied, and sets the expiry (ms from now)
)

// headerRole classifies a header key in one look.
func headerRole(k []byte) uint8 {
	switch string(k) {
	case "destination", "message-id", "subscription", "ack", "redelivered",
		"content-length", "receipt", "transaction":
		return roleBroker
	case "expires":
		return roleExpires
	case "ttl":
		return roleTTL
	}
	return roleUser
}

// brokerHeader reports whether the broker sets header k: it is never
// copied from a SEND.
func brokerHeader(k []byte) bool { return headerRole(k) == roleBroker }

// queueMessage is a queue message, its store record and, when it fits in
// inline, its encoding, allocated at once: one block of 448 bytes (a size
// class of its own, whose blocks start on 64-byte lines) that a dispatch
// touches from end to end, instead of two blocks apart. A larger encoding
// is allocated apart, and kept in big for the next large message the
// block carries (a small one, inline, lets it go: a block holds no memory
// its message does not use, which the memory budget would not see).
//
// The store record comes first: a dispatch reads it (store.Queue.Next) and
// then the message's first fields, so that both sit in the block's first
// two cache lines, which the processor fetches as a pair.
type queueMessage struct {
	sm     store.Message
	m      message
	big    []byte
	inline [queueInline]byte
}

// queueInline is the largest encoding a queueMessage holds inline: what
// fills its 448 bytes (272; a 117-byte body with a content-type header
// and a 19-digit id encodes in 224).
const queueInline = 448 - unsafe.Sizeof(message{}) - unsafe.Sizeof(store.Message{}) - unsafe.Sizeof([]byte(nil))

// queueMessages recycles queue messages, with their encoding buffers, once
// done with (see release): a queue message has one consumer, so the
// broker knows when the last reference goes, and the queue path then
// allocates nothing per message.
var queueMessages = sync.Pool{New: func() any { return new(queueMessage) }}

// release gives a queue message back to queueMessages once nothing refers
// to it: acknowledged (and acknowledged in the store), delivered to an
// auto-ack subscriber, expired or dropped. Only messages from newMessage
// go back; others are left to the collector. It writes nothing to the
// message: newMessage resets it on the publisher's side, where it is
// written anyway, so that an ACK does not take the lines of a message
// long out of the cache only to clear them.
func (m *message) release() {
	if m.pooled {
		m.recycle()
	}
}

// recycle is release for a message known to be pooled (whose pooled field
// the caller noted when the message was still in the cache, see unacked):
// it does not touch the message at all.
func (m *message) recycle() {
	// m is the m of a queueMessage (pooled).
	queueMessages.Put((*queueMessage)(unsafe.Add(unsafe.Pointer(m), -int(unsafe.Offsetof(queueMessage{}.m)))))
}

// newMessage copies what outlives the read buffer out of a SEND frame. A
// "ttl" header counts from now (the zero time: the current time).
func (r *router) newMessage(f *frame.Frame, dest string, now time.Time) *message {
	return r.newMessageSpare(f, dest, now, nil)
}

// newMessageSpare is newMessage for a connection that keeps a spare
// queue-message block (spare, not nil): a queue message takes the spare
// when there is one, and a fresh spare comes from the pool, prefetched, so
// that it is in the cache when the connection's next SEND fills it. With
// thousands of blocks live (large prefetch windows), a block from the pool
// has usually left the cache, and its first touch was the costliest
// instruction of the SEND path. The connection gives the spare back when it
// goes idle (see conn.idle).
func (r *router) newMessageSpare(f *frame.Frame, dest string, now time.Time, spare **queueMessage) *message {
	if !isQueue(dest) {
		m := &message{id: r.newID(), dest: dest}
		m.fill(f.Headers, f.Body, now, f.Plain, nil)
		return m
	}
	var qm *queueMessage
	if spare != nil && *spare != nil {
		qm, *spare = *spare, nil
	} else {
		qm = queueMessages.Get().(*queueMessage)
	}
	m := &qm.m
	*m = message{id: r.newID(), dest: dest, pooled: true, sm: &qm.sm}
	qm.sm = store.Message{}
	m.fill(f.Headers, f.Body, now, f.Plain, qm)
	if spare != nil {
		next := queueMessages.Get().(*queueMessage)
		prefetch.Block(unsafe.Pointer(next))
		*spare = next
	}
	return m
}

// putSpare gives a connection's spare block (see newMessageSpare) back to
// the pool.
func putSpare(spare **queueMessage) {
	if *spare != nil {
		queueMessages.Put(*spare)
		*spare = nil
	}
}

// pow10 are the powers of ten a uint64 holds.
var pow10 = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// decimalLen is the number of decimal digits of u, without a division per
// digit (message ids carry the node id in their top bits: 15 digits and
// more).
func decimalLen(u uint64) int {
	// 1233/4096 ≈ log10(2): t is ⌊log10(u)⌋ or one more.
	t := bits.Len64(u|1) * 1233 >> 12
	if u < pow10[t] {
		return max(t, 1) // 0 has one digit
	}
	return t + 1
}

// newID is a fresh message id.
func (r *router) newID() uint64 { return r.nextID.Add(1) }

// fill encodes the message from a SEND's (or a stored MESSAGE's) headers
// and body. plain says that no header needs escaping (the parser saw it:
// frame.Frame.Plain), so that only the destination is looked at. The
// encoding goes into qm's buffers when qm is not nil (m is its message).
func (m *message) fill(hdrs []frame.Header, body []byte, now time.Time, plain bool, qm *queueMessage) {
	m.bodyLen = len(body)
	// The exact size of the encoding when nothing needs escaping (escaping
	// at most doubles a header): the buffer's size class is what a queued
	// message costs.
	idLen, lenLen := decimalLen(m.id), decimalLen(uint64(len(body)))
	if plain {
		if n, withLen := rawRun(hdrs, m.dest, body, lenLen); n > 0 {
			// The SEND's header lines and body are already the encoding
			// after the message-id line: one copy (two without a
			// content-length header, added before the blank line).
			size := len(idPrefix) + idLen + 1 + n + 1 + len(body) + 1
			if !withLen {
				size += len("content-length:\n") + lenLen
			}
			b := encBuffer(qm, size)
			b = append(b, idPrefix...)
			b = appendDigits(b, m.id, idLen)
			b = append(b, '\n')
			if withLen {
				n += 1 + len(body) // the blank line and the body follow
			}
			b = append(b, unsafe.Slice(unsafe.SliceData(hdrs[0].Key), n)...)
			if !withLen {
				b = append(b, "content-length:"...)
				b = appendDigits(b, uint64(len(body)), lenLen)
				b = append(b, '\n', '\n')
				b = append(b, body...)
			}
			m.shared = append(b, 0)
			m.idEnd = uint8(len(idPrefix) + idLen)
			return
		}
	}
	size := len("message-id:\ndestination:\ncontent-length:\n\n\x00") + idLen +
		len(m.dest) + lenLen + len(body)
	escape := false
	destPlain := false // the destination is a plain header's value
	// One look at each header: skip marks the broker's among the first 64
	// for the encoding (which asks again for any after them).
	var skip uint64
	for i, h := range hdrs {
		switch headerRole(h.Key) {
		case roleBroker:
			skip |= 1 << uint(i) // 0 from i = 64 on
			if plain && !destPlain && len(h.Value) == len(m.dest) && string(h.Value) == m.dest {
				destPlain = true // the SEND's own destination, as usual
			}
			continue
		case roleExpires:
			if ms, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil && ms > 0 && m.expires == 0 {
				m.expires = ms
			}
		case roleTTL:
			if ms, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil && ms > 0 && m.expires == 0 {
				if now.IsZero() {
					now = time.Now()
				}
				m.expires = now.UnixMilli() + ms
			}
		}
		size += len(h.Key) + len(h.Value) + 2
		if !plain && !escape && (frame.NeedsEscape(h.Key) || frame.NeedsEscape(h.Value)) {
			escape = true
		}
	}
	escape = escape || !destPlain && frame.NeedsEscape(m.dest)
	if escape {
		size += size - len(body)
	}
	buf := encBuffer(qm, size)
	m.idEnd = uint8(len(idPrefix) + idLen)
	if !escape {
		m.shared = m.encodePlain(buf, hdrs, skip, body, idLen, lenLen)
		return
	}
	m.shared = m.encode(buf, hdrs, body, frame.Version12)
	e := &escaped{raw: make([]frame.Header, 0, len(hdrs))}
	for _, h := range hdrs {
		if !brokerHeader(h.Key) {
			e.raw = append(e.raw, frame.Header{Key: slices.Clone(h.Key), Value: slices.Clone(h.Value)})
		}
	}
	e.body = m.shared[len(m.shared)-1-len(body) : len(m.shared)-1]
	m.esc = e
}

// encBuffer is an empty buffer of capacity size for a message's encoding:
// qm's (inline, or its recycled large buffer) when qm is not nil.
func encBuffer(qm *queueMessage, size int) []byte {
	switch {
	case qm == nil:
		return make([]byte, 0, size)
	case size <= len(qm.inline):
		qm.big = nil // not held, uncounted, under a small message
		return qm.inline[:0:size]
	}
	// A recycled buffer serves if it is not much larger than needed (the
	// memory budget counts lengths, so waste must stay bounded).
	buf := qm.big[:0]
	if c := cap(buf); c < size || c > 2*size+256 {
		buf = make([]byte, 0, size)
		qm.big = buf
	}
	return buf
}

// rawRun recognises the usual SEND, whose encoding after the message-id
// line is the frame as the client wrote it: header lines ending in LF, the
// first "destination:<dest>", user headers only (see headerRole) after it,
// maybe ending with "content-length:<len(body)>" (in lenLen digits), then
// the blank line and a non-empty body. When they lie so, one after the
// other in one buffer (the read buffer the parser left them in: the caller
// says that no header needs escaping, see frame.Frame.Plain), it returns
// the number of bytes from the first header's key through the last
// header's LF, and whether that last header is the content-length; else 0.
// A header rewritten since (see conn.replyTo) is a slice elsewhere and
// breaks the run. Every byte between the headers is checked too.
func rawRun(hdrs []frame.Header, dest string, body []byte, lenLen int) (n int, withLen bool) {
	if len(hdrs) == 0 || len(body) == 0 {
		return 0, false
	}
	first, last := &hdrs[0], &hdrs[len(hdrs)-1]
	if string(first.Key) != "destination" || string(first.Value) != dest {
		return 0, false
	}
	users := hdrs[1:]
	if len(hdrs) > 1 && string(last.Key) == "content-length" {
		if v, ok := frame.ParseDigits(last.Value); !ok || len(last.Value) != lenLen || v != uint64(len(body)) {
			return 0, false
		}
		users, withLen = hdrs[1:len(hdrs)-1], true
	}
	for i := range users {
		if headerRole(users[i].Key) != roleUser {
			return 0, false
		}
	}
	start := unsafe.Pointer(unsafe.SliceData(first.Key))
	at := start // where the next header's key must start
	for i := range hdrs {
		h := &hdrs[i]
		k, v := unsafe.Pointer(unsafe.SliceData(h.Key)), unsafe.Pointer(unsafe.SliceData(h.Value))
		if k != at || len(h.Key) == 0 || unsafe.Add(k, len(h.Key)+1) != v || *(*byte)(unsafe.Add(k, len(h.Key))) != ':' {
			return 0, false
		}
		at = unsafe.Add(v, len(h.Value)+1)
		if *(*byte)(unsafe.Add(at, -1)) != '\n' {
			return 0, false
		}
	}
	if unsafe.Pointer(unsafe.SliceData(body)) != unsafe.Add(at, 1) || *(*byte)(at) != '\n' {
		return 0, false
	}
	return int(uintptr(at) - uintptr(start)), withLen
}

// encodePlain is encode for headers that need no escaping, in one pass:
// skip marks the broker's headers among the first 64 (see fill), and
// idLen and lenLen are the numbers of digits of the id and of the body's
// length.
func (m *message) encodePlain(b []byte, hdrs []frame.Header, skip uint64, body []byte, idLen, lenLen int) []byte {
	b = append(b, idPrefix...)
	b = appendDigits(b, m.id, idLen)
	b = append(b, "\ndestination:"...)
	b = append(b, m.dest...)
	b = append(b, '\n')
	for i, h := range hdrs {
		if skip>>uint(i)&1 != 0 || i >= 64 && brokerHeader(h.Key) {
			continue
		}
		b = append(b, h.Key...)
		b = append(b, ':')
		b = append(b, h.Value...)
		b = append(b, '\n')
	}
	b = append(b, "content-length:"...)
	b = appendDigits(b, uint64(len(body)), lenLen)
	b = append(b, '\n', '\n')
	b = append(b, body...)
	return append(b, 0)
}

// digitPairs holds "00" through "99".
const digitPairs = "00010203040506070809" + "10111213141516171819" + "20212223242526272829" +
	"30313233343536373839" + "40414243444546474849" + "50515253545556575859" +
	"60616263646566676869" + "70717273747576777879" + "80818283848586878889" + "90919293949596979899"

// appendDigits appends u in decimal; n is its number of digits
// (decimalLen(u)). The digits are written in place from the last, eight
// at a time while more remain (the four pairs of a block do not wait for
// each other, where a division per pair would), then two at a time.
func appendDigits(b []byte, u uint64, n int) []byte {
	l := len(b)
	b = slices.Grow(b, n)[:l+n]
	d := b[l:]
	i := n
	for u >= 1e8 {
		q := u / 1e8
		r := uint32(u - q*1e8)
		hi, lo := r/1e4, r%1e4
		p1, p2, p3, p4 := hi/100, hi%100, lo/100, lo%100
		i -= 8
		_ = d[i+7]
		d[i], d[i+1] = digitPairs[2*p1], digitPairs[2*p1+1]
		d[i+2], d[i+3] = digitPairs[2*p2], digitPairs[2*p2+1]
		d[i+4], d[i+5] = digitPairs[2*p3], digitPairs[2*p3+1]
		d[i+6], d[i+7] = digitPairs[2*p4], digitPairs[2*p4+1]
		u = q
	}
	v := uint32(u)
	for v >= 100 {
		q := v / 100
		r := v - q*100
		i -= 2
		d[i], d[i+1] = digitPairs[2*r], digitPairs[2*r+1]
		v = q
	}
	if v >= 10 {
		d[i-2], d[i-1] = digitPairs[2*v], digitPairs[2*v+1]
	} else {
		d[i-1] = byte('0' + v)
	}
	return b
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
	m, err := parseEncoded(sm.Data)
	if err != nil {
		return nil, err
	}
	if m.id != sm.ID {
		m.idEnd = 0 // shared carries another id
	}
	m.id, m.sm, m.expires = sm.ID, sm, sm.Expires
	sm.Value = m
	if cluster.NodeOf(sm.ID) != r.node {
		return m, nil // another node's id: never given here
	}
	for {
		n := r.nextID.Load()
		if n >= sm.ID || r.nextID.CompareAndSwap(n, sm.ID) {
			break
		}
	}
	return m, nil
}

// parseEncoded rebuilds a message from its STOMP 1.2 encoding (the shared
// part of a MESSAGE frame, as stored or as carried between nodes), keeping
// the message-id it carries.
func parseEncoded(data []byte) (*message, error) { return parseEncodedWith(data) }

// parseEncodedWith is parseEncoded with extra headers, which replace any
// of the same name the encoding carries.
func parseEncodedWith(data []byte, extra ...frame.Header) (*message, error) {
	p := frame.Parser{Version: frame.Version12, MaxFrame: len(data) + 16, MaxHeaders: 1 << 20, MaxHeaderLine: len(data) + 16}
	buf := append([]byte("MESSAGE\n"), data...)
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
	m := &message{dest: string(dest)}
	if id, ok := f.Get("message-id"); ok {
		m.id, _ = strconv.ParseUint(string(id), 10, 64)
	}
	hdrs := f.Headers
	if len(extra) > 0 {
		hdrs = slices.DeleteFunc(hdrs, func(h frame.Header) bool {
			return slices.ContainsFunc(extra, func(e frame.Header) bool { return bytes.Equal(e.Key, h.Key) })
		})
		hdrs = append(hdrs, extra...)
	}
	m.fill(hdrs, f.Body, time.Time{}, f.Plain && len(extra) == 0, nil)
	return m, nil
}

// encode appends the message's shared part for version v, escaping its
// headers as v requires (encodePlain is the usual case, with nothing to
// escape).
func (m *message) encode(b []byte, hdrs []frame.Header, body []byte, v frame.Version) []byte {
	b = append(b, idPrefix...)
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

// idPrefix starts every message's shared encoding, followed by its id.
const idPrefix = "message-id:"

// appendID appends the decimal message id, copied from the shared
// encoding (formatted once per message, not once per delivery).
func (m *message) appendID(b []byte) []byte {
	if e := int(m.idEnd); e > len(idPrefix) && e <= len(m.shared) {
		return append(b, m.shared[len(idPrefix):e]...)
	}
	return strconv.AppendUint(b, m.id, 10)
}

// sharedFor returns the encoding for a subscriber speaking v.
func (m *message) sharedFor(v frame.Version) []byte {
	e := m.esc
	if e == nil || v == frame.Version12 {
		return m.shared
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if v == frame.Version10 {
		if e.shared0 == nil {
			e.shared0 = m.encode(nil, e.raw, e.body, v)
		}
		return e.shared0
	}
	if e.shared1 == nil {
		e.shared1 = m.encode(nil, e.raw, e.body, v)
	}
	return e.shared1
}

// Values of message.kind.
const (
	kindUnknown = iota
	kindText
	kindBinary
)

// isBinary reports whether the body is not valid UTF-8 or has NULs: it
// travels in a binary WebSocket message. Worked out on first use, so that
// messages only TCP clients read never scan their body. Safe from any
// goroutine (two may work it out at once, to the same result).
func (m *message) isBinary() bool {
	switch m.kind.Load() {
	case kindText:
		return false
	case kindBinary:
		return true
	}
	bin := isBinary(m.shared[len(m.shared)-1-m.bodyLen : len(m.shared)-1])
	k := uint32(kindText)
	if bin {
		k = kindBinary
	}
	m.kind.Store(k)
	return bin
}

func (m *message) expired(nowMs int64) bool { return m.expires != 0 && m.expires <= nowMs }
