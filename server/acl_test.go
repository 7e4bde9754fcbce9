package server

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"stompica/sublist"
)

// aclServer returns a Server with the ACL text (and, with users, the test
// users file).
func aclServer(t *testing.T, text string, users bool) *Server {
	t.Helper()
	o := Options{ACLFile: authWriteFile(t, "acl", text)}
	if users {
		o.UsersFile = authUsers(t)
	}
	srv := authNew(t, o)
	if err := srv.initAuth(); err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestACLLoad(t *testing.T) {
	path := authWriteFile(t, "acl", "# comment\n\n  # indented\r\nalice read,write /queue/a\r\n"+
		"*\tadmin\t#   # everything\nbob read #orders\n")
	a, err := loadACL(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []aclRule{
		{login: "alice", access: "read", pattern: "/queue/a", line: 4},
		{login: "alice", access: "write", pattern: "/queue/a", line: 4},
		{login: "*", access: "admin", pattern: "#", line: 5},
		{login: "bob", access: "read", pattern: "#orders", line: 6},
	}
	if len(a.rules) != len(want) {
		t.Fatalf("rules = %+v", a.rules)
	}
	for i, r := range a.rules {
		w := want[i]
		if r.login != w.login || r.access != w.access || r.pattern != w.pattern || r.line != w.line {
			t.Errorf("rule %d = %+v, want %+v", i, r, w)
		}
	}
}

func TestACLLoadMalformed(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"two fields", "alice read\n", "line 1: want 'login read|write|admin pattern'"},
		{"one field", "# c\nalice\n", "line 2"},
		{"four fields", "alice read /a /b\n", "line 1: want"},
		{"bad access", "\nalice delete /a\n", `line 2: access "delete"`},
		{"bad access in list", "alice read,,write /a\n", `line 1: access ""`},
		{"upper case access", "alice READ /a\n", `access "READ"`},
		{"bad login", "al:ice read /a\n", "line 1: login \"al:ice\" contains ':'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := authWriteFile(t, "acl", tc.content)
			_, err := loadACL(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("err = %v, want it to name %s and contain %q", err, path, tc.want)
			}
		})
	}
	if _, err := loadACL(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestACLAuthorize(t *testing.T) {
	const rules = `
alice  read        /queue/exact
alice  write       /topic/a.*
alice  read        /topic/tail.>
alice  read        /topic/hash.#
bob    write       #
carol  admin       DIAG
carol  read,write  /queue/c.>
*      read        /topic/all.*
*      write       /queue/shared
`
	srv := aclServer(t, rules, true)
	type check struct {
		login, access, dest string
		ok                  bool
	}
	for _, c := range []check{
		// exact
		{"alice", "read", "/queue/exact", true},
		{"alice", "write", "/queue/exact", false},
		{"alice", "read", "/queue/exact2", false},
		{"alice", "read", "/queue/exact/x", false},
		{"alice", "read", "/queue/exact.x", false},
		{"bob", "read", "/queue/exact", false},
		// '/' and '.' are the same separator
		{"alice", "write", "/topic/a/b", true},
		// '*': one segment
		{"alice", "write", "/topic/a.b", true},
		{"alice", "write", "/topic/a", false},
		{"alice", "write", "/topic/a.b.c", false},
		// '>': one or more trailing
		{"alice", "read", "/topic/tail.x", true},
		{"alice", "read", "/topic/tail.x.y", true},
		{"alice", "read", "/topic/tail", false},
		// '#': zero or more
		{"alice", "read", "/topic/hash", true},
		{"alice", "read", "/topic/hash.x.y", true},
		{"alice", "read", "/topic/hashx", false},
		// '#' alone: everything, for that access only
		{"bob", "write", "/anything/at/all", true},
		{"bob", "write", "#orders", true},
		{"bob", "read", "/topic/x", false},
		{"bob", "admin", "DIAG", false},
		// admin is separate from read and write
		{"carol", "admin", "DIAG", true},
		{"carol", "admin", "/queue/c.x", false},
		{"carol", "read", "DIAG", false},
		{"carol", "write", "/queue/c.x", true},
		{"alice", "admin", "DIAG", false},
		// '*' login: every (authenticated) user
		{"alice", "read", "/topic/all.x", true},
		{"carol", "read", "/topic/all.x", true},
		{"dave", "write", "/queue/shared", true},
		{"dave", "read", "/queue/shared", false},
		// wildcard subscriptions need a covering rule
		{"alice", "read", "/topic/tail.*", true},
		{"alice", "read", "/topic/tail.>", true},
		{"alice", "read", "/topic/tail.*.#", true},
		{"alice", "read", "/topic/tail.#", false}, // would receive /topic/tail
		{"alice", "read", "/topic/hash.#", true},
		{"alice", "read", "/topic/hash.>", true},
		{"alice", "read", "/topic/hash.*.x.#", true},
		{"alice", "read", "/topic/#", false},
		{"alice", "read", "/topic/>", false},
		{"alice", "read", "#", false},
		{"alice", "read", "/topic/all.*", true},
		{"alice", "read", "/topic/all.>", false},
		{"alice", "read", "/topic/*", false},
		{"alice", "read", "/queue/*", false},
	} {
		err := srv.authorize(c.login, c.access, c.dest)
		if (err == nil) != c.ok {
			t.Errorf("authorize(%q, %s, %q) = %v, want allowed=%v", c.login, c.access, c.dest, err, c.ok)
		}
		if err != nil {
			var pe protoError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), `"`+c.dest+`"`) || !strings.Contains(err.Error(), `"`+c.login+`"`) {
				t.Errorf("denial %q must be a protoError naming %q and %q", err, c.login, c.dest)
			}
		}
	}
}

func TestACLMessages(t *testing.T) {
	srv := aclServer(t, "alice read /a\n", true)
	for _, tc := range []struct{ login, access, dest, want string }{
		{"bob", "write", "/queue/x", `access denied: user "bob" may not write to "/queue/x"`},
		{"bob", "read", "/topic/#", `access denied: user "bob" may not read from "/topic/#"`},
		{"bob", "admin", "DIAG", `access denied: user "bob" has no admin access to "DIAG"`},
		{"", "admin", "DIAG", `access denied: "DIAG" needs a login (CONNECT first)`},
	} {
		if err := srv.authorize(tc.login, tc.access, tc.dest); err == nil || err.Error() != tc.want {
			t.Errorf("authorize(%q, %s, %q) = %v, want %q", tc.login, tc.access, tc.dest, err, tc.want)
		}
	}
	// Without users nobody is authenticated; the ACL still applies, and
	// "*" covers every client, anonymous ones included.
	anon := aclServer(t, "* read /topic/a\nbob write /queue/b\n", false)
	if err := anon.authorize("", "read", "/topic/a"); err != nil {
		t.Errorf("anonymous read with a * rule: %v", err)
	}
	err := anon.authorize("", "write", "/queue/b")
	if want := `access denied: an anonymous client may not write to "/queue/b"`; err == nil || err.Error() != want {
		t.Errorf("anonymous write = %v, want %q", err, want)
	}
	if err := anon.authorize("bob", "write", "/queue/b"); err != nil {
		t.Errorf("claimed login without users: %v", err)
	}
}

func TestACLUsersWithoutACL(t *testing.T) {
	srv := authNew(t, Options{UsersFile: authUsers(t)})
	if err := srv.authorize("alice", accessAdmin, "DIAG"); err != nil {
		t.Errorf("users, no ACL: %v", err)
	}
	if err := srv.authorize("", accessAdmin, "DIAG"); err == nil {
		t.Error("users, no ACL: DIAG without a login allowed")
	}
}

func TestACLCovers(t *testing.T) {
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
	} {
		got := aclCovers(aclTokens(tc.rule), aclTokens(tc.sub))
		if got != tc.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.rule, tc.sub, got, tc.want)
		}
	}
}

// aclRandPattern returns a random pattern over a small alphabet.
func aclRandPattern(r *rand.Rand, wild bool) string {
	segs := []string{"a", "b", "c"}
	if wild {
		segs = append(segs, "*", ">", "#", "*", "#")
	}
	n := 1 + r.IntN(5)
	out := make([]string, n)
	for i := range out {
		out[i] = segs[r.IntN(len(segs))]
	}
	return strings.Join(out, "/")
}

// aclInstance returns a random destination that pattern matches.
func aclInstance(r *rand.Rand, pattern string) string {
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

// TestACLCoversSound checks aclCovers against sublist.Matches: for a
// concrete destination they agree, and whenever a rule is said to cover a
// pattern, it matches every destination the pattern matches.
func TestACLCoversSound(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	covered := 0
	for range 20000 {
		rule, sub := aclRandPattern(r, true), aclRandPattern(r, r.IntN(2) == 0)
		got := aclCovers(aclTokens(rule), aclTokens(sub))
		if aclIsPattern(sub) != sublist.IsPattern(sub) || aclIsPattern(rule) != sublist.IsPattern(rule) {
			t.Fatalf("aclIsPattern disagrees with sublist.IsPattern on %q or %q", rule, sub)
		}
		if !sublist.IsPattern(sub) {
			if want := sublist.Matches(rule, sub); got != want {
				t.Fatalf("covers(%q, %q) = %v, sublist.Matches = %v", rule, sub, got, want)
			}
			continue
		}
		if !got {
			continue
		}
		covered++
		for range 20 {
			d := aclInstance(r, sub)
			if !sublist.Matches(sub, d) {
				t.Fatalf("test bug: %q does not match its instance %q", sub, d)
			}
			if !sublist.Matches(rule, d) {
				t.Fatalf("covers(%q, %q) but %q matches the subscription and not the rule", rule, sub, d)
			}
		}
	}
	if covered < 500 {
		t.Errorf("only %d covered wildcard pairs exercised", covered)
	}
}

// TestACLTrieAgreesWithMatches checks the rule tries used for concrete
// destinations against sublist.Matches.
func TestACLTrieAgreesWithMatches(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	path := filepath.Join(t.TempDir(), "acl")
	for range 100 {
		var text strings.Builder
		var patterns []string
		for range 1 + r.IntN(3) {
			p := aclRandPattern(r, true)
			patterns = append(patterns, p)
			text.WriteString("u write " + p + "\n")
		}
		if err := os.WriteFile(path, []byte(text.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		a, err := loadACL(path)
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			d := aclRandPattern(r, false)
			want := false
			for _, p := range patterns {
				want = want || sublist.Matches(p, d)
			}
			if got := a.allows("u", accessWrite, d); got != want {
				t.Fatalf("rules %q, dest %q: allows = %v, Matches = %v", patterns, d, got, want)
			}
			if a.allows("v", accessWrite, d) || a.allows("u", accessRead, d) {
				t.Fatalf("rules %q, dest %q: allowed another login or access", patterns, d)
			}
		}
	}
}

func BenchmarkACLAuthorizeSend(b *testing.B) {
	srv := authNew(b, Options{ACLFile: authWriteFile(b, "acl", "* write /topic/public.>\nalice write /queue/orders\n")})
	if err := srv.authorize("alice", accessWrite, "/queue/orders"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := srv.authorize("alice", accessWrite, "/topic/public.prices"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestACLIsPattern(t *testing.T) {
	for _, d := range []string{"", "#", "*", ">", "a.*", "a/>", ".#.", "/topic/#", "#orders", "*x", "x>", "a..b", "/", "a.b/c", "**", "a/#/b"} {
		if got, want := aclIsPattern(d), sublist.IsPattern(d); got != want {
			t.Errorf("aclIsPattern(%q) = %v, sublist.IsPattern = %v", d, got, want)
		}
	}
}
