package main

import (
	"io"
	"testing"
	"time"

	"stompica/server"
)

func parseWith(t *testing.T, env map[string]string, args ...string) *config {
	t.Helper()
	cfg, err := parse(args, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatalf("parse(%q, %v): %v", args, env, err)
	}
	return cfg
}

func TestParseDefaults(t *testing.T) {
	o := parseWith(t, nil).opts
	if o.Port != server.DefaultPort || o.Host != "" || o.TTL != 0 {
		t.Errorf("defaults: port %d host %q ttl %v", o.Port, o.Host, o.TTL)
	}
	if o.HeartBeatSend != 10*time.Second || o.HeartBeatRecv != 10*time.Second {
		t.Errorf("default heart-beat offer %v,%v", o.HeartBeatSend, o.HeartBeatRecv)
	}
}

// The original stompica's arguments work as its README wrote them, 0 meaning
// the default.
func TestParseOriginalArguments(t *testing.T) {
	cfg := parseWith(t, nil, "processors=10", "port=3000", "max_input_queue_size=500", "max_stale_queue_size=7", "TTL=5000")
	o := cfg.opts
	if cfg.processors != 10 || o.Port != 3000 || o.MaxInputQueueSize != 500 || o.MaxStaleQueueSize != 7 || o.TTL != 5*time.Second {
		t.Errorf("got processors %d port %d input %d stale %d ttl %v", cfg.processors, o.Port, o.MaxInputQueueSize, o.MaxStaleQueueSize, o.TTL)
	}
	o = parseWith(t, nil, "port=0", "TTL=0", "max_stale_queue_size=0").opts
	if o.Port != server.DefaultPort || o.TTL != 0 || o.MaxStaleQueueSize != 10000 {
		t.Errorf("0 must mean the default: port %d ttl %v stale %d", o.Port, o.TTL, o.MaxStaleQueueSize)
	}
	for _, bad := range []string{"port=x", "colour=blue", "processors=-1", "nonsense"} {
		if _, err := parse([]string{bad}, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Flags come from STOMPICA_* variables; the command line wins.
func TestParseEnvironment(t *testing.T) {
	env := map[string]string{"STOMPICA_PORT": "4000", "STOMPICA_MAX_FRAME_SIZE": "1024", "STOMPICA_TTL": "250", "STOMPICA_WS_ORIGINS": "https://a, https://b"}
	o := parseWith(t, env).opts
	if o.Port != 4000 || o.MaxFrameSize != 1024 || o.TTL != 250*time.Millisecond || len(o.WSOrigins) != 2 || o.WSOrigins[1] != "https://b" {
		t.Errorf("from the environment: %+v", o)
	}
	if o := parseWith(t, env, "--port", "5000").opts; o.Port != 5000 || o.MaxFrameSize != 1024 {
		t.Errorf("command line over environment: port %d frame %d", o.Port, o.MaxFrameSize)
	}
	if _, err := parse(nil, func(k string) string { return map[string]string{"STOMPICA_PORT": "x"}[k] }, io.Discard); err == nil {
		t.Error("a bad STOMPICA_PORT was accepted")
	}
}

func TestParsePortZeroIsRandom(t *testing.T) {
	if o := parseWith(t, nil, "--port", "0", "--tls-port", "0").opts; o.Port != -1 || o.TLSPort != -1 {
		t.Errorf("--port 0: Options.Port %d, TLSPort %d, want -1 (random)", o.Port, o.TLSPort)
	}
}

func TestParseHeartBeat(t *testing.T) {
	o := parseWith(t, nil, "--heart-beat", "0,250").opts
	if o.HeartBeatSend != -1 || o.HeartBeatRecv != 250*time.Millisecond {
		t.Errorf("--heart-beat 0,250: %v,%v", o.HeartBeatSend, o.HeartBeatRecv)
	}
	if _, err := parse([]string{"--heart-beat", "fast"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("--heart-beat fast accepted")
	}
}

func TestRunHelpAndBadFlags(t *testing.T) {
	if code := run([]string{"--help"}, io.Discard); code != 0 {
		t.Errorf("--help exit %d", code)
	}
	if code := run([]string{"--no-such-flag"}, io.Discard); code != 2 {
		t.Errorf("bad flag exit %d, want 2", code)
	}
	if code := run([]string{"--log-format", "xml"}, io.Discard); code != 2 {
		t.Errorf("bad log format exit %d, want 2", code)
	}
}

// --http-idle-timeout defaults to the server's default and can be set.
func TestParseHTTPIdleTimeout(t *testing.T) {
	if o := parseWith(t, nil).opts; o.HTTPIdleTimeout != server.DefaultHTTPIdleTimeout {
		t.Errorf("default --http-idle-timeout %v, want %v", o.HTTPIdleTimeout, server.DefaultHTTPIdleTimeout)
	}
	if o := parseWith(t, map[string]string{"STOMPICA_HTTP_IDLE_TIMEOUT": "5s"}).opts; o.HTTPIdleTimeout != 5*time.Second {
		t.Errorf("STOMPICA_HTTP_IDLE_TIMEOUT=5s: %v", o.HTTPIdleTimeout)
	}
	if o := parseWith(t, nil, "--http-idle-timeout", "2m").opts; o.HTTPIdleTimeout != 2*time.Minute {
		t.Errorf("--http-idle-timeout 2m: %v", o.HTTPIdleTimeout)
	}
}

// --max-transaction-bytes (and STOMPICA_MAX_TRANSACTION_BYTES) set the bound;
// left at 0 the server picks its default.
func TestParseMaxTransactionBytes(t *testing.T) {
	if o := parseWith(t, nil).opts; o.MaxTransactionBytes != 0 {
		t.Errorf("default --max-transaction-bytes = %d, want 0 (the server's default)", o.MaxTransactionBytes)
	}
	if o := parseWith(t, nil, "--max-transaction-bytes", "1048576").opts; o.MaxTransactionBytes != 1<<20 {
		t.Errorf("--max-transaction-bytes 1048576: %d", o.MaxTransactionBytes)
	}
	env := map[string]string{"STOMPICA_MAX_TRANSACTION_BYTES": "65536"}
	if o := parseWith(t, env).opts; o.MaxTransactionBytes != 64<<10 {
		t.Errorf("STOMPICA_MAX_TRANSACTION_BYTES=65536: %d", o.MaxTransactionBytes)
	}
}
