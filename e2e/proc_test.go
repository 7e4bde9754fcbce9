package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stompica/stompica/internal/testutil"
)

// Helpers for the packaging tests (npm, release, docker): running make in
// the module root, and watching processes through /proc.

// makeTimeout bounds one make run: cross-compiling two targets from a cold
// build cache takes a few minutes on a loaded 2-core machine.
const makeTimeout = 8 * time.Minute

// moduleRoot is the directory holding go.mod and the Makefile.
func moduleRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "Makefile")); err != nil {
		t.Fatalf("no Makefile in the module root %s: %v", root, err)
	}
	return root
}

// runMake runs `make -s ARGS...` in the module root and returns its output;
// it fails the test when make fails. It logs how long make took.
func runMake(t testing.TB, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make is not on PATH: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), makeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", append([]string{"-s"}, args...)...)
	cmd.Dir = moduleRoot(t)
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("make -s %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("make -s %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// procStat returns the state and parent pid of pid from /proc/PID/stat.
func procStat(pid int) (state byte, ppid int, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, 0, errors.New("unexpected /proc stat format")
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0][0], ppid, err
}

// childPids lists the live processes whose parent is ppid.
func childPids(ppid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, parent, err := procStat(pid); err == nil && parent == ppid && state != 'Z' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// processGone reports whether pid no longer runs (gone, or a zombie waiting
// to be reaped by whoever inherited it).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	state, _, err := procStat(pid)
	return err != nil || state == 'Z'
}

// waitGone waits up to d for pid to stop running.
func waitGone(pid int, d time.Duration) bool {
	return testutil.Poll(d, 10*time.Millisecond, func() bool { return processGone(pid) })
}
