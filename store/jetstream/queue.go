package jetstream

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stompica/stompica/internal/deque"
	"github.com/stompica/stompica/store"
)

// readAhead bounds what a queue reads ahead of its consumers: at most
// maxBatch messages, and about readAheadBytes.
const (
	maxBatch       = 256
	readAheadBytes = 4 << 20
	// minAhead is what a queue reads ahead even before a consumer asks,
	// so that a message is at hand when credit frees (a few, whatever the
	// backlog).
	minAhead = 16
	// requestExpiry is how long a pull request waits at the server for
	// messages (a long poll: messages stored meanwhile come at once).
	requestExpiry = 30 * time.Second
)

// queue is one queue: a subject of the stream and its durable consumer.
//
// Messages are, in the order Next takes them: the ones put back (head),
// then the oldest of the transient ones (kept in memory, ordered among the
// persistent ones by mark) and the ones read ahead from JetStream (buf);
// the rest of the backlog is on disk (stored - fetchedN of them).
type queue struct {
	s       *Store
	name    string
	subj    string // the stream subject
	durable string // the consumer
	next    string // the consumer's pull request subject
	inbox   string // where its pull requests are answered
	id      uint64

	mu       sync.Mutex
	head     deque.Deque[*store.Message]
	buf      deque.Deque[*store.Message]
	trans    deque.Deque[transient]
	stored   int64  // messages stored on the subject (at open, plus appended)
	fetchedN int64  // messages read from JetStream
	inflight int    // publishes awaiting their acknowledgement
	pubs     uint64 // persistent messages ever ahead in the queue (at open, plus appended)
	taken    uint64 // of those, taken (or refused by the store)
	reqLeft  int    // messages the open pull requests may still bring
	reqUntil time.Time
	starved  bool // Next came back empty
	notify   func()
	closed   bool
	batch    int
	sizeAvg  int
	mark     uint64 // stream sequences up to mark may have been delivered by an earlier run
	hinted   uint64 // the watermark written (see Store.writeHint)
	handed   uint64 // the highest stream sequence Next handed out
	// hinting is closed when the watermark being written is (nil: none).
	hinting chan struct{}
	scratch []byte
	reqBuf  []byte
	// refs are the messages read from JetStream and not yet acknowledged,
	// with what acknowledges them.
	refs map[*store.Message]*fetched
}

type transient struct {
	mark uint64 // persistent messages ahead of it (queue.pubs when appended)
	m    *store.Message
}

// fetched is a message read from JetStream, with what acknowledges it.
type fetched struct {
	sm    store.Message
	reply string // the ack subject
	seq   uint64 // stream sequence
}

func (q *queue) reopen() {
	q.mu.Lock()
	q.closed = false
	q.requestLocked(false)
	q.mu.Unlock()
}

// Notify implements store.Notifier.
func (q *queue) Notify(fn func()) {
	q.mu.Lock()
	q.notify = fn
	q.mu.Unlock()
}

// Append publishes m (asynchronously: ErrPending, then done), or keeps it
// in memory when it is transient.
func (q *queue) Append(m *store.Message, done store.Done) error {
	inMemory, dedup := readHeaders(m.Data)
	q.mu.Lock()
	defer q.mu.Unlock()
	if inMemory {
		q.trans.PushBack(transient{mark: q.pubs, m: m})
		return nil
	}
	b := append(q.scratch[:0], make([]byte, headerLen)...)
	binary.BigEndian.PutUint64(b[0:8], m.ID)
	binary.BigEndian.PutUint64(b[8:16], uint64(m.Expires))
	b = append(b, m.Data...)
	if cap(b) <= 64<<10 {
		q.scratch = b
	}
	if err := q.s.publish(q, m, done, b, dedup); err != nil {
		return err
	}
	q.pubs++
	q.inflight++
	n := len(m.Data)
	q.sizeAvg = (q.sizeAvg*7 + n) / 8
	return store.ErrPending
}

var (
	persistentFalse = []byte("\npersistent:false\n")
	dedupHeader     = []byte("\nx-dedup-id:")
)

// readHeaders reads the headers meant for the store in a message's Data
// (see store.Message): persistent:false (keep it in memory only) and
// x-dedup-id (store it once within the window).
func readHeaders(data []byte) (transient bool, dedup []byte) {
	end := bytes.Index(data, []byte("\n\n"))
	if end < 0 {
		return false, nil
	}
	h := data[:end+1]
	transient = bytes.Contains(h, persistentFalse)
	if i := bytes.Index(h, dedupHeader); i >= 0 {
		v := h[i+len(dedupHeader):]
		dedup = v[:bytes.IndexByte(v, '\n')]
	}
	return transient, dedup
}

// appended learns how a publish ended.
func (q *queue) appended(err error) {
	q.mu.Lock()
	q.inflight--
	if err == nil {
		q.stored++
		q.requestLocked(false)
	} else {
		q.taken++ // never to be taken: the transient ones behind it need not wait
	}
	q.mu.Unlock()
}

// Next takes the head message.
func (q *queue) Next() (*store.Message, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head.Len() > 0 {
		m := q.head.PopFront()
		m.Deliveries++
		return m, nil
	}
	if q.trans.Len() > 0 && q.trans.Front().mark <= q.taken {
		m := q.trans.PopFront().m
		m.Deliveries++
		return m, nil
	}
	if q.buf.Len() > 0 {
		m := q.buf.PopFront()
		q.taken++
		m.Deliveries++
		if f := q.refs[m]; f != nil {
			q.markLocked(f.seq)
			q.handed = max(q.handed, f.seq)
		}
		q.requestLocked(true)
		return m, nil
	}
	q.starved = true
	q.requestLocked(true)
	return nil, nil
}

// markLocked keeps the redelivery watermark ahead of seq, the message
// about to be delivered: written in the background once the deliveries
// pass half of the margin, and waited for only when they reach it, so
// that after a crash the ones that may have gone out are flagged
// redelivered. Lock held: q.mu.
func (q *queue) markLocked(seq uint64) {
	if seq+hintStep/2 <= q.hinted {
		return
	}
	if q.hinting == nil {
		to := max(seq, q.hinted) + hintStep
		done := make(chan struct{})
		q.hinting = done
		go func() {
			err := q.s.writeHint(q.durable, to)
			q.mu.Lock()
			if err == nil {
				q.hinted = max(q.hinted, to)
			} else if !q.s.isClosed() {
				q.s.log.Warn("store: cannot write the redelivery mark; after a crash, messages delivered now may come again without redelivered:true", "queue", q.name, "err", err)
			}
			q.hinting = nil
			q.mu.Unlock()
			close(done)
		}()
	}
	if seq <= q.hinted {
		return
	}
	done := q.hinting
	q.mu.Unlock()
	<-done // bounded by the publish timeout; if the write failed (said in
	// the log), the message goes out anyway and the next one tries again
	q.mu.Lock()
}

// unfetched is the backlog left on disk. Lock held: q.mu.
func (q *queue) unfetched() int64 { return max(q.stored-q.fetchedN, 0) }

// requestLocked asks JetStream for more messages when the read-ahead runs
// low and there is something to read: up to a batch when a consumer takes
// (demand), a few (minAhead) otherwise. Lock held: q.mu.
func (q *queue) requestLocked(demand bool) {
	if q.closed {
		return
	}
	now := time.Now()
	if q.reqLeft > 0 && now.After(q.reqUntil.Add(5*time.Second)) {
		q.reqLeft = 0 // lost (a broken connection)
	}
	batch := maxBatch
	if q.sizeAvg > 0 {
		batch = min(max(readAheadBytes/q.sizeAvg, 1), maxBatch)
	}
	if !demand {
		batch = min(batch, minAhead)
	}
	have := q.buf.Len() + q.reqLeft
	if have > batch/2 || q.unfetched() == 0 && q.inflight == 0 {
		return
	}
	n := batch - have
	q.reqBuf = append(q.reqBuf[:0], `{"batch":`...)
	q.reqBuf = strconv.AppendInt(q.reqBuf, int64(n), 10)
	q.reqBuf = append(q.reqBuf, `,"expires":`...)
	q.reqBuf = strconv.AppendInt(q.reqBuf, int64(requestExpiry), 10)
	q.reqBuf = append(q.reqBuf, '}')
	if err := q.s.nc.PublishRequest(q.next, q.inbox, q.reqBuf); err != nil {
		q.s.log.Debug("store: pull request failed", "queue", q.name, "err", err)
		return
	}
	q.reqLeft += n
	q.reqUntil = now.Add(requestExpiry)
}

// fetched takes a message JetStream delivered for a pull request.
func (q *queue) fetched(msg *nats.Msg) {
	seq, ok := ackSeq(msg.Reply)
	if !ok || len(msg.Data) < headerLen {
		q.s.log.Error("store: dropping a message that is not the broker's", "queue", q.name, "subject", msg.Subject, "size", len(msg.Data))
		msg.Term() //nolint:errcheck // dropped either way
		return
	}
	f := &fetched{reply: msg.Reply, seq: seq}
	f.sm = store.Message{
		ID:      binary.BigEndian.Uint64(msg.Data[0:8]),
		Expires: int64(binary.BigEndian.Uint64(msg.Data[8:16])),
		Data:    msg.Data[headerLen:],
	}
	if seq <= q.mark {
		f.sm.Deliveries = 1
	}
	var fn func()
	q.mu.Lock()
	if q.reqLeft > 0 {
		q.reqLeft--
	}
	q.fetchedN++
	q.buf.PushBack(&f.sm)
	if q.refs == nil {
		q.refs = make(map[*store.Message]*fetched)
	}
	q.refs[&f.sm] = f
	if q.starved && !q.closed {
		q.starved = false
		fn = q.notify
	}
	q.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// requestEnded learns that a pull request ended (expired, or refused)
// with left messages not brought.
func (q *queue) requestEnded(status string, left int) {
	if status == "100" { // idle heartbeat
		return
	}
	q.mu.Lock()
	q.reqLeft = max(q.reqLeft-left, 0)
	if status == "409" && q.reqLeft > 0 && left == 0 {
		q.reqLeft = 0
	}
	if q.starved {
		q.requestLocked(true)
	}
	q.mu.Unlock()
}

// resetRequests forgets pull requests lost with the connection, and wakes
// the broker to ask again.
func (q *queue) resetRequests() {
	q.mu.Lock()
	q.reqLeft = 0
	fn := q.notify
	if q.closed {
		fn = nil
	}
	q.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// ackSeq reads the stream sequence from a JetStream ack subject:
// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>, or
// the longer form with domain and account hash in front and a token after.
func ackSeq(reply string) (uint64, bool) {
	if !strings.HasPrefix(reply, "$JS.ACK.") {
		return 0, false
	}
	toks := strings.Split(reply, ".")
	var i int
	switch len(toks) {
	case 9:
		i = 5
	case 11, 12:
		i = 7
	default:
		return 0, false
	}
	seq, err := strconv.ParseUint(toks[i], 10, 64)
	return seq, err == nil
}

var ackBody = []byte("+ACK")

// Ack acknowledges a message; JetStream removes it.
func (q *queue) Ack(m *store.Message) error {
	q.mu.Lock()
	f := q.refs[m]
	delete(q.refs, m)
	q.mu.Unlock()
	if f == nil {
		return nil // transient
	}
	return q.s.nc.Publish(f.reply, ackBody)
}

// Requeue puts m back at the head; it stays unacknowledged in JetStream.
func (q *queue) Requeue(m *store.Message, delivered bool) error {
	if !delivered {
		m.Deliveries--
	}
	q.mu.Lock()
	q.head.PushFront(m)
	q.mu.Unlock()
	return nil
}

// Len counts the waiting messages, the backlog on disk included.
func (q *queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.head.Len() + q.trans.Len() + q.buf.Len() + int(q.unfetched())
}

// Close detaches the queue from the broker's queue; the store keeps it
// (and what it holds) for the next Open of the same name.
func (q *queue) Close() error {
	q.mu.Lock()
	q.closed = true
	q.notify = nil
	q.mu.Unlock()
	return nil
}
