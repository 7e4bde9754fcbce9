package deque

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDequeMatchesSlice drives the deque and a plain slice with the same
// random pushes and pops (across growth, wrap-around and shrinking) and
// compares them after every step.
func TestDequeMatchesSlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var d Deque[int]
	var ref []int
	next := 0
	for step := range 200_000 {
		// Phases that grow, then drain, so the ring both grows and shrinks.
		growing := (step/20_000)%2 == 0
		switch r := rng.IntN(12); {
		case r >= 10 && len(ref) > 0:
			i := rng.IntN(len(ref))
			if r == 10 {
				next++
				d.Set(i, next)
				ref[i] = next
			} else {
				if got, want := d.PopBack(), ref[len(ref)-1]; got != want {
					t.Fatalf("step %d: popBack = %d, want %d", step, got, want)
				}
				ref = ref[:len(ref)-1]
			}
		case r < 3 && (growing || r < 1):
			next++
			d.PushBack(next)
			ref = append(ref, next)
		case r < 5 && (growing || r < 4):
			next++
			d.PushFront(next)
			ref = slices.Insert(ref, 0, next)
		default:
			if len(ref) == 0 {
				continue
			}
			if got := d.Front(); got != ref[0] {
				t.Fatalf("step %d: front = %d, want %d", step, got, ref[0])
			}
			if got := d.PopFront(); got != ref[0] {
				t.Fatalf("step %d: popFront = %d, want %d", step, got, ref[0])
			}
			ref = ref[1:]
		}
		if d.Len() != len(ref) {
			t.Fatalf("step %d: len = %d, want %d", step, d.Len(), len(ref))
		}
		if len(ref) > 0 && (d.At(len(ref)-1) != ref[len(ref)-1] || d.At(len(ref)/2) != ref[len(ref)/2]) {
			t.Fatalf("step %d: at() disagrees with the reference", step)
		}
	}
}

// TestDequeReleasesMemory: a deque that held 500,000 items and drained
// keeps a ring of the minimum size, and popped slots hold no reference.
func TestDequeReleasesMemory(t *testing.T) {
	var d Deque[*int]
	const n = 500_000
	m := new(int)
	for range n {
		d.PushBack(m)
	}
	if c := len(d.buf); c < n || c > 2*n {
		t.Fatalf("ring of %d slots for %d items", c, n)
	}
	for range n - 10 {
		d.PopFront()
	}
	if c := len(d.buf); c > 64 {
		t.Errorf("ring still has %d slots holding 10 items", c)
	}
	for i := range d.buf {
		inRing := (i-d.head)&(len(d.buf)-1) < d.n
		if !inRing && d.buf[i] != nil {
			t.Fatalf("slot %d outside the items still references a message", i)
		}
	}
	for d.Len() > 0 {
		d.PopFront()
	}
	if c := len(d.buf); c != MinCap {
		t.Errorf("empty deque keeps %d slots, want %d", c, MinCap)
	}
}

// TestDequeKeepAndTrim: PopFrontKeep keeps the ring through fill and drain
// cycles (no reallocation), Trim then shrinks it to fit, or drops it when
// empty.
func TestDequeKeepAndTrim(t *testing.T) {
	var d Deque[int]
	for cycle := range 5 {
		for i := range 100 {
			d.PushBack(i)
		}
		if d.Cap() != 128 {
			t.Fatalf("cycle %d: ring of %d for 100 items", cycle, d.Cap())
		}
		for i := range 100 {
			if got := d.PopFrontKeep(); got != i {
				t.Fatalf("cycle %d: popped %d, want %d", cycle, got, i)
			}
		}
		if d.Len() != 0 || d.Cap() != 128 {
			t.Fatalf("cycle %d: %d items in a ring of %d after draining, want 0 in 128", cycle, d.Len(), d.Cap())
		}
	}
	allocs := testing.AllocsPerRun(20, func() {
		for i := range 100 {
			d.PushBack(i)
		}
		for range 100 {
			d.PopFrontKeep()
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per fill and drain, want 0", allocs)
	}
	for i := range 20 {
		d.PushBack(i)
	}
	d.Trim()
	if d.Len() != 20 || d.Cap() != 32 {
		t.Errorf("trimmed: %d items in a ring of %d, want 20 in 32", d.Len(), d.Cap())
	}
	for i := range 20 {
		if got := d.PopFrontKeep(); got != i {
			t.Fatalf("after trim: popped %d, want %d", got, i)
		}
	}
	d.Trim()
	if d.Cap() != 0 {
		t.Errorf("trimmed when empty: ring of %d, want none", d.Cap())
	}
}

// TestDequeShrink: Shrink halves the ring, in one move and with the items
// in order across a wrap-around, while it is at most a quarter full, and
// never below MinCap.
func TestDequeShrink(t *testing.T) {
	var d Deque[int]
	for i := range 1000 {
		d.PushBack(i)
	}
	for range 900 { // the head moves past the middle of the ring
		d.PopFrontKeep()
	}
	for i := 1000; i < 1150; i++ { // and the tail wraps around
		d.PushBack(i)
	}
	if d.Len() != 250 || d.Cap() != 1024 {
		t.Fatalf("len %d cap %d, want 250 and 1024", d.Len(), d.Cap())
	}
	d.Shrink()
	if d.Cap() != 512 {
		t.Fatalf("250 items: ring of %d after Shrink, want 512", d.Cap())
	}
	for i := range d.Len() {
		if d.At(i) != 900+i {
			t.Fatalf("item %d is %d after Shrink, want %d", i, d.At(i), 900+i)
		}
	}
	for d.Len() > 3 {
		d.PopFrontKeep()
	}
	d.Shrink()
	if d.Cap() != MinCap || d.Len() != 3 || d.Front() != 1147 {
		t.Errorf("3 items: ring of %d holding %d from %d after Shrink, want %d holding 3 from 1147", d.Cap(), d.Len(), d.Front(), MinCap)
	}
}
