package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/stompica/stompica/internal/testutil"
)

// hash returns a bcrypt hash of password (cached, at the minimum cost).
var hash = testutil.BcryptHash

// writeFile writes content to a new file name and returns its path.
var writeFile = testutil.WriteFile

func TestLoadUsers(t *testing.T) {
	a, b := hash(t, "a"), hash(t, "b")
	y := strings.Replace(hash(t, "y"), "$2a$", "$2y$", 1) // htpasswd -B
	path := writeFile(t, "users", "# comment\n\n   \nalice:"+a+"\r\n  bob:"+b+"   # trailing comment\n"+
		"\t# indented comment\ncarol:"+y)
	users, err := loadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 3 || string(users["alice"]) != a || string(users["bob"]) != b || string(users["carol"]) != y {
		t.Fatalf("users = %q", users)
	}
	if bcrypt.CompareHashAndPassword(users["carol"], []byte("y")) != nil {
		t.Error("$2y$ hash does not verify")
	}
	u, err := LoadUsersFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if login, err := u.Authenticate(context.Background(), Credentials{Login: "carol", Passcode: "y"}); err != nil || login != "carol" {
		t.Errorf("$2y$ login: %q, %v", login, err)
	}

	empty, err := loadUsers(writeFile(t, "empty", "# nobody\n"))
	if err != nil || len(empty) != 0 {
		t.Errorf("comment-only file: %v, %v", empty, err)
	}
}

func TestLoadUsersMalformed(t *testing.T) {
	h := hash(t, "x")
	for _, tc := range []struct{ name, content, want string }{
		{"no colon", "# c\nalice " + h + "\n", "line 2"},
		{"no colon at all", "alice\n", "line 1: want login:bcrypt-hash, found no ':'"},
		{"empty login", "ok:" + h + "\n:" + h + "\n", "line 2: empty login"},
		{"not a hash", "\n\nalice:secret\n", `line 3: login "alice": not a bcrypt hash`},
		{"empty hash", "alice:\n", "line 1"},
		{"truncated hash", "alice:" + h[:40] + "\n", "line 1"},
		{"duplicate", "alice:" + h + "\nbob:" + h + "\nalice:" + h + "\n", `line 3: login "alice" appears twice`},
		{"space inside", "alice: " + h + "\n", "line 1: want login:bcrypt-hash, found white space"},
		{"star login", "*:" + h + "\n", "line 1: login \"*\" is reserved"},
	} {
		t.Run(tc.name, func(t *testing.T) { expectLoadError(t, LoadUsersFile, tc.content, tc.want) })
	}
	if _, err := LoadUsersFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file: no error")
	}
}

// expectLoadError writes content to a file and expects load to fail with
// an error that names the file and contains want.
func expectLoadError[T any](t *testing.T, load func(path string) (T, error), content, want string) {
	t.Helper()
	path := writeFile(t, "file", content)
	if _, err := load(path); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
		t.Errorf("err = %v, want it to name %s and contain %q", err, path, want)
	}
}

// TestUsersFileAuthenticate checks logins against the file: the refusals
// wrap ErrRefused and say why, a verified certificate's name needs no
// entry, and a passcode is checked on all of its bytes up to bcrypt's 72.
func TestUsersFileAuthenticate(t *testing.T) {
	ctx := context.Background()
	u, err := LoadUsersFile(writeFile(t, "users", "alice:"+hash(t, "wonderland")+"\nbob:"+hash(t, "builder")+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if u.Len() != 2 {
		t.Errorf("Len = %d, want 2", u.Len())
	}
	for range 2 { // the second round is answered from the verified cache
		if login, err := u.Authenticate(ctx, Credentials{Login: "alice", Passcode: "wonderland"}); err != nil || login != "alice" {
			t.Fatalf("good login: %q, %v", login, err)
		}
	}
	if len(u.cur.Load().cache.verified) != 1 {
		t.Errorf("verified cache holds %d entries, want 1 (alice)", len(u.cur.Load().cache.verified))
	}
	for _, tc := range []struct {
		name string
		c    Credentials
		want error
	}{
		{"wrong passcode", Credentials{Login: "alice", Passcode: "wonderlan"}, errWrongPasscode},
		{"other user's passcode", Credentials{Login: "alice", Passcode: "builder"}, errWrongPasscode},
		{"passcode of a cached login, wrong", Credentials{Login: "alice", Passcode: "wonderland "}, errWrongPasscode},
		{"unknown login", Credentials{Login: "mallory", Passcode: "wonderland"}, errUnknownLogin},
		{"empty login", Credentials{}, errUnknownLogin},
		{"empty passcode", Credentials{Login: "alice"}, errWrongPasscode},
		{"passcode past bcrypt's 72 bytes", Credentials{Login: "alice", Passcode: "wonderland" + strings.Repeat("x", 70)}, errWrongPasscode},
		{"login and certificate: the login counts", Credentials{Login: "alice", Passcode: "x", CertLogin: "device-1"}, errWrongPasscode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			login, err := u.Authenticate(ctx, tc.c)
			if login != "" || err != tc.want || !errors.Is(err, ErrRefused) {
				t.Errorf("Authenticate = %q, %v; want \"\", %v (an ErrRefused)", login, err, tc.want)
			}
		})
	}
	if login, err := u.Authenticate(ctx, Credentials{CertLogin: "device-1"}); err != nil || login != "device-1" {
		t.Errorf("verified certificate: %q, %v", login, err)
	}

	long := strings.Repeat("p", 72)
	u2, err := LoadUsersFile(writeFile(t, "users", "long:"+hash(t, long)+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u2.Authenticate(ctx, Credentials{Login: "long", Passcode: long}); err != nil {
		t.Errorf("72-byte passcode: %v", err)
	}
	if _, err := u2.Authenticate(ctx, Credentials{Login: "long", Passcode: long + "x"}); err == nil {
		t.Error("73-byte passcode accepted")
	}
}

// TestUsersFileBoundedBcrypt: bcrypt comparisons wait for one of
// GOMAXPROCS turns; a login waiting for one gives up when its ctx ends.
// A cached login needs no turn.
func TestUsersFileBoundedBcrypt(t *testing.T) {
	u, err := LoadUsersFile(writeFile(t, "users", "alice:"+hash(t, "wonderland")+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Authenticate(context.Background(), Credentials{Login: "alice", Passcode: "wonderland"}); err != nil {
		t.Fatal(err)
	}
	for range cap(u.sem) { // every turn taken
		u.sem <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if login, err := u.Authenticate(ctx, Credentials{Login: "alice", Passcode: "other"}); login != "" || !errors.Is(err, context.Canceled) {
		t.Errorf("with no turn free and ctx done: %q, %v; want context.Canceled", login, err)
	}
	if login, err := u.Authenticate(ctx, Credentials{Login: "mallory", Passcode: "x"}); login != "" || !errors.Is(err, context.Canceled) {
		t.Errorf("unknown login, no turn free: %q, %v; want context.Canceled", login, err)
	}
	if login, err := u.Authenticate(ctx, Credentials{Login: "alice", Passcode: "wonderland"}); err != nil || login != "alice" {
		t.Errorf("cached login with no turn free: %q, %v", login, err)
	}
	for range cap(u.sem) {
		<-u.sem
	}
}

// TestUsersFileReload: a reload applies a changed file and forgets the
// verified passcodes; a bad file keeps the users in force.
func TestUsersFileReload(t *testing.T) {
	ctx := context.Background()
	path := writeFile(t, "users", "alice:"+hash(t, "wonderland")+"\n")
	u, err := LoadUsersFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if u.Path() != path {
		t.Errorf("Path = %q", u.Path())
	}
	if _, err := u.Authenticate(ctx, Credentials{Login: "alice", Passcode: "wonderland"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("alice:"+hash(t, "new")+"\ncarol:"+hash(t, "c4rol")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := u.Reload(); err != nil {
		t.Fatal(err)
	}
	if u.Len() != 2 {
		t.Errorf("Len after reload = %d, want 2", u.Len())
	}
	if _, err := u.Authenticate(ctx, Credentials{Login: "alice", Passcode: "wonderland"}); !errors.Is(err, ErrRefused) {
		t.Errorf("old passcode after reload (it was cached): %v, want refused", err)
	}
	if _, err := u.Authenticate(ctx, Credentials{Login: "carol", Passcode: "c4rol"}); err != nil {
		t.Errorf("new user: %v", err)
	}
	if err := os.WriteFile(path, []byte("bob:"+hash(t, "builder")+"\nnot an entry\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := u.Reload(); err == nil || !strings.Contains(err.Error(), path+" line 2") {
		t.Fatalf("Reload of a bad file = %v, want an error naming %s line 2", err, path)
	}
	if _, err := u.Authenticate(ctx, Credentials{Login: "carol", Passcode: "c4rol"}); err != nil {
		t.Errorf("after a bad reload the old users must stay: %v", err)
	}
	if _, err := u.Authenticate(ctx, Credentials{Login: "bob", Passcode: "builder"}); err == nil {
		t.Error("a user of the bad file logged in")
	}
}

func TestDummyHash(t *testing.T) {
	h5, err := bcrypt.GenerateFromPassword([]byte("x"), 5)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string][]byte{"a": []byte(hash(t, "a")), "b": h5, "c": []byte(hash(t, "c"))}
	if c, _ := bcrypt.Cost(pickDummy(users)); c != bcrypt.MinCost {
		t.Errorf("dummy cost %d, want the most common cost %d", c, bcrypt.MinCost)
	}
	if c, err := bcrypt.Cost(pickDummy(nil)); err != nil || c != bcrypt.DefaultCost {
		t.Errorf("dummy for no users: cost %d, %v", c, err)
	}
}

func TestCheckLogin(t *testing.T) {
	for _, ok := range []string{"alice", "bob@example.com", "CN=x,O=y", "dévice-1", "a*b", "a#b"} {
		if err := CheckLogin(ok); err != nil {
			t.Errorf("CheckLogin(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "*", "#a", "a:b", "a b", "a\tb", "a\nb", "a\x00b", "a\u00a0b", "\xff"} {
		if CheckLogin(bad) == nil {
			t.Errorf("CheckLogin(%q) accepted", bad)
		}
	}
}

func TestUsersFileLine(t *testing.T) {
	line, err := UsersFileLine("alice", []byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users, err := loadUsers(writeFile(t, "users", line+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword(users["alice"], []byte("pw")) != nil {
		t.Error("UsersFileLine hash does not verify")
	}
	for _, tc := range []struct {
		login, pw string
		cost      int
	}{{"a:b", "pw", 4}, {"alice", "", 4}, {"alice", strings.Repeat("x", 73), 4}, {"alice", "pw", 3}, {"alice", "pw", 32}} {
		if _, err := UsersFileLine(tc.login, []byte(tc.pw), tc.cost); err == nil {
			t.Errorf("UsersFileLine(%q, %q, %d) accepted", tc.login, tc.pw, tc.cost)
		}
	}
}

func TestAccessString(t *testing.T) {
	for a, want := range map[Access]string{Read: "read", Write: "write", Admin: "admin", 0: "Access(0)", 9: "Access(9)"} {
		if a.String() != want {
			t.Errorf("%d.String() = %q, want %q", uint8(a), a.String(), want)
		}
		if got, ok := parseAccess(want); ok != (a >= Read && a <= Admin) || ok && got != a {
			t.Errorf("parseAccess(%q) = %v, %v", want, got, ok)
		}
	}
}
