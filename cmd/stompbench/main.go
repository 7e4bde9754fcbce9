// Command stompbench is a load generator for STOMP brokers (1.0, 1.1, 1.2)
// over TCP or WebSocket: topic fan-out throughput, queue throughput with an
// exactly-once check, end-to-end latency percentiles and idle-connection
// footprint.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

const usageHead = `usage: stompbench SCENARIO [flags] URL

Load tool for STOMP brokers. URL is tcp://host:port or ws://host:port/path
(or give --url). Flags may come before or after the URL.

Scenarios:
  fanout   1 publisher sends --msgs messages to one topic read by --subs
           subscribers: deliveries/s, MB/s, per-subscriber loss/dups/order
  queue    --producers send --msgs messages in total to one queue read by
           --consumers (ACK per message): msgs/s, exactly-once check
  latency  1 publisher at --rate msgs/s for --duration to --subs
           subscribers: p50/p90/p99/p99.9/max end-to-end latency, loss
  conns    --conns idle connections, each subscribed, held for --hold:
           with --pid, broker RSS per connection
  soak     a bounded mixed run of --duration over TCP and WebSocket at once
           (URL is the tcp:// one): topic and queue publishers, stable and
           churning subscribers, client-individual consumers with NACKs,
           abrupt disconnects and backpressure pauses; prints sent, received,
           lost, duplicates and the broker's RSS (--pid) and goroutines
           (/metrics) before, during and after

Messages carry a sequence number, a run id, the producer and a send time in
their first 40 bytes; messages of other runs (e.g. left in a queue) are
counted as foreign and ignored. Exit status: 0 when the run completed with no
loss, duplicates, reordering (topic scenarios) or ERROR frames; 1 otherwise
(the report still shows what was measured); 2 for a usage error.

Flags:
`

type config struct {
	scenario  string
	url       string
	login     string
	passcode  string
	vhost     string
	dest      string
	size      int
	timeout   time.Duration
	json      bool
	pid       int
	subs      int
	msgs      int
	rate      float64
	producers int
	consumers int
	ack       string
	prefetch  int
	duration  time.Duration
	conns     int
	hold      time.Duration
	shared    bool
	noReceipt bool // conns: SUBSCRIBE without a receipt
	parallel  int
	stall     time.Duration
	cpuprof   string

	// soak
	churn          int
	heartBeat      int
	budget         int64
	pauseEvery     time.Duration
	pauseHold      time.Duration
	sampleEvery    time.Duration
	wsURL          string
	metricsURL     string
	drain          time.Duration
	settle         time.Duration
	goroutineSlack int
	rssSlack       float64
}

var scenarios = map[string]func(*bench) *report{
	"fanout":  runFanout,
	"queue":   runQueue,
	"latency": runLatency,
	"conns":   runConns,
	"soak":    runSoak,
}

// usageError is a command-line mistake (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("stompbench", flag.ContinueOnError)
	fs.StringVar(&cfg.url, "url", "", "broker `URL` (instead of the positional argument)")
	fs.StringVar(&cfg.login, "login", "", "CONNECT login")
	fs.StringVar(&cfg.passcode, "passcode", "", "CONNECT passcode")
	fs.StringVar(&cfg.vhost, "vhost", "/", "CONNECT host header (virtual host)")
	fs.StringVar(&cfg.dest, "dest", "", "destination (default /topic/bench.fanout, /queue/bench.queue,\n/topic/bench.latency, /topic/bench.conns[.N])")
	fs.IntVar(&cfg.size, "size", 117, "message body size in `bytes` (at least 40)")
	fs.Func("header", "fanout/queue/latency: add this `key:value` header to every SEND (repeatable; e.g. persistent:true)", func(v string) error {
		if k, _, ok := strings.Cut(v, ":"); !ok || k == "" {
			return fmt.Errorf("want key:value, got %q", v)
		}
		sendHeaders = append(sendHeaders, v)
		return nil
	})
	fs.DurationVar(&cfg.timeout, "timeout", 60*time.Second, "deadline for the whole run; it then ends and reports what it got")
	fs.BoolVar(&cfg.json, "json", false, "print one JSON object instead of the table")
	fs.IntVar(&cfg.pid, "pid", 0, "broker `PID`: report its CPU time and RSS from /proc")
	fs.IntVar(&cfg.subs, "subs", 0, "subscribers (fanout 75, latency 20)")
	fs.IntVar(&cfg.msgs, "msgs", 0, "messages to send (fanout/queue 100000; latency rate*duration)")
	fs.Float64Var(&cfg.rate, "rate", 0, "send rate in msgs/s (latency 1000; fanout/queue unlimited)")
	fs.IntVar(&cfg.producers, "producers", 4, "queue: producer connections")
	fs.IntVar(&cfg.consumers, "consumers", 4, "queue: consumer connections")
	fs.StringVar(&cfg.ack, "ack", "client-individual", "queue: ack mode, auto or client-individual")
	fs.IntVar(&cfg.prefetch, "prefetch", 100, "queue: prefetch (activemq.prefetchSize and prefetch-count headers; 0 = none)")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "latency: sending time (unless --msgs)")
	fs.IntVar(&cfg.conns, "conns", 1000, "conns: connections to open")
	fs.DurationVar(&cfg.hold, "hold", 5*time.Second, "conns: how long to hold them")
	fs.BoolVar(&cfg.shared, "shared", false, "conns: subscribe all to one topic instead of one topic each")
	fs.BoolVar(&cfg.noReceipt, "no-receipt", false, "conns: SUBSCRIBE without a receipt (a connection counts as set up once its SUBSCRIBE is written)")
	fs.IntVar(&cfg.parallel, "parallel", 200, "connections set up at a time")
	fs.DurationVar(&cfg.stall, "stall", 5*time.Second, "end the run when sending is over and nothing arrived for this long")
	fs.StringVar(&cfg.cpuprof, "cpuprofile", "", "write a CPU profile of stompbench to `file`")
	fs.IntVar(&cfg.churn, "churn", 8, "soak: churning topic subscribers (subscribe, unsubscribe, reconnect)")
	fs.IntVar(&cfg.heartBeat, "heart-beat", 1000, "soak and conns: client heart-beat in `ms`, offered both ways and sent (0 = off; conns: off unless given)")
	fs.Int64Var(&cfg.budget, "memory-budget", 32_000_000, "soak: the broker's --memory-budget in `bytes`; sizes the flood that must pause publishers")
	fs.DurationVar(&cfg.pauseEvery, "pause-every", 30*time.Second, "soak: time between backpressure pauses (the first at a quarter of --duration)")
	fs.DurationVar(&cfg.pauseHold, "pause-hold", 5*time.Second, "soak: how long the flood queue's consumers stay away once publishers are paused")
	fs.DurationVar(&cfg.sampleEvery, "sample-every", 5*time.Second, "soak: interval of the broker RSS and goroutine samples")
	fs.StringVar(&cfg.wsURL, "ws-url", "", "soak: WebSocket `URL` (default ws://HOST:PORT/ws of the tcp:// URL)")
	fs.StringVar(&cfg.metricsURL, "metrics-url", "", "soak: Prometheus `URL` of the broker (default http://HOST:PORT/metrics)")
	fs.DurationVar(&cfg.drain, "drain", 60*time.Second, "soak: bound on draining the queues at the end")
	fs.DurationVar(&cfg.settle, "settle", 30*time.Second, "soak: bound on the wait for RSS and goroutines to return near their baseline")
	fs.IntVar(&cfg.goroutineSlack, "goroutine-slack", 5, "soak: goroutines above the baseline still counted as back to baseline")
	fs.Float64Var(&cfg.rssSlack, "rss-slack", 16, "soak: `MiB` of RSS above the baseline still counted as back to baseline")
	return fs
}

// parseArgs parses "SCENARIO [flags] URL [flags]".
func parseArgs(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := newFlagSet(cfg)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fs.Usage()
			return nil, flag.ErrHelp
		}
		fs.Usage()
		return nil, usageError{"missing scenario"}
	}
	cfg.scenario = args[0]
	if _, ok := scenarios[cfg.scenario]; !ok {
		fs.Usage()
		return nil, usageError{fmt.Sprintf("unknown scenario %q", cfg.scenario)}
	}
	rest := args[1:]
	var positional []string
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch {
	case len(positional) > 1:
		return nil, usageError{fmt.Sprintf("unexpected arguments %q", positional[1:])}
	case len(positional) == 1 && cfg.url != "" && cfg.url != positional[0]:
		return nil, usageError{"URL given twice"}
	case len(positional) == 1:
		cfg.url = positional[0]
	case cfg.url == "":
		return nil, usageError{"missing URL"}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := cfg.applyDefaults(set); err != nil {
		return nil, err
	}
	return cfg, nil
}

// applyDefaults fills the scenario-dependent defaults and checks ranges.
func (c *config) applyDefaults(set map[string]bool) error {
	switch c.scenario {
	case "fanout":
		c.subs = defInt(c.subs, 75)
		c.msgs = defInt(c.msgs, 100000)
		c.dest = defStr(c.dest, "/topic/bench.fanout")
	case "queue":
		c.msgs = defInt(c.msgs, 100000)
		c.dest = defStr(c.dest, "/queue/bench.queue")
	case "latency":
		c.subs = defInt(c.subs, 20)
		if !set["rate"] {
			c.rate = 1000
		}
		if c.rate <= 0 {
			return usageError{"latency needs --rate > 0"}
		}
		if c.msgs == 0 {
			c.msgs = int(c.rate * c.duration.Seconds())
		}
		c.dest = defStr(c.dest, "/topic/bench.latency")
	case "conns":
		c.dest = defStr(c.dest, "/topic/bench.conns")
		if !set["heart-beat"] {
			c.heartBeat = 0
		}
		if c.heartBeat < 0 {
			return usageError{"conns: --heart-beat must not be negative"}
		}
	case "soak":
		if !set["duration"] {
			c.duration = 60 * time.Second
		}
		if !set["rate"] {
			c.rate = 1000
		}
		c.subs = defInt(c.subs, 8)
		if !set["timeout"] {
			c.timeout = c.duration + c.pauseHold + c.drain + c.settle + 2*time.Minute
		}
		switch {
		case !strings.HasPrefix(c.url, "tcp://") && !strings.HasPrefix(c.url, "stomp://"):
			return usageError{"soak: the URL must be tcp:// (the WebSocket URL is --ws-url)"}
		case c.duration < time.Second || c.rate <= 0 || c.churn < 0 || c.heartBeat < 0 || c.budget < 1<<16:
			return usageError{"soak: needs --duration >= 1s, --rate > 0, --churn >= 0, --heart-beat >= 0, --memory-budget >= 64 KiB"}
		case c.pauseEvery <= 0 || c.pauseHold <= 0 || c.sampleEvery <= 0 || c.drain <= 0 || c.settle <= 0:
			return usageError{"soak: --pause-every, --pause-hold, --sample-every, --drain and --settle must be positive"}
		}
	}
	switch {
	case c.size < minBody:
		return usageError{fmt.Sprintf("--size must be at least %d bytes (the body carries sequence number, run id and timestamp)", minBody)}
	case c.size > 16<<20:
		return usageError{"--size above 16 MiB"}
	case c.timeout <= 0:
		return usageError{"--timeout must be positive"}
	case c.msgs < 0 || c.msgs > maxSeq:
		return usageError{fmt.Sprintf("--msgs must be between 1 and %d", maxSeq)}
	case c.scenario != "conns" && c.scenario != "soak" && c.msgs == 0:
		return usageError{"--msgs must be at least 1"}
	case c.rate < 0:
		return usageError{"--rate must not be negative"}
	case c.subs < 0, c.producers < 1 || c.producers > maxProducers, c.consumers < 1, c.conns < 1, c.parallel < 1:
		return usageError{fmt.Sprintf("--subs, --producers (max %d), --consumers, --conns, --parallel must be positive", maxProducers)}
	case c.ack != "auto" && c.ack != "client-individual":
		return usageError{"--ack must be auto or client-individual"}
	case c.prefetch < 0:
		return usageError{"--prefetch must not be negative"}
	case c.scenario == "queue" && c.msgs < c.producers:
		return usageError{"--msgs must be at least --producers"}
	}
	if c.scenario != "conns" && c.scenario != "queue" && c.scenario != "soak" && c.subs < 1 {
		return usageError{"--subs must be at least 1"}
	}
	return nil
}

func defInt(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func defStr(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "stompbench:", err)
		return 2
	}
	tgt, err := parseTarget(cfg.url)
	if err != nil {
		fmt.Fprintln(stderr, "stompbench:", err)
		return 2
	}
	if cfg.scenario == "conns" {
		if limit := fileLimit(); limit > 0 && uint64(cfg.conns)+fdMargin > limit {
			fmt.Fprintf(stderr, "stompbench: --conns %d exceeds the open file limit %d minus a margin of %d\n", cfg.conns, limit, fdMargin)
			return 2
		}
	}
	if cfg.cpuprof != "" {
		f, err := os.Create(cfg.cpuprof)
		if err != nil {
			fmt.Fprintln(stderr, "stompbench:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "stompbench:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	b := newBench(ctx, cfg, tgt)
	defer b.cancel()
	b.progress = isTerminal(stderr)
	b.stderr = stderr
	b.stdout = stdout
	if cfg.json {
		b.stdout = stderr // the soak's timeline; stdout carries the JSON only
	}
	r := scenarios[cfg.scenario](b)
	b.finish(r)
	if cfg.json {
		r.writeJSON(stdout)
	} else {
		r.writeTable(stdout)
	}
	if !r.OK {
		return 1
	}
	return 0
}

// fdMargin is kept free of the open-file limit for the tool's own files.
const fdMargin = 64

func fileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
