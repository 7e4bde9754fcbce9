package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stompica/stompica/frame"
)

const (
	readBufSize    = 32 << 10
	writeTimeout   = 30 * time.Second
	closeFlushWait = 5 * time.Second
)

var readBufPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// conn is one client connection. Its read goroutine (serve) parses and
// handles frames; anything bound for the client is appended to out under mu
// by whichever goroutine produced it. The goroutine that flushes the batch
// writes a small output itself, once, without waiting (kick); otherwise a
// writer goroutine, started on demand, writes everything pending with one
// syscall per round.
type conn struct {
	s      *Server
	id     uint64
	nc     net.Conn
	ws     *wsReader       // nil for raw STOMP
	in     io.Reader       // nc, or ws
	raw    syscall.RawConn // plain TCP only: lets an idle read wait without a buffer
	remote string
	addr   string                      // remote IP, for the per-address limit
	lg     atomic.Pointer[slog.Logger] // built on first use: most connections never log

	// Owned by the read goroutine.
	parser    frame.Parser
	rbuf      []byte
	rpos      int
	rlen      int
	pooled    *[]byte
	connected bool
	login     string
	clientID  string // CONNECT client-id (durable topic subscriptions)
	subs      map[string]*subscription
	subSeq    uint64
	ackSub    *subscription // the subscription the last 1.2 ACK named (see subByIdx)
	lastRaw   string        // the last SEND's destination header, and
	lastDest  string        // the destination it named (see sendDest)
	sendQueue queueRef      // the queue lastDest names, as the last SEND found it
	spareQM   *queueMessage // the block the next queue SEND fills, prefetched (see router.newMessageSpare)
	txs       map[string]*transaction
	batch     batch
	hbRecv    time.Duration // client must send something within this (0 = never checked)
	fills     bool          // the last read batch added to the memory budget (queue or transaction SENDs)
	crowded   *queue        // a queue the last read batch sent to is over Options.QueueFlowLimit
	outFull   bool          // a frame the read loop queued took the output over Options.MaxPendingBytes
	txBytes   int64         // bytes held by open transactions (counted in the memory budget)
	ownsTemp  bool          // has private /temp-queue/ queues
	linger    bool          // closing for a frame or message too large: see lingerClose
	// partialSince is when the pending incomplete frame started arriving;
	// frameTimedOut says the read deadline is the frame deadline.
	partialSince  time.Time
	frameTimedOut bool
	readDL        time.Time // the read deadline armed last (zero: none), see waitBriefly
	graceDL       bool      // the deadline armed is earlier than readDL: idleGrace (see setReadDeadline)
	quickWakes    uint8     // hand-offs in a row whose wait ended within quickWake (see busy)

	version frame.Version // set once at CONNECT, before any subscription exists

	// Outbound state, guarded by mu.
	mu         sync.Mutex
	out        []byte
	spare      []byte
	writing    bool
	touched    bool // in some goroutine's batch, waiting for kick
	closed     bool // no more appends; the writer closes nc once drained
	leaving    bool // subscriptions being dropped: no more deliveries
	queueWait  bool // a queue skipped this consumer for lack of room
	lastWrite  time.Time
	hbSend     time.Duration
	hbTimer    *time.Timer
	writers    sync.WaitGroup
	inflight   int             // bytes the writer took from out and is writing now
	outWait    chan struct{}   // the read loop waits for the output to drain; closed to wake it
	outPeak    int             // most output held (out + inflight) after the read loop queued a frame
	closeState ClosedState     // why the connection ended (the first reason recorded wins)
	holder     *[]byte         // an empty pool holder, for the next Put (see putOut)
	scratch    []byte          // encoding scratch for WebSocket frames
	qsubs      []*subscription // queue subscriptions, copy-on-write
	adm        connAdmin       // what the management API shows (admin.go)
}

func newConn(s *Server, nc net.Conn, ws *wsReader) *conn {
	c := &conn{
		s:      s,
		id:     s.connID.Add(1),
		nc:     nc,
		ws:     ws,
		in:     nc,
		remote: nc.RemoteAddr().String(),
	}
	c.addr, _, _ = net.SplitHostPort(c.remote)
	inner := nc
	if pc, ok := nc.(*prefixConn); ok && len(pc.prefix) == 0 {
		inner = pc.Conn
	}
	if tc, ok := inner.(*net.TCPConn); ok {
		c.raw, _ = tc.SyscallConn()
	}
	if ws != nil {
		c.in = ws
		ws.src = nc
	}
	c.batch.owner = c
	c.parser = frame.Parser{
		MaxFrame:      s.opts.MaxFrameSize,
		MaxHeaders:    s.opts.MaxHeaders,
		MaxHeaderLine: s.opts.MaxHeaderLine,
	}
	return c
}

// logger returns the connection's logger, whose lines carry its id, peer
// and transport.
func (c *conn) logger() *slog.Logger {
	if l := c.lg.Load(); l != nil {
		return l
	}
	transport := "tcp"
	if c.ws != nil {
		transport = "ws"
	}
	l := c.s.log.With("conn", c.id, "peer", c.remote, "transport", transport)
	c.lg.CompareAndSwap(nil, l)
	return c.lg.Load()
}

// debug logs at debug level without building the logger when that level
// is off.
func (c *conn) debug(msg string, args ...any) {
	if c.s.log.Enabled(context.Background(), slog.LevelDebug) {
		c.logger().Debug(msg, args...)
	}
}

// preload puts bytes already read by the sniffer in front of the stream.
func (c *conn) preload(b []byte) {
	if len(b) == 0 {
		return
	}
	c.getReadBuf()
	c.rlen = copy(c.rbuf, b)
}

func (c *conn) getReadBuf() {
	if c.rbuf == nil {
		c.pooled = readBufPool.Get().(*[]byte)
		c.rbuf = *c.pooled
	}
}

// releaseReadBuf gives an idle connection's read buffer back to the pool.
func (c *conn) releaseReadBuf() {
	if c.rpos != c.rlen {
		return
	}
	c.rpos, c.rlen = 0, 0
	if c.pooled != nil {
		readBufPool.Put(c.pooled)
	}
	c.pooled, c.rbuf = nil, nil
}

// setReadDeadline arms the read deadline of a connected client: the agreed
// heart-beat interval (with grace), and the time left to finish a frame it
// has started (against slowloris clients), whichever comes first. For a
// busy plain TCP connection between frames, idleGrace from now when that
// comes first (graceDL): its read loop waits in a read that holds no buffer
// (readRaw) and hands off when the grace passes.
func (c *conn) setReadDeadline() {
	var dl time.Time
	now := time.Now()
	if c.hbRecv > 0 {
		dl = now.Add(c.hbRecv)
	}
	c.frameTimedOut = false
	if c.rlen > c.rpos && c.s.opts.FrameTimeout > 0 {
		if c.partialSince.IsZero() {
			c.partialSince = now
		}
		if fd := c.partialSince.Add(c.s.opts.FrameTimeout); dl.IsZero() || fd.Before(dl) {
			dl = fd
			c.frameTimedOut = true
		}
	}
	c.readDL = dl
	c.graceDL = false
	if c.rlen == c.rpos && c.busy() && c.rawReads() {
		if g := now.Add(idleGrace); dl.IsZero() || g.Before(dl) {
			dl = g
			c.graceDL = true
		}
	}
	c.nc.SetReadDeadline(dl)
}

// rawReads reports whether the connection reads its plain TCP socket
// directly (readRaw): no WebSocket, no TLS, nothing sniffed left over.
func (c *conn) rawReads() bool { return peekSupported && c.raw != nil && c.ws == nil }

// serve runs the read loop until the connection ends, then cleans up.
func (c *conn) serve() {
	if err := c.s.addConn(c); err != nil {
		c.s.stats.refused.Add(1)
		c.closeWithError(err, "")
		c.finish()
		c.s.stats.countClosed(c.closedState())
		return
	}
	c.s.stats.connsTotal.Add(1)
	if c.ws != nil {
		c.s.stats.wsConns.Add(1)
	}
	c.debug("connection opened")
	c.readDL = time.Now().Add(c.s.opts.ConnectTimeout)
	c.nc.SetReadDeadline(c.readDL)
	if !c.readLoop() {
		c.cleanup()
	}
}

// readLoop reads and handles the client's frames. It returns false when
// the connection ended (the caller cleans up), true when the connection
// went idle and a fresh goroutine took over the loop (see idle).
func (c *conn) readLoop() (handedOff bool) {
	for {
		if c.rlen > c.rpos {
			if !c.process() {
				return false
			}
		}
		if c.fills {
			c.fills = false
			if c.s.input.blocked() && !c.holdsQueueMessages() {
				// Backpressure: stop reading from a publisher that fills the
				// memory budget until queues drain. The read deadline is
				// armed after the pause: the client is not to blame for it.
				start := time.Now()
				c.s.input.wait(c.s.done, c.isClosed)
				c.paused(start)
			}
		}
		if q := c.crowded; q != nil {
			c.crowded = nil
			if !c.holdsQueueMessages() {
				// Flow control: a queue's consumers are not keeping up; its
				// publisher waits (TCP pushes back) instead of the queue
				// growing. Not while it holds queue messages: its ACKs
				// may be what the queue waits for.
				start := time.Now()
				c.s.stats.flowPaused.Add(1)
				c.s.stats.flowPauses.Add(1)
				q.waitUncrowded(c.s.done, c.isClosed)
				c.s.stats.flowPaused.Add(-1)
				c.paused(start)
			}
		}
		if c.connected {
			c.setReadDeadline()
		}
		// closeWithError sets closed, then wakes the reader with a past
		// deadline; a deadline armed above may have replaced that one.
		if c.isClosed() {
			return false
		}
		c.releaseReadBuf()
		if c.rbuf == nil && c.rawReads() {
			// Plain TCP: a busy connection waits in readOnce, without a
			// read buffer, until the grace deadline; others read what is
			// there now, if anything, and hand off when nothing is.
			if !c.graceDL {
				n, again, err := c.readRaw(false)
				if again {
					c.idle()
					return true
				}
				switch c.afterRead(n, err) {
				case readEnded:
					return false
				case readIdle:
					return true
				}
				continue
			}
		} else if c.rbuf == nil && c.raw != nil && (c.ws == nil || c.ws.park()) {
			if !c.busy() {
				if !c.readable() {
					c.idle()
					return true
				}
			} else {
				switch c.waitBriefly() {
				case graceQuiet:
					c.quickWakes = 0
					c.idle()
					return true
				case graceClosed:
					return false
				}
			}
		}
		switch c.readOnce() {
		case readEnded:
			return false
		case readIdle:
			return true
		}
	}
}

// idleGrace is how long the read goroutine of a busy connection waits,
// without a read buffer, for its next bytes before it hands the wait to a
// fresh goroutine (see idle). A busy client (a consumer whose ACKs come in
// batches, a publisher between bursts) is back well within it, so its read
// loop goes on in the same goroutine instead of starting a new one, and
// growing its stack again, for every batch; a connection quiet for longer
// ends up in the small goroutine all the same. A connection that is not
// busy hands off as soon as it has nothing to read: many clients setting
// up at once do not each keep a grown stack for idleGrace.
const idleGrace = 100 * time.Millisecond

// A connection is busy once busyAfter hand-offs in a row ended within
// quickWake (its next bytes came almost at once), until a wait of
// idleGrace finds nothing.
const (
	quickWake = 5 * time.Millisecond
	busyAfter = 3
)

// busy reports whether the connection's read loop waits idleGrace before
// a hand-off (see idleGrace). Read goroutine only.
func (c *conn) busy() bool { return c.quickWakes >= busyAfter }

// Outcomes of waitBriefly.
const (
	graceData   = iota // something to read (or an error, or the deadline: the next read reports it)
	graceQuiet         // nothing within idleGrace: hand off (see idle)
	graceClosed        // the connection was closed meanwhile
)

// waitBriefly waits, without a read buffer, until the socket has something
// to read or idleGrace has passed, whichever comes first; the read
// deadline (heart-beat, CONNECT or frame timeout) is re-armed afterwards.
// Read goroutine only.
func (c *conn) waitBriefly() int {
	if c.readable() {
		return graceData // no wait, no deadline to move
	}
	now := time.Now()
	grace := now.Add(idleGrace)
	if !c.readDL.IsZero() && !grace.Before(c.readDL) {
		// The read deadline comes first: the wait ends with it (the
		// next read reports the timeout).
		c.waitReadable() //nolint:errcheck // the next read reports it
		if c.isClosed() {
			return graceClosed
		}
		return graceData
	}
	c.nc.SetReadDeadline(grace)
	err := c.waitReadable()
	c.nc.SetReadDeadline(c.readDL)
	// closeWithError sets closed, then wakes the reader with a past
	// deadline, which the line above may have replaced.
	if c.isClosed() {
		return graceClosed
	}
	var ne net.Error
	if err != nil && (errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)) {
		if !c.readDL.IsZero() && !c.readDL.After(time.Now()) {
			return graceData // the read deadline has passed too: the next read reports it
		}
		return graceQuiet
	}
	return graceData
}

// idle hands the read loop of a connection that has nothing to read to a
// fresh goroutine, which waits for data without a read buffer and then
// carries on; the rings of its subscriptions' unacknowledged deliveries
// shrink to what they hold. The goroutine that handled frames (and whose
// stack grew doing so, and never shrinks back) ends: an idle connection
// costs one small stack. Once Shutdown has begun the wait happens here
// instead. Called once the connection was quiet for idleGrace.
func (c *conn) idle() {
	c.parser.Release() // between frames: nothing is pending
	putSpare(&c.spareQM)
	for _, sub := range c.subs {
		if sub.ack != ackAuto {
			sub.mu.Lock()
			sub.unacked.trim()
			sub.mu.Unlock()
		}
	}
	if !c.s.startGoRoutine(c.resume) {
		c.resume()
	}
}

// resume waits for the idle connection's next bytes, then runs the read
// loop (or cleans up when the connection ends meanwhile).
func (c *conn) resume() {
	start := time.Now()
	var n int
	var err error
	if c.rawReads() {
		n, _, err = c.readRaw(true) // waits without a buffer
	} else if err = c.waitReadable(); err != nil {
		c.readFailed(err)
		c.cleanup()
		return
	}
	if time.Since(start) < quickWake {
		c.quickWakes = min(c.quickWakes+1, busyAfter)
	} else {
		c.quickWakes = 0
	}
	if c.rawReads() {
		if c.afterRead(n, err) == readMore && c.readLoop() {
			return
		}
	} else if c.readOnce() == readMore && c.readLoop() {
		return
	}
	c.cleanup()
}

// Outcomes of a read (readOnce, afterRead).
const (
	readMore  = iota // go on reading
	readEnded        // the connection ended: the caller cleans up
	readIdle         // the connection went idle: a fresh goroutine took over (see idle)
)

// readOnce reads what the client sent and handles the complete frames.
func (c *conn) readOnce() int {
	if c.rbuf != nil && c.rlen == len(c.rbuf) {
		c.growReadBuf()
	}
	if c.rawReads() {
		// Waits without a buffer when none is held; with part of a frame
		// held, reads after it.
		n, _, err := c.readRaw(true)
		return c.afterRead(n, err)
	}
	c.getReadBuf()
	n, err := c.in.Read(c.rbuf[c.rlen:])
	return c.afterRead(n, err)
}

// afterRead handles the frames that a read of n bytes completed, and the
// read's error. A busy connection whose grace deadline passed (see
// setReadDeadline) goes idle.
func (c *conn) afterRead(n int, err error) int {
	c.rlen += n
	if n > 0 {
		c.s.stats.bytesIn.Add(uint64(n))
		before := c.rpos
		if !c.process() {
			return readEnded
		}
		if c.rpos == c.rlen || c.rpos != before {
			c.partialSince = time.Time{} // no frame pending, or a new one began
		}
	}
	if err != nil {
		if c.graceDL && n == 0 && c.rbuf == nil && isTimeout(err) &&
			(c.readDL.IsZero() || time.Now().Before(c.readDL)) {
			// Quiet for idleGrace: hand off, waiting for the real deadline.
			c.graceDL = false
			c.nc.SetReadDeadline(c.readDL)
			// closeWithError sets closed, then wakes the reader with a
			// past deadline, which the line above may have replaced.
			if !c.isClosed() {
				c.quickWakes = 0
				c.idle()
				return readIdle
			}
		}
		c.readFailed(err)
		return readEnded
	}
	return readMore
}

// isTimeout reports whether err is a read deadline that passed.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

func (c *conn) readFailed(err error) {
	if c.isClosed() {
		return
	}
	var ne net.Error
	var ce *clientError
	switch {
	case errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded):
		if c.frameTimedOut {
			c.logger().Info("closing client that did not finish a frame in time")
			c.fail(timeoutErr(FrameTimeout, "timeout: frame not completed within "+c.s.opts.FrameTimeout.String()), "")
		} else if c.connected {
			c.logger().Info("closing silent client: no heart-beat")
			c.fail(errHeartbeat, "")
		} else {
			c.logger().Info("closing client that did not send CONNECT in time")
			c.fail(errConnectTimeout, "")
		}
	case errors.As(err, &ce):
		c.logger().Info("websocket protocol error", "err", err)
		c.fail(ce, "")
	case err == io.EOF || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET):
		c.debug("read ended", "err", err)
		c.setCloseReason(ClientClosed)
	default:
		c.debug("read ended", "err", err)
		c.setCloseReason(ReadError)
	}
}

// growReadBuf makes room for more bytes of a pending frame: compact first,
// then double, up to the frame size limit (the parser rejects larger ones).
func (c *conn) growReadBuf() {
	if c.rpos > 0 {
		c.rlen = copy(c.rbuf, c.rbuf[c.rpos:c.rlen])
		c.rpos = 0
		return
	}
	nb := make([]byte, min(2*len(c.rbuf), c.s.opts.MaxFrameSize+readBufSize))
	copy(nb, c.rbuf[:c.rlen])
	if c.pooled != nil {
		readBufPool.Put(c.pooled)
		c.pooled = nil
	}
	c.rbuf = nb
}

// process parses and handles every complete frame in the read buffer, then
// wakes the writers of every connection the batch touched.
func (c *conn) process() bool {
	defer c.batch.flush()
	for c.rpos < c.rlen {
		f, n, err := c.parser.Parse(c.rbuf[c.rpos:c.rlen])
		if err != nil {
			err = c.explainParseError(err, c.rbuf[c.rpos:c.rlen])
			c.logger().Info("protocol error", "err", err)
			c.fail(parseErr(err), "")
			return false
		}
		if n == 0 {
			if c.rpos > 0 && c.rlen == len(c.rbuf) {
				c.growReadBuf()
			}
			return true
		}
		c.rpos += n
		if f != nil && !c.handle(f) {
			return false
		}
		if c.outFull && !c.waitOutput() {
			return false
		}
	}
	return true
}

// waitOutput pauses the read loop while the output held for the client
// (what is queued plus what the writer is writing) is over
// Options.MaxPendingBytes: what the client sends makes the broker write
// (RECEIPTs, DIAG answers, pongs), so a client that does not read must not
// be read either. TCP then pushes back on it. Reading resumes once the
// writer has drained the output below half the bound; a client that never
// reads is dropped by the writer's timeout. It reports false when the
// connection closed meanwhile. Read goroutine only.
func (c *conn) waitOutput() bool {
	c.outFull = false
	c.batch.flush() // the writer of this connection may not be started yet
	limit := c.s.opts.MaxPendingBytes
	c.mu.Lock()
	if c.closed || c.heldLocked() <= limit {
		closed := c.closed
		c.mu.Unlock()
		return !closed
	}
	start := time.Now()
	c.s.stats.outputPauses.Add(1)
	c.s.stats.outputPaused.Add(1)
	defer c.s.stats.outputPaused.Add(-1)
	c.debug("output over max-pending-bytes: not reading from the client until it drains", "held", c.heldLocked())
	for !c.closed && c.heldLocked() > limit/2 {
		ch := make(chan struct{})
		c.outWait = ch
		c.startWriterLocked()
		c.mu.Unlock()
		<-ch
		c.mu.Lock()
	}
	c.mu.Unlock()
	c.paused(start)
	if c.connected {
		c.setReadDeadline()
	}
	// A close after this check wakes the next read with a past deadline.
	return !c.isClosed()
}

// paused accounts for a pause of the read loop that began at start and that
// the broker caused: the time a started frame may take runs from its end.
// Read goroutine only; the caller re-arms the read deadline.
func (c *conn) paused(start time.Time) {
	if !c.partialSince.IsZero() {
		c.partialSince = c.partialSince.Add(time.Since(start))
	}
}

// heldLocked is the output held for the client: queued, and being written.
func (c *conn) heldLocked() int { return len(c.out) + c.inflight }

// queuedOwnLocked records a frame the read loop itself queued (a RECEIPT,
// a DIAG answer, a pong) and notes whether the output is now over the
// bound, which pauses the read loop after the frame.
func (c *conn) queuedOwnLocked() {
	h := c.heldLocked()
	if h > c.outPeak {
		c.outPeak = h
	}
	if h > c.s.opts.MaxPendingBytes {
		c.outFull = true
	}
}

// wakeReaderLocked ends a wait of the read loop in waitOutput.
func (c *conn) wakeReaderLocked() {
	if c.outWait != nil {
		close(c.outWait)
		c.outWait = nil
	}
}

// cleanup runs when the read loop ends: the connection's subscriptions and
// transactions go, unacked queue messages return to their queues, and the
// output is flushed before the socket closes.
func (c *conn) cleanup() {
	if c.connected {
		c.s.stats.connectedNow.Add(-1)
	}
	c.s.router.dropConn(c, &c.batch)
	c.s.router.dropTemp(c)
	c.dropTxs()
	c.batch.flush()
	c.finish()
	c.s.removeConn(c)
	c.releaseReadBuf()
	reason := c.closedState()
	c.s.stats.countClosed(reason)
	c.debug("connection closed", "reason", reason.String())
}

func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// setCloseReason records why the connection ends, unless a reason was
// recorded already.
func (c *conn) setCloseReason(r ClosedState) {
	c.mu.Lock()
	c.setCloseReasonLocked(r)
	c.mu.Unlock()
}

// setCloseReasonLocked is setCloseReason. Lock should be held (c.mu).
func (c *conn) setCloseReasonLocked(r ClosedState) {
	if c.closeState == Open {
		c.closeState = r
	}
}

// closedState is why the connection ended (Open while it has not).
func (c *conn) closedState() ClosedState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeState
}

// finish stops further output, waits for the writer to flush what is
// pending (bounded), and closes the socket.
func (c *conn) finish() {
	c.mu.Lock()
	c.closed = true
	c.wakeReaderLocked()
	if c.hbTimer != nil {
		c.hbTimer.Stop()
	}
	c.startWriterLocked()
	c.mu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(closeFlushWait))
	c.writers.Wait()
	if c.ws != nil {
		c.ws.close(c.nc)
	}
	if c.linger {
		c.lingerClose()
	}
	c.nc.Close()
}

// fail answers a client's error: it counts it by kind
// (stompica_errors_total) and closes the connection with an ERROR frame
// (see closeWithError). Safe from any goroutine.
func (c *conn) fail(err error, receipt string) {
	ce := asClientError(err)
	c.s.stats.countError(ce.kind)
	c.closeWithError(ce, receipt)
}

// closeWithError queues an ERROR frame whose message is err's text (with
// receipt-id when the bad frame asked for a receipt), records err's close
// reason, refuses further output and makes the read loop end. It counts no
// error (fail does). Safe from any goroutine.
func (c *conn) closeWithError(err error, receipt string) {
	ce := asClientError(err)
	f := frame.New(frame.ERROR, "message", ce.msg)
	if receipt != "" {
		f.Add("receipt-id", receipt)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.appendFrameLocked(f)
	c.closed = true
	c.wakeReaderLocked()
	c.setCloseReasonLocked(ce.reason)
	c.recordErrorLocked(ce.msg)
	c.startWriterLocked()
	c.mu.Unlock()
	// Wake the read loop; the writer flushes the ERROR before the close.
	c.nc.SetReadDeadline(time.Now())
}

// sendFrame queues a server frame (CONNECTED, RECEIPT, ERROR, MESSAGE for
// DIAG answers) for the client. Read goroutine only: it counts against the
// client's output bound (see waitOutput).
func (c *conn) sendFrame(f *frame.Frame, b *batch) {
	c.mu.Lock()
	if !c.closed {
		c.appendFrameLocked(f)
		c.queuedOwnLocked()
		c.touchLocked(b)
	}
	c.mu.Unlock()
}

func (c *conn) appendFrameLocked(f *frame.Frame) {
	c.grabOutLocked()
	if c.ws == nil {
		c.out = frame.Append(c.out, f, c.version)
		return
	}
	c.scratch = frame.Append(c.scratch[:0], f, c.version)
	c.out = c.ws.appendMessage(c.out, isBinary(f.Body), c.scratch, nil)
}

// appendMessage queues one MESSAGE made of a per-subscription prefix and the
// message's shared encoding. It reports false when the connection takes no
// more output.
func (c *conn) appendMessageLocked(prefix, shared []byte, binary bool) {
	c.grabOutLocked()
	c.reserveOutLocked(len(prefix) + len(shared) + wsMaxHeader)
	if c.ws == nil {
		c.out = append(c.out, prefix...)
		c.out = append(c.out, shared...)
		return
	}
	c.out = c.ws.appendMessage(c.out, binary, prefix, shared)
}

// takesDeliveriesLocked reports whether messages may still be queued for
// the client.
func (c *conn) takesDeliveriesLocked() bool { return !c.closed && !c.leaving }

// appendDeliveryLocked queues one MESSAGE of s, its per-subscription
// prefix then the message's shared encoding, and counts it. On TCP the
// prefix is written straight into the output (a WebSocket message needs
// its length first: the prefix goes through b.scratch).
func (c *conn) appendDeliveryLocked(b *batch, s *subscription, m *message, redelivered bool) {
	shared := m.sharedFor(c.version)
	if c.ws == nil {
		c.grabOutLocked()
		c.reserveOutLocked(s.prefixMax() + len(shared))
		c.out = s.appendPrefix(c.out, m, redelivered)
		c.out = append(c.out, shared...)
	} else {
		b.scratch = s.appendPrefix(b.scratch[:0], m, redelivered)
		c.appendMessageLocked(b.scratch, shared, m.isBinary())
	}
	c.touchLocked(b)
	b.delivered++
	b.st = &c.s.stats
}

// touchLocked records that c has new output for the batch to flush.
func (c *conn) touchLocked(b *batch) {
	if !c.touched && !c.writing {
		c.touched = true
		b.conns = append(b.conns, c)
	}
}

// The read loop flushing its batch writes its own connection's output
// itself (see kick) when it is small: one non-blocking write costs less
// than starting a writer goroutine, which wakes an idle thread. That is
// what a client's own frames make the broker send: its RECEIPTs, and the
// messages its ACKs freed credit for. inlineWriteMax bounds it; past it a
// writer goroutine takes over. Another connection's output (a publisher's
// fan-out, a producer's SENDs dispatched to a consumer) is written inline
// only once the batch gave it inlineOtherMin bytes or more; less goes to
// its writer goroutine: written inline, every read batch of a publisher
// would cost a write per subscriber (a WebSocket publisher's batches are a
// few SENDs), where a writer that runs a moment later gathers several
// batches into one write.
const (
	inlineWriteMax = 64 << 10
	inlineOtherMin = 16 << 10
)

// kick has the output pending for c written. On a plain TCP socket, with
// little pending and no writer running, the calling goroutine (the one
// flushing a batch) makes one non-blocking write itself (own: c is the
// batch's own connection; see inlineWriteMax and inlineOtherMin): most of the
// time that sends everything, and no writer goroutine starts, no idle
// thread is woken. What the socket does not take (a client that does not
// read fast enough), or anything else, goes to a writer goroutine (see
// writeLoop).
func (c *conn) kick(own bool) {
	c.mu.Lock()
	c.touched = false
	if c.writing || len(c.out) == 0 {
		c.mu.Unlock()
		return
	}
	inline := own || len(c.out) >= inlineOtherMin
	if !inline || !peekSupported || c.raw == nil || c.closed || c.queueWait || len(c.out) > inlineWriteMax {
		c.startWriterLocked()
		c.mu.Unlock()
		return
	}
	c.writing = true
	c.writers.Add(1) // finish waits for this write as for a writer goroutine
	buf := c.takeOutLocked()
	c.mu.Unlock()

	n, err := c.writeNow(buf)

	c.mu.Lock()
	if !c.wroteLocked(n, err) {
		c.mu.Unlock()
		c.writeFailed(err)
		c.writers.Done()
		return
	}
	rest, off := buf, n
	if n == len(buf) {
		c.inflight = 0
		if cap(buf) <= outSizes[len(outSizes)-1] {
			c.spare = buf[:0]
		}
		if len(c.out) == 0 && !c.queueWait {
			// All written, nothing new: as a writer that drained.
			c.writing = false
			c.releaseOutLocked()
			c.wakeReaderLocked()
			c.mu.Unlock()
			c.writers.Done()
			return
		}
		rest, off = nil, 0
	} else {
		c.inflight = len(buf) - n
	}
	c.mu.Unlock()
	// The writer takes over (and the writers count with it): what the
	// socket did not take, then what was queued meanwhile.
	go c.writeLoop(rest, off)
}

func (c *conn) startWriterLocked() {
	if c.writing || len(c.out) == 0 {
		return
	}
	c.writing = true
	c.writers.Add(1)
	go c.writeLoop(nil, 0)
}

// takeOutLocked takes the pending output for a write; the spare buffer
// becomes the output (the two alternate).
func (c *conn) takeOutLocked() []byte {
	buf := c.out
	c.out = c.spare[:0]
	c.spare = nil
	c.inflight = len(buf)
	return buf
}

// wroteLocked accounts for a write that took n bytes: the bytes sent, and
// the time of the last write (for heart-beats). On an error it ends the
// output and reports false: the writer is done, and closes the socket
// (writeFailed) once it has unlocked.
func (c *conn) wroteLocked(n int, err error) bool {
	c.s.stats.bytesOut.Add(uint64(n))
	if n > 0 {
		c.lastWrite = time.Now()
	}
	if err == nil {
		return true
	}
	c.inflight = 0
	c.out = c.out[:0]
	c.closed = true
	c.setCloseReasonLocked(WriteError)
	c.writing = false
	c.wakeReaderLocked()
	return false
}

// writeFailed closes the socket after a failed write (see wroteLocked).
func (c *conn) writeFailed(err error) {
	c.debug("write failed", "err", err)
	c.nc.Close()
}

// writeLoop writes whatever is pending until the buffer is empty, then
// exits; idle connections have no writer goroutine. It first writes
// buf[off:] when buf is not nil (the part of a write that kick began and
// the socket did not take).
func (c *conn) writeLoop(buf []byte, off int) {
	defer c.writers.Done()
	var b batch
	for {
		c.mu.Lock()
		if buf == nil {
			if len(c.out) == 0 {
				c.writing = false
				c.releaseOutLocked()
				c.wakeReaderLocked()
				closed := c.closed
				wake := c.queueWait
				c.queueWait = false
				c.mu.Unlock()
				if wake && !closed {
					c.s.router.consumerReady(c, &b)
					b.flush()
				}
				return
			}
			buf, off = c.takeOutLocked(), 0
		}
		closed := c.closed
		c.mu.Unlock()

		if !closed {
			c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		}
		var n int
		var err error
		if peekSupported && c.raw != nil {
			n, err = c.writeAll(buf[off:])
		} else {
			n, err = c.nc.Write(buf[off:])
		}

		c.mu.Lock()
		if !c.wroteLocked(n, err) {
			c.mu.Unlock()
			c.writeFailed(err)
			return
		}
		c.inflight = 0
		if cap(buf) <= outSizes[len(outSizes)-1] {
			c.spare = buf[:0]
		}
		buf = nil
		wake := c.queueWait && len(c.out) < c.s.opts.MaxPendingBytes/2
		if wake {
			c.queueWait = false
		}
		if c.outWait != nil && c.heldLocked() <= c.s.opts.MaxPendingBytes/2 {
			c.wakeReaderLocked()
		}
		c.mu.Unlock()
		if wake {
			c.s.router.consumerReady(c, &b)
			b.flush()
		}
	}
}

// Output buffers come from pools, one per size class, and go back to them
// whenever the writer has drained them, so idle connections hold none. A
// buffer that must grow moves to the next class, which serves from its
// pool too: a busy connection does not allocate (and clear) fresh buffers
// each time its writer drains and starts again.
var (
	outSizes = [...]int{16 << 10, 64 << 10, 256 << 10}
	outPools [len(outSizes)]sync.Pool
)

// outClass is the class of a buffer of capacity n, or -1 when n is not a
// class size (such a buffer is left to the collector).
func outClass(n int) int {
	for k, size := range outSizes {
		if n == size {
			return k
		}
	}
	return -1
}

// getOut returns an empty buffer of class k in a holder.
func getOut(k int) *[]byte {
	if h, ok := outPools[k].Get().(*[]byte); ok {
		return h
	}
	b := make([]byte, 0, outSizes[k])
	return &b
}

// putOut gives b back to its class's pool in the holder h (nil: a new
// one). It reports whether it did; otherwise h is still the caller's.
func putOut(b []byte, h *[]byte) bool {
	k := outClass(cap(b))
	if k < 0 {
		return false
	}
	if h == nil {
		h = new([]byte)
	}
	*h = b[:0]
	outPools[k].Put(h)
	return true
}

func (c *conn) grabOutLocked() {
	if c.out != nil {
		return
	}
	if c.spare != nil {
		c.out, c.spare = c.spare[:0], nil
		return
	}
	h := getOut(0)
	c.out = (*h)[:0]
	c.holder = h // kept for the next Put
}

// releaseOutLocked gives the drained buffers back to their pools (through
// the holder kept, so that a Put does not allocate), and drops the
// WebSocket encoding scratch: an idle connection holds no buffer.
func (c *conn) releaseOutLocked() {
	for _, b := range [2][]byte{c.out, c.spare} {
		if b != nil && putOut(b, c.holder) {
			c.holder = nil
		}
	}
	c.out, c.spare, c.scratch = nil, nil, nil
	c.holder = nil
}

// wsMaxHeader is the largest WebSocket frame header the server writes
// (no mask): what a MESSAGE may add to its STOMP bytes.
const wsMaxHeader = 10

// reserveOutLocked makes room for n more bytes of output. A buffer that
// must grow at least doubles, into the smallest class that fits (append
// alone grows large slices by a quarter, copying the pending output again
// at every step); the one it replaces goes back to its pool (no other
// goroutine refers to the output buffer).
func (c *conn) reserveOutLocked(n int) {
	if len(c.out)+n <= cap(c.out) {
		return
	}
	want := max(2*cap(c.out), len(c.out)+n)
	var nb []byte
	var h *[]byte
	for k, size := range outSizes {
		if size >= want {
			h = getOut(k)
			nb = *h
			break
		}
	}
	if h == nil {
		nb = make([]byte, 0, want)
	}
	nb = append(nb[:0], c.out...)
	old := c.out
	c.out = nb
	if h == nil {
		h, c.holder = c.holder, nil
	}
	if !putOut(old, h) {
		c.holder = h
	}
}

// pendingLocked is the number of bytes queued for the client.
func (c *conn) pendingLocked() int { return len(c.out) }

// startHeartBeats arms the server-to-client heart-beat timer.
func (c *conn) startHeartBeats(every time.Duration) {
	if every <= 0 {
		return
	}
	c.mu.Lock()
	c.hbSend = every
	c.lastWrite = time.Now()
	c.hbTimer = time.AfterFunc(every, c.heartBeat)
	c.mu.Unlock()
}

// heartBeat sends an EOL when nothing else was written for a while.
func (c *conn) heartBeat() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	idle := time.Since(c.lastWrite)
	next := c.hbSend
	if idle >= c.hbSend*9/10 && len(c.out) == 0 && !c.writing {
		if c.ws == nil {
			c.out = append(c.out, '\n')
		} else {
			c.out = c.ws.appendMessage(c.out, false, []byte{'\n'}, nil)
		}
		c.startWriterLocked()
	} else if idle < c.hbSend {
		next = c.hbSend - idle
	}
	c.hbTimer.Reset(next)
	c.mu.Unlock()
}

// batch collects connections with new output while a goroutine handles a
// run of frames; flush wakes each of their writers once.
type batch struct {
	conns     []*conn
	queues    []*queue // to dispatch before the writers are woken (see dispatchLater)
	owner     *conn    // the connection whose read loop the batch is (nil: none), see kick
	scratch   []byte
	delivered uint64
	acks      uint64 // ACKed deliveries (see router.ack)
	frames    uint64 // frames handled (see conn.handle)
	msgs      uint64 // messages published (see router.publishTo)
	// st is where the counts above go at flush: once per batch, not once
	// per frame from every core into the same cache line.
	st *stats
}

// dispatchLater has q dispatch when the batch is flushed (or before the
// next RECEIPT the batch's connection sends, see dispatchPending), once
// however many ACKs of the batch freed credit on it.
func (b *batch) dispatchLater(q *queue) {
	for _, p := range b.queues {
		if p == q {
			return
		}
	}
	b.queues = append(b.queues, q)
}

// dispatchPending runs the dispatches dispatchLater deferred.
func (b *batch) dispatchPending() {
	for i := 0; i < len(b.queues); i++ {
		b.queues[i].dispatch(b)
		b.queues[i] = nil
	}
	b.queues = b.queues[:0]
}

// count adds what the batch counted to the server's statistics.
func (b *batch) count() {
	if b.st == nil {
		return // nothing counted yet: whatever counts sets st
	}
	moveCount(&b.st.deliveries, &b.delivered)
	moveCount(&b.st.acks, &b.acks)
	moveCount(&b.st.framesIn, &b.frames)
	moveCount(&b.st.msgsIn, &b.msgs)
}

// moveCount adds *n to c and clears it.
func moveCount(c *atomic.Uint64, n *uint64) {
	if *n > 0 {
		c.Add(*n)
		*n = 0
	}
}

func (b *batch) flush() {
	if len(b.queues) > 0 {
		b.dispatchPending()
	}
	b.count()
	for i, c := range b.conns {
		c.kick(c == b.owner)
		b.conns[i] = nil
	}
	b.conns = b.conns[:0]
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// slowConsumer disconnects a subscriber that cannot keep up.
func (c *conn) slowConsumer(why string) {
	if c.isClosed() {
		return
	}
	c.s.stats.slowConsumers.Add(1)
	c.logger().Warn("disconnecting slow consumer", "why", why)
	c.closeWithError(slowConsumerErr(why), "")
}

func (c *conn) addQueueSub(s *subscription) {
	c.mu.Lock()
	c.qsubs = append(slices.Clip(c.qsubs), s)
	c.mu.Unlock()
}

func (c *conn) removeQueueSub(s *subscription) {
	c.mu.Lock()
	if i := slices.Index(c.qsubs, s); i >= 0 {
		c.qsubs = slices.Delete(slices.Clone(c.qsubs), i, i+1)
	}
	c.mu.Unlock()
}

func (c *conn) queueSubs() []*subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.qsubs
}

// certLogin is the subject common name of a verified TLS client
// certificate, which serves as the login when CONNECT names none.
func (c *conn) certLogin() string {
	nc := c.nc
	if pc, ok := nc.(*prefixConn); ok {
		nc = pc.Conn
	}
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return ""
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return ""
	}
	return st.PeerCertificates[0].Subject.CommonName
}

// holdsQueueMessages reports whether the connection has unacknowledged
// queue messages: pausing its reads could stop the ACKs that drain queues.
func (c *conn) holdsQueueMessages() bool {
	for _, sub := range c.subs {
		if sub.queue && sub.ack != ackAuto {
			sub.mu.Lock()
			n := sub.unacked.len()
			sub.mu.Unlock()
			if n > 0 {
				return true
			}
		}
	}
	return false
}
