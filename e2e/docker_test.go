package e2e

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompica/stompica/internal/testutil"
)

// dockerTimeout bounds the image build (it downloads the Go image and the
// modules the first time) and every other docker command.
const dockerTimeout = 10 * time.Minute

// TestDockerImage checks the container image in two parts. "binary" runs
// everywhere: it builds what the image would contain, with the command
// docker/Dockerfile runs (`make static`), and checks that it is the release
// binary byte for byte, static, and that its `healthcheck` subcommand (the
// image's HEALTHCHECK) tells a running broker from a stopped one. "image"
// builds the image, runs it and round-trips a message through it where a
// Docker daemon answers, and reports SKIP with the reason elsewhere.
func TestDockerImage(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("SKIP: the docker test runs the linux/amd64 binary; this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	trackSources.Do(statSources)
	t.Run("binary", testDockerBinary)
	t.Run("image", testDockerImage)
}

func testDockerBinary(t *testing.T) {
	dockerfile, err := os.ReadFile(filepath.Join(moduleRoot(t), "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"RUN make static ", "FROM scratch", "USER 65532:65532", "EXPOSE 3490 3491",
		`VOLUME ["/data"]`, `CMD ["/stompica", "healthcheck"]`, `ENTRYPOINT ["/stompica"]`} {
		if !bytes.Contains(dockerfile, []byte(want)) {
			t.Errorf("docker/Dockerfile lacks %q", want)
		}
	}

	work := t.TempDir()
	bin := filepath.Join(work, "stompica")
	runMake(t, "static", "GOOS=linux", "GOARCH=amd64", "OUT="+bin, "VERSION="+releaseTestVersion, "COMMIT="+releaseTestCommit)
	release := makeRelease(t, filepath.Join(work, "release"))
	got, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(release)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("`make static` (the image's build) and `make release` give different binaries: sha256 %s and %s", sha256Hex(got), sha256Hex(want))
	}
	checkReleaseBinary(t, bin)

	// The HEALTHCHECK command against a broker run from this binary.
	cmd := exec.Command(bin, "--host", "127.0.0.1", "--port", "0")
	log := &logBuffer{ready: make(chan string, 1)}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	var addr string
	select {
	case addr = <-log.ready:
	case <-done:
		t.Fatalf("the static broker exited (%v):\n%s", waitErr, log.String())
	case <-time.After(startTimeout):
		t.Fatalf("the static broker did not listen within %v:\n%s", startTimeout, log.String())
	}
	_, port, _ := net.SplitHostPort(addr)
	health := func() (int, string) {
		out, err := exec.Command(bin, "healthcheck", "--port", port, "--timeout", "5s").CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := health(); code != 0 || out != "ok\n" {
		t.Errorf("healthcheck against a running broker: exit %d %q, want 0 \"ok\"", code, out)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(stopTimeout):
		t.Fatalf("the static broker did not exit within %v of SIGTERM", stopTimeout)
	}
	if code, out := health(); code != 1 || !strings.Contains(out, "connection refused") {
		t.Errorf("healthcheck after the broker stopped: exit %d %q, want 1 and the reason", code, out)
	}
}

// docker runs a docker command and returns its trimmed output.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func testDockerImage(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skipf("SKIP: no docker command (%v); the image's binary was built and checked by the binary subtest", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("SKIP: no Docker daemon answers `docker info` (%v: %s); the image's binary was built with the same flags and checked by the binary subtest",
			err, strings.TrimSpace(string(out)))
	}

	tag := "stompica-e2e:" + runID
	runMake(t, "docker", "DOCKER_TAG="+tag, "VERSION="+releaseTestVersion, "COMMIT="+releaseTestCommit)
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", tag).Run() })
	if user := docker(t, "image", "inspect", "--format", "{{.Config.User}}", tag); user != "65532:65532" {
		t.Errorf("the image runs as %q, want the non-root 65532:65532", user)
	}
	if v := docker(t, "run", "--rm", tag, "version"); !strings.HasPrefix(v, "stompica "+releaseTestVersion+" (commit "+releaseTestCommit+",") {
		t.Errorf("docker run %s version: %q", tag, v)
	}

	id := docker(t, "run", "-d", "-p", "127.0.0.1::3490", "--health-interval", "1s", tag)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("docker", "logs", id).CombinedOutput()
			t.Logf("container log:\n%s", out)
		}
		_ = exec.Command("docker", "rm", "-f", id).Run()
	})
	addr := docker(t, "port", id, "3490/tcp")
	addr = strings.Split(addr, "\n")[0]

	var status string
	if !testutil.Poll(time.Minute, 200*time.Millisecond, func() bool {
		status = docker(t, "inspect", "--format", "{{.State.Health.Status}}", id)
		return status == "healthy"
	}) {
		t.Fatalf("the container is %q, not healthy, a minute after it started", status)
	}

	topic := dest(t, "topic")
	sub := subscribe(t, dial(t, addr), topic, stomp.AckAuto, "docker")
	send(t, dial(t, addr), topic, "through the container", stomp.SendOpt.Receipt)
	if m := recv(t, sub); string(m.Body) != "through the container" {
		t.Errorf("got %q through the container", m.Body)
	}

	docker(t, "stop", "--time", "15", id)
	if code := docker(t, "inspect", "--format", "{{.State.ExitCode}}", id); code != "0" {
		t.Errorf("the broker in the container exited with %s after docker stop, want 0 (a graceful shutdown)", code)
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		docker(t, "compose", "-f", filepath.Join(moduleRoot(t), "docker", "compose.yaml"), "config", "--quiet")
	}
}
