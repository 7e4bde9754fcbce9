package frame

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unsafe"
)

// This file holds the driver shared by the golden tests, the fuzz targets and
// the benchmarks: it feeds a parser the way a connection does and checks the
// invariants of every result.

// allCommands lists every command the package knows.
var allCommands = []string{
	CONNECT, STOMP, CONNECTED, SEND, SUBSCRIBE, UNSUBSCRIBE, ACK, NACK,
	BEGIN, COMMIT, ABORT, DISCONNECT, MESSAGE, RECEIPT, ERROR, DIAG,
}

var allErrors = []error{
	ErrFrameTooLarge, ErrTooManyHeaders, ErrHeaderTooLong, ErrMalformedHeader,
	ErrEmptyHeaderName, ErrBadEscape, ErrBadContentLength, ErrMissingNUL,
	ErrMissingCommand, ErrBadCommandCharset,
}

// limits are the Parser limits of a test; zero fields mean the defaults.
type limits struct{ frame, headers, line int }

func newParser(v Version, l limits) *Parser {
	return &Parser{Version: v, MaxFrame: l.frame, MaxHeaders: l.headers, MaxHeaderLine: l.line}
}

// result is what a stream parsed to: its frames (copied), the error that
// ended it, and the bytes left unparsed (an incomplete frame) otherwise.
type result struct {
	frames []*Frame
	err    error
	rest   int
}

func (r result) String() string {
	var b strings.Builder
	for _, f := range r.frames {
		fmt.Fprintf(&b, "%s ", fmtFrame(f))
	}
	fmt.Fprintf(&b, "err=%v rest=%d", r.err, r.rest)
	return b.String()
}

func fmtFrame(f *Frame) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{%q", f.Command)
	for _, h := range f.Headers {
		fmt.Fprintf(&b, " %q:%q", h.Key, h.Value)
	}
	fmt.Fprintf(&b, " body=%q}", f.Body)
	return b.String()
}

func sameFrame(a, b *Frame) bool {
	if a.Command != b.Command || !bytes.Equal(a.Body, b.Body) || len(a.Headers) != len(b.Headers) {
		return false
	}
	for i := range a.Headers {
		if !bytes.Equal(a.Headers[i].Key, b.Headers[i].Key) || !bytes.Equal(a.Headers[i].Value, b.Headers[i].Value) {
			return false
		}
	}
	return true
}

// sameResult compares two results; what is left unparsed after an error
// (how much had been read when it was found) does not count.
func sameResult(a, b result) bool {
	if a.err != b.err || (a.err == nil && a.rest != b.rest) || len(a.frames) != len(b.frames) {
		return false
	}
	for i := range a.frames {
		if !sameFrame(a.frames[i], b.frames[i]) {
			return false
		}
	}
	return true
}

func cloneFrame(f *Frame) *Frame {
	c := &Frame{Command: f.Command, Body: bytes.Clone(f.Body)}
	if c.Body == nil {
		c.Body = []byte{}
	}
	for _, h := range f.Headers {
		c.Headers = append(c.Headers, Header{Key: bytes.Clone(h.Key), Value: bytes.Clone(h.Value)})
	}
	return c
}

// feed parses a stream that arrives in chunks, as a connection does: each
// chunk is appended to the pending bytes (so the buffer may move in memory)
// and Parse is called until it wants more. Every result is checked.
func feed(t testing.TB, p *Parser, chunks ...[]byte) result {
	t.Helper()
	var r result
	var buf []byte
	for _, c := range chunks {
		buf = append(buf, c...)
		for {
			f, n, err := p.Parse(buf)
			checkParse(t, p, buf, f, n, err)
			if err != nil {
				r.err = err
				r.rest = len(buf)
				return r
			}
			if n == 0 {
				break
			}
			if f != nil {
				r.frames = append(r.frames, cloneFrame(f))
			}
			buf = buf[n:]
		}
	}
	r.rest = len(buf)
	return r
}

// bytewise splits b into one-byte chunks.
func bytewise(b []byte) [][]byte {
	c := make([][]byte, len(b))
	for i := range b {
		c[i] = b[i : i+1]
	}
	return c
}

// within reports whether s lies inside buf in memory.
func within(buf, s []byte) bool {
	if len(s) == 0 {
		return true
	}
	b0 := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	s0 := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	return s0 >= b0 && s0+uintptr(len(s)) <= b0+uintptr(len(buf))
}

// checkParse checks the invariants of one Parse result.
func checkParse(t testing.TB, p *Parser, buf []byte, f *Frame, n int, err error) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("Parse(%q) = %v, %d, %v: %s", buf, f, n, err, fmt.Sprintf(format, args...))
	}
	if n < 0 || n > len(buf) {
		fail("n out of range")
	}
	if err != nil {
		var pe *Error
		if !errors.As(err, &pe) || f != nil || n != 0 {
			fail("an error must be a *Error with no frame and n == 0")
		}
		known := false
		for _, e := range allErrors {
			known = known || e == err
		}
		if !known {
			fail("unknown error value")
		}
		return
	}
	if f == nil {
		// Heart-beats: only EOLs are consumed.
		rest := buf[:n]
		for len(rest) > 0 {
			if rest[0] == '\n' {
				rest = rest[1:]
			} else if len(rest) > 1 && rest[0] == '\r' && rest[1] == '\n' {
				rest = rest[2:]
			} else {
				fail("consumed something other than EOLs")
			}
		}
		return
	}
	if n == 0 || buf[n-1] != 0 {
		fail("a frame must end with the NUL at buf[n-1]")
	}
	if n > limit(p.MaxFrame, DefaultMaxFrame) {
		fail("frame longer than MaxFrame")
	}
	if len(f.Headers) > limit(p.MaxHeaders, DefaultMaxHeaders) {
		fail("more than MaxHeaders headers")
	}
	if f.Command == "" {
		fail("empty command")
	}
	for _, c := range []byte(f.Command) {
		if c < 'A' || c > 'Z' {
			fail("command outside A-Z")
		}
	}
	if !within(buf[:n-1], f.Body) {
		fail("body outside the frame")
	}
	if len(f.Body) > 0 && unsafe.SliceData(f.Body) != &buf[n-1-len(f.Body)] {
		fail("body does not end at the NUL")
	}
	if cap(f.Body) != len(f.Body) {
		fail("body capacity reaches past the body")
	}
	for _, h := range f.Headers {
		if len(h.Key) == 0 {
			fail("empty header name")
		}
		if f.Plain && (NeedsEscape(h.Key) || NeedsEscape(h.Value)) {
			fail("Plain set for a header that needs escaping")
		}
		if !within(buf[:n], h.Key) || !within(buf[:n], h.Value) {
			fail("header outside the frame")
		}
	}
	if cl, ok := f.Get("content-length"); ok {
		if size, ok := parseLength(cl); !ok || size != int64(len(f.Body)) {
			fail("body length differs from content-length")
		}
	} else if bytes.IndexByte(f.Body, 0) >= 0 {
		fail("NUL inside a body without content-length")
	}
}
