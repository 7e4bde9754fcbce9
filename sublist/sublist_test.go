package sublist

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestIsPattern(t *testing.T) {
	for dest, want := range map[string]bool{
		"":             false,
		"/topic/a":     false,
		"/topic/*":     true,
		"/topic/>":     true,
		"/topic/#":     true,
		"a.*.b":        true,
		"#":            true,
		"#orders":      false,
		"/queue/#jobs": false,
		"foo*":         false,
		"a.>b":         false,
		"a/b.c":        false,
	} {
		if got := IsPattern(dest); got != want {
			t.Errorf("IsPattern(%q) = %v, want %v", dest, got, want)
		}
	}
}

var matchCases = []struct {
	pattern, dest string
	want          bool
}{
	// literals and separators
	{"/topic/a", "/topic/a", true},
	{"/topic/a", "/topic/b", false},
	{"/topic/a.b", "/topic/a/b", true},
	{"/topic/a.b", "/topic.a.b", true},
	{"/topic/a", "/topic/a/", false},
	{"/topic/a/", "/topic/a/", true},
	{"", "", true},
	{"", "a", false},
	{"#orders", "#orders", true},
	{"#orders", "orders", false},
	{"/queue/#orders", "/queue/#orders", true},
	{"/queue/#orders", "/queue/x", false},
	{"foo*", "foox", false},
	{"foo*", "foo*", true},
	// *
	{"/topic/*", "/topic/a", true},
	{"/topic/*", "/topic/", true},
	{"/topic/*", "/topic", false},
	{"/topic/*", "/topic/a/b", false},
	{"*.b", "a.b", true},
	{"*.*", "a.b", true},
	{"*", "", true},
	{"*", "a", true},
	{"*", "a.b", false},
	// >
	{"/topic/>", "/topic/a", true},
	{"/topic/>", "/topic/a/b.c", true},
	{"/topic/>", "/topic", false},
	{">", "", true},
	{">", "a.b.c", true},
	{"a.>.c", "a.b.c", true},
	{"a.>.c", "a.b.x.c", false},
	{"a.>.>", "a.b", false},
	{"a.>.>", "a.b.c.d", true},
	// #
	{"#", "", true},
	{"#", "a.b.c", true},
	{"/topic/#", "/topic", true},
	{"/topic/#", "/topic/x/y", true},
	{"/topic/#", "/topics", false},
	{"a.#.b", "a.b", true},
	{"a.#.b", "a.x.b", true},
	{"a.#.b", "a.x.y.b", true},
	{"a.#.b", "a.x.y.c", false},
	{"a.#.b", "b", false},
	{"#.b", "b", true},
	{"#.b", "x.y.b", true},
	{"#.b", "x.y.c", false},
	{"#.#", "a", true},
	{"#.#", "", true},
	{"a.#.b.#.c", "a.b.c", true},
	{"a.#.b.#.c", "a.x.b.y.z.c", true},
	{"a.#.b.#.c", "a.x.c.b", false},
	{"#.*", "", true},
	{"#.*.*", "a", false},
	{"#.>", "a", true},
	{"#.a.>", "x.a", false},
	{"#.a.>", "x.a.y", true},
	{"a.#", "a", true},
	{"a.#", "b", false},
	{"#.#.>", "a.b.c", true},
	{"a.#.#.#", "a.x.y", true},
	{"#.x.#.>", "x.x.x.x", true},
	{"#.x.#.>", "x", false},
	{"a.>.#", "a", false},
	{"a.>.#", "a.b.c", true},
}

func TestMatches(t *testing.T) {
	for _, c := range matchCases {
		if got := Matches(c.pattern, c.dest); got != c.want {
			t.Errorf("Matches(%q, %q) = %v, want %v", c.pattern, c.dest, got, c.want)
		}
	}
}

// TestTrieCases checks each case both alone in a trie and with all other
// cases' patterns present.
func TestTrieCases(t *testing.T) {
	all := New[int](0)
	for i, c := range matchCases {
		all.Insert(c.pattern, i)
	}
	for i, c := range matchCases {
		s := New[int](-1)
		s.Insert(c.pattern, i)
		if got := len(s.Match(c.dest)) == 1; got != c.want {
			t.Errorf("alone: Match(%q) with pattern %q = %v, want %v", c.dest, c.pattern, got, c.want)
		}
		if got := slices.Contains(all.Match(c.dest), i); got != c.want {
			t.Errorf("all: Match(%q) contains pattern %q = %v, want %v", c.dest, c.pattern, got, c.want)
		}
	}
}

func sorted(v []int) []int { return slices.Sorted(slices.Values(v)) }

func TestInsertRemove(t *testing.T) {
	s := New[string](0)
	s.Insert("/topic/a", "x")
	s.Insert("/topic/a", "x") // duplicate pair: stored once
	s.Insert("/topic.a", "x") // same segments: same pair
	s.Insert("/topic/*", "x") // same value, other pattern: reported again
	s.Insert("/topic/>", "y")
	s.Insert("/topic/#", "z")
	if n := s.Count(); n != 4 {
		t.Fatalf("Count = %d, want 4", n)
	}
	got := slices.Sorted(slices.Values(s.Match("/topic/a")))
	if want := []string{"x", "x", "y", "z"}; !slices.Equal(got, want) {
		t.Fatalf("Match = %q, want %q", got, want)
	}
	if s.Remove("/topic/b", "x") || s.Remove("/topic/a", "nope") || s.Remove("/a/b/c/d", "x") {
		t.Fatal("Remove of absent pair returned true")
	}
	if !s.Remove("/topic/a", "x") || s.Remove("/topic/a", "x") {
		t.Fatal("Remove of present pair: wrong results")
	}
	for _, p := range []string{"/topic/*", "/topic/>", "/topic/#"} {
		if !s.Remove(p, map[string]string{"/topic/*": "x", "/topic/>": "y", "/topic/#": "z"}[p]) {
			t.Fatalf("Remove(%q) = false", p)
		}
	}
	if n := s.Count(); n != 0 {
		t.Fatalf("Count = %d, want 0", n)
	}
	if r := s.Match("/topic/a"); len(r) != 0 {
		t.Fatalf("Match after removing all = %q", r)
	}
	if !s.root.empty() {
		t.Fatalf("trie not pruned: %+v", s.root)
	}
}

func TestManyValuesOneNode(t *testing.T) {
	s := New[int](0)
	for i := range 100 {
		s.Insert("/queue/q", i)
		s.Insert("/queue/q", i)
	}
	if s.Count() != 100 || len(s.Match("/queue/q")) != 100 {
		t.Fatalf("Count = %d, Match len = %d", s.Count(), len(s.Match("/queue/q")))
	}
	for i := 0; i < 100; i += 2 {
		if !s.Remove("/queue/q", i) || s.Remove("/queue/q", i) {
			t.Fatalf("Remove(%d) wrong", i)
		}
	}
	got := sorted(s.Match("/queue/q"))
	for i, v := range got {
		if v != 2*i+1 {
			t.Fatalf("after removals Match = %v", got)
		}
	}
}

func TestCacheInvalidation(t *testing.T) {
	s := New[int](0)
	s.Insert("/topic/a", 1)
	first := s.Match("/topic/a")
	if !slices.Equal(first, []int{1}) {
		t.Fatalf("Match = %v", first)
	}
	if r := s.Match("/topic/a"); &r[0] != &first[0] {
		t.Fatal("second Match was not served from the cache")
	}
	if r := s.Match("/topic/none"); r != nil { // cached negative result
		t.Fatalf("Match = %v", r)
	}
	s.Insert("/topic/*", 2)
	if r := sorted(s.Match("/topic/a")); !slices.Equal(r, []int{1, 2}) {
		t.Fatalf("after Insert Match = %v", r)
	}
	if r := s.Match("/topic/none"); !slices.Equal(r, []int{2}) {
		t.Fatalf("after Insert negative entry Match = %v", r)
	}
	s.Remove("/topic/a", 1)
	if r := s.Match("/topic/a"); !slices.Equal(r, []int{2}) {
		t.Fatalf("after Remove Match = %v", r)
	}
	if !slices.Equal(first, []int{1}) {
		t.Fatalf("handed-out slice changed: %v", first)
	}
}

func TestCacheBounded(t *testing.T) {
	s := New[int](8)
	s.Insert(">", 1)
	for i := range 100 {
		if r := s.Match(fmt.Sprint("/d/", i)); !slices.Equal(r, []int{1}) {
			t.Fatalf("Match = %v", r)
		}
		if len(s.cache) > 8 {
			t.Fatalf("cache size %d > 8", len(s.cache))
		}
	}
	if s := New[int](-1); s.Match("x") != nil || len(s.cache) != 0 {
		t.Fatal("negative cacheSize: unexpected cache")
	}
	var zero Sublist[int] // usable, uncached
	zero.Insert("a.*", 1)
	if r := zero.Match("a.b"); !slices.Equal(r, []int{1}) || zero.Count() != 1 {
		t.Fatalf("zero Sublist: Match = %v", r)
	}
}

func TestCacheHitAllocs(t *testing.T) {
	s := New[int](0)
	s.Insert("/topic/a", 1)
	s.Insert("/topic/>", 2)
	s.Match("/topic/a")
	if n := testing.AllocsPerRun(100, func() { s.Match("/topic/a") }); n != 0 {
		t.Fatalf("cache hit allocs = %v, want 0", n)
	}
}

func TestConcurrent(t *testing.T) {
	s := New[int](64)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			var kept [][]int
			for i := range 2000 {
				p := fmt.Sprintf("/t/%d/%s", r.IntN(10), []string{"*", ">", "#", "x"}[r.IntN(4)])
				switch i % 3 {
				case 0:
					s.Insert(p, g)
				case 1:
					s.Remove(p, g)
				default:
					m := s.Match(fmt.Sprintf("/t/%d/x", r.IntN(10)))
					kept = append(kept, m)
				}
			}
			for _, m := range kept { // handed-out slices stay readable
				for _, v := range m {
					_ = v
				}
			}
		})
	}
	wg.Wait()
}

var segAlphabet = []string{"a", "b", "", "*", ">", "#", "#a"}

func randName(r *rand.Rand, alphabet []string) string {
	var b strings.Builder
	for i := range 1 + r.IntN(5) {
		if i > 0 {
			b.WriteByte("/."[r.IntN(2)])
		}
		b.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

// TestAgreesWithMatches is a property test: the trie and the brute-force
// Matches must agree on random patterns and destinations.
func TestAgreesWithMatches(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		s := New[int](16)
		var pats []string
		for i := range 200 {
			p := randName(r, segAlphabet)
			pats = append(pats, p)
			s.Insert(p, i)
		}
		for i := 0; i < len(pats); i += 3 { // exercise removal and pruning
			s.Remove(pats[i], i)
		}
		for range 200 {
			d := randName(r, segAlphabet[:3])
			if r.IntN(10) == 0 {
				d = randName(r, segAlphabet) // wildcards in dests are literals
			}
			var want []int
			for i, p := range pats {
				if i%3 != 0 && Matches(p, d) {
					want = append(want, i)
				}
			}
			if got := sorted(s.Match(d)); !slices.Equal(got, want) {
				t.Fatalf("round %d: Match(%q) = %v, want %v", round, d, got, want)
			}
		}
	}
}

func FuzzMatch(f *testing.F) {
	for _, c := range matchCases {
		f.Add(c.pattern, c.dest)
	}
	f.Add("#.#.#.#.#", "a.b.c.d.e.f.g.h")
	f.Add("a.>.#.*.>", "a/b/c/d")
	f.Fuzz(func(t *testing.T, pattern, dest string) {
		s := New[int](0)
		s.Insert(pattern, 1)
		s.Insert("#", 2) // a second entry that always matches
		want := Matches(pattern, dest)
		for range 2 { // uncached, then cached
			got := sorted(s.Match(dest))
			if (len(got) == 2) != want || len(got) == 0 || got[len(got)-1] != 2 {
				t.Fatalf("Match(%q) with pattern %q = %v, Matches = %v", dest, pattern, got, want)
			}
		}
		if !s.Remove(pattern, 1) || s.Count() != 1 {
			t.Fatalf("Remove(%q) failed, Count = %d", pattern, s.Count())
		}
		if IsPattern(pattern) != slices.ContainsFunc(split(pattern, nil), isWild) {
			t.Fatal("IsPattern disagrees")
		}
	})
}

func benchMatch(b *testing.B, s *Sublist[int], dest string, want int) {
	b.Helper()
	if n := len(s.Match(dest)); n != want {
		b.Fatalf("Match(%q) = %d values, want %d", dest, n, want)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Match(dest)
	}
}

func BenchmarkMatchExact(b *testing.B) {
	s := New[int](-1)
	s.Insert("/topic/orders.eu.paris", 1)
	s.Insert("/topic/orders.eu.lyon", 2)
	benchMatch(b, s, "/topic/orders.eu.paris", 1)
}

func BenchmarkMatchStar(b *testing.B) {
	s := New[int](-1)
	s.Insert("/topic/orders.*.paris", 1)
	s.Insert("/topic/orders.eu.*", 2)
	benchMatch(b, s, "/topic/orders.eu.paris", 2)
}

func BenchmarkMatchGT(b *testing.B) {
	s := New[int](-1)
	s.Insert("/topic/>", 1)
	s.Insert("/topic/orders.>", 2)
	benchMatch(b, s, "/topic/orders.eu.paris", 2)
}

func BenchmarkMatch100kSubs(b *testing.B) {
	s := New[int](-1) // no cache: measure the trie walk itself
	for i := range 100_000 {
		s.Insert(fmt.Sprintf("/queue/orders.%d", i), i)
	}
	s.Insert("/queue/orders.*", -1)
	s.Insert("/queue/>", -2)
	s.Insert("/queue/#.audit", -3)
	benchMatch(b, s, "/queue/orders.54321", 3)
}

func BenchmarkMatchCached(b *testing.B) {
	s := New[int](0)
	s.Insert("/topic/orders.*.paris", 1)
	s.Insert("/topic/#", 2)
	benchMatch(b, s, "/topic/orders.eu.paris", 2)
}

func BenchmarkMatchUncached(b *testing.B) {
	s := New[int](-1)
	s.Insert("/topic/orders.*.paris", 1)
	s.Insert("/topic/#", 2)
	benchMatch(b, s, "/topic/orders.eu.paris", 2)
}
