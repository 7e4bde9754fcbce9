package server

// The connection limit and file descriptors.
//
// Every connection is a file descriptor, as are the listeners, connections
// still being sniffed, HTTP connections and (with a data dir) the store's
// files. A broker allowed more connections than the process may open files
// runs out of descriptors: accept fails with EMFILE, new clients wait in the
// listen backlog with no answer, and /metrics cannot be reached. So the
// effective connection limit is Options.MaxConnections lowered to fit
// RLIMIT_NOFILE with some headroom, and one descriptor is kept in reserve to
// answer a client with an ERROR when the process runs out all the same.

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"
)

const (
	// fdHeadroomMin and fdHeadroomDiv: the connection limit leaves
	// max(fdHeadroomMin, RLIMIT_NOFILE/fdHeadroomDiv) descriptors for the
	// listeners, the reserve descriptor, connections being sniffed, HTTP
	// connections past the limit (httpExtraConns), log and data files.
	fdHeadroomMin = 64
	fdHeadroomDiv = 20

	// httpExtraConns is how many HTTP connections may be open beyond the
	// connection limit (out of the descriptor headroom), so that /healthz
	// and /metrics still answer when STOMP clients have taken every slot.
	httpExtraConns = 16

	// refuseWait bounds how long a refused connection is kept to deliver
	// its answer (the ERROR or the 503) before it is closed.
	refuseWait = time.Second

	// fdWarnEvery spaces the "out of file descriptors" warnings.
	fdWarnEvery = 10 * time.Second
)

// connLimit returns the effective connection limit for the configured one
// and the open-file limit nofile (0 = unknown or unbounded), and why.
func connLimit(configured int, nofile uint64) (int, string) {
	if nofile == 0 || nofile > 1<<40 {
		return configured, "configured; the open-file limit is unknown or unbounded"
	}
	n := int(nofile)
	headroom := max(fdHeadroomMin, n/fdHeadroomDiv)
	fit := n - headroom
	if fit < 1 {
		fit = max(1, n/2)
	}
	if configured <= fit {
		return configured, "configured; fits the open-file limit " + strconv.Itoa(n) +
			" with " + strconv.Itoa(n-configured) + " descriptors to spare"
	}
	return fit, "lowered to the open-file limit (RLIMIT_NOFILE) " + strconv.Itoa(n) + " minus " +
		strconv.Itoa(n-fit) + " descriptors kept for listeners, HTTP, connections being set up and files"
}

// logConnLimit logs the effective connection limit at start: a warning when
// it is lower than configured.
func (s *Server) logConnLimit() {
	args := []any{"max_connections", s.maxConns, "configured", s.opts.MaxConnections,
		"open_file_limit", s.nofile, "why", s.maxConnsWhy}
	if s.maxConns < s.opts.MaxConnections {
		s.log.Warn("connection limit lowered to fit the open-file limit; raise it (ulimit -n, LimitNOFILE=) for more connections", args...)
		return
	}
	s.log.Info("connection limit", args...)
}

// MaxConnections returns the effective connection limit: Options.MaxConnections,
// lowered when the process may not open that many files.
func (s *Server) MaxConnections() int { return s.maxConns }

// addHTTPConn counts a new HTTP connection, or reports false when the
// server is closing or connections (STOMP, WebSocket and HTTP) have
// reached the limit plus httpExtraConns.
func (s *Server) addHTTPConn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || len(s.conns)+s.httpConns >= s.maxConns+httpExtraConns {
		return false
	}
	s.httpConns++
	return true
}

// httpConnState is the HTTP server's ConnState hook: an HTTP connection
// stops counting when it closes, or when it is upgraded to WebSocket (it
// then counts as a STOMP connection).
func (s *Server) httpConnState(nc net.Conn, st http.ConnState) {
	if st == http.StateHijacked || st == http.StateClosed {
		s.doneHTTPConn(nc)
	}
}

// doneHTTPConn uncounts an HTTP connection counted by addHTTPConn (once).
func (s *Server) doneHTTPConn(nc net.Conn) {
	pc, ok := nc.(*prefixConn)
	if !ok || !pc.counted.CompareAndSwap(true, false) {
		return
	}
	s.mu.Lock()
	s.httpConns--
	s.mu.Unlock()
}

// http503 answers an HTTP connection over the limit.
var http503 = func() []byte {
	body := "too many connections\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Connection: close\r\nRetry-After: 1\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// stompErrorFrame is a STOMP ERROR frame with message msg, for clients
// refused before they have a conn.
func stompErrorFrame(msg string) []byte {
	return []byte("ERROR\ncontent-type:text/plain\nmessage:" + msg + "\n\n" + msg + "\x00")
}

// refuseConn writes answer to a connection the broker will not serve,
// shuts its sending side and reads what the client sends until it closes
// (bounded by refuseWait), so the answer is not lost to a reset, then
// closes it.
func refuseConn(nc net.Conn, answer []byte) {
	nc.SetDeadline(time.Now().Add(refuseWait))
	if _, err := nc.Write(answer); err == nil {
		if cw, ok := nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			io.Copy(io.Discard, io.LimitReader(nc, 1<<20)) //nolint:errcheck // until EOF or the deadline
		}
	}
	nc.Close()
}

// fdsExhausted reports whether an accept error means the process (EMFILE)
// or the system (ENFILE) has no file descriptor left.
func fdsExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// fdReserve is one open descriptor (of /dev/null) held back for when the
// process runs out: closing it lets accept take the next client in line, to
// answer it with an ERROR instead of leaving it in the listen backlog.
type fdReserve struct {
	busy chan struct{} // holds a token while someone uses f
	f    *os.File      // nil while released; only the token holder touches it
}

func (r *fdReserve) init() {
	r.busy = make(chan struct{}, 1)
	r.f, _ = os.Open(os.DevNull) // nil on failure: reopened when needed
}

// reopen takes the reserve descriptor back; the caller holds the token.
func (r *fdReserve) reopen() bool {
	if r.f == nil {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return false
		}
		r.f = f
	}
	return true
}

func (r *fdReserve) close() {
	r.busy <- struct{}{}
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
	<-r.busy
}

// acceptWithReserve runs when accept failed for lack of descriptors. It
// releases the reserve descriptor and accepts one connection with it: if
// descriptors are free again by then (the reserve can be reopened), the
// connection is served as usual; otherwise it gets an ERROR "too many
// connections" and is closed at once, and the reserve is taken back. It reports
// whether a connection was taken; false means the caller should back off
// (the reserve is in use by another accept loop, or could not be had).
func (s *Server) acceptWithReserve(ln net.Listener) bool {
	r := &s.reserve
	select {
	case r.busy <- struct{}{}:
	default:
		return false
	}
	if r.f == nil {
		r.reopen()
		<-r.busy
		return false
	}
	r.f.Close()
	r.f = nil
	nc, err := ln.Accept()
	if err != nil {
		r.reopen()
		<-r.busy
		return false
	}
	if r.reopen() {
		<-r.busy
		s.serveAccepted(nc)
		return true
	}
	// Still none: answer and close at once. No lingering here: the reserve
	// is held until the close, and the next client in line waits for it.
	// (The ERROR is not lost to the reset a close with unread input sends:
	// it reached the client's receive queue first.) A TLS client is closed
	// without one: answering needs a handshake, that is round trips.
	s.stats.refused.Add(1)
	s.stats.countError(errOutOfFDs.kind)
	s.warnFDsExhausted(syscall.EMFILE)
	if _, isTLS := nc.(*tls.Conn); !isTLS {
		nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		nc.Write(stompErrorFrame(errOutOfFDs.msg)) //nolint:errcheck // best effort
	}
	nc.Close()
	r.reopen()
	<-r.busy
	return true
}

// warnFDsExhausted logs that the process is out of descriptors, at most
// once per fdWarnEvery.
func (s *Server) warnFDsExhausted(err error) {
	now := time.Now().UnixNano()
	last := s.fdWarned.Load()
	if last != 0 && now-last < int64(fdWarnEvery) || !s.fdWarned.CompareAndSwap(last, now) {
		return
	}
	s.mu.Lock()
	n, h := len(s.conns), s.httpConns
	s.mu.Unlock()
	s.log.Warn("out of file descriptors: new clients are refused with an ERROR until some close",
		"err", err, "open_file_limit", s.nofile, "connections", n, "http_connections", h,
		"max_connections", s.maxConns)
}
