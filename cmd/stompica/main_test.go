package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stompica/stompica/server"
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

func parseErr(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	_, err := parse(args, func(k string) string { return env[k] }, io.Discard)
	if err == nil {
		t.Fatalf("parse(%q, %v) accepted", args, env)
	}
	return err.Error()
}

// Flags and the original's key=value arguments mix in any order.
func TestParseMixedOrder(t *testing.T) {
	cfg := parseWith(t, nil, "TTL=5000", "--port", "4000", "processors=2", "--max-frame-size", "32MiB", "max_stale_queue_size=7", "--pprof")
	o := cfg.opts
	if o.Port != 4000 || o.TTL != 5*time.Second || cfg.processors != 2 || o.MaxFrameSize != 32<<20 || o.MaxStaleQueueSize != 7 || !o.Pprof {
		t.Errorf("got port %d ttl %v processors %d frame %d stale %d pprof %v", o.Port, o.TTL, cfg.processors, o.MaxFrameSize, o.MaxStaleQueueSize, o.Pprof)
	}
	// After "--" everything is an argument, even what looks like a flag.
	if msg := parseErr(t, nil, "--port", "4000", "--", "--pprof"); !strings.Contains(msg, `unknown argument "--pprof"`) {
		t.Errorf("after --: %s", msg)
	}
}

// A flag and a key=value argument that disagree are an error, whatever
// their order; the same value given both ways is not.
func TestParseConflict(t *testing.T) {
	for _, args := range [][]string{
		{"--port", "4000", "port=5000"},
		{"port=5000", "--port", "4000"},
		{"--ttl", "4s", "TTL=5000"},
		{"port=5000", "port=6000"},
	} {
		msg := parseErr(t, nil, args...)
		if !strings.Contains(msg, "set the same thing differently: give one") {
			t.Errorf("%q: %s", args, msg)
		}
		for _, a := range args {
			if strings.Contains(a, "=") && !strings.Contains(msg, a) {
				t.Errorf("%q: the error %q does not name %s", args, msg, a)
			}
		}
	}
	if msg := parseErr(t, nil, "--port", "4000", "port=5000"); !strings.Contains(msg, "--port 4000") {
		t.Errorf("the error does not name the flag: %s", msg)
	}
	for _, args := range [][]string{
		{"--port", "4000", "port=4000"},
		{"--ttl", "5s", "TTL=5000"},
		{"--port", "4000", "port=0"}, // 0: the original's "default", i.e. not set here
	} {
		if o := parseWith(t, nil, args...).opts; o.Port != 4000 && o.Port != server.DefaultPort {
			t.Errorf("%q: port %d", args, o.Port)
		}
	}
	// key=value is the command line: it wins over the environment.
	if o := parseWith(t, map[string]string{"STOMPICA_PORT": "4000"}, "port=5000").opts; o.Port != 5000 {
		t.Errorf("port=5000 with STOMPICA_PORT=4000: %d", o.Port)
	}
}

func TestParseSizes(t *testing.T) {
	for in, want := range map[string]int{
		"1GiB": 1 << 30, "16MiB": 16 << 20, "16 MiB": 16 << 20, "512k": 512 << 10, "512K": 512 << 10,
		"8KiB": 8 << 10, "2M": 2 << 20, "1g": 1 << 30, "1048576": 1 << 20, "100B": 100, "0": 0,
	} {
		if o := parseWith(t, nil, "--max-frame-size", in).opts; o.MaxFrameSize != want {
			t.Errorf("--max-frame-size %q = %d, want %d", in, o.MaxFrameSize, want)
		}
	}
	if o := parseWith(t, map[string]string{"STOMPICA_MEMORY_BUDGET": "2GiB"}).opts; o.MemoryBudget != 2<<30 {
		t.Errorf("STOMPICA_MEMORY_BUDGET=2GiB: %d", o.MemoryBudget)
	}
	for _, bad := range []string{"16XB", "-1", "1.5GiB", "MiB", "lots", "99999999999G"} {
		msg := parseErr(t, nil, "--max-pending-bytes", bad)
		if !strings.Contains(msg, "max-pending-bytes") || !strings.Contains(msg, "512k, 16MiB, 1GiB") && !strings.Contains(msg, "too large") {
			t.Errorf("--max-pending-bytes %q: %s", bad, msg)
		}
	}
}

func TestParseDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{"1500": 1500 * time.Millisecond, "2s": 2 * time.Second, "1m30s": 90 * time.Second, "250ms": 250 * time.Millisecond} {
		if o := parseWith(t, nil, "--connect-timeout", in, "--ttl", in).opts; o.ConnectTimeout != want || o.TTL != want {
			t.Errorf("%q: connect timeout %v ttl %v, want %v", in, o.ConnectTimeout, o.TTL, want)
		}
	}
	if o := parseWith(t, nil, "--heart-beat", "5s,250").opts; o.HeartBeatSend != 5*time.Second || o.HeartBeatRecv != 250*time.Millisecond {
		t.Errorf("--heart-beat 5s,250: %v,%v", o.HeartBeatSend, o.HeartBeatRecv)
	}
	for _, bad := range []string{"-1s", "-5", "soon", "1.5"} {
		if msg := parseErr(t, nil, "--frame-timeout", bad); !strings.Contains(msg, "a bare number is milliseconds") {
			t.Errorf("--frame-timeout %q: %s", bad, msg)
		}
	}
}

// A bad environment value is reported with the variable's name.
func TestParseBadEnvironmentNamesVariable(t *testing.T) {
	for name, v := range map[string]string{"STOMPICA_MAX_FRAME_SIZE": "lots", "STOMPICA_PORT": "x", "STOMPICA_TTL": "soon", "STOMPICA_PPROF": "maybe"} {
		msg := parseErr(t, map[string]string{name: v})
		if !strings.Contains(msg, "environment variable "+name+"=") {
			t.Errorf("%s=%s: %s", name, v, msg)
		}
	}
}

// The flags' defaults are the server's: parsing nothing gives the same
// effective options as an empty server.Options. --max-frame-size alone also
// moves the WebSocket message limit, as it does for server.Options.
func TestParseDefaultsAreTheServers(t *testing.T) {
	effective := func(o server.Options) server.Options {
		t.Helper()
		srv, err := server.New(&o)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Shutdown(context.Background()) //nolint:errcheck
		eff := srv.Options()
		eff.Logger = nil
		return eff
	}
	if got, want := effective(parseWith(t, nil).opts), effective(server.Options{}); !reflect.DeepEqual(got, want) {
		t.Errorf("flag defaults differ from the server's:\n flags  %+v\n server %+v", got, want)
	}
	o := effective(parseWith(t, nil, "--max-frame-size", "33554432").opts)
	if o.MaxFrameSize != 32<<20 || o.MaxWebSocketMessage != 32<<20 {
		t.Errorf("--max-frame-size 33554432: frame %d, WebSocket message %d; want both 32 MiB", o.MaxFrameSize, o.MaxWebSocketMessage)
	}
}

// --help says what 0 means for every numeric flag.
func TestHelpStatesZero(t *testing.T) {
	var out strings.Builder
	if _, err := parse([]string{"--help"}, func(string) string { return "" }, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	help := out.String()
	for _, want := range []string{"(0 = a random free port)", "(0 = --max-frame-size)", "(0 = no bound)", "(0 = never)", "(0 = off)", "(0 = all)", "512k, 16MiB, 1GiB", "a bare number means\nmilliseconds"} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	fs := newFlagSet(&config{}, io.Discard)
	fs.VisitAll(func(f *flag.Flag) {
		if g, ok := f.Value.(flag.Getter); ok {
			switch g.Get().(type) {
			case string, bool:
				return
			}
		}
		if !strings.Contains(f.Usage, "0 = ") && !strings.Contains(f.Usage, "1 or less = ") {
			t.Errorf("--%s: the help does not say what 0 means: %q", f.Name, f.Usage)
		}
	})
}

// TLS flags that cannot work together stop the broker at start, naming the
// missing flag.
func TestRunRefusesIncompleteTLSFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-key", "key.pem"}, "--tls-key (Options.TLSKey) is set without --tls-cert"},
		{[]string{"--tls-cert", "cert.pem"}, "--tls-cert (Options.TLSCert) is set without --tls-key"},
		{[]string{"--tls-client-ca", "ca.pem"}, "--tls-client-ca (Options.TLSClientCA) needs a TLS port: --tls-cert and --tls-key"},
	} {
		var out strings.Builder
		if code := run(append(tc.args, "--host", "127.0.0.1", "--port", "0"), &out); code != 1 || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%q: exit %d, log %q; want exit 1 and %q", tc.args, code, out.String(), tc.want)
		}
	}
}
