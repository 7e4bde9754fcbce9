package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStompbench runs the project's load tool against the real binary, small
// and bounded, over TCP and WebSocket: every scenario must complete and count
// every message (no loss, no duplicates), so the tool and the figures in
// BENCHMARKS.md keep working.
func TestStompbench(t *testing.T) {
	b := startBrokerProc(t)
	bench := filepath.Join(t.TempDir(), "stompbench")
	root, _ := filepath.Abs("..")
	build := exec.Command("go", "build", "-o", bench, "./cmd/stompbench")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building stompbench: %v\n%s", err, out)
	}
	pid := "0"
	if b.cmd.Process != nil {
		pid = strconv.Itoa(b.cmd.Process.Pid)
	}
	tcp, ws := "tcp://"+b.addr, "ws://"+b.addr+"/ws"
	for _, sc := range []struct {
		name string
		args []string
	}{
		{"fanout-tcp", []string{"fanout", "--subs", "5", "--msgs", "2000", tcp}},
		{"fanout-ws", []string{"fanout", "--subs", "5", "--msgs", "2000", ws}},
		{"queue", []string{"queue", "--producers", "2", "--consumers", "2", "--msgs", "2000", "--ack", "client-individual", tcp}},
		{"queue-ws-auto", []string{"queue", "--producers", "2", "--consumers", "2", "--msgs", "2000", "--ack", "auto", ws}},
		{"latency", []string{"latency", "--rate", "200", "--subs", "3", "--duration", "1s", tcp}},
		{"conns", []string{"conns", "--conns", "100", "--hold", "200ms", tcp}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			args := append([]string{sc.args[0], "--json", "--timeout", "30s", "--pid", pid}, sc.args[1:]...)
			out, err := exec.CommandContext(ctx, bench, args...).Output()
			var res struct {
				OK     bool     `json:"ok"`
				Status string   `json:"status"`
				Errors []string `json:"errors"`
				Loss   int64    `json:"loss"`
				Dups   int64    `json:"dups"`
			}
			if jerr := json.Unmarshal(out, &res); jerr != nil {
				t.Fatalf("stompbench %s: %v (exit %v): %s", strings.Join(args, " "), jerr, err, out)
			}
			if err != nil || !res.OK || res.Loss != 0 || res.Dups != 0 {
				t.Fatalf("stompbench %s: exit %v, status %s, loss %d, dups %d, errors %v", strings.Join(args, " "), err, res.Status, res.Loss, res.Dups, res.Errors)
			}
		})
	}
}
