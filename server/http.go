package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stompica/stompica/web"
)

// httpHandler serves HTTP on the STOMP port: a WebSocket upgrade on any
// path, /healthz, /metrics (Prometheus), the operator console (/console and
// its data, /console/api), the management API (/api/, api.go) and a short
// page saying what the port serves. All but /healthz (and /metrics with
// Options.MetricsPublic) are behind withHTTPAuth.
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "ok")
	})
	if s.opts.MetricsPublic {
		mux.Handle("/metrics", s.metricsHandler())
	} else {
		mux.Handle("/metrics", s.withHTTPAuth(s.metricsHandler()))
	}
	mux.Handle("/console", s.withHTTPAuth(http.HandlerFunc(serveConsolePage)))
	mux.Handle("/console/", http.RedirectHandler("/console", http.StatusMovedPermanently))
	mux.Handle("/console/api", s.withHTTPAuth(http.HandlerFunc(s.serveConsoleAPI)))
	mux.Handle("/api/", s.withHTTPAuth(s.apiHandler()))
	if s.opts.Pprof {
		mux.Handle("/debug/pprof/", s.withHTTPAuth(http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/profile", s.withHTTPAuth(http.HandlerFunc(pprof.Profile)))
	}
	mux.Handle("/", s.withHTTPAuth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "stompica %s: a STOMP 1.0/1.1/1.2 message broker.\n\n"+
			"This port serves raw STOMP over TCP and STOMP over WebSocket\n"+
			"(ws://HOST:PORT/ws or /stomp; subprotocols v12.stomp, v11.stomp, v10.stomp),\n"+
			"the operator console at /console, the management API at /api/,\n"+
			"Prometheus metrics at /metrics and a health check at /healthz.\n", Version)
	})))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWebSocketUpgrade(r) {
			s.serveWebSocket(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// metricsHandler serves /metrics from a registry of this Server only (tests
// and embedders run many servers in one process, so never the global
// default registry): the broker collector below plus Go runtime and process
// collectors.
func (s *Server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newBrokerCollector(s),
		newStoreCollector(s),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            promLogger{s},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	})
}

type promLogger struct{ s *Server }

func (l promLogger) Println(v ...any) { l.s.log.Warn("metrics", "err", v) }

// isHTTPHead reports whether the first four bytes of a connection start an
// HTTP request: GET (pages, metrics, WebSocket upgrades), or POST, PUT,
// DELETE, HEAD, OPTIONS or PATCH (the management API). No STOMP command
// starts with any of them.
func isHTTPHead(head [4]byte) bool {
	switch string(head[:]) {
	case "GET ", "POST", "PUT ", "DELE", "HEAD", "OPTI", "PATC":
		return true
	}
	return false
}

// httpLoginKey carries the login of an HTTP request in its context.
type httpLoginKey struct{}

// httpLogin returns the login withHTTPAuth accepted for r ("" when
// authentication is off).
func httpLogin(r *http.Request) string {
	login, _ := r.Context().Value(httpLoginKey{}).(string)
	return login
}

// withHTTPAuth lets a request through when httpAccess allows it, with its
// login in the context; otherwise it answers 401 with a basic-auth
// challenge, or 403.
func (s *Server) withHTTPAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		login, status := s.httpAccess(r)
		if status == 0 {
			if login != "" {
				r = r.WithContext(context.WithValue(r.Context(), httpLoginKey{}, login))
			}
			h.ServeHTTP(w, r)
			return
		}
		msg := "log in with HTTP basic auth (a user of the broker's users file)"
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="stompica", charset="UTF-8"`)
		} else {
			msg = "user " + strconv.Quote(login) + " has no admin access to " + r.URL.Path
		}
		if strings.HasPrefix(r.URL.Path, "/api/") {
			apiError(w, status, msg)
			return
		}
		http.Error(w, strconv.Itoa(status)+" "+strings.ToLower(http.StatusText(status))+": "+msg, status)
	})
}

// consoleETag identifies the embedded console page (it changes only with
// the binary).
var consoleETag = func() string {
	sum := sha256.Sum256(web.Console)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}()

// consoleCSP allows the page's own inline script and style, and network
// access to its own origin only (the JSON API and the WebSocket).
const consoleCSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
	"img-src data:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func serveConsolePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", consoleCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", consoleETag)
	http.ServeContent(w, r, "console.html", time.Time{}, bytes.NewReader(web.Console))
}

// consoleMaxRows bounds the queues and topics listed by /console/api (the
// busiest first); the totals still count them all.
const consoleMaxRows = 500

// consoleData is the JSON of /console/api (and /api/overview): the console
// polls it every second and computes rates from the counters.
type consoleData struct {
	Version       string            `json:"version"`
	UptimeSeconds float64           `json:"uptime_seconds"`
	StartTime     time.Time         `json:"start_time"`
	Connections   consoleConns      `json:"connections"`
	Connected     int64             `json:"connected"`
	Subscriptions int64             `json:"subscriptions"`
	Queued        int               `json:"queued"`
	Unacked       int               `json:"unacked"` // queue messages in flight, all queues
	Retained      int               `json:"retained"`
	InputPaused   bool              `json:"input_paused"`
	Counters      counterValues     `json:"counters"`
	Errors        map[string]uint64 `json:"errors"`
	RecentErrors  uint64            `json:"recent_errors"` // ERRORs recorded for GET /api/errors
	QueueCount    int               `json:"queue_count"`
	Queues        []queueInfo       `json:"queues"`
	TopicCount    int               `json:"topic_count"`
	Topics        []topicInfo       `json:"topics"`
	Limits        consoleLimits     `json:"limits"`
}

type consoleConns struct {
	TCP          int `json:"tcp"`
	WS           int `json:"ws"`
	HTTP         int `json:"http"`
	Total        int `json:"total"`
	PendingBytes int `json:"pending_bytes"`
}

type consoleLimits struct {
	MaxConnections    int   `json:"max_connections"`
	MaxPendingBytes   int   `json:"max_pending_bytes"`
	MaxFrameSize      int   `json:"max_frame_size"`
	MaxStaleQueueSize int   `json:"max_stale_queue_size"`
	TTLms             int64 `json:"ttl_ms"`
}

// consoleData gathers the console's figures from one snapshot.
func (s *Server) consoleData() consoleData {
	snap := s.snapshot(snapQueues | snapTopics)
	_, recent := s.admin.errors.list()
	d := consoleData{
		Version:       Version,
		UptimeSeconds: snap.Time.Sub(snap.Start).Seconds(),
		StartTime:     snap.Start.UTC().Truncate(time.Millisecond),
		Connections: consoleConns{
			TCP: snap.TCP, WS: snap.WS, HTTP: snap.HTTP, Total: snap.TCP + snap.WS,
			PendingBytes: snap.TCPPending + snap.WSPending,
		},
		Connected:     snap.Connected,
		Subscriptions: snap.Subscriptions,
		Queued:        snap.Queued,
		Retained:      snap.Retained,
		InputPaused:   snap.InputPaused,
		Counters:      snap.Counters,
		Errors:        make(map[string]uint64, numErrorKinds),
		RecentErrors:  recent,
		QueueCount:    len(snap.Queues),
		Queues:        busiest(snap.Queues, consoleMaxRows),
		TopicCount:    len(snap.Topics),
		Topics:        busiest(snap.Topics, consoleMaxRows),
		Limits: consoleLimits{
			MaxConnections:    s.maxConns,
			MaxPendingBytes:   s.opts.MaxPendingBytes,
			MaxFrameSize:      s.opts.MaxFrameSize,
			MaxStaleQueueSize: s.opts.MaxStaleQueueSize,
			TTLms:             s.opts.TTL.Milliseconds(),
		},
	}
	for _, q := range snap.Queues {
		d.Unacked += q.Unacked
	}
	for i, n := range snap.Errors {
		d.Errors[errorKinds[i]] = n
	}
	return d
}

func (s *Server) serveConsoleAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.consoleData())
}
