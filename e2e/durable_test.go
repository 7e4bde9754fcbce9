package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stompica/stompica/internal/testutil"
)

// The durable queue tests run the real binary with --data-dir: messages a
// RECEIPT confirmed survive a graceful restart and a SIGKILL.

// kill ends the broker with SIGKILL and waits for it; the test's cleanup
// then has nothing to stop.
func (b *broker) kill(t *testing.T) {
	t.Helper()
	b.stopOnce.Do(func() {
		if err := b.cmd.Process.Kill(); err != nil {
			t.Errorf("SIGKILL: %v", err)
		}
		<-b.done
		if strings.Contains(b.log.String(), "DATA RACE") {
			t.Errorf("the race detector found a data race in the broker:\n%s", b.log.String())
		}
	})
}

// stompConn is a raw STOMP 1.2 connection whose frames a goroutine reads
// into a channel (nil frame: the connection ended).
type stompConn struct {
	nc     net.Conn
	w      *bufio.Writer
	wmu    sync.Mutex
	frames chan rawFrame
}

func stompDial(t *testing.T, addr string) *stompConn {
	t.Helper()
	nc := testutil.Dial(t, addr, waitTimeout)
	c := &stompConn{nc: nc, w: bufio.NewWriterSize(nc, 64<<10), frames: make(chan rawFrame, 1<<16)}
	c.send(t, "CONNECT\naccept-version:1.2\nhost:h\nheart-beat:0,0\n\n\x00")
	go func() {
		defer close(c.frames)
		br := bufio.NewReaderSize(nc, 64<<10)
		for {
			cmd, hdr, body, err := testutil.ReadFrame(br)
			if err != nil {
				return
			}
			c.frames <- rawFrame{cmd: cmd, hdr: hdr, body: body}
		}
	}()
	if f := c.next(t); f.cmd != "CONNECTED" {
		t.Fatalf("CONNECT answered %s %v %q", f.cmd, f.hdr, f.body)
	}
	return c
}

// send writes frames (buffered: flush sends them); errors after the
// broker went away are ignored, the reader sees the end.
func (c *stompConn) send(t *testing.T, frames ...string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, f := range frames {
		c.w.WriteString(f)
	}
	c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	c.w.Flush()
}

// next returns the next frame, failing the test after waitTimeout.
func (c *stompConn) next(t *testing.T) rawFrame {
	t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			t.Fatal("connection closed while waiting for a frame")
		}
		return f
	case <-time.After(waitTimeout):
		t.Fatalf("no frame within %v", waitTimeout)
	}
	return rawFrame{}
}

// publishReceipted sends n SENDs with receipts to dest, pipelined, and
// waits for every RECEIPT. Bodies are prefix-<i>.
func publishReceipted(t *testing.T, addr, dest, prefix string, n int, extra string) {
	t.Helper()
	c := stompDial(t, addr)
	if extra != "" {
		extra += "\n"
	}
	var frames []string
	for i := 0; i < n; i++ {
		frames = append(frames, fmt.Sprintf("SEND\ndestination:%s\nreceipt:%d\n%s\n%s-%d\x00", dest, i, extra, prefix, i))
	}
	c.send(t, frames...)
	for i := 0; i < n; i++ {
		f := c.next(t)
		if f.cmd != "RECEIPT" || f.hdr["receipt-id"] != strconv.Itoa(i) {
			t.Fatalf("SEND %d answered %s %v %q", i, f.cmd, f.hdr, f.body)
		}
	}
	c.nc.Close()
}

// qdelivery is a received MESSAGE.
type qdelivery struct {
	body        string
	redelivered bool
}

// consume subscribes to dest (client-individual) and acknowledges each
// message once `hold` later ones have come (so that up to hold are
// unacknowledged at any time), sending every qdelivery to out.
func consume(t *testing.T, c *stompConn, dest string, hold int, out chan<- qdelivery) {
	c.send(t, fmt.Sprintf("SUBSCRIBE\nid:1\ndestination:%s\nack:client-individual\nprefetch-count:%d\n\n\x00", dest, hold+50))
	go func() {
		defer close(out)
		var unacked []string
		for f := range c.frames {
			if f.cmd != "MESSAGE" {
				continue
			}
			out <- qdelivery{body: f.body, redelivered: f.hdr["redelivered"] == "true"}
			unacked = append(unacked, f.hdr["ack"])
			if len(unacked) > hold {
				c.send(t, "ACK\nid:"+unacked[0]+"\n\n\x00")
				unacked = unacked[1:]
			}
		}
	}()
}

func TestDurableRestart(t *testing.T) {
	dir := t.TempDir()
	b := startBrokerProc(t, "--data-dir", dir)
	q := dest(t, "queue")
	const n = 500
	publishReceipted(t, b.addr, q, "m", n, "")
	// A non-persistent message is not kept across the restart.
	publishReceipted(t, b.addr, q, "transient", 1, "persistent:false")
	// Some are delivered and not acknowledged before the stop: they come
	// again, flagged.
	c := stompDial(t, b.addr)
	got := make(chan qdelivery, n)
	consume(t, c, q, 1000, got)
	for i := 0; i < 20; i++ {
		if d := <-got; d.body != fmt.Sprintf("m-%d", i) || d.redelivered {
			t.Fatalf("before the restart, qdelivery %d = %+v", i, d)
		}
	}
	b.stop(t)

	b = startBrokerProc(t, "--data-dir", dir)
	publishReceipted(t, b.addr, q, "end", 1, "")
	c = stompDial(t, b.addr)
	c.send(t, fmt.Sprintf("SUBSCRIBE\nid:1\ndestination:%s\nack:auto\n\n\x00", q))
	for i := 0; ; i++ {
		f := c.next(t)
		if f.cmd != "MESSAGE" {
			t.Fatalf("got %s %v %q", f.cmd, f.hdr, f.body)
		}
		if f.body == "end-0" {
			if i != n {
				t.Fatalf("after the restart %d messages came before the last one sent, want %d", i, n)
			}
			break
		}
		if want := fmt.Sprintf("m-%d", i); f.body != want {
			t.Fatalf("after the restart, message %d = %q, want %q", i, f.body, want)
		}
		// Redelivered: what the consumer held (at least the 20 it
		// read), and no more than the broker read ahead of it.
		if re := f.hdr["redelivered"] == "true"; i < 20 && !re {
			t.Fatalf("message %d was delivered before the restart: no redelivered:true", i)
		}
	}
	t.Logf("%d receipted messages consumed after a restart, in order", n)
}

func TestDurableKill9(t *testing.T) {
	dir := t.TempDir()
	b := startBrokerProc(t, "--data-dir", dir)
	q := dest(t, "queue")

	// Every qdelivery, by body: its redelivered flags in order.
	var mu sync.Mutex
	seen := map[string][]bool{}
	receipted := map[string]bool{}
	collect := func(in <-chan qdelivery) <-chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for d := range in {
				mu.Lock()
				seen[d.body] = append(seen[d.body], d.redelivered)
				mu.Unlock()
			}
		}()
		return done
	}
	// poll waits until cond holds (under mu), failing after 30s.
	poll := func(what string, cond func() bool) {
		t.Helper()
		testutil.WaitFor(t, 30*time.Second, what, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return cond()
		})
	}

	// A consumer that keeps 50 messages unacknowledged.
	got := make(chan qdelivery, 1<<16)
	consumed := collect(got)
	consume(t, stompDial(t, b.addr), q, 50, got)

	// A publisher that sends with receipts in a loop, pipelined, at most
	// 500 unconfirmed.
	p := stompDial(t, b.addr)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for f := range p.frames {
			if f.cmd == "RECEIPT" {
				mu.Lock()
				receipted[f.hdr["receipt-id"]] = true
				mu.Unlock()
			}
		}
	}()
	go func() {
		for i := 0; ; i += 50 {
			p.wmu.Lock()
			for j := i; j < i+50; j++ {
				fmt.Fprintf(p.w, "SEND\ndestination:%s\nreceipt:m-%d\n\nm-%d\x00", q, j, j)
			}
			p.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
			err := p.w.Flush()
			p.wmu.Unlock()
			if err != nil {
				return
			}
			for {
				mu.Lock()
				n := len(receipted)
				mu.Unlock()
				if n >= i-450 {
					break
				}
				select {
				case <-readerDone:
					return
				case <-time.After(time.Millisecond):
				}
			}
		}
	}()
	// SIGKILL mid-stream, once a few thousand are confirmed and some consumed.
	poll("3000 RECEIPTs and 1000 deliveries", func() bool { return len(receipted) >= 3000 && len(seen) >= 1000 })
	b.kill(t)
	<-readerDone
	<-consumed
	mu.Lock()
	nReceipted, before := len(receipted), len(seen)
	mu.Unlock()

	b = startBrokerProc(t, "--data-dir", dir)
	got2 := make(chan qdelivery, 1<<16)
	collect(got2)
	consume(t, stompDial(t, b.addr), q, 0, got2)
	lost := func() int {
		n := 0
		for id := range receipted {
			if _, ok := seen[id]; !ok {
				n++
			}
		}
		return n
	}
	poll("every receipted message", func() bool { return lost() == 0 })
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for body, flags := range seen {
		if len(flags) < 2 {
			continue
		}
		dups++
		if !slices.Contains(flags, true) {
			t.Errorf("%s delivered %d times, never with redelivered:true", body, len(flags))
		}
	}
	t.Logf("%d RECEIPTs before SIGKILL, %d messages consumed before it; after the restart lost = %d, %d delivered twice",
		nReceipted, before, lost(), dups)
	if dups < 50 {
		t.Errorf("%d messages came twice: the consumer held 50 unacknowledged at the kill, they must come again", dups)
	}
}

// A store that refuses a message (here: full) answers the SEND with an
// ERROR carrying its receipt-id, never a RECEIPT; the broker keeps serving.
func TestDurableStoreFull(t *testing.T) {
	b := startBrokerProc(t, "--data-dir", t.TempDir(), "--store-max-bytes", "65536")
	q := dest(t, "queue")
	c := stompDial(t, b.addr)
	body := strings.Repeat("x", 1000)
	receipts := 0
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("1000 KB stored under a 64 KiB bound")
		}
		c.send(t, fmt.Sprintf("SEND\ndestination:%s\nreceipt:r%d\n\n%s\x00", q, i, body))
		f := c.next(t)
		if f.cmd == "RECEIPT" {
			receipts++
			continue
		}
		if f.cmd != "ERROR" || f.hdr["receipt-id"] != fmt.Sprintf("r%d", i) {
			t.Fatalf("SEND %d answered %s %v %q", i, f.cmd, f.hdr, f.body)
		}
		if !strings.Contains(f.hdr["message"]+f.body, "store") {
			t.Errorf("ERROR does not say the store refused: %v %q", f.hdr, f.body)
		}
		break
	}
	if receipts < 20 || receipts > 64 {
		t.Fatalf("%d RECEIPTs before the ERROR, want about 60 under 64 KiB", receipts)
	}
	// The stored ones are all there.
	c = stompDial(t, b.addr)
	c.send(t, fmt.Sprintf("SUBSCRIBE\nid:1\ndestination:%s\n\n\x00", q))
	for i := 0; i < receipts; i++ {
		if f := c.next(t); f.cmd != "MESSAGE" {
			t.Fatalf("message %d: %s %v", i, f.cmd, f.hdr)
		}
	}
	t.Logf("%d RECEIPTs, then an ERROR with the receipt-id; all %d consumed", receipts, receipts)
}

// runBroker runs the binary expecting it to fail at start, and returns its
// output.
func runFailingBroker(t *testing.T, args ...string) string {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("the stompica binary could not be built: %v", buildErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, brokerBin, append([]string{"--host", "127.0.0.1", "--port", "0"}, args...)...).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("broker %v: %v, want exit status 1\n%s", args, err, out)
	}
	return string(out)
}

func TestDurableDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	startBrokerProc(t, "--data-dir", dir)
	out := runFailingBroker(t, "--data-dir", dir)
	if !strings.Contains(out, "data dir in use by another stompica") || !strings.Contains(out, "pid") {
		t.Fatalf("second broker on a locked data dir:\n%s", out)
	}
}

func TestDurableDataDirForeign(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "thesis.tex"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runFailingBroker(t, "--data-dir", dir)
	if !strings.Contains(out, "is not a stompica data dir") {
		t.Fatalf("foreign data dir:\n%s", out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "thesis.tex")); err != nil || string(b) != "mine" {
		t.Fatalf("the foreign file was touched: %q %v", b, err)
	}
}

// Durable topic subscriptions with python3-stomp, each header style: the
// subscriber leaves, three messages are published, the broker restarts,
// and the subscriber gets exactly those three in order; after its
// UNSUBSCRIBE with the headers, nothing is kept.
func TestDurablePythonSubscriptions(t *testing.T) {
	requirePythonStomp(t)
	for _, style := range []string{"activemq", "artemis", "rabbitmq"} {
		t.Run(style, func(t *testing.T) {
			dir := t.TempDir()
			b := startBrokerProc(t, "--data-dir", dir)
			py := func(addr, step string, want int) string {
				host, port, _ := net.SplitHostPort(addr)
				ctx, cancel := context.WithTimeout(context.Background(), pythonTimeout)
				defer cancel()
				cmd := exec.CommandContext(ctx, debianPython, "python/durable_e2e.py", style, step, "--host", host, "--port", port, "--want", strconv.Itoa(want))
				cmd.Env = pythonEnv()
				out, err := cmd.CombinedOutput()
				if err != nil || !strings.Contains(string(out), "PASS "+step) {
					t.Fatalf("python %s %s: %v\n%s", style, step, err, out)
				}
				return string(out)
			}
			py(b.addr, "away", 0)
			for i := 1; i <= 3; i++ {
				publishReceipted(t, b.addr, "/topic/py.news", fmt.Sprintf("n%d", i), 1, "")
			}
			b.stop(t)
			b = startBrokerProc(t, "--data-dir", dir)
			if out := py(b.addr, "resume", 3); !strings.Contains(out, "GOT n1-0,n2-0,n3-0\n") {
				t.Fatalf("after the restart:\n%s", out)
			}
			publishReceipted(t, b.addr, "/topic/py.news", "after", 1, "")
			if out := py(b.addr, "resume", 0); !strings.Contains(out, "GOT \n") {
				t.Fatalf("after UNSUBSCRIBE with the headers, still kept:\n%s", out)
			}
		})
	}
}

// Streams with python3-stomp against the binary: a /stream/ destination and
// a --record'ed topic each replay from first, go on live, and resume from
// the offset after the last one seen.
func TestStreamPython(t *testing.T) {
	requirePythonStomp(t)
	b := startBrokerProc(t, "--data-dir", t.TempDir(), "--record", "/topic/py.prices.>")
	host, port, _ := net.SplitHostPort(b.addr)
	for _, dest := range []string{"/stream/py", "/topic/py.prices.eur"} {
		ctx, cancel := context.WithTimeout(context.Background(), pythonTimeout)
		cmd := exec.CommandContext(ctx, debianPython, "python/stream_e2e.py", dest, "--host", host, "--port", port)
		cmd.Env = pythonEnv()
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), "PASS "+dest) {
			t.Fatalf("python %s: %v\n%s", dest, err, out)
		}
		t.Logf("%s:\n%s", dest, out)
	}
}
