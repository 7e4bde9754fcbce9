package server

import (
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
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
