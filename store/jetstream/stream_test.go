package jetstream

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stompica/stompica/store"
)

// Records past the in-flight bound wait for room instead of failing: all
// are confirmed, in order, with no goroutine per record, and never more
// than the bound await their acknowledgement.
func TestRecordManyInOrder(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	const n = 3 * maxRecordInflight
	base := runtime.NumGoroutine()
	var mu sync.Mutex
	var ok, peakGoroutines, peakPending int
	var errs []error
	all := make(chan struct{})
	for i := range n {
		s.Record("/stream/many", fmt.Appendf(nil, "m%d", i), func(err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else {
				ok++
			}
			if ok+len(errs) == n {
				close(all)
			}
		})
		if i%256 == 0 {
			peakGoroutines = max(peakGoroutines, runtime.NumGoroutine())
			peakPending = max(peakPending, s.rec.len())
		}
	}
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Fatalf("%d of %d records confirmed", ok, n)
	}
	if len(errs) > 0 {
		t.Fatalf("%d records refused, the first: %v", len(errs), errs[0])
	}
	// The old way, a goroutine per record awaiting its acknowledgement,
	// ran thousands at once here.
	if peakGoroutines > base+20 {
		t.Errorf("%d goroutines while recording, %d before", peakGoroutines, base)
	}
	if peakPending > maxRecordInflight {
		t.Errorf("%d records awaited their acknowledgement at once, bound %d", peakPending, maxRecordInflight)
	}
	got := make(chan uint64, n)
	var bad []string
	next := 0 // fn runs on one goroutine
	stop, err := s.Follow("/stream/many", store.StreamStart{Kind: store.StartFirst}, false, func(seq uint64, data []byte) {
		if want := fmt.Sprintf("m%d", next); string(data) != want {
			bad = append(bad, fmt.Sprintf("offset %d: %q, want %q", seq, data, want))
		}
		next++
		got <- seq
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for i := range n {
		select {
		case seq := <-got:
			if seq != uint64(i+1) {
				t.Fatalf("record %d has offset %d", i, seq)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("replayed %d of %d", i, n)
		}
	}
	if len(bad) > 0 {
		t.Fatalf("replayed out of order: %v", bad[:min(len(bad), 5)])
	}
}

// injectRecord adds a record that will never be acknowledged, sent at.
func injectRecord(s *Store, at time.Time, done func(error)) {
	r := &s.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	r.pending[r.next] = pendingRecord{done: done, at: at.UnixNano(), size: 1}
	r.inflightBytes++
}

// A record with no acknowledgement fails after PublishTimeout (the SEND
// gets an ERROR); one still waiting at Close fails with ErrClosed.
func TestRecordTimeoutAndClose(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s := openStore(t, t.TempDir(), func(o *Options) { o.PublishTimeout = timeout })
	errc := make(chan error, 2)
	start := time.Now()
	injectRecord(s, start, func(err error) { errc <- err })
	select {
	case err := <-errc:
		if !errors.Is(err, errTimeout) {
			t.Fatalf("overdue record: %v, want %v", err, errTimeout)
		}
		if d := time.Since(start); d < timeout {
			t.Fatalf("record failed after %v, before its timeout %v", d, timeout)
		}
	case <-time.After(10 * timeout):
		t.Fatal("an overdue record did not fail")
	}
	if n := s.rec.len(); n != 0 {
		t.Fatalf("%d records pending after the timeout", n)
	}
	// A real record is confirmed meanwhile.
	s.Record("/stream/t", []byte("ok"), func(err error) { errc <- err })
	if err := <-errc; err != nil {
		t.Fatalf("record: %v", err)
	}
	injectRecord(s, time.Now().Add(time.Hour), func(err error) { errc <- err })
	s.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("record pending at Close: %v, want %v", err, ErrClosed)
		}
	default:
		t.Fatal("Close returned with a record still pending")
	}
	s.Record("/stream/t", []byte("late"), func(err error) { errc <- err })
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("record after Close: %v, want %v", err, ErrClosed)
	}
}
