package e2e

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/stompica/stompica/internal/testutil"
)

// refuseBound is the generous bound on how long a refused client may wait
// for its ERROR (the broker answers in milliseconds; the bound only guards
// against hanging, as clients did in the listen backlog).
const refuseBound = 3 * time.Second

// rawConn is a raw STOMP 1.2 client connection.
type rawConn struct {
	nc net.Conn
	br *bufio.Reader
}

// rawFrame is a received frame: its command, headers and body.
type rawFrame struct {
	cmd  string
	hdr  map[string]string
	body string
}

func rawDial(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc := testutil.Dial(t, addr, waitTimeout)
	return &rawConn{nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) write(frame string) error {
	c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	_, err := io.WriteString(c.nc, frame)
	return err
}

// read returns the next frame (heart-beat EOLs skipped).
func (c *rawConn) read() (rawFrame, error) {
	c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	cmd, hdr, body, err := testutil.ReadFrame(c.br)
	if err != nil {
		return rawFrame{}, err
	}
	return rawFrame{cmd: cmd, hdr: hdr, body: body}, nil
}

// connect sends CONNECT (no heart-beats) and returns the answer.
func (c *rawConn) connect() (rawFrame, error) {
	// A refused client may be answered and closed before its CONNECT is
	// written: a failed write is not the answer.
	_ = c.write("CONNECT\naccept-version:1.2\nhost:h\nheart-beat:0,0\n\n\x00")
	return c.read()
}

// httpGet fetches path on a fresh connection.
func httpGet(addr, path string) (int, string, error) {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: waitTimeout}).Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metricValue returns the sample of series (e.g. `stompica_connected`) in a
// Prometheus text exposition.
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return v
		}
	}
	t.Fatalf("%s not in /metrics", series)
	return 0
}

var connLimitRE = regexp.MustCompile(`connection limit lowered.* max_connections=(\d+) configured=(\d+) open_file_limit=(\d+)`)

// TestFileDescriptorLimit runs the broker under `prlimit --nofile=256:256`
// with --max-connections 1000. The broker lowers its limit to fit (and logs
// it); clients past it get an ERROR at once, /healthz and /metrics still
// answer, existing clients keep working. Past the descriptors themselves
// (silent connections that hold one each while the broker waits for their
// first bytes), accept fails with EMFILE and the reserve descriptor still
// answers a new client with an ERROR at once.
func TestFileDescriptorLimit(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) not found: cannot run the broker under a small open-file limit")
	}
	const nofile, configured = 256, 1000
	b := startBrokerUnder(t, []string{prlimit, "--nofile=" + strconv.Itoa(nofile) + ":" + strconv.Itoa(nofile), "--"},
		"--max-connections", strconv.Itoa(configured), "--connect-timeout", "30s", "--heart-beat", "0,0")
	waitLog(t, b, "connection limit lowered", 1)
	m := connLimitRE.FindStringSubmatch(b.log.String())
	if m == nil {
		t.Fatalf("no `connection limit lowered ... max_connections=N configured=%d open_file_limit=%d` line in the log",
			configured, nofile)
	}
	limit, _ := strconv.Atoi(m[1])
	if m[2] != strconv.Itoa(configured) || m[3] != strconv.Itoa(nofile) || limit <= 0 || limit > nofile-64 {
		t.Fatalf("log says max_connections=%s configured=%s open_file_limit=%s; want configured=%d open_file_limit=%d and a limit at most %d",
			m[1], m[2], m[3], configured, nofile, nofile-64)
	}
	t.Logf("open-file limit %d, --max-connections %d: effective limit %d", nofile, configured, limit)

	// Fill the limit.
	var clients []*rawConn
	for len(clients) <= limit {
		c := rawDial(t, b.addr)
		start := time.Now()
		f, err := c.connect()
		if err != nil {
			t.Fatalf("client %d: %v", len(clients)+1, err)
		}
		if f.cmd == "CONNECTED" {
			clients = append(clients, c)
			continue
		}
		took := time.Since(start)
		if f.cmd != "ERROR" || !strings.Contains(f.hdr["message"], "too many connections") {
			t.Fatalf("client %d: got %s %v, want ERROR too many connections", len(clients)+1, f.cmd, f.hdr)
		}
		if len(clients) != limit {
			t.Fatalf("refused after %d clients, want %d (the effective limit)", len(clients), limit)
		}
		t.Logf("client %d refused with ERROR %q after %v", limit+1, f.hdr["message"], took)
		if took > refuseBound {
			t.Errorf("the refused client waited %v for its ERROR, want under %v", took, refuseBound)
		}
		if _, err := c.read(); err == nil {
			t.Error("the refused connection stayed open after its ERROR")
		}
		break
	}
	if len(clients) != limit {
		t.Fatalf("%d clients connected, none refused; the limit is %d", len(clients), limit)
	}

	// A WebSocket client over the limit: ERROR, then the close.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	wc, br, _, err := ws.Dialer{Protocols: []string{"v12.stomp"}}.Dial(ctx, "ws://"+b.addr+"/ws")
	cancel()
	if err != nil {
		t.Fatalf("WebSocket dial over the limit: %v", err)
	}
	wc.SetDeadline(time.Now().Add(waitTimeout))
	var rd io.Reader = wc
	if br != nil {
		rd = io.MultiReader(br, wc)
	}
	msg, err := wsutil.ReadServerText(struct {
		io.Reader
		io.Writer
	}{rd, wc})
	if err != nil || !strings.HasPrefix(string(msg), "ERROR\n") || !strings.Contains(string(msg), "too many connections") {
		t.Fatalf("WebSocket over the limit: %q %v, want an ERROR too many connections", msg, err)
	}
	t.Logf("WebSocket client refused with an ERROR after %v", time.Since(start))
	if _, err := wsutil.ReadServerText(struct {
		io.Reader
		io.Writer
	}{rd, wc}); err == nil {
		t.Error("the refused WebSocket stayed open after its ERROR")
	}
	wc.Close()

	// Monitoring still answers.
	if code, body, err := httpGet(b.addr, "/healthz"); err != nil || code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz at the connection limit: %d %q %v", code, body, err)
	}
	code, body, err := httpGet(b.addr, "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("/metrics at the connection limit: %d %v", code, err)
	}
	if v := metricValue(t, body, `stompica_connections{transport="tcp"}`); v != float64(limit) {
		t.Errorf(`stompica_connections{transport="tcp"} = %v, want %d`, v, limit)
	}
	if v := metricValue(t, body, "stompica_max_connections"); v != float64(limit) {
		t.Errorf("stompica_max_connections = %v, want %d", v, limit)
	}
	if v := metricValue(t, body, "stompica_refused_connections_total"); v < 2 {
		t.Errorf("stompica_refused_connections_total = %v, want at least 2", v)
	}

	// Existing clients still work.
	exchange := func(round string) {
		t.Helper()
		first, last := clients[0], clients[len(clients)-1]
		if err := first.write("SUBSCRIBE\nid:s\ndestination:/topic/fd\nreceipt:sub-" + round + "\n\n\x00"); err != nil {
			t.Fatal(err)
		}
		if f, err := first.read(); err != nil || f.cmd != "RECEIPT" {
			t.Fatalf("SUBSCRIBE (%s): %v %v", round, f, err)
		}
		if err := last.write("SEND\ndestination:/topic/fd\nreceipt:r\n\n" + round + "\x00"); err != nil {
			t.Fatal(err)
		}
		if f, err := last.read(); err != nil || f.cmd != "RECEIPT" {
			t.Fatalf("SEND (%s): %v %v", round, f, err)
		}
		if f, err := first.read(); err != nil || f.cmd != "MESSAGE" || f.body != round {
			t.Fatalf("MESSAGE (%s): %v %v", round, f, err)
		}
		if err := first.write("UNSUBSCRIBE\nid:s\nreceipt:unsub\n\n\x00"); err != nil {
			t.Fatal(err)
		}
		if f, err := first.read(); err != nil || f.cmd != "RECEIPT" {
			t.Fatalf("UNSUBSCRIBE (%s): %v %v", round, f, err)
		}
	}
	exchange("at the limit")

	// Now exhaust the descriptors themselves: silent connections hold one
	// each while the broker waits (--connect-timeout 30s) for their first
	// bytes, and are counted nowhere until then.
	var silent []net.Conn
	for range nofile - limit + 16 {
		nc, err := net.DialTimeout("tcp", b.addr, waitTimeout)
		if err != nil {
			t.Fatalf("silent connection %d: %v", len(silent)+1, err)
		}
		silent = append(silent, nc)
	}
	waitLog(t, b, "out of file descriptors", 1)
	c := rawDial(t, b.addr)
	start = time.Now()
	f, err := c.connect()
	took := time.Since(start)
	if err != nil || f.cmd != "ERROR" || !strings.Contains(f.hdr["message"], "too many connections") {
		t.Fatalf("a client with no descriptor left: %v %v, want ERROR too many connections", f, err)
	}
	t.Logf("with no descriptor left, a client was refused with ERROR %q after %v", f.hdr["message"], took)
	if took > refuseBound {
		t.Errorf("the client waited %v for its ERROR with no descriptor left, want under %v", took, refuseBound)
	}
	exchange("out of descriptors")

	for _, nc := range silent {
		nc.Close()
	}
	if !testutil.Poll(waitTimeout, 20*time.Millisecond, func() bool {
		code, _, err = httpGet(b.addr, "/healthz")
		return err == nil && code == http.StatusOK
	}) {
		t.Fatalf("/healthz after the silent connections closed: %d %v", code, err)
	}
	// One client leaves, another takes its place.
	clients[1].nc.Close()
	if !testutil.Poll(waitTimeout, 20*time.Millisecond, func() bool {
		c := rawDial(t, b.addr)
		if f, err = c.connect(); err == nil && f.cmd == "CONNECTED" {
			return true
		}
		c.nc.Close()
		return false
	}) {
		t.Fatalf("no client admitted after one left: %v %v", f, err)
	}
	exchange("after")
}
