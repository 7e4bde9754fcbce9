// Package server is the embeddable stompica broker: listeners, connections,
// sessions, routing, acknowledgements and transactions.
//
// # Lock order
//
// A goroutine holding one of these locks may take only locks listed after
// it, never one listed before it. A function whose name ends in Locked, or
// whose comment says "Lock should be held", expects its caller to hold the
// lock it names.
//
//  1. Server.reloadMu: one Reload at a time. The users file's and the ACL
//     file's own locks (package auth) are taken under it.
//  2. fdReserve.busy (a one-slot channel used as a lock): the accept loops'
//     spare file descriptor. Server.mu is taken under it.
//  3. router.mu (read-write): topic subscriptions by name and pattern,
//     queues by name, owners of temporary queues. The pattern tries' own
//     lock (package sublist) is taken under it.
//  4. queue.mu: a queue's waiting messages, consumers and round-robin
//     position. Its store (store.Queue) is called under it, with no
//     other lock of this list held after it, except a memory store's
//     (store.Volatile: no lock, never blocks), which a dispatch run also
//     calls under the consumer's conn.mu (see queueRun).
//  5. conn.mu: a connection's output (buffers, writer state, heart-beat
//     timer, close state, queue subscriptions), and its wsReader's header
//     scratch, which frames that output for WebSocket.
//  6. subscription.mu: a subscription's unacknowledged deliveries, held
//     topic messages and queue list.
//  7. Leaves: nothing else is taken while one is held.
//     - message.encMu: a message's encodings for STOMP 1.0 and 1.1 (under
//     conn.mu while a delivery is appended).
//     - inputGate.mu: the publishers' pause (under queue.mu when a
//     message leaves a queue).
//     - router.retMu: retained (TTL) topic messages.
//     - Server.mu: listeners, connections and their counts, connections
//     being sniffed, closing. Only sockets are closed under it; a
//     connection's lock is taken after it is released (DIAG, /metrics).
//
// Goroutines: every goroutine the server starts is tracked by Shutdown,
// which waits for them: accept loops, connection read loops (from the
// accept path, and the fresh goroutine an idle connection's loop goes on
// in) and the HTTP server's serve loop through startGoRoutine; a
// connection's writer through conn.writers, which its read loop waits for
// before it ends; heart-beat timers are stopped when the connection
// closes.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stompica/stompica/auth"
	"github.com/stompica/stompica/store"
)

// Version is the broker version reported in CONNECTED's server header.
const Version = "0.1.0"

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("stompica: server closed")

// Server is a STOMP broker. Create it with New, then Start or Serve.
type Server struct {
	opts   Options
	log    *slog.Logger
	router *router
	stats  stats
	start  time.Time

	mu        sync.Mutex
	listeners []net.Listener
	tlsLn     net.Listener
	conns     map[*conn]struct{}
	httpConns int            // HTTP connections (not upgraded) now; see addHTTPConn
	perAddr   map[string]int // connections per remote IP (when bounded)
	sniffing  map[net.Conn]struct{}
	closing   bool

	// maxConns is the effective connection limit: Options.MaxConnections,
	// lowered to fit RLIMIT_NOFILE (see connLimit).
	maxConns    int
	maxConnsWhy string
	nofile      uint64
	reserve     fdReserve
	fdWarned    atomic.Int64 // when "out of file descriptors" was last logged (UnixNano)

	tlsConf  atomic.Pointer[tls.Config] // served to new TLS handshakes; Reload swaps it
	reloadMu sync.Mutex

	httpLn  *connListener
	httpSrv *http.Server

	input inputGate
	done  chan struct{} // closed by Shutdown
	// ctx is cancelled by Shutdown: work done for a client (an
	// Authenticator's network call) stops with it.
	ctx    context.Context
	cancel context.CancelFunc

	authn auth.Authenticator // nil: anyone logs in (auth.go)
	authz auth.Authorizer    // nil: everything allowed (acl.go)

	admin adminState // the management API's recent errors and HTTP logins (admin.go)

	wg     sync.WaitGroup // every goroutine the server starts (startGoRoutine) and every connection (addConn)
	connID atomic.Uint64

	clusterOnce sync.Once // the cluster link is started once
}

// New returns a broker configured by opts (nil means defaults).
func New(opts *Options) (*Server, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	o = o.withDefaults()
	s := &Server{
		opts:     o,
		log:      o.Logger,
		conns:    make(map[*conn]struct{}),
		sniffing: make(map[net.Conn]struct{}),
		start:    time.Now(),
		done:     make(chan struct{}),
	}
	s.input.s = s
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.initAuth(); err != nil {
		return nil, err
	}
	s.nofile = openFileLimit()
	s.maxConns, s.maxConnsWhy = connLimit(o.MaxConnections, s.nofile)
	s.reserve.init()
	st := o.Store
	if st == nil {
		st = store.NewMemory()
	}
	s.router = newRouter(s, st)
	if err := s.router.load(); err != nil {
		return nil, fmt.Errorf("stompica: store: %w", err)
	}
	s.httpLn = newConnListener()
	s.httpSrv = &http.Server{
		Handler: s.httpHandler(),
		// A client has ConnectTimeout to send its request headers, as a
		// STOMP client has to send CONNECT; a keep-alive connection idle
		// for HTTPIdleTimeout is closed.
		ReadHeaderTimeout: o.ConnectTimeout,
		IdleTimeout:       o.HTTPIdleTimeout,
		ConnState:         s.httpConnState,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.startGoRoutine(func() {
		s.httpSrv.Serve(s.httpLn) //nolint:errcheck // ends with Shutdown
	})
	return s, nil
}

// Options returns the effective options (defaults filled in).
func (s *Server) Options() Options { return s.opts }

// Start listens on Options.Host:Options.Port (and the TLS port when a
// certificate is configured) and serves in the background.
func (s *Server) Start() error {
	if err := s.opts.checkTLS(); err != nil {
		return err
	}
	if err := s.startCluster(); err != nil {
		return err
	}
	tlsConf, err := s.listenerTLSConfig()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port)))
	if err != nil {
		return fmt.Errorf("stompica: listen: %w", err)
	}
	lns := []net.Listener{ln}
	if tlsConf != nil {
		tln, err := net.Listen("tcp", net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.TLSPort)))
		if err != nil {
			ln.Close()
			return fmt.Errorf("stompica: listen TLS: %w", err)
		}
		lns = append(lns, tls.NewListener(tln, tlsConf))
	}
	for i, ln := range lns {
		if err := s.register(ln, i == 1); err != nil {
			return err
		}
		if !s.startGoRoutine(func() { s.acceptLoop(ln) }) {
			return ErrServerClosed // Shutdown closed ln
		}
	}
	if s.opts.AckTimeout > 0 && !s.startGoRoutine(s.ackTimeoutLoop) {
		return ErrServerClosed
	}
	s.authWarnings()
	s.logConnLimit()
	return nil
}

// TLSAddr returns the address of the TLS listener, or nil.
func (s *Server) TLSAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tlsLn == nil {
		return nil
	}
	return s.tlsLn.Addr()
}

// Addr returns the address of the first listener, or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.listeners) == 0 {
		return nil
	}
	return s.listeners[0].Addr()
}

// Serve accepts connections on ln until Shutdown. STOMP and HTTP/WebSocket
// are told apart by the first bytes of each connection.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.startCluster(); err != nil {
		ln.Close()
		return err
	}
	if err := s.register(ln, false); err != nil {
		return err
	}
	if !s.addGoRoutine() {
		return ErrServerClosed // Shutdown closed ln
	}
	defer s.wg.Done()
	return s.acceptLoop(ln)
}

func (s *Server) register(ln net.Listener, isTLS bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		ln.Close()
		return ErrServerClosed
	}
	s.listeners = append(s.listeners, ln)
	if isTLS {
		s.tlsLn = ln
	}
	s.log.Info("stompica listening", append([]any{"addr", ln.Addr().String(), "tls", isTLS}, listenURLs(ln.Addr(), isTLS)...)...)
	return nil
}

func (s *Server) acceptLoop(ln net.Listener) error {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			if fdsExhausted(err) {
				// Out of descriptors: answer the next client in line with
				// the reserve descriptor rather than leave it waiting.
				if s.acceptWithReserve(ln) {
					delay = 0
					continue
				}
				s.warnFDsExhausted(err)
				delay = min(max(2*delay, time.Millisecond), 50*time.Millisecond)
				time.Sleep(delay)
				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			s.log.Error("accept failed", "err", err)
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.serveAccepted(nc)
	}
}

// serveAccepted handles a new connection in a goroutine of its own (or
// closes it when the server is shutting down).
func (s *Server) serveAccepted(nc net.Conn) {
	if !s.startGoRoutine(func() { s.handleConn(nc) }) {
		nc.Close()
	}
}

// startGoRoutine runs f in a goroutine that Shutdown waits for. Once
// Shutdown has begun it starts nothing and reports false. Every long-lived
// goroutine of the server starts here (or, for a caller's own goroutine,
// registers with addGoRoutine). Takes Server.mu.
func (s *Server) startGoRoutine(f func()) bool {
	if !s.addGoRoutine() {
		return false
	}
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// addGoRoutine counts one more goroutine for Shutdown to wait for (the
// caller calls s.wg.Done when it ends), unless Shutdown has begun: then it
// reports false. The count is taken under Server.mu, so it never races
// with Shutdown's wait.
func (s *Server) addGoRoutine() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// addConn registers c; it fails when the server is closing or full.
func (s *Server) addConn(c *conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return errShuttingDown
	}
	if len(s.conns)+s.httpConns >= s.maxConns {
		return errTooManyConns
	}
	if max := s.opts.MaxConnectionsPerAddress; max > 0 {
		if s.perAddr == nil {
			s.perAddr = make(map[string]int)
		}
		if s.perAddr[c.addr] >= max {
			return errTooManyFromAddr
		}
		s.perAddr[c.addr]++
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1) // under s.mu, before Shutdown can start waiting
	return nil
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	_, ok := s.conns[c]
	delete(s.conns, c)
	if ok && s.perAddr != nil {
		if s.perAddr[c.addr]--; s.perAddr[c.addr] <= 0 {
			delete(s.perAddr, c.addr)
		}
	}
	s.mu.Unlock()
	if ok {
		s.wg.Done()
	}
}

// Shutdown stops accepting, tells every client "shutting down" with an
// ERROR frame, flushes and closes their connections, and waits for every
// goroutine the server started, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	close(s.done)
	s.cancel()
	for _, ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	for nc := range s.sniffing {
		nc.Close()
	}
	s.mu.Unlock()

	s.httpLn.Close()
	hctx, cancel := context.WithTimeout(ctx, time.Second)
	s.httpSrv.Shutdown(hctx) //nolint:errcheck // best effort; hijacked conns are ours
	cancel()
	for _, c := range conns {
		c.closeWithError(errShuttingDown, "")
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		s.reserve.close() // no accept loop is left to use it
		s.router.closeQueues()
		s.stopCluster()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			c.nc.Close()
		}
		return ctx.Err()
	}
}
