package jetstream

// The records of streams: a message appended to a stream's log (a /stream/
// destination, or a topic --record keeps) is a record, confirmed by
// JetStream before the publisher's RECEIPT.

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stompica/stompica/internal/tick"
)

// Bounds on the records awaiting their acknowledgement (as for queue
// publishes, well under JetStream's own inbound bound per stream): a
// Record past them waits, so a publisher that outruns the disk is slowed
// down (TCP pushes back) instead of being refused.
const (
	maxRecordInflight      = 8192
	maxRecordInflightBytes = 32 << 20
)

// recorder tracks the records sent and not yet acknowledged. Records are
// plain publishes whose acknowledgements come to one subscription (reply
// subject prefix + number), so a Record costs no goroutine and no timer;
// one sweeper per store fails the overdue ones.
type recorder struct {
	prefix  string // reply subjects: prefix + number
	lastAck atomic.Int64

	mu   sync.Mutex
	room sync.Cond // signalled when records end (room, or closed)
	// pending are the records sent, by number; next is the last number
	// given, oldest the lowest that may still be pending.
	pending       map[uint64]pendingRecord
	next, oldest  uint64
	inflightBytes int
	closed        bool
}

type pendingRecord struct {
	done func(error)
	at   int64 // Unix ns
	size int
}

// len is the number of records awaiting their acknowledgement.
func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// endLocked removes record n, which was pending. Lock held: r.mu.
func (r *recorder) endLocked(n uint64, p pendingRecord) {
	delete(r.pending, n)
	r.inflightBytes -= p.size
	r.room.Broadcast()
}

// Record appends data to the log of dest. It waits while too many records
// await their acknowledgement (see maxRecordInflight); done comes from the
// acknowledgement's subscription, or from the sweeper when none came in
// time.
func (s *Store) Record(dest string, data []byte, done func(error)) {
	if s.isClosed() {
		go done(ErrClosed) // never from inside the call
		return
	}
	r := &s.rec
	r.mu.Lock()
	for !r.closed && len(r.pending) > 0 &&
		(len(r.pending) >= maxRecordInflight || r.inflightBytes+len(data) > maxRecordInflightBytes) {
		r.room.Wait()
	}
	if r.closed {
		r.mu.Unlock()
		go done(ErrClosed)
		return
	}
	// Under r.mu: the acknowledgement cannot come before the record is
	// pending, and the records go out in the order they are numbered.
	n := r.next + 1
	if err := s.nc.PublishRequest(streamsSubj+encodeName(dest), r.prefix+strconv.FormatUint(n, 10), data); err != nil {
		r.mu.Unlock()
		go done(err)
		return
	}
	r.next = n
	r.pending[n] = pendingRecord{done: done, at: time.Now().UnixNano(), size: len(data)}
	r.inflightBytes += len(data)
	r.mu.Unlock()
}

// onRecordAck completes a record.
func (s *Store) onRecordAck(msg *nats.Msg) {
	i := strings.LastIndexByte(msg.Subject, '.')
	n, _ := strconv.ParseUint(msg.Subject[i+1:], 10, 64)
	r := &s.rec
	r.lastAck.Store(time.Now().UnixNano())
	r.mu.Lock()
	p, ok := r.pending[n]
	if ok {
		r.endLocked(n, p)
	}
	r.mu.Unlock()
	if ok {
		p.done(pubAckError(msg))
	}
}

// sweepRecords fails the records whose acknowledgement is overdue while
// none at all came for PublishTimeout (as sweep does for queue
// publishes), and every record left at shutdown.
func (s *Store) sweepRecords() {
	defer s.wg.Done()
	tick.Every(s.stop, 250*time.Millisecond, s.sweepRecordsOnce)
	r := &s.rec
	var failed []func(error)
	r.mu.Lock()
	r.closed = true
	for n, p := range r.pending {
		failed = append(failed, p.done)
		r.endLocked(n, p)
	}
	r.room.Broadcast() // a Record waiting for room sees closed
	r.mu.Unlock()
	for _, done := range failed {
		done(ErrClosed)
	}
}

// sweepRecordsOnce fails the records overdue at now (see sweepRecords).
func (s *Store) sweepRecordsOnce(now time.Time) {
	r := &s.rec
	if now.UnixNano()-r.lastAck.Load() <= int64(s.o.PublishTimeout) {
		return
	}
	var failed []func(error)
	r.mu.Lock()
	if len(r.pending) == 0 {
		r.oldest = r.next + 1
	}
	for ; r.oldest <= r.next; r.oldest++ {
		p, ok := r.pending[r.oldest]
		if !ok {
			continue
		}
		if now.UnixNano()-p.at <= int64(s.o.PublishTimeout) {
			break
		}
		failed = append(failed, p.done)
		r.endLocked(r.oldest, p)
	}
	r.mu.Unlock()
	for _, done := range failed {
		done(errTimeout)
	}
}
