package auth

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stompica/stompica/internal/testutil"
	"github.com/stompica/stompica/sublist"
)

func TestACLLoad(t *testing.T) {
	path := writeFile(t, "acl", "# comment\n\n  # indented\r\nalice read,write /queue/a\r\n"+
		"*\tadmin\t#   # everything\nbob read #orders\n")
	f, err := LoadACLFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []aclRule{
		{login: "alice", access: Read, pattern: "/queue/a", line: 4},
		{login: "alice", access: Write, pattern: "/queue/a", line: 4},
		{login: "*", access: Admin, pattern: "#", line: 5},
		{login: "bob", access: Read, pattern: "#orders", line: 6},
	}
	a := f.cur.Load()
	if len(a.rules) != len(want) || f.Len() != len(want) {
		t.Fatalf("rules = %+v", a.rules)
	}
	for i, r := range a.rules {
		if r != want[i] {
			t.Errorf("rule %d = %+v, want %+v", i, r, want[i])
		}
	}
	if f.Path() != path {
		t.Errorf("Path = %q", f.Path())
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
		{"wildcard inside a segment", "# c\nalice read /topic/a\nbob read /topic/stocks*\n",
			`line 3: pattern "/topic/stocks*": '*' inside the segment "stocks*"; a wildcard is a whole segment, as in "/topic/stocks.*"`},
		{"'>' inside a segment", "bob write /queue/a>\n", `line 1: pattern "/queue/a>": '>' inside the segment`},
		{"'>' not last", "\nbob read /topic/>/x\n", `line 2: pattern "/topic/>/x": '>' must be the last segment`},
	} {
		t.Run(tc.name, func(t *testing.T) { expectLoadError(t, LoadACLFile, tc.content, tc.want) })
	}
	if _, err := LoadACLFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file: no error")
	}
}

// TestACLAuthorize checks the rule kinds directly on the Authorizer (the
// server's tests check the same through SEND, SUBSCRIBE and DIAG).
func TestACLAuthorize(t *testing.T) {
	f, err := LoadACLFile(writeFile(t, "acl", `
alice  read   /topic/tail.>
bob    write  #
carol  admin  DIAG
*      read   /topic/all.*
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		login  string
		access Access
		dest   string
		ok     bool
	}{
		{"alice", Read, "/topic/tail.x", true},
		{"alice", Read, "/topic/tail", false},
		{"alice", Read, "/topic/tail.*", true},  // pattern covered by the rule
		{"alice", Read, "/topic/tail.#", false}, // would receive /topic/tail
		{"alice", Write, "/topic/tail.x", false},
		{"bob", Write, "/anything/at/all", true},
		{"bob", Read, "/topic/x", false},
		{"bob", Admin, "DIAG", false},
		{"carol", Admin, "DIAG", true},
		{"carol", Read, "DIAG", false},
		{"dave", Read, "/topic/all.x", true},
		{"", Read, "/topic/all.x", true}, // "*" covers anonymous clients too
		{"", Read, "/topic/all.>", false},
		{"dave", Write, "/topic/all.x", false},
	} {
		if got := f.Authorize(c.login, c.access, c.dest); got != c.ok {
			t.Errorf("Authorize(%q, %s, %q) = %v, want %v", c.login, c.access, c.dest, got, c.ok)
		}
	}
}

// TestACLReload: a reload applies the new rules; a bad file keeps the old.
func TestACLReload(t *testing.T) {
	path := writeFile(t, "acl", "alice write /queue/a\n")
	f, err := LoadACLFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("alice write /queue/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if !f.Authorize("alice", Write, "/queue/b") {
		t.Error("the new rule does not apply")
	}
	if err := os.WriteFile(path, []byte("alice scribble /queue/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); err == nil || !strings.Contains(err.Error(), "scribble") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Reload of a bad file = %v", err)
	}
	if !f.Authorize("alice", Write, "/queue/c") {
		t.Error("after a bad reload the old rules must stay")
	}
}

// ruleOf writes a pattern as an ACL file takes it: a '>' that is not the
// last segment, which matches one segment, as '*'.
func ruleOf(p string) string {
	segs := strings.Split(p, "/")
	for i := range segs[:len(segs)-1] {
		if segs[i] == ">" {
			segs[i] = "*"
		}
	}
	return strings.Join(segs, "/")
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
			p := ruleOf(testutil.RandPattern(r, true))
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
			d := testutil.RandPattern(r, false)
			want := false
			for _, p := range patterns {
				want = want || sublist.Matches(p, d)
			}
			if got := a.allows("u", Write, d); got != want {
				t.Fatalf("rules %q, dest %q: allows = %v, Matches = %v", patterns, d, got, want)
			}
			if a.allows("v", Write, d) || a.allows("u", Read, d) {
				t.Fatalf("rules %q, dest %q: allowed another login or access", patterns, d)
			}
		}
	}
}

// TestACLAuthorizeAllocs: checking a concrete destination (every SEND)
// does not allocate once the trie cache holds it.
func TestACLAuthorizeAllocs(t *testing.T) {
	f, err := LoadACLFile(writeFile(t, "acl", "* write /topic/public.>\nalice write /queue/orders\n"))
	if err != nil {
		t.Fatal(err)
	}
	f.Authorize("alice", Write, "/topic/public.prices")
	if n := testing.AllocsPerRun(100, func() { f.Authorize("alice", Write, "/topic/public.prices") }); n != 0 {
		t.Errorf("Authorize allocates %v times per call", n)
	}
}

func BenchmarkACLAuthorize(b *testing.B) {
	f, err := LoadACLFile(writeFile(b, "acl", "* write /topic/public.>\nalice write /queue/orders\n"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !f.Authorize("alice", Write, "/topic/public.prices") {
			b.Fatal("denied")
		}
	}
}
