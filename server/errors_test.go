package server

import (
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/stompica/stompica/frame"
)

// closedCount is how many connections of srv ended for reason r.
func closedCount(srv *Server, r ClosedState) uint64 { return srv.stats.closedByReason[r].Load() }

// waitClosed waits until n connections of srv ended for reason r, and
// checks that none ended for another reason than those counted in want.
func waitClosed(t *testing.T, srv *Server, want map[ClosedState]uint64) {
	t.Helper()
	waitFor(t, "close reasons "+fmtClosed(want), func() bool {
		for r, n := range want {
			if closedCount(srv, r) != n {
				return false
			}
		}
		return true
	})
	for r := Open; r < numClosedStates; r++ {
		if n := closedCount(srv, r); n != want[r] {
			t.Errorf("connections closed for %q: %d, want %d (all: %s)", r, n, want[r], fmtClosed(srv.ClosedCounts()))
		}
	}
}

func fmtClosed(m map[ClosedState]uint64) string {
	s := ""
	for r := Open; r < numClosedStates; r++ {
		if m[r] > 0 {
			s += r.String() + "=" + itoa(m[r]) + " "
		}
	}
	return s
}

// errorCount is the number of ERRORs of kind k srv sent.
func errorCount(srv *Server, k errKind) uint64 { return srv.stats.errorCounts()[k] }

// TestCloseReasons checks the reason recorded (and counted) for each way a
// connection ends, and the error kind counted for each ERROR.
func TestCloseReasons(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) {
			o.MaxSubscriptions = 1
			o.HeartBeatRecv = 20 * time.Millisecond
		})
		want := map[ClosedState]uint64{}

		c := connected(t, srv, tr)
		c.request(frame.DISCONNECT, "")
		c.expectClosed()
		want[Disconnect]++
		waitClosed(t, srv, want)

		c = connected(t, srv, tr)
		c.close()
		want[ClientClosed]++
		waitClosed(t, srv, want)

		// Each ERROR closes the connection for its reason and counts once
		// by its kind.
		for _, tc := range []struct {
			name   string
			run    func(c *client)
			errMsg string
			reason ClosedState
			kind   errKind
			wsOnly bool
		}{
			{"unknown command", func(c *client) { c.send("BOGUS\n\n\x00") }, "unknown command", ProtocolError, kindProtocol, false},
			{"too many subscriptions", func(c *client) {
				c.subscribe("/topic/a", "a")
				c.sendFrame(frame.SUBSCRIBE, "", "destination", "/topic/b", "id", "b")
			}, "too many subscriptions", LimitExceeded, kindLimit, false},
			{"silent client", func(c *client) {}, "heart-beat timeout", HeartbeatTimeout, kindHeartbeat, false},
			{"unmasked WebSocket frame", func(c *client) { // RFC 6455 §5.1
				if _, err := c.nc.Write([]byte{0x81, 1, 'x'}); err != nil {
					t.Fatal(err)
				}
			}, "websocket protocol error", WebSocketError, kindWebSocket, true},
		} {
			if tc.wsOnly && tr != "ws" {
				continue
			}
			c = dial(t, srv, tr)
			hb := "0,0"
			if tc.reason == HeartbeatTimeout {
				hb = "40,0" // the server expects a beat every 40 ms
			}
			c.connect("1.2", "heart-beat", hb)
			tc.run(c)
			c.expectError(tc.errMsg)
			code := c.expectClosed()
			if tc.reason == WebSocketError && code != ws.StatusProtocolError {
				t.Errorf("%s: close code %d, want 1002", tc.name, code)
			}
			want[tc.reason]++
			waitClosed(t, srv, want)
			if n := errorCount(srv, tc.kind); n != 1 {
				t.Errorf("%s: %s errors = %d, want 1", tc.name, tc.kind, n)
			}
		}

		c = connected(t, srv, tr)
		if err := srv.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		c.expectError("shutting down")
		c.expectClosed()
		want[ServerShutdown]++
		waitClosed(t, srv, want)
	})
}

// TestCloseReasonConnectTimeout: a client that sends the start of a frame
// but never CONNECT is closed for ConnectTimeout, counted as a "timeout"
// error.
func TestCloseReasonConnectTimeout(t *testing.T) {
	srv := startServer(t, func(o *Options) { o.ConnectTimeout = 100 * time.Millisecond })
	c := dial(t, srv, "tcp")
	c.send("CONN")
	c.expectError("timeout waiting for CONNECT")
	c.expectClosed()
	waitClosed(t, srv, map[ClosedState]uint64{ConnectTimeout: 1})
	if n := errorCount(srv, kindTimeout); n != 1 {
		t.Errorf("timeout errors = %d, want 1", n)
	}
}

// TestCloseReasonTooManyConnections: a connection over MaxConnections is
// refused for TooManyConnections; that is counted as a refusal, not as a
// client's error.
func TestCloseReasonTooManyConnections(t *testing.T) {
	srv := startServer(t, func(o *Options) { o.MaxConnections = 1 })
	connected(t, srv, "tcp")
	c := dial(t, srv, "tcp")
	c.send("CONNECT\naccept-version:1.2\n\n\x00")
	c.expectError("too many connections")
	c.expectClosed()
	waitClosed(t, srv, map[ClosedState]uint64{TooManyConnections: 1})
	if n := srv.stats.errorsTotal(); n != 0 {
		t.Errorf("errors = %d, want 0", n)
	}
}

// TestEnumNames: every error kind and close reason has its own name, and
// the kinds' names (the errors_total label values operators alert on) are
// the documented ones.
func TestEnumNames(t *testing.T) {
	wantKinds := map[errKind]string{
		kindProtocol: "protocol", kindLimit: "limit", kindAuth: "auth", kindHeartbeat: "heartbeat",
		kindTimeout: "timeout", kindWebSocket: "websocket", kindStore: "store", kindOther: "other",
	}
	if len(wantKinds) != numErrorKinds {
		t.Fatalf("%d kinds named here, %d declared", len(wantKinds), numErrorKinds)
	}
	for k, want := range wantKinds {
		if got := k.String(); got != want {
			t.Errorf("kind %d: %q, want %q", k, got, want)
		}
	}
	if got := errKind(numErrorKinds).String(); got != "other" {
		t.Errorf("kind past the table: %q, want other", got)
	}
	seen := map[string]ClosedState{}
	for r := Open; r < numClosedStates; r++ {
		name := r.String()
		if prev, dup := seen[name]; dup || name == "" {
			t.Errorf("close reason %d is named %q (as %d)", r, name, prev)
		}
		seen[name] = r
	}
	if got, want := ClosedState(numClosedStates).String(), "ClosedState("+itoa(numClosedStates)+")"; got != want {
		t.Errorf("reason past the table: %q, want %q", got, want)
	}
}
