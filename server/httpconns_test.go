package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

// httpConn is a raw keep-alive HTTP/1.1 client connection.
type httpConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func httpDial(t *testing.T, srv *Server) *httpConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", srv.Addr().String(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &httpConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// get sends GET path (keep-alive) and returns the status and body.
func (h *httpConn) get(path string) (int, string) {
	h.t.Helper()
	h.nc.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(h.nc, "GET "+path+" HTTP/1.1\r\nHost: stompica\r\n\r\n"); err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	resp, err := http.ReadResponse(h.br, nil)
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("GET %s: body: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// awaitClose waits until the server closes the connection and returns when
// that was seen.
func (h *httpConn) awaitClose() time.Time {
	h.t.Helper()
	h.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	n, err := h.br.Read(make([]byte, 1))
	if err == nil || n > 0 {
		h.t.Fatalf("want the connection closed, read %d bytes", n)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		h.t.Fatalf("the server did not close the connection within %v", waitTimeout)
	}
	return time.Now()
}

func httpConnsNow(srv *Server) int { return srv.snapshot(0).HTTP }

// TestHTTPIdleTimeout: keep-alive HTTP connections left idle after a
// request are closed by the broker after Options.HTTPIdleTimeout; they are
// counted (stompica_http_connections) while open, and not after. A
// connection that never finishes its request headers is closed after
// ConnectTimeout.
func TestHTTPIdleTimeout(t *testing.T) {
	const idle, n = 300 * time.Millisecond, 20
	srv := startServer(t, func(o *Options) {
		o.HTTPIdleTimeout = idle
		o.ConnectTimeout = 300 * time.Millisecond
	})
	conns := make([]*httpConn, n)
	answered := make([]time.Time, n)
	for i := range conns {
		conns[i] = httpDial(t, srv)
		if code, body := conns[i].get("/healthz"); code != http.StatusOK || body != "ok\n" {
			t.Fatalf("GET /healthz: %d %q", code, body)
		}
		answered[i] = time.Now()
	}
	if got := httpConnsNow(srv); got != n {
		t.Errorf("HTTP connections counted: %d, want %d", got, n)
	}
	m := metricsScrape(t, srv) // one more HTTP connection, its own
	if got := m["stompica_http_connections"]; got != n+1 {
		t.Errorf("stompica_http_connections = %v, want %d (the idle ones and the scrape)", got, n+1)
	}
	if got := m["stompica_max_connections"]; got != float64(srv.MaxConnections()) || got <= 0 {
		t.Errorf("stompica_max_connections = %v, want %d", got, srv.MaxConnections())
	}
	// A second request on a connection works and restarts its idle time.
	if code, _ := conns[0].get("/healthz"); code != http.StatusOK {
		t.Fatalf("second request: %d", code)
	}
	answered[0] = time.Now()
	var longest time.Duration
	for i, c := range conns {
		d := c.awaitClose().Sub(answered[i])
		if d < idle/2 {
			t.Errorf("connection %d closed %v after its answer, before the idle timeout %v", i, d, idle)
		}
		longest = max(longest, d)
	}
	t.Logf("%d idle keep-alive connections closed, the last %v after its answer (idle timeout %v)", n, longest, idle)

	// Request headers never finished: closed after ConnectTimeout.
	slow := httpDial(t, srv)
	start := time.Now()
	io.WriteString(slow.nc, "GET /healthz HTTP/1.1\r\nHost: x\r\n") //nolint:errcheck
	waitFor(t, "the slow HTTP client counted", func() bool { return httpConnsNow(srv) == 1 })
	slow.br.ReadString('\n') //nolint:errcheck // a 408 may come first
	slow.awaitClose()
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("slow headers: closed after %v, before ConnectTimeout", d)
	}
	waitFor(t, "no HTTP connection counted", func() bool { return httpConnsNow(srv) == 0 })
}

// TestHTTPConnectionsCountAgainstLimit: HTTP connections count against
// Options.MaxConnections, with httpExtraConns beyond it so /healthz still
// answers when STOMP clients fill it; past that an HTTP connection gets a
// 503 and is closed. A STOMP client is refused while HTTP connections take
// the slots it would have.
func TestHTTPConnectionsCountAgainstLimit(t *testing.T) {
	const limit = 3
	srv := startServer(t, func(o *Options) { o.MaxConnections = limit })
	stomps := make([]*client, limit)
	for i := range stomps {
		stomps[i] = connected(t, srv, "tcp")
	}
	var https []*httpConn
	for range httpExtraConns {
		h := httpDial(t, srv)
		if code, _ := h.get("/healthz"); code != http.StatusOK {
			t.Fatalf("HTTP connection %d (within the extra %d): status %d", len(https)+1, httpExtraConns, code)
		}
		https = append(https, h)
	}
	over := httpDial(t, srv)
	code, body := over.get("/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "too many connections") {
		t.Fatalf("HTTP connection past the limit: %d %q, want 503 too many connections", code, body)
	}
	over.awaitClose()

	// A STOMP client leaves; the HTTP connections still hold the slots.
	stomps[0].close()
	waitFor(t, "the STOMP client gone", func() bool { return srv.snapshot(0).TCP == limit-1 })
	refused := dial(t, srv, "tcp")
	refused.sendFrame(frame.CONNECT, "", "accept-version", "1.2", "host", "h")
	refused.expectError("too many connections")

	for _, h := range https {
		h.nc.Close()
	}
	waitFor(t, "HTTP connections uncounted", func() bool { return httpConnsNow(srv) == 0 })
	c := connected(t, srv, "tcp")
	c.sync()
}

// TestWebSocketCountedOnce: an upgraded WebSocket counts as one STOMP
// connection and no longer as HTTP; the limit refuses a WebSocket client
// with an ERROR then a close.
func TestWebSocketCountedOnce(t *testing.T) {
	const limit = 2
	srv := startServer(t, func(o *Options) { o.MaxConnections = limit })
	a := connected(t, srv, "ws")
	b := connected(t, srv, "ws")
	if cs := srv.snapshot(0); cs.WS != limit || cs.HTTP != 0 {
		t.Errorf("two WebSockets counted as ws=%d http=%d, want ws=2 http=0", cs.WS, cs.HTTP)
	}
	c := dial(t, srv, "ws")
	// The broker may refuse before CONNECT arrives: the write may fail.
	c.trySend(string(c.encode(frame.CONNECT, "", "accept-version", "1.2", "host", "h")))
	c.expectError("too many connections")
	c.expectClosed()
	m := metricsScrape(t, srv)
	if m[`stompica_connections{transport="ws"}`] != limit || m["stompica_http_connections"] != 1 {
		t.Errorf("stompica_connections{ws} = %v, stompica_http_connections = %v; want 2 and 1 (the scrape)",
			m[`stompica_connections{transport="ws"}`], m["stompica_http_connections"])
	}
	a.close()
	waitFor(t, "one WebSocket left", func() bool { cs := srv.snapshot(0); return cs.WS == 1 && cs.HTTP == 0 })
	d := connected(t, srv, "ws")
	d.sync()
	b.sync()
}

// TestConnLimit: the effective connection limit is the configured one
// unless the open-file limit minus its headroom is lower.
func TestConnLimit(t *testing.T) {
	for _, tc := range []struct {
		configured int
		nofile     uint64
		want       int
	}{
		{30000, 20000, 19000}, // 5% headroom
		{1000, 256, 192},      // at least 64
		{100, 256, 100},       // fits
		{16384, 0, 16384},     // unknown
		{16384, 1 << 62, 16384},
		{100, 50, 25}, // tiny limit: half of it
		{10, 50, 10},
	} {
		got, why := connLimit(tc.configured, tc.nofile)
		if got != tc.want || why == "" {
			t.Errorf("connLimit(%d, %d) = %d %q, want %d", tc.configured, tc.nofile, got, why, tc.want)
		}
	}
	srv := authNew(t, Options{MaxConnections: 1 << 30})
	if want, _ := connLimit(1<<30, openFileLimit()); srv.MaxConnections() != want {
		t.Errorf("MaxConnections() = %d, want %d", srv.MaxConnections(), want)
	}
	if n := openFileLimit(); n > 0 && srv.MaxConnections() >= int(n) {
		t.Errorf("MaxConnections() = %d with an open-file limit of %d", srv.MaxConnections(), n)
	}
}
