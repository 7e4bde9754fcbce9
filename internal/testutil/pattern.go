package testutil

import (
	"math/rand/v2"
	"strings"
)

// RandPattern returns a random destination pattern of one to five
// segments over a small alphabet ("a", "b", "c"), with the wildcards "*",
// ">" and "#" among them when wild: for property tests of pattern rules
// (sublist, and the ACL built on it).
func RandPattern(r *rand.Rand, wild bool) string {
	segs := []string{"a", "b", "c"}
	if wild {
		segs = append(segs, "*", ">", "#", "*", "#")
	}
	out := make([]string, 1+r.IntN(5))
	for i := range out {
		out[i] = segs[r.IntN(len(segs))]
	}
	return strings.Join(out, "/")
}
