// Package testutil holds what the tests of several packages (server, e2e,
// cmd/stompica) share: one polling helper, and a minimal reader of STOMP
// frames for their raw test clients. Only tests import it.
package testutil

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// PollEvery is how long WaitFor sleeps between two looks.
const PollEvery = 5 * time.Millisecond

// Poll calls done every pause until it returns true (Poll returns true) or
// timeout has passed (Poll returns false). Every test that waits for a
// state it cannot be told about polls through it; waits for time itself to
// pass (a TTL, heart-beat intervals) sleep instead.
func Poll(timeout, pause time.Duration, done func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
	}
	return true
}

// WaitFor polls cond every PollEvery until it holds, failing the test
// after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, PollEvery, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// ReadFrame reads the next STOMP frame from r, skipping the heart-beat
// EOLs before it: its command, its headers (the first of a repeated one
// wins, as in STOMP 1.2; no unescaping) and its body up to the NUL (no
// content-length: test frames carry no NUL in their bodies).
func ReadFrame(r *bufio.Reader) (cmd string, hdr map[string]string, body string, err error) {
	s, err := r.ReadString(0)
	if err != nil {
		return "", nil, s, err
	}
	s = strings.TrimLeft(strings.TrimSuffix(s, "\x00"), "\r\n")
	head, body, _ := strings.Cut(s, "\n\n")
	lines := strings.Split(head, "\n")
	hdr = make(map[string]string, len(lines)-1)
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok {
			if _, dup := hdr[k]; !dup {
				hdr[k] = v
			}
		}
	}
	return lines[0], hdr, body, nil
}

// RandPattern returns a random destination pattern of one to five
// segments over a small alphabet ("a", "b", "c"), with the wildcards "*",
// ">" and "#" among them when wild: for property tests of pattern rules
// (sublist, and the ACL built on it).
func RandPattern(r *rand.Rand, wild bool) string {
	segs := []string{"a", "b", "c"}
	if wild {
		segs = append(segs, "*", ">", "#", "*", "#")
	}
	out := make([]string, 1+r.IntN(5))
	for i := range out {
		out[i] = segs[r.IntN(len(segs))]
	}
	return strings.Join(out, "/")
}

// Dial connects to addr over TCP within timeout, failing the test when it
// cannot; the connection is closed when the test ends.
func Dial(t testing.TB, addr string, timeout time.Duration) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// WriteFile writes content to a file named name in a fresh temporary
// directory of the test, and returns its path.
func WriteFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// bcryptHashes caches BcryptHash's answers.
var bcryptHashes sync.Map

// BcryptHash returns a bcrypt hash of password at the minimum cost (for a
// users file), the same one for the same password within a test binary.
func BcryptHash(t testing.TB, password string) string {
	t.Helper()
	if h, ok := bcryptHashes.Load(password); ok {
		return h.(string)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	bcryptHashes.Store(password, string(h))
	return string(h)
}

// SyncBuffer is a bytes.Buffer that one goroutine may write (a logger, a
// command's output) while another reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
