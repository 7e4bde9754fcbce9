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

	"github.com/stompica/stompica/server"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// config is what the command line says, before it becomes server.Options.
type config struct {
	opts       server.Options
	heartBeat  [2]time.Duration // send, receive; 0 = off
	processors int
	logLevel   string
	logFormat  string
	wsOrigins  string
	hostNames  string
	stdinStop  bool // shut down when standard input closes (the parent died)
	durability
}

// Defaults come from package server (one source of truth); "0 = ..." in a
// flag's help says what 0 means where it means something.
func newFlagSet(cfg *config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("stompica", flag.ContinueOnError)
	fs.SetOutput(out)
	o := &cfg.opts
	size := func(p *int, name string, def int, usage string) {
		*p = def
		fs.Var(sizeValue[int]{p}, name, usage)
	}
	dur := func(p *time.Duration, name string, def time.Duration, usage string) {
		*p = def
		fs.Var(durationValue{p}, name, usage)
	}
	fs.StringVar(&o.Host, "host", "", "interface to listen on (empty = all interfaces)")
	fs.IntVar(&o.Port, "port", server.DefaultPort, "STOMP and WebSocket port (0 = a random free port)")
	fs.IntVar(&o.TLSPort, "tls-port", server.DefaultTLSPort, "TLS port for STOMP and WebSocket, opened when --tls-cert is set (0 = a random free port)")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "TLS certificate `file` (PEM); needs --tls-key")
	fs.StringVar(&o.TLSKey, "tls-key", "", "TLS private key `file` (PEM); needs --tls-cert")
	fs.StringVar(&o.TLSClientCA, "tls-client-ca", "", "require TLS client certificates signed by this CA `file` (PEM); needs --tls-cert")
	fs.StringVar(&cfg.wsOrigins, "ws-origins", "", "comma-separated allow-list of WebSocket Origins (empty = any)")
	fs.StringVar(&cfg.hostNames, "host-names", "", "comma-separated names CONNECT's host header may give besides /, IP addresses, localhost and\nthis machine's name (empty = any host name; only virtual hosts such as /prod are refused)")
	fs.StringVar(&o.UsersFile, "users", "", "users `file` (login:bcrypt-hash per line) turning authentication on; see 'stompica passwd LOGIN'")
	fs.StringVar(&o.ACLFile, "acl", "", "ACL `file` (lines 'login read|write|admin pattern') turning authorization on")
	// HTTP access: with --users, every HTTP endpoint but /healthz needs a login.
	fs.BoolVar(&o.HTTPAuth, "http-auth", false, "kept for compatibility: with --users, HTTP basic auth is always required now (every endpoint but /healthz)")
	fs.BoolVar(&o.MetricsPublic, "metrics-public", false, "serve /metrics without a login even when --users is set (for a scraper without credentials)")
	fs.IntVar(&o.MaxConnections, "max-connections", server.DefaultMaxConnections, "maximum concurrent connections, STOMP, WebSocket and HTTP (lowered to fit the open-file limit; 0 = default)")
	size(&o.MaxFrameSize, "max-frame-size", server.DefaultMaxFrameSize, "maximum `size` of one frame, headers and body (0 = default)")
	fs.IntVar(&o.MaxHeaders, "max-headers", server.DefaultMaxHeaders, "maximum header lines in one frame (0 = default)")
	size(&o.MaxHeaderLine, "max-header-line", server.DefaultMaxHeaderLine, "maximum `size` of one header line (0 = default)")
	fs.IntVar(&o.MaxSubscriptions, "max-subscriptions", server.DefaultMaxSubscriptions, "maximum subscriptions per connection (0 = default)")
	fs.IntVar(&o.MaxTransactions, "max-transactions", server.DefaultMaxTransactions, "maximum open transactions per connection (0 = default)")
	fs.Var(sizeValue[int64]{&o.MaxTransactionBytes}, "max-transaction-bytes", "maximum `size` one transaction may buffer until COMMIT (0 = "+
		formatSize(server.DefaultMaxTransactionBytes)+", at most a quarter of --memory-budget)")
	dur(&o.ConnectTimeout, "connect-timeout", server.DefaultConnectTimeout, "`duration` a new connection has to send CONNECT (0 = default)")
	dur(&o.HTTPIdleTimeout, "http-idle-timeout", server.DefaultHTTPIdleTimeout, "close an HTTP keep-alive connection idle this long, a `duration`; request headers must come within --connect-timeout (0 = default)")
	dur(&o.FrameTimeout, "frame-timeout", server.DefaultFrameTimeout, "`duration` a client has to finish a frame it started, slowloris protection (0 = default)")
	fs.IntVar(&o.MaxDestinationLength, "max-destination-length", server.DefaultMaxDestinationLength, "maximum bytes of a destination name (0 = default)")
	fs.IntVar(&o.MaxUnacked, "max-unacked", server.DefaultMaxUnacked, "maximum unacknowledged messages per subscription (0 = default)")
	fs.IntVar(&o.MaxConnectionsPerAddress, "max-connections-per-address", 0, "maximum concurrent connections from one IP address (0 = no bound)")
	fs.Var(sizeValue[int]{&o.MaxWebSocketMessage}, "max-ws-message", "maximum `size` of one WebSocket message (0 = --max-frame-size)")
	cfg.heartBeat = [2]time.Duration{server.DefaultHeartBeat, server.DefaultHeartBeat}
	fs.Var(heartBeatValue{&cfg.heartBeat}, "heart-beat", "server heart-beat offer '`send,receive`', each a duration; a bare number is ms (0 = off)")
	fs.Float64Var(&o.HeartBeatGrace, "heart-beat-grace", server.DefaultHeartBeatGrace, "a client silent for this many agreed intervals is closed (1 or less = default)")
	fs.Var(durationValue{&o.TTL}, "ttl", "default TTL of topic messages retained for late subscribers, a `duration`; a bare number is ms (0 = off)")
	fs.IntVar(&o.MaxStaleQueueSize, "max-stale-queue-size", server.DefaultMaxStaleQueueSize, "maximum retained (TTL) topic messages; oldest dropped (0 = default)")
	fs.IntVar(&o.MaxInputQueueSize, "max-input-queue-size", server.DefaultMaxInputQueueSize, "maximum messages accepted but not yet delivered (0 = default)")
	o.MemoryBudget = server.DefaultMemoryBudget
	fs.Var(sizeValue[int64]{&o.MemoryBudget}, "memory-budget", "maximum `size` of messages waiting in queues; over it publishers are paused (0 = default)")
	size(&o.MaxPendingBytes, "max-pending-bytes", server.DefaultMaxPendingBytes, "maximum `size` of output queued for one client; a topic subscriber over it is a slow consumer (0 = default)")
	fs.IntVar(&o.QueueFlowLimit, "queue-flow-limit", server.DefaultQueueFlowLimit, "messages waiting in a consumed queue before its publishers pause until half drain (-1 = no bound, 0 = default)")
	fs.IntVar(&o.Prefetch, "prefetch", server.DefaultPrefetch, "default unacknowledged messages per client-ack subscription, queue or topic (0 = default)")
	fs.IntVar(&o.MaxRedeliveries, "max-redeliveries", 0, "move a queue message to /queue/DLQ after this many redeliveries (0 = never)")
	durabilityFlags(fs, cfg)
	fs.BoolVar(&o.Pprof, "pprof", false, "serve Go's profiler at /debug/pprof/ on the HTTP port")
	fs.IntVar(&cfg.processors, "processors", 0, "CPUs the broker uses (0 = all)")
	fs.BoolVar(&cfg.stdinStop, "stop-with-stdin", false, "shut down gracefully when standard input closes: a parent process (the npm package) that dies, even by SIGKILL, takes the broker with it")
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
	"data_dir":             "data-dir",
}

const usageHead = `Usage: stompica [flags] [key=value ...]   (in any order)

The original stompica's arguments work too (0 = default), mixed with flags in
any order; giving a setting both ways with different values is an error:
  processors=N port=N max_input_queue_size=N max_stale_queue_size=N TTL=ms

Sizes take units: 512k, 16MiB, 1GiB (k, M, G are powers of 1024) or plain
bytes. Durations take units (10s, 1m30s, 250ms); a bare number means
milliseconds, as the original's TTL.

Every flag can be set by the environment variable STOMPICA_<NAME>, e.g.
STOMPICA_MAX_FRAME_SIZE=32MiB; the command line wins.

Flags:
`

// parse reads the command line (flags and key=value arguments in any
// order), then the environment for flags the command line left alone; the
// rest keep their defaults.
func parse(args []string, env func(string) string, out io.Writer) (*config, error) {
	cfg := &config{}
	fs := newFlagSet(cfg, out)
	fs.Usage = func() {
		fmt.Fprint(out, usageHead)
		fs.PrintDefaults()
	}
	// Go's flag package stops at the first argument that is not a flag:
	// take it aside and go on.
	var positional []string
	for rest := args; len(rest) > 0; {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		next := fs.Args()
		if used := len(rest) - len(next); used > 0 && rest[used-1] == "--" {
			positional = append(positional, next...)
			break
		}
		if len(next) == 0 {
			break
		}
		positional = append(positional, next[0])
		rest = next[1:]
	}
	onCommandLine := map[string]string{} // flag name -> how it was given
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = "--" + f.Name + " " + f.Value.String() })

	for _, a := range positional {
		k, v, ok := strings.Cut(a, "=")
		name, known := seedArgs[strings.ToLower(k)]
		if !ok || !known {
			return nil, fmt.Errorf("unknown argument %q (original-style arguments: processors= port= max_input_queue_size= max_stale_queue_size= TTL= data_dir=)", a)
		}
		if name == "data-dir" { // the one that is not a number
			fs.Set(name, v) //nolint:errcheck // a string flag
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("argument %s: %q is not a non-negative number", a, v)
		}
		if n == 0 { // the original: 0 -> configure to the default
			continue
		}
		// Set the value on a fresh flag set first: the comparison with the
		// flag is between the values, whatever their spelling.
		probe := newFlagSet(&config{}, io.Discard)
		if err := probe.Set(name, v); err != nil {
			return nil, fmt.Errorf("argument %s: %w", a, err)
		}
		val := probe.Lookup(name).Value.String()
		if prev, dup := onCommandLine[name]; dup {
			if fs.Lookup(name).Value.String() != val {
				return nil, fmt.Errorf("%s and %s set the same thing differently: give one", prev, a)
			}
			continue
		}
		onCommandLine[name] = a
		if err := fs.Set(name, val); err != nil {
			return nil, fmt.Errorf("argument %s: %w", a, err)
		}
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "STOMPICA_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if _, set := onCommandLine[f.Name]; set || envErr != nil {
			return
		}
		if v := env(name); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("environment variable %s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	o := &cfg.opts
	if o.Port == 0 {
		o.Port = -1 // --port 0: a random free port
	}
	if o.TLSPort == 0 {
		o.TLSPort = -1
	}
	o.WSOrigins = splitList(cfg.wsOrigins)
	o.HostNames = splitList(cfg.hostNames)
	o.HeartBeatSend, o.HeartBeatRecv = offOrValue(cfg.heartBeat[0]), offOrValue(cfg.heartBeat[1])
	return cfg, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// heartBeatValue is the --heart-beat flag: "send,receive", each a duration
// (a bare number is milliseconds); 0 is off.
type heartBeatValue struct{ p *[2]time.Duration }

func (v heartBeatValue) String() string {
	if v.p == nil {
		return "0,0"
	}
	return durationValue{&v.p[0]}.String() + "," + durationValue{&v.p[1]}.String()
}

func (v heartBeatValue) Set(s string) error {
	a, b, ok := strings.Cut(s, ",")
	x, err1 := parseDuration(a)
	y, err2 := parseDuration(b)
	if !ok || err1 != nil || err2 != nil {
		return errors.New("want 'send,receive', each a duration or milliseconds: 10000,10000 or 10s,10s (0 = off)")
	}
	*v.p = [2]time.Duration{x, y}
	return nil
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

// offOrValue converts a heart-beat value; 0 means off (-1 for server.Options).
func offOrValue(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func run(args []string, stderr io.Writer) int {
	if code, ok := subcommand(args, os.Stdout, stderr); ok {
		return code
	}
	if len(args) > 0 && args[0] == "passwd" {
		return runPasswd(args[1:], os.Stdin, os.Stdout, stderr)
	}
	if len(args) > 0 && args[0] == "ctl" {
		return runCtl(args[1:], os.Getenv, os.Stdout, stderr)
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
	if err := openStore(cfg, log); err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}

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
	var stdinClosed <-chan struct{}
	if cfg.stdinStop {
		// The parent that reads our log may be gone: a log line must not
		// kill the broker with SIGPIPE before it has shut down gracefully.
		signal.Ignore(syscall.SIGPIPE)
		stdinClosed = watchStdin(os.Stdin)
	}
	for waiting := true; waiting; {
		select {
		case <-ctx.Done():
			waiting = false
		case <-stdinClosed:
			log.Info("standard input closed (--stop-with-stdin)")
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

// watchStdin returns a channel closed once r ends (EOF or an error): with
// --stop-with-stdin, the parent holds the other end of a pipe, which the
// kernel closes when the parent dies, however it dies.
func watchStdin(r io.Reader) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(io.Discard, r) //nolint:errcheck // any end means the parent is gone
	}()
	return done
}
