package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stompica/stompica/server"
)

// runHealthcheck asks a running broker's /healthz whether it is up and exits
// 0 when it answers 200 "ok", 1 otherwise. It is what the container image's
// HEALTHCHECK runs (the image has no curl). The port and host default to
// STOMPICA_PORT and STOMPICA_HOST, as the broker itself reads them, so the
// check follows a container configured through the environment.
func runHealthcheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stompica healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", envInt("STOMPICA_PORT", server.DefaultPort), "the broker's STOMP/HTTP port")
	host := fs.String("host", checkHost(os.Getenv("STOMPICA_HOST")), "the broker's address")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: stompica healthcheck [--host H] [--port N] [--timeout D]\n\n"+
			"Exits 0 when http://HOST:PORT/healthz answers 200 ok, 1 otherwise.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "stompica healthcheck: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	url := "http://" + net.JoinHostPort(*host, strconv.Itoa(*port)) + "/healthz"
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintln(stderr, "stompica healthcheck:", err)
		return 1
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "stompica healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		fmt.Fprintf(stderr, "stompica healthcheck: %s answered %s %q\n", url, resp.Status, body)
		return 1
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}

// envInt reads a positive number from the environment, or returns def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// checkHost is where to reach a broker listening on host: loopback for all
// interfaces.
func checkHost(host string) string {
	switch host {
	case "", "0.0.0.0", "::", "[::]":
		return "127.0.0.1"
	}
	return host
}
