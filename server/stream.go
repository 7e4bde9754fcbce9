package server

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stompica/stompica/frame"
	"github.com/stompica/stompica/store"
	"github.com/stompica/stompica/sublist"
)

// streamPrefix names append-only logs: topic-like destinations whose
// messages the store keeps (bounded by age and size) for replay.
const streamPrefix = "/stream/"

const offsetHeader = "x-stream-offset"

// errNoStreams refuses /stream/ destinations without a store that keeps
// streams.
var errNoStreams = protocolErr("streams need --data-dir or --nats")

func isStream(dest string) bool { return strings.HasPrefix(dest, streamPrefix) }

// streams is the router's store of streams, nil without one.
func (r *router) streams() store.Streams {
	if !r.persistent {
		return nil
	}
	st, _ := r.store.(store.Streams)
	return st
}

// recorded reports whether a topic destination's messages are kept in a
// stream: /stream/ destinations, and the ones Options.Record matches.
func (r *router) recorded(dest string) bool {
	if isStream(dest) {
		return true
	}
	for _, p := range r.s.opts.Record {
		if p == dest || sublist.IsPattern(p) && sublist.Matches(p, dest) {
			return true
		}
	}
	return false
}

// record appends a topic message to its stream; x's RECEIPT waits until it
// is stored, and a refusal is answered with an ERROR.
func (r *router) record(st store.Streams, m *message, x *sendCtx) {
	if x == nil {
		st.Record(m.dest, m.shared, func(err error) {
			if err != nil {
				r.s.log.Warn("store: a topic message was not recorded", "destination", m.dest, "err", err)
			}
		})
		return
	}
	w := x.wait()
	dest := m.dest
	st.Record(dest, m.shared, func(err error) {
		if err != nil {
			err = storeErr("store: cannot record stream "+strconv.Quote(dest)+": "+err.Error(), err)
		}
		w.done(err)
	})
}

// parseOffset reads an x-stream-offset: first, last, next, a stream
// sequence, timestamp=<epoch seconds>, or a time back from now (-5m).
func parseOffset(v string, now time.Time) (store.StreamStart, error) {
	switch v {
	case "first":
		return store.StreamStart{Kind: store.StartFirst}, nil
	case "last":
		return store.StreamStart{Kind: store.StartLast}, nil
	case "next":
		return store.StreamStart{Kind: store.StartNext}, nil
	}
	if ts, ok := strings.CutPrefix(v, "timestamp="); ok {
		sec, err := strconv.ParseFloat(ts, 64)
		if err != nil || sec < 0 {
			return store.StreamStart{}, protocolErr("invalid x-stream-offset " + strconv.Quote(v) + ": want timestamp=<epoch seconds>")
		}
		return store.StreamStart{Kind: store.StartTime, Time: time.UnixMilli(int64(sec * 1000))}, nil
	}
	if strings.HasPrefix(v, "-") {
		d, err := time.ParseDuration(v[1:])
		if err != nil || d < 0 {
			return store.StreamStart{}, protocolErr("invalid x-stream-offset " + strconv.Quote(v) + ": want a time back such as -5m")
		}
		return store.StreamStart{Kind: store.StartTime, Time: now.Add(-d)}, nil
	}
	seq, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return store.StreamStart{}, protocolErr("invalid x-stream-offset " + strconv.Quote(v) + ": want first, last, next, a number, timestamp=<epoch seconds> or a time back such as -5m")
	}
	return store.StreamStart{Kind: store.StartSeq, Seq: seq}, nil
}

// streamFollow is a subscription that reads a stream (replay, then the
// messages stored after), rather than the live topic.
type streamFollow struct {
	start    store.StreamStart
	original bool
	stop     func()
	ended    atomic.Bool
}

// streamSubscription reports whether a SUBSCRIBE to target reads a
// stream, and from where. A /stream/ destination always does (from next
// without x-stream-offset); a recorded topic does with x-stream-offset.
func (c *conn) streamSubscription(f *frame.Frame, target string) (*streamFollow, error) {
	off, hasOff := f.Get(offsetHeader)
	speed, hasSpeed := f.Get("x-replay-speed")
	if !hasOff && !isStream(target) {
		if hasSpeed {
			return nil, protocolErr("x-replay-speed needs x-stream-offset")
		}
		return nil, nil
	}
	if isQueue(target) {
		return nil, protocolErr("x-stream-offset is for /stream/ destinations and recorded topics, not queues")
	}
	r := c.s.router
	if r.streams() == nil {
		return nil, errNoStreams
	}
	if sublist.IsPattern(target) {
		if hasOff || hasSpeed {
			return nil, protocolErr("x-stream-offset needs a destination without wildcards")
		}
		return nil, nil // a pattern reads the live messages, as on a topic
	}
	if !r.recorded(target) {
		return nil, protocolErr("destination " + strconv.Quote(target) + " is not recorded (see --record): x-stream-offset cannot replay it")
	}
	sf := &streamFollow{start: store.StreamStart{Kind: store.StartNext}}
	if hasOff {
		var err error
		if sf.start, err = parseOffset(string(off), time.Now()); err != nil {
			return nil, err
		}
	}
	if hasSpeed {
		switch string(speed) {
		case "original":
			sf.original = true
		case "max", "":
		default:
			return nil, protocolErr("invalid x-replay-speed " + strconv.Quote(string(speed)) + ": want original or max")
		}
	}
	return sf, nil
}

// startFollow starts the subscription's stream reader.
func (s *subscription) startFollow() error {
	st := s.c.s.router.streams()
	stop, err := st.Follow(s.dest, s.follow.start, s.follow.original, s.streamDeliver)
	if err != nil {
		return storeErr("store: cannot read stream "+strconv.Quote(s.dest)+": "+err.Error(), err)
	}
	s.follow.stop = stop
	return nil
}

// stopFollow ends the stream reader; no delivery follows.
func (s *subscription) stopFollow() {
	s.follow.ended.Store(true)
	if s.follow.stop != nil {
		s.follow.stop()
	}
}

// streamDeliver hands one stream message to the subscriber, with its
// x-stream-offset. The reader waits while the subscriber cannot take more
// (output buffer half full, or no prefetch credit in a client ack mode),
// so a long replay paces itself to the client instead of cutting it off.
func (s *subscription) streamDeliver(seq uint64, data []byte) {
	c := s.c
	for !s.follow.ended.Load() && !s.roomForStream() {
		time.Sleep(time.Millisecond)
	}
	if s.follow.ended.Load() {
		return
	}
	m, err := parseEncodedWith(data, frame.Header{Key: []byte(offsetHeader), Value: strconv.AppendUint(nil, seq, 10)})
	if err != nil {
		c.logger().Warn("store: skipping an unreadable stream message", "destination", s.dest, "offset", seq, "err", err)
		return
	}
	if m.expires != 0 && m.expired(time.Now().UnixMilli()) {
		c.s.stats.expired.Add(1)
		return
	}
	var b batch
	s.deliverTopic(m, &b)
	b.flush()
}

// roomForStream reports whether the subscriber takes one more stream
// message now.
func (s *subscription) roomForStream() bool {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.takesDeliveriesLocked() || s.gone {
		return true // the delivery is dropped
	}
	if c.pendingLocked() >= c.s.opts.MaxPendingBytes/2 {
		return false
	}
	if s.ack == ackAuto {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held.Len() == 0 && s.unacked.len() < s.prefetch
}
