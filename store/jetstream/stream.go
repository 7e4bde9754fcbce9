package jetstream

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompica/stompica/store"
)

// Defaults of the stream bounds.
const (
	DefaultStreamMaxAge   = 24 * time.Hour
	DefaultStreamMaxBytes = 1 << 30
)

const (
	streamsName = "STOMPICA_STREAMS"
	streamsSubj = "stompica.s."
)

// openStreams creates (or updates) the stream that keeps the logs of
// /stream/ destinations and recorded topics: limits retention, the oldest
// messages dropped past the age or size bound.
func (s *Store) openStreams(ctx context.Context) error {
	age, size := s.o.StreamMaxAge, s.o.StreamMaxBytes
	if age <= 0 {
		age = DefaultStreamMaxAge
	}
	if size <= 0 {
		size = DefaultStreamMaxBytes
	}
	_, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        streamsName,
		Description: "stompica streams and recorded topics",
		Subjects:    []string{streamsSubj + "*"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      age,
		MaxBytes:    size,
		MaxMsgSize:  -1,
		Replicas:    1,
	})
	if err != nil {
		return errors.Join(errors.New("jetstream store: stream "+streamsName), err)
	}
	return nil
}

// Record appends data to the log of dest.
func (s *Store) Record(dest string, data []byte, done func(error)) {
	var f jetstream.PubAckFuture
	err := ErrClosed
	if !s.isClosed() {
		f, err = s.js.PublishAsync(streamsSubj+encodeName(dest), data)
	}
	if err != nil {
		go done(err) // never from inside the call
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(s.o.PublishTimeout)
		defer t.Stop()
		select {
		case <-f.Ok():
			done(nil)
		case err := <-f.Err():
			done(err)
		case <-t.C:
			done(errors.New("jetstream store: no acknowledgement in " + s.o.PublishTimeout.String()))
		case <-s.stop:
			done(ErrClosed)
		}
	}()
}

// Follow reads the log of dest through an ordered, ephemeral consumer.
func (s *Store) Follow(dest string, start store.StreamStart, original bool, fn func(seq uint64, data []byte)) (func(), error) {
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{streamsSubj + encodeName(dest)},
		InactiveThreshold: 5 * time.Minute,
	}
	switch start.Kind {
	case store.StartNext:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	case store.StartFirst:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case store.StartLast:
		cfg.DeliverPolicy = jetstream.DeliverLastPerSubjectPolicy
	case store.StartSeq:
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = max(start.Seq, 1)
	case store.StartTime:
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		t := start.Time
		cfg.OptStartTime = &t
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := s.js.OrderedConsumer(ctx, streamsName, cfg)
	if err != nil {
		return nil, err
	}
	// stopped keeps fn from running once stop has returned: the
	// consumer's goroutine may be inside fn, or about to call it.
	var mu sync.Mutex
	stopped := false
	quit := make(chan struct{})
	// With original, each message stored before the reader began waits
	// after the one before it as long as it was stored after it; the
	// ones stored since come at once (the ordered consumer of nats.go
	// does not pass a replay policy on).
	began := time.Now()
	var prevStored, prevSent time.Time
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		md, err := msg.Metadata()
		if err != nil {
			return
		}
		if original && md.Timestamp.Before(began) {
			if !prevStored.IsZero() {
				if wait := time.Until(prevSent.Add(md.Timestamp.Sub(prevStored))); wait > 0 {
					t := time.NewTimer(wait)
					select {
					case <-t.C:
					case <-quit:
						t.Stop()
						return
					}
				}
			}
			prevStored, prevSent = md.Timestamp, time.Now()
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			fn(md.Sequence.Stream, msg.Data())
		}
	})
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		cc.Stop()
		mu.Lock()
		stopped = true
		mu.Unlock()
	}, nil
}

// StreamList implements store.StreamList: the log's subjects with their
// message counts, and the first and last message of each (two reads per
// stream). JetStream keeps bytes for the whole log only: with one stream
// they are its bytes, with more each gets its share by message count.
func (s *Store) StreamList() ([]store.StreamInfo, store.StreamLimits, error) {
	if s.isClosed() {
		return nil, store.StreamLimits{}, ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, streamsName)
	if err != nil {
		return nil, store.StreamLimits{}, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(streamsSubj+"*"))
	if err != nil {
		return nil, store.StreamLimits{}, err
	}
	limits := store.StreamLimits{MaxAge: info.Config.MaxAge, MaxBytes: info.Config.MaxBytes}
	out := make([]store.StreamInfo, 0, len(info.State.Subjects))
	for subj, n := range info.State.Subjects {
		dest, err := decodeName(strings.TrimPrefix(subj, streamsSubj))
		if err != nil || n == 0 {
			continue // not one of ours
		}
		si := store.StreamInfo{Dest: dest, Messages: n}
		first, err := st.GetMsg(ctx, info.State.FirstSeq, jetstream.WithGetMsgSubject(subj))
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue // dropped by the limits since the count
			}
			return nil, limits, err
		}
		last, err := st.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			return nil, limits, err
		}
		si.FirstSeq, si.FirstTime = first.Sequence, first.Time
		si.LastSeq, si.LastTime = last.Sequence, last.Time
		out = append(out, si)
	}
	if info.State.Msgs > 0 {
		for i := range out {
			out[i].Bytes = info.State.Bytes * out[i].Messages / info.State.Msgs
			out[i].BytesExact = len(info.State.Subjects) == 1
		}
	}
	slices.SortFunc(out, func(a, b store.StreamInfo) int { return strings.Compare(a.Dest, b.Dest) })
	return out, limits, nil
}
