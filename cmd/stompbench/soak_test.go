package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stompica/stompica/server"
)

// TestSoakShort runs the soak scenario for 3 s against a broker in this
// process, over TCP and WebSocket, with a 1 MiB memory budget (so the flood
// pauses publishers) and 1 s heart-beats (so a publisher paused for the
// 2.5 s hold would be timed out, after 2 s, by a broker that blamed it for its
// silence; shorter beats flaked when a loaded 2-core machine stalled a client).
// Every message must be accounted for, no ERROR frame, and the goroutines
// (the soak's and the broker's, one process here) must return to baseline.
func TestSoakShort(t *testing.T) {
	srv, err := server.New(&server.Options{
		Host: "127.0.0.1", Port: -1,
		MemoryBudget:  1 << 20,
		HeartBeatSend: time.Second, HeartBeatRecv: time.Second,
		Pprof:  true,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}()
	var out, timeline bytes.Buffer
	args := []string{"soak", "--json", "--duration", "3s", "--rate", "400", "--subs", "4", "--churn", "4",
		"--producers", "2", "--consumers", "2", "--memory-budget", strconv.Itoa(1 << 20), "--heart-beat", "1000",
		"--pause-hold", "2500ms", "--sample-every", "1s", "--drain", "20s", "--settle", "10s",
		"--pid", strconv.Itoa(os.Getpid()), "--rss-slack", "4096", // RSS: the test process, not the broker alone
		"--timeout", "60s", "tcp://" + srv.Addr().String()}
	code := run(args, &out, &timeline)
	t.Logf("timeline:\n%s", timeline.String())
	var res struct {
		OK                 bool     `json:"ok"`
		Status             string   `json:"status"`
		Errors             []string `json:"errors"`
		Sent               int64    `json:"sent"`
		Received           int64    `json:"received"`
		Lost               int64    `json:"lost"`
		Dups               int64    `json:"dups"`
		TopicExpected      int64    `json:"topic_expected"`
		Checked            int64    `json:"subscriptions_checked"`
		QueueReceived      int64    `json:"queue_received"`
		QueueNacks         int64    `json:"queue_nacks"`
		ConnsTCP           int64    `json:"conns_tcp"`
		ConnsWS            int64    `json:"conns_ws"`
		AbruptPublishers   int64    `json:"abrupt_publishers"`
		AbruptConsumers    int64    `json:"abrupt_consumers"`
		PausesObserved     int64    `json:"pauses_observed"`
		GoroutinesBefore   int      `json:"goroutines_before"`
		GoroutinesAfter    int      `json:"goroutines_after"`
		Samples            []any    `json:"samples"`
		UnansweredOnBroken int64    `json:"unanswered_broken"`
		QueueAckedTwice    int64    `json:"queue_acked_twice"`
		TopicLate          int64    `json:"topic_late"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("exit %d, output %q: %v", code, out.String(), err)
	}
	t.Logf("sent %d, received %d, lost %d, dups %d, topic deliveries owed %d (%d subscriptions), queue acked %d, NACKs %d, "+
		"connections tcp %d ws %d, abrupt publishers %d consumers %d, pauses %d, goroutines %d -> %d",
		res.Sent, res.Received, res.Lost, res.Dups, res.TopicExpected, res.Checked, res.QueueReceived, res.QueueNacks,
		res.ConnsTCP, res.ConnsWS, res.AbruptPublishers, res.AbruptConsumers, res.PausesObserved, res.GoroutinesBefore, res.GoroutinesAfter)
	if code != 0 || !res.OK || res.Status != "complete" {
		t.Errorf("exit %d, status %s, ok %v, errors:\n  %s", code, res.Status, res.OK, strings.Join(res.Errors, "\n  "))
	}
	if res.Lost != 0 || res.Dups != 0 || res.QueueAckedTwice != 0 || res.TopicLate != 0 || res.UnansweredOnBroken != 0 {
		t.Errorf("lost %d, duplicated %d, acked twice %d, late %d, unanswered on broken publishers %d: want all 0",
			res.Lost, res.Dups, res.QueueAckedTwice, res.TopicLate, res.UnansweredOnBroken)
	}
	// the run covered what it claims to
	if res.Sent < 100 || res.TopicExpected < 100 || res.Checked < 4 || res.QueueReceived < 100 || res.ConnsTCP < 4 || res.ConnsWS < 4 ||
		res.AbruptPublishers+res.AbruptConsumers < 1 || res.PausesObserved < 1 || len(res.Samples) < 3 {
		t.Errorf("the run did not cover the mix: %+v", res)
	}
	if res.GoroutinesAfter > res.GoroutinesBefore+5 {
		t.Errorf("goroutines %d before, %d after", res.GoroutinesBefore, res.GoroutinesAfter)
	}
}

func TestParseArgsSoak(t *testing.T) {
	cfg, err := parseArgs(strings.Fields("soak tcp://h:1"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.duration != time.Minute || cfg.rate != 1000 || cfg.subs != 8 || cfg.heartBeat != 1000 || cfg.timeout < cfg.duration+cfg.drain+cfg.settle {
		t.Fatalf("soak defaults: %+v", cfg)
	}
	cfg, err = parseArgs(strings.Fields("soak --duration 5m tcp://h:1"), io.Discard)
	if err != nil || cfg.duration != 5*time.Minute || cfg.timeout < 5*time.Minute {
		t.Fatalf("soak --duration 5m: %+v, %v", cfg, err)
	}
	for _, bad := range []string{"soak ws://h:1/ws", "soak --duration 10ms tcp://h:1", "soak --pause-hold 0s tcp://h:1", "soak --memory-budget 10 tcp://h:1"} {
		var ue usageError
		if _, err := parseArgs(strings.Fields(bad), io.Discard); !errors.As(err, &ue) {
			t.Errorf("parseArgs(%q) = %v, want a usage error", bad, err)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	text := "# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines 12\n" +
		"stompica_connections{transport=\"tcp\"} 3\nstompica_queue_depth{queue=\"/queue/soak.0\"} 2\n" +
		"stompica_queue_depth{queue=\"/queue/soak.flood\"} 5\nstompica_queue_depth{queue=\"/queue/other\"} 7\n" +
		"stompica_queued_bytes 1.5e+06\nbad line\n"
	m, err := parseMetrics(bufio.NewScanner(strings.NewReader(text)))
	if err != nil {
		t.Fatal(err)
	}
	if m["go_goroutines"] != 12 || m[`stompica_connections{transport="tcp"}`] != 3 || m["stompica_queued_bytes"] != 1.5e6 || len(m) != 6 {
		t.Fatalf("parsed %v", m)
	}
	if d := soakQueueDepth(m); d != 7 {
		t.Fatalf("soak queue depth %v, want 7 (other queues excluded)", d)
	}
}

func TestPeriodRecord(t *testing.T) {
	p := &period{recv: map[int][]uint64{}}
	for _, seq := range []uint64{0, 1, 200, 1, 200} {
		p.record(3, seq, false)
	}
	p.record(3, 0, true) // a redelivery is not a duplicate
	if p.received != 6 || p.dups != 2 || !p.has(3, 200) || p.has(3, 2) || p.has(4, 0) || p.has(3, 100000) {
		t.Fatalf("received %d dups %d", p.received, p.dups)
	}
}
