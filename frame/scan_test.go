package frame

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestIndex3 checks the word-at-a-time search against a plain loop, for
// every start offset and every position of the byte sought, over bytes
// chosen to confuse it: those sought, their neighbours, 0x00, 0x80, 0xff.
func TestIndex3(t *testing.T) {
	naive := func(buf []byte, from int, a, b, c byte) int {
		for i := from; i < len(buf); i++ {
			if buf[i] == a || buf[i] == b || buf[i] == c {
				return i
			}
		}
		return -1
	}
	alphabet := []byte{':', '\n', '\\', ':' - 1, ':' + 1, '\n' - 1, '\n' + 1, '\\' + 1, 0, 0x80, 0xff, 0x01, 'a'}
	r := rand.New(rand.NewPCG(1, 2))
	checked := 0
	for n := 0; n <= 40; n++ {
		for range 200 {
			buf := make([]byte, n)
			for i := range buf {
				buf[i] = alphabet[r.IntN(len(alphabet))]
			}
			for from := 0; from <= n; from++ {
				if got, want := index3(buf, from, ':', '\n', '\\'), naive(buf, from, ':', '\n', '\\'); got != want {
					t.Fatalf("index3(%q, %d) = %d, want %d", buf, from, got, want)
				}
				if got, want := index3(buf, from, '\n', '\\', '\n'), naive(buf, from, '\n', '\\', '\n'); got != want {
					t.Fatalf("index3(%q, %d, LF or backslash) = %d, want %d", buf, from, got, want)
				}
				checked++
			}
		}
	}
	if checked < 100000 {
		t.Fatalf("only %d cases", checked)
	}
}

// TestScanLine checks the one-pass line scan against the separate searches
// the parser makes for a line it has seen in part.
func TestScanLine(t *testing.T) {
	alphabet := []byte{':', '\n', '\\', '\r', 'k', 'v', 0, 0xff}
	r := rand.New(rand.NewPCG(3, 4))
	for n := 0; n <= 80; n++ {
		for range 300 {
			buf := make([]byte, n)
			for i := range buf {
				// Mostly plain bytes, so that long lines occur.
				if r.IntN(6) == 0 {
					buf[i] = alphabet[r.IntN(len(alphabet))]
				} else {
					buf[i] = 'a' + byte(r.IntN(26))
				}
			}
			for _, escaped := range []bool{false, true} {
				eol, colon, bs := scanLine(buf, 0, escaped)
				wantEOL := bytes.IndexByte(buf, '\n')
				if eol != wantEOL {
					t.Fatalf("scanLine(%q): eol %d, want %d", buf, eol, wantEOL)
				}
				if eol < 0 {
					continue
				}
				line := buf[:eol]
				wantColon := bytes.IndexByte(line, ':')
				wantBS := escaped && bytes.IndexByte(line, '\\') >= 0
				if colon != wantColon || (colon >= 0 && bs != wantBS) {
					t.Fatalf("scanLine(%q, %v) = %d, %d, %v; want colon %d, backslash %v", buf, escaped, eol, colon, bs, wantColon, wantBS)
				}
			}
		}
	}
}

// TestNeedsEscape checks the word-at-a-time NeedsEscape against a plain
// loop, for strings and byte slices of every length up to 40, over bytes
// chosen to confuse it.
func TestNeedsEscape(t *testing.T) {
	naive := func(b []byte) bool {
		for _, c := range b {
			if c == '\\' || c == '\n' || c == ':' || c == '\r' {
				return true
			}
		}
		return false
	}
	alphabet := []byte{':', '\n', '\\', '\r', ':' - 1, ':' + 1, '\n' - 1, '\n' + 1, '\\' + 1, '\r' + 1, 0, 0x80, 0xff, 0x01, 'a'}
	r := rand.New(rand.NewPCG(5, 6))
	found := 0
	for n := 0; n <= 40; n++ {
		for range 500 {
			buf := make([]byte, n)
			for i := range buf {
				if r.IntN(n+1) == 0 {
					buf[i] = alphabet[r.IntN(len(alphabet))]
				} else {
					buf[i] = alphabet[4+r.IntN(len(alphabet)-4)]
				}
			}
			want := naive(buf)
			if got := NeedsEscape(buf); got != want {
				t.Fatalf("NeedsEscape(%q) = %v, want %v", buf, got, want)
			}
			if got := NeedsEscape(string(buf)); got != want {
				t.Fatalf("NeedsEscape(string %q) = %v, want %v", buf, got, want)
			}
			if want {
				found++
			}
		}
	}
	if found < 2000 || found > 18000 {
		t.Fatalf("%d of 20500 cases need escaping: the cases are not mixed", found)
	}
}

// TestMatchLine checks the exact word-at-a-time match of the whole-frame
// path against a plain loop, on words of bytes chosen to confuse it: every
// byte sought must be marked, and nothing else.
func TestMatchLine(t *testing.T) {
	alphabet := []byte{':', '\n', '\\', '\r', ':' - 1, ':' + 1, '\n' - 1, '\n' + 1, '\\' + 1, '\r' + 1, 0, 0x80, 0xff, 0x01, 0x7f, 0xba, 0x8a, 'a'}
	r := rand.New(rand.NewPCG(7, 8))
	for range 200000 {
		var w [8]byte
		var want uint64
		for i := range w {
			w[i] = alphabet[r.IntN(len(alphabet))]
			if c := w[i]; c == ':' || c == '\\' || c <= '\r' {
				want |= 0x80 << (8 * i)
			}
		}
		if got := matchLine(binary.LittleEndian.Uint64(w[:])); got != want {
			t.Fatalf("matchLine(%q) = %#x, want %#x", w, got, want)
		}
	}
}
