package testutil

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

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
