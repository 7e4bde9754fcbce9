package cluster

import "testing"

func TestIDs(t *testing.T) {
	for _, n := range []uint16{0, 1, 7, MaxNode} {
		base := IDBase(n)
		for _, id := range []uint64{base + 1, base + 1<<47, base + 1<<48 - 1} {
			if got := NodeOf(id); got != n {
				t.Errorf("NodeOf(%d) = %d, want %d", id, got, n)
			}
		}
	}
	if IDBase(0) != 0 {
		t.Error("node 0 (a single node) must keep today's ids, from 1")
	}
}
