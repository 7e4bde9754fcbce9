package server

// Authorization: the ACL file (Options.ACLFile, flag --acl).
//
// Without an ACL every client may do everything. With one, each line is a
// rule granting one login an access to the destinations a pattern matches:
//
//	# login  access          pattern
//	alice    read,write      /queue/orders
//	bob      read            /topic/public.*
//	*        read            /topic/news.#
//	ops      admin           #
//
// Fields are separated by white space; blank lines and lines starting with
// '#' are ignored, and a fourth field starting with '#' starts a comment.
//
//   - login is a login of the users file (or a TLS client certificate's
//     common name); "*" is any client that passed authentication: every
//     user when a users file is set, every client otherwise.
//   - access is read (SUBSCRIBE), write (SEND, including inside a
//     transaction), admin, or a comma-separated list of them. The kinds
//     are independent: admin implies neither read nor write, and read or
//     write never give admin.
//   - pattern is a destination pattern as in SUBSCRIBE (package sublist):
//     segments split on '/' and '.' (which are interchangeable), "*" one
//     segment, ">" one or more trailing segments, "#" zero or more.
//
// admin is what DIAG frames and SENDs to "DIAG..." need (checked against the
// destination "DIAG"), and what /console and /metrics need with HTTP auth
// (checked against the request path, e.g. "/metrics" or "/console/x"). So
// "ops admin #" grants all of it, "prom admin /metrics" only scraping.
//
// A client may do something when at least one rule for its login or for "*"
// with that access matches the destination; there are no deny rules.
//
// A SUBSCRIBE to a wildcard pattern needs a read rule whose pattern covers
// the subscribed pattern: every destination the subscription could receive
// must be one the rule allows. So "bob read /topic/public.*" allows
// subscribing to "/topic/public.*" and "/topic/public.x", but not to
// "/topic/#" or "/topic/*.*", which would also receive "/topic/private.x".
// (The check is conservative: it compares the patterns segment by segment
// after normalising runs of wildcards, and may refuse an unusual pattern that
// is in fact covered, never the reverse.)

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"stompica/sublist"
)

// acl is a loaded ACL file.
type acl struct {
	rules []aclRule
	// tries[k] holds the patterns of the rules for k.login with k.access,
	// for the common check of a concrete destination: one cached trie
	// lookup, no allocation.
	tries map[aclKey]*sublist.Sublist[bool]
}

type aclKey struct{ access, login string }

type aclRule struct {
	login, access, pattern string
	toks                   []aclTok // pattern, normalised for covers
	line                   int
}

// aclTrieCache is the match cache size of each rule trie.
const aclTrieCache = 1024

// loadACL reads an ACL file. Errors name the file and line.
func loadACL(path string) (*acl, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("stompica: ACL file: %w", err)
	}
	a := &acl{tries: make(map[aclKey]*sublist.Sublist[bool])}
	for n, line := range strings.Split(string(data), "\n") {
		bad := func(msg string) error {
			return fmt.Errorf("stompica: ACL file %s line %d: %s", path, n+1, msg)
		}
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 3 || len(f) > 3 && !strings.HasPrefix(f[3], "#") {
			return nil, bad("want 'login read|write|admin pattern'")
		}
		login, pattern := f[0], f[2]
		if login != "*" {
			if err := CheckLogin(login); err != nil {
				return nil, bad(err.Error())
			}
		}
		for access := range strings.SplitSeq(f[1], ",") {
			switch access {
			case accessRead, accessWrite, accessAdmin:
			default:
				return nil, bad(fmt.Sprintf("access %q: want read, write or admin", access))
			}
			a.rules = append(a.rules, aclRule{login: login, access: access, pattern: pattern,
				toks: aclTokens(pattern), line: n + 1})
			k := aclKey{access, login}
			t := a.tries[k]
			if t == nil {
				t = sublist.New[bool](aclTrieCache)
				a.tries[k] = t
			}
			t.Insert(pattern, true)
		}
	}
	return a, nil
}

// allows reports whether login may use dest (a destination, or for read a
// SUBSCRIBE pattern) for access.
func (a *acl) allows(login, access, dest string) bool {
	if !aclIsPattern(dest) {
		return a.match(aclKey{access, login}, dest) || a.match(aclKey{access, "*"}, dest)
	}
	p := aclTokens(dest)
	for i := range a.rules {
		r := &a.rules[i]
		if r.access == access && (r.login == login || r.login == "*") && aclCovers(r.toks, p) {
			return true
		}
	}
	return false
}

// aclIsPattern is sublist.IsPattern without allocating: whether dest has a
// segment that is exactly "*", ">" or "#".
func aclIsPattern(dest string) bool {
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

func (a *acl) match(k aclKey, dest string) bool {
	t := a.tries[k]
	return t != nil && len(t.Match(dest)) > 0
}

// authorize checks that login may use dest for access (read, write, admin).
// With no ACL configured everything is allowed, except that with
// authentication on a client that has not logged in (a DIAG before
// CONNECT) may do nothing. A denial names the login and the destination.
func (s *Server) authorize(login, access, dest string) error {
	if s.opts.UsersFile == "" && s.opts.ACLFile == "" {
		return nil // the default: no lookup on the publish path
	}
	st := s.authState()
	if st.err != nil {
		return protoError("access denied: the users or ACL file could not be loaded")
	}
	d := st.data()
	if d.users != nil && login == "" {
		return protoError("access denied: " + strconv.Quote(dest) + " needs a login (CONNECT first)")
	}
	if d.acl == nil || d.acl.allows(login, access, dest) {
		return nil
	}
	who := "user " + strconv.Quote(login)
	if login == "" {
		who = "an anonymous client"
	}
	switch access {
	case accessWrite:
		return protoError("access denied: " + who + " may not write to " + strconv.Quote(dest))
	case accessRead:
		return protoError("access denied: " + who + " may not read from " + strconv.Quote(dest))
	}
	return protoError("access denied: " + who + " has no " + access + " access to " + strconv.Quote(dest))
}

// aclTok is one segment of a normalised pattern.
type aclTok struct {
	kind uint8 // aclLit, aclStar (exactly one segment), aclHash (zero or more)
	lit  string
}

const (
	aclLit = iota
	aclStar
	aclHash
)

// aclTokens splits a pattern the way package sublist does and normalises
// it: a trailing ">" becomes "*" "#" (one or more), any other ">" is "*",
// and in every run of consecutive wildcards the "*"s come first and at most
// one "#" follows ("#.*" and "*.#" both mean one or more segments).
func aclTokens(pattern string) []aclTok {
	var segs []string
	start := 0
	for i := 0; i < len(pattern); i++ {
		if pattern[i] == '/' || pattern[i] == '.' {
			segs = append(segs, pattern[start:i])
			start = i + 1
		}
	}
	segs = append(segs, pattern[start:])
	out := make([]aclTok, 0, len(segs)+1)
	for i := 0; i < len(segs); {
		if seg := segs[i]; seg != "*" && seg != ">" && seg != "#" {
			out = append(out, aclTok{kind: aclLit, lit: seg})
			i++
			continue
		}
		stars, hash := 0, false
	run:
		for ; i < len(segs); i++ {
			switch segs[i] {
			case "*":
				stars++
			case "#":
				hash = true
			case ">":
				stars++
				hash = hash || i == len(segs)-1
			default:
				break run
			}
		}
		for range stars {
			out = append(out, aclTok{kind: aclStar})
		}
		if hash {
			out = append(out, aclTok{kind: aclHash})
		}
	}
	return out
}

// aclCovers reports whether rule pattern r matches every destination that
// pattern p matches (both normalised by aclTokens). It aligns p with r:
// a literal covers the same literal, "*" covers a literal or "*", "#"
// covers any run of tokens, and nothing but "#" covers "#". Every alignment
// found is a proof of coverage, so the answer "true" is always right.
// O(len(r) * len(p)).
func aclCovers(r, p []aclTok) bool {
	// next[i]: r[j+1:] covers p[i:]; cur[i]: r[j:] covers p[i:].
	next := make([]bool, len(p)+1)
	cur := make([]bool, len(p)+1)
	next[len(p)] = true
	for j := len(r) - 1; j >= 0; j-- {
		rt := r[j]
		cur[len(p)] = rt.kind == aclHash && next[len(p)]
		for i := len(p) - 1; i >= 0; i-- {
			pt := p[i]
			switch rt.kind {
			case aclHash:
				cur[i] = next[i] || cur[i+1]
			case aclStar:
				cur[i] = pt.kind != aclHash && next[i+1]
			default:
				cur[i] = pt.kind == aclLit && pt.lit == rt.lit && next[i+1]
			}
		}
		next, cur = cur, next
	}
	return next[0]
}
