package tick

import (
	"testing"
	"time"
)

// Every calls f on each tick, in order, and returns once done is closed.
func TestEvery(t *testing.T) {
	done := make(chan struct{})
	ticks := make(chan time.Time)
	returned := make(chan struct{})
	go func() {
		Every(done, time.Millisecond, func(now time.Time) { ticks <- now })
		close(returned)
	}()
	var last time.Time
	for range 3 {
		now := <-ticks
		if !now.After(last) {
			t.Fatalf("tick %v after %v", now, last)
		}
		last = now
	}
	close(done)
	for {
		select {
		case <-ticks: // a tick already under way
		case <-returned:
			return
		}
	}
}
