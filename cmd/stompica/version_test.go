package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stompica/stompica/server"
)

func TestVersionSubcommand(t *testing.T) {
	for _, arg := range []string{"version", "--version", "-version"} {
		var out, errOut bytes.Buffer
		code, ok := subcommand([]string{arg}, &out, &errOut)
		want := "stompica " + server.Version + " (commit unknown, " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
		if !ok || code != 0 || out.String() != want || errOut.Len() != 0 {
			t.Errorf("%s: ok %v code %d stdout %q stderr %q, want %q", arg, ok, code, out.String(), errOut.String(), want)
		}
	}
	if code, ok := subcommand([]string{"version", "extra"}, io.Discard, io.Discard); !ok || code != 2 {
		t.Errorf("version extra: ok %v code %d, want 2", ok, code)
	}
	for _, args := range [][]string{nil, {"--port", "1"}, {"port=1"}, {"passwd"}} {
		if _, ok := subcommand(args, io.Discard, io.Discard); ok {
			t.Errorf("%q taken as a subcommand", args)
		}
	}
}

// The values the release build stamps with -ldflags -X replace the defaults.
func TestVersionStamped(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "9.8.7", "abcdef123456"
	var out bytes.Buffer
	if code := runVersion(nil, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := "stompica 9.8.7 (commit abcdef123456, " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// healthcheck exits 0 against a running broker and 1 once it is gone.
func TestHealthcheck(t *testing.T) {
	srv, err := server.New(&server.Options{Host: "127.0.0.1", Port: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(srv.Addr().(*net.TCPAddr).Port)
	var out, errOut bytes.Buffer
	if code, ok := subcommand([]string{"healthcheck", "--port", port}, &out, &errOut); !ok || code != 0 || out.String() != "ok\n" {
		t.Errorf("against a running broker: ok %v exit %d stdout %q stderr %q", ok, code, out.String(), errOut.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code, _ := subcommand([]string{"healthcheck", "--port", port, "--timeout", "2s"}, io.Discard, &errOut); code != 1 || errOut.Len() == 0 {
		t.Errorf("after shutdown: exit %d stderr %q, want 1 and a reason", code, errOut.String())
	}
	if code, _ := subcommand([]string{"healthcheck", "stray"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("stray argument: exit %d, want 2", code)
	}
}

func TestCheckHost(t *testing.T) {
	for in, want := range map[string]string{"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "127.0.0.1", "127.0.0.2": "127.0.0.2", "::1": "::1"} {
		if got := checkHost(in); got != want {
			t.Errorf("checkHost(%q) = %q, want %q", in, got, want)
		}
	}
}
