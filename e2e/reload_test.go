package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompica/stompica/internal/testutil"
)

// usersLine makes a users-file line with the broker's own "stompica passwd"
// (bcrypt at the minimum cost, to keep the test fast).
func usersLine(t *testing.T, login, password string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, brokerBin, "passwd", "--cost", "4", login)
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("stompica passwd %s: %v", login, err)
	}
	return strings.TrimSpace(string(out))
}

// waitLog waits until the broker's log holds want at least n times.
func waitLog(t *testing.T, b *broker, want string, n int) {
	t.Helper()
	if !testutil.Poll(waitTimeout, 10*time.Millisecond, func() bool {
		select {
		case <-b.done:
			t.Fatalf("the broker exited (%v) while waiting for %q in its log", b.waitErr, want)
		default:
		}
		return strings.Count(b.log.String(), want) >= n
	}) {
		t.Fatalf("%q not in the broker's log %d times within %v", want, n, waitTimeout)
	}
}

// hup sends SIGHUP to the broker.
func (b *broker) hup(t *testing.T) {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("sending SIGHUP: %v", err)
	}
}

// TestSIGHUPReload: SIGHUP no longer kills the broker. It reloads the users
// file: a user added can log in, a user removed cannot; connections opened
// before keep exchanging messages; a bad file keeps the old users and the log
// says why. The broker exits 0 on SIGTERM at the end (broker.stop checks).
func TestSIGHUPReload(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	alice, bob, carol := usersLine(t, "alice", "wonderland"), usersLine(t, "bob", "builder"), usersLine(t, "carol", "c4rol")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(users, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(alice + "\n" + bob + "\n")
	b := startBrokerProc(t, "--users", users)
	login := func(l, p string) (*stomp.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		c, err := stomp.DialWithContext(ctx, "tcp", b.addr, append(connOpts(t), stomp.ConnOpt.Login(l, p))...)
		if err == nil {
			t.Cleanup(func() { _ = c.MustDisconnect() })
		}
		return c, err
	}
	mustLogin := func(l, p string) *stomp.Conn {
		t.Helper()
		c, err := login(l, p)
		if err != nil {
			t.Fatalf("login %s: %v", l, err)
		}
		return c
	}

	topic := dest(t, "topic")
	sub := mustLogin("alice", "wonderland")
	s := subscribe(t, sub, topic, stomp.AckAuto, "s")
	pub := mustLogin("bob", "builder")
	exchange := func(round string) {
		t.Helper()
		for i := range 3 {
			body := fmt.Sprintf("%s %d", round, i)
			send(t, pub, topic, body, stomp.SendOpt.Receipt)
			if m := recv(t, s); string(m.Body) != body {
				t.Fatalf("got %q, want %q", m.Body, body)
			}
		}
	}
	exchange("before")
	if _, err := login("carol", "c4rol"); err == nil {
		t.Fatal("carol logged in before she was in the users file")
	}

	// carol in, alice out; alice's connection from before stays.
	write(bob + "\n" + carol + "\n")
	b.hup(t)
	waitLog(t, b, "SIGHUP: reloaded", 1)
	if log := b.log.String(); !strings.Contains(log, "users=2") || !strings.Contains(log, "file="+users) {
		t.Errorf("the reload line does not name the users file and its 2 users:\n%s", log)
	}
	exchange("after the first SIGHUP")
	mustLogin("carol", "c4rol")
	if _, err := login("alice", "wonderland"); err == nil {
		t.Error("alice logged in after she was removed from the users file")
	}

	// A bad file: the users of the last good one stay.
	write(carol + "\nnot an entry\n")
	b.hup(t)
	waitLog(t, b, "SIGHUP: reload incomplete", 1)
	waitLog(t, b, "reload: keeping the old users file", 1)
	if log := b.log.String(); !strings.Contains(log, "level=WARN") || !strings.Contains(log, "line 2") {
		t.Errorf("the warning does not say which line is bad:\n%s", log)
	}
	exchange("after the bad SIGHUP")
	mustLogin("bob", "builder")
	mustLogin("carol", "c4rol")

	// Several SIGHUPs in a row are all answered; the broker keeps running.
	write(bob + "\n" + carol + "\n")
	for range 5 {
		b.hup(t)
	}
	waitLog(t, b, "SIGHUP: reloaded", 2)
	exchange("after more SIGHUPs")
	select {
	case <-b.done:
		t.Fatalf("the broker exited after SIGHUP: %v", b.waitErr)
	default:
	}
}
