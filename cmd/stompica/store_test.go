package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// --data-dir, its environment variable and the original data_dir=DIR all
// set the data dir; without one no store is opened; --data-dir and --nats
// exclude each other; --fsync takes always or interval.
func TestDurabilityFlags(t *testing.T) {
	for _, cfg := range []*config{
		parseWith(t, nil, "--data-dir", "/srv/stompica"),
		parseWith(t, map[string]string{"STOMPICA_DATA_DIR": "/srv/stompica"}),
		parseWith(t, nil, "data_dir=/srv/stompica"),
	} {
		if cfg.dataDir != "/srv/stompica" {
			t.Errorf("data dir %q", cfg.dataDir)
		}
	}
	cfg := parseWith(t, nil, "--ack-timeout", "30s", "--dedup-window", "5m")
	if cfg.opts.AckTimeout != 30*time.Second || cfg.dedupWindow != 5*time.Minute {
		t.Errorf("ack timeout %v, dedup window %v", cfg.opts.AckTimeout, cfg.dedupWindow)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	none := parseWith(t, nil)
	if err := openStore(none, log); err != nil || none.opts.Store != nil {
		t.Errorf("no data dir: %v, store %v", err, none.opts.Store)
	}
	both := parseWith(t, nil, "--data-dir", t.TempDir(), "--nats", "nats://127.0.0.1:1")
	if err := openStore(both, log); err == nil || !strings.Contains(err.Error(), "exclude") {
		t.Errorf("--data-dir with --nats: %v", err)
	}
	bad := parseWith(t, nil, "--data-dir", t.TempDir(), "--fsync", "sometimes")
	if err := openStore(bad, log); err == nil || !strings.Contains(err.Error(), "always or interval") {
		t.Errorf("--fsync sometimes: %v", err)
	}
	dir := t.TempDir()
	ok := parseWith(t, nil, "--data-dir", dir, "--fsync", "always")
	if err := openStore(ok, log); err != nil || ok.opts.Store == nil {
		t.Fatalf("--data-dir %s: %v", dir, err)
	}
	ok.opts.Store.Close()
}

// --record takes comma-separated destinations and needs a store; the
// stream bounds take a duration and a size.
func TestStreamFlags(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := parseWith(t, nil, "--record", "/topic/prices.>, /topic/news", "--stream-max-age", "2h", "--stream-max-bytes", "64MiB")
	if cfg.streamAge != 2*time.Hour || cfg.streamBytes != 64<<20 {
		t.Errorf("stream bounds %v, %d", cfg.streamAge, cfg.streamBytes)
	}
	if err := openStore(cfg, log); err == nil || !strings.Contains(err.Error(), "--record needs --data-dir or --nats") {
		t.Errorf("--record without a store: %v", err)
	}
	if got := strings.Join(cfg.opts.Record, ","); got != "/topic/prices.>,/topic/news" {
		t.Errorf("recorded %q", got)
	}
	def := parseWith(t, nil)
	if def.streamAge != 24*time.Hour || def.streamBytes != 1<<30 {
		t.Errorf("default stream bounds %v, %d", def.streamAge, def.streamBytes)
	}
}
