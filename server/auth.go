package server

// Authentication: the users file, CONNECT's login and passcode, TLS client
// certificates, HTTP basic auth for /console and /metrics.
//
// Authentication is on when Options.UsersFile is set and off otherwise
// (anonymous access, as for local development). The users file has one
// "login:bcrypt-hash" per line; blank lines and lines starting with '#' are
// ignored, and a '#' field after the entry starts a comment. Hashes come
// from "stompica passwd LOGIN" (or "htpasswd -nB LOGIN": "$2y$" hashes work
// too).
//
// Authorization (per-destination access, the ACL file) is in acl.go.
// Server.Reload (SIGHUP for the stompica command) reads both files again;
// a file that fails to load keeps its old version.

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// Access kinds checked by the authorizer.
const (
	accessRead  = "read"  // SUBSCRIBE
	accessWrite = "write" // SEND
	accessAdmin = "admin" // DIAG, console data
)

// authFailDelay is how long a failed login waits before it is answered, to
// slow down password guessing. A variable so that tests can shorten it.
var authFailDelay = 300 * time.Millisecond

// errAccessRefused answers every failed login, whether the login is unknown
// or the passcode wrong, so that a client cannot tell which logins exist.
const errAccessRefused = protoError("access refused")

// maxPasscode is the longest passcode bcrypt looks at; longer ones are
// refused rather than silently truncated.
const maxPasscode = 72

// dummyHash is compared against when the users file is empty, so that an
// unknown login costs a bcrypt comparison too. (With users, the hash of one
// of them serves, which has exactly their cost.)
var dummyHash = []byte("$2a$10$GJdavTzA67Edaoog/IgiKuWih4y22/np2o6UBPoj6S7d9/QfpynnS")

// authState is a Server's loaded users file and ACL. The files are read
// at New and again by Reload, which swaps in a new authData: a CONNECT or
// SEND sees either the old files or the new ones, never a mix.
type authState struct {
	once sync.Once
	err  error // loading failed at startup: every login and every access is refused

	cur atomic.Pointer[authData]

	// sem bounds concurrent bcrypt comparisons (each takes milliseconds of
	// CPU at cost 10, a quarter second at cost 12), so a flood of CONNECTs
	// queues up instead of starving the broker.
	sem chan struct{}
}

// authData is one generation of the loaded files.
type authData struct {
	users map[string][]byte // login -> bcrypt hash; nil: authentication off
	dummy []byte            // hash compared for unknown logins
	acl   *acl              // nil: authorization off
	cache *verifyCache      // goes with users: replaced when they are
}

// verifyCache remembers, per login, a salted SHA-256 of the last passcode
// that bcrypt accepted, so that a storm of reconnects with the same
// credentials costs one bcrypt comparison per user rather than one per
// connection. It holds at most one entry per user of the file. (Trade-off:
// someone who can read the broker's memory could brute-force these digests
// faster than bcrypt hashes.)
type verifyCache struct {
	mu       sync.Mutex
	salt     [32]byte
	verified map[string][sha256.Size]byte
}

func newVerifyCache() *verifyCache {
	vc := &verifyCache{verified: make(map[string][sha256.Size]byte)}
	rand.Read(vc.salt[:])
	return vc
}

func (s *Server) authState() *authState {
	st := &s.authSt
	st.once.Do(func() { st.load(s.opts.UsersFile, s.opts.ACLFile) })
	return st
}

// data returns the files loaded now (empty when loading failed).
func (st *authState) data() *authData { return st.cur.Load() }

// initAuth loads the users file and the ACL (Options.UsersFile and
// ACLFile). New calls it so that a bad file fails at startup, naming the
// file and line; otherwise the files load on the first CONNECT, and a
// loading error then refuses every login.
func (s *Server) initAuth() error {
	return s.authState().err
}

func (st *authState) load(usersFile, aclFile string) {
	st.sem = make(chan struct{}, max(runtime.GOMAXPROCS(0), 1))
	d := &authData{}
	defer st.cur.Store(d)
	if usersFile != "" {
		users, err := loadUsers(usersFile)
		if err != nil {
			st.err = err
			return
		}
		d.users, d.dummy, d.cache = users, pickDummy(users), newVerifyCache()
	}
	if aclFile != "" {
		a, err := loadACL(aclFile)
		if err != nil {
			st.err = err
			return
		}
		d.acl = a
	}
}

// reloadAuth reads the users file and the ACL file again (those that are
// configured). A file that fails to load leaves its old version in force;
// the error says which file and why. Logins and access checks that follow
// use the new files; connections already logged in stay connected, and
// their existing subscriptions stay.
func (s *Server) reloadAuth() error {
	o := s.opts
	if o.UsersFile == "" && o.ACLFile == "" {
		return nil
	}
	st := s.authState()
	if st.err != nil {
		// Not reachable through New, which fails on a bad file; kept for
		// safety: nothing old to keep, so stay refusing.
		return st.err
	}
	old := st.data()
	d := *old
	var errs []error
	if o.UsersFile != "" {
		if users, err := loadUsers(o.UsersFile); err != nil {
			s.log.Warn("reload: keeping the old users file", "file", o.UsersFile, "err", err)
			errs = append(errs, err)
		} else {
			d.users, d.dummy, d.cache = users, pickDummy(users), newVerifyCache()
			s.log.Info("reload: users file loaded", "file", o.UsersFile, "users", len(users))
		}
	}
	if o.ACLFile != "" {
		if a, err := loadACL(o.ACLFile); err != nil {
			s.log.Warn("reload: keeping the old ACL file", "file", o.ACLFile, "err", err)
			errs = append(errs, err)
		} else {
			d.acl = a
			s.log.Info("reload: ACL file loaded", "file", o.ACLFile, "rules", len(a.rules))
		}
	}
	st.cur.Store(&d)
	return errors.Join(errs...)
}

// loadUsers reads a users file: "login:bcrypt-hash" per line, blank lines
// and '#' comment lines ignored. Errors name the file and line.
func loadUsers(path string) (map[string][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("stompica: users file: %w", err)
	}
	users := make(map[string][]byte)
	for n, line := range strings.Split(string(data), "\n") {
		bad := func(msg string) error {
			return fmt.Errorf("stompica: users file %s line %d: %s", path, n+1, msg)
		}
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) > 1 && !strings.HasPrefix(fields[1], "#") {
			return nil, bad("want login:bcrypt-hash, found white space inside the entry")
		}
		login, hash, ok := strings.Cut(fields[0], ":")
		if !ok {
			return nil, bad("want login:bcrypt-hash, found no ':'")
		}
		if err := CheckLogin(login); err != nil {
			return nil, bad(err.Error())
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, bad(fmt.Sprintf("login %q: not a bcrypt hash (%v); make one with 'stompica passwd %s'", login, err, login))
		}
		if _, dup := users[login]; dup {
			return nil, bad(fmt.Sprintf("login %q appears twice", login))
		}
		users[login] = []byte(hash)
	}
	return users, nil
}

// pickDummy returns the hash of a user with the most common cost, so that
// an unknown login takes as long to refuse as a known one.
func pickDummy(users map[string][]byte) []byte {
	count := map[int]int{}
	var best []byte
	bestCost := 0
	for _, h := range users {
		c, _ := bcrypt.Cost(h)
		count[c]++
		if best == nil || count[c] > count[bestCost] || count[c] == count[bestCost] && c > bestCost {
			best, bestCost = h, c
		}
	}
	if best == nil {
		return dummyHash
	}
	return best
}

// CheckLogin reports why login cannot be a login of the users file, or nil:
// it must be non-empty UTF-8 without ':', white space or control
// characters, must not start with '#' (a comment) and must not be "*" (the
// ACL's any-login).
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

// UsersFileLine returns the users-file line for login and password (bcrypt
// at cost; 0 means 12). It is what "stompica passwd" prints.
func UsersFileLine(login string, password []byte, cost int) (string, error) {
	if err := CheckLogin(login); err != nil {
		return "", err
	}
	if len(password) == 0 {
		return "", fmt.Errorf("empty password")
	}
	if len(password) > maxPasscode {
		return "", fmt.Errorf("password longer than %d bytes (bcrypt's limit)", maxPasscode)
	}
	if cost == 0 {
		cost = 12
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return "", fmt.Errorf("cost %d outside %d..%d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	hash, err := bcrypt.GenerateFromPassword(password, cost)
	if err != nil {
		return "", err
	}
	return login + ":" + string(hash), nil
}

// authenticate checks a CONNECT's login and passcode. Without a users file
// everyone is let in (anonymous access). With one, a login not in the file
// and a wrong passcode get the same "access refused", after the same
// bcrypt work and a delay of authFailDelay.
//
// certVerified says that login is the common name of a TLS client
// certificate verified against Options.TLSClientCA (CONNECT named no
// login); such a login needs no passcode and no entry in the users file.
// certVerified is variadic only so that the call site can start passing it
// independently; it is meant to become a plain bool.
func (s *Server) authenticate(login, passcode string, certVerified bool) error {
	if s.opts.UsersFile == "" && s.opts.ACLFile == "" {
		return nil
	}
	st := s.authState()
	if st.err != nil {
		s.log.Error("login refused: users or ACL file not loaded", "err", st.err)
		return errAccessRefused
	}
	d := st.data()
	if d.users == nil {
		return nil
	}
	if certVerified && login != "" && s.opts.TLSClientCA != "" {
		return nil
	}
	if ok, known := d.check(st.sem, login, passcode); ok {
		return nil
	} else if known {
		s.log.Info("login refused: wrong passcode", "login", login)
	} else {
		s.log.Info("login refused: unknown login", "login", login)
	}
	time.Sleep(authFailDelay)
	return errAccessRefused
}

// check reports whether passcode is login's password, and whether login is
// in the users file. It spends a bcrypt comparison on unknown logins too.
// sem bounds concurrent bcrypt comparisons (authState.sem).
func (d *authData) check(sem chan struct{}, login, passcode string) (ok, known bool) {
	hash, known := d.users[login]
	if !known {
		hash = d.dummy
	}
	vc := d.cache
	digest := vc.digest(hash, passcode)
	if known {
		vc.mu.Lock()
		prev, hit := vc.verified[login]
		vc.mu.Unlock()
		if hit && subtle.ConstantTimeCompare(prev[:], digest[:]) == 1 {
			return true, true
		}
	}
	tooLong := len(passcode) > maxPasscode
	if tooLong {
		passcode = "" // still compare, but never accept a truncated match
	}
	sem <- struct{}{}
	err := bcrypt.CompareHashAndPassword(hash, []byte(passcode))
	<-sem
	if err != nil || !known || tooLong {
		return false, known
	}
	vc.mu.Lock()
	vc.verified[login] = digest
	vc.mu.Unlock()
	return true, true
}

func (vc *verifyCache) digest(hash []byte, passcode string) [sha256.Size]byte {
	h := sha256.New()
	h.Write(vc.salt[:])
	h.Write(hash)
	h.Write([]byte{0})
	h.Write([]byte(passcode))
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// checkHTTPAuth reports whether the HTTP request may see /console and
// /metrics: always when Options.HTTPAuth is off; otherwise when it carries
// HTTP basic auth of a user of the users file and, with an ACL, that user
// has admin access to the request path (a rule such as "prom admin /metrics",
// "ops admin /console/#" for the console page and its /console/api, or
// "root admin #"). HTTPAuth without a users file refuses everything.
func (s *Server) checkHTTPAuth(r *http.Request) bool {
	if !s.opts.HTTPAuth {
		return true
	}
	st := s.authState()
	d := st.data()
	if st.err != nil || d.users == nil {
		return false
	}
	login, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	if good, _ := d.check(st.sem, login, pass); !good {
		s.log.Info("HTTP login refused", "login", login, "path", r.URL.Path)
		time.Sleep(authFailDelay)
		return false
	}
	return s.authorize(login, accessAdmin, r.URL.Path) == nil
}

// authWarnings logs what is unsafe or inconsistent in the authentication
// and authorization settings. Start calls it.
func (s *Server) authWarnings() {
	o := s.opts
	st := s.authState()
	if st.err != nil {
		s.log.Error("users or ACL file not loaded: every login is refused", "err", st.err)
		return
	}
	public := !isLoopbackHost(o.Host)
	if o.UsersFile == "" && public {
		s.log.Warn("authentication is off (no users file) and the broker listens beyond loopback: anyone who reaches the port can connect, publish and subscribe",
			"host", o.Host)
	}
	if o.UsersFile != "" && len(st.data().users) == 0 {
		s.log.Warn("the users file has no users: nobody can log in but clients with a verified TLS certificate", "file", o.UsersFile)
	}
	if o.ACLFile != "" && o.UsersFile == "" {
		s.log.Warn("an ACL without a users file checks logins that nobody verified: clients can claim any login",
			"acl", o.ACLFile)
	}
	if o.HTTPAuth && o.UsersFile == "" {
		s.log.Warn("HTTP auth needs a users file: /console and /metrics refuse every request")
	}
	if !o.HTTPAuth && o.UsersFile != "" && public {
		s.log.Warn("HTTP auth is off: /console and /metrics are open to anyone who reaches the port", "host", o.Host)
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
