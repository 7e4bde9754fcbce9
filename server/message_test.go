package server

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stompica/stompica/frame"
	"github.com/stompica/stompica/store"
)

// TestMessageEncodingSized: a message's encoding fits the buffer fill
// sizes for it, with no room to spare when nothing needs escaping (its
// size class is what every queued message costs), whatever the digits of
// its id; escaped headers fit too.
func TestMessageEncodingSized(t *testing.T) {
	s := routerServer(t, Options{})
	frames := []*frame.Frame{
		benchSend("/queue/sized"),
		benchSend("/topic/sized"),
		frame.New(frame.SEND, "destination", "/queue/a:b", "k\n", "v:w\\", "expires", "0"),
	}
	for _, f := range frames {
		for _, id := range []uint64{1, 9, 10, 99_999, 1 << 40, 1<<64 - 1} {
			s.router.nextID.Store(id - 1)
			m := s.router.newMessage(f, f.GetString("destination"), time.Time{})
			if m.id != id {
				t.Fatalf("id %d, want %d", m.id, id)
			}
			escaped := m.esc != nil
			if c, n := cap(m.shared), len(m.shared); c < n || (!escaped && c != n) {
				t.Errorf("%s id %d: encoding of %d bytes in a buffer of %d (escaped %v)", f.GetString("destination"), id, n, c, escaped)
			}
		}
	}
}

// TestDecimalLen checks the digit count at every power of ten and its
// neighbours, and at the ends of uint64.
func TestDecimalLen(t *testing.T) {
	check := func(u uint64) {
		if got, want := decimalLen(u), len(strconv.FormatUint(u, 10)); got != want {
			t.Errorf("decimalLen(%d) = %d, want %d", u, got, want)
		}
	}
	eachDigitEdge(check)
	for s := range 64 {
		check(1<<s - 1)
		check(1 << s)
	}
}

// eachDigitEdge calls check with 0, the largest uint64, and every power of
// ten and its neighbours: where the number of decimal digits changes.
func eachDigitEdge(check func(uint64)) {
	check(0)
	check(math.MaxUint64)
	for _, p := range pow10 {
		check(p - 1)
		check(p)
		check(p + 1)
	}
}

// TestMessageAppendID: the ack header's message id, copied from the shared
// encoding, is the id's decimal form for every digit count, escaped or not;
// a message read back from a store under another id than its encoding
// carries gets that id (formatted, not copied).
func TestMessageAppendID(t *testing.T) {
	s := routerServer(t, Options{})
	frames := []*frame.Frame{
		benchSend("/queue/ids"),
		frame.New(frame.SEND, "destination", "/queue/a:b", "k\n", "v:w\\"),
	}
	for _, f := range frames {
		for _, id := range []uint64{1, 9, 10, 99_999, 1 << 40, 1<<64 - 1} {
			s.router.nextID.Store(id - 1)
			m := s.router.newMessage(f, f.GetString("destination"), time.Time{})
			if got, want := string(m.appendID([]byte("x"))), "x"+strconv.FormatUint(id, 10); got != want {
				t.Errorf("%s: appendID = %q, want %q", f.GetString("destination"), got, want)
			}
			m.release()
		}
	}
	s.router.nextID.Store(41)
	m := s.router.newMessage(frames[0], "/queue/ids", time.Time{})
	d, err := s.router.decode(&store.Message{ID: 12345, Data: m.shared})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(d.appendID(nil)); got != "12345" {
		t.Errorf("read back as 12345 (encoding of 42): appendID = %q", got)
	}
}

// TestAppendDigits checks the in-place decimal formatting against strconv
// at every power of ten and its neighbours, and at the ends of uint64.
func TestAppendDigits(t *testing.T) {
	check := func(u uint64) {
		if got, want := string(appendDigits([]byte("x"), u, decimalLen(u))), "x"+strconv.FormatUint(u, 10); got != want {
			t.Errorf("appendDigits(%d) = %q, want %q", u, got, want)
		}
	}
	eachDigitEdge(check)
	for u := range uint64(1000) {
		check(u)
	}
	for u := uint64(1); u < 1<<62; u = u*7 + 3 { // every digit count, digits of all kinds
		check(u)
		check(u | 1<<63)
	}
}

// TestMessagePlainEncoding: a message made from a parsed SEND the parser
// vouched for (Frame.Plain) is encoded in one pass exactly as the general
// encoder writes it: broker headers left out (also past the 64th header),
// user headers in order, expires and ttl copied and honoured. A SEND whose
// headers need escaping is not Plain and is escaped.
func TestMessagePlainEncoding(t *testing.T) {
	s := routerServer(t, Options{})
	many := "SEND\ndestination:/queue/p\n"
	for i := range 70 {
		many += "h" + strconv.Itoa(i) + ":v" + strconv.Itoa(i) + "\n"
	}
	many += "receipt:r-70\ntransaction:t\nx-after:1\n\nbody\x00"
	cases := []struct {
		raw     string
		plain   bool
		expires bool
	}{
		{"SEND\ndestination:/queue/p\ncontent-type:text/plain\ncontent-length:5\nreceipt:r\n\nhello\x00", true, false},
		{"SEND\r\nx-first:1\r\ndestination:/queue/p\r\nttl:60000\r\nmessage-id:forged\r\n\r\n\x00", true, true},
		{"SEND\ndestination:/queue/p\nexpires:99999999999999\nack:x\nsubscription:y\nredelivered:true\n\nb\x00", true, true},
		{many, true, false},
		{"SEND\ndestination:/queue/p\nat:12:00\n\nb\x00", false, false},
	}
	for _, c := range cases {
		p := frame.Parser{Version: frame.Version12}
		f, _, err := p.Parse([]byte(c.raw))
		if err != nil || f == nil {
			t.Fatalf("Parse(%q) = %v, %v", c.raw, f, err)
		}
		if f.Plain != c.plain {
			t.Fatalf("Parse(%q).Plain = %v", c.raw, f.Plain)
		}
		m := s.router.newMessage(f, "/queue/p", time.Time{})
		want := m.encode(nil, f.Headers, f.Body, frame.Version12)
		if string(m.shared) != string(want) {
			t.Errorf("%q:\n got %q\nwant %q", c.raw, m.shared, want)
		}
		if (m.esc != nil) == c.plain {
			t.Errorf("%q: escaped %v", c.raw, m.esc != nil)
		}
		if (m.expires != 0) != c.expires {
			t.Errorf("%q: expires %d", c.raw, m.expires)
		}
		for _, k := range []string{"receipt:", "transaction:", "message-id:forged", "ack:", "subscription:", "redelivered:"} {
			if strings.Contains(string(m.shared), "\n"+k) {
				t.Errorf("%q: broker header %q copied: %q", c.raw, k, m.shared)
			}
		}
		if n := strings.Count(string(m.shared), "\ncontent-length:"); n != 1 {
			t.Errorf("%q: %d content-length headers: %q", c.raw, n, m.shared)
		}
		if c.raw == many && (!strings.Contains(string(m.shared), "\nh69:v69\nx-after:1\n") || !strings.Contains(string(m.shared), "\nh0:v0\n")) {
			t.Errorf("headers lost: %q", m.shared)
		}
		m.release()
	}
}

// TestMessageRawRun: a SEND as clients usually write it (LF line ends,
// destination first, user headers, content-length last or absent) is
// encoded by copying its header lines and body from the read buffer, and
// the result is exactly what the general encoder writes, with a fitted
// buffer; every other shape (a CR LF line end, a broker header, expires or
// ttl, a content-length elsewhere or not in its shortest form, another
// destination name, an empty body, a header rewritten after parsing) takes
// the general path, with the same result.
func TestMessageRawRun(t *testing.T) {
	s := routerServer(t, Options{})
	cases := []struct {
		raw  string
		dest string
		run  bool // rawRun finds one: the header lines
		len  bool
	}{
		{"SEND\ndestination:/queue/r\ncontent-type:text/plain\ncontent-length:5\n\nhello\x00", "/queue/r", true, true},
		{"SEND\ndestination:/queue/r\ncontent-length:5\n\nhello\x00", "/queue/r", true, true},
		{"SEND\ndestination:/queue/r\nx-a:1\npriority:4\n\nhello\x00", "/queue/r", true, false},
		{"SEND\ndestination:/topic/r\n\nhello\x00", "/topic/r", true, false},
		{"SEND\ndestination:/queue/r\ncontent-length:05\n\nhello\x00", "/queue/r", false, false},
		{"SEND\ndestination:/queue/r\ncontent-length:5\nx-a:1\n\nhello\x00", "/queue/r", false, false},
		{"SEND\ndestination:/queue/r\nreceipt:7\ncontent-length:5\n\nhello\x00", "/queue/r", false, false},
		{"SEND\ndestination:/queue/r\nexpires:99999999999999\n\nhello\x00", "/queue/r", false, false},
		{"SEND\ndestination:/queue/r\nttl:60000\n\nhello\x00", "/queue/r", false, false},
		{"SEND\nx-a:1\ndestination:/queue/r\n\nhello\x00", "/queue/r", false, false},
		{"SEND\ndestination:/queue/r\r\nx-a:1\n\nhello\x00", "/queue/r", false, false},
		{"SEND\ndestination:/queue/r\nx-a:1\r\n\nhello\x00", "/queue/r", false, false},
		{"SEND\ndestination:/queue/r\nx-a:1\n\r\nhello\x00", "/queue/r", false, false},
		{"SEND\ndestination:/queue/r\nx-a:1\n\n\x00", "/queue/r", false, false},
		{"SEND\ndestination:/queue/r\n\nhello\x00", "/queue/other", false, false},
		{"SEND\ndestination:/queue/r\ndestination:/queue/x\n\nhello\x00", "/queue/r", false, false},
	}
	for _, c := range cases {
		p := frame.Parser{Version: frame.Version12}
		f, _, err := p.Parse([]byte(c.raw))
		if err != nil || f == nil || !f.Plain {
			t.Fatalf("Parse(%q) = %v, %v", c.raw, f, err)
		}
		want := 0 // the header lines: after the command line, before the blank one
		if c.run {
			want = strings.Index(c.raw, "\n\n") + 1 - len("SEND\n")
		}
		n, withLen := rawRun(f.Headers, c.dest, f.Body, decimalLen(uint64(len(f.Body))))
		if n != want || withLen != c.len {
			t.Errorf("%q: rawRun = %d, %v, want %d, %v", c.raw, n, withLen, want, c.len)
		}
		for _, id := range []uint64{1, 1 << 40} {
			s.router.nextID.Store(id - 1)
			m := s.router.newMessage(f, c.dest, time.Time{})
			want := m.encode(nil, f.Headers, f.Body, frame.Version12)
			if string(m.shared) != string(want) || cap(m.shared) != len(m.shared) {
				t.Errorf("%q:\n got %q (cap %d)\nwant %q", c.raw, m.shared, cap(m.shared), want)
			}
			if m.esc != nil || m.expires != 0 && c.run {
				t.Errorf("%q: escaped %v, expires %d", c.raw, m.esc != nil, m.expires)
			}
			if got := string(m.appendID(nil)); got != strconv.FormatUint(id, 10) {
				t.Errorf("%q: id %s, want %d", c.raw, got, id)
			}
			m.release()
		}
	}

	// A header value replaced after parsing (as reply-to is) is a slice
	// elsewhere: no run, and the new value is encoded.
	p := frame.Parser{Version: frame.Version12}
	f, _, err := p.Parse([]byte("SEND\ndestination:/queue/r\nreply-to:/temp-queue/a\ncontent-length:5\n\nhello\x00"))
	if err != nil || f == nil || !f.Plain {
		t.Fatalf("Parse = %v, %v", f, err)
	}
	if n, _ := rawRun(f.Headers, "/queue/r", f.Body, 1); n == 0 {
		t.Fatal("no run before the rewrite")
	}
	f.Headers[1].Value = []byte("/queue/private-a")
	if n, _ := rawRun(f.Headers, "/queue/r", f.Body, 1); n != 0 {
		t.Fatalf("run of %d bytes over a rewritten header", n)
	}
	m := s.router.newMessage(f, "/queue/r", time.Time{})
	if !strings.Contains(string(m.shared), "\nreply-to:/queue/private-a\ncontent-length:5\n\nhello\x00") {
		t.Fatalf("rewritten header lost: %q", m.shared)
	}
}

// TestMessagePlainOtherDest: a plain SEND routed to another name than its
// destination header (a compatibility name, a temporary queue) has that
// name looked at: escaped when it needs it.
func TestMessagePlainOtherDest(t *testing.T) {
	s := routerServer(t, Options{})
	p := frame.Parser{Version: frame.Version12}
	f, _, err := p.Parse([]byte("SEND\ndestination:/queue/p\nk:v\n\nb\x00"))
	if err != nil || f == nil || !f.Plain {
		t.Fatalf("Parse = %v, %v", f, err)
	}
	m := s.router.newMessage(f, "/queue/a:b", time.Time{})
	if m.esc == nil || !strings.Contains(string(m.shared), "\ndestination:/queue/a\\cb\n") {
		t.Fatalf("escaped %v: %q", m.esc != nil, m.shared)
	}
	m = s.router.newMessage(f, "/queue/ab", time.Time{})
	if m.esc != nil || !strings.Contains(string(m.shared), "\ndestination:/queue/ab\nk:v\n") {
		t.Fatalf("escaped %v: %q", m.esc != nil, m.shared)
	}
}

// TestQueueMessageLayout: a queue message, its store record and a usual
// encoding make one 448-byte block (a size class whose blocks start on a
// cache line): the store record in the first line, and what a dispatch and
// an ACK read of the message in the second.
func TestQueueMessageLayout(t *testing.T) {
	if n := unsafe.Sizeof(queueMessage{}); n != 448 {
		t.Errorf("queueMessage is %d bytes, want 448", n)
	}
	if queueInline < 224 {
		t.Errorf("inline encoding of %d bytes, want at least 224", queueInline)
	}
	var qm queueMessage
	if off := unsafe.Offsetof(qm.m); off != 64 || unsafe.Sizeof(qm.sm) > 64 {
		t.Errorf("the message starts at byte %d after a store record of %d, want 64 after at most 64", off, unsafe.Sizeof(qm.sm))
	}
	if end := unsafe.Offsetof(qm.m.kind); end > 64 {
		t.Errorf("the hot fields end at byte %d of the message, want at most 64", end)
	}
}

// TestQueueMessageBuffers: a queue message's encoding is made in its own
// block when it fits, and in a buffer apart otherwise, kept for the next
// large encoding (no allocation), and let go of when a small one goes
// inline again (a block never holds memory its message does not use); the
// bytes are those of a message made without the block.
func TestQueueMessageBuffers(t *testing.T) {
	qm := new(queueMessage)
	m := &qm.m
	encode := func(body string) []byte {
		t.Helper()
		f := frame.New(frame.SEND, "destination", "/queue/bench.queue", "content-type", "text/plain")
		*m = message{id: 1 << 60, dest: "/queue/bench.queue", pooled: true, sm: &qm.sm}
		m.fill(f.Headers, []byte(body), time.Time{}, true, qm)
		want := &message{id: 1 << 60, dest: "/queue/bench.queue"}
		want.fill(f.Headers, []byte(body), time.Time{}, true, nil)
		if string(m.shared) != string(want.shared) {
			t.Fatalf("encoding %q, want %q", m.shared, want.shared)
		}
		return m.shared
	}
	inline := func(b []byte) bool { return &b[0] == &qm.inline[0] }
	if b := encode(strings.Repeat("s", 117)); !inline(b) || len(b) != 224 {
		t.Fatalf("117-byte body: %d bytes, inline %v; want 224 inline", len(b), inline(b))
	}
	large := encode(strings.Repeat("L", 1000))
	if inline(large) || unsafe.SliceData(large) != unsafe.SliceData(qm.big) {
		t.Fatalf("1000-byte body: inline %v, in big %v", inline(large), unsafe.SliceData(large) == unsafe.SliceData(qm.big))
	}
	if b := encode(strings.Repeat("M", 990)); &b[0] != &large[0] {
		t.Fatal("a second large encoding did not reuse the large buffer")
	}
	if b := encode("small"); !inline(b) || qm.big != nil {
		t.Fatalf("small body after a large one: inline %v, large buffer still held %v", inline(b), qm.big != nil)
	}
}
