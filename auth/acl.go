package auth

import (
	"fmt"
	"os"
	"strings"

	"github.com/stompica/stompica/sublist"
)

// ACLFile is the built-in Authorizer: rules read from a file. Checking a
// concrete destination is one cached trie lookup per rule set, without
// allocation. Reload reads the file again; a file that fails to load keeps
// the rules in force. An ACLFile is safe for concurrent use.
//
// The file: each line is a rule granting one login an access to the
// destinations a pattern matches:
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
//   - login is a login (of the users file, or a TLS client certificate's
//     common name); "*" is any client that passed authentication: every
//     user when authentication is on, every client otherwise.
//   - access is read, write, admin (Access), or a comma-separated list of
//     them.
//   - pattern is a destination pattern as in SUBSCRIBE (package sublist):
//     segments split on '/' and '.' (which are interchangeable), "*" one
//     segment, ">" one or more trailing segments, "#" zero or more. A
//     wildcard is a whole segment: "/topic/stocks*", or a ">" that is not
//     last, is refused at load (sublist.Check), with the line number.
//
// admin is checked against "DIAG" for DIAG and against the request path for
// /console and /metrics, so "ops admin #" grants all of it and
// "prom admin /metrics" only scraping.
//
// A client may do something when at least one rule for its login or for "*"
// with that access matches the destination; there are no deny rules. A
// SUBSCRIBE to a pattern needs a read rule whose pattern covers it
// (sublist.Covers): every destination the subscription could receive must
// be one the rule allows. So "bob read /topic/public.*" allows subscribing
// to "/topic/public.*" and "/topic/public.x", but not to "/topic/#" or
// "/topic/*.*", which would also receive "/topic/private.x".
type ACLFile struct {
	fileSource[acl]
}

// LoadACLFile reads the ACL file at path. Errors name the file and the
// line.
func LoadACLFile(path string) (*ACLFile, error) {
	a := new(ACLFile)
	if err := a.open(path, loadACL); err != nil {
		return nil, err
	}
	return a, nil
}

// Len returns the number of rules loaded (one per access of a line).
func (a *ACLFile) Len() int { return len(a.cur.Load().rules) }

// Authorize reports whether a rule for login or "*" with access a matches
// dest (or, for a Read of a pattern, covers it).
func (a *ACLFile) Authorize(login string, access Access, dest string) bool {
	return a.cur.Load().allows(login, access, dest)
}

// acl is one generation of a loaded ACL file.
type acl struct {
	rules []aclRule
	// tries[k] holds the patterns of the rules for k.login with k.access,
	// for the common check of a concrete destination.
	tries map[aclKey]*sublist.Sublist[bool]
}

type aclKey struct {
	access Access
	login  string
}

type aclRule struct {
	login   string
	access  Access
	pattern string
	line    int
}

// aclTrieCache is the match cache size of each rule trie.
const aclTrieCache = 1024

// loadACL reads an ACL file. Errors name the file and line.
func loadACL(path string) (*acl, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ACL file: %w", err)
	}
	a := &acl{tries: make(map[aclKey]*sublist.Sublist[bool])}
	err = fileLines(data, func(n int, f []string) error {
		bad := func(msg string) error {
			return fmt.Errorf("ACL file %s line %d: %s", path, n, msg)
		}
		if len(f) < 3 || len(f) > 3 && !strings.HasPrefix(f[3], "#") {
			return bad("want 'login read|write|admin pattern'")
		}
		login, pattern := f[0], f[2]
		if login != "*" {
			if err := CheckLogin(login); err != nil {
				return bad(err.Error())
			}
		}
		if err := sublist.Check(pattern); err != nil {
			return bad(err.Error())
		}
		for name := range strings.SplitSeq(f[1], ",") {
			access, ok := parseAccess(name)
			if !ok {
				return bad(fmt.Sprintf("access %q: want read, write or admin", name))
			}
			a.rules = append(a.rules, aclRule{login: login, access: access, pattern: pattern, line: n})
			k := aclKey{access, login}
			t := a.tries[k]
			if t == nil {
				t = sublist.New[bool](aclTrieCache)
				a.tries[k] = t
			}
			t.Insert(pattern, true)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// allows reports whether login may use dest (a destination, or for read a
// SUBSCRIBE pattern) for access.
func (a *acl) allows(login string, access Access, dest string) bool {
	if !sublist.IsPattern(dest) {
		return a.match(aclKey{access, login}, dest) || a.match(aclKey{access, "*"}, dest)
	}
	for i := range a.rules {
		r := &a.rules[i]
		if r.access == access && (r.login == login || r.login == "*") && sublist.Covers(r.pattern, dest) {
			return true
		}
	}
	return false
}

func (a *acl) match(k aclKey, dest string) bool {
	t := a.tries[k]
	return t != nil && len(t.Match(dest)) > 0
}
