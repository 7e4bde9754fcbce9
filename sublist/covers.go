package sublist

// Covers reports whether every destination that pattern matches is also
// matched by rule: whether a subscription to pattern can only ever receive
// destinations that rule allows (an ACL asks this of a SUBSCRIBE). For a
// concrete pattern (no wildcard segment) it is Matches(rule, pattern).
//
// The check is conservative: it compares the two patterns segment by
// segment after normalising runs of wildcards, and may answer false for an
// unusual pattern that is in fact covered (such as rule "a.>" and pattern
// "a.#.x"), never true for one that is not. So "/topic/public.*" covers
// "/topic/public.x" and "/topic/public.*", but not "/topic/#" or
// "/topic/*.*", which also match "/topic/private.x".
//
// It runs in O(len(rule segments) * len(pattern segments)) time and
// allocates; it is meant for SUBSCRIBE-time checks, not per message.
func Covers(rule, pattern string) bool {
	return covers(tokens(rule), tokens(pattern))
}

// tok is one segment of a normalised pattern.
type tok struct {
	kind uint8 // lit, star (exactly one segment) or hash (zero or more)
	lit  string
}

const (
	lit = iota
	star
	hash
)

// tokens splits a pattern into segments and normalises it: a trailing ">"
// becomes "*" "#" (one or more), any other ">" is "*", and in every run of
// consecutive wildcards the "*"s come first and at most one "#" follows
// ("#.*" and "*.#" both mean one or more segments).
func tokens(pattern string) []tok {
	var buf [16]string
	segs := split(pattern, buf[:0])
	out := make([]tok, 0, len(segs)+1)
	for i := 0; i < len(segs); {
		if !isWild(segs[i]) {
			out = append(out, tok{kind: lit, lit: segs[i]})
			i++
			continue
		}
		stars, anyRun := 0, false
	run:
		for ; i < len(segs); i++ {
			switch segs[i] {
			case "*":
				stars++
			case "#":
				anyRun = true
			case ">":
				stars++
				anyRun = anyRun || i == len(segs)-1
			default:
				break run
			}
		}
		for range stars {
			out = append(out, tok{kind: star})
		}
		if anyRun {
			out = append(out, tok{kind: hash})
		}
	}
	return out
}

// covers reports whether the normalised rule r matches every destination
// that the normalised pattern p matches. It aligns p with r: a literal
// covers the same literal, "*" covers a literal or "*", "#" covers any run
// of tokens, and nothing but "#" covers "#". Every alignment found is a
// proof of coverage, so the answer true is always right.
func covers(r, p []tok) bool {
	// next[i]: r[j+1:] covers p[i:]; cur[i]: r[j:] covers p[i:].
	next := make([]bool, len(p)+1)
	cur := make([]bool, len(p)+1)
	next[len(p)] = true
	for j := len(r) - 1; j >= 0; j-- {
		rt := r[j]
		cur[len(p)] = rt.kind == hash && next[len(p)]
		for i := len(p) - 1; i >= 0; i-- {
			pt := p[i]
			switch rt.kind {
			case hash:
				cur[i] = next[i] || cur[i+1]
			case star:
				cur[i] = pt.kind != hash && next[i+1]
			default:
				cur[i] = pt.kind == lit && pt.lit == rt.lit && next[i+1]
			}
		}
		next, cur = cur, next
	}
	return next[0]
}
