// Package tick runs periodic work until told to stop: the one ticker loop
// that the broker's housekeeping (ack timeouts) and the store's (overdue
// publishes) share.
package tick

import "time"

// Every calls f with the tick's time, every period, until done is closed;
// it returns then. f runs on the caller's goroutine, one call at a time.
func Every(done <-chan struct{}, period time.Duration, f func(now time.Time)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			f(now)
		}
	}
}
