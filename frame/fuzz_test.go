package frame

import (
	"bytes"
	"strconv"
	"testing"
)

// fuzzLimits turns a fuzzed word into parser limits: zero gives the
// defaults, anything else small limits so that they are often hit.
func fuzzLimits(w uint32) limits {
	if w == 0 {
		return limits{}
	}
	return limits{
		frame:   int(w&0x3ff) + 1,    // 1..1024
		headers: int(w>>10&0x7) + 1,  // 1..8
		line:    int(w>>13&0x7f) + 1, // 1..128
	}
}

// FuzzParse feeds arbitrary bytes to the parser for each version. It must
// never panic, every result must satisfy checkParse's invariants, and the
// frames and error must not depend on how the stream is split into reads.
func FuzzParse(f *testing.F) {
	for _, c := range goldenParseCases() {
		f.Add([]byte(c.in), uint16(len(c.in)/2), uint32(0))
		if c.lim != (limits{}) {
			// An approximation of the case's limits.
			f.Add([]byte(c.in), uint16(1), uint32(max(c.lim.frame-1, 0)&0x3ff|max(c.lim.headers-1, 0)&7<<10|max(c.lim.line-1, 0)&0x7f<<13))
		}
	}
	for _, c := range goldenAppendCases() {
		for v := Version10; v <= Version12; v++ {
			f.Add(Append(nil, c.f, v), uint16(3), uint32(v)<<20)
		}
	}
	f.Add([]byte("SEND\ncontent-length:3\n\nabc\x00\nSEND\n\nx\x00"), uint16(30), uint32(40|2<<10|20<<13))
	f.Add([]byte("SEND\nk:\\c\\n\\\\\\r\n\n\x00"), uint16(9), uint32(0))
	// ACKs and NACKs as consumers send them (parseAck's fast path), at
	// the edges of the line and frame limits too.
	f.Add([]byte("ACK\nid:1-281474976710657\n\n\x00NACK\nid:\n\n\x00ACK\nid:a\\cb\n\n\x00"), uint16(12), uint32(0))
	f.Add([]byte("ACK\nid:12345\n\n\x00ACK\nid:1:2\n\n\x00NACK\nid:x\r\n\n\x00"), uint16(5), uint32(13|7<<13))
	f.Add([]byte("NACK\nid:12\n\n\x00ACK\nid:1\n\nx\x00"), uint16(2), uint32(3|7<<13))

	f.Fuzz(func(t *testing.T, data []byte, split uint16, lim uint32) {
		l := fuzzLimits(lim)
		i := int(split) % (len(data) + 1)
		for v := Version10; v <= Version12; v++ {
			whole := feed(t, newParser(v, l), data)
			if two := feed(t, newParser(v, l), data[:i], data[i:]); !sameResult(whole, two) {
				t.Fatalf("%s: split at %d:\n got %v\nwant %v", v, i, two, whole)
			}
			if len(data) <= 512 {
				if one := feed(t, newParser(v, l), bytewise(data)...); !sameResult(whole, one) {
					t.Fatalf("%s: bytewise:\n got %v\nwant %v", v, one, whole)
				}
			}
		}
	})
}

// roundTripCommands are the commands FuzzRoundTrip picks from: all known
// ones and an unknown one.
var roundTripCommands = append(append([]string{}, allCommands...), "XCUSTOM")

// representable reports whether a header survives Append then Parse for a
// frame whose headers are escaped (or not), in version v.
func representable(key, value string, escaped bool, v Version) bool {
	if key == "" || key == "content-length" {
		return false // no header line / would redefine the body
	}
	if !escaped {
		// Raw bytes: a key may not hold ':' or LF, a value no LF.
		if bytes.ContainsAny([]byte(key), ":\n") || bytes.ContainsRune([]byte(value), '\n') {
			return false
		}
	}
	// Without the 1.2 \r escape a CR ending a value reads as part of CRLF.
	if (!escaped || v < Version12) && len(value) > 0 && value[len(value)-1] == '\r' {
		return false
	}
	return true
}

// FuzzRoundTrip builds a frame, encodes it with Append for a version and
// parses it back: the frame must come back as it was (plus the
// content-length header Append adds), whole and in two reads.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(3), uint8(2), "destination", "/queue/a", "receipt", "r:1\n\\x\r", []byte("hello"))
	f.Add(uint8(12), uint8(1), "message-id", "m\\1", "k:ey", "", []byte("a\x00b"))
	f.Add(uint8(2), uint8(2), "version", "1.2", "server", "x:y\\z", []byte(nil))
	f.Add(uint8(0), uint8(0), "login", "a:b", "passcode", "c\\d", []byte{})
	f.Add(uint8(14), uint8(1), "message", "bad\rline", "x", "\n", []byte("\x00\x00"))
	f.Add(uint8(16), uint8(0), "q", "subs", "k\r", "", []byte("\n\r\n"))
	f.Fuzz(func(t *testing.T, cmdIdx, ver uint8, k1, v1, k2, v2 string, body []byte) {
		cmd := roundTripCommands[int(cmdIdx)%len(roundTripCommands)]
		v := Version(ver % 3)
		escaped := v >= Version11 && cmd != CONNECT && cmd != STOMP && cmd != CONNECTED
		if !representable(k1, v1, escaped, v) || !representable(k2, v2, escaped, v) {
			t.Skip("not representable")
		}
		in := &Frame{Command: cmd, Body: body}
		in.Add(k1, v1).Add(k2, v2)
		want := cloneFrame(in)
		if len(body) > 0 {
			want.Add("content-length", strconv.Itoa(len(body)))
		}
		wire := Append(nil, in, v)
		lim := limits{line: 1 << 20, frame: 1 << 24}
		r := feed(t, newParser(v, lim), wire)
		if r.err != nil || r.rest != 0 || len(r.frames) != 1 || !sameFrame(r.frames[0], want) {
			t.Fatalf("%s %q:\n got %v\nwant %s", v, wire, r, fmtFrame(want))
		}
		if r2 := feed(t, newParser(v, lim), wire[:len(wire)/2], wire[len(wire)/2:]); !sameResult(r, r2) {
			t.Fatalf("%s %q: in two reads %v, whole %v", v, wire, r2, r)
		}
		if got := Append(nil, r.frames[0], v); !bytes.Equal(got, Append(nil, want, v)) {
			t.Fatalf("re-encoding differs: %q", got)
		}
	})
}
