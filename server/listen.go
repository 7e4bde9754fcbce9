package server

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// handleConn sniffs the first bytes of a new connection: an HTTP method
// (isHTTPHead) is HTTP (WebSocket upgrade, console, metrics, API), anything
// else is raw STOMP.
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
	var req *httpHead
	if n == len(head) && isHTTPHead(head) {
		req = readHTTPHead(nc, head[:])
	}
	s.mu.Lock()
	delete(s.sniffing, nc)
	closing := s.closing
	s.mu.Unlock()
	if closing {
		req.release()
		nc.Close() // Shutdown closed it, or is about to
		return
	}
	if err != nil && n == 0 {
		if rh := (tls.RecordHeaderError{}); errors.As(err, &rh) && rh.Conn != nil {
			s.plainOnTLSPort(rh, nc.RemoteAddr().String())
			nc.Close()
			return
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			s.stats.countError(errConnectTimeout.kind)
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			nc.Write([]byte("ERROR\nmessage:" + errConnectTimeout.msg + "\n\n\x00")) //nolint:errcheck // best effort
		}
		nc.Close()
		return
	}
	if req != nil {
		s.serveHTTPConn(nc, req)
		return
	}
	if isTLSHello(head[:n]) {
		s.tlsOnPlainPort(nc)
		nc.Close()
		return
	}
	c := newConn(s, nc, nil)
	c.preload(head[:n])
	c.serve()
}

// serveHTTPConn serves a connection whose first request head was read: a
// WebSocket upgrade here (upgradeWebSocket), anything else by net/http,
// which reads the request again from the bytes kept.
func (s *Server) serveHTTPConn(nc net.Conn, req *httpHead) {
	// HTTP connections count against the connection limit (with
	// httpExtraConns to spare for /healthz and /metrics); over it, 503.
	if !s.addHTTPConn() {
		req.release()
		s.stats.refused.Add(1)
		refuseConn(nc, http503)
		return
	}
	pc := &prefixConn{Conn: nc}
	pc.counted.Store(true)
	if req.isWebSocketUpgrade() {
		s.upgradeWebSocket(pc, req)
		return
	}
	nc.SetReadDeadline(time.Time{})
	pc.prefix = bytes.Clone(req.buf)
	req.release()
	if !s.httpLn.push(pc) {
		s.doneHTTPConn(pc)
	}
}

// maxHTTPHead bounds the request head read before net/http sees the
// connection (a longer head is left to net/http, which allows more).
const maxHTTPHead = 8 << 10

var httpHeadPool = sync.Pool{New: func() any { b := make([]byte, maxHTTPHead); return &b }}

// httpHead is the start of an HTTP connection: its first request head, and
// whatever was read with it.
type httpHead struct {
	bp  *[]byte // pooled buffer behind buf
	buf []byte  // every byte read, "GET " first
	end int     // length of the request head through its blank line; 0 when incomplete
}

// readHTTPHead reads the rest of a request head that began with start
// ("GET "), up to maxHTTPHead bytes, within the read deadline. A read
// error ends it early (end stays 0): net/http then meets the same error.
func readHTTPHead(nc net.Conn, start []byte) *httpHead {
	h := &httpHead{bp: httpHeadPool.Get().(*[]byte)}
	h.buf = append((*h.bp)[:0], start...)
	for len(h.buf) < cap(h.buf) {
		n, err := nc.Read(h.buf[len(h.buf):cap(h.buf)])
		from := max(len(h.buf)-3, 0)
		h.buf = h.buf[:len(h.buf)+n]
		if end := headEnd(h.buf, from); end > 0 {
			h.end = end
			return h
		}
		if err != nil {
			return h
		}
	}
	return h
}

// headEnd returns the length of the HTTP head in b (through the blank line
// that ends it, CRLF or bare LF), looking for its end from offset from; 0
// when b holds no complete head.
func headEnd(b []byte, from int) int {
	for i := from; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
	}
	return 0
}

// release gives the buffer back (h may be nil).
func (h *httpHead) release() {
	if h == nil || h.bp == nil {
		return
	}
	httpHeadPool.Put(h.bp)
	h.bp, h.buf = nil, nil
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
