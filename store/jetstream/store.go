// Package jetstream is a persistent store.Store on NATS JetStream: an
// embedded nats-server in the process (no network listener of its own,
// JetStream file storage in a data directory), or an external NATS server
// or cluster with JetStream, through the same code.
//
// Every queue is a subject of one work-queue stream, with one durable pull
// consumer that the store drives. Append is an asynchronous publish whose
// acknowledgement releases the SEND's RECEIPT; messages appended while the
// queue's earlier publishes are in flight go together as one record (group
// commit: one JetStream message, write, acknowledgement, delivery and ack
// for many queue messages). Next hands out a record stored in this run
// from memory as soon as it is stored, and otherwise from a small
// read-ahead fetched as consumers take (the backlog stays on disk). A
// record is acknowledged (and so removed) once all its messages are.
// Messages put back stay with the queue in memory until taken again;
// after a restart, every message not acknowledged is delivered again,
// flagged redelivered when it may have been delivered before.
package jetstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stompica/stompica/internal/deque"
	"github.com/stompica/stompica/internal/tick"
	"github.com/stompica/stompica/store"
)

// Fsync says when JetStream forces written messages to the disk.
type Fsync int

const (
	// FsyncInterval (the default) writes each message to the operating
	// system before it is acknowledged, and forces the files to the disk
	// every SyncInterval: a crash of the process loses nothing; a power
	// loss or kernel crash may lose the last interval.
	FsyncInterval Fsync = iota
	// FsyncAlways forces every record to the disk before it is
	// acknowledged: nothing acknowledged is lost even on power loss, at a
	// cost in throughput (one fsync per record of messages).
	FsyncAlways
)

// ParseFsync reads "always" or "interval".
func ParseFsync(s string) (Fsync, error) {
	switch s {
	case "always":
		return FsyncAlways, nil
	case "interval", "":
		return FsyncInterval, nil
	}
	return 0, fmt.Errorf("fsync %q: want always or interval", s)
}

// Defaults of Options.
const (
	DefaultSyncInterval   = time.Second
	DefaultPublishTimeout = 10 * time.Second
	DefaultDedupWindow    = 2 * time.Minute
)

// Options configures a Store. Exactly one of Dir and URL is set.
type Options struct {
	// Dir is the data directory of an embedded NATS server (created when
	// missing). It is locked while the store is open.
	Dir string
	// URL is an external NATS server or cluster with JetStream.
	URL string
	// Fsync and SyncInterval (default DefaultSyncInterval) choose when
	// the embedded server forces data to the disk. An external server
	// keeps its own settings.
	Fsync        Fsync
	SyncInterval time.Duration
	// MaxBytes bounds the bytes of stored queue messages (0 = as much as
	// the disk holds). Past it a SEND is refused (an ERROR, no RECEIPT).
	MaxBytes int64
	// MaxMessage is the largest message the store must take (default 16
	// MiB; the embedded server's max_payload is set from it).
	MaxMessage int
	// PublishTimeout bounds the wait for the store's acknowledgement of a
	// message (default DefaultPublishTimeout); past it the SEND fails.
	PublishTimeout time.Duration
	// DedupWindow is how long a message's x-dedup-id is remembered
	// (default DefaultDedupWindow).
	DedupWindow time.Duration
	// StreamMaxAge and StreamMaxBytes bound the logs of /stream/
	// destinations and recorded topics (defaults DefaultStreamMaxAge and
	// DefaultStreamMaxBytes): older messages are dropped first.
	StreamMaxAge   time.Duration
	StreamMaxBytes int64
	// Logger receives the store's logs and, at debug level, the embedded
	// server's (default slog.Default()).
	Logger *slog.Logger
}

const (
	streamName = "STOMPICA_QUEUES"
	subjPrefix = "stompica.q."
	metaStream = "STOMPICA_META"
	metaSubj   = "stompica.meta."
	epochSubj  = metaSubj + "epoch"
	hintSubj   = metaSubj + "hint."
	lockName   = "stompica.lock"

	// hintStep is how far ahead of the delivered messages the redelivery
	// watermark is written (one write per hintStep deliveries).
	hintStep = 4096
	// headerLen is the store's header before the message's Data: its id
	// and expiry.
	headerLen = 16
)

// ErrClosed is the error of operations on a closed store.
var ErrClosed = errors.New("jetstream store: closed")

// ErrLocked is the error of Open when another process holds the data
// directory.
var ErrLocked = errors.New("data dir in use by another stompica")

// Store is a store.Store on JetStream.
type Store struct {
	o   Options
	log *slog.Logger
	ns  *natsserver.Server // nil with an external server
	nc  *nats.Conn
	// metaNC writes the redelivery watermarks: its own connection, so a
	// write does not queue behind the messages being published.
	metaNC *nats.Conn
	js     jetstream.JetStream
	lock   *os.File

	ackPrefix   string // reply subjects of publishes: ackPrefix + n
	fetchPrefix string // reply subjects of pull requests: fetchPrefix + queue id

	stream jetstream.Stream
	epoch  uint64

	mu      sync.Mutex
	queues  map[string]*queue
	byID    map[uint64]*queue
	bySubj  map[string]*queue
	closed  bool
	pmu     sync.Mutex
	pending map[uint64]*pub
	nextPub uint64
	// sweepFrom is the oldest publish that may be pending.
	sweepFrom uint64
	// inflight publishes were sent and await their acknowledgement;
	// waiting ones wait for room (see maxInflight).
	inflight      int
	inflightBytes int
	waiting       deque.Deque[*pub]
	// rec tracks the records of streams (stream.go).
	rec recorder
	// pendingMsgs are the queue messages in the pending publishes.
	pendingMsgs int
	// msgs counts the stored queue messages not yet acknowledged.
	msgs atomic.Int64
	// heldBytes are the bytes of the queues' held records (see
	// maxHeldBytes).
	heldBytes atomic.Int64

	stop chan struct{}
	wg   sync.WaitGroup

	storeLatency atomic.Int64 // last publish round trip, ns
	duplicates   atomic.Uint64
	lastAck      atomic.Int64 // when the last acknowledgement came, Unix ns
}

// pub is one JetStream message on its way: a batch record of one or more
// queue messages (see queue.Append), waiting for its acknowledgement
// (sent), or for room to be sent.
type pub struct {
	q     *queue
	ms    []*store.Message
	dones []store.Done
	at    time.Time
	n     uint64
	size  int
	sent  bool
	data  []byte // the record (see appendRecord)
	dedup string
}

// Open starts (or connects to) NATS and opens the store's streams.
func Open(o Options) (*Store, error) {
	if (o.Dir == "") == (o.URL == "") {
		return nil, errors.New("jetstream store: set exactly one of Dir and URL")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	if o.DedupWindow <= 0 {
		o.DedupWindow = DefaultDedupWindow
	}
	if o.MaxMessage <= 0 {
		o.MaxMessage = 16 << 20
	}
	s := &Store{
		o:       o,
		log:     o.Logger,
		queues:  make(map[string]*queue),
		byID:    make(map[uint64]*queue),
		bySubj:  make(map[string]*queue),
		pending: make(map[uint64]*pub),
		stop:    make(chan struct{}),
	}
	if err := s.open(); err != nil {
		s.shutdown()
		return nil, err
	}
	return s, nil
}

func (s *Store) open() error {
	var copts []nats.Option
	url := s.o.URL
	known := false // the data dir held a stompica store before
	if s.o.Dir != "" {
		var err error
		if known, err = s.lockDir(); err != nil {
			return err
		}
		if err := s.startServer(); err != nil {
			return err
		}
		copts = append(copts, nats.InProcessServer(s.ns))
		url = ""
	}
	copts = append(copts,
		nats.Name("stompica"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		// While disconnected, a publish fails at once (the SEND gets an
		// ERROR) rather than waiting in a buffer.
		nats.ReconnectBufSize(-1),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				return // closed by Close
			}
			s.log.Warn("store: NATS connection lost; SENDs to durable queues fail until it is back", "err", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			s.log.Info("store: NATS connection back")
			s.reconnected()
		}),
	)
	nc, err := nats.Connect(url, copts...)
	if err != nil {
		return fmt.Errorf("jetstream store: cannot connect to NATS: %w", err)
	}
	s.nc = nc
	if s.metaNC, err = nats.Connect(url, copts...); err != nil {
		return fmt.Errorf("jetstream store: cannot connect to NATS: %w", err)
	}
	inbox := nats.NewInbox()
	s.ackPrefix, s.fetchPrefix = inbox+".a.", inbox+".f."
	ackSub, err := nc.Subscribe(s.ackPrefix+"*", s.onPubAck)
	if err == nil {
		err = ackSub.SetPendingLimits(-1, -1)
	}
	if err != nil {
		return err
	}
	fetchSub, err := nc.Subscribe(s.fetchPrefix+"*", s.onFetch)
	if err == nil {
		err = fetchSub.SetPendingLimits(-1, -1)
	}
	if err != nil {
		return err
	}
	s.js, err = jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if known && s.ns != nil {
		// Streams the directory held must load: JetStream skips what it
		// cannot read, and creating them afresh would hide the loss.
		for _, name := range []string{streamName, metaStream} {
			if _, err := os.Stat(filepath.Join(s.o.Dir, "jetstream", "$G", "streams", name)); err != nil {
				continue
			}
			if _, err := s.js.Stream(ctx, name); err != nil {
				return fmt.Errorf("data dir %s is damaged: stream %s is on disk but JetStream cannot load it (%v); see the log at debug level, and move the directory away to start afresh", s.o.Dir, name, err)
			}
		}
	}
	maxBytes := s.o.MaxBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	s.stream, err = s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        streamName,
		Description: "stompica durable queues",
		Subjects:    []string{subjPrefix + "*", subjPrefix + "*.*"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    maxBytes,
		MaxMsgSize:  -1,
		Replicas:    1,
		Duplicates:  s.o.DedupWindow,
	})
	if err != nil {
		return fmt.Errorf("jetstream store: stream %s: %w", streamName, err)
	}
	meta, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              metaStream,
		Description:       "stompica store metadata",
		Subjects:          []string{metaSubj + ">"},
		Storage:           jetstream.FileStorage,
		MaxMsgsPerSubject: 1,
		Replicas:          1,
	})
	if err != nil {
		return fmt.Errorf("jetstream store: stream %s: %w", metaStream, err)
	}
	if err := s.openStreams(ctx); err != nil {
		return err
	}
	counts, err := s.counts(ctx, subjPrefix+">")
	if err != nil {
		return fmt.Errorf("jetstream store: %w", err)
	}
	for _, n := range counts {
		s.msgs.Add(n)
	}
	// The epoch counts the starts: message ids of this run are above
	// every id an earlier run gave.
	if m, err := meta.GetLastMsgForSubject(ctx, epochSubj); err == nil && len(m.Data) == 8 {
		s.epoch = binary.BigEndian.Uint64(m.Data)
	} else if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("jetstream store: reading the epoch: %w", err)
	}
	s.epoch++
	if _, err := s.js.Publish(ctx, epochSubj, binary.BigEndian.AppendUint64(nil, s.epoch)); err != nil {
		return fmt.Errorf("jetstream store: writing the epoch: %w", err)
	}
	s.wg.Add(1)
	go s.sweep()
	return nil
}

// startServer runs the embedded NATS server: no listener, JetStream in Dir.
func (s *Store) startServer() error {
	maxPayload := int32(min(max(s.o.MaxMessage+64<<10, 1<<20), 64<<20))
	opts := &natsserver.Options{
		ServerName:         "stompica",
		DontListen:         true,
		NoSigs:             true,
		JetStream:          true,
		StoreDir:           s.o.Dir,
		JetStreamMaxMemory: 64 << 20,
		SyncInterval:       s.o.SyncInterval,
		SyncAlways:         s.o.Fsync == FsyncAlways,
		MaxPayload:         maxPayload,
		MaxPending:         max(int64(maxPayload)*4, 256<<20),
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return fmt.Errorf("jetstream store: embedded NATS server: %w", err)
	}
	l := &natsLogger{log: s.log}
	ns.SetLoggerV2(l, s.log.Enabled(context.Background(), slog.LevelDebug), false, false)
	ns.Start()
	s.ns = ns
	if !ns.ReadyForConnections(30 * time.Second) {
		return fmt.Errorf("jetstream store: the embedded NATS server did not start in %s: %s", s.o.Dir, l.lastError())
	}
	if !ns.JetStreamEnabled() {
		return fmt.Errorf("jetstream store: JetStream could not start in %s: %s", s.o.Dir, l.lastError())
	}
	return nil
}

// lockDir creates and locks the data dir. It reports whether the directory
// held a stompica store, and refuses one that holds something else.
func (s *Store) lockDir() (known bool, err error) {
	dir := s.o.Dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("data dir: %w", err)
	}
	lockPath := filepath.Join(dir, lockName)
	_, statErr := os.Stat(lockPath)
	known = statErr == nil
	if !known {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return false, fmt.Errorf("data dir: %w", err)
		}
		if len(entries) > 0 {
			names := make([]string, 0, 3)
			for _, e := range entries[:min(len(entries), 3)] {
				names = append(names, e.Name())
			}
			return false, fmt.Errorf("data dir %s is not a stompica data dir (it holds %s and no %s): give an empty or new directory", dir, strings.Join(names, ", "), lockName)
		}
	}
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return known, fmt.Errorf("data dir: %w", err)
	}
	if err := lockFile(f); err != nil {
		owner, _ := os.ReadFile(lockPath)
		f.Close()
		who := strings.TrimSpace(string(owner))
		if who != "" {
			who = " (" + who + ")"
		}
		return known, fmt.Errorf("%w: %s is locked%s", ErrLocked, dir, who)
	}
	f.Truncate(0) //nolint:errcheck // informational
	fmt.Fprintf(f, "pid %d\n", os.Getpid())
	s.lock = f
	return known, nil
}

// Load returns the queues holding messages.
func (s *Store) Load() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	counts, err := s.counts(ctx, subjPrefix+">")
	if err != nil {
		return nil, fmt.Errorf("jetstream store: %w", err)
	}
	names := make([]string, 0, len(counts))
	for name, n := range counts {
		if n > 0 {
			names = append(names, name)
		}
	}
	return names, nil
}

// counts reads how many queue messages the stream holds per queue, from
// its subjects matching filter: a record of n messages is on the queue's
// subject plus ".n" (one message alone on the queue's subject: the format
// of earlier versions).
func (s *Store) counts(ctx context.Context, filter string) (map[string]int64, error) {
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64)
	for subj, n := range info.State.Subjects {
		tok, count, _ := strings.Cut(strings.TrimPrefix(subj, subjPrefix), ".")
		k := int64(1)
		if count != "" {
			c, err := strconv.ParseInt(count, 10, 64)
			if err != nil || c <= 0 {
				s.log.Warn("store: skipping a subject that is not a queue", "subject", subj)
				continue
			}
			k = c
		}
		name, err := decodeName(tok)
		if err != nil {
			s.log.Warn("store: skipping a subject that is not a queue", "subject", subj)
			continue
		}
		out[name] += k * int64(n)
	}
	return out, nil
}

// IDFloor is above every message id of earlier runs.
func (s *Store) IDFloor() uint64 { return s.epoch << 40 }

// Open returns the queue called name, reading its state when it is the
// first Open of this run.
func (s *Store) Open(name string) (store.Queue, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if q := s.queues[name]; q != nil {
		s.mu.Unlock()
		q.reopen()
		return q, nil
	}
	s.mu.Unlock()
	q, err := s.newQueue(name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if prev := s.queues[name]; prev != nil { // opened meanwhile
		prev.reopen()
		return prev, nil
	}
	q.id = uint64(len(s.byID) + 1)
	q.inbox = s.fetchPrefix + strconv.FormatUint(q.id, 10)
	s.queues[name] = q
	s.byID[q.id] = q
	s.bySubj[q.subj] = q
	q.mu.Lock()
	q.requestLocked(false) // the backlog's head, at hand
	q.mu.Unlock()
	return q, nil
}

// newQueue sets up the queue's consumer. After a restart the consumer is
// made anew so that every message not acknowledged is delivered again; the
// ones up to the old consumer's delivered mark (or the hint this store
// wrote ahead of its deliveries) count as delivered once.
func (s *Store) newQueue(name string) (*queue, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	durable := durableName(name)
	q := &queue{s: s, name: name, subj: subjPrefix + encodeName(name), durable: durable}
	q.next = "$JS.API.CONSUMER.MSG.NEXT." + streamName + "." + durable
	if _, err := s.stream.Consumer(ctx, durable); err == nil {
		// The consumer's delivered mark counts the read-ahead too; the
		// watermark (exact after a graceful stop, ahead after a crash)
		// says what may have reached a client.
		if err := s.stream.DeleteConsumer(ctx, durable); err != nil {
			return nil, fmt.Errorf("jetstream store: queue %q: %w", name, err)
		}
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("jetstream store: queue %q: %w", name, err)
	}
	if hint, err := s.hint(ctx, durable); err != nil {
		return nil, fmt.Errorf("jetstream store: queue %q: %w", name, err)
	} else if hint > q.mark {
		q.mark = hint
	}
	q.hinted, q.handed = q.mark, q.mark
	var n int64
	for _, filter := range []string{q.subj, q.subj + ".*"} {
		counts, err := s.counts(ctx, filter)
		if err != nil {
			return nil, fmt.Errorf("jetstream store: queue %q: %w", name, err)
		}
		n += counts[name]
	}
	skipped, err := s.readSkip(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("jetstream store: queue %q: %w", name, err)
	}
	q.stored, q.live = n-skipped, n-skipped
	s.msgs.Add(-skipped)
	_, err = s.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:        durable,
		Description:    name,
		FilterSubjects: []string{q.subj, q.subj + ".*"},
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        365 * 24 * time.Hour, // the broker redelivers, not JetStream
		MaxAckPending:  -1,
		MaxDeliver:     -1,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("jetstream store: queue %q: %w", name, err)
	}
	return q, nil
}

const ackedSubj = metaSubj + "acked."

// readSkip reads the queue's skip list (the messages acknowledged in
// records only partly acknowledged at the last graceful stop), keeping the
// records still stored; it returns how many messages it skips.
func (s *Store) readSkip(ctx context.Context, q *queue) (int64, error) {
	meta, err := s.js.Stream(ctx, metaStream)
	if err != nil {
		return 0, err
	}
	m, err := meta.GetLastMsgForSubject(ctx, ackedSubj+q.durable)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	q.hadSkip = true
	var n int64
	for seq, ids := range parseAcked(m.Data) {
		rm, err := s.stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // acknowledged since
		}
		if err != nil {
			return 0, err
		}
		if rm.Subject != q.subj && !strings.HasPrefix(rm.Subject, q.subj+".") {
			continue
		}
		if q.skip == nil {
			q.skip = make(map[uint64][]uint64)
		}
		q.skip[seq] = ids
		n += int64(len(ids))
	}
	return n, nil
}

// writeSkip records the queue's skip list (at a graceful stop).
func (s *Store) writeSkip(q *queue) error {
	q.mu.Lock()
	data := q.skipListLocked()
	had := q.hadSkip
	q.mu.Unlock()
	if len(data) == 0 && !had {
		return nil
	}
	msg, err := s.metaNC.Request(ackedSubj+q.durable, data, s.o.PublishTimeout)
	if err != nil {
		return err
	}
	return pubAckError(msg)
}

// hint reads the redelivery watermark written for a queue.
func (s *Store) hint(ctx context.Context, durable string) (uint64, error) {
	meta, err := s.js.Stream(ctx, metaStream)
	if err != nil {
		return 0, err
	}
	m, err := meta.GetLastMsgForSubject(ctx, hintSubj+durable)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(m.Data) != 8 {
		return 0, nil
	}
	return binary.BigEndian.Uint64(m.Data), nil
}

// writeHint records that messages up to seq may have been delivered. It
// waits for the store's acknowledgement: a delivery must not go out
// before the mark that flags it after a crash.
func (s *Store) writeHint(durable string, seq uint64) error {
	msg, err := s.metaNC.Request(hintSubj+durable, binary.BigEndian.AppendUint64(nil, seq), s.o.PublishTimeout)
	if err != nil {
		return err
	}
	return pubAckError(msg)
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close waits (a bounded time) for the acknowledgements of the messages
// published, then closes the connection and the embedded server.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	deadline := time.Now().Add(s.o.PublishTimeout)
	for time.Now().Before(deadline) && !s.quiet() {
		time.Sleep(5 * time.Millisecond)
	}
	s.failPending(ErrClosed)
	// A graceful stop: the watermarks become exact, so that after the
	// restart only what reached a client is flagged redelivered.
	for _, q := range s.queueList() {
		q.mu.Lock()
		handed, hinted := q.handed, q.hinted
		q.mu.Unlock()
		if hinted > handed {
			if err := s.writeHint(q.durable, handed); err != nil {
				s.log.Warn("store: cannot write the exact redelivery mark; after the restart some messages not delivered may be flagged redelivered", "queue", q.name, "err", err)
			}
		}
		if err := s.writeSkip(q); err != nil {
			s.log.Warn("store: cannot write the acknowledged messages of records partly acknowledged; after the restart they come again, flagged redelivered", "queue", q.name, "err", err)
		}
	}
	s.shutdown()
	return nil
}

func (s *Store) shutdown() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
	if s.nc != nil {
		s.nc.Close()
	}
	if s.metaNC != nil {
		s.metaNC.Close()
	}
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
	if s.lock != nil {
		unlockFile(s.lock)
		s.lock.Close()
		s.lock = nil
	}
}

// Bounds on the publishes awaiting their acknowledgement: JetStream refuses
// publishes past its own inbound queue bound (100,000 messages or 128 MiB
// per stream), so the store keeps the rest waiting, in order, and sends
// them as acknowledgements come back.
const (
	maxInflight      = 8192
	maxInflightBytes = 32 << 20
)

// publish sends p's record to q's subject (or queues it behind the
// publishes in flight); the acknowledgement comes to onPubAck. Lock held:
// p.q.mu (so that a queue's records go out in order).
func (s *Store) publish(p *pub) error {
	p.at = time.Now()
	p.size = len(p.data)
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.nextPub++
	p.n = s.nextPub
	s.pending[p.n] = p
	s.pendingMsgs += len(p.ms)
	if s.waiting.Len() == 0 && s.roomLocked(p.size) {
		if err := s.sendLocked(p); err != nil {
			delete(s.pending, p.n)
			s.pendingMsgs -= len(p.ms)
			return err
		}
		return nil
	}
	s.waiting.PushBack(p)
	return nil
}

// roomLocked reports whether a publish of size bytes may go now. Lock
// held: s.pmu.
func (s *Store) roomLocked(size int) bool {
	return s.inflight == 0 || s.inflight < maxInflight && s.inflightBytes+size <= maxInflightBytes
}

// sendLocked publishes p. Lock held: s.pmu.
func (s *Store) sendLocked(p *pub) error {
	reply := s.ackPrefix + strconv.FormatUint(p.n, 10)
	subj := p.q.recordSubj(len(p.ms))
	var err error
	if p.dedup != "" {
		msg := nats.NewMsg(subj)
		msg.Reply, msg.Data = reply, p.data
		msg.Header.Set(jetstream.MsgIDHeader, p.dedup)
		err = s.nc.PublishMsg(msg)
	} else {
		err = s.nc.PublishRequest(subj, reply, p.data)
	}
	if err != nil {
		return err
	}
	p.sent = true
	p.data = nil
	s.inflight++
	s.inflightBytes += p.size
	return nil
}

// doneLocked ends p's time pending. Lock held: s.pmu.
func (s *Store) doneLocked(p *pub) {
	s.pendingMsgs -= len(p.ms)
	if p.sent {
		p.sent = false
		s.inflight--
		s.inflightBytes -= p.size
	}
}

// drainLocked sends waiting publishes while there is room; it returns the
// ones that failed. Lock held: s.pmu.
func (s *Store) drainLocked(failed []failedPub) []failedPub {
	for s.waiting.Len() > 0 {
		p := s.waiting.Front()
		if s.pending[p.n] != p { // failed meanwhile
			s.waiting.PopFront()
			continue
		}
		if !s.roomLocked(p.size) {
			break
		}
		s.waiting.PopFront()
		if err := s.sendLocked(p); err != nil {
			delete(s.pending, p.n)
			s.doneLocked(p)
			failed = append(failed, failedPub{p, err})
		}
	}
	return failed
}

type failedPub struct {
	p   *pub
	err error
}

// fail ends publishes that failed: their queues learn it, then each
// message's Done. Call without locks held.
func (s *Store) fail(failed []failedPub) {
	for _, f := range failed {
		f.p.q.recorded(f.p, 0, f.err)
		for i, m := range f.p.ms {
			f.p.dones[i].Appended(m, f.err)
		}
	}
}

// onPubAck completes a publish.
func (s *Store) onPubAck(msg *nats.Msg) {
	i := strings.LastIndexByte(msg.Subject, '.')
	n, _ := strconv.ParseUint(msg.Subject[i+1:], 10, 64)
	s.pmu.Lock()
	p := s.pending[n]
	delete(s.pending, n)
	var failed []failedPub
	if p != nil {
		s.doneLocked(p)
		failed = s.drainLocked(nil)
	}
	s.pmu.Unlock()
	s.fail(failed)
	if p == nil {
		return // timed out already
	}
	now := time.Now()
	s.lastAck.Store(now.UnixNano())
	s.storeLatency.Store(int64(now.Sub(p.at)))
	err := pubAckError(msg)
	if err == nil && isDuplicate(msg.Data) {
		s.duplicates.Add(uint64(len(p.ms)))
		p.q.recorded(p, 0, errDuplicate)
	} else {
		p.q.recorded(p, pubAckSeq(msg.Data), err)
	}
	for i, m := range p.ms {
		p.dones[i].Appended(m, err)
	}
}

// errDuplicate tells a queue that a message was not stored again: its
// de-duplication id was seen within the window. The publisher is told it
// is stored (it is, once).
var errDuplicate = errors.New("duplicate")

func isDuplicate(ack []byte) bool {
	_, after, ok := strings.Cut(string(ack), `"duplicate":`)
	return ok && strings.HasPrefix(strings.TrimLeft(after, " "), "true")
}

// pubAckSeq reads the stream sequence from a JetStream publish
// acknowledgement ({"stream":"S","seq":N,...}); 0 when there is none.
func pubAckSeq(ack []byte) uint64 {
	i := bytes.Index(ack, []byte(`"seq":`))
	if i < 0 {
		return 0
	}
	var n uint64
	for _, c := range bytes.TrimLeft(ack[i+6:], " ") {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// pubAckError reads a JetStream publish acknowledgement.
func pubAckError(msg *nats.Msg) error {
	if len(msg.Data) == 0 {
		if msg.Header != nil {
			if st := msg.Header.Get("Status"); st != "" {
				if st == "503" {
					return errors.New("JetStream not available (no responders)")
				}
				return fmt.Errorf("JetStream status %s %s", st, msg.Header.Get("Description"))
			}
		}
		return errors.New("empty JetStream acknowledgement")
	}
	if !strings.Contains(string(msg.Data), `"error"`) {
		return nil
	}
	var r struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return fmt.Errorf("unreadable JetStream acknowledgement: %w", err)
	}
	if r.Error == nil {
		return nil
	}
	return fmt.Errorf("JetStream: %s (%d)", r.Error.Description, r.Error.ErrCode)
}

// errTimeout fails publishes that got no acknowledgement in time.
var errTimeout = errors.New("no acknowledgement from JetStream in time")

// sweep fails publishes whose acknowledgement is overdue while no
// acknowledgement at all came for PublishTimeout: a store that is slow but
// progressing (a deep pipeline, --fsync always) is waited for, a stuck or
// unreachable one is not. They time out in the order they were sent, so it
// looks only from the oldest one still pending (sweepFrom) to the first one
// not overdue.
func (s *Store) sweep() {
	defer s.wg.Done()
	tick.Every(s.stop, 250*time.Millisecond, s.sweepOnce)
}

// sweepOnce fails the publishes overdue at now (see sweep).
func (s *Store) sweepOnce(now time.Time) {
	if now.Sub(time.Unix(0, s.lastAck.Load())) <= s.o.PublishTimeout {
		return
	}
	var failed []failedPub
	s.pmu.Lock()
	for ; s.sweepFrom <= s.nextPub; s.sweepFrom++ {
		p := s.pending[s.sweepFrom]
		if p == nil {
			continue
		}
		if now.Sub(p.at) <= s.o.PublishTimeout {
			break
		}
		failed = append(failed, failedPub{p, errTimeout})
		delete(s.pending, s.sweepFrom)
		s.doneLocked(p)
	}
	failed = s.drainLocked(failed)
	s.pmu.Unlock()
	s.fail(failed)
}

// quiet reports whether no record (of a queue or a stream) is pending or
// collecting.
func (s *Store) quiet() bool {
	s.pmu.Lock()
	n := len(s.pending)
	s.pmu.Unlock()
	if n+s.rec.len() > 0 {
		return false
	}
	for _, q := range s.queueList() {
		q.mu.Lock()
		busy := q.open != nil || q.sending > 0
		q.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}

// failPending fails every pending publish, and the records collecting (at
// Close).
func (s *Store) failPending(err error) {
	s.pmu.Lock()
	failed := make([]failedPub, 0, len(s.pending))
	for n, p := range s.pending {
		failed = append(failed, failedPub{p, err})
		delete(s.pending, n)
		s.doneLocked(p)
	}
	s.waiting.Reset()
	s.pmu.Unlock()
	for _, q := range s.queueList() {
		q.mu.Lock()
		if p := q.open; p != nil {
			q.open = nil
			q.sending++ // undone by recorded
			failed = append(failed, failedPub{p, err})
		}
		q.mu.Unlock()
	}
	s.fail(failed)
}

// queueList returns the queues open now (a copy, to walk without s.mu).
func (s *Store) queueList() []*queue {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Values(s.queues))
}

// reconnected resets the pull requests lost with the connection and wakes
// the queues.
func (s *Store) reconnected() {
	for _, q := range s.queueList() {
		q.resetRequests()
	}
}

// onFetch takes a message (or a status) answering a queue's pull request.
func (s *Store) onFetch(msg *nats.Msg) {
	// A message comes with its stream subject, a status with the inbox.
	s.mu.Lock()
	subj, n := msg.Subject, 0
	if strings.HasPrefix(subj, subjPrefix) {
		if i := strings.IndexByte(subj[len(subjPrefix):], '.'); i >= 0 {
			n, _ = strconv.Atoi(subj[len(subjPrefix)+i+1:])
			subj = subj[:len(subjPrefix)+i]
			if n <= 0 {
				n = -1 // not a record of the broker's
			}
		}
	}
	q := s.bySubj[subj]
	if q == nil && strings.HasPrefix(msg.Subject, s.fetchPrefix) {
		id, _ := strconv.ParseUint(msg.Subject[len(s.fetchPrefix):], 10, 64)
		q = s.byID[id]
	}
	s.mu.Unlock()
	if q == nil {
		return
	}
	if len(msg.Data) == 0 && msg.Header != nil && msg.Header.Get("Status") != "" {
		left, _ := strconv.Atoi(msg.Header.Get("Nats-Pending-Messages"))
		q.requestEnded(msg.Header.Get("Status"), left)
		return
	}
	q.fetched(msg, n)
}

// Stats are the store's figures.
type Stats struct {
	Messages uint64        `json:"messages"`
	Bytes    uint64        `json:"bytes"`
	Queues   int           `json:"queues"`
	Pending  int           `json:"pending_publishes"`
	Latency  time.Duration `json:"last_publish_latency_ns"`
	// Duplicates are messages not stored again: their x-dedup-id was
	// seen within the de-duplication window.
	Duplicates uint64 `json:"duplicates"`
}

// Stats reads the stream's state.
func (s *Store) Stats() (Stats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := s.stream.Info(ctx)
	if err != nil {
		return Stats{}, err
	}
	s.mu.Lock()
	nq := len(s.queues)
	s.mu.Unlock()
	s.pmu.Lock()
	np := s.pendingMsgs
	s.pmu.Unlock()
	for _, q := range s.queueList() { // and the records collecting
		q.mu.Lock()
		if q.open != nil {
			np += len(q.open.ms)
		}
		q.mu.Unlock()
	}
	return Stats{Messages: uint64(max(s.msgs.Load(), 0)), Bytes: info.State.Bytes, Queues: nq, Pending: np,
		Latency: time.Duration(s.storeLatency.Load()), Duplicates: s.duplicates.Load()}, nil
}

// Report implements store.Reporter.
func (s *Store) Report() (store.Report, error) {
	st, err := s.Stats()
	where := s.o.Dir
	if where == "" {
		where = s.o.URL
	}
	return store.Report{Kind: "jetstream", Location: where, Messages: st.Messages, Bytes: st.Bytes, Queues: st.Queues,
		Pending: st.Pending, Duplicates: st.Duplicates, Latency: st.Latency}, err
}

// encodeName makes a destination one valid subject token.
func encodeName(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }

func decodeName(tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	return string(b), err
}

// durableName is the queue's consumer name: a hash (consumer names are
// bounded, destination names are not).
func durableName(name string) string {
	h := sha256.Sum256([]byte(name))
	return "q" + hex.EncodeToString(h[:16])
}

const durableSubj = metaSubj + "durable."

// SaveDurable implements store.Registry: one meta subject per key.
func (s *Store) SaveDurable(key, topic string) error {
	var data []byte
	if topic != "" {
		data, _ = json.Marshal(map[string]string{"key": key, "topic": topic})
	}
	h := sha256.Sum256([]byte(key))
	msg, err := s.metaNC.Request(durableSubj+hex.EncodeToString(h[:16]), data, s.o.PublishTimeout)
	if err != nil {
		return err
	}
	return pubAckError(msg)
}

// LoadDurables implements store.Registry.
func (s *Store) LoadDurables() (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	meta, err := s.js.Stream(ctx, metaStream)
	if err != nil {
		return nil, err
	}
	info, err := meta.Info(ctx, jetstream.WithSubjectFilter(durableSubj+"*"))
	if err != nil {
		return nil, err
	}
	out := make(map[string]string)
	for subj := range info.State.Subjects {
		m, err := meta.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			return nil, err
		}
		var rec map[string]string
		if len(m.Data) == 0 || json.Unmarshal(m.Data, &rec) != nil || rec["key"] == "" {
			continue
		}
		out[rec["key"]] = rec["topic"]
	}
	return out, nil
}

// Purge implements store.Registry: the queue's messages are dropped from
// the stream and from what the queue holds.
func (s *Store) Purge(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	subj := subjPrefix + encodeName(name)
	s.mu.Lock()
	q := s.queues[name]
	s.mu.Unlock()
	for _, filter := range []string{subj, subj + ".*"} {
		if q == nil { // not open: its messages counted at start
			counts, err := s.counts(ctx, filter)
			if err != nil {
				return err
			}
			s.msgs.Add(-counts[name])
		}
		if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(filter)); err != nil {
			return err
		}
	}
	if q != nil {
		q.mu.Lock()
		q.head.Reset()
		q.buf.Reset()
		q.trans.Reset()
		clear(q.refs)
		clear(q.skip)
		q.acked.Reset()
		for _, h := range q.held {
			q.dropHeldLocked(h)
		}
		q.heldOrder.Reset()
		q.heldStored = 0
		clear(q.pretaken)
		s.msgs.Add(-q.live)
		q.stored, q.fetchedN, q.live = 0, 0, 0
		q.mu.Unlock()
	}
	return nil
}
