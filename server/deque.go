package server

// deque is a FIFO ring buffer that also takes items at the front: a
// queue's waiting messages (a requeued message goes back to the head) and
// the messages a topic subscription holds until it has prefetch credit.
// Every operation is O(1) amortized, whatever the depth; the ring grows by
// doubling and shrinks by half when a quarter full, so a queue that drains
// gives its memory back. The zero value is an empty deque.
type deque[T any] struct {
	buf  []T // len(buf) is 0 or a power of two
	head int // index of the first item
	n    int // number of items
}

// dequeMinCap is the smallest ring kept once allocated; a deque never
// shrinks below it (and frees it only when reset).
const dequeMinCap = 16

func (d *deque[T]) len() int { return d.n }

// pushBack appends x at the tail.
func (d *deque[T]) pushBack(x T) {
	if d.n == len(d.buf) {
		d.resize(max(dequeMinCap, 2*len(d.buf)))
	}
	d.buf[(d.head+d.n)&(len(d.buf)-1)] = x
	d.n++
}

// pushFront puts x before the first item.
func (d *deque[T]) pushFront(x T) {
	if d.n == len(d.buf) {
		d.resize(max(dequeMinCap, 2*len(d.buf)))
	}
	d.head = (d.head - 1) & (len(d.buf) - 1)
	d.buf[d.head] = x
	d.n++
}

// front returns the first item; the deque must not be empty.
func (d *deque[T]) front() T { return d.buf[d.head] }

// popFront removes and returns the first item; the deque must not be empty.
func (d *deque[T]) popFront() T {
	var zero T
	x := d.buf[d.head]
	d.buf[d.head] = zero // no reference kept for the collector
	d.head = (d.head + 1) & (len(d.buf) - 1)
	d.n--
	if d.n == 0 {
		d.head = 0
	}
	if len(d.buf) > dequeMinCap && d.n <= len(d.buf)/4 {
		d.resize(len(d.buf) / 2)
	}
	return x
}

// at returns the i-th item (0 is the front).
func (d *deque[T]) at(i int) T { return d.buf[(d.head+i)&(len(d.buf)-1)] }

// reset empties the deque and drops its ring.
func (d *deque[T]) reset() { *d = deque[T]{} }

// resize moves the items, in order, to a new ring of size c (a power of
// two, at least d.n).
func (d *deque[T]) resize(c int) {
	nb := make([]T, c)
	if d.n > 0 {
		k := copy(nb, d.buf[d.head:min(d.head+d.n, len(d.buf))])
		copy(nb[k:], d.buf[:d.n-k])
	}
	d.buf, d.head = nb, 0
}
