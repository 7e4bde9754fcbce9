// Command stompica runs the stompica STOMP broker.
//
// Flags use Go's usual "--name value" style; every flag can also come from
// the environment variable STOMPICA_NAME (upper case, '-' as '_'). The
// original C broker's arguments keep working as written:
//
//	stompica processors=10 port=3000 max_input_queue_size=N max_stale_queue_size=N TTL=5000
//
// where 0 means the default.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"stompica/frame"
	"stompica/server"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// config is what the command line says, before it becomes server.Options.
type config struct {
	opts       server.Options
	heartBeat  string
	ttlMs      int
	processors int
	logLevel   string
	logFormat  string
	wsOrigins  string
}

func newFlagSet(cfg *config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("stompica", flag.ContinueOnError)
	fs.SetOutput(out)
	o := &cfg.opts
	fs.StringVar(&o.Host, "host", "", "interface to listen on (empty = all interfaces)")
	fs.IntVar(&o.Port, "port", server.DefaultPort, "STOMP and WebSocket port (0 = a random free port)")
	fs.IntVar(&o.TLSPort, "tls-port", server.DefaultTLSPort, "TLS port for STOMP and WebSocket, opened when --tls-cert is set (0 = random)")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "TLS certificate file (PEM)")
	fs.StringVar(&o.TLSKey, "tls-key", "", "TLS private key file (PEM)")
	fs.StringVar(&o.TLSClientCA, "tls-client-ca", "", "require TLS client certificates signed by this CA (PEM)")
	fs.StringVar(&cfg.wsOrigins, "ws-origins", "", "comma-separated allow-list of WebSocket Origins (empty = any)")
	fs.StringVar(&o.UsersFile, "users", "", "users file (login:bcrypt-hash per line) turning authentication on; see 'stompica passwd LOGIN'")
	fs.StringVar(&o.ACLFile, "acl", "", "ACL file (lines 'login read|write|admin pattern') turning authorization on")
	fs.BoolVar(&o.HTTPAuth, "http-auth", false, "protect /console and /metrics with HTTP basic auth (needs --users)")
	fs.IntVar(&o.MaxConnections, "max-connections", 16384, "maximum concurrent connections, STOMP, WebSocket and HTTP (lowered to fit the open-file limit)")
	fs.IntVar(&o.MaxFrameSize, "max-frame-size", 16<<20, "maximum bytes of one frame, headers and body")
	fs.IntVar(&o.MaxHeaders, "max-headers", 1000, "maximum header lines in one frame")
	fs.IntVar(&o.MaxHeaderLine, "max-header-line", 8<<10, "maximum bytes of one header line")
	fs.IntVar(&o.MaxSubscriptions, "max-subscriptions", 1024, "maximum subscriptions per connection")
	fs.IntVar(&o.MaxTransactions, "max-transactions", 64, "maximum open transactions per connection")
	fs.Int64Var(&o.MaxTransactionBytes, "max-transaction-bytes", 0, "maximum bytes one transaction may buffer until COMMIT (0 = "+
		strconv.Itoa(server.DefaultMaxTransactionBytes>>20)+" MiB, at most a quarter of --memory-budget)")
	fs.DurationVar(&o.ConnectTimeout, "connect-timeout", 10*time.Second, "time a new connection has to send CONNECT")
	fs.DurationVar(&o.HTTPIdleTimeout, "http-idle-timeout", server.DefaultHTTPIdleTimeout, "close an HTTP keep-alive connection idle this long (request headers must come within --connect-timeout)")
	fs.DurationVar(&o.FrameTimeout, "frame-timeout", 30*time.Second, "time a client has to finish a frame it started (slowloris protection)")
	fs.IntVar(&o.MaxDestinationLength, "max-destination-length", 1024, "maximum bytes of a destination name")
	fs.IntVar(&o.MaxUnacked, "max-unacked", 10000, "maximum unacknowledged messages per subscription")
	fs.IntVar(&o.MaxConnectionsPerAddress, "max-connections-per-address", 0, "maximum concurrent connections from one IP address (0 = no bound)")
	fs.IntVar(&o.MaxWebSocketMessage, "max-ws-message", 16<<20, "maximum bytes of one WebSocket message")
	fs.StringVar(&cfg.heartBeat, "heart-beat", "10000,10000", "server heart-beat offer 'send,receive' in ms (0,0 = off)")
	fs.Float64Var(&o.HeartBeatGrace, "heart-beat-grace", 2, "a client silent for this many agreed intervals is closed")
	fs.IntVar(&cfg.ttlMs, "ttl", 0, "default TTL in ms of topic messages retained for late subscribers (0 = off)")
	fs.IntVar(&o.MaxStaleQueueSize, "max-stale-queue-size", 10000, "maximum retained (TTL) topic messages; oldest dropped")
	fs.IntVar(&o.MaxInputQueueSize, "max-input-queue-size", 1_000_000, "maximum messages accepted but not yet delivered")
	fs.Int64Var(&o.MemoryBudget, "memory-budget", 1<<30, "maximum bytes of messages waiting in queues; over it publishers are paused")
	fs.IntVar(&o.MaxPendingBytes, "max-pending-bytes", 8<<20, "maximum bytes queued for one client; a topic subscriber over it is a slow consumer")
	fs.IntVar(&o.Prefetch, "prefetch", 1000, "default unacknowledged messages per client-ack subscription (queue or topic)")
	fs.IntVar(&o.MaxRedeliveries, "max-redeliveries", 0, "move a queue message to /queue/DLQ after this many redeliveries (0 = never)")
	fs.BoolVar(&o.Pprof, "pprof", false, "serve Go's profiler at /debug/pprof/ on the HTTP port")
	fs.IntVar(&cfg.processors, "processors", 0, "CPUs the broker uses (0 = all)")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&cfg.logFormat, "log-format", "text", "log format: text or json")
	return fs
}

// seedArgs maps the original broker's key=value arguments to flags.
var seedArgs = map[string]string{
	"processors":           "processors",
	"port":                 "port",
	"max_input_queue_size": "max-input-queue-size",
	"max_stale_queue_size": "max-stale-queue-size",
	"ttl":                  "ttl",
}

// parse applies defaults, then the environment, then the command line.
func parse(args []string, env func(string) string, out io.Writer) (*config, error) {
	cfg := &config{}
	fs := newFlagSet(cfg, out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: stompica [flags] [key=value ...]\n\n"+
			"The original stompica's arguments work too (0 = default):\n"+
			"  processors=N port=N max_input_queue_size=N max_stale_queue_size=N TTL=ms\n\n"+
			"Every flag can be set by the environment variable STOMPICA_<NAME>, e.g. STOMPICA_MAX_FRAME_SIZE.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "STOMPICA_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := env(name); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, a := range fs.Args() {
		k, v, ok := strings.Cut(a, "=")
		name, known := seedArgs[strings.ToLower(k)]
		if !ok || !known {
			return nil, fmt.Errorf("unknown argument %q (original-style arguments: processors= port= max_input_queue_size= max_stale_queue_size= TTL=)", a)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("argument %s: %q is not a non-negative number", k, v)
		}
		if n == 0 { // the original: 0 -> configure to the default
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return nil, fmt.Errorf("argument %s: %w", k, err)
		}
	}
	o := &cfg.opts
	if o.Port == 0 {
		o.Port = -1 // --port 0: a random free port
	}
	if o.TLSPort == 0 {
		o.TLSPort = -1
	}
	for _, origin := range strings.Split(cfg.wsOrigins, ",") {
		if origin = strings.TrimSpace(origin); origin != "" {
			o.WSOrigins = append(o.WSOrigins, origin)
		}
	}
	sx, sy, err := frame.ParseHeartBeat([]byte(cfg.heartBeat))
	if err != nil {
		return nil, fmt.Errorf("--heart-beat %q: want 'send,receive' in ms", cfg.heartBeat)
	}
	o.HeartBeatSend, o.HeartBeatRecv = ms(sx), ms(sy)
	o.TTL = time.Duration(cfg.ttlMs) * time.Millisecond
	return cfg, nil
}

// reload answers SIGHUP: the server reloads its users, ACL and TLS files,
// keeping the old version of any that fails (and saying why).
func reload(srv *server.Server, log *slog.Logger) {
	if err := srv.Reload(); err != nil {
		log.Warn("SIGHUP: reload incomplete; the files that failed keep their old version", "err", err)
		return
	}
	log.Info("SIGHUP: reloaded users, ACL and TLS files (those configured)")
}

// ms converts a heart-beat value; 0 means off (-1 for server.Options).
func ms(v int) time.Duration {
	if v == 0 {
		return -1
	}
	return time.Duration(v) * time.Millisecond
}

func run(args []string, stderr io.Writer) int {
	if code, ok := subcommand(args, os.Stdout, stderr); ok {
		return code
	}
	if len(args) > 0 && args[0] == "passwd" {
		return runPasswd(args[1:], os.Stdin, os.Stdout, stderr)
	}
	cfg, err := parse(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "stompica:", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		fmt.Fprintln(stderr, "stompica: --log-level:", err)
		return 2
	}
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch cfg.logFormat {
	case "text":
		h = slog.NewTextHandler(stderr, hopts)
	case "json":
		h = slog.NewJSONHandler(stderr, hopts)
	default:
		fmt.Fprintln(stderr, "stompica: --log-format must be text or json")
		return 2
	}
	log := slog.New(h)
	if cfg.processors > 0 {
		runtime.GOMAXPROCS(cfg.processors)
	}
	cfg.opts.Logger = log

	// Catch signals before the listening line: a supervisor may signal as
	// soon as it sees it. SIGHUP reloads the users, ACL and TLS files.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	srv, err := server.New(&cfg.opts)
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	for waiting := true; waiting; {
		select {
		case <-ctx.Done():
			waiting = false
		case <-hup:
			reload(srv, log)
		}
	}
	stop()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown incomplete", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}
