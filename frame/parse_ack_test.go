package frame

import "testing"

// TestParseAck: the ACK and NACK fast path takes the usual frames, and
// whatever it takes or leaves, a stream parses to the same frames and
// errors as when it arrives byte by byte (which never takes a fast path),
// for every version and at the edges of the limits.
func TestParseAck(t *testing.T) {
	usual := []string{"ACK\nid:1-281474976710657\n\n\x00", "NACK\nid:7-42\n\n\x00", "ACK\nid:\n\n\x00"}
	for _, in := range usual {
		p := newParser(Version12, limits{})
		f, n, ok := p.parseAck([]byte(in), DefaultMaxFrame, DefaultMaxHeaderLine)
		if !ok || n != len(in) || len(f.Headers) != 1 || string(f.Headers[0].Key) != "id" || len(f.Body) != 0 || !f.Plain {
			t.Fatalf("parseAck(%q) = %v, %d, %v; want the frame whole", in, f, n, ok)
		}
		if want := in[len(f.Command)+4 : len(in)-3]; string(f.Headers[0].Value) != want {
			t.Errorf("parseAck(%q): id %q, want %q", in, f.Headers[0].Value, want)
		}
	}
	others := []string{
		"ACK\nid:1:2\n\n\x00",              // a colon in the value
		"ACK\nid:a\\cb\n\n\x00",            // an escape
		"ACK\nid:a\\xb\n\n\x00",            // a bad escape (an error in 1.1, 1.2)
		"ACK\nid:1\r\n\r\n\x00",            // CR LF line ends
		"ACK\nid:1\rx\n\n\x00",             // a CR in the value
		"ACK\nid:1\x00\n\n\x00",            // a NUL in the value
		"ACK\nid:1\n\nbody\x00",            // a body
		"ACK\nid:1\ntransaction:t\n\n\x00", // a second header
		"ACK\nid:1\n\n",                    // no NUL yet
		"ACK\nid:123",                      // incomplete
		"ACKX\nid:1\n\n\x00",               // another command
		"ACK\nmessage-id:1\n\n\x00",        // 1.0 and 1.1 form
	}
	lims := []limits{{}, {line: 3}, {line: 4}, {line: 8}, {line: 9}, {frame: 13}, {frame: 14}, {frame: 15}, {headers: 1}}
	for _, in := range append(usual, others...) {
		for _, l := range lims {
			for v := Version10; v <= Version12; v++ {
				data := []byte(in + in)
				whole := feed(t, newParser(v, l), data)
				if one := feed(t, newParser(v, l), bytewise(data)...); !sameResult(whole, one) {
					t.Errorf("%s %+v %q:\n whole %v\n bytewise %v", v, l, in, whole, one)
				}
			}
		}
	}
}
