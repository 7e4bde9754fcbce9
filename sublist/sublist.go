// Package sublist stores (destination pattern, value) pairs in a trie and
// finds every value whose pattern matches a concrete destination.
//
// # Segments
//
// A destination or pattern is split into segments on both '/' and '.'; the
// two separators are interchangeable. "/topic/a.b" therefore has the segments
// "", "topic", "a" and "b". Empty segments are ordinary literal segments, and
// the empty string is a single empty segment. Because only the segment
// sequence matters, "/topic/a.b" and "/topic/a/b" denote the same pattern (and
// the same destination).
//
// # Wildcards
//
// A segment is a wildcard only when the whole segment is one of:
//
//   - "*" matches exactly one segment.
//   - ">" as the last segment matches one or more trailing segments
//     ("/topic/>" matches "/topic/a" and "/topic/a/b" but not "/topic").
//     A ">" that is not the last segment matches exactly one segment, like "*".
//   - "#" matches zero or more segments anywhere (RabbitMQ style):
//     "a.#.b" matches "a.b", "a.x.b" and "a.x.y.b"; "/topic/#" matches
//     "/topic" and "/topic/x/y".
//
// Any other segment, such as "#orders" or "foo*", is a literal. Destinations
// passed to Match are always taken literally.
package sublist

import (
	"slices"
	"strings"
	"sync"
)

// DefaultCacheSize is the match cache capacity used when New is given 0.
const DefaultCacheSize = 4096

// IsPattern reports whether dest contains a wildcard segment ("*", ">" or "#"
// as a whole segment). It does not allocate.
func IsPattern(dest string) bool {
	start := 0
	for i := 0; i <= len(dest); i++ {
		if i == len(dest) || dest[i] == '/' || dest[i] == '.' {
			if i-start == 1 && (dest[start] == '*' || dest[start] == '>' || dest[start] == '#') {
				return true
			}
			start = i + 1
		}
	}
	return false
}

// Matches reports whether pattern matches the concrete destination dest. It
// does not use a trie and is meant for one-off checks (Covers is the check
// for a pattern against a pattern). It runs in
// O(len(pattern segments) * len(dest segments)) time.
func Matches(pattern, dest string) bool {
	p, d := split(pattern, nil), split(dest, nil)
	// cur[k] reports whether p[:k] can match the dest segments consumed so far.
	cur, next := make([]bool, len(p)+1), make([]bool, len(p)+1)
	cur[0] = true
	for i := 0; ; i++ {
		for k := 0; k < len(p); k++ { // '#' may match zero segments
			if cur[k] && p[k] == "#" {
				cur[k+1] = true
			}
		}
		if i == len(d) {
			return cur[len(p)]
		}
		clear(next)
		alive := false
		for k, ok := range cur[:len(p)] {
			if !ok {
				continue
			}
			switch seg := p[k]; {
			case seg == "#":
				next[k], alive = true, true
			case seg == ">" && k == len(p)-1:
				return true // at least one segment (d[i]) remains
			case seg == "*" || seg == ">" || seg == d[i]:
				next[k+1], alive = true, true
			}
		}
		if !alive {
			return false
		}
		cur, next = next, cur
	}
}

// Sublist is a concurrency-safe set of (pattern, value) pairs. Two patterns
// with the same segment sequence (e.g. "a.b" and "a/b") are the same pattern.
// The zero value is an empty Sublist without a match cache.
type Sublist[T comparable] struct {
	mu        sync.RWMutex
	root      node[T]
	count     int
	gen       uint64         // bumped by every change; guards cache fills
	cache     map[string][]T // dest -> immutable Match result
	cacheSize int            // <= 0: no cache
}

// New returns a Sublist whose match cache holds at most cacheSize
// destinations (0 = DefaultCacheSize; negative = no cache).
func New[T comparable](cacheSize int) *Sublist[T] {
	if cacheSize == 0 {
		cacheSize = DefaultCacheSize
	}
	s := &Sublist[T]{cacheSize: cacheSize}
	if cacheSize > 0 {
		s.cache = make(map[string][]T)
	}
	return s
}

// Insert adds the pair (pattern, v). Inserting a pair that is already
// present is a no-op.
func (s *Sublist[T]) Insert(pattern string, v T) {
	var buf [16]string
	segs := split(pattern, buf[:0])
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &s.root
	for _, seg := range segs {
		n = n.child(seg, true)
	}
	if n.add(v) {
		s.count++
		s.changed()
	}
}

// Remove deletes the pair (pattern, v) and reports whether it was present.
func (s *Sublist[T]) Remove(pattern string, v T) bool {
	var buf [16]string
	segs := split(pattern, buf[:0])
	var pbuf [17]*node[T]
	path := append(pbuf[:0], &s.root)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range segs {
		c := path[len(path)-1].child(seg, false)
		if c == nil {
			return false
		}
		path = append(path, c)
	}
	if !path[len(path)-1].del(v) {
		return false
	}
	for i := len(segs) - 1; i >= 0 && path[i+1].empty(); i-- {
		path[i].unlink(segs[i])
	}
	s.count--
	s.changed()
	return true
}

// Count returns the number of (pattern, value) pairs.
func (s *Sublist[T]) Count() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.count
}

// Match returns every value whose pattern matches dest, once per matching
// pair (a value inserted under two matching patterns appears twice). The
// order is unspecified. The returned slice is shared: callers must not modify
// it, but it is never modified by the Sublist either, so it stays valid after
// later Insert and Remove calls. A nil result means no match.
//
// Match walks the trie in time proportional to the number of dest segments
// (times the segments a "#" may absorb); cached results cost one map lookup
// and no allocation.
func (s *Sublist[T]) Match(dest string) []T {
	s.mu.RLock()
	if r, ok := s.cache[dest]; ok {
		s.mu.RUnlock()
		return r
	}
	gen := s.gen
	var buf [16]string
	var m matcher[T]
	m.walk(&s.root, split(dest, buf[:0]), 0, 0)
	s.mu.RUnlock()
	r := slices.Clip(m.out)
	if s.cacheSize > 0 {
		s.mu.Lock()
		if _, ok := s.cache[dest]; !ok && s.gen == gen { // nothing changed since the walk
			if len(s.cache) >= s.cacheSize {
				for k := range s.cache { // evict one pseudo-random entry
					delete(s.cache, k)
					break
				}
			}
			s.cache[strings.Clone(dest)] = r
		}
		s.mu.Unlock()
	}
	return r
}

// changed invalidates the cache; s.mu must be held for writing.
func (s *Sublist[T]) changed() {
	s.gen++
	clear(s.cache)
}

// node is a trie node. vals holds the values whose pattern ends at this node.
type node[T comparable] struct {
	lits           map[string]*node[T]
	star, gt, hash *node[T]
	tail           bool // this is a ">" node: vals match one or more trailing segments
	vals           []T
	idx            map[T]int // index into vals, built once vals grows large
}

const idxMin = 16 // vals longer than this get an index map

func (n *node[T]) slot(seg string) **node[T] {
	switch seg {
	case "*":
		return &n.star
	case ">":
		return &n.gt
	case "#":
		return &n.hash
	}
	return nil
}

// child returns the child for pattern segment seg, creating it if create.
func (n *node[T]) child(seg string, create bool) *node[T] {
	if p := n.slot(seg); p != nil {
		if *p == nil && create {
			*p = &node[T]{tail: seg == ">"}
		}
		return *p
	}
	c := n.lits[seg]
	if c == nil && create {
		if n.lits == nil {
			n.lits = make(map[string]*node[T])
		}
		c = &node[T]{}
		n.lits[seg] = c
	}
	return c
}

func (n *node[T]) unlink(seg string) {
	if p := n.slot(seg); p != nil {
		*p = nil
	} else if delete(n.lits, seg); len(n.lits) == 0 {
		n.lits = nil
	}
}

func (n *node[T]) empty() bool {
	return len(n.vals) == 0 && len(n.lits) == 0 && n.star == nil && n.gt == nil && n.hash == nil
}

func (n *node[T]) add(v T) bool {
	if n.idx != nil {
		if _, ok := n.idx[v]; ok {
			return false
		}
		n.idx[v] = len(n.vals)
	} else if slices.Contains(n.vals, v) {
		return false
	}
	n.vals = append(n.vals, v)
	if n.idx == nil && len(n.vals) > idxMin {
		n.idx = make(map[T]int, len(n.vals))
		for i, x := range n.vals {
			n.idx[x] = i
		}
	}
	return true
}

func (n *node[T]) del(v T) bool {
	i, ok := slices.Index(n.vals, v), true
	if n.idx != nil {
		i, ok = n.idx[v]
		delete(n.idx, v)
	}
	if !ok || i < 0 {
		return false
	}
	last := len(n.vals) - 1
	if i != last {
		n.vals[i] = n.vals[last]
		if n.idx != nil {
			n.idx[n.vals[i]] = i
		}
	}
	var zero T
	n.vals[last] = zero
	n.vals = n.vals[:last]
	if last == 0 {
		n.vals, n.idx = nil, nil
	}
	return true
}

// matcher holds the state of one trie walk.
type matcher[T comparable] struct {
	out []T
	// Below a "#" the same node can be reached at several dest positions
	// and, below two of them, even the same (node, position) state along
	// several paths. These lazily allocated sets make sure that each pair is
	// reported once; walks without "#" never need them.
	got  map[*node[T]]struct{} // ">" nodes already reported
	seen map[state[T]]struct{} // states visited below two or more "#"
}

type state[T comparable] struct {
	n *node[T]
	i int
}

// walk visits node n after dest segments segs[:i] have been consumed; hashes
// counts the "#" nodes on the path to n. (segs is a parameter rather than a
// field so that it can stay on Match's stack.)
func (m *matcher[T]) walk(n *node[T], segs []string, i, hashes int) {
	if hashes >= 2 {
		k := state[T]{n, i}
		if _, dup := m.seen[k]; dup {
			return
		}
		if m.seen == nil {
			m.seen = make(map[state[T]]struct{})
		}
		m.seen[k] = struct{}{}
	}
	if h := n.hash; h != nil {
		for j := i; j <= len(segs); j++ {
			m.walk(h, segs, j, hashes+1)
		}
	}
	if i == len(segs) {
		if !n.tail {
			m.out = append(m.out, n.vals...)
		}
		return
	}
	if c := n.lits[segs[i]]; c != nil {
		m.walk(c, segs, i+1, hashes)
	}
	if c := n.star; c != nil {
		m.walk(c, segs, i+1, hashes)
	}
	if c := n.gt; c != nil {
		if _, dup := m.got[c]; !dup {
			if hashes > 0 {
				if m.got == nil {
					m.got = make(map[*node[T]]struct{})
				}
				m.got[c] = struct{}{}
			}
			m.out = append(m.out, c.vals...)
		}
		m.walk(c, segs, i+1, hashes)
	}
}

func isWild(seg string) bool { return seg == "*" || seg == ">" || seg == "#" }

// split appends the segments of s to buf.
func split(s string, buf []string) []string {
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '/' || s[i] == '.' {
			buf = append(buf, s[start:i])
			start = i + 1
		}
	}
	return append(buf, s[start:])
}
