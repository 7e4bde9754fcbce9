package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/stompica/stompica/frame"
)

// Message body layout: "SSSSSSSSSS RRRRRRRR PPPP TTTTTTTTTTTTTTT" then
// filler: sequence number, run id (hex), producer, send time (ns since the
// run's start), all fixed width so they are patched in place.
const (
	offSeq, lenSeq   = 0, 10
	offRun, lenRun   = 11, 8
	offProd, lenProd = 20, 4
	offTS, lenTS     = 25, 15
	minBody          = 40

	maxSeq       = 9_999_999_999
	maxProducers = 9999
)

// bench is the state shared by one run's connections.
type bench struct {
	cfg    *config
	opts   connOpts
	ctx    context.Context
	cancel context.CancelFunc
	start  time.Time // time base of the nanosecond stamps
	runID  string
	sem    chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	conns   []*Conn
	closed  bool
	server  string
	errs    []string
	nerrs   int
	failed  atomic.Bool
	stopped atomic.Bool

	progress bool
	stderr   io.Writer
	stdout   io.Writer // the soak's timeline
}

func newBench(parent context.Context, cfg *config, t target) *bench {
	ctx, cancel := context.WithTimeout(parent, cfg.timeout)
	var id [4]byte
	_, _ = rand.Read(id[:])
	b := &bench{
		cfg: cfg, ctx: ctx, cancel: cancel, start: clockBase,
		runID: hex.EncodeToString(id[:]),
		sem:   make(chan struct{}, cfg.parallel),
		opts: connOpts{target: t, login: cfg.login, passcode: cfg.passcode, vhost: cfg.vhost,
			rbuf: 256 << 10, wbuf: 64 << 10},
	}
	if cfg.scenario == "conns" {
		b.opts.rbuf, b.opts.wbuf = 2048, 512
		if hb := cfg.heartBeat; hb > 0 {
			b.opts.heartBeat = strconv.Itoa(hb) + "," + strconv.Itoa(hb)
			go b.heartBeats(time.Duration(hb) * time.Millisecond)
		}
	}
	if t.ws {
		go b.keepalives(wsKeepaliveEvery)
	}
	return b
}

const wsKeepaliveEvery = 15 * time.Second

// heartBeats sends a heart-beat EOL on every connection every half
// interval until the run stops (conns: the connections write nothing
// else once subscribed).
func (b *bench) heartBeats(every time.Duration) {
	b.eachConnEvery(every/2, (*Conn).beat)
}

// keepalives pings idle WebSocket connections until the run stops.
func (b *bench) keepalives(every time.Duration) {
	b.eachConnEvery(every/3, func(c *Conn) { c.keepalive(every) })
}

// eachConnEvery calls f on every connection of the run each period until
// the run stops.
func (b *bench) eachConnEvery(period time.Duration, f func(*Conn)) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-tick.C:
		}
		b.mu.Lock()
		conns := b.conns
		b.mu.Unlock()
		for _, c := range conns {
			if b.stopped.Load() {
				return
			}
			f(c)
		}
	}
}

// fail records an error and ends the run (errors after stop are ignored).
func (b *bench) fail(err error) {
	if b.stopped.Load() {
		return
	}
	b.mu.Lock()
	b.nerrs++
	if len(b.errs) < 10 {
		b.errs = append(b.errs, err.Error())
	}
	b.mu.Unlock()
	b.failed.Store(true)
	b.cancel()
}

// register adds c to the connections closed at the end; false once closed.
func (b *bench) register(c *Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		c.nc.Close()
		return false
	}
	b.conns = append(b.conns, c)
	if b.server == "" {
		b.server = fmt.Sprintf("%s, STOMP %s", c.Server, c.Version)
	}
	return true
}

// connect dials one connection while holding a slot of the setup semaphore;
// the caller calls the returned release once set up (idempotent).
func (b *bench) connect(what string) (*Conn, func(), error) {
	select {
	case b.sem <- struct{}{}:
	case <-b.ctx.Done():
		return nil, func() {}, b.ctx.Err()
	}
	var once sync.Once
	release := func() { once.Do(func() { <-b.sem }) }
	c, err := dial(b.ctx, &b.opts)
	if err != nil {
		release()
		if b.ctx.Err() == nil {
			b.fail(fmt.Errorf("%s: %w", what, err))
		}
		return nil, release, err
	}
	if !b.register(c) {
		release()
		return nil, release, context.Canceled
	}
	return c, release, nil
}

// latch counts up to a target and then closes its channel.
type latch struct {
	n      atomic.Int64
	target int64
	ch     chan struct{}
}

func newLatch(target int) *latch {
	l := &latch{target: int64(target), ch: make(chan struct{})}
	if target <= 0 {
		close(l.ch)
	}
	return l
}

func (l *latch) add() {
	if l.n.Add(1) == l.target {
		close(l.ch)
	}
}

// consume runs one subscriber connection: connect, SUBSCRIBE with a receipt
// (ready counts it), then onMsg for each MESSAGE until the run stops.
func (b *bench) consume(name, dest, ack string, prefetch int, ready *latch, onMsg func(*Conn, *frame.Frame)) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		c, release, err := b.connect(name)
		if err != nil {
			return
		}
		defer release()
		c.owner = true
		receipt := b.cfg.scenario != "conns" || !b.cfg.noReceipt
		if err := c.subscribe("1", dest, ack, prefetch, receipt); err != nil {
			b.fail(fmt.Errorf("%s: subscribe: %w", name, err))
			return
		}
		if !receipt {
			release()
			ready.add()
		}
		for {
			f, err := c.ReadFrame()
			if err != nil {
				b.fail(fmt.Errorf("%s: %w", name, err)) // ignored once the run stops
				return
			}
			switch f.Command {
			case frame.MESSAGE:
				onMsg(c, f)
			case frame.RECEIPT:
				release()
				ready.add()
			case frame.ERROR:
				b.fail(fmt.Errorf("%s: %w", name, errorFrame(f)))
				return
			}
		}
	}()
}

// pubStat is what one publisher did; times are ns since the run's start.
type pubStat struct {
	sent     atomic.Int64
	startNS  int64
	endNS    int64
	finished bool
}

// publish runs one publisher connection: connect (ready counts it), wait for
// go, then send n messages as fast as the rate allows through a buffered
// writer. A second goroutine reads the connection to catch ERROR frames.
func (b *bench) publish(name, dest string, prod, n int, rate float64, stamp bool, ready *latch, start <-chan struct{}, sent *latch, ps *pubStat) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer sent.add()
		c, release, err := b.connect(name)
		if err != nil {
			return
		}
		release()
		if stamp {
			c.wlimit = 4 << 10 // keep latency samples from waiting in the buffer
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for {
				f, err := c.ReadFrame()
				if err != nil {
					b.fail(fmt.Errorf("%s: %w", name, err)) // ignored once the run stops
					return
				}
				if f.Command == frame.ERROR {
					b.fail(fmt.Errorf("%s: %w", name, errorFrame(f)))
					return
				}
			}
		}()
		ready.add()
		select {
		case <-start:
		case <-b.ctx.Done():
			return
		}
		tpl := newSendTemplate(dest, b.cfg.size, b.runID, prod, c.Version)
		op := byte(opText)
		if !utf8.Valid(tpl.buf) {
			op = opBinary
		}
		ps.startNS = nowNS()
		for i := range n {
			if rate > 0 {
				due := ps.startNS + int64(float64(i)*1e9/rate)
				if now := nowNS(); now < due {
					if err := c.Flush(); err != nil {
						b.fail(fmt.Errorf("%s: %w", name, err))
						return
					}
					time.Sleep(time.Duration(due - now))
				}
			}
			if i&1023 == 0 && b.ctx.Err() != nil {
				return
			}
			tpl.setSeq(uint64(i))
			if stamp {
				putDigits(tpl.buf[tpl.body+offTS:tpl.body+offTS+lenTS], uint64(nowNS()))
			}
			if err := c.WriteOp(tpl.buf, op); err != nil {
				b.fail(fmt.Errorf("%s: %w", name, err))
				return
			}
			ps.sent.Add(1)
		}
		if err := c.Flush(); err != nil {
			b.fail(fmt.Errorf("%s: %w", name, err))
			return
		}
		ps.endNS = nowNS()
		ps.finished = true
	}()
}

// sendHeaders are extra SEND headers (--header), "key:value" each.
var sendHeaders []string

// sendTemplate is a pre-encoded SEND frame whose body fields are patched in place.
type sendTemplate struct {
	buf  []byte
	body int // offset of the body in buf
}

func newSendTemplate(dest string, size int, runID string, prod int, v frame.Version) *sendTemplate {
	body := make([]byte, size)
	for i := range body {
		body[i] = '.'
	}
	copy(body, "0000000000 ")
	copy(body[offRun:], runID)
	body[offRun+lenRun] = ' '
	putDigits(body[offProd:offProd+lenProd], uint64(prod))
	body[offProd+lenProd] = ' '
	putDigits(body[offTS:offTS+lenTS], 0)
	body[size-1] = '\n'
	f := frame.New(frame.SEND, "destination", dest, "content-type", "text/plain")
	for _, h := range sendHeaders {
		k, val, _ := strings.Cut(h, ":")
		f.Add(k, val)
	}
	f.Body = body
	buf := frame.Append(nil, f, v)
	return &sendTemplate{buf: buf, body: len(buf) - 1 - size}
}

func (t *sendTemplate) setSeq(seq uint64) {
	putDigits(t.buf[t.body+offSeq:t.body+offSeq+lenSeq], seq)
}

// putDigits writes v as zero-padded decimal filling b.
func putDigits(b []byte, v uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
}

// parseBody extracts the fields of a benchmark body; ok is false for a body
// of another run or not made by stompbench.
func parseBody(body []byte, runID string) (seq uint64, prod int, ts int64, ok bool) {
	if len(body) < minBody || string(body[offRun:offRun+lenRun]) != runID {
		return 0, 0, 0, false
	}
	seq, ok1 := frame.ParseDigits(body[offSeq : offSeq+lenSeq])
	p, ok2 := frame.ParseDigits(body[offProd : offProd+lenProd])
	t, ok3 := frame.ParseDigits(body[offTS : offTS+lenTS])
	return seq, int(p), int64(t), ok1 && ok2 && ok3
}

// await waits for done, the end of the run's context, or (once sent is done)
// cfg.stall without a new delivery, printing progress. It returns why it ended.
func (b *bench) await(done, sent <-chan struct{}, delivered func() int64, line func() string) string {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last, lastChange := delivered(), time.Now()
	lastPrint := time.Time{}
	defer b.clearProgress()
	for {
		select {
		case <-done:
			return "complete"
		case <-b.ctx.Done():
			switch {
			case b.failed.Load():
				return "failed"
			case b.ctx.Err() == context.DeadlineExceeded:
				return "timeout"
			}
			return "interrupted"
		case now := <-tick.C:
			if d := delivered(); d != last {
				last, lastChange = d, now
			}
			if sent != nil && isClosed(sent) && now.Sub(lastChange) > b.cfg.stall {
				return "stalled"
			}
			if b.progress && now.Sub(lastPrint) >= 250*time.Millisecond {
				lastPrint = now
				fmt.Fprintf(b.stderr, "\r\033[K%s %5.1fs  %s", b.cfg.scenario, time.Since(b.start).Seconds(), line())
			}
		}
	}
}

func (b *bench) clearProgress() {
	if b.progress {
		fmt.Fprint(b.stderr, "\r\033[K")
	}
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// stop ends the run: unblocks every connection, waits for the goroutines
// (bounded), then sends DISCONNECT and closes the sockets.
func (b *bench) stop() {
	if b.stopped.Swap(true) {
		return
	}
	b.mu.Lock()
	b.closed = true
	conns := b.conns
	b.mu.Unlock()
	now := time.Now()
	for _, c := range conns {
		_ = c.nc.SetDeadline(now)
	}
	waited := make(chan struct{})
	go func() { b.wg.Wait(); close(waited) }()
	select {
	case <-waited:
		dl := time.Now().Add(time.Second)
		for _, c := range conns {
			c.disconnect(dl)
		}
	case <-time.After(3 * time.Second):
		for _, c := range conns {
			c.nc.Close()
		}
	}
	b.cancel()
}

// sample snapshots the broker process (when --pid) and this process.
type sample struct {
	at       time.Time
	cpu, own time.Duration
	rss      int64
	err      error
}

func (b *bench) sample() sample {
	s := sample{at: time.Now(), own: selfCPU()}
	if b.cfg.pid > 0 {
		s.cpu, s.rss, s.err = procStats(b.cfg.pid)
	}
	return s
}

// newSubs allocates per-subscriber accounting for n expected messages.
func newSubs(count, expected int, latency bool) []*subStat {
	subs := make([]*subStat, count)
	for i := range subs {
		subs[i] = &subStat{set: newSeqSet(expected), ordered: true}
		if latency {
			subs[i].lat = make([]int64, 0, expected)
		}
	}
	return subs
}

func sumDelivered(subs []*subStat) int64 {
	var n int64
	for _, s := range subs {
		n += s.count.Load()
	}
	return n
}

// topicRun is what a topic run measured, for the scenario's own rows.
type topicRun struct {
	subs  []*subStat
	ps    *pubStat
	after sample
	why   string
	acc   accounting
}

// runTopic is fanout and latency: one publisher, cfg.subs subscribers. A
// run that got past setup reports its shape (subscribers, messages, size),
// the scenario's rows, then the accounting and the resources used.
func runTopic(b *bench, latency bool, rows func(r *report, t *topicRun)) *report {
	cfg := b.cfg
	subs := newSubs(cfg.subs, cfg.msgs, latency)
	ready, done, sent := newLatch(cfg.subs+1), newLatch(cfg.subs), newLatch(1)
	for i, s := range subs {
		b.consume(fmt.Sprintf("subscriber %d", i), cfg.dest, "auto", 0, ready, func(c *Conn, f *frame.Frame) {
			seq, _, ts, ok := parseBody(f.Body, b.runID)
			now := c.readNS
			if !ok || seq >= uint64(cfg.msgs) {
				s.count.Add(1)
				s.stale++
				return
			}
			if s.record(seq, now) {
				if latency {
					s.lat = append(s.lat, now-ts)
				}
				if s.distinct == int64(cfg.msgs) {
					done.add()
				}
			}
		})
	}
	start := make(chan struct{})
	ps := &pubStat{}
	b.publish("publisher", cfg.dest, 0, cfg.msgs, cfg.rate, latency, ready, start, sent, ps)
	r := newReport(b)
	why := b.await(ready.ch, nil, func() int64 { return ready.n.Load() }, func() string {
		return fmt.Sprintf("connected %d/%d", ready.n.Load(), cfg.subs+1)
	})
	if why != "complete" {
		r.status = "setup " + why
		return r
	}
	before := b.sample()
	close(start)
	total := int64(cfg.subs) * int64(cfg.msgs)
	why = b.await(done.ch, sent.ch, func() int64 { return sumDelivered(subs) }, func() string {
		d := sumDelivered(subs)
		return fmt.Sprintf("sent %d/%d  delivered %d/%d (%.1f%%)", ps.sent.Load(), cfg.msgs, d, total, 100*float64(d)/float64(total))
	})
	after := b.sample()
	b.stop()
	r.status = why
	r.add("subscribers", "subscribers", cfg.subs, "")
	r.add("messages", "messages", cfg.msgs, "")
	r.add("size", "body size", cfg.size, "B")
	t := &topicRun{subs: subs, ps: ps, after: after, why: why, acc: accountSubs(subs, int64(cfg.msgs))}
	rows(r, t)
	r.accounting(t.acc, "subscriber")
	r.resources(before, after, t.acc.delivered, "delivery")
	return r
}

func runFanout(b *bench) *report {
	cfg := b.cfg
	return runTopic(b, false, func(r *report, t *topicRun) {
		r.pubRate(t.ps, cfg.msgs)
		endNS := t.acc.lastNS
		if t.why != "complete" {
			endNS = t.after.at.Sub(b.start).Nanoseconds()
		}
		dur := nsSeconds(endNS - t.ps.startNS)
		r.add("duration_s", "measured time", dur, "s")
		r.add("deliveries", "deliveries", t.acc.delivered, "")
		r.add("deliveries_per_s", "deliveries/s", rate(t.acc.delivered, dur), "msg/s")
		r.add("mb_per_s", "delivered body MB/s", rate(t.acc.delivered*int64(cfg.size), dur)/1e6, "MB/s")
	})
}

func runLatency(b *bench) *report {
	cfg := b.cfg
	return runTopic(b, true, func(r *report, t *topicRun) {
		var lat []int64
		for _, s := range t.subs {
			lat = append(lat, s.lat...)
		}
		q := percentiles(lat, 0.5, 0.9, 0.99, 0.999, 1)
		r.add("rate", "target rate", cfg.rate, "msg/s")
		r.pubRate(t.ps, cfg.msgs)
		r.add("deliveries", "deliveries", t.acc.delivered, "")
		r.add("samples", "latency samples", len(lat), "")
		for i, name := range []string{"p50", "p90", "p99", "p99.9", "max"} {
			r.add(strings.ReplaceAll(name, ".", "")+"_us", "latency "+name, float64(q[i])/1e3, "µs")
		}
	})
}

func runQueue(b *bench) *report {
	cfg := b.cfg
	P, C, M := cfg.producers, cfg.consumers, cfg.msgs
	shares, offs := make([]int, P), make([]uint64, P)
	var off uint64
	for i := range shares {
		shares[i] = M / P
		if i < M%P {
			shares[i]++
		}
		offs[i] = off
		off += uint64(shares[i])
	}
	set := newSeqSet(M)
	cons := make([]*subStat, C)
	ready, done, sent := newLatch(P+C), newLatch(M), newLatch(P)
	for i := range cons {
		s := &subStat{set: set}
		cons[i] = s
		var scratch []byte
		b.consume(fmt.Sprintf("consumer %d", i), cfg.dest, cfg.ack, cfg.prefetch, ready, func(c *Conn, f *frame.Frame) {
			seq, prod, _, ok := parseBody(f.Body, b.runID)
			if ok && prod < P && seq < uint64(shares[prod]) {
				if s.record(offs[prod]+seq, c.readNS) {
					done.add()
				}
			} else {
				s.count.Add(1)
				s.stale++
			}
			if cfg.ack != "auto" {
				scratch = appendAck(scratch[:0], f, "1", c.Version)
				if err := c.WriteOp(scratch, opText); err != nil {
					b.fail(fmt.Errorf("consumer: ack: %w", err))
				}
			}
		})
	}
	start := make(chan struct{})
	pubs := make([]*pubStat, P)
	for i := range pubs {
		pubs[i] = &pubStat{}
		b.publish(fmt.Sprintf("producer %d", i), cfg.dest, i, shares[i], cfg.rate/float64(P), false, ready, start, sent, pubs[i])
	}
	r := newReport(b)
	why := b.await(ready.ch, nil, func() int64 { return ready.n.Load() }, func() string {
		return fmt.Sprintf("connected %d/%d", ready.n.Load(), P+C)
	})
	if why != "complete" {
		r.status = "setup " + why
		return r
	}
	before := b.sample()
	close(start)
	sentTotal := func() int64 {
		var n int64
		for _, p := range pubs {
			n += p.sent.Load()
		}
		return n
	}
	why = b.await(done.ch, sent.ch, func() int64 { return sumDelivered(cons) }, func() string {
		return fmt.Sprintf("sent %d/%d  consumed %d", sentTotal(), M, done.n.Load())
	})
	after := b.sample()
	b.stop()
	r.status = why

	var firstNS, pubEndNS int64 = -1, 0
	allSent := true
	for _, p := range pubs {
		if firstNS < 0 || p.startNS < firstNS {
			firstNS = p.startNS
		}
		pubEndNS = max(pubEndNS, p.endNS)
		allSent = allSent && p.finished
	}
	acc := accountSubs(cons, 0)
	acc.expected, acc.loss = int64(M), int64(M)-set.count()
	endNS := acc.lastNS
	if why != "complete" {
		endNS = after.at.Sub(b.start).Nanoseconds()
	}
	dur := nsSeconds(endNS - firstNS)
	r.add("producers", "producers", P, "")
	r.add("consumers", "consumers", C, "")
	r.add("messages", "messages", M, "")
	r.add("size", "body size", cfg.size, "B")
	r.add("ack", "ack mode", cfg.ack, "")
	r.add("prefetch", "prefetch", cfg.prefetch, "")
	if allSent {
		r.add("publish_msgs_per_s", "producers msgs/s", rate(int64(M), nsSeconds(pubEndNS-firstNS)), "msg/s")
	}
	r.add("duration_s", "measured time", dur, "s")
	r.add("consumed", "consumed (distinct)", set.count(), "")
	r.add("msgs_per_s", "consumed msgs/s", rate(set.count(), dur), "msg/s")
	per := make([]int64, C)
	for i, s := range cons {
		per[i] = s.distinct
	}
	r.addList("per_consumer", "per consumer", per)
	r.accounting(acc, "")
	r.resources(before, after, acc.delivered, "message")
	return r
}

func runConns(b *bench) *report {
	cfg := b.cfg
	r := newReport(b)
	before := b.sample()
	ready := newLatch(cfg.conns)
	for i := range cfg.conns {
		dest := cfg.dest
		if !cfg.shared {
			dest += "." + strconv.Itoa(i)
		}
		b.consume(fmt.Sprintf("connection %d", i), dest, "auto", 0, ready, func(*Conn, *frame.Frame) {})
	}
	why := b.await(ready.ch, nil, func() int64 { return ready.n.Load() }, func() string {
		return fmt.Sprintf("connected %d/%d", ready.n.Load(), cfg.conns)
	})
	connected := b.sample()
	setup := connected.at.Sub(before.at).Seconds()
	r.add("conns", "connections", cfg.conns, "")
	r.add("heart_beat_ms", "client heart-beat", cfg.heartBeat, "ms")
	receipt := 1
	if cfg.noReceipt {
		receipt = 0
	}
	r.add("subscribe_receipt", "RECEIPT asked on SUBSCRIBE", receipt, "")
	r.add("connected", "connected+subscribed", ready.n.Load(), "")
	r.add("setup_s", "setup time", setup, "s")
	r.add("conns_per_s", "setup rate", rate(ready.n.Load(), setup), "conn/s")
	var after sample
	if why == "complete" {
		holdDone := make(chan struct{})
		t := time.AfterFunc(cfg.hold, func() { close(holdDone) })
		why = b.await(holdDone, nil, func() int64 { return 0 }, func() string {
			return fmt.Sprintf("holding %d connections", cfg.conns)
		})
		t.Stop()
		after = b.sample()
	} else {
		why = "setup " + why
		after = b.sample()
	}
	b.stop()
	r.status = why
	if cfg.pid > 0 && before.err == nil && after.err == nil {
		r.add("broker_rss_before_mb", "broker RSS before", mib(before.rss), "MiB")
		r.add("broker_rss_after_mb", "broker RSS after", mib(after.rss), "MiB")
		if n := ready.n.Load(); n > 0 {
			r.add("broker_rss_per_conn_kb", "broker RSS per connection", float64(after.rss-before.rss)/float64(n)/1024, "KiB")
			r.add("broker_cpu_per_conn_us", "broker CPU per connection setup", float64((connected.cpu-before.cpu).Microseconds())/float64(n), "µs")
		}
	}
	r.add("client_cpu_s", "stompbench CPU", (after.own - before.own).Seconds(), "s")
	if before.err != nil || after.err != nil {
		r.errors = append(r.errors, fmt.Sprintf("--pid %d: %v", cfg.pid, nonNil(before.err, after.err)))
	}
	return r
}

func nonNil(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
