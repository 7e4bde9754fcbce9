package server

import (
	"math"
	"strconv"
	"testing"
	"time"

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
	check(0)
	check(math.MaxUint64)
	for _, p := range pow10 {
		check(p - 1)
		check(p)
		check(p + 1)
	}
	for s := range 64 {
		check(1<<s - 1)
		check(1 << s)
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
