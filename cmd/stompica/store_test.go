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
