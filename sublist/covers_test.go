package sublist

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stompica/stompica/internal/testutil"
)

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		rule, sub string
		want      bool
	}{
		{"/topic/a", "/topic/a", true},
		{"/topic/a", "/topic/b", false},
		{"/topic/a.b", "/topic/a/b", true},
		{"/topic/*", "/topic/*", true},
		{"/topic/*", "/topic/x", true},
		{"/topic/*", "/topic/#", false},
		{"/topic/*", "/topic/>", false},
		{"/topic/*", "/topic/*.*", false},
		{"/topic/>", "/topic/*", true},
		{"/topic/>", "/topic/*.*", true},
		{"/topic/>", "/topic/>", true},
		{"/topic/>", "/topic/#", false},
		{"/topic/>", "/topic/x.#", true},
		{"/topic/>", "/topic/#.x", false}, // covered in fact; the check is conservative
		{"/topic/>", "/topic/#.*", true},
		{"/topic/*.#", "/topic/#.*", true},
		{"/topic/#", "/topic/#", true},
		{"/topic/#", "/topic/>", true},
		{"/topic/#", "/topic/#.#", true},
		{"/topic/#", "/topic", true},
		{"/topic/#", "/topicx/#", false},
		{"#", "#", true},
		{"#", "/a/*/b/>", true},
		{"*", "/a", false}, // "/a" is two segments: "" and "a"
		{"*.*", "/a", true},
		{"/topic/public.*", "/topic/#", false},
		{"/topic/public.*", "/topic/public.#", false},
		{"/topic/public.*", "/topic/*.x", false},
		{"/topic/public.*", "/topic/public.*", true},
		{"/a/#/z", "/a/b/#/c/z", true},
		{"/a/#/z", "/a/#/c", false},
		{"/a/*/z", "/a/>/z", true}, // a non-trailing ">" is one segment
		{"/a/>", "/a/>/z", true},
		{"#orders", "#orders", true},
		{"#orders", "#", false},
		{"", "", true},
		{"", "*", false}, // "*" also matches "x"
		{"*", "", true},
		{"#", "", true},
		{">", "", true},
		{"a.>", "a", false},
		{"a.#", "a", true},
	} {
		if got := Covers(tc.rule, tc.sub); got != tc.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tc.rule, tc.sub, got, tc.want)
		}
	}
}

// instance returns a random destination that pattern matches.
func instance(r *rand.Rand, pattern string) string {
	lits := []string{"a", "b", "c", "d"}
	segs := strings.Split(pattern, "/")
	var out []string
	for i, s := range segs {
		switch {
		case s == "*" || s == ">" && i < len(segs)-1:
			out = append(out, lits[r.IntN(len(lits))])
		case s == ">":
			for range 1 + r.IntN(3) {
				out = append(out, lits[r.IntN(len(lits))])
			}
		case s == "#":
			for range r.IntN(3) {
				out = append(out, lits[r.IntN(len(lits))])
			}
		default:
			out = append(out, s)
		}
	}
	return strings.Join(out, "/")
}

// TestCoversSound checks Covers against Matches: for a concrete
// destination they agree, and whenever a rule is said to cover a pattern,
// it matches every destination the pattern matches.
func TestCoversSound(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	covered := 0
	for range 20000 {
		rule, sub := testutil.RandPattern(r, true), testutil.RandPattern(r, r.IntN(2) == 0)
		got := Covers(rule, sub)
		if !IsPattern(sub) {
			if want := Matches(rule, sub); got != want {
				t.Fatalf("Covers(%q, %q) = %v, Matches = %v", rule, sub, got, want)
			}
			continue
		}
		if !got {
			continue
		}
		covered++
		for range 20 {
			d := instance(r, sub)
			if !Matches(sub, d) {
				t.Fatalf("test bug: %q does not match its instance %q", sub, d)
			}
			if !Matches(rule, d) {
				t.Fatalf("Covers(%q, %q) but %q matches the subscription and not the rule", rule, sub, d)
			}
		}
	}
	if covered < 500 {
		t.Errorf("only %d covered wildcard pairs exercised", covered)
	}
}

// TestIsPatternAgreesWithSplit checks the allocation-free IsPattern
// against the segment rule (split, then a whole-segment wildcard).
func TestIsPatternAgreesWithSplit(t *testing.T) {
	for _, d := range []string{"", "#", "*", ">", "a.*", "a/>", ".#.", "/topic/#", "#orders", "*x", "x>",
		"a..b", "/", "a.b/c", "**", "a/#/b", "a.*b", ">.", "./*", "##"} {
		if got, want := IsPattern(d), slices.ContainsFunc(split(d, nil), isWild); got != want {
			t.Errorf("IsPattern(%q) = %v, want %v", d, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { IsPattern("/topic/prices.eu.stocks.*") }); n != 0 {
		t.Errorf("IsPattern allocates %v times", n)
	}
}
