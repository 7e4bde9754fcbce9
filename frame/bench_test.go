package frame

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// body117 is a realistic 117-byte JSON message body.
var body117 = []byte(`{"order":4711,"customer":"ACME Co","items":[{"sku":"X-100","qty":3},{"sku":"Y-7","qty":1}],"total":129.5,"cur":"EUR"}`)

var (
	sendFrame = []byte("SEND\n" +
		"destination:/queue/orders.eu\n" +
		"content-type:application/json\n" +
		"content-length:117\n" +
		"receipt:r-4711\n" +
		"persistent:true\n" +
		"transaction:tx-42\n" +
		"\n" + string(body117) + "\x00")
	messageFrame = []byte("MESSAGE\n" +
		"subscription:sub-0\n" +
		"message-id:stompica-1-4711\n" +
		"destination:/queue/orders.eu\n" +
		"ack:7f3a-4711\n" +
		"content-type:application/json\n" +
		"content-length:117\n" +
		"\n" + string(body117) + "\x00")
)

func messageToEncode() *Frame {
	f := New(MESSAGE,
		"subscription", "sub-0",
		"message-id", "stompica-1-4711",
		"destination", "/queue/orders.eu",
		"ack", "7f3a-4711",
		"content-type", "application/json",
		"content-length", "117")
	f.Body = body117
	return f
}

// The frames of the queue scenario of stompbench: a SEND as its producers
// write it, and an ACK as a STOMP 1.2 consumer writes it for each message.
var (
	benchSendFrame = []byte("SEND\n" +
		"destination:/queue/bench\n" +
		"content-type:text/plain\n" +
		"content-length:117\n" +
		"\n" + string(body117) + "\x00")
	ackFrame = []byte("ACK\nid:3-stompica-1-4711\n\n\x00")
)

func benchParse(b *testing.B, frame []byte, cmd string, headers int) {
	if len(body117) != 117 {
		b.Fatalf("body is %d bytes", len(body117))
	}
	// The frame has no escapes, so parsing it in place again and again
	// sees the same bytes every time.
	if bytes.IndexByte(frame, '\\') >= 0 {
		b.Fatal("frame must not hold escapes")
	}
	p := Parser{Version: Version12}
	n0 := bytes.Index(frame, []byte("\n\n")) + 3 // the frame less its body
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		f, n, err := p.Parse(frame)
		if err != nil || n != len(frame) || f.Command != cmd || len(f.Headers) != headers || len(f.Body) != len(frame)-n0 {
			b.Fatalf("Parse = %v, %d, %v", f, n, err)
		}
	}
}

func BenchmarkParseSEND(b *testing.B)      { benchParse(b, sendFrame, SEND, 6) }
func BenchmarkParseMESSAGE(b *testing.B)   { benchParse(b, messageFrame, MESSAGE, 6) }
func BenchmarkParseBenchSEND(b *testing.B) { benchParse(b, benchSendFrame, SEND, 3) }
func BenchmarkParseACK(b *testing.B)       { benchParse(b, ackFrame, ACK, 1) }

// BenchmarkParseStream parses a read buffer of 64 SENDs (without
// content-length: a NUL ends the body) and 64 ACKs, one frame after the
// other as a connection's read loop does. It reports the time per frame.
func BenchmarkParseStream(b *testing.B) {
	noLen := bytes.Replace(benchSendFrame, []byte("content-length:117\n"), nil, 1)
	var buf []byte
	for range 64 {
		buf = append(buf, noLen...)
		buf = append(buf, ackFrame...)
	}
	p := Parser{Version: Version12}
	b.ReportAllocs()
	for b.Loop() {
		frames := 0
		for rest := buf; len(rest) > 0; {
			f, n, err := p.Parse(rest)
			if err != nil || f == nil || n == 0 {
				b.Fatalf("Parse = %v, %d, %v", f, n, err)
			}
			rest = rest[n:]
			frames++
		}
		if frames != 128 {
			b.Fatalf("%d frames", frames)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*128), "ns/frame")
}

func BenchmarkAppendMESSAGE(b *testing.B) {
	f := messageToEncode()
	dst := make([]byte, 0, 1024)
	if out := Append(dst, f, Version12); !bytes.Equal(out, messageFrame) {
		b.Fatalf("Append = %q", out)
	}
	b.SetBytes(int64(len(messageFrame)))
	b.ReportAllocs()
	for b.Loop() {
		dst = Append(dst[:0], f, Version12)
	}
}

// BenchmarkParseLargeSplit feeds a large frame in 4 KiB reads, each call
// with the whole pending frame as the contract requires. The time per byte
// must not grow with the frame size: compare 1 MiB with 4 MiB, and the split
// runs with the one-read run.
func BenchmarkParseLargeSplit(b *testing.B) {
	const chunk = 4 << 10
	body := func(size int) []byte { return bytes.Repeat([]byte("x"), size) }
	cases := []struct {
		name  string
		frame []byte
		chunk int
	}{
		{"nul-scan/1MiB/whole", append(append([]byte("SEND\ndestination:/q\n\n"), body(1<<20)...), 0), 1 << 30},
		{"nul-scan/1MiB/4KiB", append(append([]byte("SEND\ndestination:/q\n\n"), body(1<<20)...), 0), chunk},
		{"nul-scan/4MiB/4KiB", append(append([]byte("SEND\ndestination:/q\n\n"), body(4<<20)...), 0), chunk},
		{"content-length/1MiB/4KiB", Append(nil, &Frame{Command: SEND, Body: body(1 << 20)}, Version12), chunk},
		{"content-length/4MiB/4KiB", Append(nil, &Frame{Command: SEND, Body: body(4 << 20)}, Version12), chunk},
		// Nearly the worst header block the default limits allow, 63 lines of
		// 8 KiB (and content-length), then a 1 MiB body: the headers must not be parsed again
		// for every read.
		{"headers-504KiB/4KiB", Append(nil, bigHeaders(63, 8<<10, body(1<<20)), Version12), chunk},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.frame)))
			b.ReportAllocs()
			p := Parser{Version: Version12, MaxFrame: 64 << 20}
			for b.Loop() {
				for k := min(c.chunk, len(c.frame)); ; k = min(k+c.chunk, len(c.frame)) {
					f, n, err := p.Parse(c.frame[:k])
					if err != nil {
						b.Fatal(err)
					}
					if f != nil {
						if n != len(c.frame) {
							b.Fatalf("n = %d", n)
						}
						break
					}
					if k == len(c.frame) {
						b.Fatal("no frame")
					}
				}
			}
		})
	}
}

// bigHeaders returns a SEND frame with n headers whose lines are size bytes.
func bigHeaders(n, size int, body []byte) *Frame {
	f := &Frame{Command: SEND, Body: body}
	for i := range n {
		key := fmt.Sprintf("h%02d", i)
		f.Add(key, strings.Repeat("v", size-len(key)-1))
	}
	return f
}

// TestZeroAllocs holds the parser and the encoder to zero allocations per
// frame in the steady state, including a frame that arrives in pieces.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	p := Parser{Version: Version12}
	for _, frame := range [][]byte{sendFrame, messageFrame} {
		if a := testing.AllocsPerRun(100, func() { p.Parse(frame) }); a != 0 {
			t.Errorf("Parse(%.7s...): %v allocs", frame, a)
		}
		if a := testing.AllocsPerRun(100, func() {
			for k := 1; k <= len(frame); k += 16 {
				p.Parse(frame[:k])
			}
			p.Parse(frame)
		}); a != 0 {
			t.Errorf("split Parse(%.7s...): %v allocs", frame, a)
		}
	}
	f := messageToEncode()
	dst := make([]byte, 0, 1024)
	if a := testing.AllocsPerRun(100, func() { dst = Append(dst[:0], f, Version12) }); a != 0 {
		t.Errorf("Append: %v allocs", a)
	}
	f.Headers = f.Headers[:5] // content-length is added
	f.Add("x", "a:b\\c\n")    // and a header escaped
	if a := testing.AllocsPerRun(100, func() { dst = Append(dst[:0], f, Version12) }); a != 0 {
		t.Errorf("Append with escapes: %v allocs", a)
	}
	if a := testing.AllocsPerRun(100, func() { ParseHeartBeat([]byte("10000,20000")) }); a != 0 {
		t.Errorf("ParseHeartBeat: %v allocs", a)
	}
}
