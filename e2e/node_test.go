package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/stompica/stompica/internal/testutil"
)

const (
	// nodeDir holds the Node tests, their package.json and package-lock.json.
	nodeDir = "node"
	// chromiumPath is Debian's chromium, which the browser tests drive.
	chromiumPath = "/usr/bin/chromium"
	// nodeTimeout bounds the whole `node --test` run.
	nodeTimeout = 3 * time.Minute
)

// nodeModules are the packages the tests import, as installed by `npm ci`.
var nodeModules = []string{"@stomp/stompjs", "ws", "stompjs", "websocket", "playwright-core"}

// TestNode runs the Node and real-browser tests in e2e/node (@stomp/stompjs v7
// over ws and wss, npm stompjs 2.3.3, and Chromium via playwright-core) with
// node's built-in test runner against one broker that listens on plain TCP
// and TLS with a self-signed certificate and offers heart-beats 100,100
// (grace 5).
func TestNode(t *testing.T) {
	node := requireNodeDeps(t)
	requirePythonStomp(t) // the browser test publishes from Debian's python3-stomp

	certFile, keyFile := writeTestCert(t, t.TempDir())
	b := startBrokerProc(t,
		"--tls-port", "0", "--tls-cert", certFile, "--tls-key", keyFile,
		"--heart-beat", "100,100",
		// A client silent for 5 intervals (500 ms) is closed: 2 (the default)
		// would close a healthy client whenever the loaded 2-core machine
		// stalls a process for 200 ms.
		"--heart-beat-grace", "5")
	plain, tlsAddr := listenAddrs(t, b)

	files, err := filepath.Glob(filepath.Join(nodeDir, "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s/*.test.mjs files found (%v)", nodeDir, err)
	}
	for i, f := range files {
		files[i] = filepath.Base(f)
	}

	runNode(t, node, []string{
		"STOMPICA_WS=ws://" + plain + "/ws",
		"STOMPICA_WSS=wss://" + tlsAddr + "/stomp",
		"STOMPICA_TCP=" + plain,
		"STOMPICA_TLS_CA=" + certFile,
	}, files...)
}

// runNode runs `node --test` on files in e2e/node with env added to the
// environment, and fails unless every test it registered passed.
func runNode(t *testing.T, node string, env []string, files ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	args := append([]string{"--test", "--test-reporter=spec"}, files...)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = nodeDir
	cmd.Env = append(append(pythonEnv(), env...),
		"STOMPICA_PYTHON="+debianPython,
		"STOMPICA_CHROMIUM="+chromiumPath,
		"NO_COLOR=1",
	)
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s (cd e2e/%s && %s %s) took %v:\n%s",
		strings.Join(env, " "), nodeDir, node, strings.Join(args, " "), time.Since(start).Round(time.Millisecond), out.String())
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		t.Fatalf("node --test did not finish within %v (output above)", nodeTimeout)
	case err != nil:
		t.Fatalf("node --test failed (%v): %s (output above)", err, nodeSummary(out.String()))
	}
	if !nodeRanTests(out.String()) {
		t.Fatalf("node --test exited 0 but reports no passing test: %s", nodeSummary(out.String()))
	}
}

// requireNodeDeps fails (never skips: these tests are part of the suite CI
// runs) when node, Chromium or the npm packages are missing, and returns the
// path of node.
func requireNodeDeps(t *testing.T) string {
	t.Helper()
	const how = "`make test` installs them (its deps target runs `apt-get install -y chromium python3-stomp` " +
		"and `npm ci` in e2e/node; Node.js 20 with npm comes with the machine), or run `make deps`"
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH (%v): %s", err, how)
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("Chromium is missing (%v): %s", err, how)
	}
	var missing []string
	for _, m := range nodeModules {
		if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", m, "package.json")); err != nil {
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("e2e/%s/node_modules lacks %s: %s", nodeDir, strings.Join(missing, ", "), how)
	}
	return node
}

// listenAddrs returns the broker's plain and TLS addresses from its
// `msg="stompica listening" addr=... tls=false|true` lines.
func listenAddrs(t *testing.T, b *broker) (plain, tlsAddr string) {
	t.Helper()
	re := regexp.MustCompile(`msg="stompica listening".*?\baddr="?([^\s"]+)"?.*?\btls=(true|false)`)
	if !testutil.Poll(startTimeout, 10*time.Millisecond, func() bool {
		select {
		case <-b.done:
			t.Fatalf("broker exited: %v; log:\n%s", b.waitErr, b.log.String())
		default:
		}
		for _, m := range re.FindAllStringSubmatch(b.log.String(), -1) {
			if m[2] == "true" {
				tlsAddr = m[1]
			} else {
				plain = m[1]
			}
		}
		return plain != "" && tlsAddr != ""
	}) {
		t.Fatalf("broker did not log both listening lines (tls=false and tls=true) within %v; log:\n%s", startTimeout, b.log.String())
	}
	return plain, tlsAddr
}

// writeTestCert writes a fresh self-signed ECDSA certificate for 127.0.0.1
// and localhost, valid for one hour, and its key to dir.
func writeTestCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "127.0.0.1", Organization: []string{"stompica e2e"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // so that Node accepts it as its own trust anchor (ca option)
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

var (
	nodeCountRE = regexp.MustCompile(`(?m)^ℹ (tests|pass|fail|cancelled|skipped|todo) (\d+)$`)
)

// nodeSummary picks node's closing counts out of its output.
func nodeSummary(out string) string {
	var parts []string
	for _, m := range nodeCountRE.FindAllStringSubmatch(out, -1) {
		parts = append(parts, m[1]+" "+m[2])
	}
	if len(parts) == 0 {
		return "(no summary from node's test runner)"
	}
	return strings.Join(parts, ", ")
}

// nodeRanTests reports whether node counted at least one passing test and no
// failing, cancelled or skipped one.
func nodeRanTests(out string) bool {
	counts := map[string]string{}
	for _, m := range nodeCountRE.FindAllStringSubmatch(out, -1) {
		counts[m[1]] = m[2]
	}
	return counts["pass"] != "" && counts["pass"] != "0" &&
		counts["fail"] == "0" && counts["cancelled"] == "0" && counts["skipped"] == "0" &&
		fmt.Sprint(counts["tests"]) == counts["pass"]
}

// TestNodeDurable: durable subscriptions from @stomp/stompjs in headless
// Chromium over WebSocket, across a broker restart, and the console's view
// of the durable pieces. Three node runs around what this driver does
// (browser.test.mjs and console.test.mjs, by STOMPICA_PHASE):
//
//  1. durable-away: the page subscribes durably to a topic in the RabbitMQ
//     (durable:true, auto-delete:false, id) and ActiveMQ (client-id,
//     activemq.subscriptionName) styles, gets a live message on each and
//     disconnects. Go (go-stomp) then publishes away-1..away-5 with
//     receipts, 4 messages to a durable queue, 3 to a /stream/ destination
//     and 2 to a --record'ed topic.
//  2. durable-console: the console in Chromium shows the queue marked
//     durable, both subscriptions away with 5 messages waiting each, and
//     the two streams with their counts and offsets.
//  3. The broker stops and starts again on the same --data-dir; then
//     durable-back: the page subscribes again with the same headers and
//     gets exactly away-1..away-5, in order, on each subscription, then a
//     live message.
func TestNodeDurable(t *testing.T) {
	node := requireNodeDeps(t)
	args := []string{"--data-dir", t.TempDir(), "--record", "/topic/e2e.rec.>"}
	b := startBrokerProc(t, args...)
	const away, queued, streamed = 5, 4, 3
	topic, queue, stream := dest(t, "topic"), dest(t, "queue"), dest(t, "stream")
	recorded := "/topic/e2e.rec" + strings.TrimPrefix(dest(t, "topic"), "/topic/e2e")
	phase := func(addr, name string) []string {
		return []string{"STOMPICA_PHASE=" + name, "STOMPICA_WS=ws://" + addr + "/ws", "STOMPICA_TCP=" + addr,
			"STOMPICA_DURABLE_TOPIC=" + topic, "STOMPICA_DURABLE_AWAY=" + strconv.Itoa(away),
			"STOMPICA_DURABLE_CLIENT_ID=e2e-browser"}
	}

	runNode(t, node, phase(b.addr, "durable-away"), "browser.test.mjs")
	waitDurablesAway(t, b.addr, 2)
	pub := dial(t, b.addr)
	for i := 1; i <= away; i++ {
		send(t, pub, topic, "away-"+strconv.Itoa(i), stomp.SendOpt.Receipt)
	}
	for i := 1; i <= queued; i++ {
		send(t, pub, queue, "job-"+strconv.Itoa(i), stomp.SendOpt.Receipt)
	}
	for i := 1; i <= streamed; i++ { // offsets 1..3 of the streams' log
		send(t, pub, stream, "tick-"+strconv.Itoa(i), stomp.SendOpt.Receipt)
	}
	for i := 1; i <= 2; i++ { // offsets 4 and 5
		send(t, pub, recorded, "price-"+strconv.Itoa(i), stomp.SendOpt.Receipt)
	}
	if err := pub.Disconnect(); err != nil {
		t.Fatalf("go-stomp DISCONNECT: %v", err)
	}

	runNode(t, node, append(phase(b.addr, "durable-console"),
		"STOMPICA_DURABLE_QUEUE="+queue, "STOMPICA_DURABLE_QUEUE_DEPTH="+strconv.Itoa(queued),
		"STOMPICA_STREAM="+stream, "STOMPICA_STREAM_MESSAGES="+strconv.Itoa(streamed), "STOMPICA_RECORDED="+recorded),
		"console.test.mjs")

	b.stop(t)
	b = startBrokerProc(t, args...)
	runNode(t, node, phase(b.addr, "durable-back"), "browser.test.mjs")
}

// waitDurablesAway waits until the broker at addr lists n durable
// subscriptions and none is connected: it has seen the subscriber go.
func waitDurablesAway(t *testing.T, addr string, n int) {
	t.Helper()
	var list struct {
		Count    int `json:"count"`
		Durables []struct {
			Key       string `json:"key"`
			Connected bool   `json:"connected"`
		} `json:"durables"`
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		code, body, _ := apiCall(t, addr, "GET", "/api/durables", "", "")
		if code != 200 || json.Unmarshal([]byte(body), &list) != nil {
			t.Fatalf("GET /api/durables: %d %s", code, body)
		}
		connected := 0
		for _, d := range list.Durables {
			if d.Connected {
				connected++
			}
		}
		if list.Count == n && connected == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d durable subscriptions, %d connected, want %d away: %s", waitTimeout, list.Count, connected, n, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
