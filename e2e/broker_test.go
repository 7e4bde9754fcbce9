package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// startTimeout bounds the wait for the broker's "stompica listening" line.
	startTimeout = 15 * time.Second
	// stopTimeout bounds the wait for the broker to exit after SIGTERM.
	stopTimeout = 10 * time.Second
	// waitTimeout bounds every single client-side wait (a message, a receipt).
	waitTimeout = 10 * time.Second
)

var (
	brokerBin string // the stompica binary built by TestMain
	buildErr  error  // why it could not be built, reported by every test that needs it
)

// TestMain builds ./cmd/stompica once into a temporary directory (with the race
// detector when the tests run with it) and removes it afterwards.
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "stompica-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	brokerBin, buildErr = buildBroker(dir)
	if buildErr != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the broker failed; every test that needs it says why")
	}
	return m.Run()
}

func buildBroker(dir string) (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("module root not found above the e2e package: %w", err)
	}
	gotool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("go tool not on PATH: %w", err)
	}
	bin := filepath.Join(dir, "stompica")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/stompica")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gotool, args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

var trackSources sync.Once

// statSources stats every file of the module (but .git, node_modules and
// bin). go test records the files a test opens or stats and reuses a cached
// result only while they are unchanged; without this a cached e2e result
// would survive a change to the broker, which the test binary does not import.
// It must run inside a test (TestMain's own file accesses are not recorded).
func statSources() {
	root, err := filepath.Abs("..")
	if err != nil {
		return
	}
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "bin", "build":
				return filepath.SkipDir
			}
			return nil
		}
		_, _ = os.Stat(path)
		return nil
	})
}

// broker is one running stompica process.
type broker struct {
	addr string
	cmd  *exec.Cmd
	log  *logBuffer

	done    chan struct{} // closed when the process has exited
	waitErr error         // cmd.Wait's result, valid after done

	signalOnce sync.Once
	stopOnce   sync.Once
}

// startBroker starts stompica on a random loopback port with the given extra
// flags, waits for its listening line and returns host:port. The broker is
// stopped with SIGTERM when the test ends.
func startBroker(t testing.TB, args ...string) string {
	t.Helper()
	return startBrokerProc(t, args...).addr
}

// startBrokerProc is startBroker for tests that need the process itself.
func startBrokerProc(t testing.TB, args ...string) *broker {
	t.Helper()
	return startBrokerUnder(t, nil, args...)
}

// startBrokerUnder is startBrokerProc with the broker run by a wrapper
// command that execs it (e.g. prlimit --nofile=N:N), so the process is the
// broker's.
func startBrokerUnder(t testing.TB, wrapper []string, args ...string) *broker {
	t.Helper()
	trackSources.Do(statSources)
	if buildErr != nil {
		t.Fatalf("the stompica binary could not be built: %v", buildErr)
	}
	full := append([]string{"--host", "127.0.0.1", "--port", "0"}, args...)
	argv := append(append(append([]string(nil), wrapper...), brokerBin), full...)
	b := &broker{
		cmd:  exec.Command(argv[0], argv[1:]...),
		log:  &logBuffer{ready: make(chan string, 1)},
		done: make(chan struct{}),
	}
	if raceEnabled && os.Getenv("GORACE") == "" {
		// the race runtime sleeps 1s at exit by default; keep shutdowns quick
		b.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=100")
	}
	b.cmd.Stdout = b.log
	b.cmd.Stderr = b.log
	b.cmd.WaitDelay = stopTimeout
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", argv[0], err)
	}
	go func() {
		b.waitErr = b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() { b.stop(t) })

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case b.addr = <-b.log.ready:
		return b
	case <-b.done:
		t.Fatalf("broker exited before it logged `msg=\"stompica listening\"`: %v", b.waitErr)
	case <-timer.C:
		t.Fatalf("broker did not log `msg=\"stompica listening\" addr=...` within %v", startTimeout)
	}
	return nil
}

// signal sends SIGTERM once.
func (b *broker) signal(t testing.TB) {
	b.signalOnce.Do(func() {
		if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("sending SIGTERM to the broker: %v", err)
		}
	})
}

// stop sends SIGTERM (unless already sent) and waits for the process to exit:
// it must exit with status 0 within stopTimeout, and its log must hold no
// panic and no data race. On any test failure the broker's log is logged.
func (b *broker) stop(t testing.TB) {
	b.stopOnce.Do(func() {
		select {
		case <-b.done:
			t.Errorf("broker exited before the test ended: %v", b.waitErr)
		default:
			b.signal(t)
			start := time.Now()
			timer := time.NewTimer(stopTimeout)
			select {
			case <-b.done:
				timer.Stop()
				t.Logf("broker exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
				if b.waitErr != nil {
					t.Errorf("broker exit after SIGTERM: %v, want exit status 0", b.waitErr)
				}
			case <-timer.C:
				t.Errorf("broker did not exit within %v of SIGTERM; killing it", stopTimeout)
				_ = b.cmd.Process.Kill()
				<-b.done
			}
		}
		log := b.log.String()
		if strings.Contains(log, "panic") {
			t.Errorf("broker log contains a panic")
		}
		if strings.Contains(log, "DATA RACE") {
			t.Errorf("the race detector found a data race in the broker")
		}
		if t.Failed() {
			t.Logf("broker log (%s):\n%s", strings.Join(b.cmd.Args, " "), log)
		}
	})
}

// logBuffer collects the broker's output and reports on ready the address of
// the first complete `msg="stompica listening"` line that is not tls=true.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	scanned int // bytes of buf already searched for the listening line
	found   bool
	ready   chan string
}

var listenAddrRE = regexp.MustCompile(`(?:^|\s)addr="?([^\s"]+)"?`)

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for !l.found {
		rest := l.buf.Bytes()[l.scanned:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		line := string(rest[:i])
		l.scanned += i + 1
		// the plain STOMP listener; a TLS listener logs its own line with tls=true
		if !strings.Contains(line, `msg="stompica listening"`) || strings.Contains(line, "tls=true") {
			continue
		}
		if m := listenAddrRE.FindStringSubmatch(line); m != nil {
			l.found = true
			l.ready <- m[1]
		}
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
