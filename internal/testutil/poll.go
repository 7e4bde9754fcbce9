// Package testutil holds what the tests of several packages (server, auth,
// sublist, e2e, cmd/stompica) share: the one polling helper (poll.go), a
// dialer and minimal reader of STOMP frames for raw test clients
// (stomp.go), files, bcrypt hashes and a shared log buffer (files.go), and
// random patterns (pattern.go). Only tests import it.
package testutil

import (
	"testing"
	"time"
)

// PollEvery is how long WaitFor sleeps between two looks.
const PollEvery = 5 * time.Millisecond

// Poll calls done every pause until it returns true (Poll returns true) or
// timeout has passed (Poll returns false). Every test that waits for a
// state it cannot be told about polls through it; waits for time itself to
// pass (a TTL, heart-beat intervals) sleep instead.
func Poll(timeout, pause time.Duration, done func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
	}
	return true
}

// WaitFor polls cond every PollEvery until it holds, failing the test
// after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, PollEvery, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}
