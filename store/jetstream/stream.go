package jetstream

import (
	"context"
	"errors"
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
// A sequence past the end of the log starts at the next message stored, and
// one below the oldest message kept starts at that one, as RabbitMQ's
// streams do with a numeric offset.
func (s *Store) Follow(dest string, start store.StreamStart, original bool, fn func(seq uint64, data []byte)) (func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
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
		// JetStream would wait for a sequence past the end; the next one
		// stored is where such a reader starts (the messages stored
		// between this look and the reader's start included).
		st, err := s.js.Stream(ctx, streamsName)
		if err != nil {
			return nil, err
		}
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = min(max(start.Seq, 1), st.CachedInfo().State.LastSeq+1)
	case store.StartTime:
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		t := start.Time
		cfg.OptStartTime = &t
	}
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
