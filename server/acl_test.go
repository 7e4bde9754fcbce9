package server

import (
	"errors"
	"strings"
	"testing"

	"github.com/stompica/stompica/auth"
)

// aclServer returns a Server with the ACL text (and, with users, the test
// users file).
func aclServer(t *testing.T, text string, users bool) *Server {
	t.Helper()
	o := Options{ACLFile: authWriteFile(t, "acl", text)}
	if users {
		o.UsersFile = authUsers(t)
	}
	return authNew(t, o)
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
		login  string
		access auth.Access
		dest   string
		ok     bool
	}
	for _, c := range []check{
		// exact
		{"alice", auth.Read, "/queue/exact", true},
		{"alice", auth.Write, "/queue/exact", false},
		{"alice", auth.Read, "/queue/exact2", false},
		{"alice", auth.Read, "/queue/exact/x", false},
		{"alice", auth.Read, "/queue/exact.x", false},
		{"bob", auth.Read, "/queue/exact", false},
		// '/' and '.' are the same separator
		{"alice", auth.Write, "/topic/a/b", true},
		// '*': one segment
		{"alice", auth.Write, "/topic/a.b", true},
		{"alice", auth.Write, "/topic/a", false},
		{"alice", auth.Write, "/topic/a.b.c", false},
		// '>': one or more trailing
		{"alice", auth.Read, "/topic/tail.x", true},
		{"alice", auth.Read, "/topic/tail.x.y", true},
		{"alice", auth.Read, "/topic/tail", false},
		// '#': zero or more
		{"alice", auth.Read, "/topic/hash", true},
		{"alice", auth.Read, "/topic/hash.x.y", true},
		{"alice", auth.Read, "/topic/hashx", false},
		// '#' alone: everything, for that access only
		{"bob", auth.Write, "/anything/at/all", true},
		{"bob", auth.Write, "#orders", true},
		{"bob", auth.Read, "/topic/x", false},
		{"bob", auth.Admin, "DIAG", false},
		// admin is separate from read and write
		{"carol", auth.Admin, "DIAG", true},
		{"carol", auth.Admin, "/queue/c.x", false},
		{"carol", auth.Read, "DIAG", false},
		{"carol", auth.Write, "/queue/c.x", true},
		{"alice", auth.Admin, "DIAG", false},
		// '*' login: every (authenticated) user
		{"alice", auth.Read, "/topic/all.x", true},
		{"carol", auth.Read, "/topic/all.x", true},
		{"dave", auth.Write, "/queue/shared", true},
		{"dave", auth.Read, "/queue/shared", false},
		// wildcard subscriptions need a covering rule
		{"alice", auth.Read, "/topic/tail.*", true},
		{"alice", auth.Read, "/topic/tail.>", true},
		{"alice", auth.Read, "/topic/tail.*.#", true},
		{"alice", auth.Read, "/topic/tail.#", false}, // would receive /topic/tail
		{"alice", auth.Read, "/topic/hash.#", true},
		{"alice", auth.Read, "/topic/hash.>", true},
		{"alice", auth.Read, "/topic/hash.*.x.#", true},
		{"alice", auth.Read, "/topic/#", false},
		{"alice", auth.Read, "/topic/>", false},
		{"alice", auth.Read, "#", false},
		{"alice", auth.Read, "/topic/all.*", true},
		{"alice", auth.Read, "/topic/all.>", false},
		{"alice", auth.Read, "/topic/*", false},
		{"alice", auth.Read, "/queue/*", false},
	} {
		err := srv.authorize(c.login, c.access, c.dest)
		if (err == nil) != c.ok {
			t.Errorf("authorize(%q, %s, %q) = %v, want allowed=%v", c.login, c.access, c.dest, err, c.ok)
		}
		if err != nil {
			var ce *clientError
			if !errors.As(err, &ce) || ce.kind != kindAuth || ce.reason != AccessDenied ||
				!strings.Contains(err.Error(), `"`+c.dest+`"`) || !strings.Contains(err.Error(), `"`+c.login+`"`) {
				t.Errorf("denial %q must be an access error (kind auth) naming %q and %q", err, c.login, c.dest)
			}
		}
	}
}

func TestACLMessages(t *testing.T) {
	srv := aclServer(t, "alice read /a\n", true)
	for _, tc := range []struct {
		login  string
		access auth.Access
		dest   string
		want   string
	}{
		{"bob", auth.Write, "/queue/x", `access denied: user "bob" may not write to "/queue/x"`},
		{"bob", auth.Read, "/topic/#", `access denied: user "bob" may not read from "/topic/#"`},
		{"bob", auth.Admin, "DIAG", `access denied: user "bob" has no admin access to "DIAG"`},
		{"", auth.Admin, "DIAG", `access denied: "DIAG" needs a login (CONNECT first)`},
	} {
		if err := srv.authorize(tc.login, tc.access, tc.dest); err == nil || err.Error() != tc.want {
			t.Errorf("authorize(%q, %s, %q) = %v, want %q", tc.login, tc.access, tc.dest, err, tc.want)
		}
	}
	// Without users nobody is authenticated; the ACL still applies, and
	// "*" covers every client, anonymous ones included.
	anon := aclServer(t, "* read /topic/a\nbob write /queue/b\n", false)
	if err := anon.authorize("", auth.Read, "/topic/a"); err != nil {
		t.Errorf("anonymous read with a * rule: %v", err)
	}
	err := anon.authorize("", auth.Write, "/queue/b")
	if want := `access denied: an anonymous client may not write to "/queue/b"`; err == nil || err.Error() != want {
		t.Errorf("anonymous write = %v, want %q", err, want)
	}
	if err := anon.authorize("bob", auth.Write, "/queue/b"); err != nil {
		t.Errorf("claimed login without users: %v", err)
	}
}

func TestACLUsersWithoutACL(t *testing.T) {
	srv := authNew(t, Options{UsersFile: authUsers(t)})
	if err := srv.authorize("alice", auth.Admin, "DIAG"); err != nil {
		t.Errorf("users, no ACL: %v", err)
	}
	if err := srv.authorize("", auth.Admin, "DIAG"); err == nil {
		t.Error("users, no ACL: DIAG without a login allowed")
	}
}

func BenchmarkACLAuthorizeSend(b *testing.B) {
	srv := authNew(b, Options{ACLFile: authWriteFile(b, "acl", "* write /topic/public.>\nalice write /queue/orders\n")})
	if err := srv.authorize("alice", auth.Write, "/queue/orders"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := srv.authorize("alice", auth.Write, "/topic/public.prices"); err != nil {
			b.Fatal(err)
		}
	}
}
