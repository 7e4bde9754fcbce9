package testutil

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

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
