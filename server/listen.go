package server

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// handleConn sniffs the first bytes of a new connection: "GET " is HTTP
// (WebSocket upgrade, console, metrics), anything else is raw STOMP.
func (s *Server) handleConn(nc net.Conn) {
	// Until it is sniffed, Shutdown must be able to close the connection.
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.sniffing[nc] = struct{}{}
	s.mu.Unlock()
	var head [4]byte
	nc.SetReadDeadline(time.Now().Add(s.opts.ConnectTimeout))
	n, err := io.ReadAtLeast(nc, head[:], len(head))
	s.mu.Lock()
	delete(s.sniffing, nc)
	closing := s.closing
	s.mu.Unlock()
	if closing {
		nc.Close() // Shutdown closed it, or is about to
		return
	}
	if err != nil && n == 0 {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			s.stats.countError(errConnectTimeout.kind)
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			nc.Write([]byte("ERROR\nmessage:" + errConnectTimeout.msg + "\n\n\x00")) //nolint:errcheck // best effort
		}
		nc.Close()
		return
	}
	if n == len(head) && bytes.Equal(head[:], []byte("GET ")) {
		nc.SetReadDeadline(time.Time{})
		// HTTP connections count against the connection limit (with
		// httpExtraConns to spare for /healthz and /metrics); over it, 503.
		if !s.addHTTPConn() {
			s.stats.refused.Add(1)
			refuseConn(nc, http503)
			return
		}
		pc := &prefixConn{Conn: nc, prefix: append([]byte(nil), head[:n]...)}
		pc.counted.Store(true)
		if !s.httpLn.push(pc) {
			s.doneHTTPConn(pc)
		}
		return
	}
	c := newConn(s, nc, nil)
	c.preload(head[:n])
	c.serve()
}

// prefixConn replays bytes already read from a connection. The HTTP
// server gets its connections wrapped in one.
type prefixConn struct {
	net.Conn
	prefix  []byte
	counted atomic.Bool // in Server.httpConns (until closed or upgraded)
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// connListener hands sniffed HTTP connections to net/http.
type connListener struct {
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to the HTTP server; false when the listener is closed (c
// is closed then).
func (l *connListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		c.Close()
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{} }
