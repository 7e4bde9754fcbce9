package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/stompica/stompica/frame"
	"github.com/stompica/stompica/internal/testutil"
)

// waitTimeout bounds every single wait of the test client (a frame, a
// receipt, the end of a connection, goroutines winding down).
const waitTimeout = 5 * time.Second

// pollEvery is how long poll sleeps between two looks.
const pollEvery = testutil.PollEvery

// poll calls done every pause until it returns true or timeout has passed
// (testutil.Poll, the polling helper all the tests share).
var poll = testutil.Poll

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, waitTimeout, what, cond)
}

// transports are the two ways a client reaches the broker.
var transports = []string{"tcp", "ws"}

// forEachTransport runs body as a subtest over raw TCP and over WebSocket.
func forEachTransport(t *testing.T, body func(t *testing.T, tr string)) {
	t.Helper()
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { body(t, tr) })
	}
}

// testLogWriter sends the broker's log lines to t.Log until stopped (after
// Shutdown), so no goroutine logs into a finished test.
type testLogWriter struct {
	t       testing.TB
	stopped atomic.Bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	if !w.stopped.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// startServer starts a broker on a random port of 127.0.0.1 with the
// options configure sets, and registers its Shutdown. After Shutdown it
// checks that every goroutine started since (broker and test clients) ended.
func startServer(t *testing.T, configure func(*Options)) *Server {
	t.Helper()
	base := runtime.NumGoroutine()
	lw := &testLogWriter{t: t}
	opts := Options{
		Host:   "127.0.0.1",
		Port:   -1,
		Logger: slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if configure != nil {
		configure(&opts)
	}
	if opts.Store == nil && testStore != nil {
		opts.Store = testStore(t)
	}
	srv, err := New(&opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		waitGoroutines(t, base)
		lw.stopped.Store(true)
	})
	return srv
}

// waitGoroutines polls until no broker goroutine is left (identified by
// its stack, so an unrelated goroutine ending cannot hide one) and no more
// than base goroutines run.
func waitGoroutines(t testing.TB, base int) {
	t.Helper()
	var left []string
	var n int
	if !poll(waitTimeout, pollEvery, func() bool {
		left, n = brokerGoroutines(), runtime.NumGoroutine()
		return len(left) == 0 && n <= base
	}) {
		var b bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&b, 1) //nolint:errcheck
		t.Errorf("goroutine leak after Shutdown: %d goroutines (%d before the server started), %d broker goroutines:\n%s\nall goroutines:\n%s",
			n, base, len(left), strings.Join(left, "\n\n"), b.String())
	}
}

// brokerGoroutines returns the stacks of goroutines running broker code:
// a frame in a non-test file of this package, or an HTTP server
// connection (only the broker runs an http.Server in these tests).
func brokerGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "waitGoroutines") {
			continue // this goroutine
		}
		broker := strings.Contains(g, "net/http.(*conn).serve") || strings.Contains(g, "net/http.(*Server).Serve")
		for _, line := range strings.Split(g, "\n") {
			line = strings.TrimSpace(line)
			if i := strings.Index(line, "/server/"); i >= 0 && strings.Contains(line, ".go:") && !strings.Contains(line, "_test.go:") {
				broker = true
			}
		}
		if broker {
			out = append(out, g)
		}
	}
	return out
}

// evKind tells apart what the test client's reader saw.
type evKind int

const (
	evFrame   evKind = iota // a STOMP frame
	evBeat                  // heart-beat EOL(s) between frames
	evControl               // a WebSocket control frame (ping, pong, close)
)

// event is one thing received from the broker.
type event struct {
	kind    evKind
	f       *frame.Frame
	op      ws.OpCode // WebSocket: opcode of the message the frame ended in (or the control frame's)
	whole   bool      // WebSocket: the frame was exactly one whole message
	payload []byte    // control frame payload
	at      time.Time
}

// client is a minimal STOMP test client over TCP or WebSocket. A reader
// goroutine feeds what arrives into a frame.Parser and queues copies of the
// frames (never blocking, so the client is never a slow consumer unless
// paused); the test goroutine sends and expects.
type client struct {
	t    testing.TB
	tr   string
	nc   net.Conn
	br   *bufio.Reader // WebSocket: reads what follows the handshake
	hs   ws.Handshake
	ver  atomic.Int32 // negotiated frame.Version, set by the reader on CONNECTED
	rcpt int          // receipt counter (test goroutine)

	mu     sync.Mutex
	events []event
	ended  bool
	endErr error
	notify chan struct{}
	gateMu sync.Mutex
	gate   chan struct{} // non-nil while paused; closed by resume
	done   chan struct{} // closed when the reader ends

	// Filled by the expect helpers (test goroutine).
	closeCode ws.StatusCode // WebSocket close frame seen from the server (0 = none)
	closeSeen bool
}

type dialConfig struct {
	rcvBuf    int      // SO_RCVBUF set before connecting (0 = default)
	protocols []string // WebSocket subprotocols offered
	path      string   // WebSocket URL path
}

type dialOpt func(*dialConfig)

// withRcvBuf sets a small socket receive buffer (slow consumers).
func withRcvBuf(n int) dialOpt { return func(c *dialConfig) { c.rcvBuf = n } }

// withProtocols sets the WebSocket subprotocols offered.
func withProtocols(p ...string) dialOpt { return func(c *dialConfig) { c.protocols = p } }

// dial connects a test client to srv over tr ("tcp" or "ws").
func dial(t testing.TB, srv *Server, tr string, opts ...dialOpt) *client {
	t.Helper()
	cfg := dialConfig{protocols: []string{"v12.stomp", "v11.stomp", "v10.stomp"}, path: "/ws"}
	for _, o := range opts {
		o(&cfg)
	}
	addr := srv.Addr().String()
	nd := &net.Dialer{Timeout: waitTimeout}
	if cfg.rcvBuf > 0 {
		nd.Control = rcvBufControl(cfg.rcvBuf)
	}
	c := &client{
		t:      t,
		tr:     tr,
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	switch tr {
	case "tcp":
		nc, err := nd.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial tcp %s: %v", addr, err)
		}
		c.nc = nc
	case "ws":
		d := ws.Dialer{
			Timeout:   waitTimeout,
			Protocols: cfg.protocols,
			NetDial:   nd.DialContext,
		}
		nc, br, hs, err := d.Dial(context.Background(), "ws://"+addr+cfg.path)
		if err != nil {
			t.Fatalf("dial ws %s: %v", addr, err)
		}
		if br == nil {
			br = bufio.NewReaderSize(nc, 64<<10)
		}
		c.nc, c.br, c.hs = nc, br, hs
	default:
		t.Fatalf("unknown transport %q", tr)
	}
	go c.readLoop()
	t.Cleanup(c.close)
	return c
}

// close closes the socket and waits for the reader to end.
func (c *client) close() {
	c.nc.Close()
	c.resume()
	select {
	case <-c.done:
	case <-time.After(waitTimeout):
		c.t.Errorf("%s client: reader did not end after close", c.tr)
	}
}

// pause makes the reader stop reading (after what it is reading now), so
// the broker's output piles up in the socket buffers.
func (c *client) pause() {
	c.gateMu.Lock()
	if c.gate == nil {
		c.gate = make(chan struct{})
	}
	c.gateMu.Unlock()
}

// resume lets a paused client's reader read again.
func (c *client) resume() {
	c.gateMu.Lock()
	if c.gate != nil {
		close(c.gate)
		c.gate = nil
	}
	c.gateMu.Unlock()
}

func (c *client) waitGate() {
	c.gateMu.Lock()
	g := c.gate
	c.gateMu.Unlock()
	if g != nil {
		<-g
	}
}

func (c *client) push(evs ...event) {
	if len(evs) == 0 {
		return
	}
	c.mu.Lock()
	c.events = append(c.events, evs...)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *client) end(err error) {
	c.mu.Lock()
	c.ended = true
	c.endErr = err
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *client) readLoop() {
	defer close(c.done)
	var p frame.Parser
	if c.tr == "tcp" {
		var pending []byte
		chunk := make([]byte, 64<<10)
		for {
			c.waitGate()
			n, err := c.nc.Read(chunk)
			if n > 0 {
				pending = append(pending, chunk[:n]...)
				var evs []event
				var perr error
				pending, evs, perr = c.parse(&p, pending, 0)
				c.push(evs...)
				if perr != nil {
					c.end(fmt.Errorf("client parser: %w", perr))
					return
				}
			}
			if err != nil {
				c.end(err)
				return
			}
		}
	}
	var pending []byte
	var msgOp ws.OpCode
	fresh := true // the current message started with no partial frame pending
	for {
		c.waitGate()
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			c.end(err)
			return
		}
		if h.Masked {
			c.end(fmt.Errorf("server sent a masked WebSocket frame"))
			return
		}
		if h.Length > 64<<20 {
			c.end(fmt.Errorf("server sent a %d-byte WebSocket frame", h.Length))
			return
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, payload); err != nil {
			c.end(err)
			return
		}
		if h.OpCode.IsControl() {
			c.push(event{kind: evControl, op: h.OpCode, payload: payload, at: time.Now()})
			continue
		}
		if h.OpCode != ws.OpContinuation {
			msgOp = h.OpCode
			fresh = len(pending) == 0
		}
		pending = append(pending, payload...)
		if !h.Fin {
			continue
		}
		var evs []event
		var perr error
		pending, evs, perr = c.parse(&p, pending, msgOp)
		frames := 0
		for _, e := range evs {
			if e.kind == evFrame {
				frames++
			}
		}
		if fresh && frames == 1 && len(pending) == 0 {
			for i := range evs {
				evs[i].whole = evs[i].kind == evFrame
			}
		}
		c.push(evs...)
		if perr != nil {
			c.end(fmt.Errorf("client parser: %w", perr))
			return
		}
	}
}

// parse takes every complete frame off the front of buf and returns the
// rest (moved to the front of buf's array).
func (c *client) parse(p *frame.Parser, buf []byte, op ws.OpCode) ([]byte, []event, error) {
	var evs []event
	rest := buf
	for len(rest) > 0 {
		f, n, err := p.Parse(rest)
		if err != nil {
			return buf[:0], evs, err
		}
		if n == 0 {
			break
		}
		now := time.Now()
		if f == nil {
			evs = append(evs, event{kind: evBeat, at: now})
		} else {
			fc := cloneFrame(f)
			if fc.Command == frame.CONNECTED {
				v := versionOf(fc.GetString("version"))
				p.Version = v
				c.ver.Store(int32(v))
			}
			evs = append(evs, event{kind: evFrame, f: fc, op: op, at: now})
		}
		rest = rest[n:]
	}
	if len(rest) == len(buf) {
		return buf, evs, nil
	}
	return append(buf[:0], rest...), evs, nil
}

func versionOf(s string) frame.Version {
	switch s {
	case frame.V11:
		return frame.Version11
	case frame.V12:
		return frame.Version12
	}
	return frame.Version10
}

func cloneFrame(f *frame.Frame) *frame.Frame {
	c := &frame.Frame{Command: f.Command, Body: bytes.Clone(f.Body)}
	for _, h := range f.Headers {
		c.Headers = append(c.Headers, frame.Header{Key: bytes.Clone(h.Key), Value: bytes.Clone(h.Value)})
	}
	return c
}

// next returns the next event, or ok false when the connection ended (err
// says why) or nothing came within d.
func (c *client) next(d time.Duration) (ev event, ended bool, err error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		c.mu.Lock()
		if len(c.events) > 0 {
			ev = c.events[0]
			c.events[0] = event{}
			c.events = c.events[1:]
			c.mu.Unlock()
			return ev, false, nil
		}
		if c.ended {
			err := c.endErr
			c.mu.Unlock()
			return event{}, true, err
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-timer.C:
			return event{}, false, errTimeout
		}
	}
}

var errTimeout = fmt.Errorf("timed out after %v", waitTimeout)

// nextEvent returns the next event other than heart-beats (and pongs,
// close frames, which are recorded). It fails the test on timeout or end.
func (c *client) nextFrame(what string) event {
	c.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ev, ended, err := c.next(time.Until(deadline))
		switch {
		case ended:
			c.t.Fatalf("%s client: connection ended (%v) while waiting for %s", c.tr, err, what)
		case err != nil:
			c.t.Fatalf("%s client: %v waiting for %s", c.tr, err, what)
		}
		switch ev.kind {
		case evBeat:
			continue
		case evControl:
			if ev.op == ws.OpClose {
				c.recordClose(ev)
			}
			continue
		}
		return ev
	}
}

func (c *client) recordClose(ev event) {
	c.closeSeen = true
	c.closeCode, _ = ws.ParseCloseFrameData(ev.payload)
}

// expect returns the next frame, which must be cmd.
func (c *client) expect(cmd string) *frame.Frame {
	c.t.Helper()
	ev := c.nextFrame(cmd)
	if ev.f.Command != cmd {
		c.t.Fatalf("%s client: expected %s, got %s", c.tr, cmd, fmtFrame(ev.f))
	}
	return ev.f
}

// expectEvent is expect returning the whole event (WebSocket details).
func (c *client) expectEvent(cmd string) event {
	c.t.Helper()
	ev := c.nextFrame(cmd)
	if ev.f.Command != cmd {
		c.t.Fatalf("%s client: expected %s, got %s", c.tr, cmd, fmtFrame(ev.f))
	}
	return ev
}

// expectMessage expects a MESSAGE with the given body.
func (c *client) expectMessage(body string) *frame.Frame {
	c.t.Helper()
	f := c.expect(frame.MESSAGE)
	if string(f.Body) != body {
		c.t.Fatalf("%s client: expected a MESSAGE with body %q, got %s", c.tr, body, fmtFrame(f))
	}
	return f
}

// expectError expects an ERROR whose message header contains want
// (case-insensitively).
func (c *client) expectError(want string) *frame.Frame {
	c.t.Helper()
	f := c.expect(frame.ERROR)
	if msg := f.GetString("message"); !strings.Contains(strings.ToLower(msg), strings.ToLower(want)) {
		c.t.Fatalf("%s client: expected an ERROR about %q, got %s", c.tr, want, fmtFrame(f))
	}
	return f
}

// expectClosed expects the broker to close the connection with no further
// STOMP frame; over WebSocket a close frame must come first. It returns the
// WebSocket close code.
func (c *client) expectClosed() ws.StatusCode {
	c.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ev, ended, err := c.next(time.Until(deadline))
		if ended {
			if c.tr == "ws" && !c.closeSeen {
				c.t.Fatalf("ws client: connection ended (%v) without a WebSocket close frame", err)
			}
			if err != nil && err != io.EOF && !isClosedErr(err) {
				c.t.Fatalf("%s client: connection ended with %v", c.tr, err)
			}
			return c.closeCode
		}
		if err != nil {
			c.t.Fatalf("%s client: connection still open: %v waiting for the close", c.tr, err)
		}
		switch ev.kind {
		case evBeat:
		case evControl:
			if ev.op == ws.OpClose {
				c.recordClose(ev)
			}
		default:
			c.t.Fatalf("%s client: expected the connection to close, got %s", c.tr, fmtFrame(ev.f))
		}
	}
}

func isClosedErr(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connection reset") || strings.Contains(s, "use of closed")
}

// expectControl expects a WebSocket control frame op (skipping heart-beats).
func (c *client) expectControl(op ws.OpCode) []byte {
	c.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ev, ended, err := c.next(time.Until(deadline))
		if ended || err != nil {
			c.t.Fatalf("ws client: no control frame %v: ended=%v err=%v", op, ended, err)
		}
		switch ev.kind {
		case evBeat:
			continue
		case evControl:
			if ev.op == ws.OpClose {
				c.recordClose(ev)
			}
			if ev.op == op {
				return ev.payload
			}
			c.t.Fatalf("ws client: expected control frame %v, got %v %q", op, ev.op, ev.payload)
		default:
			c.t.Fatalf("ws client: expected control frame %v, got %s", op, fmtFrame(ev.f))
		}
	}
}

func fmtFrame(f *frame.Frame) string {
	var b strings.Builder
	b.WriteString(f.Command)
	for _, h := range f.Headers {
		fmt.Fprintf(&b, " %s:%q", h.Key, h.Value)
	}
	if len(f.Body) > 200 {
		fmt.Fprintf(&b, " body=%q...(%d bytes)", f.Body[:200], len(f.Body))
	} else {
		fmt.Fprintf(&b, " body=%q", f.Body)
	}
	return b.String()
}

// write sends raw bytes: one write on TCP, one (masked) message on WebSocket.
func (c *client) write(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	if c.tr == "tcp" {
		_, err := c.nc.Write(b)
		return err
	}
	op := ws.OpText
	if !utf8.Valid(b) {
		op = ws.OpBinary
	}
	return wsutil.WriteClientMessage(c.nc, op, b)
}

// send writes raw bytes and fails the test if that fails.
func (c *client) send(raw string) {
	c.t.Helper()
	if err := c.write([]byte(raw)); err != nil {
		c.t.Fatalf("%s client: write: %v", c.tr, err)
	}
}

// trySend writes raw bytes, ignoring errors (the broker may have closed).
func (c *client) trySend(raw string) { c.write([]byte(raw)) } //nolint:errcheck

// version is the negotiated version (1.0 before CONNECTED).
func (c *client) version() frame.Version { return frame.Version(c.ver.Load()) }

// encode builds a frame (headers escaped for the negotiated version;
// content-length added for a non-empty body).
func (c *client) encode(cmd, body string, kv ...string) []byte {
	f := frame.New(cmd, kv...)
	f.Body = []byte(body)
	return frame.Append(nil, f, c.version())
}

// sendFrame sends cmd with the key/value headers and body.
func (c *client) sendFrame(cmd, body string, kv ...string) {
	c.t.Helper()
	if err := c.write(c.encode(cmd, body, kv...)); err != nil {
		c.t.Fatalf("%s client: write: %v", c.tr, err)
	}
}

// newReceipt returns a fresh receipt id.
func (c *client) newReceipt() string {
	c.rcpt++
	return "rcpt-" + strconv.Itoa(c.rcpt)
}

// expectReceipt expects the RECEIPT for id.
func (c *client) expectReceipt(id string) {
	c.t.Helper()
	f := c.expect(frame.RECEIPT)
	if got := f.GetString("receipt-id"); got != id {
		c.t.Fatalf("%s client: expected RECEIPT receipt-id:%s, got %s", c.tr, id, fmtFrame(f))
	}
}

// request sends cmd with a receipt header and waits for its RECEIPT; any
// other frame before it fails the test.
func (c *client) request(cmd, body string, kv ...string) {
	c.t.Helper()
	id := c.newReceipt()
	c.sendFrame(cmd, body, append(kv, "receipt", id)...)
	c.expectReceipt(id)
}

// connect sends CONNECT (accept-version omitted when version is "") and
// expects CONNECTED.
func (c *client) connect(version string, kv ...string) *frame.Frame {
	c.t.Helper()
	var hdrs []string
	if version != "" {
		hdrs = append(hdrs, "accept-version", version)
	}
	hdrs = append(hdrs, "host", "localhost")
	hdrs = append(hdrs, kv...)
	c.sendFrame(frame.CONNECT, "", hdrs...)
	return c.expect(frame.CONNECTED)
}

// subscribe subscribes with a receipt.
func (c *client) subscribe(dest, id string, kv ...string) {
	c.t.Helper()
	c.request(frame.SUBSCRIBE, "", append([]string{"destination", dest, "id", id}, kv...)...)
}

// subscribeNoWait subscribes without a receipt (for destinations that
// hold messages, which may arrive before any receipt).
func (c *client) subscribeNoWait(dest, id string, kv ...string) {
	c.t.Helper()
	c.sendFrame(frame.SUBSCRIBE, "", append([]string{"destination", dest, "id", id}, kv...)...)
}

// publish sends a message with a receipt.
func (c *client) publish(dest, body string, kv ...string) {
	c.t.Helper()
	c.request(frame.SEND, body, append([]string{"destination", dest}, kv...)...)
}

// sync does a receipt round trip that touches no subscription: it fails if
// any frame (a MESSAGE) arrives first, so after a publisher's receipt it
// proves the client was sent nothing more.
func (c *client) sync() {
	c.t.Helper()
	c.request(frame.SEND, "", "destination", "sync-noop")
}

// sendSync sends a no-op SEND with a receipt and returns the receipt id.
func (c *client) sendSync() string {
	c.t.Helper()
	id := c.newReceipt()
	c.sendFrame(frame.SEND, "", "destination", "sync-noop", "receipt", id)
	return id
}

// messagesUntilReceipt returns the MESSAGEs that arrive before the RECEIPT
// for id; any other frame fails the test.
// freedMessage expects the one MESSAGE, with body, that an ACK or COMMIT
// sent with receipt id frees, and the RECEIPT. In memory the freed message
// comes first: the ACK dispatches it at once. A store that reads stored
// messages back (testStore set, as in TestOnJetStream) may not have the
// next one at hand yet, and it may follow the RECEIPT.
func (c *client) freedMessage(body, id string) *frame.Frame {
	c.t.Helper()
	ms := c.messagesUntilReceipt(id)
	if len(ms) == 0 && testStore != nil {
		ms = append(ms, c.expect(frame.MESSAGE))
	}
	if len(ms) != 1 || string(ms[0].Body) != body {
		c.t.Fatalf("%s client: %d MESSAGEs before RECEIPT %s (%v), want the one freed, %q", c.tr, len(ms), id, ms, body)
	}
	return ms[0]
}

func (c *client) messagesUntilReceipt(id string) []*frame.Frame {
	c.t.Helper()
	var ms []*frame.Frame
	for {
		ev := c.nextFrame("RECEIPT " + id)
		switch ev.f.Command {
		case frame.MESSAGE:
			ms = append(ms, ev.f)
			continue
		case frame.RECEIPT:
			if got := ev.f.GetString("receipt-id"); got == id {
				return ms
			}
		}
		c.t.Fatalf("%s client: expected MESSAGE or RECEIPT %s, got %s", c.tr, id, fmtFrame(ev.f))
	}
}

// waitSessions polls the DIAG "session-size" query through c until the
// broker counts n client connections (c included).
func (c *client) waitSessions(n int) {
	c.t.Helper()
	var v map[string]int
	if !poll(waitTimeout, pollEvery, func() bool {
		c.sendFrame(frame.DIAG, "session-size")
		m := c.expect(frame.MESSAGE)
		v = nil
		if err := json.Unmarshal(m.Body, &v); err != nil {
			c.t.Fatalf("DIAG session-size: %v: %s", err, fmtFrame(m))
		}
		return v["session-size"] == n
	}) {
		c.t.Fatalf("DIAG session-size = %d, want %d", v["session-size"], n)
	}
}

// expectShutdownClose expects what a client still being set up may get
// at Shutdown: at most an ERROR "shutting down", then the close (a reset
// counts: the broker may close before reading what the client sent).
func (c *client) expectShutdownClose() {
	c.t.Helper()
	ev, ended, err := c.next(waitTimeout)
	switch {
	case ended:
		return
	case err != nil:
		c.t.Fatalf("%s client: still open after Shutdown: %v", c.tr, err)
	case ev.kind == evFrame && ev.f.Command == frame.ERROR && ev.f.GetString("message") == "shutting down":
		c.expectClosed()
	case ev.kind == evFrame:
		c.t.Fatalf("%s client: got %s at Shutdown", c.tr, fmtFrame(ev.f))
	default:
		c.expectClosed()
	}
}

// connected dials and connects at version 1.2.
func connected(t testing.TB, srv *Server, tr string, opts ...dialOpt) *client {
	t.Helper()
	c := dial(t, srv, tr, opts...)
	c.connect("1.2")
	return c
}

// ackID returns what a 1.2 client puts in ACK's id header.
func ackID(t testing.TB, f *frame.Frame) string {
	t.Helper()
	id, ok := f.Get("ack")
	if !ok {
		t.Fatalf("MESSAGE without ack header: %s", fmtFrame(f))
	}
	return string(id)
}

// headerCount counts the headers named key (all occurrences).
func headerCount(f *frame.Frame, key string) int {
	n := 0
	for _, h := range f.Headers {
		if string(h.Key) == key {
			n++
		}
	}
	return n
}

// waitHandedOff waits until the broker's one connection has handed its
// read loop to a fresh goroutine (conn.resume, parked in its wait) and no
// goroutine still runs conn.serve: what an idle read loop does (see
// conn.idle).
func waitHandedOff(t *testing.T, what string) {
	t.Helper()
	waitFor(t, what, func() bool {
		resumed, serving := 0, 0
		for _, g := range brokerGoroutines() {
			if strings.Contains(g, "(*conn).resume(") && isParked(g) {
				resumed++
			}
			if strings.Contains(g, "(*conn).serve(") {
				serving++
			}
		}
		return resumed == 1 && serving == 0
	})
}
