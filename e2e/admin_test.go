package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompica/stompica/internal/testutil"
)

// The operator's side against the real binary: the management API (/api/)
// and `stompica ctl`, with a users file holding an admin (ops) and a user
// who may only read and write (alice).

// adminBroker starts the broker with users ops and alice and an ACL that
// makes ops an admin; extra flags follow.
func adminBroker(t *testing.T, extra ...string) *broker {
	t.Helper()
	dir := t.TempDir()
	users, acl := filepath.Join(dir, "users"), filepath.Join(dir, "acl")
	content := usersLine(t, "ops", "ops-pw") + "\n" + usersLine(t, "alice", "alice-pw") + "\n"
	if err := os.WriteFile(users, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(acl, []byte("ops admin #\nalice read,write #\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return startBrokerProc(t, append([]string{"--users", users, "--acl", acl}, extra...)...)
}

// apiCall makes one HTTP request as login (none when login is "") and
// returns the status, the body and the headers.
func apiCall(t *testing.T, addr, method, path, login, password string) (int, string, http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if login != "" {
		req.SetBasicAuth(login, password)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, string(body), resp.Header
}

// asOps makes a request as the admin that must answer want, and decodes
// the JSON answer into v (unless nil).
func asOps(t *testing.T, addr, method, path string, want int, v any) {
	t.Helper()
	code, body, h := apiCall(t, addr, method, path, "ops", "ops-pw")
	if code != want || h.Get("Content-Type") != "application/json" {
		t.Fatalf("%s %s as ops: %d %q, want %d application/json: %s", method, path, code, h.Get("Content-Type"), want, body)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, body)
		}
	}
}

type apiQueue struct {
	Name        string `json:"name"`
	Depth       int    `json:"depth"`
	Consumers   int    `json:"consumers"`
	Unacked     int    `json:"unacked"`
	Enqueued    int    `json:"enqueued"`
	Delivered   int    `json:"delivered"`
	Redelivered int    `json:"redelivered"`
}

type apiConn struct {
	ID            uint64 `json:"id"`
	Peer          string `json:"peer"`
	Login         string `json:"login"`
	Transport     string `json:"transport"`
	Version       string `json:"version"`
	Subscriptions int    `json:"subscriptions"`
	Unacked       int    `json:"unacked"`
}

// aliceWithStuckQueue connects alice twice with go-stomp: a consumer that
// takes n messages of queue with ack:client and acknowledges none, and a
// publisher. It returns the consumer's connection and subscription.
func aliceWithStuckQueue(t *testing.T, addr, queue string, n int) (*stomp.Conn, *stomp.Subscription, *stomp.Conn) {
	t.Helper()
	cons := dial(t, addr, stomp.ConnOpt.Login("alice", "alice-pw"))
	sub := subscribe(t, cons, queue, stomp.AckClient, "stuck")
	pub := dial(t, addr, stomp.ConnOpt.Login("alice", "alice-pw"))
	for i := range n {
		send(t, pub, queue, "m"+strconv.Itoa(i), stomp.SendOpt.Receipt)
	}
	for i := range n {
		if m := recv(t, sub); string(m.Body) != "m"+strconv.Itoa(i) {
			t.Fatalf("message %d: %q", i, m.Body)
		}
	}
	return cons, sub, pub
}

// expectAdminClose waits for the ERROR of an administrator's close on sub.
func expectAdminClose(t *testing.T, sub *stomp.Subscription) {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-sub.C:
			if !ok {
				t.Fatal("subscription closed without the ERROR")
			}
			if m.Err == nil {
				continue
			}
			if f := errorFrame(m.Err); f == nil || f.Header.Get("message") != "connection closed by an administrator" {
				t.Fatalf("the closed client got %v (frame %v), want the ERROR of an administrator's close", m.Err, f)
			}
			return
		case <-timer.C:
			t.Fatalf("no ERROR within %v of the close", waitTimeout)
		}
	}
}

// TestManagementAPI: every endpoint of the real binary answers 401 (with
// a challenge) to a stranger, 403 to alice, and works for ops: a queue's
// unacked count, the connections, purge, delete, close (the go-stomp
// client gets the ERROR, its messages go back), the recent errors.
// /healthz stays open; /metrics is behind the login.
func TestManagementAPI(t *testing.T) {
	b := adminBroker(t)
	addr := b.addr
	work, idle := dest(t, "queue"), dest(t, "queue")
	_, sub, pub := aliceWithStuckQueue(t, addr, work, 4)
	send(t, pub, idle, "x", stomp.SendOpt.Receipt)
	send(t, pub, idle, "y", stomp.SendOpt.Receipt)

	esc := url.PathEscape
	endpoints := []struct{ method, path string }{
		{"GET", "/api/"}, {"GET", "/api/overview"}, {"GET", "/api/connections"}, {"GET", "/api/connections/1"},
		{"DELETE", "/api/connections/99999"}, {"POST", "/api/connections/99999/close"},
		{"GET", "/api/queues"}, {"GET", "/api/queues/" + esc(work)}, {"POST", "/api/queues/" + esc(idle) + "/purge"},
		{"DELETE", "/api/queues/" + esc(idle)}, {"GET", "/api/topics"}, {"GET", "/api/errors"},
		{"GET", "/console"}, {"GET", "/console/api"}, {"GET", "/metrics"},
	}
	for _, ep := range endpoints {
		code, body, h := apiCall(t, addr, ep.method, ep.path, "", "")
		if code != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s %s without credentials: %d (WWW-Authenticate %q), want 401 with a challenge: %s",
				ep.method, ep.path, code, h.Get("WWW-Authenticate"), body)
		}
		if code, body, _ := apiCall(t, addr, ep.method, ep.path, "ops", "wrong"); code != 401 {
			t.Errorf("%s %s with a wrong password: %d, want 401: %s", ep.method, ep.path, code, body)
		}
		if code, body, _ := apiCall(t, addr, ep.method, ep.path, "alice", "alice-pw"); code != 403 {
			t.Errorf("%s %s as alice (no admin): %d, want 403: %s", ep.method, ep.path, code, body)
		}
	}
	if code, body, _ := apiCall(t, addr, "GET", "/healthz", "", ""); code != 200 || body != "ok\n" {
		t.Errorf("/healthz without credentials: %d %q", code, body)
	}
	if code, body, _ := apiCall(t, addr, "GET", "/metrics", "ops", "ops-pw"); code != 200 ||
		!strings.Contains(body, `stompica_queue_unacked{queue="`+work+`"} 4`) {
		t.Errorf("/metrics as ops: %d, no unacked series for %s", code, work)
	}

	var index struct{ Endpoints []string }
	asOps(t, addr, "GET", "/api/", 200, &index)
	if len(index.Endpoints) != 14 {
		t.Errorf("GET /api/: %v", index.Endpoints)
	}
	var q apiQueue
	asOps(t, addr, "GET", "/api/queues/"+esc(work), 200, &q)
	if q != (apiQueue{Name: work, Depth: 0, Consumers: 1, Unacked: 4, Enqueued: 4, Delivered: 4}) {
		t.Errorf("the stuck queue: %+v", q)
	}
	var queues struct {
		Count  int        `json:"count"`
		Queues []apiQueue `json:"queues"`
	}
	asOps(t, addr, "GET", "/api/queues", 200, &queues)
	if queues.Count != 2 || len(queues.Queues) != 2 {
		t.Errorf("queues: %+v", queues)
	}
	var conns struct {
		Count       int       `json:"count"`
		Connections []apiConn `json:"connections"`
	}
	asOps(t, addr, "GET", "/api/connections", 200, &conns)
	var stuck apiConn
	for _, c := range conns.Connections {
		if c.Unacked == 4 {
			stuck = c
		}
	}
	if conns.Count != 2 || stuck.Login != "alice" || stuck.Transport != "tcp" || stuck.Version != "1.2" || stuck.Subscriptions != 1 {
		t.Fatalf("connections: %+v", conns)
	}
	var topics struct{ Count int }
	asOps(t, addr, "GET", "/api/topics", 200, &topics)

	var purged struct{ Purged int }
	asOps(t, addr, "POST", "/api/queues/"+esc(idle)+"/purge", 200, &purged)
	asOps(t, addr, "GET", "/api/queues/"+esc(idle), 200, &q)
	if purged.Purged != 2 || q.Depth != 0 || q.Enqueued != 2 {
		t.Errorf("purge: %+v, then %+v", purged, q)
	}
	asOps(t, addr, "DELETE", "/api/queues/"+esc(work), 409, nil) // it has a consumer
	var deleted struct{ Deleted bool }
	asOps(t, addr, "DELETE", "/api/queues/"+esc(idle), 200, &deleted)
	asOps(t, addr, "GET", "/api/queues/"+esc(idle), 404, nil)
	if !deleted.Deleted {
		t.Errorf("delete: %+v", deleted)
	}

	asOps(t, addr, "DELETE", "/api/connections/"+strconv.FormatUint(stuck.ID, 10), 200, nil)
	expectAdminClose(t, sub)
	if !testutil.Poll(waitTimeout, 10*time.Millisecond, func() bool {
		asOps(t, addr, "GET", "/api/queues/"+esc(work), 200, &q)
		return q.Depth == 4
	}) {
		t.Fatalf("the closed consumer's messages did not go back: %+v", q)
	}
	if q.Unacked != 0 || q.Consumers != 0 || q.Redelivered != 4 {
		t.Errorf("after the close: %+v", q)
	}
	var errs struct {
		Errors []struct {
			Conn    uint64 `json:"conn"`
			Login   string `json:"login"`
			Peer    string `json:"peer"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	asOps(t, addr, "GET", "/api/errors", 200, &errs)
	if len(errs.Errors) == 0 || errs.Errors[0].Conn != stuck.ID || errs.Errors[0].Login != "alice" ||
		errs.Errors[0].Peer != stuck.Peer || errs.Errors[0].Message != "connection closed by an administrator" {
		t.Errorf("recent errors: %+v", errs)
	}
	waitLog(t, b, `msg="closing a connection for an administrator"`, 1)
	waitLog(t, b, `msg="queue purged by an administrator"`, 1)
	waitLog(t, b, `msg="queue deleted by an administrator"`, 1)
}

// TestMetricsPublic: --metrics-public opens /metrics alone.
func TestMetricsPublic(t *testing.T) {
	b := adminBroker(t, "--metrics-public")
	if code, body, _ := apiCall(t, b.addr, "GET", "/metrics", "", ""); code != 200 || !strings.Contains(body, "stompica_connections") {
		t.Errorf("/metrics without credentials and --metrics-public: %d", code)
	}
	for _, path := range []string{"/console", "/api/queues"} {
		if code, _, _ := apiCall(t, b.addr, "GET", path, "", ""); code != 401 {
			t.Errorf("%s without credentials: %d, want 401", path, code)
		}
	}
}

// ctlRun runs `stompica ctl ARGS` with env added to the environment and
// returns the exit code and the output.
func ctlRun(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, brokerBin, append([]string{"ctl"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("stompica ctl %s: %v", strings.Join(args, " "), err)
	}
	return code, out.String(), errOut.String()
}

// TestCtl: `stompica ctl` lists, closes, purges and deletes on the real
// binary; a user without admin gets 403, no credentials 401.
func TestCtl(t *testing.T) {
	b := adminBroker(t)
	work, idle := dest(t, "queue"), dest(t, "queue")
	_, sub, pub := aliceWithStuckQueue(t, b.addr, work, 3)
	send(t, pub, idle, "x", stomp.SendOpt.Receipt)
	ops := []string{"STOMPICA_URL=http://" + b.addr, "STOMPICA_USER=ops", "STOMPICA_PASSWORD=ops-pw"}
	run := func(args ...string) string {
		t.Helper()
		code, out, errOut := ctlRun(t, ops, args...)
		if code != 0 {
			t.Fatalf("stompica ctl %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	fields := func(out, first string) string {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == first {
				return strings.Join(f, " ")
			}
		}
		t.Fatalf("no row %q in:\n%s", first, out)
		return ""
	}

	if got := fields(run("queues"), work); got != work+" 0 1 3 3 3 0 no" {
		t.Errorf("ctl queues: %q (want depth 0, consumers 1, unacked 3, enqueued 3, delivered 3, redelivered 0, not durable)", got)
	}
	out := run("connections")
	id := ""
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 8 && f[2] == "alice" && f[6] == "3" {
			id = f[0]
		}
	}
	if id == "" {
		t.Fatalf("ctl connections: no alice with 3 unacked:\n%s", out)
	}
	if out := run("purge", idle); out != "purged 1 messages from "+idle+"\n" {
		t.Errorf("ctl purge: %q", out)
	}
	if out := run("delete", idle); out != "deleted "+idle+" (0 waiting messages dropped)\n" {
		t.Errorf("ctl delete: %q", out)
	}
	if out := run("close", id); !strings.HasPrefix(out, "closed connection "+id+" (alice at 127.0.0.1:") {
		t.Errorf("ctl close: %q", out)
	}
	expectAdminClose(t, sub)
	if out := run("errors"); !strings.Contains(out, "connection closed by an administrator") {
		t.Errorf("ctl errors:\n%s", out)
	}
	var v struct{ Count int }
	if err := json.Unmarshal([]byte(run("--json", "queues")), &v); err != nil || v.Count != 1 {
		t.Errorf("ctl --json queues: %v %+v", err, v)
	}

	alice := []string{"STOMPICA_URL=http://" + b.addr, "STOMPICA_USER=alice", "STOMPICA_PASSWORD=alice-pw"}
	if code, _, errOut := ctlRun(t, alice, "purge", work); code != 1 || !strings.Contains(errOut, "403 Forbidden") {
		t.Errorf("ctl purge as alice: exit %d: %s", code, errOut)
	}
	if code, _, errOut := ctlRun(t, []string{"STOMPICA_URL=http://" + b.addr}, "queues"); code != 1 ||
		!strings.Contains(errOut, "401 Unauthorized") {
		t.Errorf("ctl queues without credentials: exit %d: %s", code, errOut)
	}
	if code, out, _ := ctlRun(t, []string{"STOMPICA_URL=http://" + b.addr}, "queues", "--user", "ops", "--password", "ops-pw"); code != 0 ||
		!strings.Contains(out, work) {
		t.Errorf("ctl queues --user ops: exit %d:\n%s", code, out)
	}
}
