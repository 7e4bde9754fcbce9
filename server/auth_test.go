package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stompica/stompica/auth"
	"github.com/stompica/stompica/frame"
	"github.com/stompica/stompica/internal/testutil"
)

const authTimeout = 5 * time.Second

// authHash returns a bcrypt hash of password (cached, at the minimum
// cost).
var authHash = testutil.BcryptHash

// authWriteFile writes content to a new file name and returns its path.
var authWriteFile = testutil.WriteFile

// authUsers returns a users file with alice:wonderland, bob:builder and
// ops:secret.
func authUsers(t testing.TB) string {
	return authWriteFile(t, "users", fmt.Sprintf("# test users\n\nalice:%s\nbob:%s\nops:%s\n",
		authHash(t, "wonderland"), authHash(t, "builder"), authHash(t, "secret")))
}

// authFastFail shortens the failed-login delay for the test.
func authFastFail(t testing.TB, d time.Duration) {
	old := authFailDelay
	authFailDelay = d
	t.Cleanup(func() { authFailDelay = old })
}

// authLogBuffer is a concurrency-safe log sink.
type authLogBuffer = testutil.SyncBuffer

// authNew returns a Server (not started) and registers its Shutdown.
func authNew(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := New(&o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
		defer cancel()
		srv.Shutdown(ctx) //nolint:errcheck
	})
	return srv
}

// authStart starts a Server on a random port of 127.0.0.1.
func authStart(t testing.TB, o Options) *Server {
	t.Helper()
	o.Host, o.Port = "127.0.0.1", -1
	srv := authNew(t, o)
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return srv
}

func TestAuthInitAuthError(t *testing.T) {
	path := authWriteFile(t, "users", "alice:nohash\n")
	_, err := New(&Options{UsersFile: path, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("New = %v, want an error naming line 1 (a broken users file fails at startup)", err)
	}
}

// authLogin calls srv.authenticate as a TCP CONNECT with login and
// passcode (and a verified certificate named cert, "" for none) would.
func authLogin(srv *Server, login, passcode, cert string) (string, error) {
	return srv.authenticate(context.Background(), auth.Credentials{Login: login, Passcode: passcode,
		CertLogin: cert, Remote: "127.0.0.1:1", Transport: "tcp"})
}

func TestAuthAnonymous(t *testing.T) {
	srv := authNew(t, Options{})
	for _, login := range []string{"", "anyone"} {
		if got, err := authLogin(srv, login, "whatever", ""); err != nil || got != login {
			t.Errorf("authenticate(%q) without users = %q, %v", login, got, err)
		}
		for _, access := range []auth.Access{auth.Read, auth.Write, auth.Admin} {
			if err := srv.authorize(login, access, "/queue/x"); err != nil {
				t.Errorf("authorize(%q, %s) without ACL = %v", login, access, err)
			}
		}
	}
	// Without authentication a verified certificate still names the client.
	ca := authNew(t, Options{TLSClientCA: "ca.pem"})
	if got, err := authLogin(ca, "", "", "device-1"); err != nil || got != "device-1" {
		t.Errorf("certificate without users = %q, %v", got, err)
	}
	if got, err := authLogin(ca, "named", "", "device-1"); err != nil || got != "named" {
		t.Errorf("login and certificate without users = %q, %v; want the login", got, err)
	}
}

func TestAuthAuthenticate(t *testing.T) {
	const delay = 50 * time.Millisecond
	authFastFail(t, delay)
	srv := authNew(t, Options{UsersFile: authUsers(t)})
	for range 2 { // the second round is answered from the verified cache
		if got, err := authLogin(srv, "alice", "wonderland", ""); err != nil || got != "alice" {
			t.Fatalf("good login: %q, %v", got, err)
		}
	}
	if got, err := authLogin(srv, "bob", "builder", ""); err != nil || got != "bob" {
		t.Fatalf("good login: %q, %v", got, err)
	}
	for _, tc := range []struct{ name, login, pass string }{
		{"wrong passcode", "alice", "wonderlan"},
		{"other user's passcode", "alice", "builder"},
		{"unknown login", "mallory", "wonderland"},
		{"empty login", "", ""},
		{"empty passcode", "alice", ""},
		{"passcode past bcrypt's 72 bytes", "alice", "wonderland" + strings.Repeat("x", 70)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			got, err := authLogin(srv, tc.login, tc.pass, "")
			if el := time.Since(start); el < delay {
				t.Errorf("refused after %v, want at least %v", el, delay)
			}
			var ce *clientError
			if got != "" || !errors.As(err, &ce) || ce.kind != kindAuth || ce.reason != AuthFailed || err.Error() != "access refused" {
				t.Errorf("= %q, %#v, want a login error \"access refused\"", got, err)
			}
			if !errors.Is(err, auth.ErrRefused) {
				t.Errorf("%v does not wrap the users file's refusal (auth.ErrRefused)", err)
			}
		})
	}
	// A password of 72 bytes works; one byte more is not silently truncated.
	long := strings.Repeat("p", 72)
	srv2 := authNew(t, Options{UsersFile: authWriteFile(t, "users", "long:"+authHash(t, long)+"\n")})
	if _, err := authLogin(srv2, "long", long, ""); err != nil {
		t.Errorf("72-byte passcode: %v", err)
	}
	if _, err := authLogin(srv2, "long", long+"x", ""); err == nil {
		t.Error("73-byte passcode accepted")
	}
}

func TestAuthCertLogin(t *testing.T) {
	authFastFail(t, 0)
	users := authUsers(t)
	srv := authNew(t, Options{UsersFile: users, TLSClientCA: "ca.pem"})
	if got, err := authLogin(srv, "", "", "device-42"); err != nil || got != "device-42" {
		t.Errorf("verified certificate login: %q, %v", got, err)
	}
	if _, err := authLogin(srv, "device-42", "", ""); err == nil {
		t.Error("unverified unknown login accepted")
	}
	if _, err := authLogin(srv, "", "", ""); err == nil {
		t.Error("empty certificate login accepted")
	}
	if _, err := authLogin(srv, "alice", "wrong", "device-42"); err == nil {
		t.Error("a wrong passcode accepted because of a certificate (the login named in CONNECT counts)")
	}
	// Without a client CA nothing can have been verified.
	srv2 := authNew(t, Options{UsersFile: users})
	if _, err := authLogin(srv2, "", "", "device-42"); err == nil {
		t.Error("certificate login accepted without TLSClientCA")
	}
}

// TestAuthHTTPAccess: with authentication on, every HTTP request needs a
// login (401 without one or with a wrong one) and, with an ACL, admin
// access to its path (403 otherwise); with it off everything is open but
// for HTTPAuth, which then refuses everything.
func TestAuthHTTPAccess(t *testing.T) {
	authFastFail(t, 0)
	req := func(path, login, pass string) *http.Request {
		r := httptest.NewRequest("GET", path, nil)
		if login != "" {
			r.SetBasicAuth(login, pass)
		}
		return r
	}
	type check struct {
		path, login, pass string
		want              int
	}
	run := func(name string, srv *Server, checks []check) {
		t.Helper()
		for _, tc := range checks {
			if _, got := srv.httpAccess(req(tc.path, tc.login, tc.pass)); got != tc.want {
				t.Errorf("%s: %s as %q/%q: %d, want %d", name, tc.path, tc.login, tc.pass, got, tc.want)
			}
		}
	}
	run("authentication off", authNew(t, Options{}), []check{
		{"/metrics", "", "", 0}, {"/api/queues", "", "", 0}, {"/console", "alice", "anything", 0}})
	run("HTTPAuth without users", authNew(t, Options{HTTPAuth: true}), []check{
		{"/metrics", "alice", "wonderland", 401}, {"/api/", "", "", 401}})

	// A users file alone: secure by default, HTTPAuth or not; every user
	// is an admin (no ACL).
	for _, httpAuth := range []bool{false, true} {
		run("users, no ACL", authNew(t, Options{HTTPAuth: httpAuth, UsersFile: authUsers(t)}), []check{
			{"/console", "alice", "wonderland", 0}, {"/api/queues", "alice", "wonderland", 0},
			{"/console", "alice", "wrong", 401}, {"/metrics", "mallory", "x", 401}, {"/metrics", "", "", 401},
			{"/api/connections", "", "", 401}})
	}

	withACL := authNew(t, Options{UsersFile: authUsers(t),
		ACLFile: authWriteFile(t, "acl", "ops admin #\nbob admin /metrics\nalice read,write #\n")})
	run("users and ACL", withACL, []check{
		{"/console", "ops", "secret", 0},
		{"/metrics", "ops", "secret", 0},
		{"/api/queues//queue/a/purge", "ops", "secret", 0},
		{"/metrics", "bob", "builder", 0},
		{"/console", "bob", "builder", 403},
		{"/api/connections", "bob", "builder", 403},
		{"/console/app.js", "bob", "builder", 403},
		{"/metrics", "alice", "wonderland", 403},
		{"/api/queues", "alice", "wonderland", 403},
		{"/metrics", "ops", "wrong", 401},
		{"/api/queues", "", "", 401},
	})
	if login, code := withACL.httpAccess(req("/api/queues", "ops", "secret")); login != "ops" || code != 0 {
		t.Errorf("httpAccess = %q, %d; want ops, 0", login, code)
	}
}

// TestAuthHTTPLoginCache: a successful HTTP login is remembered for its
// client address (the Authenticator is asked once), a wrong password is
// not, and Reload forgets.
func TestAuthHTTPLoginCache(t *testing.T) {
	authFastFail(t, 0)
	authn := &testAuthn{}
	srv := authNew(t, Options{Authenticator: authn})
	calls := func() int {
		authn.mu.Lock()
		defer authn.mu.Unlock()
		return len(authn.creds)
	}
	from := "192.0.2.1:1234"
	get := func(login, pass string) int {
		r := httptest.NewRequest("GET", "/api/", nil)
		r.RemoteAddr = from
		r.SetBasicAuth(login, pass)
		_, code := srv.httpAccess(r)
		return code
	}
	for range 3 {
		if code := get("ops", "pw-ops"); code != 0 {
			t.Fatalf("ops: %d", code)
		}
	}
	if n := calls(); n != 1 {
		t.Errorf("the Authenticator was asked %d times for 3 requests with the same credentials, want 1", n)
	}
	for range 2 {
		if code := get("ops", "wrong"); code != 401 {
			t.Fatalf("ops with a wrong password: %d, want 401", code)
		}
	}
	if n := calls(); n != 3 {
		t.Errorf("the Authenticator was asked %d times, want 3 (wrong passwords are not remembered)", n)
	}
	from = "192.0.2.1:999" // another port of the same address
	if code := get("ops", "pw-ops"); code != 0 || calls() != 3 {
		t.Errorf("from another port: %d, %d calls; want 0, 3", code, calls())
	}
	from = "198.51.100.7:1234" // another address: asked again
	if code := get("ops", "pw-ops"); code != 0 || calls() != 4 {
		t.Errorf("from another address: %d, %d calls; want 0, 4", code, calls())
	}
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if code := get("ops", "pw-ops"); code != 0 || calls() != 5 {
		t.Errorf("after Reload: %d, %d calls; want 0, 5", code, calls())
	}
}

func TestAuthWarnings(t *testing.T) {
	users := authUsers(t)
	acl := authWriteFile(t, "acl", "* read #\n")
	for _, tc := range []struct {
		name string
		o    Options
		want []string // substrings of warnings; none when empty
	}{
		{"loopback without users", Options{Host: "127.0.0.1"}, nil},
		{"localhost without users", Options{Host: "localhost"}, nil},
		{"::1 without users", Options{Host: "::1"}, nil},
		{"all interfaces without users", Options{}, []string{"authentication is off"}},
		{"public IP without users", Options{Host: "192.0.2.1"}, []string{"authentication is off"}},
		{"public with users and HTTP auth", Options{UsersFile: users, HTTPAuth: true}, nil},
		{"public with users, no HTTP auth", Options{UsersFile: users}, nil},
		{"public with users and public metrics", Options{UsersFile: users, MetricsPublic: true}, []string{"/metrics is public"}},
		{"ACL without users", Options{Host: "127.0.0.1", ACLFile: acl}, []string{"ACL without a users file"}},
		{"HTTP auth without users", Options{Host: "127.0.0.1", HTTPAuth: true}, []string{"HTTP auth needs a users file"}},
		{"empty users file", Options{Host: "127.0.0.1", UsersFile: authWriteFile(t, "u", "#\n"), HTTPAuth: true}, []string{"no users"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs authLogBuffer
			tc.o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			srv := authNew(t, tc.o)
			srv.authWarnings()
			out := logs.String()
			if tc.want == nil && (strings.Contains(out, "level=WARN") || strings.Contains(out, "level=ERROR")) {
				t.Errorf("unexpected warning: %s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("logs %q, want %q", out, w)
				}
			}
		})
	}
}

// ---- over TCP ----

// authClient is a raw STOMP 1.2 client over TCP.
type authClient struct {
	t    testing.TB
	nc   net.Conn
	p    frame.Parser
	buf  []byte
	r, w int
}

func authDial(t testing.TB, srv *Server) *authClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", srv.Addr().String(), authTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return authClientOn(t, nc)
}

// authClientOn is a client on the connection nc, which it closes when the
// test ends.
func authClientOn(t testing.TB, nc net.Conn) *authClient {
	t.Cleanup(func() { nc.Close() })
	c := &authClient{t: t, nc: nc, buf: make([]byte, 64<<10)}
	c.p.Version = frame.Version12
	return c
}

func (c *authClient) send(cmd, body string, kv ...string) {
	c.t.Helper()
	f := frame.New(cmd, kv...)
	f.Body = []byte(body)
	c.nc.SetWriteDeadline(time.Now().Add(authTimeout))
	if _, err := c.nc.Write(frame.Append(nil, f, frame.Version12)); err != nil {
		c.t.Fatalf("write %s: %v", cmd, err)
	}
}

// read returns the next frame (a copy), or nil and the read error.
func (c *authClient) read() (*frame.Frame, error) {
	for {
		if c.w > c.r {
			f, n, err := c.p.Parse(c.buf[c.r:c.w])
			if err != nil {
				return nil, err
			}
			c.r += n
			if f != nil {
				g := &frame.Frame{Command: f.Command, Body: bytes.Clone(f.Body)}
				for _, h := range f.Headers {
					g.Headers = append(g.Headers, frame.Header{Key: bytes.Clone(h.Key), Value: bytes.Clone(h.Value)})
				}
				return g, nil
			}
			if n > 0 {
				continue
			}
		}
		if c.r > 0 {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		}
		if c.w == len(c.buf) {
			c.buf = append(c.buf, make([]byte, len(c.buf))...)
		}
		c.nc.SetReadDeadline(time.Now().Add(authTimeout))
		n, err := c.nc.Read(c.buf[c.w:])
		c.w += n
		if err != nil && n == 0 {
			return nil, err
		}
	}
}

func (c *authClient) expect(cmd string) *frame.Frame {
	c.t.Helper()
	f, err := c.read()
	if err != nil {
		c.t.Fatalf("want %s, got error %v", cmd, err)
	}
	if f.Command != cmd {
		c.t.Fatalf("want %s, got %s %q %q", cmd, f.Command, f.Headers, f.Body)
	}
	return f
}

// expectError expects an ERROR whose message contains want, then the close.
func (c *authClient) expectError(want string) *frame.Frame {
	c.t.Helper()
	f := c.expect(frame.ERROR)
	if msg := f.GetString("message"); !strings.Contains(msg, want) {
		c.t.Errorf("ERROR message %q, want it to contain %q", msg, want)
	}
	if g, err := c.read(); err == nil {
		c.t.Errorf("after ERROR: got %s, want the connection closed", g.Command)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Errorf("after ERROR: connection still open")
	} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		c.t.Errorf("after ERROR: %v", err)
	}
	return f
}

func (c *authClient) connect(login, passcode string) {
	c.t.Helper()
	c.send(frame.CONNECT, "", "accept-version", "1.2", "host", "localhost", "heart-beat", "0,0",
		"login", login, "passcode", passcode)
}

func authConnected(t testing.TB, srv *Server, login, passcode string) *authClient {
	t.Helper()
	c := authDial(t, srv)
	c.connect(login, passcode)
	c.expect(frame.CONNECTED)
	return c
}

const authACL = `# test ACL
alice  read,write  /queue/orders
alice  write       /topic/public.>
bob    read        /topic/public.*   # bob may read public topics
*      read        /topic/news.#
ops    admin       DIAG
`

func authServer(t testing.TB) *Server {
	authFastFail(t, 10*time.Millisecond)
	return authStart(t, Options{UsersFile: authUsers(t), ACLFile: authWriteFile(t, "acl", authACL)})
}

func TestAuthServerConnect(t *testing.T) {
	srv := authServer(t)
	c := authConnected(t, srv, "alice", "wonderland")
	c.send(frame.DISCONNECT, "", "receipt", "bye")
	c.expect(frame.RECEIPT)

	for _, tc := range []struct{ name, login, pass string }{
		{"wrong passcode", "alice", "builder"},
		{"unknown login", "mallory", "wonderland"},
		{"no login", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := authDial(t, srv)
			if tc.login == "" {
				c.send(frame.CONNECT, "", "accept-version", "1.2", "host", "localhost")
			} else {
				c.connect(tc.login, tc.pass)
			}
			if f := c.expectError("access refused"); f.GetString("message") != "access refused" {
				t.Errorf("message %q, want exactly \"access refused\"", f.GetString("message"))
			}
		})
	}
}

func TestAuthServerStompCommand(t *testing.T) {
	srv := authServer(t)
	c := authDial(t, srv)
	c.send(frame.STOMP, "", "accept-version", "1.2", "host", "localhost", "login", "bob", "passcode", "builder")
	c.expect(frame.CONNECTED)
}

func TestACLServerSend(t *testing.T) {
	srv := authServer(t)
	alice := authConnected(t, srv, "alice", "wonderland")
	alice.send(frame.SEND, "one", "destination", "/queue/orders", "receipt", "r1")
	if f := alice.expect(frame.RECEIPT); f.GetString("receipt-id") != "r1" {
		t.Errorf("receipt-id %q", f.GetString("receipt-id"))
	}
	alice.send(frame.SEND, "two", "destination", "/topic/public.a.b", "receipt", "r2")
	alice.expect(frame.RECEIPT)
	alice.send(frame.SEND, "three", "destination", "/queue/other", "receipt", "r3")
	if f := alice.expectError(`access denied: user "alice" may not write to "/queue/other"`); f.GetString("receipt-id") != "r3" {
		t.Errorf("ERROR receipt-id %q, want r3", f.GetString("receipt-id"))
	}

	bob := authConnected(t, srv, "bob", "builder")
	bob.send(frame.SEND, "x", "destination", "/topic/public.a")
	bob.expectError(`user "bob" may not write to "/topic/public.a"`)

	// A SEND in a transaction is checked when it is sent.
	bob = authConnected(t, srv, "bob", "builder")
	bob.send(frame.BEGIN, "", "transaction", "tx")
	bob.send(frame.SEND, "x", "destination", "/queue/orders", "transaction", "tx")
	bob.expectError(`may not write to "/queue/orders"`)
}

func TestACLServerSubscribe(t *testing.T) {
	srv := authServer(t)
	bob := authConnected(t, srv, "bob", "builder")
	bob.send(frame.SUBSCRIBE, "", "destination", "/topic/public.*", "id", "1", "receipt", "s1")
	bob.expect(frame.RECEIPT)
	bob.send(frame.SUBSCRIBE, "", "destination", "/topic/news.sport", "id", "2", "receipt", "s2")
	bob.expect(frame.RECEIPT) // the "*" rule

	alice := authConnected(t, srv, "alice", "wonderland")
	alice.send(frame.SEND, "hello", "destination", "/topic/public.x", "receipt", "p")
	alice.expect(frame.RECEIPT)
	if m := bob.expect(frame.MESSAGE); string(m.Body) != "hello" || m.GetString("subscription") != "1" {
		t.Errorf("MESSAGE %q %q", m.Headers, m.Body)
	}

	for _, dest := range []string{"/topic/#", "/topic/>", "/topic/*.x", "/topic/public.>", "/topic/public.#", "/queue/orders"} {
		t.Run(dest, func(t *testing.T) {
			c := authConnected(t, srv, "bob", "builder")
			c.send(frame.SUBSCRIBE, "", "destination", dest, "id", "1")
			c.expectError(`access denied: user "bob" may not read from "` + dest + `"`)
		})
	}
}

func TestACLServerDiag(t *testing.T) {
	srv := authServer(t)

	// With authentication on, DIAG needs a login.
	c := authDial(t, srv)
	c.send(frame.DIAG, "")
	c.expectError(`"DIAG" needs a login`)

	alice := authConnected(t, srv, "alice", "wonderland")
	alice.send(frame.DIAG, "")
	alice.expectError(`access denied: user "alice" has no admin access to "DIAG"`)

	alice = authConnected(t, srv, "alice", "wonderland")
	alice.send(frame.SEND, "", "destination", "DIAG.session")
	alice.expectError(`has no admin access to "DIAG"`)

	ops := authConnected(t, srv, "ops", "secret")
	ops.send(frame.DIAG, "")
	if m := ops.expect(frame.MESSAGE); !json.Valid(m.Body) || len(m.Body) < 3 {
		t.Errorf("DIAG answer %q", m.Body)
	}
	ops.send(frame.SEND, "", "destination", "DIAG", "receipt", "d")
	ops.expect(frame.MESSAGE)
	ops.expect(frame.RECEIPT)
}

func TestAuthServerAnonymous(t *testing.T) {
	// No users, no ACL: anyone connects and does anything.
	srv := authStart(t, Options{})
	c := authDial(t, srv)
	c.send(frame.CONNECT, "", "accept-version", "1.2", "host", "localhost", "heart-beat", "0,0")
	c.expect(frame.CONNECTED)
	c.send(frame.SEND, "x", "destination", "/queue/any", "receipt", "r")
	c.expect(frame.RECEIPT)
	c.send(frame.DIAG, "")
	c.expect(frame.MESSAGE)
}

// authCert makes a certificate signed by ca (self-signed when ca is nil).
func authCert(t testing.TB, cn string, ca *tls.Certificate, isCA bool, ips ...net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  ips,
		IsCA:         isCA, BasicConstraintsValid: true,
	}
	parent, signer := tmpl, any(key)
	if ca != nil {
		parent, signer = ca.Leaf, ca.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func authPEM(t testing.TB, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	kb, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile = authWriteFile(t, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})))
	keyFile = authWriteFile(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})))
	return certFile, keyFile
}

func TestAuthServerCertLogin(t *testing.T) {
	authFastFail(t, 10*time.Millisecond)
	ca := authCert(t, "test CA", nil, true)
	caFile, _ := authPEM(t, ca)
	srvCert, srvKey := authPEM(t, authCert(t, "127.0.0.1", &ca, false, net.IPv4(127, 0, 0, 1)))
	client := authCert(t, "device-42", &ca, false)
	srv := authStart(t, Options{
		TLSCert: srvCert, TLSKey: srvKey, TLSClientCA: caFile, TLSPort: -1,
		UsersFile: authUsers(t),
		ACLFile:   authWriteFile(t, "acl", "device-42 write /queue/dev\nalice write #\n"),
	})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Leaf)
	dial := func() *authClient {
		nc, err := tls.DialWithDialer(&net.Dialer{Timeout: authTimeout}, "tcp", srv.TLSAddr().String(),
			&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{client}})
		if err != nil {
			t.Fatal(err)
		}
		return authClientOn(t, nc)
	}

	// No login in CONNECT: the certificate's common name is the login.
	c := dial()
	c.send(frame.CONNECT, "", "accept-version", "1.2", "host", "localhost", "heart-beat", "0,0")
	c.expect(frame.CONNECTED)
	c.send(frame.SEND, "x", "destination", "/queue/dev", "receipt", "r")
	c.expect(frame.RECEIPT)
	c.send(frame.SEND, "x", "destination", "/queue/other")
	c.expectError(`user "device-42" may not write to "/queue/other"`)

	// A login in CONNECT is checked as usual, certificate or not.
	c = dial()
	c.connect("alice", "wrong")
	c.expectError("access refused")
	c = dial()
	c.connect("alice", "wonderland")
	c.expect(frame.CONNECTED)
}
