package server

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

// A refused login gets an ERROR with a message and a body that says what
// to check (and the receipt-id asked for); the log line names the peer.
func TestMistakeLoginRefused(t *testing.T) {
	authFastFail(t, time.Millisecond)
	forEachTransport(t, func(t *testing.T, tr string) {
		srv, logs := startLogged(t, func(o *Options) { o.UsersFile = authUsers(t) })
		c := dial(t, srv, tr)
		c.sendFrame(frame.CONNECT, "", "accept-version", "1.2", "host", "localhost", "login", "alice", "passcode", "builder", "receipt", "c1")
		f := c.expectError("access refused")
		if f.GetString("message") != "access refused" || f.GetString("receipt-id") != "c1" || f.GetString("content-type") != "text/plain" {
			t.Errorf("ERROR %s: want message \"access refused\", receipt-id c1, content-type text/plain", fmtFrame(f))
		}
		if body := string(f.Body); !strings.HasPrefix(body, "Login refused: the CONNECT frame's login and passcode headers do not match") ||
			!strings.Contains(body, "stompica passwd LOGIN") {
			t.Errorf("ERROR body %q", body)
		}
		c.expectClosed()
		waitLog(t, logs, `msg="login refused"`, "login=alice", localPeer(c), "transport="+tr)
	})
}

// A selector is refused, not ignored; an empty one selects everything.
func TestCompatSelector(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv, logs := startLogged(t, nil)
		c := connected(t, srv, tr)
		c.subscribe("/queue/a", "empty", "selector", " ")
		c.sendFrame(frame.SUBSCRIBE, "", "destination", "/queue/a", "id", "s", "selector", "price > 10", "receipt", "r")
		f := c.expectError("selectors are not supported yet: SUBSCRIBE without the selector header and filter in the client")
		if f.GetString("receipt-id") != "r" {
			t.Errorf("receipt-id %q", f.GetString("receipt-id"))
		}
		c.expectClosed()
		waitLog(t, logs, "selectors are not supported yet", localPeer(c))
	})
}

// CONNECT's host: what clients send by default passes (nothing, "/", the
// name or address they dialled); a RabbitMQ virtual host is refused, and
// with HostNames any name not listed.
func TestCompatConnectHost(t *testing.T) {
	hostname, _ := os.Hostname()
	for _, tt := range []struct {
		names     []string
		ok, wrong []string
	}{
		{nil,
			[]string{"", "/", "127.0.0.1", "127.0.0.1:3490", "::1", "[::1]:3490", "fe80::1%eth0", "localhost", "stompica", "broker.example.com.", "my_host"},
			[]string{"/prod", "prod/", "my vhost", "vhost:x", ".", "a..b"}},
		{[]string{"stompica", "broker.example.com"},
			[]string{"/", "", "127.0.0.1", "localhost", "Stompica", "broker.example.com:61613", "default", hostname},
			[]string{"other", "/prod", "example.com"}},
	} {
		t.Run(strings.Join(tt.names, ","), func(t *testing.T) { testConnectHost(t, tt.names, tt.ok, tt.wrong) })
	}
}

func testConnectHost(t *testing.T, names, ok, wrong []string) {
	srv, logs := startLogged(t, func(o *Options) { o.HostNames = names })
	for _, h := range ok {
		c := dial(t, srv, "tcp")
		c.sendFrame(frame.CONNECT, "", "accept-version", "1.2", "host", h)
		c.expect(frame.CONNECTED)
		c.close()
	}
	for _, h := range wrong {
		c := dial(t, srv, "tcp")
		c.sendFrame(frame.CONNECT, "", "accept-version", "1.2", "host", h)
		want := `virtual host "` + h + `" not found: stompica has one virtual host, "/"; send host:/ or the broker's host name, or no host header`
		if names != nil && isHostName(h) {
			want = `virtual host "` + h + `" not found: this broker answers to stompica, broker.example.com (--host-names), localhost, its host name and IP addresses`
		}
		c.expectError(want)
		c.expectClosed()
		waitLog(t, logs, "client error", localPeer(c), "virtual host")
	}
}

// RabbitMQ's /amq/queue/NAME is /queue/NAME and /exchange/amq.topic/KEY is
// /topic/KEY, on SEND and SUBSCRIBE; MESSAGE frames carry our name.
func TestCompatRabbitDestinations(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.subscribe("/amq/queue/jobs", "q")
		c.subscribe("/exchange/amq.topic/stocks.*", "t")
		p := connected(t, srv, tr)
		for _, tt := range []struct{ dest, sub, want string }{
			{"/queue/jobs", "q", "/queue/jobs"},
			{"/amq/queue/jobs", "q", "/queue/jobs"},
			{"/topic/stocks.acme", "t", "/topic/stocks.acme"},
			{"/exchange/amq.topic/stocks.ibm", "t", "/topic/stocks.ibm"},
		} {
			p.publish(tt.dest, "via "+tt.dest)
			m := c.expectMessage("via " + tt.dest)
			if m.GetString("subscription") != tt.sub || m.GetString("destination") != tt.want {
				t.Errorf("SEND %s: got %s, want subscription %s destination %s", tt.dest, fmtFrame(m), tt.sub, tt.want)
			}
		}
		c.sync()
		for _, bad := range []string{"/exchange/amq.direct/x", "/exchange/amq.topic/", "/amq/topic/x"} {
			p := connected(t, srv, tr)
			p.sendFrame(frame.SEND, "x", "destination", bad)
			p.expectError(`destination "` + bad + `" is not supported: stompica serves RabbitMQ's /exchange/amq.topic/KEY (= /topic/KEY) and /amq/queue/NAME (= /queue/NAME)`)
			p.expectClosed()
		}
	})
}

// The README's operator rule, "ops admin #", may subscribe to DIAG and get
// the answers there; without admin, the subscription is refused.
func TestACLOperatorSubscribesToDiag(t *testing.T) {
	authFastFail(t, time.Millisecond)
	srv := authStart(t, Options{UsersFile: authUsers(t), ACLFile: authWriteFile(t, "acl", "ops admin #\nalice read /topic/x\n")})
	ops := authConnected(t, srv, "ops", "secret")
	ops.send(frame.SUBSCRIBE, "", "destination", "DIAG", "id", "d", "receipt", "s")
	ops.expect(frame.RECEIPT)
	ops.send(frame.SEND, "session-size", "destination", "DIAG")
	m := ops.expect(frame.MESSAGE)
	var v map[string]int
	if m.GetString("subscription") != "d" || json.Unmarshal(m.Body, &v) != nil || v["session-size"] != 1 {
		t.Errorf("DIAG answer %q %q", m.Headers, m.Body)
	}
	alice := authConnected(t, srv, "alice", "wonderland")
	alice.send(frame.SUBSCRIBE, "", "destination", "DIAG", "id", "d")
	alice.expectError(`access denied: user "alice" may not read from "DIAG"`)
}
