package main

// The soak scenario: a bounded mixed run against one broker over TCP and
// WebSocket at once. It keeps every message accounted for:
//
//   - Every SEND carries a receipt. A publisher's sends and receipts are
//     timestamped in order, so for each subscription the messages it must get
//     are a contiguous range of each publisher's sequence numbers.
//   - A topic message is owed to a subscription when the subscription's own
//     RECEIPT arrived before the SEND was written, and the SEND's RECEIPT
//     arrived before the subscription's UNSUBSCRIBE was written: the broker
//     had queued the MESSAGE to that connection before the UNSUBSCRIBE, and
//     the UNSUBSCRIBE's RECEIPT comes after it. A subscription closed
//     abruptly is checked for duplicates only.
//   - A queue message whose SEND got a RECEIPT must be acknowledged by some
//     consumer by the end. An ACK counts once a later RECEIPT on the same
//     connection proves the broker read it (the DISCONNECT's, or a fence just
//     before an abrupt close), so a message counted received cannot come back.
//   - Every delivery of a message but its first must be marked
//     redelivered:true: a queue message delivered twice without it is a
//     duplicate, whatever order two connections read their copies in (a
//     consumer's copy and the copy redelivered when it closed can arrive in
//     the same millisecond). So is a queue message acknowledged (and
//     confirmed) twice, and a topic message delivered twice to one
//     subscription.
//   - A publisher closed abruptly owes only the SENDs whose RECEIPT it saw.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stompica/stompica/frame"
)

const (
	soakTopics     = 4
	soakQueues     = 2
	soakFloodQueue = "/queue/soak.flood"
	soakFloodSize  = 4096 // body bytes of a flood message
	soakFloodConns = 2    // flood publishers and flood consumers (one TCP, one WS each)
	soakWindow     = 64   // SENDs a steady publisher may have awaiting their RECEIPT
	soakFloodWin   = 256  // the same for a flood publisher
	soakPrefetch   = 20   // prefetch-count of the queue consumers
	soakNackPct    = 3    // percent of first deliveries a consumer NACKs
	soakWait       = 15 * time.Second
)

var (
	errSoakClosed  = errors.New("connection closed")
	errSoakTimeout = errors.New("no RECEIPT in time")
)

func soakTopic(i int) string { return "/topic/soak." + strconv.Itoa(i) }
func soakQueue(i int) string { return "/queue/soak." + strconv.Itoa(i) }

// stream is what one publisher connection sent: per sequence number the
// time the SEND was written and the time its RECEIPT arrived (0: none), and
// for queues the deliveries, ACKs written and ACKs confirmed.
type stream struct {
	id    int
	dest  string
	topic int // topic index, or -1 for a queue

	mu             sync.Mutex
	broken         bool // the broker closed the connection (or it broke)
	sendNS, rcptNS []int64
	nextRcpt       int
	// queues, by sequence number: deliveries without redelivered:true
	// (more than one is a duplicate, whatever order two connections read
	// them in), ACKs written and ACKs confirmed
	unmarked, acked, confirmd []int32
	// the last delivery without redelivered:true: connection, arrival,
	// message-id and what the consumer did (ACK, NACK, - for nothing)
	lastBy   []*sconn
	lastNS   []int64
	lastMID  []string
	lastFate []byte
}

// period is one subscription to a topic, from its RECEIPT to the write of
// its UNSUBSCRIBE. recv is written by the connection's reader only.
type period struct {
	topic          int
	subNS, leaveNS int64
	complete       bool // UNSUBSCRIBE's RECEIPT seen: the period is checked for loss
	recv           map[int][]uint64
	received, dups int64
}

// record accounts a delivery; it reports a duplicate without redelivered.
func (p *period) record(streamID int, seq uint64, redelivered bool) bool {
	p.received++
	b := p.recv[streamID]
	w := int(seq / 64)
	if w >= len(b) {
		b = append(b, make([]uint64, w+1-len(b))...)
		p.recv[streamID] = b
	}
	m := uint64(1) << (seq % 64)
	if b[w]&m != 0 {
		if !redelivered {
			p.dups++
			return true
		}
		return false
	}
	b[w] |= m
	return false
}

func (p *period) has(streamID, seq int) bool {
	b := p.recv[streamID]
	w := seq / 64
	return w < len(b) && b[w]&(uint64(1)<<(seq%64)) != 0
}

// flip is a boolean that goroutines can wait on.
type flip struct {
	mu      sync.Mutex
	on      bool
	changed chan struct{}
}

func newFlip(on bool) *flip { return &flip{on: on, changed: make(chan struct{})} }

func (f *flip) set(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.on != on {
		f.on = on
		close(f.changed)
		f.changed = make(chan struct{})
	}
}

func (f *flip) get() (bool, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.on, f.changed
}

// soakSample is one look at the broker.
type soakSample struct {
	Phase      string  `json:"phase"`
	T          float64 `json:"t_s"`
	RSSMiB     float64 `json:"rss_mib"`
	HeapMiB    float64 `json:"heap_inuse_mib"`
	Goroutines int     `json:"goroutines"`
	Conns      int     `json:"conns"`
	Sent       int64   `json:"sent"`
	Received   int64   `json:"received"`
	Paused     bool    `json:"paused"`
	QueuedMB   float64 `json:"queued_mb"`
	err        error
}

// pauseStat is one backpressure phase.
type pauseStat struct {
	N          int     `json:"n"`
	AtS        float64 `json:"at_s"`
	PausedS    float64 `json:"paused_after_s"` // flood start to the broker's pause
	QueuedMB   float64 `json:"queued_mb"`      // broker queued bytes when paused
	HeldS      float64 `json:"held_s"`
	TopicHeld  int64   `json:"topic_deliveries_held"` // topic deliveries while held: 0 when the pause stops every publisher
	ResumedS   float64 `json:"resumed_after_s"`       // consumers back to the end of the pause
	DrainedS   float64 `json:"drained_after_s"`       // consumers back to an empty flood queue
	FloodMsgs  int64   `json:"flood_msgs"`
	Observed   bool    `json:"observed"`
	ResumedOK  bool    `json:"resumed"`
	DrainedOK  bool    `json:"drained"`
	floodStart time.Time
}

type soak struct {
	b          *bench
	cfg        *config
	ctx        context.Context
	tcp, ws    connOpts
	metricsURL string
	http       *http.Client
	t0         time.Time
	t0NS       int64 // nowNS() at t0
	seed       uint64

	stopSteady chan struct{} // publishers, churners and the pauser end
	stopSubs   chan struct{} // stable subscribers unsubscribe
	stopCons   chan struct{} // consumers disconnect
	flood      *flip         // flood consumers attached
	floodConns atomic.Int64  // flood consumers connected and subscribed

	steadyWG, subsWG, consWG, connWG sync.WaitGroup

	smu     sync.RWMutex
	streams []*stream
	pmu     sync.Mutex
	periods []*period

	// counters; qBoth counts queue messages with both a RECEIPT and an ACK
	// written (the drain waits for it to reach qReceipted)
	connsTCP, connsWS                        atomic.Int64
	abruptPubs, abruptSubs, abruptCons       atomic.Int64
	receipted, tReceipted, qReceipted        atomic.Int64
	tReceived, tLate, tStale                 atomic.Int64
	qDeliveries, qRedelivered, qDups, qNacks atomic.Int64
	qStale, qBoth, qAckedTwice               atomic.Int64

	lmu      sync.Mutex // the timeline's lines
	emu      sync.Mutex
	dupNotes []string
	errs     []string
	nerrs    int
	pauseMu  sync.Mutex
	pauses   []pauseStat
}

func runSoak(b *bench) *report {
	r := &report{scenario: "soak", url: b.opts.url}
	s, err := newSoak(b)
	if err != nil {
		r.status = "setup failed"
		r.errors = append(r.errors, err.Error())
		return r
	}
	s.run(r)
	return r
}

func newSoak(b *bench) (*soak, error) {
	cfg := b.cfg
	s := &soak{
		b: b, cfg: cfg, ctx: b.ctx,
		tcp:        b.opts,
		stopSteady: make(chan struct{}),
		stopSubs:   make(chan struct{}),
		stopCons:   make(chan struct{}),
		flood:      newFlip(true),
		http:       &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
		seed:       rand.Uint64(),
	}
	s.tcp.rbuf, s.tcp.wbuf = 16<<10, 16<<10
	if cfg.heartBeat > 0 {
		s.tcp.heartBeat = fmt.Sprintf("%d,%d", cfg.heartBeat, cfg.heartBeat)
	}
	wsURL := cfg.wsURL
	if wsURL == "" {
		wsURL = "ws://" + s.tcp.addr + "/ws"
	}
	wt, err := parseTarget(wsURL)
	if err != nil {
		return nil, fmt.Errorf("--ws-url: %w", err)
	}
	if !wt.ws {
		return nil, fmt.Errorf("--ws-url %q is not a ws:// URL", wsURL)
	}
	s.ws = s.tcp
	s.ws.target = wt
	s.metricsURL = cfg.metricsURL
	if s.metricsURL == "" {
		s.metricsURL = "http://" + s.tcp.addr + "/metrics"
	}
	if _, err := url.Parse(s.metricsURL); err != nil {
		return nil, fmt.Errorf("--metrics-url: %w", err)
	}
	return s, nil
}

// errorf records an unexpected event (an ERROR frame, a lost connection,
// a missing RECEIPT); any makes the run fail.
func (s *soak) errorf(format string, args ...any) {
	s.emu.Lock()
	defer s.emu.Unlock()
	s.nerrs++
	if len(s.errs) < 20 {
		s.errs = append(s.errs, fmt.Sprintf("%6.1fs ", time.Since(s.t0).Seconds())+fmt.Sprintf(format, args...))
	}
}

// dupf notes a duplicate (the first few are reported).
func (s *soak) dupf(format string, args ...any) {
	s.emu.Lock()
	defer s.emu.Unlock()
	if len(s.dupNotes) < 10 {
		s.dupNotes = append(s.dupNotes, "duplicate: "+fmt.Sprintf(format, args...))
	}
}

// secs converts a nowNS time to seconds since the start of the run.
func (s *soak) secs(ns int64) float64 { return float64(ns-s.t0NS) / 1e9 }

func (s *soak) logf(format string, args ...any) {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	fmt.Fprintf(s.b.stdout, format+"\n", args...)
}

// sleep waits d, or less when one of stops is closed or the run ends; it
// reports whether the whole time passed.
func (s *soak) sleep(d time.Duration, stops ...<-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	var a, b <-chan struct{}
	if len(stops) > 0 {
		a = stops[0]
	}
	if len(stops) > 1 {
		b = stops[1]
	}
	select {
	case <-t.C:
		return true
	case <-a:
	case <-b:
	case <-s.ctx.Done():
	}
	return false
}

// waitFor polls cond every poll until it holds (true) or max passes.
func (s *soak) waitFor(max, poll time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(max)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || !s.sleep(poll) {
			return cond()
		}
	}
}

// --- connections ---

// sconn is one soak connection: a reader goroutine dispatching frames, a
// heart-beat goroutine, and writes of whole frames under wmu by anyone.
type sconn struct {
	*Conn
	s    *soak
	name string

	wmu     sync.Mutex
	closing bool // under wmu: we are closing; no more ACKs
	noAck   bool // under wmu
	ending  atomic.Bool
	failed  atomic.Bool
	done    chan struct{}

	rmu     sync.Mutex
	waiters map[string]chan int64
	subs    map[string]*period // topic subscriptions by id

	onMsg     func(*frame.Frame)
	onReceipt func(id []byte, at int64) bool
	subNS     atomic.Int64 // when its SUBSCRIBE's RECEIPT came (consumers)
	endNS     atomic.Int64 // when it began to close (consumers)
}

// age describes a connection's state at ns, for the duplicate notes.
func (sc *sconn) age(ns int64) string {
	t := "before its SUBSCRIBE's RECEIPT"
	if sub := sc.subNS.Load(); sub != 0 && sub <= ns {
		t = fmt.Sprintf("subscribed %.3fs before", float64(ns-sub)/1e9)
	}
	if e := sc.endNS.Load(); e != 0 {
		t += fmt.Sprintf(", closing since %.3fs before", float64(ns-e)/1e9)
	}
	return t
}

func (s *soak) dial(name string, ws bool) (*sconn, error) {
	o := &s.tcp
	if ws {
		o = &s.ws
	}
	ctx, cancel := context.WithTimeout(s.ctx, soakWait)
	defer cancel()
	c, err := dial(ctx, o)
	if err != nil {
		if s.ctx.Err() == nil {
			s.errorf("%s: connect: %v", name, err)
		}
		return nil, err
	}
	if ws {
		s.connsWS.Add(1)
	} else {
		s.connsTCP.Add(1)
	}
	s.b.mu.Lock()
	if s.b.server == "" {
		s.b.server = fmt.Sprintf("%s, STOMP %s", c.Server, c.Version)
	}
	s.b.mu.Unlock()
	return &sconn{Conn: c, s: s, name: name, done: make(chan struct{}),
		waiters: map[string]chan int64{}, subs: map[string]*period{}}, nil
}

// start runs the reader and the heart-beats; set onMsg/onReceipt first.
func (sc *sconn) start() {
	sc.s.connWG.Add(1)
	go sc.readLoop()
	if hb := sc.s.cfg.heartBeat; hb > 0 {
		sc.s.connWG.Add(1)
		go sc.heartBeats(time.Duration(hb) * time.Millisecond)
	}
	// the run's deadline ends every connection
	sc.s.connWG.Add(1)
	go func() {
		defer sc.s.connWG.Done()
		select {
		case <-sc.done:
		case <-sc.s.ctx.Done():
			sc.ending.Store(true)
			sc.nc.Close()
		}
	}()
}

func (sc *sconn) readLoop() {
	defer sc.s.connWG.Done()
	defer close(sc.done)
	for {
		f, err := sc.ReadFrame()
		if err != nil {
			if !sc.ending.Load() && !sc.failed.Load() {
				sc.failed.Store(true)
				sc.s.errorf("%s: connection lost: %v", sc.name, err)
			}
			sc.nc.Close()
			return
		}
		switch f.Command {
		case frame.MESSAGE:
			if sc.onMsg != nil {
				sc.onMsg(f)
			}
		case frame.RECEIPT:
			id, _ := f.Get("receipt-id")
			at := nowNS()
			if sc.onReceipt != nil && sc.onReceipt(id, at) {
				continue
			}
			sc.rmu.Lock()
			if sid, ok := strings.CutPrefix(string(id), "unsub-"); ok {
				delete(sc.subs, sid) // later MESSAGEs for it are late
			}
			ch := sc.waiters[string(id)]
			delete(sc.waiters, string(id))
			sc.rmu.Unlock()
			if ch != nil {
				ch <- at
			}
		case frame.ERROR:
			if !sc.ending.Load() {
				sc.failed.Store(true)
				sc.s.errorf("%s: %v", sc.name, errorFrame(f))
			}
		}
	}
}

// heartBeats writes an EOL whenever nothing was written for half the interval.
func (sc *sconn) heartBeats(every time.Duration) {
	defer sc.s.connWG.Done()
	t := time.NewTicker(every / 4)
	defer t.Stop()
	for {
		select {
		case <-sc.done:
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, sc.lastWrite.Load())) >= every/2 {
			sc.wmu.Lock()
			if !sc.closing {
				sc.Write([]byte("\n"))
				_ = sc.Flush()
			}
			sc.wmu.Unlock()
		}
	}
}

// write writes one whole frame now.
func (sc *sconn) write(b []byte) error {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	if sc.closing {
		return errSoakClosed
	}
	return sc.writeLocked(b)
}

func (sc *sconn) writeLocked(b []byte) error {
	err := sc.Write(b)
	if ferr := sc.Flush(); err == nil {
		err = ferr
	}
	return err
}

// writeAck writes an ACK or NACK unless acknowledging has stopped, and runs
// then (under the write lock, so a fence written later sees it).
func (sc *sconn) writeAck(b []byte, then func()) bool {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	if sc.closing || sc.noAck || sc.writeLocked(b) != nil {
		return false
	}
	then()
	return true
}

// request writes a frame carrying receipt id and waits for that RECEIPT.
func (sc *sconn) request(b []byte, id string) (int64, error) {
	ch := make(chan int64, 1)
	sc.rmu.Lock()
	sc.waiters[id] = ch
	sc.rmu.Unlock()
	if err := sc.write(b); err != nil {
		return 0, err
	}
	return sc.await(ch)
}

func (sc *sconn) await(ch chan int64) (int64, error) {
	t := time.NewTimer(soakWait + sc.s.cfg.pauseHold)
	defer t.Stop()
	select {
	case at := <-ch:
		return at, nil
	case <-sc.done:
		select {
		case at := <-ch:
			return at, nil
		default:
		}
		return 0, errSoakClosed
	case <-t.C:
		return 0, errSoakTimeout
	case <-sc.s.ctx.Done():
		return 0, sc.s.ctx.Err()
	}
}

func (sc *sconn) frame(cmd string, kv ...string) []byte {
	return frame.Append(nil, frame.New(cmd, kv...), sc.Version)
}

// stopAcking makes later MESSAGEs go unacknowledged.
func (sc *sconn) stopAcking() {
	sc.endNS.Store(nowNS())
	sc.wmu.Lock()
	sc.noAck = true
	sc.wmu.Unlock()
}

// fence waits for a RECEIPT proving the broker read everything written
// before it (BEGIN/ABORT of an empty transaction changes nothing).
func (sc *sconn) fence() error {
	if err := sc.write(sc.frame(frame.BEGIN, "transaction", "fence")); err != nil {
		return err
	}
	_, err := sc.request(sc.frame(frame.ABORT, "transaction", "fence", "receipt", "fence"), "fence")
	return err
}

// abort closes the socket without DISCONNECT (first, so that a write
// blocked on a broker that does not read gives up the write lock).
func (sc *sconn) abort() {
	sc.ending.Store(true)
	sc.nc.Close()
	sc.wmu.Lock()
	sc.closing = true
	sc.wmu.Unlock()
	<-sc.done
}

// disconnect sends DISCONNECT with a receipt, waits for it and closes.
func (sc *sconn) disconnect() error {
	if sc.failed.Load() {
		sc.abort()
		return errSoakClosed
	}
	ch := make(chan int64, 1)
	sc.rmu.Lock()
	sc.waiters["bye"] = ch
	sc.rmu.Unlock()
	sc.ending.Store(true)
	sc.wmu.Lock()
	sc.closing = true
	err := sc.writeLocked(sc.frame(frame.DISCONNECT, "receipt", "bye"))
	sc.wmu.Unlock()
	if err == nil {
		_, err = sc.await(ch)
	}
	if err != nil && sc.s.ctx.Err() == nil {
		sc.s.errorf("%s: DISCONNECT: %v", sc.name, err)
	}
	sc.nc.Close()
	<-sc.done
	return err
}

// --- streams and accounting ---

func (s *soak) newStream(dest string, topic int) *stream {
	s.smu.Lock()
	defer s.smu.Unlock()
	if len(s.streams) > maxProducers {
		return nil // the body's producer field has 4 digits
	}
	st := &stream{id: len(s.streams), dest: dest, topic: topic}
	s.streams = append(s.streams, st)
	return st
}

func (s *soak) stream(id int) *stream {
	s.smu.RLock()
	defer s.smu.RUnlock()
	if id < len(s.streams) {
		return s.streams[id]
	}
	return nil
}

// recordSend appends a send written now and returns its sequence number.
func (st *stream) recordSend() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sendNS = append(st.sendNS, nowNS())
	st.rcptNS = append(st.rcptNS, 0)
	if st.topic < 0 {
		st.unmarked = append(st.unmarked, 0)
		st.acked = append(st.acked, 0)
		st.confirmd = append(st.confirmd, 0)
		st.lastBy = append(st.lastBy, nil)
		st.lastNS = append(st.lastNS, 0)
		st.lastMID = append(st.lastMID, "")
		st.lastFate = append(st.lastFate, 0)
	}
	return len(st.sendNS) - 1
}

func (s *soak) newPeriod(topic int) *period {
	p := &period{topic: topic, recv: map[int][]uint64{}}
	s.pmu.Lock()
	s.periods = append(s.periods, p)
	s.pmu.Unlock()
	return p
}

// topicMessage accounts a MESSAGE on a topic subscriber's connection.
func (s *soak) topicMessage(sc *sconn, f *frame.Frame) {
	seq, prod, _, ok := parseBody(f.Body, s.b.runID)
	if !ok {
		s.tStale.Add(1)
		return
	}
	s.tReceived.Add(1)
	sub, _ := f.Get("subscription")
	sc.rmu.Lock()
	p := sc.subs[string(sub)]
	sc.rmu.Unlock()
	if p == nil {
		s.tLate.Add(1)
		return
	}
	redelivered, _ := f.Get("redelivered")
	if p.record(prod, seq, string(redelivered) == "true") {
		s.dupf("%s message %d of stream %d (message-id %s): delivered twice to %s (subscription %s), again at %.3fs",
			soakTopic(p.topic), seq, prod, f.GetString("message-id"), sc.name, sub, s.secs(sc.readNS))
	}
}

// consumerState is what a consumer connection's reader keeps.
type consumerState struct {
	rng     *rand.Rand
	pending []qref // ACKs written, not yet confirmed by a RECEIPT
	scratch []byte
}

type qref struct {
	st  *stream
	seq int
}

// queueMessage accounts a MESSAGE on a consumer connection and ACKs (or
// sometimes NACKs) it.
func (s *soak) queueMessage(sc *sconn, cs *consumerState, f *frame.Frame) {
	s.qDeliveries.Add(1)
	seq64, prod, _, ok := parseBody(f.Body, s.b.runID)
	seq := int(seq64)
	rv, _ := f.Get("redelivered")
	redelivered := string(rv) == "true"
	if redelivered {
		s.qRedelivered.Add(1)
	}
	var st *stream
	if ok {
		if st = s.stream(prod); st == nil || st.topic >= 0 {
			ok = false
		}
	}
	if ok {
		st.mu.Lock()
		if seq >= len(st.unmarked) {
			ok = false
		} else if !redelivered {
			if st.unmarked[seq] > 0 {
				s.qDups.Add(1)
				a := st.lastBy[seq]
				s.dupf("%s message %d of stream %d: delivered to %s at %.3fs (message-id %s, %s; %s), again to %s at %.3fs (message-id %s; %s) without redelivered:true",
					st.dest, seq, st.id, a.name, s.secs(st.lastNS[seq]), st.lastMID[seq], fateText(st.lastFate[seq]), a.age(st.lastNS[seq]),
					sc.name, s.secs(sc.readNS), f.GetString("message-id"), sc.age(sc.readNS))
			}
			st.unmarked[seq]++
			st.lastBy[seq], st.lastNS[seq], st.lastMID[seq], st.lastFate[seq] = sc, sc.readNS, f.GetString("message-id"), '-'
		}
		st.mu.Unlock()
	}
	if !ok {
		s.qStale.Add(1)
	}
	cmd := "ACK\n"
	nack := ok && !redelivered && cs.rng.IntN(100) < soakNackPct
	if nack {
		cmd = "NACK\n"
	}
	cs.scratch = appendAckCmd(cs.scratch[:0], cmd, f, "1", sc.Version)
	sc.writeAck(cs.scratch, func() {
		if ok && !redelivered {
			st.mu.Lock()
			st.lastFate[seq] = cmd[0]
			st.mu.Unlock()
		}
		switch {
		case nack:
			s.qNacks.Add(1)
		case ok:
			st.mu.Lock()
			st.acked[seq]++
			if st.acked[seq] == 1 && st.rcptNS[seq] != 0 {
				s.qBoth.Add(1)
			}
			st.mu.Unlock()
			cs.pending = append(cs.pending, qref{st, seq})
		}
	})
}

func fateText(f byte) string {
	switch f {
	case 'A':
		return "ACKed"
	case 'N':
		return "NACKed"
	}
	return "not acknowledged: its connection was closing"
}

// confirm counts the ACKs a RECEIPT has proven read by the broker.
func (s *soak) confirm(cs *consumerState) {
	for _, r := range cs.pending {
		r.st.mu.Lock()
		r.st.confirmd[r.seq]++
		twice := r.st.confirmd[r.seq] == 2
		r.st.mu.Unlock()
		if twice {
			s.qAckedTwice.Add(1)
		}
	}
	cs.pending = cs.pending[:0]
}

// --- workers ---

// publishOnce runs one publisher connection for up to life: SENDs with
// receipts, at most window unanswered, at rate msgs/s (0: as fast as it
// can), until stop, life or quota runs out; then DISCONNECT, or an abrupt
// close when abrupt.
func (s *soak) publishOnce(name, dest string, topic int, ws bool, size int, rate float64, window int,
	life time.Duration, abrupt bool, stop <-chan struct{}, quota, count *atomic.Int64) bool {
	st := s.newStream(dest, topic)
	if st == nil {
		return false
	}
	sc, err := s.dial(name, ws)
	if err != nil {
		return true
	}
	tokens := make(chan struct{}, window)
	sc.onReceipt = func(id []byte, at int64) bool {
		if len(id) < 2 || id[0] != 'r' {
			return false
		}
		seq, err := strconv.Atoi(string(id[1:]))
		st.mu.Lock()
		if err != nil || seq != st.nextRcpt || seq >= len(st.rcptNS) {
			st.mu.Unlock()
			s.errorf("%s: RECEIPT %q out of order (want r%d)", name, id, st.nextRcpt)
			return true
		}
		st.nextRcpt++
		st.rcptNS[seq] = at
		both := topic < 0 && st.acked[seq] > 0
		st.mu.Unlock()
		s.receipted.Add(1)
		if topic < 0 {
			s.qReceipted.Add(1)
			if both {
				s.qBoth.Add(1)
			}
		} else {
			s.tReceipted.Add(1)
		}
		<-tokens
		return true
	}
	sc.start()
	body := make([]byte, size)
	for i := range body {
		body[i] = '.'
	}
	copy(body[offRun:], s.b.runID)
	body[offRun-1], body[offProd-1], body[offTS-1] = ' ', ' ', ' '
	putDigits(body[offProd:offProd+lenProd], uint64(st.id))
	putDigits(body[offTS:offTS+lenTS], 0)
	body[size-1] = '\n'
	f := frame.New(frame.SEND, "destination", dest, "receipt", "", "content-type", "text/plain")
	f.Body = body
	var buf []byte
	end := time.Now().Add(life)
	start := time.Now()
	sent := 0
loop:
	for time.Now().Before(end) && !isClosed(stop) && !sc.failed.Load() {
		if rate > 0 {
			due := start.Add(time.Duration(float64(sent) / rate * 1e9))
			if d := time.Until(due); d > 0 {
				if !s.sleep(d, stop, sc.done) {
					break
				}
			} else if d < -time.Second {
				start, sent = time.Now(), 0 // do not burst after a pause
			}
		}
		select {
		case tokens <- struct{}{}:
		case <-sc.done:
			break loop
		case <-stop:
			break loop
		case <-s.ctx.Done():
			break loop
		}
		if quota != nil && quota.Add(-1) < 0 {
			<-tokens
			break
		}
		seq := st.recordSend()
		putDigits(body[offSeq:offSeq+lenSeq], uint64(seq))
		f.Headers[1].Value = strconv.AppendInt(append(f.Headers[1].Value[:0], 'r'), int64(seq), 10)
		buf = frame.Append(buf[:0], f, sc.Version)
		if sc.write(buf) != nil {
			break
		}
		if count != nil {
			count.Add(1)
		}
		sent++
	}
	if sc.failed.Load() {
		st.mu.Lock()
		st.broken = true
		st.mu.Unlock()
	}
	if abrupt && !isClosed(stop) && !sc.failed.Load() {
		s.abruptPubs.Add(1)
		sc.abort()
		return true
	}
	// graceful: every RECEIPT, then DISCONNECT
	s.waitFor(soakWait+s.cfg.pauseHold, 10*time.Millisecond, func() bool {
		return len(tokens) == 0 || isClosed(sc.done)
	})
	if len(tokens) != 0 && !sc.failed.Load() && s.ctx.Err() == nil {
		s.errorf("%s: %d SENDs without a RECEIPT at the end", name, len(tokens))
	}
	sc.disconnect()
	return true
}

// life is how long a publisher or consumer connection lasts: 1-5 s, less
// in a short run (a sixtieth to a twelfth of it, at least 0.2-1 s).
func (s *soak) life(rng *rand.Rand) time.Duration {
	d := s.cfg.duration
	lo := min(max(d/60, 200*time.Millisecond), time.Second)
	hi := min(max(d/12, time.Second), 5*time.Second)
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

// abruptGen says which connections of worker i close abruptly: alternately
// two of four, so that both transports see abrupt and clean closes.
func abruptGen(i, gen int) bool { return (i+gen)/2%2 == 0 }

// publisher is a steady publisher: connections of 1-5 s, half of them
// closed abruptly, alternating TCP and WebSocket.
func (s *soak) publisher(kind string, i int, dest string, topic int) {
	defer s.steadyWG.Done()
	rng := rand.New(rand.NewPCG(s.seed, uint64(i)<<8|uint64(len(kind))))
	rate := s.cfg.rate / float64(2*s.cfg.producers)
	for gen := 0; !isClosed(s.stopSteady) && s.ctx.Err() == nil; gen++ {
		ws := (i+gen)%2 == 1
		name := fmt.Sprintf("%s publisher %d.%d (%s)", kind, i, gen, transport(ws))
		if !s.publishOnce(name, dest, topic, ws, s.cfg.size, rate, soakWindow, s.life(rng), abruptGen(i, gen), s.stopSteady, nil, nil) {
			return
		}
		if s.ctx.Err() != nil {
			return
		}
	}
}

func transport(ws bool) string {
	if ws {
		return "ws"
	}
	return "tcp"
}

// stableSub subscribes once and stays until the end of the run.
func (s *soak) stableSub(i int, ready *latch) {
	defer s.subsWG.Done()
	ws := i%2 == 1
	name := fmt.Sprintf("stable subscriber %d (%s)", i, transport(ws))
	sc, err := s.dial(name, ws)
	if err != nil {
		ready.add()
		return
	}
	sc.onMsg = func(f *frame.Frame) { s.topicMessage(sc, f) }
	sc.start()
	p := s.subscribeTopic(sc, "1", i%soakTopics)
	ready.add()
	if p == nil {
		sc.abort()
		return
	}
	select {
	case <-s.stopSubs:
	case <-sc.done:
		return
	case <-s.ctx.Done():
		return
	}
	s.unsubscribeTopic(sc, "1", p)
	sc.disconnect()
}

// subscribeTopic subscribes (ack auto) with a receipt and starts a period.
func (s *soak) subscribeTopic(sc *sconn, id string, topic int) *period {
	p := s.newPeriod(topic)
	sc.rmu.Lock()
	sc.subs[id] = p
	sc.rmu.Unlock()
	at, err := sc.request(sc.frame(frame.SUBSCRIBE, "id", id, "destination", soakTopic(topic), "ack", "auto", "receipt", "sub-"+id), "sub-"+id)
	if err != nil {
		if s.ctx.Err() == nil && !sc.failed.Load() {
			s.errorf("%s: SUBSCRIBE: %v", sc.name, err)
		}
		return nil
	}
	p.subNS = at
	return p
}

// unsubscribeTopic ends a period with UNSUBSCRIBE and its receipt.
func (s *soak) unsubscribeTopic(sc *sconn, id string, p *period) bool {
	p.leaveNS = nowNS()
	if _, err := sc.request(sc.frame(frame.UNSUBSCRIBE, "id", id, "receipt", "unsub-"+id), "unsub-"+id); err != nil {
		if s.ctx.Err() == nil && !sc.failed.Load() {
			s.errorf("%s: UNSUBSCRIBE: %v", sc.name, err)
		}
		return false
	}
	p.complete = true
	return true
}

// churner subscribes and unsubscribes 1-3 times per connection, 0.1-1.5 s
// each, then disconnects, or (one time in three) closes abruptly while
// subscribed, and reconnects.
func (s *soak) churner(i int) {
	defer s.steadyWG.Done()
	rng := rand.New(rand.NewPCG(s.seed, uint64(1000+i)))
	for gen := 0; !isClosed(s.stopSteady) && s.ctx.Err() == nil; gen++ {
		ws := (i+gen)%2 == 1
		sc, err := s.dial(fmt.Sprintf("churning subscriber %d.%d (%s)", i, gen, transport(ws)), ws)
		if err != nil {
			s.sleep(200*time.Millisecond, s.stopSteady)
			continue
		}
		sc.onMsg = func(f *frame.Frame) { s.topicMessage(sc, f) }
		sc.start()
		cycles := 1 + rng.IntN(3)
		aborted := false
		for k := range cycles {
			id := strconv.Itoa(k)
			p := s.subscribeTopic(sc, id, rng.IntN(soakTopics))
			if p == nil {
				break
			}
			s.sleep(100*time.Millisecond+time.Duration(rng.Int64N(int64(1400*time.Millisecond))), s.stopSteady, sc.done)
			if k == cycles-1 && rng.IntN(3) == 0 && !isClosed(s.stopSteady) && !sc.failed.Load() {
				p.leaveNS = nowNS()
				s.abruptSubs.Add(1)
				sc.abort()
				aborted = true
				break
			}
			if !s.unsubscribeTopic(sc, id, p) || isClosed(s.stopSteady) {
				break
			}
		}
		if !aborted {
			sc.disconnect()
		}
	}
}

// consumeOnce runs one consumer connection (ack client-individual) until
// until() says so; then it stops acknowledging, proves with a RECEIPT that
// the broker read its ACKs, and closes abruptly or with DISCONNECT.
func (s *soak) consumeOnce(name, dest string, ws bool, rng *rand.Rand, until func(sc *sconn) (abrupt bool), attached *atomic.Int64) {
	sc, err := s.dial(name, ws)
	if err != nil {
		s.sleep(200 * time.Millisecond)
		return
	}
	cs := &consumerState{rng: rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))}
	sc.onMsg = func(f *frame.Frame) { s.queueMessage(sc, cs, f) }
	sc.start()
	p := strconv.Itoa(soakPrefetch)
	if at, err := sc.request(sc.frame(frame.SUBSCRIBE, "id", "1", "destination", dest, "ack", "client-individual",
		"prefetch-count", p, "activemq.prefetchSize", p, "receipt", "sub-1"), "sub-1"); err == nil {
		sc.subNS.Store(at)
	} else {
		if s.ctx.Err() == nil && !sc.failed.Load() {
			s.errorf("%s: SUBSCRIBE: %v", name, err)
		}
		sc.abort()
		return
	}
	if attached != nil {
		attached.Add(1)
		defer attached.Add(-1)
	}
	abrupt := until(sc)
	if sc.failed.Load() || s.ctx.Err() != nil {
		sc.abort()
		return
	}
	sc.stopAcking()
	if abrupt {
		if err := sc.fence(); err != nil {
			if s.ctx.Err() == nil && !sc.failed.Load() {
				s.errorf("%s: fence: %v", name, err)
			}
			sc.abort()
			return
		}
		s.confirm(cs)
		s.abruptCons.Add(1)
		sc.abort()
		return
	}
	if sc.disconnect() == nil {
		s.confirm(cs)
	}
}

// consumer is a steady queue consumer: connections of 1-5 s, half of them
// closed abruptly while the steady phase lasts; in the drain it stays.
func (s *soak) consumer(i int, dest string) {
	defer s.consWG.Done()
	rng := rand.New(rand.NewPCG(s.seed, uint64(2000+i)))
	for gen := 0; !isClosed(s.stopCons) && s.ctx.Err() == nil; gen++ {
		ws := (i+gen)%2 == 1
		name := fmt.Sprintf("consumer %d.%d (%s)", i, gen, transport(ws))
		s.consumeOnce(name, dest, ws, rng, func(sc *sconn) bool {
			if s.sleep(s.life(rng), s.stopSteady, sc.done) {
				return abruptGen(i, gen)
			}
			if isClosed(sc.done) || isClosed(s.stopCons) {
				return false
			}
			// steady phase over: stay until the end of the drain
			select {
			case <-s.stopCons:
			case <-sc.done:
			case <-s.ctx.Done():
			}
			return false
		}, nil)
	}
}

// floodConsumer consumes the flood queue while s.flood is on.
func (s *soak) floodConsumer(i int) {
	defer s.consWG.Done()
	rng := rand.New(rand.NewPCG(s.seed, uint64(3000+i)))
	for gen := 0; !isClosed(s.stopCons) && s.ctx.Err() == nil; gen++ {
		on, changed := s.flood.get()
		if !on {
			select {
			case <-changed:
			case <-s.stopCons:
			case <-s.ctx.Done():
			}
			continue
		}
		ws := i%2 == 1
		s.consumeOnce(fmt.Sprintf("flood consumer %d.%d (%s)", i, gen, transport(ws)), soakFloodQueue, ws, rng, func(sc *sconn) bool {
			select {
			case <-changed:
			case <-s.stopCons:
			case <-sc.done:
			case <-s.ctx.Done():
			}
			return false
		}, &s.floodConns)
	}
}

// pauser runs the backpressure phases: the first at a quarter of the
// duration, then every --pause-every while one fits before the end.
func (s *soak) pauser() {
	defer s.steadyWG.Done()
	d := s.cfg.duration
	for k := 0; ; k++ {
		at := d/4 + time.Duration(k)*s.cfg.pauseEvery
		if k > 0 && at+s.cfg.pauseHold > d {
			return
		}
		if !s.sleep(time.Until(s.t0.Add(at)), s.stopSteady) {
			return
		}
		s.pausePhase(k + 1)
	}
}

// pausePhase: the flood queue's consumers leave, flood publishers send
// until the broker pauses publishers (its memory budget is full), the
// consumers stay away --pause-hold longer, then come back and drain.
func (s *soak) pausePhase(n int) {
	ps := pauseStat{N: n, AtS: time.Since(s.t0).Seconds()}
	m0, err := s.scrape()
	if err != nil {
		s.errorf("pause %d: metrics: %v", n, err)
		return
	}
	pauses0 := m0["stompica_input_pauses_total"]
	s.flood.set(false)
	if !s.waitFor(soakWait, 10*time.Millisecond, func() bool { return s.floodConns.Load() == 0 }) {
		s.errorf("pause %d: flood consumers did not leave", n)
	}
	quota, count := &atomic.Int64{}, &atomic.Int64{}
	quota.Store(max(4*s.cfg.budget/soakFloodSize, 1000))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	ps.floodStart = time.Now()
	for i := range soakFloodConns {
		wg.Go(func() {
			ws := i%2 == 1
			name := fmt.Sprintf("flood publisher %d.%d (%s)", n, i, transport(ws))
			s.publishOnce(name, soakFloodQueue, -1, ws, soakFloodSize, 0, soakFloodWin, 24*time.Hour, false, stop, quota, count)
		})
	}
	var queued float64
	ps.Observed = s.waitFor(soakWait+10*time.Second, 50*time.Millisecond, func() bool {
		m, err := s.scrape()
		if err != nil {
			return false
		}
		queued = m["stompica_queued_bytes"]
		return m["stompica_input_paused"] == 1 || m["stompica_input_pauses_total"] > pauses0
	})
	ps.PausedS = time.Since(ps.floodStart).Seconds()
	ps.QueuedMB = queued / 1e6
	held, topic0 := time.Now(), s.tReceived.Load()
	if ps.Observed {
		s.sleep(s.cfg.pauseHold)
	} else {
		s.errorf("pause %d: the broker did not pause publishers within %.1fs (queued %.1f MB, memory budget %.1f MB)",
			n, ps.PausedS, ps.QueuedMB, float64(s.cfg.budget)/1e6)
	}
	ps.HeldS = time.Since(held).Seconds()
	ps.TopicHeld = s.tReceived.Load() - topic0
	back := time.Now()
	s.flood.set(true)
	ps.ResumedOK = s.waitFor(soakWait+s.cfg.drain, 50*time.Millisecond, func() bool {
		m, err := s.scrape()
		return err == nil && m["stompica_input_paused"] == 0
	})
	ps.ResumedS = time.Since(back).Seconds()
	// the publishers go on a little while the consumers catch up
	s.sleep(min(time.Second, s.cfg.pauseHold))
	close(stop)
	wg.Wait()
	ps.FloodMsgs = count.Load()
	ps.DrainedOK = s.waitFor(s.cfg.drain, 100*time.Millisecond, func() bool {
		m, err := s.scrape()
		return err == nil && m[`stompica_queue_depth{queue="`+soakFloodQueue+`"}`] == 0
	})
	ps.DrainedS = time.Since(back).Seconds()
	if !ps.ResumedOK {
		s.errorf("pause %d: publishers still paused %.1fs after the consumers came back", n, ps.ResumedS)
	}
	if !ps.DrainedOK {
		s.errorf("pause %d: flood queue not drained %.1fs after the consumers came back", n, ps.DrainedS)
	}
	s.logf("pause  %2d at %5.1fs: %d flood msgs; publishers paused after %.1fs (%.1f MB queued); held %.1fs (%d topic deliveries meanwhile); resumed %.1fs and drained %.1fs after the consumers came back",
		n, ps.AtS, ps.FloodMsgs, ps.PausedS, ps.QueuedMB, ps.HeldS, ps.TopicHeld, ps.ResumedS, ps.DrainedS)
	s.pauseMu.Lock()
	s.pauses = append(s.pauses, ps)
	s.pauseMu.Unlock()
}

// --- broker figures ---

// scrape reads the broker's /metrics into series -> value.
func (s *soak) scrape() (map[string]float64, error) {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, s.metricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", s.metricsURL, resp.Status)
	}
	return parseMetrics(bufio.NewScanner(resp.Body))
}

// parseMetrics reads Prometheus text format: "series value" lines.
func parseMetrics(sc *bufio.Scanner) (map[string]float64, error) {
	m := map[string]float64{}
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

func (s *soak) sample(phase string) soakSample {
	x := soakSample{Phase: phase, T: time.Since(s.t0).Seconds(),
		Sent: s.receipted.Load(), Received: s.tReceived.Load() + s.qBoth.Load()}
	if s.cfg.pid > 0 {
		_, rss, err := procStats(s.cfg.pid)
		x.RSSMiB, x.err = mib(rss), err
	}
	m, err := s.scrape()
	if err != nil {
		x.err = err
		return x
	}
	x.Goroutines = int(m["go_goroutines"])
	x.HeapMiB = m["go_memstats_heap_inuse_bytes"] / (1 << 20)
	x.Conns = int(m[`stompica_connections{transport="tcp"}`] + m[`stompica_connections{transport="ws"}`])
	x.Paused = m["stompica_input_paused"] == 1
	x.QueuedMB = m["stompica_queued_bytes"] / 1e6
	return x
}

func (s *soak) printSample(x soakSample) {
	rss := "-"
	if s.cfg.pid > 0 {
		rss = fmt.Sprintf("%.1f", x.RSSMiB)
	}
	line := fmt.Sprintf("%-6s t=%6.1fs  broker rss %6s MiB  heap %6.1f MiB  goroutines %5d  conns %4d  sent %8d  received %9d  paused %-5v  queued %6.1f MB",
		x.Phase, x.T, rss, x.HeapMiB, x.Goroutines, x.Conns, x.Sent, x.Received, x.Paused, x.QueuedMB)
	if x.err != nil {
		line += "  (" + x.err.Error() + ")"
	}
	s.logf("%s", line)
}

// --- the run ---

func (s *soak) run(r *report) {
	cfg := s.cfg
	s.t0, s.t0NS = time.Now(), nowNS()
	s.logf("soak: %s and %s for %s, %.0f msgs/s, %d stable + %d churning subscribers, %d+%d publishers, %d consumers, heart-beat %d ms, broker memory budget %.1f MB",
		s.tcp.url, s.ws.url, cfg.duration, cfg.rate, cfg.subs, cfg.churn, cfg.producers, cfg.producers, cfg.consumers, cfg.heartBeat, float64(cfg.budget)/1e6)
	before := s.sample("before")
	s.printSample(before)
	if before.err != nil {
		r.status = "setup failed"
		r.errors = append(r.errors, "sampling the broker: "+before.err.Error())
		return
	}
	samples := []soakSample{before}
	peak := before

	ready := newLatch(cfg.subs)
	for i := range cfg.subs {
		s.subsWG.Add(1)
		go s.stableSub(i, ready)
	}
	select {
	case <-ready.ch:
	case <-s.ctx.Done():
	}
	for i := range cfg.consumers {
		s.consWG.Add(1)
		go s.consumer(i, soakQueue(i%soakQueues))
	}
	for i := range soakFloodConns {
		s.consWG.Add(1)
		go s.floodConsumer(i)
	}
	for i := range cfg.producers {
		s.steadyWG.Add(2)
		go s.publisher("topic", i, soakTopic(i%soakTopics), i%soakTopics)
		go s.publisher("queue", i, soakQueue(i%soakQueues), -1)
	}
	for i := range cfg.churn {
		s.steadyWG.Add(1)
		go s.churner(i)
	}
	s.steadyWG.Add(1)
	go s.pauser()

	// sample during the run
	var smu sync.Mutex
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(cfg.sampleEvery)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-s.ctx.Done():
				return
			case <-t.C:
			}
			x := s.sample("during")
			s.printSample(x)
			smu.Lock()
			samples = append(samples, x)
			peak.RSSMiB = max(peak.RSSMiB, x.RSSMiB)
			peak.Goroutines = max(peak.Goroutines, x.Goroutines)
			peak.Conns = max(peak.Conns, x.Conns)
			smu.Unlock()
		}
	}()

	s.sleep(time.Until(s.t0.Add(cfg.duration)))
	close(s.stopSteady)
	s.steadyWG.Wait()
	s.logf("end    t=%6.1fs  publishers and churners stopped; draining", time.Since(s.t0).Seconds())
	close(s.stopSubs)
	s.subsWG.Wait()
	// drain: every receipted queue message acknowledged, the queues empty
	var left float64
	drained := s.waitFor(cfg.drain, 100*time.Millisecond, func() bool {
		if s.qBoth.Load() < s.qReceipted.Load() {
			return false
		}
		m, err := s.scrape()
		if err != nil {
			return false
		}
		left = soakQueueDepth(m)
		return left == 0
	})
	close(s.stopCons)
	s.consWG.Wait()
	close(stopSampling)
	<-sampled
	s.connWG.Wait()
	if !drained {
		s.errorf("queues not drained within --drain %s (%d of %d receipted queue messages acknowledged, %.0f left in the queues)",
			cfg.drain, s.qBoth.Load(), s.qReceipted.Load(), left)
	}

	// after: back near the baseline?
	var after soakSample
	var leftAfter float64
	rssLimit := before.RSSMiB + cfg.rssSlack
	goLimit := before.Goroutines + cfg.goroutineSlack
	if err := s.collectGarbage(); err != nil {
		s.logf("after: no garbage collection asked of the broker (%v): its RSS may still hold garbage", err)
	}
	settled := s.waitFor(cfg.settle, 500*time.Millisecond, func() bool {
		after = s.sample("after")
		if after.err != nil {
			return false
		}
		m, err := s.scrape()
		if err == nil {
			leftAfter = soakQueueDepth(m)
		}
		return after.Goroutines <= goLimit && after.Conns == 0 && (cfg.pid <= 0 || after.RSSMiB <= rssLimit)
	})
	s.printSample(after)
	samples = append(samples, after)
	smu.Lock()
	peakRSS, peakG, peakC := peak.RSSMiB, peak.Goroutines, peak.Conns
	smu.Unlock()

	s.account(r, before, after, peakRSS, peakG, peakC, samples, leftAfter)
	if !settled {
		r.bad = true
		r.errors = append(r.errors, fmt.Sprintf("not back near the baseline within --settle %s: goroutines %d (limit %d), connections %d, RSS %.1f MiB (limit %.1f)",
			cfg.settle, after.Goroutines, goLimit, after.Conns, after.RSSMiB, rssLimit))
	}
	if s.ctx.Err() != nil {
		r.status = "timeout"
		if s.b.ctx.Err() == context.Canceled {
			r.status = "interrupted"
		}
	} else {
		r.status = "complete"
	}
}

// collectGarbage asks the broker for two garbage collections through Go's
// profiler (stompica --pprof: GET /debug/pprof/heap?gc=1), so that its heap
// and RSS after the run show what it still holds, not garbage the runtime
// has not collected yet: the Go runtime returns freed memory to the OS in the
// background only after the heap goal of a later collection shrank, and
// without allocation that takes two of its forced collections (4 minutes).
func (s *soak) collectGarbage() error {
	u, err := url.Parse(s.metricsURL)
	if err != nil {
		return err
	}
	u.Path, u.RawQuery = "/debug/pprof/heap", "gc=1"
	for range 2 {
		req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return err
		}
		resp, err := s.http.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", u, resp.Status)
		}
	}
	return nil
}

// soakQueueDepth sums the depth of the soak's queues.
func soakQueueDepth(m map[string]float64) float64 {
	var n float64
	for k, v := range m {
		if strings.HasPrefix(k, `stompica_queue_depth{queue="/queue/soak.`) {
			n += v
		}
	}
	return n
}

// account settles the figures once every connection has ended.
func (s *soak) account(r *report, before, after soakSample, peakRSS float64, peakG, peakC int, samples []soakSample, left float64) {
	cfg := s.cfg
	// topics: every complete period against every stream of its topic
	byTopic := make([][]*stream, soakTopics)
	var qLost, qReceipted, tWritten, qWritten, unanswered, unreceiptedLeft int64
	for _, st := range s.streams {
		if st.broken {
			for _, rc := range st.rcptNS {
				if rc == 0 {
					unanswered++
				}
			}
		}
		if st.topic >= 0 {
			byTopic[st.topic] = append(byTopic[st.topic], st)
			tWritten += int64(len(st.sendNS))
			continue
		}
		qWritten += int64(len(st.sendNS))
		for seq, rc := range st.rcptNS {
			switch {
			case rc != 0:
				qReceipted++
				if st.confirmd[seq] == 0 {
					qLost++
				}
			case st.confirmd[seq] == 0:
				unreceiptedLeft++ // may be in a queue still: nobody owes it
			}
		}
	}
	var tExpected, tLost, tDups, periods, checked int64
	for _, p := range s.periods {
		periods++
		tDups += p.dups
		if !p.complete || p.subNS == 0 {
			continue
		}
		checked++
		for _, st := range byTopic[p.topic] {
			lo := sort.Search(len(st.sendNS), func(i int) bool { return st.sendNS[i] > p.subNS })
			hi := sort.Search(len(st.rcptNS), func(i int) bool { rc := st.rcptNS[i]; return rc == 0 || rc >= p.leaveNS })
			for q := lo; q < hi; q++ {
				tExpected++
				if !p.has(st.id, q) {
					tLost++
				}
			}
		}
	}
	qDups := s.qDups.Load()
	qReceived := int64(0)
	for _, st := range s.streams {
		for seq := range st.confirmd {
			if st.topic < 0 && st.confirmd[seq] > 0 {
				qReceived++
			}
		}
	}
	sent := s.receipted.Load()
	received := s.tReceived.Load() + qReceived
	lost := tLost + qLost
	dups := tDups + qDups
	var pauses []pauseStat
	observed := 0
	s.pauseMu.Lock()
	pauses = append(pauses, s.pauses...)
	s.pauseMu.Unlock()
	for _, p := range pauses {
		if p.Observed {
			observed++
		}
	}

	r.add("duration_s", "duration", cfg.duration.Seconds(), "s")
	r.add("sent", "sent (SENDs with a RECEIPT)", sent, "")
	r.add("received", "received (topic deliveries + queue messages acked)", received, "")
	r.add("lost", "lost", lost, "")
	r.add("dups", "duplicated without redelivered", dups, "")
	r.add("topic_sent", "topic: SENDs with a RECEIPT", s.tReceipted.Load(), "")
	r.add("topic_unreceipted", "topic: SENDs without a RECEIPT (publisher closed)", tWritten-s.tReceipted.Load(), "")
	r.add("topic_received", "topic: deliveries", s.tReceived.Load(), "")
	r.add("topic_expected", "topic: deliveries owed to checked subscriptions", tExpected, "")
	r.add("topic_lost", "topic: lost", tLost, "")
	r.add("topic_dups", "topic: duplicated without redelivered", tDups, "")
	r.add("topic_late", "topic: deliveries after the UNSUBSCRIBE's RECEIPT", s.tLate.Load(), "")
	r.add("subscriptions", "topic: subscriptions", periods, "")
	r.add("subscriptions_checked", "topic: subscriptions checked for loss", checked, "")
	r.add("queue_sent", "queue: SENDs with a RECEIPT", qReceipted, "")
	r.add("queue_unreceipted", "queue: SENDs without a RECEIPT (publisher closed)", qWritten-qReceipted, "")
	r.add("queue_received", "queue: messages acked (confirmed)", qReceived, "")
	r.add("queue_deliveries", "queue: deliveries", s.qDeliveries.Load(), "")
	r.add("queue_redelivered", "queue: deliveries marked redelivered", s.qRedelivered.Load(), "")
	r.add("queue_nacks", "queue: NACKs", s.qNacks.Load(), "")
	r.add("queue_lost", "queue: lost", qLost, "")
	r.add("queue_dups", "queue: duplicated without redelivered", qDups, "")
	r.add("queue_acked_twice", "queue: acked twice", s.qAckedTwice.Load(), "")
	r.add("queue_left", "queue: left in the queues at the end", left, "")
	r.add("unanswered_broken", "SENDs unanswered on publishers the broker closed", unanswered, "")
	r.add("foreign", "foreign messages (other runs)", s.tStale.Load()+s.qStale.Load(), "")
	r.add("conns_tcp", "connections opened over TCP", s.connsTCP.Load(), "")
	r.add("conns_ws", "connections opened over WebSocket", s.connsWS.Load(), "")
	r.add("abrupt_publishers", "publishers closed abruptly", s.abruptPubs.Load(), "")
	r.add("abrupt_subscribers", "subscribers closed abruptly", s.abruptSubs.Load(), "")
	r.add("abrupt_consumers", "consumers closed abruptly", s.abruptCons.Load(), "")
	r.add("pause_phases", "backpressure phases", len(pauses), "")
	r.add("pauses_observed", "backpressure phases where the broker paused", observed, "")
	r.add("rss_before_mib", "broker RSS before", before.RSSMiB, "MiB")
	r.add("rss_peak_mib", "broker RSS peak (samples)", peakRSS, "MiB")
	r.add("rss_after_mib", "broker RSS after", after.RSSMiB, "MiB")
	r.add("heap_before_mib", "broker heap in use before", before.HeapMiB, "MiB")
	r.add("heap_after_mib", "broker heap in use after", after.HeapMiB, "MiB")
	r.add("goroutines_before", "broker goroutines before", before.Goroutines, "")
	r.add("goroutines_peak", "broker goroutines peak (samples)", peakG, "")
	r.add("goroutines_after", "broker goroutines after", after.Goroutines, "")
	r.add("conns_peak", "broker connections peak (samples)", peakC, "")
	r.add("error_count", "errors (ERROR frames, lost connections, missing RECEIPTs)", s.nerrs, "")
	r.items = append(r.items, item{key: "samples", label: "samples", val: samples, text: strconv.Itoa(len(samples))})
	r.items = append(r.items, item{key: "pause_list", label: "pause phases", val: pauses, text: strconv.Itoa(len(pauses))})
	r.errors = append(r.errors, s.errs...)
	r.errors = append(r.errors, s.dupNotes...)
	if s.nerrs > len(s.errs) {
		r.errors = append(r.errors, fmt.Sprintf("... and %d more errors", s.nerrs-len(s.errs)))
	}
	if left > float64(unreceiptedLeft) {
		r.errors = append(r.errors, fmt.Sprintf("%.0f messages left in the queues, more than the %d SENDs without a RECEIPT that no consumer acknowledged", left, unreceiptedLeft))
	}
	if lost > 0 || dups > 0 || s.qAckedTwice.Load() > 0 || left > float64(unreceiptedLeft) || s.tLate.Load() > 0 {
		r.bad = true
	}
	if observed == 0 {
		r.bad = true
		r.errors = append(r.errors, "no backpressure pause happened")
	}
}
