package frame

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
)

// vset is a set of protocol versions a golden case applies to.
type vset uint8

const (
	v10  vset = 1 << Version10
	v11  vset = 1 << Version11
	v12  vset = 1 << Version12
	vAll      = v10 | v11 | v12
)

// parseCase is one golden parse case: the bytes of a stream, and the frames,
// error and unparsed byte count it must give for the versions in vers,
// whatever the reads it arrives in.
type parseCase struct {
	name string
	vers vset // 0 means all versions
	lim  limits
	in   string
	want []*Frame
	err  error
	rest int      // bytes of an incomplete frame left at the end (no error)
	get  []string // key, value pairs that Get must give on the first frame
}

// fr builds an expected frame: command, body, then key, value pairs.
func fr(cmd, body string, kv ...string) *Frame {
	f := &Frame{Command: cmd, Body: []byte(body)}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Headers = append(f.Headers, Header{Key: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return f
}

func frames(f ...*Frame) []*Frame { return f }

// Frames used to test limits at their exact boundary.
const (
	limNoLen   = "SEND\n\n12345\x00"                         // 12 bytes
	limWithLen = "SEND\ncontent-length:5\n\n1\x002\x003\x00" // 29 bytes
	limHeaders = "SEND\na:1\nb:2\nc:3\n\n\x00"
	limLine    = "SEND\nk:12345678\n\n\x00"           // header line of 10 bytes
	limLineCR  = "SEND\r\nk:12345678\r\n\r\n\x00"     // the same with CRLF
	escInput   = "SEND\nk\\ck:a\\\\b\\nc\\cd\n\n\x00" // k\ck:a\\b\nc\cd
	crEscInput = "SEND\nk:a\\rb\n\n\x00"              // k:a\rb
)

func goldenParseCases() []parseCase {
	var cases []parseCase
	add := func(c ...parseCase) { cases = append(cases, c...) }

	// Every command, with and without headers and body.
	for _, c := range allCommands {
		add(parseCase{name: "command/" + c, in: c + "\n\n\x00", want: frames(fr(c, ""))})
		add(parseCase{name: "command+headers/" + c, in: c + "\nid:1\nx:y\n\nbody\x00",
			want: frames(fr(c, "body", "id", "1", "x", "y"))})
	}
	add(
		parseCase{name: "command/unknown", in: "FOO\n\n\x00", want: frames(fr("FOO", ""))},
		parseCase{name: "command/unknown-headers", in: "XYZZY\nk:v\n\nb\x00", want: frames(fr("XYZZY", "b", "k", "v"))},
		parseCase{name: "command/lowercase", in: "send\n\n\x00", err: ErrBadCommandCharset},
		parseCase{name: "command/digit", in: "SEND2\n\n\x00", err: ErrBadCommandCharset},
		parseCase{name: "command/space", in: "SEND \n\n\x00", err: ErrBadCommandCharset},
		parseCase{name: "command/leading-cr", in: "\rSEND\n\n\x00", err: ErrBadCommandCharset},
		parseCase{name: "command/cr-cr-lf", in: "SEND\r\r\n\n\x00", err: ErrBadCommandCharset},
		parseCase{name: "command/utf8", in: "S\u00c9ND\n\n\x00", err: ErrBadCommandCharset},
		parseCase{name: "command/nul", in: "\x00\n\n\x00", err: ErrBadCommandCharset},
		parseCase{name: "command/bare-cr", in: "\r\r\n", err: ErrBadCommandCharset},
		parseCase{name: "incomplete/empty", in: ""},
		parseCase{name: "incomplete/command", in: "SEND", rest: 4},
		parseCase{name: "incomplete/command-cr", in: "SEND\r", rest: 5},
		parseCase{name: "incomplete/command-line", in: "SEND\n", rest: 5},
		parseCase{name: "incomplete/header", in: "SEND\nk:v", rest: 8},
		parseCase{name: "incomplete/headers", in: "SEND\nk:v\n", rest: 9},
		parseCase{name: "incomplete/body", in: "SEND\nk:v\n\nbody", rest: 14},
		parseCase{name: "incomplete/after-frame", in: "SEND\n\n\x00MESS", want: frames(fr(SEND, "")), rest: 4},
	)

	// Headers.
	add(
		parseCase{name: "headers/order", in: "SEND\ndestination:/queue/a\nreceipt:r1\nz:last\n\nhi\x00",
			want: frames(fr(SEND, "hi", "destination", "/queue/a", "receipt", "r1", "z", "last"))},
		parseCase{name: "headers/repeated-first-wins", in: "MESSAGE\nfoo:1\nfoo:2\nbar:x\nfoo:3\n\n\x00",
			want: frames(fr(MESSAGE, "", "foo", "1", "foo", "2", "bar", "x", "foo", "3")),
			get:  []string{"foo", "1", "bar", "x"}},
		parseCase{name: "headers/value-with-colons", in: "SEND\ndestination:/queue/a:b::c\nurl:http://h:1/\n\n\x00",
			want: frames(fr(SEND, "", "destination", "/queue/a:b::c", "url", "http://h:1/")),
			get:  []string{"destination", "/queue/a:b::c"}},
		parseCase{name: "headers/empty-value", in: "SEND\nk:\n\n\x00", want: frames(fr(SEND, "", "k", ""))},
		parseCase{name: "headers/spaces-kept", in: "SEND\n k : v \n\n\x00", want: frames(fr(SEND, "", " k ", " v "))},
		parseCase{name: "headers/raw-cr-inside", in: "SEND\nk:a\rb\n\n\x00", want: frames(fr(SEND, "", "k", "a\rb"))},
		parseCase{name: "headers/one-cr-stripped", in: "SEND\nk:v\r\r\n\n\x00", want: frames(fr(SEND, "", "k", "v\r"))},
		parseCase{name: "headers/nul-in-value", in: "SEND\nk:a\x00b\n\nc\x00", want: frames(fr(SEND, "c", "k", "a\x00b"))},
		parseCase{name: "headers/empty-name", in: "SEND\n:v\n\n\x00", err: ErrEmptyHeaderName},
		parseCase{name: "headers/only-colon", in: "SEND\n:\n\n\x00", err: ErrEmptyHeaderName},
		parseCase{name: "headers/no-colon", in: "SEND\nnocolon\n\n\x00", err: ErrMalformedHeader},
		parseCase{name: "headers/no-colon-crlf", in: "SEND\r\nk:v\r\nnocolon\r\n\r\n\x00", err: ErrMalformedHeader},
		parseCase{name: "headers/space-line", in: "SEND\n \n\n\x00", err: ErrMalformedHeader},
		parseCase{name: "headers/error-before-body", in: "SEND\nbad\n", err: ErrMalformedHeader},
	)

	// Escaping: none in 1.0; \\ \n \c in 1.1; also \r in 1.2; never in
	// CONNECT, STOMP and CONNECTED.
	add(
		parseCase{name: "escape/1.0-raw", vers: v10, in: escInput, want: frames(fr(SEND, "", "k\\ck", "a\\\\b\\nc\\cd"))},
		parseCase{name: "escape/1.1+", vers: v11 | v12, in: escInput, want: frames(fr(SEND, "", "k:k", "a\\b\nc:d")),
			get: []string{"k:k", "a\\b\nc:d"}},
		parseCase{name: "escape/cr-1.0", vers: v10, in: crEscInput, want: frames(fr(SEND, "", "k", "a\\rb"))},
		parseCase{name: "escape/cr-1.1", vers: v11, in: crEscInput, err: ErrBadEscape},
		parseCase{name: "escape/cr-1.2", vers: v12, in: crEscInput, want: frames(fr(SEND, "", "k", "a\rb"))},
		parseCase{name: "escape/backslash-n-1.1+", vers: v11 | v12, in: "SEND\nk:a\\\\nb\n\n\x00", want: frames(fr(SEND, "", "k", "a\\nb"))},
		parseCase{name: "escape/all-1.2", vers: v12, in: "SEND\n\\r\\n\\c\\\\:\\\\\\c\\n\\r\n\n\x00", want: frames(fr(SEND, "", "\r\n:\\", "\\:\n\r"))},
		parseCase{name: "escape/tab-1.0", vers: v10, in: "SEND\nk:a\\tb\n\n\x00", want: frames(fr(SEND, "", "k", "a\\tb"))},
		parseCase{name: "escape/tab-1.1+", vers: v11 | v12, in: "SEND\nk:a\\tb\n\n\x00", err: ErrBadEscape},
		parseCase{name: "escape/trailing-backslash-value-1.0", vers: v10, in: "SEND\nk:v\\\n\n\x00", want: frames(fr(SEND, "", "k", "v\\"))},
		parseCase{name: "escape/trailing-backslash-value-1.1+", vers: v11 | v12, in: "SEND\nk:v\\\n\n\x00", err: ErrBadEscape},
		parseCase{name: "escape/trailing-backslash-key-1.0", vers: v10, in: "SEND\nk\\:v\n\n\x00", want: frames(fr(SEND, "", "k\\", "v"))},
		parseCase{name: "escape/trailing-backslash-key-1.1+", vers: v11 | v12, in: "SEND\nk\\:v\n\n\x00", err: ErrBadEscape},
		parseCase{name: "escape/bad-in-key-1.1+", vers: v11 | v12, in: "SEND\na\\xb:v\n\n\x00", err: ErrBadEscape},
		parseCase{name: "escape/bad-before-body", vers: v11 | v12, in: "SEND\nk:\\t\n", err: ErrBadEscape},
		parseCase{name: "escape/second-frame", vers: v12, in: "SEND\nk:\\c\n\n\x00SEND\nk:\\\n\n\x00",
			want: frames(fr(SEND, "", "k", ":")), err: ErrBadEscape},
		parseCase{name: "escape/error-frame", vers: v11 | v12, in: "ERROR\nmessage:bad\\c x\n\n\x00", want: frames(fr(ERROR, "", "message", "bad: x"))},
	)
	for _, c := range []string{CONNECT, STOMP, CONNECTED} {
		in := c + "\nlogin:a\\cb\npasscode:x\\ty\\\nhost:h\\r\n\n\x00"
		add(parseCase{name: "escape/never-in-" + c, in: in,
			want: frames(fr(c, "", "login", "a\\cb", "passcode", "x\\ty\\", "host", "h\\r"))})
	}

	// Bodies and content-length.
	add(
		parseCase{name: "body/binary", in: "SEND\ncontent-length:5\n\na\x00b\x00c\x00", want: frames(fr(SEND, "a\x00b\x00c", "content-length", "5"))},
		parseCase{name: "body/all-nul", in: "SEND\ncontent-length:3\n\n\x00\x00\x00\x00", want: frames(fr(SEND, "\x00\x00\x00", "content-length", "3"))},
		parseCase{name: "body/zero-length", in: "SEND\ncontent-length:0\n\n\x00", want: frames(fr(SEND, "", "content-length", "0"))},
		parseCase{name: "body/length-then-frame", in: "SEND\ncontent-length:2\n\n\x00\x00\x00SEND\n\nx\x00",
			want: frames(fr(SEND, "\x00\x00", "content-length", "2"), fr(SEND, "x"))},
		parseCase{name: "body/first-nul-ends", in: "SEND\n\nab\x00SEND\n\ncd\x00", want: frames(fr(SEND, "ab"), fr(SEND, "cd"))},
		parseCase{name: "body/lf-in-body", in: "SEND\n\n\n\nx\n\x00", want: frames(fr(SEND, "\n\nx\n"))},
		parseCase{name: "body/missing-nul", in: "SEND\ncontent-length:2\n\nabc\x00", err: ErrMissingNUL},
		parseCase{name: "body/missing-nul-zero", in: "SEND\ncontent-length:0\n\nx\x00", err: ErrMissingNUL},
		parseCase{name: "body/length-too-long", in: "SEND\ncontent-length:4\n\nab\x00\x00SEND\n\n\x00", err: ErrMissingNUL},
		parseCase{name: "body/length-incomplete", in: "SEND\ncontent-length:4\n\nab\x00", rest: 26},
		parseCase{name: "body/length-spaces", in: "SEND\ncontent-length: 3 \n\nabc\x00", want: frames(fr(SEND, "abc", "content-length", " 3 "))},
		parseCase{name: "body/length-leading-zeros", in: "SEND\ncontent-length:003\n\nabc\x00", want: frames(fr(SEND, "abc", "content-length", "003"))},
		parseCase{name: "body/length-repeated-first-wins", in: "SEND\ncontent-length:3\ncontent-length:1\n\nabc\x00",
			want: frames(fr(SEND, "abc", "content-length", "3", "content-length", "1"))},
		parseCase{name: "body/length-name-case-sensitive", in: "SEND\nContent-Length:3\n\nab\x00",
			want: frames(fr(SEND, "ab", "Content-Length", "3"))},
		parseCase{name: "body/length-crlf", in: "SEND\r\ncontent-length:3\r\n\r\na\x00c\x00", want: frames(fr(SEND, "a\x00c", "content-length", "3"))},
		parseCase{name: "body/length-connect", in: "CONNECT\ncontent-length:1\n\n\x00\x00", want: frames(fr(CONNECT, "\x00", "content-length", "1"))},
		parseCase{name: "body/length-ten-digits", in: "SEND\ncontent-length:9999999999\n\n", err: ErrFrameTooLarge},
		// These overflowed a 32-bit int (a negative index: a panic).
		parseCase{name: "body/length-over-int32", in: "SEND\ncontent-length:3000000000\n\nabc\x00", err: ErrFrameTooLarge},
		parseCase{name: "body/length-over-uint32", in: "SEND\ncontent-length:4294967295\n\nabc\x00", err: ErrFrameTooLarge},
	)
	for _, bad := range []string{"", "abc", "-1", "+1", "1.5", "0x1", "1 2", "12345678901", "1\\c", "\u0661"} {
		add(parseCase{name: "body/bad-length/" + bad, in: "SEND\ncontent-length:" + bad + "\n\nabc\x00", err: ErrBadContentLength})
	}

	// CRLF line endings and heart-beats.
	add(
		parseCase{name: "crlf/frame", in: "SEND\r\ndestination:/q\r\nreceipt:1\r\n\r\nhello\x00",
			want: frames(fr(SEND, "hello", "destination", "/q", "receipt", "1"))},
		parseCase{name: "crlf/mixed", in: "SEND\nk:v\r\n\nhi\x00", want: frames(fr(SEND, "hi", "k", "v"))},
		parseCase{name: "crlf/blank-line", in: "SEND\nk:v\n\r\nhi\x00", want: frames(fr(SEND, "hi", "k", "v"))},
		parseCase{name: "crlf/body-kept", in: "SEND\r\n\r\n\r\nx\r\n\x00", want: frames(fr(SEND, "\r\nx\r\n"))},
		parseCase{name: "heartbeat/lf", in: "\n"},
		parseCase{name: "heartbeat/crlf", in: "\r\n"},
		parseCase{name: "heartbeat/many", in: "\r\n\n\n\r\n\r\n"},
		parseCase{name: "heartbeat/lone-cr", in: "\n\r", rest: 1},
		parseCase{name: "heartbeat/between-frames",
			in:   "\n\nSEND\n\n\x00\n\r\nMESSAGE\nk:v\n\nb\x00\r\n\n",
			want: frames(fr(SEND, ""), fr(MESSAGE, "b", "k", "v"))},
		parseCase{name: "heartbeat/before-partial", in: "\r\n\nSEN", rest: 3},
		// A lone CR may start a heart-beat: it is no frame byte (found by FuzzParse).
		parseCase{name: "heartbeat/crlf-tiny-limit", lim: limits{frame: 1}, in: "\r\n\n\r\n"},
		parseCase{name: "heartbeat/cr-tiny-limit", lim: limits{frame: 1}, in: "\n\r", rest: 1},
		parseCase{name: "heartbeat/cr-cr-tiny-limit", lim: limits{frame: 1}, in: "\r\r\n", err: ErrFrameTooLarge},
	)

	// Several frames in one buffer.
	add(parseCase{name: "stream/several",
		in: "CONNECT\naccept-version:1.2\nhost:h\n\n\x00" +
			"SUBSCRIBE\nid:0\ndestination:/queue/a\nack:client\n\n\x00" +
			"SEND\ndestination:/queue/a\ncontent-length:4\n\nab\x00c\x00" +
			"ACK\nid:7\n\n\x00\n" +
			"DISCONNECT\nreceipt:77\n\n\x00",
		want: frames(
			fr(CONNECT, "", "accept-version", "1.2", "host", "h"),
			fr(SUBSCRIBE, "", "id", "0", "destination", "/queue/a", "ack", "client"),
			fr(SEND, "ab\x00c", "destination", "/queue/a", "content-length", "4"),
			fr(ACK, "", "id", "7"),
			fr(DISCONNECT, "", "receipt", "77"),
		)})

	// Limits.
	big := strings.Repeat("a", 100)
	add(
		parseCase{name: "limit/frame-exact", lim: limits{frame: len(limNoLen)}, in: limNoLen, want: frames(fr(SEND, "12345"))},
		parseCase{name: "limit/frame-over", lim: limits{frame: len(limNoLen) - 1}, in: limNoLen, err: ErrFrameTooLarge},
		parseCase{name: "limit/frame-length-exact", lim: limits{frame: len(limWithLen)}, in: limWithLen,
			want: frames(fr(SEND, "1\x002\x003", "content-length", "5"))},
		parseCase{name: "limit/frame-length-over", lim: limits{frame: len(limWithLen) - 1}, in: limWithLen, err: ErrFrameTooLarge},
		parseCase{name: "limit/frame-length-before-body", lim: limits{frame: 100}, in: "SEND\ncontent-length:1000\n\n", err: ErrFrameTooLarge},
		parseCase{name: "limit/frame-incomplete-body", lim: limits{frame: 50}, in: "SEND\n\n" + big, err: ErrFrameTooLarge},
		parseCase{name: "limit/frame-incomplete-body-at-limit", lim: limits{frame: 50}, in: "SEND\n\n" + big[:44], err: ErrFrameTooLarge},
		parseCase{name: "limit/frame-incomplete-below-limit", lim: limits{frame: 50}, in: "SEND\n\n" + big[:43], rest: 49},
		parseCase{name: "limit/frame-incomplete-header", lim: limits{frame: 50, line: 1000}, in: "SEND\nk:" + big, err: ErrFrameTooLarge},
		parseCase{name: "limit/frame-incomplete-command", lim: limits{frame: 50, line: 1000}, in: strings.Repeat("A", 60), err: ErrFrameTooLarge},
		parseCase{name: "limit/frame-headers", lim: limits{frame: 50}, in: strings.Repeat("SEND\n"+strings.Repeat("k:v\n", 20)+"\n\x00", 1), err: ErrFrameTooLarge},
		parseCase{name: "limit/frame-each", lim: limits{frame: len(limNoLen)}, in: "\n\n" + limNoLen + "\r\n" + limNoLen + "\n",
			want: frames(fr(SEND, "12345"), fr(SEND, "12345"))},
		parseCase{name: "limit/frame-second", lim: limits{frame: len(limNoLen)}, in: limNoLen + "SEND\n\n123456\x00",
			want: frames(fr(SEND, "12345")), err: ErrFrameTooLarge},
		parseCase{name: "limit/headers-exact", lim: limits{headers: 3}, in: limHeaders, want: frames(fr(SEND, "", "a", "1", "b", "2", "c", "3"))},
		parseCase{name: "limit/headers-over", lim: limits{headers: 2}, in: limHeaders, err: ErrTooManyHeaders},
		parseCase{name: "limit/headers-repeated", lim: limits{headers: 2}, in: "SEND\na:1\na:1\na:1\n\n\x00", err: ErrTooManyHeaders},
		parseCase{name: "limit/line-exact", lim: limits{line: 10}, in: limLine, want: frames(fr(SEND, "", "k", "12345678"))},
		parseCase{name: "limit/line-exact-crlf", lim: limits{line: 10}, in: limLineCR, want: frames(fr(SEND, "", "k", "12345678"))},
		parseCase{name: "limit/line-over", lim: limits{line: 9}, in: limLine, err: ErrHeaderTooLong},
		parseCase{name: "limit/line-over-crlf", lim: limits{line: 9}, in: limLineCR, err: ErrHeaderTooLong},
		parseCase{name: "limit/line-incomplete-exact", lim: limits{line: 10}, in: "SEND\nk:12345678", rest: 15},
		parseCase{name: "limit/line-incomplete-exact-cr", lim: limits{line: 10}, in: "SEND\nk:12345678\r", rest: 16},
		parseCase{name: "limit/line-incomplete-over", lim: limits{line: 10}, in: "SEND\nk:123456789", err: ErrHeaderTooLong},
		parseCase{name: "limit/line-incomplete-over-cr", lim: limits{line: 10}, in: "SEND\nk:123456789\r", err: ErrHeaderTooLong},
		parseCase{name: "limit/line-cr-is-content", lim: limits{line: 10}, in: "SEND\nk:12345678\rx\n\n\x00", err: ErrHeaderTooLong},
		parseCase{name: "limit/command-exact", lim: limits{line: 7}, in: "MESSAGE\r\n\n\x00", want: frames(fr(MESSAGE, ""))},
		parseCase{name: "limit/command-over", lim: limits{line: 6}, in: "MESSAGE\n\n\x00", err: ErrHeaderTooLong},
		parseCase{name: "limit/command-incomplete-over", lim: limits{line: 6}, in: "MESSAGE", err: ErrHeaderTooLong},
		parseCase{name: "limit/body-not-a-line", lim: limits{line: 4}, in: "SEND\n\n" + big + "\x00", want: frames(fr(SEND, big))},
	)
	return cases
}

func (c parseCase) versions() []Version {
	vs := c.vers
	if vs == 0 {
		vs = vAll
	}
	var out []Version
	for v := Version10; v <= Version12; v++ {
		if vs&(1<<v) != 0 {
			out = append(out, v)
		}
	}
	return out
}

func (c parseCase) check(t *testing.T, how string, got result) {
	t.Helper()
	want := result{frames: c.want, err: c.err, rest: c.rest}
	if !sameResult(got, want) {
		t.Fatalf("%s:\n got %v\nwant %v", how, got, want)
	}
	for i := 0; i+1 < len(c.get); i += 2 {
		if v, ok := got.frames[0].Get(c.get[i]); !ok || string(v) != c.get[i+1] {
			t.Fatalf("%s: Get(%q) = %q, %v; want %q", how, c.get[i], v, ok, c.get[i+1])
		}
	}
}

// TestGoldenParse runs every golden case for each of its versions with the
// stream arriving (a) in one read, (b) in two reads split at every byte
// boundary, (c) one byte at a time.
func TestGoldenParse(t *testing.T) {
	for _, c := range goldenParseCases() {
		for _, v := range c.versions() {
			t.Run(c.name+"/"+v.String(), func(t *testing.T) {
				in := []byte(c.in)
				c.check(t, "whole", feed(t, newParser(v, c.lim), in))
				for i := 1; i < len(in); i++ {
					c.check(t, fmt.Sprintf("split at %d", i), feed(t, newParser(v, c.lim), in[:i], in[i:]))
				}
				c.check(t, "bytewise", feed(t, newParser(v, c.lim), bytewise(in)...))
				if c.in != string(in) {
					t.Fatal("feed modified its input")
				}
			})
		}
	}
}

// appendCase is one golden encoder case: a frame and its exact bytes for
// 1.0, 1.1 and 1.2. If parse is set the bytes must parse back to the frame
// (plus the content-length header Append adds) for the versions in parse.
type appendCase struct {
	name  string
	f     *Frame
	want  [3]string
	parse vset
}

func same3(s string) [3]string { return [3]string{s, s, s} }

func goldenAppendCases() []appendCase {
	return []appendCase{
		{name: "no-headers", f: New(DISCONNECT), want: same3("DISCONNECT\n\n\x00"), parse: vAll},
		{name: "plain", f: New(SEND, "destination", "/queue/a", "receipt", "1"),
			want: same3("SEND\ndestination:/queue/a\nreceipt:1\n\n\x00"), parse: vAll},
		{name: "repeated-kept", f: New(MESSAGE, "k", "1", "k", "2"), want: same3("MESSAGE\nk:1\nk:2\n\n\x00"), parse: vAll},
		{name: "escaping", f: New(SEND, "k:\\\n", "a:b\\c\nd"),
			want: [3]string{
				"SEND\nk:\\\n:a:b\\c\nd\n\n\x00", // 1.0 cannot say this
				"SEND\nk\\c\\\\\\n:a\\cb\\\\c\\nd\n\n\x00",
				"SEND\nk\\c\\\\\\n:a\\cb\\\\c\\nd\n\n\x00",
			}, parse: v11 | v12},
		{name: "escaping-cr", f: New(SEND, "k\r", "a\rb\r"),
			want: [3]string{
				"SEND\nk\r:a\rb\r\n\n\x00",
				"SEND\nk\r:a\rb\r\n\n\x00", // 1.1 has no \r escape
				"SEND\nk\\r:a\\rb\\r\n\n\x00",
			}, parse: v12},
		{name: "escaping-error", f: New(ERROR, "message", "bad: x"),
			want:  [3]string{"ERROR\nmessage:bad: x\n\n\x00", "ERROR\nmessage:bad\\c x\n\n\x00", "ERROR\nmessage:bad\\c x\n\n\x00"},
			parse: vAll},
		{name: "connected-not-escaped", f: New(CONNECTED, "version", "1.2", "server", "stompica/1:0", "session", "a\\b"),
			want: same3("CONNECTED\nversion:1.2\nserver:stompica/1:0\nsession:a\\b\n\n\x00"), parse: vAll},
		{name: "connect-not-escaped", f: New(CONNECT, "login", "a:b", "passcode", "c\\d"),
			want: same3("CONNECT\nlogin:a:b\npasscode:c\\d\n\n\x00"), parse: vAll},
		{name: "stomp-not-escaped", f: New(STOMP, "login", "a:b"), want: same3("STOMP\nlogin:a:b\n\n\x00"), parse: vAll},
		{name: "auto-content-length", f: &Frame{Command: MESSAGE, Headers: New("", "destination", "/q").Headers, Body: []byte("hello")},
			want: same3("MESSAGE\ndestination:/q\ncontent-length:5\n\nhello\x00"), parse: vAll},
		{name: "binary-body", f: &Frame{Command: SEND, Body: []byte("a\x00b\x00")},
			want: same3("SEND\ncontent-length:4\n\na\x00b\x00\x00"), parse: vAll},
		{name: "content-length-kept", f: &Frame{Command: SEND, Headers: New("", "content-length", "3").Headers, Body: []byte("abc")},
			want: same3("SEND\ncontent-length:3\n\nabc\x00"), parse: vAll},
		{name: "empty-body-no-length", f: &Frame{Command: SEND, Body: []byte{}}, want: same3("SEND\n\n\x00"), parse: vAll},
		{name: "unknown-command", f: New("DIAG", "q", "subs"), want: same3("DIAG\nq:subs\n\n\x00"), parse: vAll},
	}
}

func TestGoldenAppend(t *testing.T) {
	for _, c := range goldenAppendCases() {
		for v := Version10; v <= Version12; v++ {
			t.Run(c.name+"/"+v.String(), func(t *testing.T) {
				prefix := []byte("prefix")
				got := Append(prefix, c.f, v)
				if string(got[:6]) != "prefix" || string(got[6:]) != c.want[v] {
					t.Fatalf("Append = %q, want %q", got[6:], c.want[v])
				}
				if c.parse&(1<<v) == 0 {
					return
				}
				want := cloneFrame(c.f)
				if len(c.f.Body) > 0 && !c.f.Has("content-length") {
					want.Add("content-length", fmt.Sprint(len(c.f.Body)))
				}
				r := feed(t, &Parser{Version: v}, got[6:])
				if r.err != nil || r.rest != 0 || len(r.frames) != 1 || !sameFrame(r.frames[0], want) {
					t.Fatalf("parsed back %v, want %s", r, fmtFrame(want))
				}
			})
		}
	}
}

func TestAppendHeaderAndEscaping(t *testing.T) {
	if got := string(AppendHeader([]byte("x"), "a:b", "c\\d\ne\rf", Version12)); got != "xa\\cb:c\\\\d\\ne\\rf\n" {
		t.Errorf("AppendHeader 1.2 = %q", got)
	}
	if got := string(AppendHeader(nil, "a:b", "c\r", Version11)); got != "a\\cb:c\r\n" {
		t.Errorf("AppendHeader 1.1 = %q", got)
	}
	if got := string(AppendHeader(nil, "a:b", "c\n", Version10)); got != "a:b:c\n\n" {
		t.Errorf("AppendHeader 1.0 = %q", got)
	}
	if got := string(AppendEscaped(nil, []byte("plain"), Version12)); got != "plain" {
		t.Errorf("AppendEscaped = %q", got)
	}
	for s, want := range map[string]bool{"": false, "abc/def": false, "a:b": true, "a\\": true, "\n": true, "\r": true} {
		if NeedsEscape(s) != want || NeedsEscape([]byte(s)) != want {
			t.Errorf("NeedsEscape(%q) != %v", s, want)
		}
	}
	// Escaping then unescaping is the identity in 1.2.
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
		want := i == '\\' || i == '\n' || i == ':' || i == '\r'
		if got := NeedsEscape([]byte{'a', byte(i), 'b'}); got != want {
			t.Errorf("NeedsEscape(a%qb) = %v", byte(i), got)
		}
	}
	esc := AppendEscaped(nil, all, Version12)
	if bytes.ContainsAny(esc, "\r\n:") || !validEscapes(esc, Version12) {
		t.Fatalf("escaped bytes still hold CR, LF or ':': %q", esc)
	}
	if got, ok := unescapeInPlace(esc, Version12); !ok || !bytes.Equal(got, all) {
		t.Fatalf("unescape(escape(x)) = %q, %v", got, ok)
	}
}

func TestParseHeartBeatEOLs(t *testing.T) {
	for _, c := range []struct {
		in string
		n  int
	}{{"\n", 1}, {"\r\n", 2}, {"\n\r\n\nSEND\n", 4}, {"\r", 0}, {"\n\r", 1}, {"\r\n\r", 2}, {"", 0}} {
		var p Parser
		f, n, err := p.Parse([]byte(c.in))
		if f != nil || n != c.n || err != nil {
			t.Errorf("Parse(%q) = %v, %d, %v; want nil, %d, nil", c.in, f, n, err, c.n)
		}
	}
}

func TestParseHeartBeatHeader(t *testing.T) {
	for _, c := range []struct {
		in   string
		x, y int
		ok   bool
	}{
		{"", 0, 0, true},
		{"0,0", 0, 0, true},
		{"1000,5000", 1000, 5000, true},
		{"007,10", 7, 10, true},
		{strconv.Itoa(math.MaxInt) + ",1", math.MaxInt, 1, true},
		{strconv.Itoa(math.MaxInt) + "0,1", 0, 0, false},
		{"1," + strconv.FormatUint(math.MaxInt+1, 10), 0, 0, false},
		{"10", 0, 0, false},
		{",", 0, 0, false},
		{"1,", 0, 0, false},
		{",1", 0, 0, false},
		{"-1,0", 0, 0, false},
		{"+1,0", 0, 0, false},
		{"1, 2", 0, 0, false},
		{" 1,2", 0, 0, false},
		{"1,2,3", 0, 0, false},
		{"a,b", 0, 0, false},
		{"1.5,2", 0, 0, false},
	} {
		x, y, err := ParseHeartBeat([]byte(c.in))
		if (err == nil) != c.ok || x != c.x || y != c.y {
			t.Errorf("ParseHeartBeat(%q) = %d, %d, %v; want %d, %d, ok=%v", c.in, x, y, err, c.x, c.y, c.ok)
		}
		if err != nil && err != ErrBadHeartBeat {
			t.Errorf("ParseHeartBeat(%q): error %v is not ErrBadHeartBeat", c.in, err)
		}
	}
}

func TestFrameHelpers(t *testing.T) {
	f := New(SEND, "a", "1", "b", "2", "a", "3", "odd")
	if len(f.Headers) != 3 {
		t.Fatalf("New kept %d headers, want 3 (a dangling key is dropped)", len(f.Headers))
	}
	f.Add("c", "").Add("d", "4")
	if v, ok := f.Get("a"); !ok || string(v) != "1" {
		t.Errorf("Get(a) = %q, %v", v, ok)
	}
	if f.GetString("d") != "4" || f.GetString("zz") != "" || !f.Has("c") || f.Has("zz") {
		t.Error("GetString/Has")
	}
	if v, ok := f.Get("zz"); ok || v != nil {
		t.Error("Get of an absent header")
	}
	for v, s := range map[Version]string{Version10: V10, Version11: V11, Version12: V12, 7: V10} {
		if v.String() != s {
			t.Errorf("Version(%d).String() = %q", v, v.String())
		}
	}
}

// TestParserRecovers: after an error or a Reset the parser starts afresh,
// and a caller that breaks the contract gets no panic.
func TestParserRecovers(t *testing.T) {
	var p Parser
	if _, _, err := p.Parse([]byte("SEND\nbad\n")); err != ErrMalformedHeader {
		t.Fatalf("err = %v", err)
	}
	f, n, err := p.Parse([]byte("ACK\nid:1\n\n\x00"))
	if err != nil || f == nil || f.Command != ACK || n != 11 {
		t.Fatalf("after an error: %v, %d, %v", f, n, err)
	}

	p.Parse([]byte("SEND\nk:v\n\nsome body"))
	p.Reset()
	f, _, err = p.Parse([]byte("MESSAGE\n\n\x00"))
	if err != nil || f == nil || f.Command != MESSAGE {
		t.Fatalf("after Reset: %v, %v", f, err)
	}

	// Contract broken: a shorter buffer, then another frame.
	p.Parse([]byte("SEND\nk:vvvvvvvvvv\n\nbody"))
	if f, n, err := p.Parse([]byte("SEND\n")); f != nil || n != 0 || err != nil {
		t.Fatalf("shorter buffer: %v, %d, %v", f, n, err)
	}
	f, _, err = p.Parse([]byte("SEND\nk:v\n\nx\x00"))
	if err != nil || f == nil || f.GetString("k") != "v" || string(f.Body) != "x" {
		t.Fatalf("after a shorter buffer: %v, %v", f, err)
	}
}

// TestParserRelease: Release lets go of the caller's buffer and of the
// header index; parsing goes on as before, with the version and limits
// kept.
func TestParserRelease(t *testing.T) {
	p := Parser{Version: Version12, MaxHeaders: 3}
	buf := []byte("SEND\na:1\nb:2\n\nbody\x00")
	if f, _, err := p.Parse(buf); err != nil || f == nil {
		t.Fatalf("Parse: %v, %v", f, err)
	}
	p.Release()
	if p.spans != nil || p.f.Headers != nil || p.f.Body != nil || p.f.Command != "" {
		t.Fatalf("after Release the parser still holds %d spans, %d headers, %d body bytes", cap(p.spans), cap(p.f.Headers), len(p.f.Body))
	}
	f, _, err := p.Parse([]byte("SEND\nk:a\\cb\n\nx\x00"))
	if err != nil || f == nil || f.GetString("k") != "a:b" || string(f.Body) != "x" {
		t.Fatalf("after Release: %v, %v (1.2 escaping must still apply)", f, err)
	}
	if _, _, err := p.Parse([]byte("SEND\na:1\nb:2\nc:3\nd:4\n\n\x00")); err != ErrTooManyHeaders {
		t.Fatalf("after Release: err = %v, want the MaxHeaders limit", err)
	}
}

// TestParseReusesFrame documents that the returned frame is the parser's
// and that parsed headers alias the buffer, unescaped in place.
func TestParseReusesFrame(t *testing.T) {
	p := Parser{Version: Version12}
	buf := []byte("SEND\nk:a\\cb\n\nx\x00SEND\n\n\x00")
	f1, n, _ := p.Parse(buf)
	if f1.GetString("k") != "a:b" || !bytes.HasPrefix(buf, []byte("SEND\nk:a:b")) {
		t.Fatalf("header not unescaped in place: %q", buf)
	}
	f2, _, _ := p.Parse(buf[n:])
	if f1 != f2 || len(f2.Headers) != 0 {
		t.Fatal("the frame is not reused")
	}
	// Appending to a parsed value must not overwrite the buffer.
	f, _, _ := p.Parse([]byte("SEND\nk:v\nl:w\n\nbody\x00"))
	_ = append(f.Headers[0].Value, "XXXX"...)
	_ = append(f.Headers[0].Key, "XXXX"...)
	if f.GetString("l") != "w" || string(f.Body) != "body" {
		t.Fatal("header slices reach past their value")
	}
}

// TestLargeFrames feeds frames far larger than a read, in reads of several
// sizes, at and just over MaxFrame. The error must come once MaxFrame bytes
// are buffered (or as soon as content-length tells), never later.
func TestLargeFrames(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB
	binary := bytes.Clone(body)
	for i := 0; i < len(binary); i += 1000 {
		binary[i] = 0
	}
	withLen := Append(nil, &Frame{Command: SEND, Body: binary}, Version12)
	noLen := append(append([]byte("SEND\ndestination:/q\n\n"), body...), 0)
	for _, c := range []struct {
		name  string
		frame []byte
	}{{"content-length", withLen}, {"nul-terminated", noLen}} {
		for _, chunk := range []int{1, 7, 4096, 65536} {
			for _, over := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%d/over=%v", c.name, chunk, over), func(t *testing.T) {
					if chunk == 1 && testing.Short() {
						t.Skip("short")
					}
					max := len(c.frame)
					if over {
						max--
					}
					p := &Parser{Version: Version12, MaxFrame: max}
					var buf []byte
					for off := 0; off < len(c.frame); off += chunk {
						buf = append(buf, c.frame[off:min(off+chunk, len(c.frame))]...)
						f, n, err := p.Parse(buf)
						checkParse(t, p, buf, f, n, err)
						if err != nil {
							if !over || err != ErrFrameTooLarge {
								t.Fatalf("err = %v", err)
							}
							if c.name == "content-length" && len(buf) > 64+chunk {
								t.Fatalf("content-length too large found after %d bytes", len(buf))
							}
							if len(buf) > max+chunk {
								t.Fatalf("frame too large found after %d bytes", len(buf))
							}
							return
						}
						if f != nil {
							if over || n != len(c.frame) || !bytes.Equal(f.Body, c.frame[len(c.frame)-1-len(f.Body):len(c.frame)-1]) {
								t.Fatalf("frame %d bytes, body %d bytes, over=%v", n, len(f.Body), over)
							}
							return
						}
					}
					t.Fatal("no frame and no error")
				})
			}
		}
	}
}

// TestParseDigits: digits only, one to nineteen of them.
func TestParseDigits(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true},
		{"007", 7, true},
		{"1234567890", 1234567890, true},
		{"9999999999999999999", 9999999999999999999, true}, // 19 digits
		{"10000000000000000000", 0, false},                 // 20 digits
		{"", 0, false},
		{"+1", 0, false},
		{"-1", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"1a", 0, false},
		{"١", 0, false}, // a non-ASCII digit
	} {
		if got, ok := ParseDigits([]byte(tc.in)); got != tc.want || ok != tc.ok {
			t.Errorf("ParseDigits(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestParsePlain checks Frame.Plain: set for a whole frame whose headers
// need no escaping (LF or CR LF line ends, short or long values), unset
// when a key or value holds a backslash, a colon (in the value) or a CR,
// and unset for a frame that arrived in pieces (the general path).
func TestParsePlain(t *testing.T) {
	long := strings.Repeat("v", 70)
	cases := []struct {
		in    string
		plain bool
	}{
		{"SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nbody\x00", true},
		{"SEND\r\ndestination:/queue/a\r\ncontent-length:4\r\n\r\nbody\x00", true},
		{"ACK\nid:3-4711\n\n\x00", true},
		{"SEND\ndestination:/queue/a\nx:" + long + "\n\n\x00", true},
		{"SEND\ndestination:/queue/a\nx:" + long + "\r\n\n\x00", true},
		{"SEND\ndestination:/queue/a\ntime:12:00\n\n\x00", false},
		{"SEND\ndestination:/queue/a\nx:" + long + ":\n\n\x00", false},
		{"SEND\ndestination:/queue/a\nx:" + long + "\rx\n\n\x00", false},
		{"SEND\ndestination:/queue/a\nx:" + long + "\\\\\n\n\x00", false},
		{"SEND\ndestination:/queue/a\nx:a\rb\n\n\x00", false},
		{"SEND\ndestination:/queue/a\nx\r:a\n\n\x00", false},
		{"SEND\ndestination:/queue/a\nk\\\\:v\n\n\x00", false},
		{"SEND\ndestination:/queue/a\nk:v\\\\\n\n\x00", false},
	}
	for v := Version10; v <= Version12; v++ {
		for _, c := range cases {
			p := Parser{Version: v}
			f, n, err := p.Parse([]byte(c.in))
			if err != nil || f == nil || n != len(c.in) {
				t.Fatalf("%s: Parse(%q) = %v, %d, %v", v, c.in, f, n, err)
			}
			if f.Plain != c.plain {
				t.Errorf("%s: Parse(%q).Plain = %v, want %v", v, c.in, f.Plain, c.plain)
			}
			// The same frame in two reads takes the general path, which
			// leaves Plain unset, on the reused frame too.
			p.Parse([]byte("SEND\ndestination:/queue/a\n\n\x00"))
			q := []byte(c.in)
			if f, _, _ := p.Parse(q[:len(q)/2]); f != nil {
				t.Fatalf("%s: half a frame parsed", v)
			}
			if f, _, err := p.Parse(q); err != nil || f == nil || f.Plain {
				t.Errorf("%s: Parse(%q) in two reads = %v, %v", v, c.in, f, err)
			}
		}
	}
}

// TestParseUint checks the ack id parser against strconv.ParseUint,
// at the edges of uint64 too.
func TestParseUint(t *testing.T) {
	for _, s := range []string{"0", "7", "42", "007", "18446744073709551615", "18446744073709551616",
		"18446744073709551619", "99999999999999999999", "100000000000000000000", "", "-1", "1a", " 1", "+1",
		"1844674407370955161", "281474976710657", "12345678", "123456789012345678", "1234567890123456",
		"12345678901234567890", "12345678/", "1234567:", "1234567/8"} {
		checkParseUint(t, s)
	}
	// Every length, with a byte that is not a digit (just below and just
	// above the digits, and a letter) at every place in turn.
	const digits = "98765432109876543210"
	for n := 1; n <= len(digits); n++ {
		checkParseUint(t, digits[:n])
		checkParseUint(t, strings.Repeat("9", n))
		for i := range n {
			for _, c := range []byte{'/', ':', 'a', 0, 0x80 | '5'} {
				b := []byte(digits[:n])
				b[i] = c
				checkParseUint(t, string(b))
			}
		}
	}
}

func checkParseUint(t *testing.T, s string) {
	t.Helper()
	want, err := strconv.ParseUint(s, 10, 64)
	got, ok := ParseUint([]byte(s))
	if ok != (err == nil) || ok && got != want {
		t.Errorf("ParseUint(%q) = %d, %v; strconv says %d, %v", s, got, ok, want, err)
	}
}
