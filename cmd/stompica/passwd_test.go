package main

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// passwdRun runs "stompica passwd args..." with stdin.
func passwdRun(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = runPasswd(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestPasswdRoundTrip(t *testing.T) {
	for _, in := range []string{"s3cret\n", "s3cret\r\n", "s3cret", "s3cret\nignored second line\n"} {
		code, out, errs := passwdRun(in, "--cost", "4", "alice")
		if code != 0 {
			t.Fatalf("input %q: exit %d, stderr %q", in, code, errs)
		}
		line := strings.TrimSuffix(out, "\n")
		if strings.Contains(line, "\n") {
			t.Fatalf("input %q: want one line, got %q", in, out)
		}
		login, hash, ok := strings.Cut(line, ":")
		if !ok || login != "alice" || !strings.HasPrefix(hash, "$2a$04$") {
			t.Fatalf("input %q: got %q, want alice:$2a$04$...", in, line)
		}
		if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret")); err != nil {
			t.Errorf("input %q: hash does not verify: %v", in, err)
		}
		if bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret\r")) == nil {
			t.Errorf("input %q: line ending became part of the password", in)
		}
	}
}

func TestPasswdRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, stdin string
		args        []string
		code        int
		msg         string
	}{
		{"no login", "pw\n", nil, 2, "Usage"},
		{"two logins", "pw\n", []string{"a", "b"}, 2, "Usage"},
		{"empty password", "\n", []string{"alice"}, 1, "empty password"},
		{"no input", "", []string{"alice"}, 1, "empty password"},
		{"CRLF only", "\r\n", []string{"alice"}, 1, "empty password"},
		{"colon in login", "pw\n", []string{"al:ice"}, 2, "':'"},
		{"space in login", "pw\n", []string{"al ice"}, 2, "white space"},
		{"tab in login", "pw\n", []string{"al\tice"}, 2, "white space"},
		{"empty login", "pw\n", []string{""}, 2, "empty login"},
		{"star login", "pw\n", []string{"*"}, 2, "reserved"},
		{"comment login", "pw\n", []string{"#alice"}, 2, "'#'"},
		{"too long", strings.Repeat("x", 73) + "\n", []string{"--cost", "4", "alice"}, 1, "72 bytes"},
		{"bad cost", "pw\n", []string{"--cost", "40", "alice"}, 1, "cost 40"},
		{"unknown flag", "pw\n", []string{"--nope", "alice"}, 2, "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := passwdRun(tc.stdin, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, errs)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if !strings.Contains(errs, tc.msg) {
				t.Errorf("stderr %q, want it to mention %q", errs, tc.msg)
			}
		})
	}
}

func TestPasswdHelp(t *testing.T) {
	code, _, errs := passwdRun("", "--help")
	if code != 0 || !strings.Contains(errs, "stompica passwd") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	// The default cost is 12 (hashing at 12 is too slow under -race to try).
	if !strings.Contains(errs, "(default 12)") {
		t.Errorf("help %q does not give the default cost 12", errs)
	}
}

func TestPasswdViaRun(t *testing.T) {
	// run dispatches "passwd" before parsing broker flags.
	var errb bytes.Buffer
	if code := run([]string{"passwd"}, &errb); code != 2 || !strings.Contains(errb.String(), "Usage: stompica passwd") {
		t.Errorf("run passwd: exit %d, stderr %q", code, errb.String())
	}
}
