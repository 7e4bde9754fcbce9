package server

import (
	"log/slog"
	"time"

	"github.com/stompica/stompica/auth"
	"github.com/stompica/stompica/cluster"
	"github.com/stompica/stompica/store"
)

// Options configures a Server. The zero value of every field means its
// default, so a nil or empty Options gives a working broker on port 3490.
type Options struct {
	// Host is the interface to listen on ("" = all interfaces).
	Host string
	// Port is the STOMP/WebSocket port: 0 = DefaultPort, -1 = a random free port.
	Port int

	// TLSCert and TLSKey (PEM files) open a TLS port serving STOMP and
	// WebSocket the same way as the plain port (stomp+ssl and wss).
	TLSCert, TLSKey string
	// TLSPort is the TLS port: 0 = DefaultTLSPort, -1 = a random free port.
	TLSPort int
	// TLSClientCA, when set, makes the TLS port require client certificates
	// signed by this CA (PEM file).
	TLSClientCA string
	// WSOrigins, when not empty, is the allow-list of WebSocket Origin
	// headers ("*" allows any). Requests without Origin (non-browser
	// clients) are always allowed.
	WSOrigins []string
	// HostNames are the names CONNECT's host header may give besides "/",
	// an IP address, "localhost" and this machine's host name. Empty: any
	// host name is accepted, and only names that cannot be a host name
	// (RabbitMQ virtual hosts such as "/prod") are refused. See checkHost.
	HostNames []string

	// UsersFile, when set, turns authentication on: one "login:bcrypt-hash"
	// per line. CONNECT then needs a valid login and passcode.
	UsersFile string
	// ACLFile, when set, turns authorization on: lines "login read|write|admin
	// pattern". SUBSCRIBE needs read, SEND write, DIAG and the console admin.
	ACLFile string
	// HTTPAuth is the default now and kept for compatibility: with
	// authentication on (a users file or an Authenticator), every HTTP
	// endpoint but /healthz needs HTTP basic auth of a user, and admin
	// access to the path when an Authorizer is set. Set without
	// authentication, it refuses every HTTP request but /healthz.
	HTTPAuth bool
	// MetricsPublic serves /metrics without a login even when
	// authentication is on (for a Prometheus scraper without credentials).
	MetricsPublic bool
	// Authenticator, when set, checks every login (CONNECT, and HTTP basic
	// auth) instead of a users file; Authorizer, when set, decides every
	// SEND, SUBSCRIBE, DIAG and HTTP (console, metrics, API) access instead
	// of an ACL file. Nil means the users file and the ACL file when those are
	// set (setting both is an error), and otherwise off: anonymous access,
	// everything allowed. See package auth.
	Authenticator auth.Authenticator
	Authorizer    auth.Authorizer

	// MaxConnections bounds concurrent client connections (default 16384):
	// STOMP, WebSocket and HTTP alike (HTTP may go httpExtraConns past it so
	// /healthz and /metrics still answer). The broker lowers it to fit the
	// process's open-file limit (RLIMIT_NOFILE) and logs both at Start;
	// Server.MaxConnections returns the limit in force.
	MaxConnections int
	// MaxFrameSize bounds one frame, headers and body (default 16 MiB).
	MaxFrameSize int
	// MaxHeaders bounds the header lines of one frame (default 1000, as
	// Apache Apollo; each line is still bounded by MaxHeaderLine and the
	// frame by MaxFrameSize).
	MaxHeaders int
	// MaxHeaderLine bounds one header line in bytes (default 8 KiB).
	MaxHeaderLine int
	// MaxSubscriptions bounds the subscriptions of one connection (default 1024).
	MaxSubscriptions int
	// MaxTransactions bounds the open transactions of one connection (default 64).
	MaxTransactions int
	// MaxTransactionBytes bounds what one transaction may buffer until
	// COMMIT: its messages' bytes plus a fixed cost per SEND, ACK or NACK.
	// Past it the client gets an ERROR and is closed. Default
	// DefaultMaxTransactionBytes, at most a quarter of MemoryBudget. Open
	// transactions count in the memory budget, and may hold at most half
	// of it together.
	MaxTransactionBytes int64
	// ConnectTimeout is how long a new connection may take to send CONNECT (default 10s).
	ConnectTimeout time.Duration

	// HTTPIdleTimeout closes an HTTP keep-alive connection idle that long
	// between requests (default DefaultHTTPIdleTimeout). HTTP request
	// headers must arrive within ConnectTimeout.
	HTTPIdleTimeout time.Duration

	// FrameTimeout is how long a client may take to finish a frame it has
	// started sending (default 30s): slowloris protection.
	FrameTimeout time.Duration
	// MaxDestinationLength bounds destination names in bytes (default 1024).
	MaxDestinationLength int
	// MaxUnacked bounds the unacknowledged messages one subscription may
	// hold, whatever prefetch it asks for (default 10000).
	MaxUnacked int
	// MaxConnectionsPerAddress bounds concurrent connections from one remote
	// IP address (0 = no bound: clients behind NAT or a proxy share one).
	MaxConnectionsPerAddress int
	// MaxWebSocketMessage bounds one WebSocket message (default MaxFrameSize).
	MaxWebSocketMessage int

	// HeartBeatSend and HeartBeatRecv are the server's heart-beat offer
	// (CONNECTED heart-beat:send,recv). Default 10s each; -1 disables.
	HeartBeatSend, HeartBeatRecv time.Duration
	// HeartBeatGrace multiplies the agreed client interval before a silent
	// client is closed (default 2).
	HeartBeatGrace float64

	// TTL is the default time-to-live of topic messages retained for late
	// subscribers (0 = off). Per-message "expires"/"ttl" headers override it.
	TTL time.Duration
	// MaxStaleQueueSize bounds retained (stale) topic messages (default 10000).
	MaxStaleQueueSize int
	// MaxInputQueueSize bounds messages accepted but not yet delivered,
	// broker-wide (default 1,000,000). Over it the broker stops reading from
	// publishers until it drains.
	MaxInputQueueSize int

	// QueueFlowLimit bounds the messages waiting in a queue that has
	// consumers (default 1000; -1 = no bound): past it, connections that
	// SEND to the queue are not read until it drains to half, so a
	// producer cannot run far ahead of the consumers. A queue without
	// consumers is bounded by MaxInputQueueSize and MemoryBudget; a stored
	// queue is not bounded by it; a queue that hands out nothing for a
	// second lets its publishers go until it moves again.
	QueueFlowLimit int

	// MemoryBudget bounds the bytes of messages waiting in queues, broker-wide
	// (default 1 GiB); over it publishers are paused like MaxInputQueueSize.
	MemoryBudget int64

	// MaxPendingBytes bounds a connection's outbound buffer (default 8 MiB).
	// A topic subscriber over it is disconnected as a slow consumer; a queue
	// consumer gets no more until it drains.
	MaxPendingBytes int
	// Prefetch is the default number of unacknowledged messages a client-ack
	// subscription, queue or topic, may hold (default 1000); the SUBSCRIBE
	// headers "prefetch-count" or "activemq.prefetchSize" override it. A
	// topic subscription without credit holds further messages (counted
	// against MaxPendingBytes and MaxUnacked) until ACKs or NACKs free some.
	Prefetch int
	// MaxRedeliveries moves a queue message to the dead-letter queue
	// "/queue/DLQ" after that many redeliveries (0 = never).
	MaxRedeliveries int
	// AckTimeout, when positive, takes back a queue message a client-ack
	// consumer has held that long without ACK or NACK and redelivers it,
	// flagged redelivered, preferably to another consumer (0 = off). A
	// late ACK or NACK of it is ignored.
	AckTimeout time.Duration

	// Store holds queue messages (nil = store.NewMemory(), in memory).
	// A store error on SEND is answered with an ERROR, never a RECEIPT.
	// Shutdown closes it.
	Store store.Store
	// Record lists topic destinations (names or sublist patterns such as
	// "/topic/prices.>") whose messages are also kept in the store's
	// streams, for subscribers that replay them with x-stream-offset.
	// Destinations under /stream/ are always kept. Needs a Store that
	// keeps streams (store.Streams).
	Record []string

	// Cluster links this node to others (nil = this node alone, and the
	// seam costs nothing): the router tells it of every topic message a
	// client publishes and of local interest in each topic name or pattern,
	// and delivers what other nodes publish. See package cluster.
	Cluster cluster.Link
	// NodeID is this node's id among linked nodes (0 for a single node):
	// message ids carry it in their top 16 bits, so they stay unique
	// across nodes.
	NodeID uint16

	// Pprof serves Go's profiler at /debug/pprof/ on the HTTP port (behind
	// HTTP auth when that is on). Off by default.
	Pprof bool

	// Logger receives the broker's logs (default slog.Default()).
	Logger *slog.Logger

	// flowStall is how long a crowded queue may hand out nothing before
	// its publishers stop waiting for it (default stallAfter; tests set
	// it).
	flowStall time.Duration
}

// PersistentMaxInputQueueSize caps Options.MaxInputQueueSize when the
// store is persistent (store.Persistent): publishers to queues are paused
// while that many messages await the store's confirmation.
const PersistentMaxInputQueueSize = 65536

// The defaults: an Options field left at 0 takes the value below (the
// stompica command's flags show and use these, so there is one source of
// truth). MaxWebSocketMessage defaults to MaxFrameSize, MaxTransactionBytes
// to DefaultMaxTransactionBytes bounded by the memory budget.
const (
	DefaultPort    = 3490 // the original stompica's port
	DefaultTLSPort = 3491

	DefaultMaxConnections       = 16384
	DefaultMaxFrameSize         = 16 << 20
	DefaultMaxHeaders           = 1000 // Apache Apollo's default
	DefaultMaxHeaderLine        = 8 << 10
	DefaultMaxSubscriptions     = 1024
	DefaultMaxTransactions      = 64
	DefaultMaxDestinationLength = 1024
	DefaultMaxUnacked           = 10000
	DefaultMaxStaleQueueSize    = 10000
	DefaultMaxInputQueueSize    = 1_000_000
	DefaultMemoryBudget         = 1 << 30
	DefaultMaxPendingBytes      = 8 << 20
	DefaultPrefetch             = 1000
	DefaultQueueFlowLimit       = 1000

	DefaultConnectTimeout = 10 * time.Second
	DefaultFrameTimeout   = 30 * time.Second
	DefaultHeartBeat      = 10 * time.Second // HeartBeatSend and HeartBeatRecv
	DefaultHeartBeatGrace = 2
)

// DefaultHTTPIdleTimeout is the default Options.HTTPIdleTimeout: long enough
// for the console's 1 s poll and a 15 s Prometheus scrape to reuse their
// connection, short enough that an abandoned keep-alive connection gives its
// slot and descriptor back within half a minute.
const DefaultHTTPIdleTimeout = 30 * time.Second

// DefaultMaxTransactionBytes is Options.MaxTransactionBytes when unset and
// the memory budget is at least four times as much: twice the default frame
// size limit, so a maximal SEND fits in a transaction. What all open
// transactions hold together is bounded by the memory budget.
const DefaultMaxTransactionBytes = 2 * DefaultMaxFrameSize

func (o Options) withDefaults() Options {
	orDefaultOff(&o.Port, DefaultPort)
	orDefaultOff(&o.TLSPort, DefaultTLSPort)
	orDefault(&o.MaxConnections, DefaultMaxConnections)
	orDefault(&o.MaxFrameSize, DefaultMaxFrameSize)
	orDefault(&o.MaxHeaders, DefaultMaxHeaders)
	orDefault(&o.MaxHeaderLine, DefaultMaxHeaderLine)
	orDefault(&o.MaxSubscriptions, DefaultMaxSubscriptions)
	orDefault(&o.MaxTransactions, DefaultMaxTransactions)
	orDefault(&o.MaxStaleQueueSize, DefaultMaxStaleQueueSize)
	orDefault(&o.MaxInputQueueSize, DefaultMaxInputQueueSize)
	orDefault(&o.MaxPendingBytes, DefaultMaxPendingBytes)
	orDefault(&o.Prefetch, DefaultPrefetch)
	orDefault(&o.QueueFlowLimit, DefaultQueueFlowLimit)
	orDefault(&o.flowStall, stallAfter)
	orDefault(&o.MaxDestinationLength, DefaultMaxDestinationLength)
	orDefault(&o.MaxUnacked, DefaultMaxUnacked)
	orDefault(&o.MaxWebSocketMessage, o.MaxFrameSize)
	orDefault(&o.FrameTimeout, DefaultFrameTimeout)
	orDefault(&o.MemoryBudget, DefaultMemoryBudget)
	if o.MaxTransactionBytes <= 0 {
		o.MaxTransactionBytes = min(DefaultMaxTransactionBytes, max(o.MemoryBudget/4, 1))
	}
	orDefault(&o.ConnectTimeout, DefaultConnectTimeout)
	orDefault(&o.HTTPIdleTimeout, DefaultHTTPIdleTimeout)
	orDefaultOff(&o.HeartBeatSend, DefaultHeartBeat)
	orDefaultOff(&o.HeartBeatRecv, DefaultHeartBeat)
	if o.HeartBeatGrace <= 1 {
		o.HeartBeatGrace = DefaultHeartBeatGrace
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// orDefault sets *v to d when it is zero (unset).
func orDefault[T int | int64 | time.Duration](v *T, d T) {
	if *v == 0 {
		*v = d
	}
}

// orDefaultOff sets *v to d when it is zero (unset), and to zero when it is
// negative (off: no listener, no heart-beats).
func orDefaultOff[T int | time.Duration](v *T, d T) {
	if *v < 0 {
		*v = 0
	} else {
		orDefault(v, d)
	}
}
