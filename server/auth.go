package server

// Authentication glue: CONNECT's login and passcode, TLS client
// certificates and HTTP basic auth for /console and /metrics all go through
// one auth.Authenticator; access checks (acl.go) through one
// auth.Authorizer.
//
// Options.Authenticator and Options.Authorizer plug in an embedder's own.
// Left nil, they are the users file (Options.UsersFile, auth.UsersFile) and
// the ACL file (Options.ACLFile, auth.ACLFile) when those are set, and off
// otherwise: anonymous access, everything allowed, as for local
// development. Server.Reload (SIGHUP for the stompica command) reloads
// those that implement auth.Reloader; a file that fails to load keeps its
// old version.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/stompica/stompica/auth"
	"github.com/stompica/stompica/frame"
)

// authFailDelay is how long a refused login waits before it is answered,
// whatever the Authenticator, to slow down password guessing. A variable
// so that tests can shorten it.
var authFailDelay = 300 * time.Millisecond

// msgAccessRefused answers every refused login, whether the login is
// unknown, the passcode wrong or the Authenticator failed, so that a client
// cannot tell which logins exist.
const msgAccessRefused = "access refused"

// initAuth sets the Server's Authenticator and Authorizer from Options,
// loading the users file and the ACL file when those are configured. New
// calls it, so a bad file fails at startup, naming the file and the line.
func (s *Server) initAuth() error {
	o := &s.opts
	if o.UsersFile != "" && o.Authenticator != nil {
		return errors.New("stompica: Options.UsersFile and Options.Authenticator are both set; use one")
	}
	if o.ACLFile != "" && o.Authorizer != nil {
		return errors.New("stompica: Options.ACLFile and Options.Authorizer are both set; use one")
	}
	s.authn, s.authz = o.Authenticator, o.Authorizer
	if o.UsersFile != "" {
		u, err := auth.LoadUsersFile(o.UsersFile)
		if err != nil {
			return fmt.Errorf("stompica: %w", err)
		}
		s.authn = u
	}
	if o.ACLFile != "" {
		a, err := auth.LoadACLFile(o.ACLFile)
		if err != nil {
			return fmt.Errorf("stompica: %w", err)
		}
		s.authz = a
	}
	return nil
}

// credentials are what the CONNECT frame f and the connection present.
func (c *conn) credentials(f *frame.Frame) auth.Credentials {
	cr := auth.Credentials{
		Login:     f.GetString("login"),
		Passcode:  f.GetString("passcode"),
		CertLogin: c.certLogin(),
		Remote:    c.remote,
		Transport: "tcp",
	}
	if c.ws != nil {
		cr.Transport = "ws"
	}
	return cr
}

// authenticate returns the login of a client presenting cr, or a login
// error "access refused" (wrapping the Authenticator's error, if any) after
// authFailDelay. Without an Authenticator everyone
// is let in as the login they name (or their certificate's name).
func (s *Server) authenticate(ctx context.Context, cr auth.Credentials) (string, error) {
	if s.opts.TLSClientCA == "" {
		cr.CertLogin = "" // nothing can have been verified
	}
	if s.authn == nil {
		if cr.Login == "" {
			return cr.CertLogin, nil
		}
		return cr.Login, nil
	}
	if t := s.opts.ConnectTimeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	login, err := s.authn.Authenticate(ctx, cr)
	if err == nil && login != "" {
		return login, nil
	}
	who := []any{"login", cr.Login, "transport", cr.Transport, "peer", cr.Remote}
	if cr.CertLogin != "" {
		who = append(who, "cert_login", cr.CertLogin)
	}
	switch {
	case err == nil:
		s.log.Warn("login refused: the authenticator returned an empty login", who...)
	case errors.Is(err, auth.ErrRefused):
		s.log.Info("login refused", append(who, "reason", err)...)
	default:
		s.log.Warn("login refused: the authenticator failed", append(who, "err", err)...)
	}
	if ctx.Err() == nil {
		time.Sleep(authFailDelay)
	}
	return "", loginErr(msgAccessRefused, err)
}

// httpAccess decides an HTTP request to /console, /metrics, /api/ and
// the rest but /healthz. It returns the login and 0 when the request may
// proceed, 401 when it needs (other) credentials, 403 when the login may
// not: with authentication off everything is allowed (but with
// Options.HTTPAuth, which refuses everything); with authentication on the
// request needs HTTP basic auth that the Authenticator accepts and, with an
// Authorizer, that login needs admin access to the request path (an ACL
// rule such as "ops admin #" for everything, "prom admin /metrics" for
// scraping only, "ops admin /console/#" with "ops admin /api/#" for the
// console and its actions). A successful login is remembered for
// loginCacheTTL, so the console's polls do not each pay a bcrypt check.
func (s *Server) httpAccess(r *http.Request) (string, int) {
	if s.authn == nil {
		if s.opts.HTTPAuth {
			return "", http.StatusUnauthorized
		}
		return "", 0
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", http.StatusUnauthorized
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	login, ok := s.admin.httpLogin.get(ip, user, pass)
	if !ok {
		var err error
		login, err = s.authenticate(r.Context(), auth.Credentials{Login: user, Passcode: pass,
			Remote: r.RemoteAddr, Transport: "http"})
		if err != nil {
			return "", http.StatusUnauthorized
		}
		s.admin.httpLogin.put(ip, user, pass, login)
	}
	if s.authorize(login, auth.Admin, r.URL.Path) != nil {
		return login, http.StatusForbidden
	}
	return login, 0
}

// reloadAuth reloads the Authenticator and the Authorizer that implement
// auth.Reloader (the users and ACL files do). One that fails keeps its old
// version in force; the error says which and why. Logins and access checks
// that follow use the new version; connections already logged in stay
// connected, and their existing subscriptions stay.
func (s *Server) reloadAuth() error {
	s.admin.httpLogin.forget()
	var errs []error
	for i, p := range []any{s.authn, s.authz} {
		r, ok := p.(auth.Reloader)
		if !ok || i == 1 && samePlugin(s.authn, s.authz) {
			continue
		}
		what, args := "authenticator", []any{}
		if i == 1 {
			what = "authorizer"
		}
		switch p := p.(type) {
		case *auth.UsersFile:
			what, args = "users file", []any{"file", p.Path()}
		case *auth.ACLFile:
			what, args = "ACL file", []any{"file", p.Path()}
		}
		if err := r.Reload(); err != nil {
			s.log.Warn("reload: keeping the old "+what, append(args, "err", err)...)
			errs = append(errs, err)
			continue
		}
		switch p := p.(type) {
		case *auth.UsersFile:
			args = append(args, "users", p.Len())
		case *auth.ACLFile:
			args = append(args, "rules", p.Len())
		}
		s.log.Info("reload: "+what+" loaded", args...)
	}
	return errors.Join(errs...)
}

// samePlugin reports whether a and b are the same value (one object that
// serves as both Authenticator and Authorizer is reloaded once).
func samePlugin(a, b any) bool {
	if a == nil || b == nil || !reflect.TypeOf(a).Comparable() || reflect.TypeOf(a) != reflect.TypeOf(b) {
		return false
	}
	return a == b
}

// authWarnings logs what is unsafe or inconsistent in the authentication
// and authorization settings. Start calls it.
func (s *Server) authWarnings() {
	o := s.opts
	public := !isLoopbackHost(o.Host)
	if s.authn == nil && public {
		s.log.Warn("authentication is off (no users file) and the broker listens beyond loopback: anyone who reaches the port can connect, publish and subscribe",
			"host", o.Host)
	}
	if u, ok := s.authn.(*auth.UsersFile); ok && u.Len() == 0 {
		s.log.Warn("the users file has no users: nobody can log in but clients with a verified TLS certificate", "file", u.Path())
	}
	if s.authz != nil && s.authn == nil {
		args := []any{}
		if a, ok := s.authz.(*auth.ACLFile); ok {
			args = append(args, "acl", a.Path())
		}
		s.log.Warn("an ACL without a users file checks logins that nobody verified: clients can claim any login", args...)
	}
	if o.HTTPAuth && s.authn == nil {
		s.log.Warn("HTTP auth needs a users file (or an Authenticator): /console, /metrics and /api/ refuse every request")
	}
	if o.MetricsPublic && s.authn != nil && public {
		s.log.Warn("/metrics is public (--metrics-public): anyone who reaches the port can scrape it", "host", o.Host)
	}
}

// isLoopbackHost reports whether host ("" = all interfaces) names only the
// loopback interface.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
