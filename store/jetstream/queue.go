package jetstream

import (
	"bytes"
	"encoding/binary"
	"slices"
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

// Group commit: a queue's messages are stored in records of up to
// maxRecordMsgs messages (about maxRecordBytes at most, or one larger
// message alone). While maxQueuePubs records of a queue await JetStream's
// acknowledgement, the messages appended meanwhile collect into the next
// record, sent when one of those is acknowledged: one JetStream message
// (one write, one acknowledgement, one delivery, one ack) for as many
// queue messages as arrived during a round trip.
const (
	maxRecordMsgs  = 256
	maxRecordBytes = 512 << 10
	maxQueuePubs   = 2
	// maxHeldBytes bounds the messages the store keeps in memory (all
	// queues) after they are stored, so that when their record is read
	// back the broker's own in-process message is handed out, not a copy
	// decoded from storage. Past it records are read back from storage
	// only (a backlog lives on disk).
	maxHeldBytes = 16 << 20
	// recHeader is each message's header in a record: id, expiry, length.
	recHeader = 20
	// maxAckedKept is how many acknowledged records a queue remembers
	// (see queue.acked).
	maxAckedKept = 64
)

// queue is one queue: subjects of the stream and its durable consumer.
//
// Messages are, in the order Next takes them: the ones put back (head),
// then the oldest of the transient ones (kept in memory, ordered among the
// persistent ones by mark) and the ones read ahead from JetStream (buf);
// the rest of the backlog is on disk (stored - fetchedN of them).
type queue struct {
	s       *Store
	name    string
	subj    string // the stream subject (records go to subj.<count>)
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
	live     int64  // messages stored and not acknowledged
	inflight int    // messages awaiting the store's acknowledgement
	pubs     uint64 // persistent messages ever ahead in the queue (at open, plus appended)
	taken    uint64 // of those, taken (or refused by the store)
	open     *pub   // the record collecting messages (nil: none)
	sending  int    // records awaiting their acknowledgement
	reqLeft  int    // records the open pull requests may still bring
	reqUntil time.Time
	perRec   int  // messages per record read, x16 (a running average)
	starved  bool // Next came back empty
	notify   func()
	closed   bool
	sizeAvg  int
	mark     uint64 // stream sequences up to mark may have been delivered by an earlier run
	hinted   uint64 // the watermark written (see Store.writeHint)
	handed   uint64 // the highest stream sequence Next handed out
	// hinting is closed when the watermark being written is (nil: none).
	hinting chan struct{}
	reqBuf  []byte
	// refs are the messages read from JetStream and not yet acknowledged,
	// with the record they came in.
	refs map[*store.Message]ref
	// skip are the messages acknowledged in records only partly
	// acknowledged at the last graceful stop (record sequence -> ids),
	// for the records not read again yet.
	skip    map[uint64][]uint64
	hadSkip bool // a skip list is stored (to clear or rewrite at Close)
	// acked are the records acknowledged last (at most maxAckedKept):
	// JetStream takes an ack asynchronously, so a graceful stop lists
	// them too, in case their ack was not processed yet.
	acked deque.Deque[*record]
	// held are the records sent in this run and kept in memory (the id
	// of a record's first message -> the record; see maxHeldBytes), in
	// the order sent (heldOrder). Once stored, and once every record
	// ahead of it is read, Next takes a held record's messages from
	// memory: JetStream's copy is read only for its ack subject
	// (pretaken, until then). heldStored counts the messages of the
	// stored ones.
	held       map[uint64]*heldRecord
	heldOrder  deque.Deque[*heldRecord]
	heldStored int64
	pretaken   map[uint64]*record
}

type heldRecord struct {
	ms   []*store.Message
	size int
	seq  uint64 // stream sequence, once stored
	gone bool   // taken, read back, or refused
}

type transient struct {
	mark uint64 // persistent messages ahead of it (queue.pubs when appended)
	m    *store.Message
}

// record is a JetStream message read back: a record of queue messages,
// acknowledged in JetStream once all of them are.
type record struct {
	reply string // the ack subject
	seq   uint64 // stream sequence
	ids   []uint64
	acked []bool
	left  int // messages not yet acknowledged
}

// ref is a message read from JetStream: its record and place in it.
type ref struct {
	r *record
	i int
}

// recordSubj is the subject of a record of n messages.
func (q *queue) recordSubj(n int) string {
	if n <= len(countToks) {
		return q.subj + countToks[n-1]
	}
	return q.subj + "." + strconv.Itoa(n)
}

var countToks = func() []string {
	t := make([]string, 64)
	for i := range t {
		t[i] = "." + strconv.Itoa(i+1)
	}
	return t
}()

// add appends m to p's record.
func (p *pub) add(m *store.Message, done store.Done) {
	p.ms = append(p.ms, m)
	p.dones = append(p.dones, done)
	p.data = binary.BigEndian.AppendUint64(p.data, m.ID)
	p.data = binary.BigEndian.AppendUint64(p.data, uint64(m.Expires))
	p.data = binary.BigEndian.AppendUint32(p.data, uint32(len(m.Data)))
	p.data = append(p.data, m.Data...)
}

// parseRecord reads the messages of a record of n (n == 0: a single
// message in the format of earlier versions: id, expiry, data).
func parseRecord(data []byte, n int) ([]store.Message, bool) {
	if n < 0 || n > maxRecordMsgs {
		return nil, false
	}
	if n == 0 {
		if len(data) < headerLen {
			return nil, false
		}
		return []store.Message{{
			ID:      binary.BigEndian.Uint64(data[0:8]),
			Expires: int64(binary.BigEndian.Uint64(data[8:16])),
			Data:    data[headerLen:],
		}}, true
	}
	ms := make([]store.Message, n)
	for i := range ms {
		if len(data) < recHeader {
			return nil, false
		}
		l := int(binary.BigEndian.Uint32(data[16:20]))
		if len(data)-recHeader < l {
			return nil, false
		}
		ms[i] = store.Message{
			ID:      binary.BigEndian.Uint64(data[0:8]),
			Expires: int64(binary.BigEndian.Uint64(data[8:16])),
			Data:    data[recHeader : recHeader+l : recHeader+l],
		}
		data = data[recHeader+l:]
	}
	return ms, len(data) == 0
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
// in memory when it is transient. Messages appended while records of the
// queue await their acknowledgement go out together in the next record.
func (q *queue) Append(m *store.Message, done store.Done) error {
	inMemory, dedup := readHeaders(m.Data)
	q.mu.Lock()
	defer q.mu.Unlock()
	if inMemory {
		q.trans.PushBack(transient{mark: q.pubs, m: m})
		return nil
	}
	var failed []failedPub
	if dedup != nil {
		// Alone, with JetStream's de-duplication id; after the record
		// collecting, to keep the order.
		failed = q.flushLocked(failed)
		p := &pub{q: q, dedup: q.durable + ":" + string(dedup)}
		p.add(m, done)
		failed = q.sendLocked(p, failed)
	} else {
		if p := q.open; p != nil && (len(p.ms) >= maxRecordMsgs || len(p.data)+recHeader+len(m.Data) > maxRecordBytes) {
			failed = q.flushLocked(failed)
		}
		if q.open == nil {
			q.open = &pub{q: q, data: make([]byte, 0, min(recHeader+len(m.Data), maxRecordBytes))}
		}
		q.open.add(m, done)
		if q.sending < maxQueuePubs {
			failed = q.flushLocked(failed)
		}
	}
	q.pubs++
	q.inflight++
	q.sizeAvg = (q.sizeAvg*7 + len(m.Data)) / 8
	if len(failed) > 0 {
		go q.s.fail(failed) // Done is never called from inside Append
	}
	return store.ErrPending
}

// flushLocked sends the record collecting. Lock held: q.mu.
func (q *queue) flushLocked(failed []failedPub) []failedPub {
	p := q.open
	if p == nil {
		return failed
	}
	q.open = nil
	return q.sendLocked(p, failed)
}

// sendLocked publishes a record. Lock held: q.mu.
func (q *queue) sendLocked(p *pub, failed []failedPub) []failedPub {
	q.sending++
	if !q.closed && q.s.heldBytes.Add(int64(len(p.data))) <= maxHeldBytes {
		if q.held == nil {
			q.held = make(map[uint64]*heldRecord)
		}
		h := &heldRecord{ms: p.ms, size: len(p.data)}
		q.held[p.ms[0].ID] = h
		q.heldOrder.PushBack(h)
	} else {
		q.s.heldBytes.Add(-int64(len(p.data)))
	}
	if err := q.s.publish(p); err != nil {
		failed = append(failed, failedPub{p, err})
	}
	return failed
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

// unholdLocked forgets the held messages of a record not stored. Lock
// held: q.mu.
func (q *queue) unholdLocked(p *pub) {
	if h := q.heldOf(p); h != nil {
		q.dropHeldLocked(h)
	}
}

// heldOf is p's held record (nil: not held, or no longer). Lock held: q.mu.
func (q *queue) heldOf(p *pub) *heldRecord {
	if h := q.held[p.ms[0].ID]; h != nil && &h.ms[0] == &p.ms[0] {
		return h
	}
	return nil
}

// dropHeldLocked forgets a held record (heldOrder drops it lazily). Lock
// held: q.mu.
func (q *queue) dropHeldLocked(h *heldRecord) {
	delete(q.held, h.ms[0].ID)
	h.gone = true
	q.s.heldBytes.Add(-int64(h.size))
	if h.seq != 0 {
		q.heldStored -= int64(len(h.ms))
	}
}

// takeHeldLocked moves the oldest held record's messages to buf when every
// record ahead of it on disk is read and it is stored. Lock held: q.mu.
func (q *queue) takeHeldLocked() {
	for q.heldOrder.Len() > 0 && q.heldOrder.Front().gone {
		q.heldOrder.PopFront()
	}
	if q.heldOrder.Len() == 0 {
		return
	}
	h := q.heldOrder.Front()
	if h.seq == 0 || q.unfetched() != q.heldStored {
		return
	}
	q.heldOrder.PopFront()
	q.dropHeldLocked(h)
	k := len(h.ms)
	r := &record{seq: h.seq, ids: make([]uint64, k), acked: make([]bool, k), left: k}
	if q.refs == nil {
		q.refs = make(map[*store.Message]ref)
	}
	for i, m := range h.ms {
		r.ids[i] = m.ID
		q.buf.PushBack(m)
		q.refs[m] = ref{r, i}
	}
	q.fetchedN += int64(k)
	if q.pretaken == nil {
		q.pretaken = make(map[uint64]*record)
	}
	q.pretaken[h.ms[0].ID] = r
}

// recorded learns how the publish of a record ended, and sends the next
// record when one is collecting.
func (q *queue) recorded(p *pub, seq uint64, err error) {
	var failed []failedPub
	n := len(p.ms)
	q.mu.Lock()
	q.sending--
	q.inflight -= n
	if err != nil {
		q.unholdLocked(p)
	} else if h := q.heldOf(p); h != nil {
		if seq == 0 {
			q.dropHeldLocked(h) // read back from storage then
		} else {
			h.seq = seq
			q.heldStored += int64(n)
		}
	}
	if err == nil {
		q.stored += int64(n)
		q.live += int64(n)
		q.s.msgs.Add(int64(n))
		q.requestLocked(false)
	} else {
		q.taken += uint64(n) // never to be taken: the transient ones behind them need not wait
	}
	if q.open != nil && q.sending < maxQueuePubs {
		failed = q.flushLocked(nil)
	}
	q.mu.Unlock()
	if len(failed) > 0 {
		q.s.fail(failed)
	}
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
	if q.buf.Len() == 0 {
		q.takeHeldLocked()
	}
	if q.buf.Len() > 0 {
		m := q.buf.PopFront()
		q.taken++
		m.Deliveries++
		if r, ok := q.refs[m]; ok {
			q.markLocked(r.r.seq)
			q.handed = max(q.handed, r.r.seq)
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
			// Asked before q.mu: isClosed takes s.mu, which Open holds
			// while it takes a queue's lock.
			closed := err != nil && q.s.isClosed()
			q.mu.Lock()
			if err == nil {
				q.hinted = max(q.hinted, to)
			} else if !closed {
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

// requestLocked asks JetStream for more records when the read-ahead runs
// low and there is something to read: up to a batch of messages when a
// consumer takes (demand), a few (minAhead) otherwise. Lock held: q.mu.
func (q *queue) requestLocked(demand bool) {
	if q.closed && len(q.pretaken) == 0 {
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
	perRec := max(q.perRec, 16)
	have := q.buf.Len() + q.reqLeft*perRec/16
	if have > batch/2 || q.unfetched() == 0 && q.inflight == 0 && len(q.pretaken) == 0 && len(q.skip) == 0 {
		return
	}
	n := max((batch-have)*16/perRec, 1)
	if q.perRec == 0 { // records' size unknown yet: a few, to learn it
		if q.reqLeft > 0 {
			return
		}
		n = min(n, 2)
	}
	if q.reqLeft > 0 && n < 2 {
		return
	}
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

// fetched takes a record JetStream delivered for a pull request (n
// messages; 0: a single message of the earlier format).
func (q *queue) fetched(msg *nats.Msg, n int) {
	seq, ok := ackSeq(msg.Reply)
	var held *heldRecord
	if ok && n > 0 && len(msg.Data) >= 8 {
		first := binary.BigEndian.Uint64(msg.Data)
		q.mu.Lock()
		if r := q.pretaken[first]; r != nil && len(r.ids) == n {
			// Taken from memory already: its ack subject, at last.
			delete(q.pretaken, first)
			r.reply = msg.Reply
			if q.reqLeft > 0 {
				q.reqLeft--
			}
			q.perRec = (max(q.perRec, 16)*7 + 16*n) / 8
			last := r.left == 0
			if last {
				q.ackedLocked(r)
			}
			q.requestLocked(false)
			q.mu.Unlock()
			if last {
				q.s.nc.Publish(r.reply, ackBody) //nolint:errcheck // comes again after a crash, flagged redelivered
			}
			return
		}
		if h := q.held[first]; h != nil && len(h.ms) == n {
			q.dropHeldLocked(h)
			held = h
		}
		q.mu.Unlock()
	}
	var ms []store.Message
	if ok && held == nil {
		ms, ok = parseRecord(msg.Data, n)
	}
	if !ok || len(ms) == 0 && held == nil {
		q.s.log.Error("store: dropping a message that is not the broker's", "queue", q.name, "subject", msg.Subject, "size", len(msg.Data))
		msg.Term() //nolint:errcheck // dropped either way
		return
	}
	k := len(ms)
	if held != nil {
		k = len(held.ms)
	}
	r := &record{reply: msg.Reply, seq: seq, ids: make([]uint64, k), acked: make([]bool, k)}
	var fn func()
	q.mu.Lock()
	skip := q.skip[seq]
	if skip != nil {
		delete(q.skip, seq)
	}
	if q.reqLeft > 0 {
		q.reqLeft--
	}
	if q.perRec == 0 {
		q.perRec = 16 * k
		q.sizeAvg = len(msg.Data) / k
	} else {
		q.perRec = (q.perRec*7 + 16*k) / 8
	}
	if q.refs == nil {
		q.refs = make(map[*store.Message]ref)
	}
	for i := range k {
		var m *store.Message
		if held != nil {
			m = held.ms[i] // the broker's own, Value and all
		} else {
			m = &ms[i]
		}
		r.ids[i] = m.ID
		if skip != nil && slices.Contains(skip, m.ID) {
			r.acked[i] = true // acknowledged before the last stop
			continue
		}
		if seq <= q.mark {
			m.Deliveries = 1
		}
		r.left++
		q.fetchedN++
		q.buf.PushBack(m)
		q.refs[m] = ref{r, i}
	}
	if q.starved && !q.closed && r.left > 0 {
		q.starved = false
		fn = q.notify
	}
	skipped := r.left == 0
	if skipped {
		q.ackedLocked(r)
		if q.starved {
			// Nothing for the consumer waiting in this record (all of it
			// acknowledged before the last stop): ask for more now, not
			// when the pull request expires.
			q.requestLocked(true)
		}
	}
	q.mu.Unlock()
	if skipped {
		q.s.nc.Publish(r.reply, ackBody) //nolint:errcheck // comes again after a restart, and is skipped again
	}
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

// Ack acknowledges a message; JetStream removes its record once every
// message of the record is acknowledged.
func (q *queue) Ack(m *store.Message) error {
	q.mu.Lock()
	rf, ok := q.refs[m]
	if !ok {
		q.mu.Unlock()
		return nil // transient
	}
	delete(q.refs, m)
	r := rf.r
	r.acked[rf.i] = true
	r.left--
	q.live--
	last := r.left == 0 && r.reply != "" // else acknowledged once read back
	if last {
		q.ackedLocked(r)
	}
	q.mu.Unlock()
	q.s.msgs.Add(-1)
	if !last {
		return nil
	}
	return q.s.nc.Publish(r.reply, ackBody)
}

// ackedLocked remembers a record acknowledged in JetStream. Lock held:
// q.mu.
func (q *queue) ackedLocked(r *record) {
	if q.acked.Len() >= maxAckedKept {
		q.acked.PopFront()
	}
	q.acked.PushBack(r)
}

// skipListLocked lists, per record read and not wholly acknowledged (or
// acknowledged last), the messages acknowledged (the skip list written at
// a graceful stop), with the skip list of the records not read again.
// Lock held: q.mu.
func (q *queue) skipListLocked() []byte {
	var out []byte
	put := func(seq uint64, ids []uint64) {
		out = binary.BigEndian.AppendUint64(out, seq)
		out = binary.BigEndian.AppendUint32(out, uint32(len(ids)))
		for _, id := range ids {
			out = binary.BigEndian.AppendUint64(out, id)
		}
	}
	seen := make(map[*record]bool)
	records := make([]*record, 0, len(q.pretaken)+q.acked.Len())
	for _, r := range q.pretaken {
		records = append(records, r)
	}
	for i := range q.acked.Len() {
		records = append(records, q.acked.At(i))
	}
	for _, rf := range q.refs {
		records = append(records, rf.r)
	}
	for _, r := range records {
		if seen[r] {
			continue
		}
		seen[r] = true
		var ids []uint64
		for i, a := range r.acked {
			if a {
				ids = append(ids, r.ids[i])
			}
		}
		if len(ids) > 0 {
			put(r.seq, ids)
		}
	}
	for seq, ids := range q.skip {
		put(seq, ids)
	}
	return out
}

// parseAcked reads a skip list (see ackedLocked).
func parseAcked(b []byte) map[uint64][]uint64 {
	out := make(map[uint64][]uint64)
	for len(b) >= 12 {
		seq := binary.BigEndian.Uint64(b)
		n := int(binary.BigEndian.Uint32(b[8:]))
		b = b[12:]
		if len(b) < 8*n {
			break
		}
		ids := make([]uint64, n)
		for i := range ids {
			ids[i] = binary.BigEndian.Uint64(b[8*i:])
		}
		out[seq] = ids
		b = b[8*n:]
	}
	return out
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
