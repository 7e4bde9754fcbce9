package server

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stompica/stompica/auth"
	"github.com/stompica/stompica/frame"
)

// testAuthn is an Authenticator that accepts passcode "pw-LOGIN" as the
// identity "id:LOGIN", fails for login "broken" (not a refusal: a
// directory that does not answer), returns an empty login for "empty",
// and records what it was given.
type testAuthn struct {
	mu    sync.Mutex
	creds []auth.Credentials
}

var errDirectoryDown = errors.New("directory down")

func (a *testAuthn) Authenticate(_ context.Context, c auth.Credentials) (string, error) {
	a.mu.Lock()
	a.creds = append(a.creds, c)
	a.mu.Unlock()
	switch {
	case c.Login == "broken":
		return "", errDirectoryDown
	case c.Login == "empty":
		return "", nil
	case c.Login != "" && c.Passcode == "pw-"+c.Login:
		return "id:" + c.Login, nil
	}
	return "", auth.ErrRefused
}

func (a *testAuthn) last() auth.Credentials {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.creds[len(a.creds)-1]
}

type authzCall struct {
	login  string
	access auth.Access
	dest   string
}

// testAuthz is an Authorizer that lets "id:LOGIN" read and write under
// /queue/LOGIN. and nothing else (admin only to "id:ops"), recording the
// calls.
type testAuthz struct {
	mu    sync.Mutex
	calls []authzCall
}

func (a *testAuthz) Authorize(login string, access auth.Access, dest string) bool {
	a.mu.Lock()
	a.calls = append(a.calls, authzCall{login, access, dest})
	a.mu.Unlock()
	if access == auth.Admin {
		return login == "id:ops"
	}
	name, ok := strings.CutPrefix(login, "id:")
	return ok && strings.HasPrefix(dest, "/queue/"+name+".")
}

func (a *testAuthz) last() authzCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[len(a.calls)-1]
}

// TestAuthPluginOptions: a file and a plugin for the same role are a
// configuration error, caught by New.
func TestAuthPluginOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"users file and Authenticator", Options{UsersFile: authUsers(t), Authenticator: &testAuthn{}}, "Options.UsersFile and Options.Authenticator"},
		{"ACL file and Authorizer", Options{ACLFile: authWriteFile(t, "acl", "* read #\n"), Authorizer: &testAuthz{}}, "Options.ACLFile and Options.Authorizer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(&tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// TestAuthPlugin: CONNECT goes through Options.Authenticator (with the
// transport and peer), the login it returns is the identity every SEND,
// SUBSCRIBE and DIAG is authorized with through Options.Authorizer, and
// every refusal, whatever the authenticator's error, is "access refused".
func TestAuthPlugin(t *testing.T) {
	authFastFail(t, time.Millisecond)
	forEachTransport(t, func(t *testing.T, tr string) {
		authn, authz := &testAuthn{}, &testAuthz{}
		srv, logs := reloadLogged(t, func(o *Options) { o.Authenticator, o.Authorizer = authn, authz })

		alice := dial(t, srv, tr)
		alice.connect("1.2", "login", "alice", "passcode", "pw-alice")
		c := authn.last()
		if c.Login != "alice" || c.Passcode != "pw-alice" || c.CertLogin != "" || c.Transport != tr ||
			!strings.HasPrefix(c.Remote, "127.0.0.1:") {
			t.Errorf("credentials %+v, want alice/pw-alice over %s from 127.0.0.1", c, tr)
		}

		alice.publish("/queue/alice.in", "mine")
		if got, want := authz.last(), (authzCall{"id:alice", auth.Write, "/queue/alice.in"}); got != want {
			t.Errorf("SEND authorized as %+v, want %+v", got, want)
		}
		alice.subscribeNoWait("/queue/alice.*", "s") // the queued message may come before a receipt
		alice.expectMessage("mine")
		if got, want := authz.last(), (authzCall{"id:alice", auth.Read, "/queue/alice.*"}); got != want {
			t.Errorf("SUBSCRIBE authorized as %+v, want %+v", got, want)
		}
		alice.sendFrame(frame.SEND, "x", "destination", "/queue/bob.in", "receipt", "r")
		if f := alice.expectError(`access denied: user "id:alice" may not write to "/queue/bob.in"`); f.GetString("receipt-id") != "r" {
			t.Errorf("ERROR receipt-id %q, want r", f.GetString("receipt-id"))
		}

		ops := dial(t, srv, tr)
		ops.connect("1.2", "login", "ops", "passcode", "pw-ops")
		ops.sendFrame(frame.DIAG, "session-size")
		ops.expect(frame.MESSAGE)
		if got, want := authz.last(), (authzCall{"id:ops", auth.Admin, "DIAG"}); got != want {
			t.Errorf("DIAG authorized as %+v, want %+v", got, want)
		}

		for _, tc := range []struct{ name, login, pass, log string }{
			{"refused", "alice", "wrong", "level=INFO msg=\"login refused\""},
			{"authenticator failed", "broken", "x", "the authenticator failed"},
			{"empty login", "empty", "x", "the authenticator returned an empty login"},
		} {
			c := dial(t, srv, tr)
			c.sendFrame(frame.CONNECT, "", "accept-version", "1.2", "host", "h", "login", tc.login, "passcode", tc.pass)
			if f := c.expectError("access refused"); f.GetString("message") != "access refused" {
				t.Errorf("%s: message %q, want exactly \"access refused\"", tc.name, f.GetString("message"))
			}
			c.expectClosed()
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("%s: no %q in the log:\n%s", tc.name, tc.log, logs)
			}
		}
		if log := logs.String(); !strings.Contains(log, "err=\"directory down\"") {
			t.Errorf("the authenticator's error is not logged:\n%s", log)
		}
	})
}

// TestAuthPluginHTTP: /console, /metrics and /api/ ask the same
// Authenticator (transport "http") and the Authorizer for admin access to
// the request path: 401 for a refused login, 403 for a login without admin.
func TestAuthPluginHTTP(t *testing.T) {
	authFastFail(t, 0)
	authn, authz := &testAuthn{}, &testAuthz{}
	srv := authNew(t, Options{Authenticator: authn, Authorizer: authz})
	for _, tc := range []struct {
		login, pass string
		want        int
	}{{"ops", "pw-ops", 0}, {"alice", "pw-alice", 403}, {"ops", "wrong", 401}, {"broken", "x", 401}} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.SetBasicAuth(tc.login, tc.pass)
		if _, got := srv.httpAccess(r); got != tc.want {
			t.Errorf("%s/%s: %d, want %d", tc.login, tc.pass, got, tc.want)
		}
		if c := authn.last(); c.Transport != "http" || c.Login != tc.login || c.Passcode != tc.pass || c.Remote != r.RemoteAddr {
			t.Errorf("credentials %+v", c)
		}
	}
	if got, want := authz.last(), (authzCall{"id:alice", auth.Admin, "/metrics"}); got != want {
		t.Errorf("last check %+v, want %+v", got, want)
	}
	// Without Authorizer, any login the Authenticator accepts may look.
	srv2 := authNew(t, Options{Authenticator: &testAuthn{}})
	r := httptest.NewRequest("GET", "/console", nil)
	r.SetBasicAuth("alice", "pw-alice")
	if _, code := srv2.httpAccess(r); code != 0 {
		t.Errorf("Authenticator without Authorizer: %d", code)
	}
}

// testReloader is an Authenticator and Authorizer that counts reloads.
type testReloader struct {
	testAuthn
	testAuthz
	mu      sync.Mutex
	reloads int
	err     error
}

func (r *testReloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reloads++
	return r.err
}

func (r *testReloader) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloads
}

// TestAuthPluginReload: Server.Reload reloads plugins that implement
// auth.Reloader (one object serving both roles once), logs the outcome and
// returns the error of one that fails.
func TestAuthPluginReload(t *testing.T) {
	t.Run("one object for both", func(t *testing.T) {
		both := &testReloader{}
		srv, logs := reloadLogged(t, func(o *Options) { o.Authenticator, o.Authorizer = both, both })
		if err := srv.Reload(); err != nil || both.count() != 1 {
			t.Fatalf("Reload = %v, reloads %d, want nil and 1", err, both.count())
		}
		if !strings.Contains(logs.String(), "reload: authenticator loaded") {
			t.Errorf("no reload line:\n%s", logs)
		}
	})
	t.Run("one fails", func(t *testing.T) {
		authn, authz := &testReloader{}, &testReloader{err: errors.New("rules unreadable")}
		srv, logs := reloadLogged(t, func(o *Options) { o.Authenticator, o.Authorizer = authn, authz })
		if err := srv.Reload(); err == nil || !strings.Contains(err.Error(), "rules unreadable") {
			t.Errorf("Reload = %v, want the authorizer's error", err)
		}
		if authn.count() != 1 || authz.count() != 1 {
			t.Errorf("reloads %d and %d, want 1 each", authn.count(), authz.count())
		}
		log := logs.String()
		if !strings.Contains(log, "reload: keeping the old authorizer") || !strings.Contains(log, "rules unreadable") {
			t.Errorf("no warning for the authorizer:\n%s", log)
		}
		if !strings.Contains(log, "reload: authenticator loaded") {
			t.Errorf("the authenticator's reload is not logged:\n%s", log)
		}
	})
	t.Run("no Reloader", func(t *testing.T) {
		srv := authNew(t, Options{Authenticator: &testAuthn{}, Authorizer: &testAuthz{}})
		if err := srv.Reload(); err != nil {
			t.Errorf("Reload without Reloaders = %v", err)
		}
	})
}

// blockingAuthn blocks every login until its ctx ends.
type blockingAuthn struct {
	entered chan struct{}
	result  chan error
}

func (a *blockingAuthn) Authenticate(ctx context.Context, _ auth.Credentials) (string, error) {
	a.entered <- struct{}{}
	<-ctx.Done()
	a.result <- ctx.Err()
	return "", ctx.Err()
}

// TestAuthPluginShutdownCancels: Shutdown ends the ctx of an
// Authenticator still working on a login, so a slow directory cannot hold
// Shutdown up (the connect timeout, far longer here, is not what ends it).
func TestAuthPluginShutdownCancels(t *testing.T) {
	a := &blockingAuthn{entered: make(chan struct{}, 1), result: make(chan error, 1)}
	srv := startServer(t, func(o *Options) {
		o.Authenticator = a
		o.ConnectTimeout = time.Hour
	})
	c := dial(t, srv, "tcp")
	c.sendFrame(frame.CONNECT, "", "accept-version", "1.2", "host", "h", "login", "alice", "passcode", "x")
	select {
	case <-a.entered:
	case <-time.After(waitTimeout):
		t.Fatal("the Authenticator was not called")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case err := <-a.result:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Authenticate's ctx ended with %v, want context.Canceled", err)
		}
	default:
		t.Fatal("Shutdown returned while Authenticate still waited")
	}
	for { // whatever ERROR comes first, then the close
		if _, ended, err := c.next(waitTimeout); ended {
			break
		} else if err != nil {
			t.Fatalf("client still open after Shutdown: %v", err)
		}
	}
}
