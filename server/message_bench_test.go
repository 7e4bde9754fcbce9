package server

import (
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

// BenchmarkNewMessage makes a queue message from a parsed SEND as
// stompbench's producers write it (destination, content-type,
// content-length, a 117-byte body) and gives it back to the pool: the
// SEND side's encoding alone. Ids carry a node id in their top bits, as
// in a broker.
func BenchmarkNewMessage(b *testing.B) {
	raw := benchSendFrame()
	p := frame.Parser{Version: frame.Version12}
	f, _, err := p.Parse(raw)
	if err != nil || f == nil {
		b.Fatalf("Parse = %v, %v", f, err)
	}
	s := benchServer(b)
	s.router.nextID.Store(3 << 48)
	b.ReportAllocs()
	for b.Loop() {
		m := s.router.newMessage(f, "/queue/bench", time.Time{})
		if m.bodyLen != len(benchBody) {
			b.Fatal("body lost")
		}
		m.release()
	}
}
