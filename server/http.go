package server

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"slices"
	"time"

	"stompica/web"
)

// httpHandler serves HTTP on the STOMP port: a WebSocket upgrade on any
// path, /healthz, /metrics (Prometheus), the operator console (/console and
// its data, /console/api), and a short page saying what the port serves.
// /metrics and the console are behind checkHTTPAuth (Options.HTTPAuth).
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/metrics", s.withHTTPAuth(s.metricsHandler()))
	mux.Handle("/console", s.withHTTPAuth(http.HandlerFunc(serveConsolePage)))
	mux.Handle("/console/", http.RedirectHandler("/console", http.StatusMovedPermanently))
	mux.Handle("/console/api", s.withHTTPAuth(http.HandlerFunc(s.serveConsoleAPI)))
	if s.opts.Pprof {
		mux.Handle("/debug/pprof/", s.withHTTPAuth(http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/profile", s.withHTTPAuth(http.HandlerFunc(pprof.Profile)))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "stompica %s: a STOMP 1.0/1.1/1.2 message broker.\n\n"+
			"This port serves raw STOMP over TCP and STOMP over WebSocket\n"+
			"(ws://HOST:PORT/ws or /stomp; subprotocols v12.stomp, v11.stomp, v10.stomp),\n"+
			"the operator console at /console, Prometheus metrics at /metrics\n"+
			"and a health check at /healthz.\n", Version)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWebSocketUpgrade(r) {
			s.serveWebSocket(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// withHTTPAuth answers 401 with a basic-auth challenge when checkHTTPAuth
// refuses the request.
func (s *Server) withHTTPAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.checkHTTPAuth(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="stompica", charset="UTF-8"`)
			http.Error(w, "401 unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
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

// consoleData is the JSON of /console/api: the console polls it every
// second and computes rates from the counters.
type consoleData struct {
	Version       string            `json:"version"`
	UptimeSeconds float64           `json:"uptime_seconds"`
	StartTime     time.Time         `json:"start_time"`
	Connections   consoleConns      `json:"connections"`
	Connected     int64             `json:"connected"`
	Subscriptions int64             `json:"subscriptions"`
	Queued        int               `json:"queued"`
	Retained      int               `json:"retained"`
	Counters      consoleCounters   `json:"counters"`
	Errors        map[string]uint64 `json:"errors"`
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

type consoleCounters struct {
	Connections   uint64 `json:"connections"`
	WSConnections uint64 `json:"ws_connections"`
	Refused       uint64 `json:"refused"`
	FramesIn      uint64 `json:"frames_in"`
	MessagesIn    uint64 `json:"messages_in"`
	BytesIn       uint64 `json:"bytes_in"`
	BytesOut      uint64 `json:"bytes_out"`
	Deliveries    uint64 `json:"deliveries"`
	Acks          uint64 `json:"acks"`
	Nacks         uint64 `json:"nacks"`
	Redeliveries  uint64 `json:"redeliveries"`
	DeadLettered  uint64 `json:"dead_lettered"`
	Expired       uint64 `json:"expired"`
	StaleDropped  uint64 `json:"stale_dropped"`
	SlowConsumers uint64 `json:"slow_consumers"`
	Errors        uint64 `json:"errors"`
}

type consoleLimits struct {
	MaxConnections    int   `json:"max_connections"`
	MaxPendingBytes   int   `json:"max_pending_bytes"`
	MaxFrameSize      int   `json:"max_frame_size"`
	MaxStaleQueueSize int   `json:"max_stale_queue_size"`
	TTLms             int64 `json:"ttl_ms"`
}

// consoleData gathers the console's figures.
func (s *Server) consoleData() consoleData {
	st := &s.stats
	cs := s.connStats()
	d := consoleData{
		Version:       Version,
		UptimeSeconds: time.Since(s.start).Seconds(),
		StartTime:     s.start.UTC().Truncate(time.Millisecond),
		Connections: consoleConns{
			TCP: cs.tcp, WS: cs.ws, HTTP: cs.http, Total: cs.tcp + cs.ws,
			PendingBytes: cs.tcpPending + cs.wsPending,
		},
		Connected:     st.connectedNow.Load(),
		Subscriptions: int64(st.subscriptions.Load()),
		Retained:      s.router.retainedCount(),
		Counters: consoleCounters{
			Connections:   st.connsTotal.Load(),
			WSConnections: st.wsConns.Load(),
			Refused:       st.refused.Load(),
			FramesIn:      st.framesIn.Load(),
			MessagesIn:    st.msgsIn.Load(),
			BytesIn:       st.bytesIn.Load(),
			BytesOut:      st.bytesOut.Load(),
			Deliveries:    st.deliveries.Load(),
			Acks:          st.acks.Load(),
			Nacks:         st.nacks.Load(),
			Redeliveries:  st.redeliveries.Load(),
			DeadLettered:  st.deadLettered.Load(),
			Expired:       st.expired.Load(),
			StaleDropped:  st.staleDropped.Load(),
			SlowConsumers: st.slowConsumers.Load(),
		},
		Errors: make(map[string]uint64, numErrorKinds),
		Limits: consoleLimits{
			MaxConnections:    s.maxConns,
			MaxPendingBytes:   s.opts.MaxPendingBytes,
			MaxFrameSize:      s.opts.MaxFrameSize,
			MaxStaleQueueSize: s.opts.MaxStaleQueueSize,
			TTLms:             s.opts.TTL.Milliseconds(),
		},
	}
	for i, n := range st.errorCounts() {
		d.Errors[errorKinds[i]] = n
		d.Counters.Errors += n
	}
	qs := s.router.queueStats()
	for _, q := range qs {
		d.Queued += q.Depth
	}
	d.QueueCount = len(qs)
	if len(qs) > consoleMaxRows {
		// The deepest and busiest first; then back in name order.
		slices.SortStableFunc(qs, func(a, b queueInfo) int {
			return cmp.Or(cmp.Compare(b.Depth, a.Depth), cmp.Compare(b.Consumers, a.Consumers),
				cmp.Compare(b.Enqueued, a.Enqueued))
		})
		qs = qs[:consoleMaxRows]
		slices.SortFunc(qs, func(a, b queueInfo) int { return cmp.Compare(a.Name, b.Name) })
	}
	d.Queues = qs
	ts := s.router.topicStats()
	d.TopicCount = len(ts)
	if len(ts) > consoleMaxRows {
		slices.SortStableFunc(ts, func(a, b topicInfo) int { return cmp.Compare(b.Subscribers, a.Subscribers) })
		ts = ts[:consoleMaxRows]
		slices.SortFunc(ts, func(a, b topicInfo) int { return cmp.Compare(a.Name, b.Name) })
	}
	d.Topics = ts
	return d
}

func (s *Server) serveConsoleAPI(w http.ResponseWriter, r *http.Request) {
	body, err := json.Marshal(s.consoleData())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(body) //nolint:errcheck // the client went away
}
