package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/stompica/stompica/frame"
)

// The tests of /metrics (and, in console_test.go, of the console and
// /healthz) drive the broker over raw TCP and WebSocket with the tiny
// clients below, then read the figures over plain net/http. Every top-level
// name here starts with "metrics" (or "console") so as not to clash with
// the package's other test helpers.

const metricsWait = 5 * time.Second

// metricsStartServer starts a broker on a random port of 127.0.0.1.
func metricsStartServer(t *testing.T, configure func(*Options)) *Server {
	t.Helper()
	opts := Options{Host: "127.0.0.1", Port: -1, Logger: slog.New(slog.DiscardHandler)}
	if configure != nil {
		configure(&opts)
	}
	srv, err := New(&opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return srv
}

// metricsFrame is a frame read by a test client.
type metricsFrame struct {
	cmd  string
	hdr  map[string]string
	body string
}

func (f metricsFrame) String() string {
	return fmt.Sprintf("%s %v %q", f.cmd, f.hdr, f.body)
}

// metricsClient is a minimal STOMP 1.2 client over raw TCP or WebSocket.
type metricsClient struct {
	t      testing.TB
	nc     net.Conn
	br     *bufio.Reader // TCP: the stream; WebSocket: bytes read past the handshake
	ws     bool
	recv   int
	queued []metricsFrame // frames read while waiting for something else
}

func metricsDial(t testing.TB, srv *Server, overWS bool) *metricsClient {
	t.Helper()
	return metricsDialPath(t, srv, overWS, "/ws")
}

// metricsDialPath dials over TCP, or over WebSocket to path.
func metricsDialPath(t testing.TB, srv *Server, overWS bool, path string) *metricsClient {
	t.Helper()
	addr := srv.Addr().String()
	c := &metricsClient{t: t, ws: overWS}
	if overWS {
		ctx, cancel := context.WithTimeout(context.Background(), metricsWait)
		defer cancel()
		nc, br, hs, err := ws.Dialer{Protocols: []string{"v12.stomp"}}.Dial(ctx, "ws://"+addr+path)
		if err != nil {
			t.Fatalf("WebSocket dial: %v", err)
		}
		if hs.Protocol != "v12.stomp" {
			t.Fatalf("WebSocket subprotocol %q, want v12.stomp", hs.Protocol)
		}
		c.nc, c.br = nc, br
		if c.br == nil {
			c.br = bufio.NewReader(nc)
		} else {
			c.br = bufio.NewReader(io.MultiReader(br, nc))
		}
	} else {
		nc, err := net.DialTimeout("tcp", addr, metricsWait)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		c.nc, c.br = nc, bufio.NewReader(nc)
	}
	t.Cleanup(func() { c.nc.Close() })
	return c
}

// metricsConnected dials and completes CONNECT (no heart-beats).
func metricsConnected(t testing.TB, srv *Server, overWS bool) *metricsClient {
	t.Helper()
	c := metricsDial(t, srv, overWS)
	c.send("CONNECT", "", "accept-version", "1.2", "host", "localhost", "heart-beat", "0,0")
	if f := c.read(); f.cmd != "CONNECTED" {
		t.Fatalf("got %v, want CONNECTED", f)
	}
	return c
}

func (c *metricsClient) send(cmd, body string, kv ...string) {
	c.t.Helper()
	var b bytes.Buffer
	b.WriteString(cmd + "\n")
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteString(kv[i] + ":" + kv[i+1] + "\n")
	}
	if cmd == "SEND" {
		b.WriteString("content-length:" + strconv.Itoa(len(body)) + "\n")
	}
	b.WriteString("\n" + body + "\x00")
	c.nc.SetWriteDeadline(time.Now().Add(metricsWait))
	var err error
	if c.ws {
		err = wsutil.WriteClientText(c.nc, b.Bytes())
	} else {
		_, err = c.nc.Write(b.Bytes())
	}
	if err != nil {
		c.t.Fatalf("write %s: %v", cmd, err)
	}
}

// read returns the next frame (heart-beats skipped), failing the test
// after metricsWait.
func (c *metricsClient) read() metricsFrame {
	c.t.Helper()
	if len(c.queued) > 0 {
		f := c.queued[0]
		c.queued = c.queued[1:]
		return f
	}
	c.nc.SetReadDeadline(time.Now().Add(metricsWait))
	var raw []byte
	for len(bytes.Trim(raw, "\r\n")) == 0 {
		var err error
		if c.ws {
			raw, _, err = wsutil.ReadServerData(struct {
				io.Reader
				io.Writer
			}{c.br, c.nc})
		} else {
			raw, err = c.br.ReadBytes(0)
		}
		if err != nil {
			c.t.Fatalf("read frame: %v", err)
		}
	}
	raw = bytes.TrimLeft(raw, "\r\n")
	raw = bytes.TrimSuffix(raw, []byte{0})
	head, body, _ := bytes.Cut(raw, []byte("\n\n"))
	lines := strings.Split(string(head), "\n")
	f := metricsFrame{cmd: lines[0], hdr: map[string]string{}, body: string(body)}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		if _, dup := f.hdr[k]; !dup {
			f.hdr[k] = v
		}
	}
	c.recv++
	return f
}

// request sends a frame with a receipt and returns the MESSAGE frames that
// arrive before the RECEIPT.
func (c *metricsClient) request(cmd, body string, kv ...string) []metricsFrame {
	c.t.Helper()
	id := "r" + strconv.Itoa(c.recv) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	c.send(cmd, body, append(kv, "receipt", id)...)
	var msgs []metricsFrame
	for {
		f := c.read()
		switch {
		case f.cmd == "RECEIPT" && f.hdr["receipt-id"] == id:
			return msgs
		case f.cmd == "MESSAGE":
			msgs = append(msgs, f)
		default:
			c.t.Fatalf("waiting for RECEIPT %s: got %v", id, f)
		}
	}
}

// messages reads n MESSAGE frames and returns their bodies.
func (c *metricsClient) messages(n int) []metricsFrame {
	c.t.Helper()
	out := make([]metricsFrame, 0, n)
	for len(out) < n {
		f := c.read()
		if f.cmd != "MESSAGE" {
			c.t.Fatalf("got %v, want MESSAGE %d of %d", f, len(out)+1, n)
		}
		out = append(out, f)
	}
	return out
}

// metricsHTTPGet fetches path from the broker's port.
func metricsHTTPGet(t testing.TB, srv *Server, path string, setup ...func(*http.Request)) (*http.Response, string) {
	t.Helper()
	return apiDo(t, srv, "GET", path, setup...)
}

// metricsScrape fetches /metrics and returns every sample by its series
// (`name{label="value",...}` exactly as exposed).
func metricsScrape(t testing.TB, srv *Server) map[string]float64 {
	t.Helper()
	resp, body := metricsHTTPGet(t, srv, "/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics: Content-Type %q", ct)
	}
	out := map[string]float64{}
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// metricsExpect polls /metrics until every series in want has its value
// (counters reach their values a moment after the frames that bump them are
// answered), and returns the last scrape.
func metricsExpect(t testing.TB, srv *Server, want map[string]float64) map[string]float64 {
	t.Helper()
	var got map[string]float64
	var diffs []string
	if !poll(metricsWait, 10*time.Millisecond, func() bool {
		got, diffs = metricsScrape(t, srv), nil
		for k, w := range want {
			if g, ok := got[k]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s missing, want %v", k, w))
			} else if g != w {
				diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", k, g, w))
			}
		}
		return len(diffs) == 0
	}) {
		slices.Sort(diffs)
		var names []string
		for k := range got {
			if strings.HasPrefix(k, "stompica_") {
				names = append(names, fmt.Sprintf("  %s %v", k, got[k]))
			}
		}
		slices.Sort(names)
		t.Fatalf("metrics differ:\n  %s\nstompica series scraped:\n%s", strings.Join(diffs, "\n  "), strings.Join(names, "\n"))
	}
	return got
}

// metricsTraffic is the known traffic both the metrics and the console
// tests check: a topic with a TCP and a WebSocket subscriber gets 5
// messages, a queue without consumers gets 3, a topic without subscribers
// gets 1 (retained: the server runs with a TTL), and a queue consumer
// (client-individual) gets 2, ACKs the first, NACKs the second, gets it
// again and ACKs it. It leaves 3 TCP and 1 WebSocket connections open.
func metricsTraffic(t *testing.T, srv *Server) {
	t.Helper()
	sub := metricsConnected(t, srv, false)
	sub.request("SUBSCRIBE", "", "id", "1", "destination", "/topic/metrics-t")
	wsSub := metricsConnected(t, srv, true)
	wsSub.request("SUBSCRIBE", "", "id", "1", "destination", "/topic/metrics-t")

	pub := metricsConnected(t, srv, false)
	for i := range 5 {
		pub.send("SEND", "m"+strconv.Itoa(i), "destination", "/topic/metrics-t")
	}
	pub.request("SEND", "idle0", "destination", "/queue/metrics-idle")
	pub.send("SEND", "idle1", "destination", "/queue/metrics-idle")
	pub.request("SEND", "idle2", "destination", "/queue/metrics-idle")
	pub.request("SEND", "nobody", "destination", "/topic/metrics-nobody")
	for _, c := range []*metricsClient{sub, wsSub} {
		for i, m := range c.messages(5) {
			if want := "m" + strconv.Itoa(i); m.body != want {
				t.Fatalf("topic message %d: %v, want body %q", i, m, want)
			}
		}
	}

	cons := metricsConnected(t, srv, false)
	cons.request("SUBSCRIBE", "", "id", "q", "destination", "/queue/metrics-work", "ack", "client-individual")
	pub.send("SEND", "w1", "destination", "/queue/metrics-work")
	pub.request("SEND", "w2", "destination", "/queue/metrics-work")
	ms := cons.messages(2)
	if ms[0].body != "w1" || ms[1].body != "w2" {
		t.Fatalf("queue messages %v", ms)
	}
	cons.request("ACK", "", "id", ms[0].hdr["ack"])
	again := cons.request("NACK", "", "id", ms[1].hdr["ack"])
	if len(again) == 0 {
		again = cons.messages(1)
	}
	if again[0].body != "w2" {
		t.Fatalf("redelivery %v, want w2", again[0])
	}
	cons.request("ACK", "", "id", again[0].hdr["ack"])
}

func TestMetricsCounts(t *testing.T) {
	srv := metricsStartServer(t, func(o *Options) { o.TTL = time.Minute })

	// Before any traffic: the series exist, at zero.
	metricsExpect(t, srv, map[string]float64{
		`stompica_connections{transport="tcp"}`:       0,
		`stompica_connections{transport="ws"}`:        0,
		`stompica_connections_total{transport="tcp"}`: 0,
		`stompica_messages_in_total`:                  0,
		`stompica_deliveries_total`:                   0,
		`stompica_subscriptions`:                      0,
		`stompica_queued_messages`:                    0,
		`stompica_errors_total{kind="protocol"}`:      0,
		`stompica_info{version="` + Version + `"}`:    1,
	})

	metricsTraffic(t, srv)

	got := metricsExpect(t, srv, map[string]float64{
		`stompica_connections{transport="tcp"}`:                       3,
		`stompica_connections{transport="ws"}`:                        1,
		`stompica_connections_total{transport="tcp"}`:                 3,
		`stompica_connections_total{transport="ws"}`:                  1,
		`stompica_connected`:                                          4,
		`stompica_subscriptions`:                                      3,
		`stompica_messages_in_total`:                                  5 + 3 + 1 + 2,
		`stompica_deliveries_total`:                                   2*5 + 2 + 1,
		`stompica_acks_total`:                                         2,
		`stompica_nacks_total`:                                        1,
		`stompica_redeliveries_total`:                                 1,
		`stompica_dead_lettered_total`:                                0,
		`stompica_expired_total`:                                      0,
		`stompica_retained_messages`:                                  1,
		`stompica_stale_dropped_total`:                                0,
		`stompica_queued_messages`:                                    3,
		`stompica_slow_consumer_disconnects_total`:                    0,
		`stompica_refused_connections_total`:                          0,
		`stompica_queue_depth{queue="/queue/metrics-idle"}`:           3,
		`stompica_queue_consumers{queue="/queue/metrics-idle"}`:       0,
		`stompica_queue_enqueued_total{queue="/queue/metrics-idle"}`:  3,
		`stompica_queue_delivered_total{queue="/queue/metrics-idle"}`: 0,
		`stompica_queue_depth{queue="/queue/metrics-work"}`:           0,
		`stompica_queue_consumers{queue="/queue/metrics-work"}`:       1,
		`stompica_queue_enqueued_total{queue="/queue/metrics-work"}`:  2,
		`stompica_queue_delivered_total{queue="/queue/metrics-work"}`: 3,
		`stompica_errors_total{kind="protocol"}`:                      0,
		`stompica_errors_total{kind="other"}`:                         0,
		`stompica_pending_bytes{transport="tcp"}`:                     0,
		`stompica_pending_bytes{transport="ws"}`:                      0,
	})
	// Byte counters: at least the frames the test itself wrote and read.
	for _, k := range []string{"stompica_bytes_in_total", "stompica_bytes_out_total", "stompica_frames_in_total"} {
		if got[k] < 20 {
			t.Errorf("%s = %v, want a real count", k, got[k])
		}
	}
	if st := got["stompica_start_time_seconds"]; st < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("stompica_start_time_seconds = %v", st)
	}
	// The Go runtime and process collectors are there too.
	for _, k := range []string{"go_goroutines", "process_open_fds", "process_resident_memory_bytes"} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s missing from /metrics", k)
		}
	}
}

// TestMetricsErrorsAndRefused checks the error and refusal counters: one
// connection refused over Options.MaxConnections, one ERROR for an unknown
// command.
func TestMetricsErrorsAndRefused(t *testing.T) {
	srv := metricsStartServer(t, func(o *Options) { o.MaxConnections = 1 })
	first := metricsConnected(t, srv, false)

	refused := metricsDial(t, srv, false)
	// Exactly the 4 bytes the listener sniffs: the refusing server reads no
	// more, so it closes with FIN (not RST) after its ERROR frame.
	if _, err := refused.nc.Write([]byte("CONN")); err != nil {
		t.Fatal(err)
	}
	if f := refused.read(); f.cmd != "ERROR" || !strings.Contains(f.hdr["message"], "too many connections") {
		t.Fatalf("over the connection limit: got %v, want ERROR too many connections", f)
	}

	first.send("BOGUS", "")
	if f := first.read(); f.cmd != "ERROR" {
		t.Fatalf("after an unknown command: got %v, want ERROR", f)
	}
	var got map[string]float64
	poll(metricsWait, 10*time.Millisecond, func() bool {
		got = metricsScrape(t, srv)
		return got[`stompica_errors_total{kind="protocol"}`]+got[`stompica_errors_total{kind="other"}`] >= 1
	})
	// The unknown command counts once, as "protocol".
	if n := got[`stompica_errors_total{kind="protocol"}`]; n != 1 {
		t.Errorf("protocol errors = %v, want 1", n)
	}
	var total float64
	for _, k := range errorKinds {
		total += got[`stompica_errors_total{kind="`+k+`"}`]
	}
	if total != 1 {
		t.Errorf("errors over all kinds = %v, want 1", total)
	}
	metricsExpect(t, srv, map[string]float64{
		`stompica_refused_connections_total`:          1,
		`stompica_connections_total{transport="tcp"}`: 1,
		`stompica_connections{transport="tcp"}`:       0,
		`stompica_connected`:                          0,
	})
}

// TestMetricsErrorKinds checks countError and that an error's kind comes
// from its type, never from its text: the same words in another
// constructor give another kind, and a wrapped error keeps its kind.
func TestMetricsErrorKinds(t *testing.T) {
	var st stats
	st.countError(kindProtocol)
	st.countError(kindLimit)
	st.countError(kindLimit)
	st.countError(errKind(200)) // out of range: "other"
	st.countError(kindOf(errors.New("something else")))
	n := st.errorCounts()
	want := map[string]uint64{"protocol": 1, "limit": 2, "other": 2}
	for i, k := range errorKinds {
		if n[i] != want[k] {
			t.Errorf("errors of kind %s = %d, want %d", k, n[i], want[k])
		}
	}
	if st.errorsTotal() != 5 {
		t.Errorf("errorsTotal = %d, want 5", st.errorsTotal())
	}
	if errorKinds != [...]string{"protocol", "limit", "auth", "heartbeat", "timeout", "websocket", "store", "other"} {
		t.Errorf("label values %q", errorKinds)
	}

	for _, tc := range []struct {
		err    error
		kind   string
		reason ClosedState
	}{
		{parseErr(frame.ErrFrameTooLarge), "limit", LimitExceeded},
		{parseErr(frame.ErrHeaderTooLong), "limit", LimitExceeded},
		{parseErr(frame.ErrTooManyHeaders), "limit", LimitExceeded},
		{parseErr(frame.ErrMalformedHeader), "protocol", ProtocolError},
		{errTooManyConns, "limit", TooManyConnections},
		{errOutOfFDs, "limit", TooManyConnections},
		{fmt.Errorf("accepting: %w", errTooManyFromAddr), "limit", TooManyConnections},
		{wsErr("bad opcode", nil), "websocket", WebSocketError},
		{limitErr("too many subscriptions on this connection (max 10)"), "limit", LimitExceeded},
		{protocolErr("too many subscriptions on this connection (max 10)"), "protocol", ProtocolError},
		{limitErr("access denied"), "limit", LimitExceeded},
		{accessErr("a refusal in other words"), "auth", AccessDenied},
		{loginErr("access refused", nil), "auth", AuthFailed},
		{protocolErr(`unknown command "FOO"`), "protocol", ProtocolError},
		{storeErr("could not store the message", errors.New("disk full")), "store", StoreError},
		{errHeartbeat, "heartbeat", HeartbeatTimeout},
		{errConnectTimeout, "timeout", ConnectTimeout},
		{timeoutErr(FrameTimeout, "timeout: frame not completed"), "timeout", FrameTimeout},
		{errors.New("too many headers"), "other", ServerError},
	} {
		if got := kindOf(tc.err).String(); got != tc.kind {
			t.Errorf("kindOf(%v) = %s, want %s", tc.err, got, tc.kind)
		}
		if got := asClientError(tc.err).reason; got != tc.reason {
			t.Errorf("close reason of %v = %v, want %v", tc.err, got, tc.reason)
		}
	}
	// The client sees the message; the cause stays reachable.
	disk := errors.New("disk full")
	se := fmt.Errorf("publish: %w", storeErr("could not store the message", disk))
	if asClientError(se).Error() != "could not store the message" || !errors.Is(se, disk) {
		t.Errorf("store error %v: message %q, wraps the cause: %v", se, asClientError(se).Error(), errors.Is(se, disk))
	}
	if pe := parseErr(frame.ErrBadEscape); pe.Error() != frame.ErrBadEscape.Error() || !errors.Is(pe, frame.ErrBadEscape) {
		t.Errorf("parse error %v does not keep the parser's text and error", pe)
	}
}

// TestClosedStateNames checks that every close reason has a name.
func TestClosedStateNames(t *testing.T) {
	seen := map[string]bool{}
	for s := Open; s < numClosedStates; s++ {
		name := s.String()
		if name == "" || seen[name] {
			t.Errorf("ClosedState %d has name %q (empty or repeated)", s, name)
		}
		seen[name] = true
	}
	if got := ClosedState(numClosedStates).String(); !strings.HasPrefix(got, "ClosedState(") {
		t.Errorf("out-of-range ClosedState = %q", got)
	}
}

// TestMetricsRegistryPerServer checks that two servers in one process each
// serve their own figures (no global registry).
func TestMetricsRegistryPerServer(t *testing.T) {
	a := metricsStartServer(t, nil)
	b := metricsStartServer(t, nil)
	metricsConnected(t, a, false)
	metricsConnected(t, a, false)
	metricsExpect(t, a, map[string]float64{`stompica_connected`: 2})
	metricsExpect(t, b, map[string]float64{`stompica_connected`: 0})
}
