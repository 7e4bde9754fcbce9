package server

import (
	"cmp"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stompica/stompica/store"
)

// The management API: JSON under /api/ on the HTTP port, for operators and
// for `stompica ctl`. Every request goes through withHTTPAuth (http.go):
// with authentication on it needs a login with admin access to the request
// path. Requests that change something (POST, DELETE) must also come from
// the broker's own origin when a browser sends them. GET /api/ lists the
// endpoints (apiRoutes).
//
// A destination name is one path segment, escaped: /queue/a is
// /api/queues/%2Fqueue%2Fa, and the original's #jobs is %23jobs. Lists
// take ?limit=N (the busiest N: most unacked and pending first for
// connections, deepest first for queues, most subscribers first for
// topics); the answer's "count" is the total before the limit.

// apiRoute is one endpoint of the API: its method and path (an
// http.ServeMux pattern) and its handler.
type apiRoute struct {
	pattern string
	handler func(*Server, http.ResponseWriter, *http.Request)
}

// apiRoutes are the endpoints, in the order GET /api/ lists them.
var apiRoutes = []apiRoute{
	{"GET /api/overview", (*Server).serveConsoleAPI}, // the console's figures (as /console/api)
	{"GET /api/connections", apiList("connections", func(s *Server) []connInfo { return s.snapshot(snapConns).Conns })},
	{"GET /api/connections/{id}", (*Server).apiConnection},         // one, with its subscriptions
	{"DELETE /api/connections/{id}", (*Server).apiCloseConnection}, // close it
	{"POST /api/connections/{id}/close", (*Server).apiCloseConnection},
	{"GET /api/queues", apiList("queues", func(s *Server) []queueInfo { return s.snapshot(snapQueues).Queues })},
	{"GET /api/queues/{name}", (*Server).apiQueue},
	{"POST /api/queues/{name}/purge", apiQueueAction("purged", (*router).purgeQueue)}, // drop its waiting messages
	{"DELETE /api/queues/{name}", apiQueueAction("deleted", (*router).deleteQueue)},   // refused while it has consumers
	{"GET /api/topics", apiList("topics", func(s *Server) []topicInfo { return s.snapshot(snapTopics).Topics })},
	{"GET /api/errors", (*Server).apiErrors},                                                                     // the last ERROR frames sent (newest first)
	{"GET /api/durables", apiList("durables", func(s *Server) []durableInfo { return s.router.durableStats() })}, // durable topic subscriptions (what each keeps)
	{"GET /api/streams", (*Server).apiStreams},                                                                   // streams: /stream/ destinations and recorded topics
	{"GET /api/streams/{name}", (*Server).apiStream},                                                             // one stream
}

// apiHandler serves /api/.
func (s *Server) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/{$}", s.apiIndex)
	for _, rt := range apiRoutes {
		mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) { rt.handler(s, w, r) })
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		// The mux's own 404 and 405 are plain text: answer in JSON.
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, p := mux.Handler(probe); p != "/api/" && p != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			apiError(w, http.StatusMethodNotAllowed, r.Method+" "+r.URL.Path+": use "+strings.Join(allow, " or "))
			return
		}
		apiError(w, http.StatusNotFound, "no such API endpoint: "+r.Method+" "+r.URL.Path+" (GET /api/ lists them)")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(r) {
			apiError(w, http.StatusForbidden, "cross-origin request refused")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// sameOrigin reports whether a request that changes something may come
// from where it comes from: clients other than browsers send no Origin;
// a browser's Origin must name this host (as the client reached it, or as
// a proxy in front forwarded it), so a page elsewhere cannot use a
// browser's remembered credentials against the API.
func sameOrigin(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	fwd := r.Header.Get("X-Forwarded-Host")
	return fwd != "" && strings.EqualFold(u.Host, fwd)
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(body, '\n')) //nolint:errcheck // the client went away
}

// apiErrorBody is every error answer of the API.
type apiErrorBody struct {
	Error string `json:"error"`
}

func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiErrorBody{Error: msg})
}

// apiLimit reads ?limit=N (0 = no limit). ok is false, and the request
// answered, when it is malformed.
func apiLimit(w http.ResponseWriter, r *http.Request) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 0, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		apiError(w, http.StatusBadRequest, "limit: want a number >= 0, got "+strconv.Quote(v))
		return 0, false
	}
	return n, true
}

// ranked are the rows of a list endpoint: busier orders the busiest
// first, before the listing order.
type ranked[T any] interface {
	busier(T) int
	before(T) int
}

// busiest keeps the limit busiest elements of list (all when limit is 0),
// in the listing order.
func busiest[T ranked[T]](list []T, limit int) []T {
	if limit <= 0 || len(list) <= limit {
		return list
	}
	slices.SortStableFunc(list, T.busier)
	list = list[:limit]
	slices.SortFunc(list, T.before)
	return list
}

// Connections holding the most (unacked and held messages, then pending
// output) first; listed by id.
func (a connInfo) busier(b connInfo) int {
	return cmp.Or(cmp.Compare(b.Unacked+b.Held, a.Unacked+a.Held), cmp.Compare(b.PendingBytes, a.PendingBytes))
}
func (a connInfo) before(b connInfo) int { return cmp.Compare(a.ID, b.ID) }

// The deepest queues (waiting and in flight), then those with the most
// consumers and traffic, first; listed by name.
func (a queueInfo) busier(b queueInfo) int {
	return cmp.Or(cmp.Compare(b.Depth+b.Unacked, a.Depth+a.Unacked), cmp.Compare(b.Consumers, a.Consumers),
		cmp.Compare(b.Enqueued, a.Enqueued))
}
func (a queueInfo) before(b queueInfo) int { return cmp.Compare(a.Name, b.Name) }

// The topics with the most subscribers first; listed by name.
func (a topicInfo) busier(b topicInfo) int { return cmp.Compare(b.Subscribers, a.Subscribers) }
func (a topicInfo) before(b topicInfo) int { return cmp.Compare(a.Name, b.Name) }

func (s *Server) apiIndex(w http.ResponseWriter, r *http.Request) {
	endpoints := make([]string, len(apiRoutes))
	for i, rt := range apiRoutes {
		endpoints[i] = rt.pattern
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": Version, "endpoints": endpoints})
}

// apiList is the handler of a list endpoint: {"count": the total, key:
// the busiest ?limit= of the rows list reads}.
func apiList[T ranked[T]](key string, list func(*Server) []T) func(*Server, http.ResponseWriter, *http.Request) {
	return func(s *Server, w http.ResponseWriter, r *http.Request) {
		limit, ok := apiLimit(w, r)
		if !ok {
			return
		}
		all := list(s)
		writeJSON(w, http.StatusOK, map[string]any{"count": len(all), key: busiest(all, limit)})
	}
}

// apiConn finds the connection of the request's {id}, or answers 400 or
// 404.
func (s *Server) apiConn(w http.ResponseWriter, r *http.Request) *conn {
	v := r.PathValue("id")
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		apiError(w, http.StatusBadRequest, "connection id: want a number, got "+strconv.Quote(v))
		return nil
	}
	c := s.connByID(id)
	if c == nil {
		apiError(w, http.StatusNotFound, "no open connection "+v)
	}
	return c
}

func (s *Server) apiConnection(w http.ResponseWriter, r *http.Request) {
	if c := s.apiConn(w, r); c != nil {
		writeJSON(w, http.StatusOK, c.info(true))
	}
}

// adminCloseMessage is the ERROR message a client closed through the API
// receives.
const adminCloseMessage = "connection closed by an administrator"

func (s *Server) apiCloseConnection(w http.ResponseWriter, r *http.Request) {
	c := s.apiConn(w, r)
	if c == nil {
		return
	}
	info := c.info(false)
	s.log.Info("closing a connection for an administrator", "conn", c.id, "peer", c.remote,
		"login", info.Login, "by", httpLogin(r), "from", r.RemoteAddr)
	c.closeWithError(&clientError{kind: kindOther, reason: AdminClosed, msg: adminCloseMessage}, "")
	writeJSON(w, http.StatusOK, map[string]any{"closed": c.id, "peer": info.Peer, "login": info.Login})
}

func (s *Server) apiQueue(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	qi, ok := s.router.queueInfoOf(name)
	if !ok {
		apiError(w, http.StatusNotFound, "no queue "+strconv.Quote(name))
		return
	}
	writeJSON(w, http.StatusOK, qi)
}

// apiQueueResult answers a purge or a delete.
type apiQueueResult struct {
	Queue   string `json:"queue"`
	Purged  int    `json:"purged"`
	Deleted bool   `json:"deleted,omitempty"`
}

// apiQueueAction is the handler that purges or deletes (act) the queue the
// path names, logs it as done ("purged", "deleted") and answers with the
// messages removed.
func apiQueueAction(done string, act func(*router, string) (int, error)) func(*Server, http.ResponseWriter, *http.Request) {
	return func(s *Server, w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		n, err := act(s.router, name)
		if s.queueActionFailed(w, name, err) {
			return
		}
		s.log.Info("queue "+done+" by an administrator", "queue", name, "messages", n, "by", httpLogin(r), "from", r.RemoteAddr)
		writeJSON(w, http.StatusOK, apiQueueResult{Queue: name, Purged: n, Deleted: done == "deleted"})
	}
}

// queueActionFailed answers a failed purge or delete (404, 409).
func (s *Server) queueActionFailed(w http.ResponseWriter, name string, err error) bool {
	var inUse queueInUseError
	switch {
	case err == nil:
		return false
	case errors.Is(err, errNoQueue):
		apiError(w, http.StatusNotFound, "no queue "+strconv.Quote(name))
	case errors.As(err, &inUse):
		apiError(w, http.StatusConflict, strconv.Quote(name)+": "+err.Error())
	default:
		apiError(w, http.StatusInternalServerError, err.Error())
	}
	return true
}

// apiErrorList is the answer of GET /api/errors.
type apiErrorList struct {
	Total    uint64        `json:"total"`    // ERRORs ever recorded
	Capacity int           `json:"capacity"` // how many are kept
	Errors   []recentError `json:"errors"`   // newest first
}

func (s *Server) apiErrors(w http.ResponseWriter, r *http.Request) {
	list, total := s.admin.errors.list()
	writeJSON(w, http.StatusOK, apiErrorList{Total: total, Capacity: recentErrorsCap, Errors: list})
}

// durableInfo is a durable topic subscription: the topic (or pattern) it
// keeps, the queue that keeps it (purge or delete it through /api/queues),
// and that queue's figures.
type durableInfo struct {
	Key   string `json:"key"`   // client-id and subscription name, or the RabbitMQ id
	Style string `json:"style"` // the headers that asked for it: activemq, artemis or rabbitmq
	Topic string `json:"topic"` // the destination (a name or a pattern) it records
	Queue string `json:"queue"`
	// Connected is set while its subscriber is subscribed.
	Connected bool `json:"connected"`
	// Stored is set when what it keeps survives a restart (--data-dir or
	// --nats); without, it lives as long as the process.
	Stored    bool `json:"stored"`
	Depth     int  `json:"depth"`     // messages waiting: kept while the subscriber is away
	Consumers int  `json:"consumers"` // 1 while the subscriber is connected
	Unacked   int  `json:"unacked"`
}

func (a durableInfo) busier(b durableInfo) int { return cmp.Compare(b.Depth, a.Depth) }
func (a durableInfo) before(b durableInfo) int { return cmp.Compare(a.Key, b.Key) }

// streamInfo is a stream: a /stream/ destination, or a topic that --record
// keeps, with what its log holds, who reads it and the limits it is kept
// by.
type streamInfo struct {
	Name     string `json:"name"`
	Recorded bool   `json:"recorded"` // a topic --record keeps (not under /stream/)
	Messages uint64 `json:"messages"`
	// Bytes the messages take in the store; with several streams the
	// store tells only their total apart, and each gets its share by
	// message count (bytes_exact false).
	Bytes      uint64     `json:"bytes"`
	BytesExact bool       `json:"bytes_exact"`
	FirstSeq   uint64     `json:"first_seq"` // the x-stream-offset of the oldest message kept
	LastSeq    uint64     `json:"last_seq"`
	FirstTime  *time.Time `json:"first_time,omitempty"`
	LastTime   *time.Time `json:"last_time,omitempty"`
	// Subscribers get the topic's live messages; readers are the
	// subscriptions that read its log (every /stream/ subscription, and
	// a topic subscription with x-stream-offset), replaying or caught up.
	Subscribers int `json:"subscribers"`
	Readers     int `json:"readers"`
	// The limits of the log every stream shares: the oldest messages go
	// first past either.
	MaxAgeSeconds float64 `json:"max_age_seconds"`
	MaxBytes      int64   `json:"max_bytes"`
}

// The streams with the most messages first; listed by name.
func (a streamInfo) busier(b streamInfo) int {
	return cmp.Or(cmp.Compare(b.Messages, a.Messages), cmp.Compare(b.Readers+b.Subscribers, a.Readers+a.Subscribers))
}
func (a streamInfo) before(b streamInfo) int { return cmp.Compare(a.Name, b.Name) }

// streamStats lists the streams that hold messages or have readers, in
// name order. Without a store that keeps streams the list is empty.
func (s *Server) streamStats() ([]streamInfo, error) {
	r := s.router
	st := r.streams()
	if st == nil {
		return []streamInfo{}, nil
	}
	byName := make(map[string]*streamInfo)
	get := func(name string) *streamInfo {
		si := byName[name]
		if si == nil {
			si = &streamInfo{Name: name, Recorded: !isStream(name)}
			byName[name] = si
		}
		return si
	}
	var limits store.StreamLimits
	if l, ok := st.(store.StreamLister); ok {
		list, lim, err := l.StreamList()
		if err != nil {
			return nil, err
		}
		limits = lim
		for _, x := range list {
			si := get(x.Dest)
			si.Messages, si.Bytes, si.BytesExact = x.Messages, x.Bytes, x.BytesExact
			si.FirstSeq, si.LastSeq = x.FirstSeq, x.LastSeq
			if !x.FirstTime.IsZero() {
				ft, lt := x.FirstTime.UTC(), x.LastTime.UTC()
				si.FirstTime, si.LastTime = &ft, &lt
			}
		}
	}
	// Who reads each: the subscriptions reading a log, from the
	// connections; the live subscribers of a recorded topic, from the
	// router.
	for _, c := range s.connList() {
		c.mu.Lock()
		subs := c.adm.subs
		c.mu.Unlock()
		for _, sub := range subs {
			if sub.follow != nil {
				get(sub.dest).Readers++
			}
		}
	}
	r.mu.RLock()
	for name, si := range byName {
		si.Subscribers = len(r.topics[name])
	}
	r.mu.RUnlock()
	out := make([]streamInfo, 0, len(byName))
	for _, si := range byName {
		si.MaxAgeSeconds, si.MaxBytes = limits.MaxAge.Seconds(), limits.MaxBytes
		out = append(out, *si)
	}
	slices.SortFunc(out, streamInfo.before)
	return out, nil
}

// apiStreams lists the streams.
func (s *Server) apiStreams(w http.ResponseWriter, r *http.Request) {
	limit, ok := apiLimit(w, r)
	if !ok {
		return
	}
	all, err := s.streamStats()
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, "store: cannot list the streams: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": len(all), "streams": busiest(all, limit)})
}

// apiStream answers one stream.
func (s *Server) apiStream(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	all, err := s.streamStats()
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, "store: cannot list the streams: "+err.Error())
		return
	}
	for _, si := range all {
		if si.Name == name {
			writeJSON(w, http.StatusOK, si)
			return
		}
	}
	apiError(w, http.StatusNotFound, "no stream "+strconv.Quote(name))
}
