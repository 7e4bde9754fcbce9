package server

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// consoleGetJSON fetches /console/api and decodes it.
func consoleGetJSON(t *testing.T, srv *Server, setup ...func(*http.Request)) map[string]any {
	t.Helper()
	resp, body := metricsHTTPGet(t, srv, "/console/api", setup...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /console/api: %s\n%s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET /console/api: Content-Type %q", ct)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("GET /console/api: %v\n%s", err, body)
	}
	return v
}

// consoleField returns the number at a dotted path of the API's JSON.
func consoleField(t *testing.T, v map[string]any, path string) float64 {
	t.Helper()
	var cur any = v
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("/console/api: %s: not an object at %s", path, k)
		}
		if cur, ok = m[k]; !ok {
			t.Fatalf("/console/api: no %s", path)
		}
	}
	n, ok := cur.(float64)
	if !ok {
		t.Fatalf("/console/api: %s is %T %v, not a number", path, cur, cur)
	}
	return n
}

// consoleRow finds the entry named name in the API's list key.
func consoleRow(t *testing.T, v map[string]any, key, name string) map[string]any {
	t.Helper()
	list, _ := v[key].([]any)
	for _, e := range list {
		if m, _ := e.(map[string]any); m["name"] == name {
			return m
		}
	}
	t.Fatalf("/console/api: no %s entry %q in %v", key, name, v[key])
	return nil
}

func TestConsoleHealthz(t *testing.T) {
	srv := metricsStartServer(t, nil)
	resp, body := metricsHTTPGet(t, srv, "/healthz")
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Fatalf("GET /healthz: %s %q", resp.Status, body)
	}
}

func TestConsolePage(t *testing.T) {
	srv := metricsStartServer(t, nil)
	resp, body := metricsHTTPGet(t, srv, "/console")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /console: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, want := range []string{"<title>stompica console</title>", "/console/api", "v12.stomp", `id="received"`} {
		if !strings.Contains(body, want) {
			t.Errorf("console page lacks %q", want)
		}
	}
	// Self-contained: no external scripts, styles, fonts or images.
	for _, bad := range []string{`src="http`, `href="http`, "<link rel=\"stylesheet", "@import", "url(http"} {
		if strings.Contains(body, bad) {
			t.Errorf("console page loads something external (%q)", bad)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	resp, _ = metricsHTTPGet(t, srv, "/console", func(r *http.Request) { r.Header.Set("If-None-Match", etag) })
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("GET /console with If-None-Match: %s, want 304", resp.Status)
	}
	resp, _ = metricsHTTPGet(t, srv, "/console/")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/console" {
		t.Errorf("GET /console/: %s Location %q", resp.Status, resp.Header.Get("Location"))
	}
	// Other paths still get the plain-text page.
	resp, body = metricsHTTPGet(t, srv, "/some/where")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") ||
		!strings.Contains(body, "/console") {
		t.Errorf("GET /some/where: %s %q\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
}

func TestConsoleAPI(t *testing.T) {
	srv := metricsStartServer(t, func(o *Options) { o.TTL = time.Minute })
	metricsTraffic(t, srv)
	// Deliveries are counted when the publisher's batch ends: wait for them.
	metricsExpect(t, srv, map[string]float64{`stompica_deliveries_total`: 13})

	v := consoleGetJSON(t, srv)
	if v["version"] != Version {
		t.Errorf("version %v, want %s", v["version"], Version)
	}
	for path, want := range map[string]float64{
		"connections.tcp":         3,
		"connections.ws":          1,
		"connections.total":       4,
		"connected":               4,
		"subscriptions":           3,
		"queued":                  3,
		"retained":                1,
		"queue_count":             2,
		"topic_count":             1,
		"counters.connections":    4,
		"counters.ws_connections": 1,
		"counters.messages_in":    11,
		"counters.deliveries":     13,
		"counters.acks":           2,
		"counters.nacks":          1,
		"counters.redeliveries":   1,
		"counters.errors":         0,
		"counters.refused":        0,
		"errors.protocol":         0,
		"limits.ttl_ms":           60000,
	} {
		if got := consoleField(t, v, path); got != want {
			t.Errorf("/console/api %s = %v, want %v", path, got, want)
		}
	}
	if up := consoleField(t, v, "uptime_seconds"); up <= 0 || up > 600 {
		t.Errorf("uptime_seconds = %v", up)
	}
	if consoleField(t, v, "counters.bytes_in") == 0 || consoleField(t, v, "counters.bytes_out") == 0 {
		t.Error("byte counters are zero")
	}
	idle := consoleRow(t, v, "queues", "/queue/metrics-idle")
	if idle["depth"] != 3.0 || idle["consumers"] != 0.0 || idle["enqueued"] != 3.0 || idle["delivered"] != 0.0 {
		t.Errorf("queue /queue/metrics-idle: %v", idle)
	}
	work := consoleRow(t, v, "queues", "/queue/metrics-work")
	if work["depth"] != 0.0 || work["consumers"] != 1.0 || work["enqueued"] != 2.0 || work["delivered"] != 3.0 {
		t.Errorf("queue /queue/metrics-work: %v", work)
	}
	if topic := consoleRow(t, v, "topics", "/topic/metrics-t"); topic["subscribers"] != 2.0 {
		t.Errorf("topic /topic/metrics-t: %v", topic)
	}
}

// TestConsoleWebSocketAnyPath checks that a WebSocket upgrade wins over the
// console's own paths.
func TestConsoleWebSocketAnyPath(t *testing.T) {
	srv := metricsStartServer(t, nil)
	for _, path := range []string{"/console", "/metrics", "/healthz", "/stomp"} {
		c := metricsDialPath(t, srv, true, path)
		c.send("CONNECT", "", "accept-version", "1.2", "host", "localhost", "heart-beat", "0,0")
		if f := c.read(); f.cmd != "CONNECTED" {
			t.Fatalf("WebSocket on %s: got %v, want CONNECTED", path, f)
		}
	}
}

// TestConsoleHTTPAuth: with Options.HTTPAuth, /metrics and the console need
// basic auth of a user of the users file; /healthz and WebSocket do not.
func TestConsoleHTTPAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("ops:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := metricsStartServer(t, func(o *Options) {
		o.HTTPAuth = true
		o.UsersFile = users
	})
	for _, path := range []string{"/metrics", "/console", "/console/api"} {
		resp, _ := metricsHTTPGet(t, srv, path)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %s, want 401", path, resp.Status)
		}
		if ch := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, `Basic realm="stompica"`) {
			t.Errorf("GET %s: WWW-Authenticate %q", path, ch)
		}
		resp, _ = metricsHTTPGet(t, srv, path, func(r *http.Request) { r.SetBasicAuth("ops", "s3cret") })
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s with credentials: %s, want 200", path, resp.Status)
		}
	}
	resp, _ := metricsHTTPGet(t, srv, "/console/api", func(r *http.Request) { r.SetBasicAuth("ops", "wrong") })
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /console/api with a wrong password: %s, want 401", resp.Status)
	}
	if resp, body := metricsHTTPGet(t, srv, "/healthz"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %s %q", resp.Status, body)
	}
	c := metricsDialPath(t, srv, true, "/console")
	c.send("CONNECT", "", "accept-version", "1.2", "login", "ops", "passcode", "s3cret", "heart-beat", "0,0")
	if f := c.read(); f.cmd != "CONNECTED" {
		t.Fatalf("WebSocket with STOMP login: got %v, want CONNECTED", f)
	}
}
