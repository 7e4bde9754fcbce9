package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// debianPython is Debian's interpreter, which sees Debian's python3-stomp. The
// python3 first on PATH may be another build without Debian's dist-packages.
const debianPython = "/usr/bin/python3"

const pythonScript = "python/stomp_e2e.py"

// pythonTimeout bounds one scenario script; the script's own watchdog (45s)
// fires first and says where it was.
const pythonTimeout = 60 * time.Second

var pythonCheck struct {
	once sync.Once
	err  error
	out  []byte
}

// requirePythonStomp fails (never skips) the test when /usr/bin/python3 cannot
// import stomp: these tests are part of the suite CI runs.
func requirePythonStomp(t *testing.T) {
	t.Helper()
	pythonCheck.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, debianPython, "-c", "import stomp")
		cmd.Env = pythonEnv()
		pythonCheck.out, pythonCheck.err = cmd.CombinedOutput()
	})
	if pythonCheck.err != nil {
		t.Fatalf("%s -c 'import stomp' failed: %v\n%s\n"+
			"Debian's python3-stomp is missing: `make test` installs it (its deps target runs "+
			"`apt-get install -y python3-stomp`), or run `make deps`.",
			debianPython, pythonCheck.err, pythonCheck.out)
	}
}

// pythonEnv is the environment without variables that would point Debian's
// interpreter at another Python installation.
func pythonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PYTHONHOME=") || strings.HasPrefix(kv, "PYTHONPATH=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
}

// runPython runs one scenario of python/stomp_e2e.py against addr and fails
// the test unless the script exits 0 with its PASS line.
func runPython(t *testing.T, scenario, addr string, args ...string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("bad broker address %q: %v", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pythonTimeout)
	defer cancel()
	full := append([]string{pythonScript, scenario, "--host", host, "--port", port}, args...)
	cmd := exec.CommandContext(ctx, debianPython, full...)
	cmd.Env = pythonEnv()
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("%s %s (%v):\n%s", debianPython, strings.Join(full, " "), time.Since(start).Round(time.Millisecond), out)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		t.Fatalf("python scenario %s did not finish within %v", scenario, pythonTimeout)
	case err != nil:
		t.Fatalf("python scenario %s failed (%v): %s", scenario, err, resultLine(out, scenario))
	case !strings.Contains(string(out), "PASS "+scenario+":"):
		t.Fatalf("python scenario %s exited 0 without its PASS line", scenario)
	}
}

// resultLine picks the script's PASS/FAIL line out of its output.
func resultLine(out []byte, scenario string) string {
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "FAIL "+scenario) || strings.HasPrefix(l, "PASS "+scenario) {
			return l
		}
	}
	return "(no result line; see the output above)"
}

// TestPython drives the broker with Debian's python3-stomp (stomp.py), one
// broker per scenario.
func TestPython(t *testing.T) {
	scenarios := []struct {
		name       string
		brokerArgs []string
		scriptArgs []string
	}{
		// 2 topic subscribers each get N messages with destination/subscription/message-id headers.
		{name: "pubsub"},
		// client-individual acks over 2 consumers, a NACK comes back with redelivered:true.
		{name: "queue"},
		// an unacked message goes back to the queue on disconnect, redelivered:true.
		{name: "requeue"},
		// SENDs in a transaction appear only on COMMIT, never after ABORT.
		{name: "tx"},
		// an ACK in a transaction takes effect only on COMMIT.
		{name: "txack"},
		// request-reply through reply-to:/temp-queue/NAME.
		{name: "rpc"},
		// RECEIPT for SUBSCRIBE, SEND, BEGIN, COMMIT, UNSUBSCRIBE, DISCONNECT.
		{name: "receipts"},
		// heart-beats 100,100 both ways; alive after 1.5s of idleness.
		{name: "heartbeat", brokerArgs: heartBeatArgs,
			scriptArgs: []string{"--expect-heartbeat", "100,100"}},
		// a 1 MiB body full of NULs, byte-exact, over a topic and a queue.
		{name: "binary"},
		// stomp.Connection10/11/12 negotiate their version; 1.1/1.2 header escaping.
		{name: "versions"},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			requirePythonStomp(t)
			addr := startBroker(t, sc.brokerArgs...)
			runPython(t, sc.name, addr, sc.scriptArgs...)
		})
	}
}
