package server

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestAckListMatchesSlice drives an ackList and a plain slice of ids with
// the same random deliveries (mostly ascending ids, sometimes not, as with
// redeliveries), individual and cumulative takes and put-backs, and
// compares them after every step.
func TestAckListMatchesSlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var l ackList
	var ref []uint64
	msgs := map[uint64]*message{}
	next := uint64(0)
	msg := func(id uint64) *message {
		if msgs[id] == nil {
			msgs[id] = &message{id: id}
		}
		return msgs[id]
	}
	pick := func() uint64 {
		if len(ref) == 0 || rng.IntN(10) == 0 {
			return next + 1 + uint64(rng.IntN(3)) // not pending
		}
		if rng.IntN(2) == 0 {
			return ref[rng.IntN(min(3, len(ref)))] // near the front: the usual order
		}
		return ref[rng.IntN(len(ref))]
	}
	for step := range 100_000 {
		switch r := rng.IntN(20); {
		case r < 9 && len(ref) < 3000:
			next++
			id := next
			if rng.IntN(50) == 0 && next > 10 {
				id = next - 10 // an older id comes again (a redelivery)
				if slices.Contains(ref, id) {
					continue
				}
			}
			l.push(msg(id), nil, 0)
			ref = append(ref, id)
		case r < 17:
			id := pick()
			i := l.find(id)
			j := slices.Index(ref, id)
			if (i >= 0) != (j >= 0) {
				t.Fatalf("step %d: find(%d) = %d, reference index %d", step, id, i, j)
			}
			if i < 0 {
				continue
			}
			if u := l.takeAt(i); u.id != id || u.m.id != id {
				t.Fatalf("step %d: takeAt gave %d, want %d", step, u.id, id)
			}
			ref = slices.Delete(ref, j, j+1)
		case r < 19:
			id := pick()
			i, j := l.find(id), slices.Index(ref, id)
			if i < 0 || j < 0 {
				continue
			}
			got := l.takeThrough(i, nil)
			var ids []uint64
			for _, u := range got {
				ids = append(ids, u.id)
			}
			if !slices.Equal(ids, ref[:j+1]) {
				t.Fatalf("step %d: takeThrough(%d) = %v, want %v", step, id, ids, ref[:j+1])
			}
			ref = ref[j+1:]
		default:
			if len(ref) == 0 {
				continue
			}
			// Take the oldest two and put them back (a failed ACK).
			k := min(2, len(ref))
			got := l.takeThrough(l.find(ref[k-1]), nil)
			l.pushFront(got)
		}
		if l.len() != len(ref) {
			t.Fatalf("step %d: len %d, want %d", step, l.len(), len(ref))
		}
		if step%97 == 0 {
			var ids []uint64
			for u := range l.all() {
				ids = append(ids, u.id)
			}
			if !slices.Equal(ids, ref) {
				t.Fatalf("step %d: list %v, want %v", step, ids, ref)
			}
		}
		if holes := l.d.Len() - l.len(); holes > l.len()+33 {
			t.Fatalf("step %d: %d holes for %d deliveries", step, holes, l.len())
		}
	}
}

// TestAckListOutOfOrderBounded: a delivery never acknowledged while the
// ones after it are, one by one, keeps the ring about the size of what is
// pending, not of what went through.
func TestAckListOutOfOrderBounded(t *testing.T) {
	var l ackList
	first := &message{id: 1}
	l.push(first, nil, 0)
	m := &message{}
	for id := uint64(2); id < 200_000; id++ {
		m.id = id
		l.push(m, nil, 0)
		if i := l.find(id); i < 0 {
			t.Fatalf("delivery %d not found", id)
		} else {
			l.takeAt(i)
		}
	}
	if l.len() != 1 || l.d.Cap() > 128 {
		t.Errorf("%d pending in a ring of %d slots", l.len(), l.d.Cap())
	}
	if i := l.find(1); i != 0 {
		t.Errorf("oldest delivery at %d", i)
	}
}

// BenchmarkAckListIndividual: 1000 deliveries pending, each ACK is of the
// oldest one (client-individual consumers acknowledge in order) and a new
// delivery follows; one op is one ACK plus one delivery.
func BenchmarkAckListIndividual(b *testing.B) {
	var l ackList
	msgs := make([]message, 1000)
	for i := range msgs {
		msgs[i].id = uint64(i + 1)
		l.push(&msgs[i], nil, 0)
	}
	b.ReportAllocs()
	next := uint64(len(msgs))
	for i := range b.N {
		m := &msgs[i%len(msgs)]
		l.takeAt(l.find(m.id))
		next++
		m.id = next
		l.push(m, nil, 0)
	}
}

// TestQueuePathRecycles: once warm, a client-individual queue message
// allocates nothing from SEND to ACK: the message and its encoding come
// back from the ACK (message.release), and no ACK moves the others.
func TestQueuePathRecycles(t *testing.T) {
	s := routerServer(t, Options{})
	var b batch
	sub := newSubscription(benchConn(s), "q", "/queue/recycle", ackIndividual, 100, 1)
	s.router.subscribe(sub, &b)
	f := benchSend("/queue/recycle")
	send := func() {
		m := s.router.newMessage(f, "/queue/recycle", time.Time{})
		id := m.id
		s.router.publish(m, &b) //nolint:errcheck // memory store
		if ok, err := s.router.ack(sub, id, false, &b); !ok || err != nil {
			t.Fatalf("ack of message %d: %v, %v", id, ok, err)
		}
		b.flush()
	}
	for range 100 {
		send()
	}
	if n := testing.AllocsPerRun(1000, send); n >= 0.5 && !raceEnabled {
		t.Errorf("%.2f allocations per queue message, want none", n)
	}
	if n := s.input.msgs.Load(); n != 0 {
		t.Errorf("memory budget counts %d messages after every ACK", n)
	}
}

// TestAckListNotesPooled: each delivery records whether its message is a
// pooled queue message when it is pushed, beside when it went out (to the
// nanosecond but its lowest bit), and keeps both through an ACK out
// of order, a cumulative take and a put back (an ACK recycles by it,
// without reading the message).
func TestAckListNotesPooled(t *testing.T) {
	var l ackList
	ms := make([]*message, 6)
	for i := range ms {
		ms[i] = &message{id: uint64(i + 1), pooled: i%2 == 0}
	}
	const sent = int64(1_764_000_000_123_456_788) // Unix ns (even)
	l.pushAll(ms[:3], nil, sent)
	l.pushAll(ms[3:], nil, sent+1) // the lowest bit is the flag's
	check := func(u unacked) {
		t.Helper()
		if u.m == nil || u.pooled() != u.m.pooled || u.pooled() != (u.id%2 == 1) || u.sentAt() != sent {
			t.Fatalf("delivery %d: pooled %v, message pooled %v, sent at %d (want %d)", u.id, u.pooled(), u.m != nil && u.m.pooled, u.sentAt(), sent)
		}
	}
	i := l.find(4)
	if i < 0 {
		t.Fatal("delivery 4 not found")
	}
	check(l.takeAt(i))
	taken := l.takeThrough(l.find(3), nil)
	if len(taken) != 3 {
		t.Fatalf("took %d deliveries through 3, want 3", len(taken))
	}
	for _, u := range taken {
		check(u)
	}
	l.pushFront(taken)
	n := 0
	for u := range l.all() {
		check(u)
		n++
	}
	if n != 5 {
		t.Fatalf("%d deliveries left, want 5", n)
	}
}
