package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// maxPasscode is the longest passcode bcrypt looks at; longer ones are
// refused rather than silently truncated.
const maxPasscode = 72

// dummyHash is compared against when the users file is empty, so that an
// unknown login costs a bcrypt comparison too. (With users, the hash of one
// of them serves, which has exactly their cost.)
var dummyHash = []byte("$2a$10$GJdavTzA67Edaoog/IgiKuWih4y22/np2o6UBPoj6S7d9/QfpynnS")

// The errors of a refused login. The client sees neither (the broker
// answers "access refused" to both, so that a client cannot tell which
// logins exist); the broker's log does.
var (
	errUnknownLogin  = fmt.Errorf("%w: unknown login", ErrRefused)
	errWrongPasscode = fmt.Errorf("%w: wrong passcode", ErrRefused)
)

// UsersFile is the built-in Authenticator: logins and bcrypt hashes read
// from a file, one "login:bcrypt-hash" per line; blank lines and lines
// starting with '#' are ignored, and a '#' field after the entry starts a
// comment. Hashes come from "stompica passwd LOGIN" (UsersFileLine) or
// "htpasswd -nB LOGIN" ("$2y$" hashes work too). A client with a verified TLS client certificate and no
// login is accepted as the certificate's common name, without an entry in
// the file.
//
// A login not in the file and a wrong passcode cost the same bcrypt work.
// Concurrent bcrypt comparisons are bounded (GOMAXPROCS), so a flood of
// CONNECTs queues up instead of starving the broker, and a passcode that
// bcrypt accepted is remembered (as a salted SHA-256 digest, one per user)
// so that a storm of reconnects with the same credentials costs one bcrypt
// comparison per user rather than one per connection. (Trade-off: someone
// who can read the broker's memory could brute-force these digests faster
// than bcrypt hashes.) Passcodes longer than bcrypt's 72 bytes are refused,
// never truncated.
//
// Reload reads the file again; a file that fails to load keeps the users
// in force. A UsersFile is safe for concurrent use.
type UsersFile struct {
	fileSource[userSet]
	// sem bounds concurrent bcrypt comparisons (each takes milliseconds of
	// CPU at cost 10, a quarter second at cost 12).
	sem chan struct{}
}

// userSet is one generation of the loaded file.
type userSet struct {
	users map[string][]byte // login -> bcrypt hash
	dummy []byte            // hash compared for unknown logins
	cache *verifyCache      // goes with users: replaced when they are
}

// LoadUsersFile reads the users file at path. Errors name the file and
// the line.
func LoadUsersFile(path string) (*UsersFile, error) {
	u := &UsersFile{sem: make(chan struct{}, max(runtime.GOMAXPROCS(0), 1))}
	if err := u.open(path, loadUserSet); err != nil {
		return nil, err
	}
	return u, nil
}

// Len returns the number of users loaded.
func (u *UsersFile) Len() int { return len(u.cur.Load().users) }

// loadUserSet reads a users file into a new generation (with an empty
// verification cache).
func loadUserSet(path string) (*userSet, error) {
	users, err := loadUsers(path)
	if err != nil {
		return nil, err
	}
	return &userSet{users: users, dummy: pickDummy(users), cache: newVerifyCache()}, nil
}

// Authenticate accepts c.Login with its passcode, or, when c.Login is
// empty, c.CertLogin (a verified certificate). It returns an error wrapping
// ErrRefused otherwise, or ctx's error when ctx ends while waiting for a
// turn at bcrypt.
func (u *UsersFile) Authenticate(ctx context.Context, c Credentials) (string, error) {
	if c.Login == "" && c.CertLogin != "" {
		return c.CertLogin, nil
	}
	ok, known, err := u.cur.Load().check(ctx, u.sem, c.Login, c.Passcode)
	switch {
	case err != nil:
		return "", err
	case ok:
		return c.Login, nil
	case known:
		return "", errWrongPasscode
	}
	return "", errUnknownLogin
}

// check reports whether passcode is login's password, and whether login is
// in the file. It spends a bcrypt comparison on unknown logins too. sem
// bounds concurrent bcrypt comparisons.
func (d *userSet) check(ctx context.Context, sem chan struct{}, login, passcode string) (ok, known bool, err error) {
	hash, known := d.users[login]
	if !known {
		hash = d.dummy
	}
	vc := d.cache
	digest := vc.digest(hash, passcode)
	if known && vc.hit(login, digest) {
		return true, true, nil
	}
	tooLong := len(passcode) > maxPasscode
	if tooLong {
		passcode = "" // still compare, but never accept a truncated match
	}
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return false, known, ctx.Err()
	}
	cmp := bcrypt.CompareHashAndPassword(hash, []byte(passcode))
	<-sem
	if cmp != nil || !known || tooLong {
		return false, known, nil
	}
	vc.remember(login, digest)
	return true, true, nil
}

// loadUsers reads a users file. Errors name the file and line.
func loadUsers(path string) (map[string][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	users := make(map[string][]byte)
	err = fileLines(data, func(n int, fields []string) error {
		bad := func(msg string) error {
			return fmt.Errorf("users file %s line %d: %s", path, n, msg)
		}
		if len(fields) > 1 && !strings.HasPrefix(fields[1], "#") {
			return bad("want login:bcrypt-hash, found white space inside the entry")
		}
		login, hash, ok := strings.Cut(fields[0], ":")
		if !ok {
			return bad("want login:bcrypt-hash, found no ':'")
		}
		if err := CheckLogin(login); err != nil {
			return bad(err.Error())
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return bad(fmt.Sprintf("login %q: not a bcrypt hash (%v); make one with 'stompica passwd %s'", login, err, login))
		}
		if _, dup := users[login]; dup {
			return bad(fmt.Sprintf("login %q appears twice", login))
		}
		users[login] = []byte(hash)
		return nil
	})
	if err != nil {
		return nil, err
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

// verifyCache remembers, per login, a salted SHA-256 of the last passcode
// that bcrypt accepted. It holds at most one entry per user of the file.
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

// hit reports whether digest is login's remembered one.
func (vc *verifyCache) hit(login string, digest [sha256.Size]byte) bool {
	vc.mu.Lock()
	prev, ok := vc.verified[login]
	vc.mu.Unlock()
	return ok && subtle.ConstantTimeCompare(prev[:], digest[:]) == 1
}

func (vc *verifyCache) remember(login string, digest [sha256.Size]byte) {
	vc.mu.Lock()
	vc.verified[login] = digest
	vc.mu.Unlock()
}
