// Package deque is a FIFO ring buffer that also takes items at the front.
// The broker keeps in it a memory queue's waiting messages (a requeued
// message goes back to the head), the messages a topic subscription holds
// until it has prefetch credit, and each subscription's unacknowledged
// deliveries.
package deque

// Deque is a ring buffer. Every operation is O(1) amortized, whatever the
// depth; the ring grows by doubling and shrinks by half when a quarter
// full, so a queue that drains gives its memory back. The zero value is an
// empty deque. A Deque is not safe for concurrent use.
type Deque[T any] struct {
	buf  []T // len(buf) is 0 or a power of two
	head int // index of the first item
	n    int // number of items
}

// MinCap is the smallest ring kept once allocated; a deque never shrinks
// below it (and frees it only on Reset).
const MinCap = 16

// Len is the number of items.
func (d *Deque[T]) Len() int { return d.n }

// Cap is the number of slots of the ring (what the deque holds in memory).
func (d *Deque[T]) Cap() int { return len(d.buf) }

// PushBack appends x at the tail.
func (d *Deque[T]) PushBack(x T) {
	if d.n == len(d.buf) {
		d.resize(max(MinCap, 2*len(d.buf)))
	}
	d.buf[(d.head+d.n)&(len(d.buf)-1)] = x
	d.n++
}

// PushFront puts x before the first item.
func (d *Deque[T]) PushFront(x T) {
	if d.n == len(d.buf) {
		d.resize(max(MinCap, 2*len(d.buf)))
	}
	d.head = (d.head - 1) & (len(d.buf) - 1)
	d.buf[d.head] = x
	d.n++
}

// Front returns the first item; the deque must not be empty.
func (d *Deque[T]) Front() T { return d.buf[d.head] }

// PopFront removes and returns the first item; the deque must not be empty.
func (d *Deque[T]) PopFront() T {
	x := d.take(d.head)
	d.head = (d.head + 1) & (len(d.buf) - 1)
	d.shrink()
	return x
}

// PopFrontKeep is PopFront without shrinking the ring: for a deque that
// fills and drains over and over (a consumer's unacknowledged deliveries),
// which would otherwise give back and allocate its ring again on every
// cycle. Its owner calls Trim when it goes quiet.
func (d *Deque[T]) PopFrontKeep() T {
	x := d.take(d.head)
	d.head = (d.head + 1) & (len(d.buf) - 1)
	if d.n == 0 {
		d.head = 0
	}
	return x
}

// Trim gives back the memory of a deque popped with PopFrontKeep: the ring
// goes when empty, and shrinks to the smallest that holds the items
// otherwise (never below MinCap).
func (d *Deque[T]) Trim() {
	if d.n == 0 {
		d.Reset()
		return
	}
	c := len(d.buf)
	for c > MinCap && d.n <= c/2 {
		c /= 2
	}
	if c != len(d.buf) {
		d.resize(c)
	}
}

// Shrink halves the ring as many times as it is at most a quarter full
// (never below MinCap), in one move: for an owner that pops with
// PopFrontKeep and decides when its ring should shrink.
func (d *Deque[T]) Shrink() {
	c := len(d.buf)
	for c > MinCap && d.n <= c/4 {
		c /= 2
	}
	if c != len(d.buf) {
		d.resize(c)
	}
}

// PopBack removes and returns the last item; the deque must not be empty.
func (d *Deque[T]) PopBack() T {
	x := d.take((d.head + d.n - 1) & (len(d.buf) - 1))
	d.shrink()
	return x
}

// take empties slot i (no reference kept for the collector) and counts
// one item less.
func (d *Deque[T]) take(i int) T {
	var zero T
	x := d.buf[i]
	d.buf[i] = zero
	d.n--
	return x
}

// shrink halves the ring when a quarter full (never below MinCap).
func (d *Deque[T]) shrink() {
	if d.n == 0 {
		d.head = 0
	}
	if len(d.buf) > MinCap && d.n <= len(d.buf)/4 {
		d.resize(len(d.buf) / 2)
	}
}

// At returns the i-th item (0 is the front).
func (d *Deque[T]) At(i int) T { return d.buf[(d.head+i)&(len(d.buf)-1)] }

// Set replaces the i-th item (0 is the front).
func (d *Deque[T]) Set(i int, x T) { d.buf[(d.head+i)&(len(d.buf)-1)] = x }

// Reset empties the deque and drops its ring.
func (d *Deque[T]) Reset() { *d = Deque[T]{} }

// resize moves the items, in order, to a new ring of size c (a power of
// two, at least d.n).
func (d *Deque[T]) resize(c int) {
	nb := make([]T, c)
	if d.n > 0 {
		k := copy(nb, d.buf[d.head:min(d.head+d.n, len(d.buf))])
		copy(nb[k:], d.buf[:d.n-k])
	}
	d.buf, d.head = nb, 0
}
