// Package auth is the broker's authentication and authorization seam: who
// a client is (Authenticator) and what it may do (Authorizer).
//
// The broker (package server) calls an Authenticator once per CONNECT (and
// per HTTP request to /console and /metrics when HTTP auth is on), and an
// Authorizer on every SEND (Write), SUBSCRIBE (Read) and DIAG or console
// request (Admin). An embedder plugs in their own (LDAP, JWT, a database)
// through server.Options.Authenticator and server.Options.Authorizer.
//
// The built-in implementations are the users file (UsersFile: bcrypt
// hashes, "stompica passwd") and the ACL file (ACLFile: read, write and
// admin patterns per login). Both implement Reloader, which the broker's
// Reload (SIGHUP for the stompica command) calls.
//
// Destination patterns in ACL rules follow package sublist, which owns the
// pattern rules.
package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Credentials is what a client presents when it logs in.
type Credentials struct {
	// Login and Passcode are the CONNECT frame's login and passcode headers
	// (or the user and password of HTTP basic auth); "" when absent.
	Login, Passcode string
	// CertLogin is the subject common name of the client's TLS certificate
	// when the broker verified it against its client CA
	// (server.Options.TLSClientCA), "" otherwise.
	CertLogin string
	// Remote is the client's address ("host:port").
	Remote string
	// Transport is "tcp" (raw STOMP, over TLS or not), "ws" (STOMP over
	// WebSocket) or "http" (basic auth for /console and /metrics).
	Transport string
}

// Authenticator checks credentials.
//
// Authenticate returns the login that identifies the client from now on:
// the Authorizer is asked about it, logs and DIAG show it. It must not be
// empty; the broker refuses a client for which it is. A refused login
// returns an error that wraps ErrRefused; any other error (a directory that
// does not answer, ctx done) refuses the client too and is logged as a
// failure of the authenticator. The client only ever sees "access refused",
// after a delay that slows down password guessing.
//
// ctx ends when the client has waited too long (the broker's connect
// timeout) or the broker shuts down. Authenticate is called concurrently,
// from the connection's own goroutine: it may block (a network call), but
// the client waits for it.
type Authenticator interface {
	Authenticate(ctx context.Context, c Credentials) (login string, err error)
}

// ErrRefused is the error (wrapped or not) of a login that failed: unknown
// login, wrong passcode.
var ErrRefused = errors.New("access refused")

// Access is a kind of access to a destination.
type Access uint8

// The kinds of access. They are independent: Admin implies neither Read
// nor Write, and Read or Write never give Admin.
const (
	Read  Access = iota + 1 // SUBSCRIBE: receive from a destination or pattern
	Write                   // SEND (inside a transaction too): publish to a destination
	Admin                   // DIAG, the console, /metrics (and a future management API)
)

// String returns "read", "write" or "admin".
func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case Admin:
		return "admin"
	}
	return fmt.Sprintf("Access(%d)", uint8(a))
}

// parseAccess is the inverse of String.
func parseAccess(s string) (Access, bool) {
	for a := Read; a <= Admin; a++ {
		if s == a.String() {
			return a, true
		}
	}
	return 0, false
}

// Authorizer decides what a client may do.
//
// Authorize reports whether login (what the Authenticator returned; "" for
// a client of a broker without authentication) may use dest for a:
//
//   - Write: dest is the destination of a SEND, never a pattern.
//   - Read: dest is the destination of a SUBSCRIBE, which may be a pattern
//     ("*", ">", "#" segments, package sublist). Allow a pattern only when
//     every destination it matches is allowed; sublist.Covers answers that
//     for a rule written as a pattern.
//   - Admin: dest is "DIAG" for DIAG frames and SENDs to "DIAG..."
//     destinations, or the request path for HTTP ("/metrics", "/console",
//     "/console/api", "/debug/pprof/...").
//
// It is called on every SEND, from many goroutines at once, so it must be
// fast and safe for concurrent use; it should not block.
type Authorizer interface {
	Authorize(login string, a Access, dest string) bool
}

// Reloader is implemented by an Authenticator or Authorizer that can read
// its source again (the broker's Reload, SIGHUP). Reload must keep the
// version in force when the new one fails to load, and return why.
// Connections already logged in stay logged in.
type Reloader interface {
	Reload() error
}

// CheckLogin reports why login cannot be a login of the users file or the
// ACL, or nil: it must be non-empty UTF-8 without ':', white space or
// control characters, must not start with '#' (a comment) and must not be
// "*" (the ACL's any-login).
func CheckLogin(login string) error {
	switch {
	case login == "":
		return fmt.Errorf("empty login")
	case login == "*":
		return fmt.Errorf(`login "*" is reserved (it means any login in the ACL)`)
	case strings.HasPrefix(login, "#"):
		return fmt.Errorf("login %q starts with '#'", login)
	case !utf8.ValidString(login):
		return fmt.Errorf("login %q is not UTF-8", login)
	case strings.ContainsRune(login, ':'):
		return fmt.Errorf("login %q contains ':'", login)
	case strings.IndexFunc(login, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("login %q contains white space or control characters", login)
	}
	return nil
}

// fileLines calls line for each line of data that is not blank or a '#'
// comment, with its 1-based number and its white-space separated fields.
func fileLines(data []byte, line func(n int, fields []string) error) error {
	for i, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if err := line(i+1, f); err != nil {
			return err
		}
	}
	return nil
}
