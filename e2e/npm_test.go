package e2e

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompica/stompica/internal/testutil"
)

// npmTestVersion and npmTestCommit are stamped into the binaries of the
// tarball TestNpmPackage builds, and must come back from `stompica version`.
const (
	npmTestVersion = "0.0.0-npm-e2e"
	npmTestCommit  = "npm-e2e-commit"
)

// The fixed ports of the acceptance: the original's default and its README's
// run(0,5555,0,0,5000).
const (
	defaultPortFixed = 3490
	readmePortFixed  = 5555
)

// npmClientScript is the Node client of these tests, in e2e/node where
// @stomp/stompjs and ws are installed.
const npmClientScript = "npm-package-client.mjs"

// TestNpmPackage builds the npm tarball with `make npm` (static linux x64 and
// arm64 binaries), installs it with `npm i -g` into a temporary prefix, and
// drives what it installed the way the original's README does, with
// @stomp/stompjs over WebSocket and Debian's python3-stomp over TCP. The
// subtests run one after another: two of them need the fixed ports 3490
// and 5555 and skip, saying so, when those are taken.
func TestNpmPackage(t *testing.T) {
	node := requireNpmDeps(t)
	requirePythonStomp(t)
	trackSources.Do(statSources)

	work := t.TempDir()
	pack := filepath.Join(work, "pack")
	start := time.Now()
	runMake(t, "npm", "NPM_OUT="+pack, "VERSION="+npmTestVersion, "COMMIT="+npmTestCommit)
	tarballs, _ := filepath.Glob(filepath.Join(pack, "stompica-*.tgz"))
	if len(tarballs) != 1 {
		t.Fatalf("make npm left %d tarballs in %s, want 1: %v", len(tarballs), pack, tarballs)
	}
	if want := "stompica-" + npmTestVersion + ".tgz"; filepath.Base(tarballs[0]) != want {
		t.Errorf("tarball %s, want %s", filepath.Base(tarballs[0]), want)
	}
	prefix := filepath.Join(work, "prefix")
	env := npmEnv(prefix, work)
	npmInstall := exec.Command("npm", "install", "--global", "--offline", "--no-audit", "--no-fund", tarballs[0])
	npmInstall.Env = env
	if out, err := npmInstall.CombinedOutput(); err != nil {
		t.Fatalf("npm install --global %s (npm_config_prefix=%s): %v\n%s", tarballs[0], prefix, err, out)
	}
	t.Logf("make npm and npm install --global: %v", time.Since(start).Round(time.Millisecond))
	installed := filepath.Join(prefix, "lib", "node_modules", "stompica")
	for _, f := range []string{"bin/linux-x64/stompica", "bin/linux-arm64/stompica", "index.js", "index.d.ts", "README.md"} {
		if _, err := os.Stat(filepath.Join(installed, f)); err != nil {
			t.Errorf("the installed package lacks %s: %v", f, err)
		}
	}

	// The package picks the binary built for the machine's architecture.
	for _, arch := range []struct {
		node    string
		machine elf.Machine
	}{{"x64", elf.EM_X86_64}, {"arm64", elf.EM_AARCH64}} {
		cmd := exec.Command(node, "-p", "require('stompica').binaryPath('linux', '"+arch.node+"')")
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("binaryPath('linux', '%s'): %v\n%s", arch.node, err, out)
		}
		bin := strings.TrimSpace(string(out))
		if want := filepath.Join(installed, "bin", "linux-"+arch.node, "stompica"); bin != want {
			t.Errorf("binaryPath('linux', '%s') = %s, want %s", arch.node, bin, want)
		}
		if f, err := elf.Open(bin); err != nil || f.Machine != arch.machine {
			t.Errorf("%s: %v, want an ELF binary for %v", bin, err, arch.machine)
		} else {
			f.Close()
		}
		checkReleaseBinary(t, bin)
	}

	t.Run("command", func(t *testing.T) {
		testNpmCommand(t, prefix, env)
	})
	t.Run("runDefault", func(t *testing.T) {
		testNpmRunDefault(t, node, env)
	})
	t.Run("run(0,5555,0,0,5000)", func(t *testing.T) {
		testNpmRunTTL(t, node, env)
	})
	t.Run("run(object)", func(t *testing.T) {
		testNpmRunObject(t, node, env)
	})
	t.Run("node killed", func(t *testing.T) {
		testNpmNodeKilled(t, node, env)
	})
}

// requireNpmDeps fails (never skips) when node, npm or the Node clients are
// missing, and returns the path of node.
func requireNpmDeps(t *testing.T) string {
	t.Helper()
	const how = "`make test` installs them (its deps target runs `npm ci` in e2e/node; Node.js with npm comes with the machine), or run `make deps`"
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH (%v): %s", err, how)
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatalf("npm is not on PATH (%v): %s", err, how)
	}
	for _, m := range []string{"@stomp/stompjs", "ws"} {
		if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", m, "package.json")); err != nil {
			t.Fatalf("e2e/%s/node_modules lacks %s: %s", nodeDir, m, how)
		}
	}
	return node
}

// npmEnv is the environment in which `npm i -g` installs into prefix and
// `require('stompica')` finds what it installed there.
func npmEnv(prefix, work string) []string {
	var env []string
	for _, kv := range pythonEnv() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(strings.ToLower(k), "npm_config_") || k == "NODE_PATH" || strings.HasPrefix(k, "STOMPICA_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"npm_config_prefix="+prefix,
		"npm_config_cache="+filepath.Join(work, "npm-cache"),
		"npm_config_update_notifier=false",
		"NODE_PATH="+filepath.Join(prefix, "lib", "node_modules"),
		"PATH="+filepath.Join(prefix, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
		"STOMPICA_PYTHON="+debianPython,
		"NO_COLOR=1",
	)
}

// requireFreePort skips the test when port is taken: the acceptance fixes
// the port, so another broker (or another run of these tests) there means
// this one cannot run, not that stompica is broken.
func requireFreePort(t *testing.T, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		t.Skipf("SKIP: port %d is in use (%v); this acceptance test needs that fixed port free", port, err)
	}
	ln.Close()
}

// nodeProc is a node process started by a test, with its stdout lines and
// its stderr (where the package copies the broker's log).
type nodeProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	log    *logBuffer // stderr: the broker's log, with its listening line
	lines  chan string
	done   chan struct{}
	err    error
	output bytes.Buffer // stdout, for the failure log
	mu     sync.Mutex

	brokers []int // broker pids seen, killed at the end if a failed test left them
}

// broker records a broker pid to kill when the test ends, should the code
// under test have failed to stop it.
func (p *nodeProc) broker(pid int) int {
	p.brokers = append(p.brokers, pid)
	return pid
}

// startNode runs node with the script on stdin (as `echo SCRIPT | node`
// does) or, when keepStdin, with the script as -e and stdin open for
// commands. It is killed, with its children, when the test ends.
func startNode(t *testing.T, node string, env []string, script string, keepStdin bool) *nodeProc {
	t.Helper()
	p := &nodeProc{log: &logBuffer{ready: make(chan string, 1)}, lines: make(chan string, 16), done: make(chan struct{})}
	if keepStdin {
		p.cmd = exec.Command(node, "-e", script)
		w, err := p.cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.stdin = w
	} else {
		p.cmd = exec.Command(node)
		p.cmd.Stdin = strings.NewReader(script + "\n")
	}
	p.cmd.Env = env
	p.cmd.Stderr = p.log
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.output.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.brokers = append(p.brokers, childPids(p.cmd.Process.Pid)...)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		for _, pid := range p.brokers {
			if !processGone(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			p.mu.Lock()
			t.Logf("node stdout:\n%s\nnode stderr (the broker's log):\n%s", p.output.String(), p.log.String())
			p.mu.Unlock()
		}
	})
	return p
}

// waitListening waits for the broker's listening line on the node process's
// stderr and returns the address; it skips when the port was taken after all.
func (p *nodeProc) waitListening(t *testing.T) string {
	t.Helper()
	select {
	case addr := <-p.log.ready:
		return addr
	case <-p.done:
		if strings.Contains(p.log.String(), "address already in use") {
			t.Skipf("SKIP: the port was taken before the broker could listen:\n%s", p.log.String())
		}
		t.Fatalf("node exited (%v) before the broker logged its listening line", p.err)
	case <-time.After(startTimeout):
		t.Fatalf("no listening line from the broker within %v", startTimeout)
	}
	return ""
}

// line waits for the next stdout line of the node process.
func (p *nodeProc) line(t *testing.T, what string) string {
	t.Helper()
	select {
	case l := <-p.lines:
		return l
	case <-p.done:
		select {
		case l := <-p.lines:
			return l
		default:
		}
		t.Fatalf("node exited (%v) before printing %s", p.err, what)
	case <-time.After(waitTimeout):
		t.Fatalf("node did not print %s within %v", what, waitTimeout)
	}
	return ""
}

// ready reads the `ready PORT PID` line the test scripts print once
// handle.ready has resolved.
func (p *nodeProc) ready(t *testing.T) (port, pid int) {
	t.Helper()
	l := p.line(t, "the ready line")
	if _, err := fmt.Sscanf(l, "ready %d %d", &port, &pid); err != nil {
		t.Fatalf("node printed %q, want `ready PORT PID`", l)
	}
	p.broker(pid)
	return port, pid
}

// wait waits for the node process to exit and returns its error.
func (p *nodeProc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(stopTimeout):
		t.Fatalf("node did not exit within %v", stopTimeout)
	}
	return nil
}

// onlyChild returns the one child process of the node process: the broker.
func (p *nodeProc) onlyChild(t *testing.T) int {
	t.Helper()
	kids := childPids(p.cmd.Process.Pid)
	p.brokers = append(p.brokers, kids...)
	if len(kids) != 1 {
		t.Fatalf("node has %d child processes %v, want the broker alone", len(kids), kids)
	}
	return kids[0]
}

// runNodeClient runs a mode of e2e/node/npm-package-client.mjs against the
// broker at addr and fails unless it prints its PASS line.
func runNodeClient(t *testing.T, node string, env []string, mode, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, npmClientScript, mode)
	cmd.Dir = nodeDir
	cmd.Env = append(env, "STOMPICA_WS=ws://"+addr+"/ws", "STOMPICA_TCP="+addr)
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("STOMPICA_WS=ws://%s/ws STOMPICA_TCP=%s node %s %s (%v):\n%s", addr, addr, npmClientScript, mode, time.Since(start).Round(time.Millisecond), out)
	if err != nil || !strings.Contains(string(out), "PASS "+mode+":") {
		t.Fatalf("the %s clients failed (%v)", mode, err)
	}
}

// The `stompica` command passes flags and the original's key=value
// arguments through, and a SIGTERM to it stops the broker gracefully.
func testNpmCommand(t *testing.T, prefix string, env []string) {
	bin := filepath.Join(prefix, "bin", "stompica")
	for _, arg := range []string{"version", "--version"} {
		cmd := exec.Command(bin, arg)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		want := fmt.Sprintf("stompica %s (commit %s, go", npmTestVersion, npmTestCommit)
		if err != nil || !strings.HasPrefix(string(out), want) || !strings.HasSuffix(strings.TrimSpace(string(out)), "linux/amd64)") {
			t.Errorf("stompica %s: %v %q, want %q...linux/amd64)", arg, err, out, want)
		}
	}

	// A flag (--port 0: a random port) and a key=value argument (TTL=4321).
	cmd := exec.Command(bin, "--host", "127.0.0.1", "--port", "0", "--log-level", "info", "TTL=4321")
	cmd.Env = env
	log := &logBuffer{ready: make(chan string, 1)}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}) // closed when the command has exited, with waitErr
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	var kids []int
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			kids = append(kids, childPids(cmd.Process.Pid)...)
			_ = cmd.Process.Kill()
			<-done
		}
		for _, pid := range kids {
			if !processGone(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	var addr string
	select {
	case addr = <-log.ready:
	case <-done:
		t.Fatalf("stompica exited (%v) before listening:\n%s", waitErr, log.String())
	case <-time.After(startTimeout):
		t.Fatalf("stompica did not listen within %v:\n%s", startTimeout, log.String())
	}
	kids = childPids(cmd.Process.Pid)
	if len(kids) != 1 {
		t.Fatalf("the stompica command (node) has children %v, want one broker", kids)
	}
	conn := dial(t, addr)
	sub := subscribe(t, conn, "DIAG", stomp.AckAuto, "diag")
	if v := diag(t, conn, sub, "stale"); v["ttl_ms"] != float64(4321) {
		t.Errorf("DIAG stale after TTL=4321: %v", v)
	}
	_ = conn.Disconnect()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if waitErr != nil {
			t.Errorf("stompica after SIGTERM: %v, want exit status 0 (the broker's graceful exit)", waitErr)
		}
	case <-time.After(stopTimeout):
		t.Fatalf("stompica did not exit within %v of SIGTERM", stopTimeout)
	}
	if !processGone(kids[0]) {
		t.Errorf("broker pid %d still runs after the stompica command exited", kids[0])
	}
	if !strings.Contains(log.String(), `msg="shutting down"`) {
		t.Errorf("the broker did not shut down gracefully:\n%s", log.String())
	}
}

// `echo "require('stompica').runDefault()" | node` serves on 3490; a
// SIGTERM to node stops the broker, and node ends by that signal.
func testNpmRunDefault(t *testing.T, node string, env []string) {
	requireFreePort(t, defaultPortFixed)
	p := startNode(t, node, env, "require('stompica').runDefault()", false)
	addr := p.waitListening(t)
	if !strings.HasSuffix(addr, ":"+strconv.Itoa(defaultPortFixed)) {
		t.Fatalf("runDefault() listens on %s, want port %d", addr, defaultPortFixed)
	}
	broker := p.onlyChild(t)
	runNodeClient(t, node, env, "roundtrip", "127.0.0.1:"+strconv.Itoa(defaultPortFixed))

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := p.wait(t); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("node after SIGTERM: %v, want death by SIGTERM after stopping the broker", err)
	}
	if !processGone(broker) {
		t.Errorf("broker pid %d outlived node", broker)
	}
	if !strings.Contains(p.log.String(), `msg="shutting down"`) {
		t.Errorf("the broker was not shut down gracefully")
	}
}

// run(0,5555,0,0,5000) serves on 5555 with a 5 s TTL; stop() resolves once
// the broker has exited, and leaves no process behind.
func testNpmRunTTL(t *testing.T, node string, env []string) {
	requireFreePort(t, readmePortFixed)
	script := `
const b = require('stompica').run(0, 5555, 0, 0, 5000);
b.ready.then(() => console.log('ready', b.port, b.pid));
process.stdin.once('data', async () => {
  process.stdin.destroy();
  const e = await b.stop();
  console.log('stopped', JSON.stringify(e));
});`
	p := startNode(t, node, env, script, true)
	addr := p.waitListening(t)
	port, pid := p.ready(t)
	if port != readmePortFixed || !strings.HasSuffix(addr, ":"+strconv.Itoa(readmePortFixed)) {
		t.Fatalf("handle.port %d, listening on %s; want %d", port, addr, readmePortFixed)
	}
	if kid := p.onlyChild(t); kid != pid {
		t.Fatalf("handle.pid %d, but node's child is %d", pid, kid)
	}
	runNodeClient(t, node, env, "ttl", "127.0.0.1:"+strconv.Itoa(readmePortFixed))

	if _, err := io.WriteString(p.stdin, "stop\n"); err != nil {
		t.Fatal(err)
	}
	if l := p.line(t, "the stopped line"); l != `stopped {"code":0,"signal":null}` {
		t.Errorf("stop() resolved with %q, want exit code 0", l)
	}
	// stop() resolves after Node has reaped the process: it is gone now.
	if !processGone(pid) {
		t.Errorf("broker pid %d still runs after stop() resolved", pid)
	}
	if err := p.wait(t); err != nil {
		t.Errorf("node after stop(): %v, want a clean exit with nothing left to wait for", err)
	}
}

// run({...}) maps camelCase keys to flags; port 0 gives a random port that
// handle.port reports; process.exit takes the broker with it.
func testNpmRunObject(t *testing.T, node string, env []string) {
	script := `
const b = require('stompica').run({ host: '127.0.0.1', port: 0, ttl: 1234, logFormat: 'json', heartBeat: '0,0' });
b.ready.then(() => console.log('ready', b.port, b.pid));
process.stdin.once('data', () => process.exit(7));`
	p := startNode(t, node, env, script, true)
	port, pid := p.ready(t)
	if port == 0 || port == defaultPortFixed {
		t.Fatalf("handle.port %d, want the random port the broker chose", port)
	}
	// The broker's log reaches node's stderr, which may come after the
	// "ready" line on its stdout.
	if !testutil.Poll(10*time.Second, testutil.PollEvery, func() bool {
		return strings.Contains(p.log.String(), `"msg":"stompica listening"`)
	}) {
		t.Errorf("logFormat: 'json' did not reach the broker:\n%s", p.log.String())
	}
	conn := dial(t, "127.0.0.1:"+strconv.Itoa(port))
	sub := subscribe(t, conn, "DIAG", stomp.AckAuto, "diag")
	if v := diag(t, conn, sub, "stale"); v["ttl_ms"] != float64(1234) {
		t.Errorf("DIAG stale after ttl: 1234: %v", v)
	}
	_ = conn.Disconnect()

	if _, err := io.WriteString(p.stdin, "exit\n"); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := p.wait(t); !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Errorf("node after process.exit(7): %v", err)
	}
	if !waitGone(pid, stopTimeout) {
		t.Errorf("broker pid %d outlived node's process.exit by %v", pid, stopTimeout)
	}
}

// testNpmNodeKilled: a Node process killed with SIGKILL (no exit handler
// runs) still takes the broker with it: the broker watches the pipe the
// package gives it as standard input (--stop-with-stdin), which the kernel
// closes when node dies.
func testNpmNodeKilled(t *testing.T, node string, env []string) {
	script := `
const b = require('stompica').run({ host: '127.0.0.1', port: 0 });
b.ready.then(() => console.log('ready', b.port, b.pid));`
	p := startNode(t, node, env, script, true)
	_, pid := p.ready(t)
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.wait(t) //nolint:errcheck // killed on purpose
	if !waitGone(pid, stopTimeout) {
		t.Errorf("broker pid %d outlived node killed with SIGKILL by %v", pid, stopTimeout)
	}
}
