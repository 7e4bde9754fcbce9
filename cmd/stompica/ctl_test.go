package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stompica/stompica/auth"
	"github.com/stompica/stompica/internal/testutil"
	"github.com/stompica/stompica/server"
	"github.com/stompica/stompica/store/jetstream"
)

// ctlWait bounds every wait of these tests.
const ctlWait = 10 * time.Second

// ctlServer starts a broker on a random loopback port with a users file
// (ops, an admin by the ACL, and alice, who may only read and write) and
// returns its address.
func ctlServer(t *testing.T, configure ...func(*server.Options)) string {
	t.Helper()
	dir := t.TempDir()
	var users []string
	for _, u := range [][2]string{{"ops", "ops-pw"}, {"alice", "alice-pw"}} {
		line, err := auth.UsersFileLine(u[0], []byte(u[1]), 4)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, line)
	}
	usersFile, aclFile := filepath.Join(dir, "users"), filepath.Join(dir, "acl")
	if err := os.WriteFile(usersFile, []byte(strings.Join(users, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(aclFile, []byte("ops admin #\nalice read,write #\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &server.Options{Host: "127.0.0.1", Port: -1, UsersFile: usersFile, ACLFile: aclFile,
		Logger: slog.New(slog.DiscardHandler)}
	for _, f := range configure {
		f(o)
	}
	srv, err := server.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ctlWait)
		defer cancel()
		srv.Shutdown(ctx) //nolint:errcheck
	})
	return srv.Addr().String()
}

// stompClient is a minimal STOMP 1.2 client over TCP for these tests.
type stompClient struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

type stompFrame struct {
	cmd  string
	hdr  map[string]string
	body string
}

func stompConnect(t *testing.T, addr, login, pass string) *stompClient {
	t.Helper()
	nc := testutil.Dial(t, addr, ctlWait)
	c := &stompClient{t: t, nc: nc, r: bufio.NewReader(nc)}
	c.send("CONNECT", "", "accept-version", "1.2", "host", "localhost", "login", login, "passcode", pass, "heart-beat", "0,0")
	if f := c.read(); f.cmd != "CONNECTED" {
		t.Fatalf("CONNECT as %s: %+v", login, f)
	}
	return c
}

func (c *stompClient) send(cmd, body string, kv ...string) {
	c.t.Helper()
	var b strings.Builder
	b.WriteString(cmd + "\n")
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteString(kv[i] + ":" + kv[i+1] + "\n")
	}
	b.WriteString("\n" + body + "\x00")
	if _, err := c.nc.Write([]byte(b.String())); err != nil {
		c.t.Fatalf("write %s: %v", cmd, err)
	}
}

// read returns the next frame (heart-beat newlines skipped).
func (c *stompClient) read() stompFrame {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(ctlWait))
	cmd, hdr, body, err := testutil.ReadFrame(c.r)
	if err != nil {
		c.t.Fatalf("reading a frame: %v (got %q)", err, body)
	}
	return stompFrame{cmd: cmd, hdr: hdr, body: body}
}

// request sends a frame with a receipt and waits for the RECEIPT.
func (c *stompClient) request(cmd, body string, kv ...string) {
	c.t.Helper()
	c.send(cmd, body, append(kv, "receipt", "r")...)
	if f := c.read(); f.cmd != "RECEIPT" {
		c.t.Fatalf("%s: got %+v, want RECEIPT", cmd, f)
	}
}

// ctl runs stompica ctl with args and the environment env and returns its
// exit code, standard output and standard error.
func ctl(env map[string]string, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := runCtl(args, func(k string) string { return env[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}

// row finds the output line whose first field is first and returns its
// fields.
func row(t *testing.T, out, first string) []string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == first {
			return f
		}
	}
	t.Fatalf("no line for %q in:\n%s", first, out)
	return nil
}

// TestCtlStreams: durables, streams and stream against a broker with a
// JetStream store; the queue of a durable subscription is marked durable.
func TestCtlStreams(t *testing.T) {
	st, err := jetstream.Open(jetstream.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	addr := ctlServer(t, func(o *server.Options) {
		o.Store = st
		o.Record = []string{"/topic/ctl-rec"}
	})
	env, run := ctlAsOps(t, addr)
	sub := stompConnect(t, addr, "alice", "alice-pw")
	sub.request("SUBSCRIBE", "", "id", "d1", "destination", "/topic/ctl-dur", "durable", "true", "auto-delete", "false")
	pub := stompConnect(t, addr, "alice", "alice-pw")
	pub.request("SEND", "s1", "destination", "/stream/ctl-s")
	pub.request("SEND", "s2", "destination", "/stream/ctl-s")
	pub.request("SEND", "r1", "destination", "/topic/ctl-rec")
	pub.request("SEND", "d1", "destination", "/topic/ctl-dur")
	pub.request("SEND", "d2", "destination", "/topic/ctl-dur")
	for range 2 {
		if f := sub.read(); f.cmd != "MESSAGE" {
			t.Fatalf("durable subscriber got %+v", f)
		}
	}

	if got := strings.Join(row(t, run("durables"), "rabbitmq/_d1"), " "); got != "rabbitmq/_d1 rabbitmq /topic/ctl-dur yes 0 0 yes" {
		t.Errorf("durables: row %q, want connected, 0 waiting, 0 unacked, stored", got)
	}
	if got := row(t, run("queues"), "/queue/$durable/rabbitmq/_d1"); got[len(got)-1] != "yes" {
		t.Errorf("queues: the durable subscription's queue %q is not marked durable", got)
	}
	out := run("streams")
	if f := row(t, out, "/stream/ctl-s"); f[1] != "2" || !strings.HasPrefix(f[2], "~") || f[3] != "1" || f[4] != "2" {
		t.Errorf("streams: /stream/ctl-s row %q, want 2 messages, a share of the bytes, offsets 1 to 2\n%s", f, out)
	}
	if f := row(t, out, "/topic/ctl-rec"); f[1] != "1" || f[3] != "3" || f[4] != "3" {
		t.Errorf("streams: /topic/ctl-rec row %q, want 1 message at offset 3\n%s", f, out)
	}
	out = run("stream", "/topic/ctl-rec")
	for _, re := range []string{`stream:\s+/topic/ctl-rec \(a topic --record keeps\)`, `messages:\s+1\n`, `first:\s+offset 3 at 20`,
		`subscribers:\s+0 live, 0 reading the log`, `limits:\s+max age 24h0m0s, max bytes 1073741824`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("stream /topic/ctl-rec: no %s in\n%s", re, out)
		}
	}
	if code, _, errOut := ctl(env, "stream", "/stream/none"); code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("stream /stream/none: exit %d: %s", code, errOut)
	}
}

func TestCtlUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Commands:"},
		{[]string{"--help"}, 0, "purge NAME"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"purge"}, 2, "want NAME"},
		{[]string{"queues", "extra"}, 2, "takes no argument"},
		{[]string{"--url", "ftp://x", "queues"}, 2, "--url"},
		{[]string{"--no-such-flag", "queues"}, 2, "no-such-flag"},
	} {
		code, _, errOut := ctl(nil, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("ctl %q: exit %d, want %d; stderr lacks %q:\n%s", tc.args, code, tc.code, tc.want, errOut)
		}
	}
	// Nothing listening: a clear error, exit 1.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if code, _, errOut := ctl(nil, "--url", "http://"+addr, "queues"); code != 1 || !strings.Contains(errOut, "cannot reach the broker") {
		t.Errorf("no broker: exit %d: %s", code, errOut)
	}
}

// ctlAsOps returns the environment that makes ctl reach the broker at addr
// as ops (an admin), and a runner that fails the test unless ctl exits 0
// and returns what it printed.
func ctlAsOps(t *testing.T, addr string) (map[string]string, func(args ...string) string) {
	env := map[string]string{"STOMPICA_URL": "http://" + addr, "STOMPICA_USER": "ops", "STOMPICA_PASSWORD": "ops-pw"}
	return env, func(args ...string) string {
		t.Helper()
		code, out, errOut := ctl(env, args...)
		if code != 0 {
			t.Fatalf("ctl %q: exit %d: %s", args, code, errOut)
		}
		return out
	}
}

// TestCtl: every command against a broker with authentication on: tables,
// --json, --limit, flags after the command, credentials from the
// environment, and 401/403.
func TestCtl(t *testing.T) {
	addr := ctlServer(t)
	env, run := ctlAsOps(t, addr)

	cons := stompConnect(t, addr, "alice", "alice-pw")
	cons.request("SUBSCRIBE", "", "id", "s1", "destination", "/queue/ctl-work", "ack", "client-individual")
	pub := stompConnect(t, addr, "alice", "alice-pw")
	for _, b := range []string{"a", "b", "c"} {
		pub.request("SEND", b, "destination", "/queue/ctl-work")
	}
	pub.request("SEND", "x", "destination", "/queue/ctl-idle")
	pub.request("SEND", "y", "destination", "/queue/ctl-idle")
	pub.request("SUBSCRIBE", "", "id", "t", "destination", "/topic/ctl-news")
	for range 3 {
		if f := cons.read(); f.cmd != "MESSAGE" {
			t.Fatalf("consumer got %+v", f)
		}
	}

	out := run("queues")
	if !strings.HasPrefix(out, "QUEUE ") {
		t.Errorf("queues: no header:\n%s", out)
	}
	if got := strings.Join(row(t, out, "/queue/ctl-work"), " "); got != "/queue/ctl-work 0 1 3 3 3 0 no" {
		t.Errorf("queues: /queue/ctl-work row %q, want depth 0, consumers 1, unacked 3, enqueued 3, delivered 3, redelivered 0, not durable\n%s", got, out)
	}
	if got := strings.Join(row(t, run("queue", "/queue/ctl-idle"), "/queue/ctl-idle"), " "); got != "/queue/ctl-idle 2 0 0 2 0 0 no" {
		t.Errorf("queue /queue/ctl-idle: %q", got)
	}
	if out := run("queues", "--limit", "1"); !strings.Contains(out, "(showing the 1 busiest of 2 queues)") ||
		!strings.Contains(out, "/queue/ctl-work") {
		t.Errorf("queues --limit 1:\n%s", out)
	}

	var conns struct {
		Count       int `json:"count"`
		Connections []struct {
			ID      uint64 `json:"id"`
			Login   string `json:"login"`
			Unacked int    `json:"unacked"`
		} `json:"connections"`
	}
	if err := json.Unmarshal([]byte(run("connections", "--json")), &conns); err != nil || conns.Count != 2 {
		t.Fatalf("connections --json: %v %+v", err, conns)
	}
	consID := ""
	for _, c := range conns.Connections {
		if c.Unacked == 3 && c.Login == "alice" {
			consID = strconv.FormatUint(c.ID, 10)
		}
	}
	if consID == "" {
		t.Fatalf("no connection with 3 unacked: %+v", conns)
	}
	out = run("connections")
	if f := row(t, out, consID); strings.Join(f[2:], " ") != "alice tcp 1.2 1 3 0" {
		t.Errorf("connections: row %q\n%s", f, out)
	}
	out = run("connection", consID)
	if f := row(t, out, "s1"); strings.Join(f, " ") != "s1 /queue/ctl-work client-individual 1000 3 0" {
		t.Errorf("connection %s: subscription row %q\n%s", consID, f, out)
	}
	if f := row(t, run("topics"), "/topic/ctl-news"); f[1] != "1" {
		t.Errorf("topics: %q", f)
	}
	if out := run("overview"); !regexp.MustCompile(`queues:\s+2: 2 messages waiting, 3 unacked`).MatchString(out) {
		t.Errorf("overview:\n%s", out)
	}

	if out := run("purge", "/queue/ctl-idle"); out != "purged 2 messages from /queue/ctl-idle\n" {
		t.Errorf("purge: %q", out)
	}
	if out := run("delete", "/queue/ctl-idle"); out != "deleted /queue/ctl-idle (0 waiting messages dropped)\n" {
		t.Errorf("delete: %q", out)
	}
	if code, _, errOut := ctl(env, "delete", "/queue/ctl-work"); code != 1 || !strings.Contains(errOut, "409 Conflict") ||
		!strings.Contains(errOut, "1 consumer") {
		t.Errorf("delete of a queue with a consumer: exit %d: %s", code, errOut)
	}
	if code, _, errOut := ctl(env, "queue", "/queue/ctl-idle"); code != 1 || !strings.Contains(errOut, "404 Not Found") {
		t.Errorf("queue after the delete: exit %d: %s", code, errOut)
	}

	if out := run("close", consID); !regexp.MustCompile(`^closed connection ` + consID + ` \(alice at 127\.0\.0\.1:\d+\)\n$`).MatchString(out) {
		t.Errorf("close: %q", out)
	}
	if f := cons.read(); f.cmd != "ERROR" || f.hdr["message"] != "connection closed by an administrator" {
		t.Errorf("the closed client got %+v", f)
	}
	out = run("errors")
	if f := row(t, out, "TIME"); len(f) != 6 || !strings.Contains(out, "connection closed by an administrator") ||
		!strings.Contains(out, " alice ") {
		t.Errorf("errors:\n%s", out)
	}

	// Credentials: flags override the environment; 401 and 403 fail with
	// the status and a hint.
	noUser := map[string]string{"STOMPICA_URL": env["STOMPICA_URL"]}
	if code, _, errOut := ctl(noUser, "queues"); code != 1 || !strings.Contains(errOut, "401 Unauthorized") ||
		!strings.Contains(errOut, "--user") {
		t.Errorf("without credentials: exit %d: %s", code, errOut)
	}
	if code, _, errOut := ctl(env, "--password", "wrong", "queues"); code != 1 || !strings.Contains(errOut, "401 Unauthorized") {
		t.Errorf("a wrong password: exit %d: %s", code, errOut)
	}
	if code, _, errOut := ctl(noUser, "--user", "alice", "--password", "alice-pw", "purge", "/queue/ctl-work"); code != 1 ||
		!strings.Contains(errOut, "403 Forbidden") || !strings.Contains(errOut, "no admin access") {
		t.Errorf("a user without admin: exit %d: %s", code, errOut)
	}
	if code, out, _ := ctl(noUser, "queues", "--user", "ops", "--password", "ops-pw"); code != 0 || !strings.Contains(out, "/queue/ctl-work") {
		t.Errorf("credentials after the command: exit %d: %s", code, out)
	}
}
