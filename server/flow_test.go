package server

import (
	"io"
	"log/slog"
	"testing"
)

// A pause lasts until the queues drain to 90% of the bound, not just below
// it: a broker at its budget must not flap between pausing and resuming on
// every message (the soak saw 1,556 pause/resume pairs a minute without it).
func TestInputGateHysteresis(t *testing.T) {
	s := &Server{opts: Options{MaxInputQueueSize: 100, MemoryBudget: 1 << 30}.withDefaults()}
	s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	g := &s.input
	g.s = s
	m := &message{shared: make([]byte, 10)}
	for range 100 {
		g.add(m)
	}
	if !g.blocked() {
		t.Fatal("100 of 100 messages queued: not blocked")
	}
	done := make(chan struct{})
	close(done) // wait returns at once; it only has to start the pause
	g.wait(done, func() bool { return false })
	if !g.paused.Load() || g.pauses.Load() != 1 {
		t.Fatalf("paused=%v pauses=%d, want a pause", g.paused.Load(), g.pauses.Load())
	}
	for i := range 10 {
		g.remove(m)
		if !g.paused.Load() || !g.blocked() {
			t.Fatalf("%d queued (resume mark 90): pause ended", 99-i)
		}
	}
	g.remove(m) // 89 queued: under the resume mark
	if g.paused.Load() || g.blocked() {
		t.Fatalf("89 queued: still paused=%v blocked=%v", g.paused.Load(), g.blocked())
	}
	g.add(m) // 90: not over the bound, so no new pause
	if g.blocked() {
		t.Fatal("90 of 100 queued after the pause ended: blocked again")
	}
}
