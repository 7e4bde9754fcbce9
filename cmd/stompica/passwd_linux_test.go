package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"

	"github.com/stompica/stompica/internal/testutil"
)

// openPTY opens a pseudo-terminal: the controller side (what a terminal
// emulator reads and writes) and the terminal the command reads.
func openPTY(t *testing.T) (ptmx, tty *os.File) {
	t.Helper()
	// Non-blocking, so that reads from it honour deadlines.
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	ptmx = os.NewFile(uintptr(fd), "/dev/ptmx")
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open the terminal: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return ptmx, tty
}

// poll calls done every millisecond until it returns true (poll returns
// true) or 5 s have passed (poll returns false).
func poll(done func() bool) bool { return testutil.Poll(5*time.Second, time.Millisecond, done) }

// typeWhenSilent waits until the terminal no longer echoes (the command is
// reading a password), then types line.
func typeWhenSilent(t *testing.T, ptmx, tty *os.File, line string) {
	t.Helper()
	if !poll(func() bool {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		return tio.Lflag&unix.ECHO == 0
	}) {
		t.Fatal("the terminal still echoes: the password would be shown")
	}
	if _, err := ptmx.WriteString(line); err != nil {
		t.Fatal(err)
	}
}

// On a terminal, "stompica passwd" asks twice and does not echo.
func TestPasswdTerminalNoEcho(t *testing.T) {
	for _, tc := range []struct {
		name, first, again string
		code               int
	}{{"same", "s3cret", "s3cret", 0}, {"differ", "s3cret", "other", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			ptmx, tty := openPTY(t)
			var out bytes.Buffer
			errb := &syncBuffer{}
			done := make(chan int, 1)
			go func() { done <- runPasswd([]string{"--cost", "4", "alice"}, tty, &out, errb) }()
			typeWhenSilent(t, ptmx, tty, tc.first+"\n")
			// Echo is back on between the two reads: wait for the second
			// prompt, then for the echo to go off again.
			if !poll(func() bool { return strings.Contains(errb.String(), "Again: ") }) {
				t.Fatalf("no second prompt: %q", errb.String())
			}
			typeWhenSilent(t, ptmx, tty, tc.again+"\n")
			var code int
			select {
			case code = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("passwd did not finish")
			}
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, errb.String())
			}
			ptmx.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			echoed := make([]byte, 4096)
			n, _ := ptmx.Read(echoed)
			if strings.Contains(string(echoed[:n]), "s3cret") || strings.Contains(string(echoed[:n]), "other") {
				t.Errorf("the terminal showed the password: %q", echoed[:n])
			}
			if !strings.Contains(errb.String(), "Password (not shown): ") || !strings.Contains(errb.String(), "Again: ") {
				t.Errorf("prompts %q", errb.String())
			}
			if tc.code != 0 {
				if !strings.Contains(errb.String(), "the two passwords differ") || out.Len() != 0 {
					t.Errorf("stdout %q stderr %q", out.String(), errb.String())
				}
				return
			}
			_, hash, _ := strings.Cut(strings.TrimSpace(out.String()), ":")
			if bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret")) != nil {
				t.Errorf("output %q does not verify", out.String())
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer = testutil.SyncBuffer
