package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
	"github.com/stompica/stompica/store/jetstream"
)

// apiDo sends one request to the broker's HTTP port (redirects not
// followed) and returns the response and its body.
func apiDo(t testing.TB, srv *Server, method, path string, setup ...func(*http.Request)) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+srv.Addr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range setup {
		f(req)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: waitTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, string(b)
}

// apiJSON sends a request that must answer want and decodes its JSON into
// v (when v is not nil).
func apiJSON(t testing.TB, srv *Server, method, path string, want int, v any, setup ...func(*http.Request)) {
	t.Helper()
	resp, body := apiDo(t, srv, method, path, setup...)
	code, h := resp.StatusCode, resp.Header
	if code != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, body)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, body)
		}
	}
}

// The answers of the list endpoints.
type (
	apiConnList struct {
		Count       int        `json:"count"`
		Connections []connInfo `json:"connections"`
	}
	apiQueueList struct {
		Count  int         `json:"count"`
		Queues []queueInfo `json:"queues"`
	}
	apiTopicList struct {
		Count  int         `json:"count"`
		Topics []topicInfo `json:"topics"`
	}
)

// apiQueuePath is the API path of a queue (its name escaped as one segment).
func apiQueuePath(name string) string { return "/api/queues/" + url.PathEscape(name) }

// apiConnOf returns the listed connection with login, failing when there
// is not exactly one.
func apiConnOf(t testing.TB, srv *Server, login string) connInfo {
	t.Helper()
	var list apiConnList
	apiJSON(t, srv, "GET", "/api/connections", 200, &list)
	var found []connInfo
	for _, c := range list.Connections {
		if c.Login == login {
			found = append(found, c)
		}
	}
	if len(found) != 1 || list.Count != len(list.Connections) {
		t.Fatalf("connections with login %q: %+v (count %d)", login, found, list.Count)
	}
	return found[0]
}

// apiWait polls cond (with one GET each time) until it holds.
func apiWait[T any](t *testing.T, srv *Server, path, what string, cond func(T) bool) T {
	t.Helper()
	var v T
	waitFor(t, what, func() bool {
		var fresh T
		apiJSON(t, srv, "GET", path, 200, &fresh)
		v = fresh
		return cond(v)
	})
	return v
}

// TestAPIConnections: a consumer holding three unacknowledged queue
// messages is listed with its login, transport, version, subscription and
// in-flight count, and in detail with each subscription.
func TestAPIConnections(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		cons := dial(t, srv, tr)
		cons.connect("1.2", "login", "carol")
		cons.subscribe("/queue/api-conn", "s1", "ack", "client-individual", "prefetch-count", "10")
		cons.subscribe("/topic/api-conn", "s2")
		pub := connected(t, srv, "tcp")
		for i := range 3 {
			pub.publish("/queue/api-conn", "m"+strconv.Itoa(i))
		}
		for i := range 3 {
			cons.expectMessage("m" + strconv.Itoa(i))
		}
		c := apiConnOf(t, srv, "carol")
		if c.Transport != tr || c.Version != "1.2" || c.Subscriptions != 2 || c.Unacked != 3 || c.TLS ||
			c.ConnectedAt == nil || c.Peer != cons.nc.LocalAddr().String() || c.ID == 0 {
			t.Errorf("listed as %+v", c)
		}
		if time.Since(*c.ConnectedAt) > time.Minute {
			t.Errorf("connected_at %v", c.ConnectedAt)
		}
		var one connInfo
		apiJSON(t, srv, "GET", "/api/connections/"+strconv.FormatUint(c.ID, 10), 200, &one)
		want := []subInfo{
			{ID: "s1", Destination: "/queue/api-conn", Ack: "client-individual", Prefetch: 10, Unacked: 3},
			{ID: "s2", Destination: "/topic/api-conn", Ack: "auto"},
		}
		if len(one.SubscriptionList) != 2 || one.SubscriptionList[0] != want[0] || one.SubscriptionList[1] != want[1] {
			t.Errorf("subscriptions %+v, want %+v", one.SubscriptionList, want)
		}
		cons.request(frame.UNSUBSCRIBE, "", "id", "s2")
		apiWait(t, srv, "/api/connections/"+strconv.FormatUint(c.ID, 10), "one subscription left",
			func(ci connInfo) bool { return ci.Subscriptions == 1 && len(ci.SubscriptionList) == 1 })

		for path, want := range map[string]int{
			"/api/connections/999999": 404, "/api/connections/x": 400, "/api/connections?limit=-1": 400,
		} {
			var e apiErrorBody
			apiJSON(t, srv, "GET", path, want, &e)
			if e.Error == "" {
				t.Errorf("GET %s: no error message", path)
			}
		}
	})
}

// TestAPICloseConnection: DELETE (or POST .../close) closes a connection:
// the client gets an ERROR naming the administrator and the close; its
// unacknowledged messages go back to the queue; the recent errors list it.
func TestAPICloseConnection(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		for i, how := range []string{"DELETE", "POST"} {
			login := "victim" + strconv.Itoa(i)
			cons := dial(t, srv, tr)
			cons.connect("1.2", "login", login)
			queue := "/queue/api-close-" + strconv.Itoa(i)
			cons.subscribe(queue, "s", "ack", "client")
			pub := connected(t, srv, "tcp")
			pub.publish(queue, "held")
			cons.expectMessage("held")
			c := apiConnOf(t, srv, login)
			path := "/api/connections/" + strconv.FormatUint(c.ID, 10)
			if how == "POST" {
				path += "/close"
			}
			var res map[string]any
			apiJSON(t, srv, how, path, 200, &res)
			if res["closed"] != float64(c.ID) || res["login"] != login {
				t.Errorf("%s %s: %v", how, path, res)
			}
			if e := cons.expectError(adminCloseMessage); e == nil {
				t.Fatal("no ERROR")
			}
			cons.expectClosed()
			q := apiWait(t, srv, apiQueuePath(queue), "the message back in the queue",
				func(q queueInfo) bool { return q.Depth == 1 && q.Consumers == 0 })
			if q.Unacked != 0 || q.Redelivered != 1 {
				t.Errorf("queue after the close: %+v", q)
			}
			// The connection leaves the list once its close is done (the
			// queue may see it go a moment before).
			getPath := "/api/connections/" + strconv.FormatUint(c.ID, 10)
			waitFor(t, "the closed connection to leave the list", func() bool {
				resp, _ := apiDo(t, srv, "GET", getPath)
				return resp.StatusCode == 404
			})
			apiJSON(t, srv, how, path, 404, nil)

			var errs apiErrorList
			apiJSON(t, srv, "GET", "/api/errors", 200, &errs)
			if len(errs.Errors) == 0 || errs.Capacity != recentErrorsCap || errs.Total < uint64(i+1) {
				t.Fatalf("recent errors: %+v", errs)
			}
			e := errs.Errors[0]
			if e.Message != adminCloseMessage || e.Login != login || e.Conn != c.ID || e.Peer != c.Peer ||
				e.Transport != tr || time.Since(e.Time) > time.Minute {
				t.Errorf("newest recent error %+v", e)
			}
		}
	})
}

// TestAPIQueues: the queue figures (depth, consumers, unacked,
// enqueued, delivered, redelivered) for a queue with waiting and in-flight
// messages and one NACKed redelivery; one queue by its escaped name; the
// original's #name queues; the limit.
func TestAPIQueues(t *testing.T) {
	srv := startServer(t, nil)
	pub := connected(t, srv, "tcp")
	cons := connected(t, srv, "ws")
	cons.subscribe("/queue/api-q", "s", "ack", "client-individual", "prefetch-count", "2")
	for i := range 5 {
		pub.publish("/queue/api-q", "m"+strconv.Itoa(i))
	}
	cons.expectMessage("m0")
	m1 := cons.expectMessage("m1")
	cons.sendFrame(frame.NACK, "", "id", ackID(t, m1))
	if m := cons.expectMessage("m1"); m.GetString("redelivered") != "true" {
		t.Fatalf("redelivery %s", fmtFrame(m))
	}
	pub.publish("#api-jobs", "j")
	pub.publish("/queue/api-idle", "i1")
	pub.publish("/queue/api-idle", "i2")

	want := queueInfo{Name: "/queue/api-q", Depth: 3, Consumers: 1, Unacked: 2, Enqueued: 5, Delivered: 3, Redelivered: 1}
	q := apiWait(t, srv, apiQueuePath("/queue/api-q"), "the queue's figures", func(q queueInfo) bool { return q == want })
	if q != want {
		t.Fatalf("queue %+v", q)
	}
	var list apiQueueList
	apiJSON(t, srv, "GET", "/api/queues", 200, &list)
	names := []string{}
	for _, q := range list.Queues {
		names = append(names, q.Name)
	}
	if got := strings.Join(names, " "); got != "#api-jobs /queue/api-idle /queue/api-q" || list.Count != 3 || list.Queues[2] != want {
		t.Errorf("queues %s (count %d): %+v", got, list.Count, list.Queues)
	}
	var jobs queueInfo
	apiJSON(t, srv, "GET", "/api/queues/%23api-jobs", 200, &jobs)
	if jobs.Depth != 1 || jobs.Enqueued != 1 {
		t.Errorf("#api-jobs: %+v", jobs)
	}
	// The deepest (waiting plus in flight) first.
	apiJSON(t, srv, "GET", "/api/queues?limit=2", 200, &list)
	if list.Count != 3 || len(list.Queues) != 2 || list.Queues[0].Name != "/queue/api-idle" || list.Queues[1].Name != "/queue/api-q" {
		t.Errorf("?limit=2: %+v", list)
	}
	apiJSON(t, srv, "GET", apiQueuePath("/queue/none"), 404, nil)
	apiJSON(t, srv, "GET", "/api/queues?limit=x", 400, nil)

	// The same figures in /metrics, /console/api and DIAG.
	metricsExpect(t, srv, map[string]float64{
		`stompica_queue_unacked{queue="/queue/api-q"}`:           2,
		`stompica_queue_redelivered_total{queue="/queue/api-q"}`: 1,
		`stompica_queue_depth{queue="/queue/api-q"}`:             3,
	})
	v := consoleGetJSON(t, srv)
	if row := consoleRow(t, v, "queues", "/queue/api-q"); row["unacked"] != 2.0 || row["redelivered"] != 1.0 {
		t.Errorf("/console/api: %v", row)
	}
	if consoleField(t, v, "unacked") != 2 || consoleField(t, v, "queued") != 6 {
		t.Errorf("/console/api unacked %v queued %v, want 2 and 6", v["unacked"], v["queued"])
	}
	pub.sendFrame(frame.DIAG, "subs")
	diag := diagAnswer(t, pub)
	qs, _ := diag["queues"].([]any)
	found := false
	for _, e := range qs {
		if m, _ := e.(map[string]any); m["name"] == "/queue/api-q" {
			found = m["unacked"] == 2.0 && m["redelivered"] == 1.0
		}
	}
	if !found {
		t.Errorf("DIAG subs queues: %v", qs)
	}
}

// TestAPIPurgeQueue: a purge drops the waiting messages (and their share
// of the memory budget) but not those in flight; an unknown queue is 404.
func TestAPIPurgeQueue(t *testing.T) {
	srv := startServer(t, nil)
	pub := connected(t, srv, "tcp")
	cons := connected(t, srv, "tcp")
	cons.subscribe("/queue/api-purge", "s", "ack", "client", "prefetch-count", "1")
	for i := range 4 {
		pub.publish("/queue/api-purge", "m"+strconv.Itoa(i))
	}
	m0 := cons.expectMessage("m0")
	apiWait(t, srv, apiQueuePath("/queue/api-purge"), "3 waiting, 1 in flight",
		func(q queueInfo) bool { return q.Depth == 3 && q.Unacked == 1 })
	var res apiQueueResult
	apiJSON(t, srv, "POST", apiQueuePath("/queue/api-purge")+"/purge", 200, &res)
	if res != (apiQueueResult{Queue: "/queue/api-purge", Purged: 3}) {
		t.Errorf("purge: %+v", res)
	}
	var q queueInfo
	apiJSON(t, srv, "GET", apiQueuePath("/queue/api-purge"), 200, &q)
	if q.Depth != 0 || q.Unacked != 1 || q.Consumers != 1 {
		t.Errorf("after the purge: %+v", q)
	}
	if n, b := srv.input.msgs.Load(), srv.input.bytes.Load(); n != 0 || b != 0 {
		t.Errorf("memory budget after the purge: %d messages, %d bytes, want 0", n, b)
	}
	// The consumer ACKs what it had and gets nothing more; new messages flow.
	cons.request(frame.ACK, "", "id", ackID(t, m0))
	pub.publish("/queue/api-purge", "after")
	cons.expectMessage("after")
	apiJSON(t, srv, "POST", apiQueuePath("/queue/api-none")+"/purge", 404, nil)
}

// TestAPIDeleteQueue: a queue without consumers is deleted with its
// messages; one with consumers is not (409); a later SEND starts a new
// queue.
func TestAPIDeleteQueue(t *testing.T) {
	srv := startServer(t, nil)
	pub := connected(t, srv, "tcp")
	pub.publish("/queue/api-del", "a")
	pub.publish("/queue/api-del", "b")
	cons := connected(t, srv, "tcp")
	cons.subscribe("/queue/api-busy", "s")

	var e apiErrorBody
	apiJSON(t, srv, "DELETE", apiQueuePath("/queue/api-busy"), 409, &e)
	if !strings.Contains(e.Error, "1 consumer") {
		t.Errorf("409: %q", e.Error)
	}
	var res apiQueueResult
	apiJSON(t, srv, "DELETE", apiQueuePath("/queue/api-del"), 200, &res)
	if res != (apiQueueResult{Queue: "/queue/api-del", Purged: 2, Deleted: true}) {
		t.Errorf("delete: %+v", res)
	}
	apiJSON(t, srv, "GET", apiQueuePath("/queue/api-del"), 404, nil)
	apiJSON(t, srv, "DELETE", apiQueuePath("/queue/api-del"), 404, nil)
	if n := srv.input.msgs.Load(); n != 0 {
		t.Errorf("%d messages still counted after the delete", n)
	}
	pub.publish("/queue/api-del", "c")
	var q queueInfo
	apiJSON(t, srv, "GET", apiQueuePath("/queue/api-del"), 200, &q)
	if q.Depth != 1 || q.Enqueued != 1 {
		t.Errorf("the new queue: %+v", q)
	}
	cons.subscribeNoWait("/queue/api-del", "s2")
	cons.expectMessage("c")
}

// TestAPITopicsAndIndex: topics with their subscriber counts; the index;
// unknown paths and methods.
func TestAPITopicsAndIndex(t *testing.T) {
	srv := startServer(t, nil)
	a := connected(t, srv, "tcp")
	b := connected(t, srv, "ws")
	a.subscribe("/topic/api-t", "1")
	b.subscribe("/topic/api-t", "1")
	b.subscribe("/topic/api-u", "2")
	var list apiTopicList
	apiJSON(t, srv, "GET", "/api/topics", 200, &list)
	if list.Count != 2 || len(list.Topics) != 2 || list.Topics[0] != (topicInfo{"/topic/api-t", 2}) ||
		list.Topics[1] != (topicInfo{"/topic/api-u", 1}) {
		t.Errorf("topics %+v", list)
	}
	apiJSON(t, srv, "GET", "/api/topics?limit=1", 200, &list)
	if list.Count != 2 || len(list.Topics) != 1 || list.Topics[0].Name != "/topic/api-t" {
		t.Errorf("topics ?limit=1: %+v", list)
	}
	var index struct {
		Version   string   `json:"version"`
		Endpoints []string `json:"endpoints"`
	}
	apiJSON(t, srv, "GET", "/api/", 200, &index)
	wantEndpoints := []string{
		"GET /api/overview",
		"GET /api/connections", "GET /api/connections/{id}",
		"DELETE /api/connections/{id}", "POST /api/connections/{id}/close",
		"GET /api/queues", "GET /api/queues/{name}",
		"POST /api/queues/{name}/purge", "DELETE /api/queues/{name}",
		"GET /api/topics",
		"GET /api/errors",
		"GET /api/durables",
		"GET /api/streams", "GET /api/streams/{name}",
	}
	if index.Version != Version || !slices.Equal(index.Endpoints, wantEndpoints) {
		t.Errorf("index %+v, want endpoints %q", index, wantEndpoints)
	}
	apiJSON(t, srv, "GET", "/api/nothing", 404, nil)
	if resp, _ := apiDo(t, srv, "PUT", "/api/queues"); resp.StatusCode != 405 || !strings.Contains(resp.Header.Get("Allow"), "GET") {
		t.Errorf("PUT /api/queues: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	var ov consoleData
	apiJSON(t, srv, "GET", "/api/overview", 200, &ov)
	if ov.Version != Version || ov.Connections.Total != 2 || ov.TopicCount != 2 {
		t.Errorf("overview %+v", ov)
	}
}

// TestAPICrossOrigin: a browser request that changes something must come
// from the broker's own origin.
func TestAPICrossOrigin(t *testing.T) {
	srv := startServer(t, nil)
	pub := connected(t, srv, "tcp")
	pub.publish("/queue/api-xo", "x")
	path := apiQueuePath("/queue/api-xo") + "/purge"
	for _, tc := range []struct {
		origin, site string
		want         int
	}{
		{"http://evil.example", "", 403},
		{"null", "", 403},
		{"", "cross-site", 403},
		{"http://" + srv.Addr().String(), "same-origin", 200},
		{"", "", 200},
	} {
		apiJSON(t, srv, "POST", path, tc.want, nil, func(r *http.Request) {
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.site != "" {
				r.Header.Set("Sec-Fetch-Site", tc.site)
			}
		})
	}
	// Reads are not restricted.
	apiJSON(t, srv, "GET", "/api/queues", 200, nil, func(r *http.Request) { r.Header.Set("Origin", "http://evil.example") })
}

// TestAPIAuth: with a users file and an ACL every endpoint answers 401
// (with a challenge) to a stranger and to a wrong password, 403 to a user
// without admin, and serves the admin; /healthz stays open; /metrics opens
// only with MetricsPublic.
func TestAPIAuth(t *testing.T) {
	authFastFail(t, 0)
	users := authUsers(t)
	acl := authWriteFile(t, "acl", "ops admin #\nalice read,write #\n")
	for _, public := range []bool{false, true} {
		t.Run("metrics-public="+strconv.FormatBool(public), func(t *testing.T) { apiAuthChecks(t, users, acl, public) })
	}
}

func apiAuthChecks(t *testing.T, users, acl string, public bool) {
	srv := startServer(t, func(o *Options) {
		o.UsersFile, o.ACLFile, o.MetricsPublic = users, acl, public
	})
	as := func(login, pass string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(login, pass) }
	}
	for _, ep := range []struct{ method, path string }{
		{"GET", "/api/"}, {"GET", "/api/overview"}, {"GET", "/api/connections"}, {"GET", "/api/connections/1"},
		{"DELETE", "/api/connections/999"}, {"POST", "/api/connections/999/close"},
		{"GET", "/api/queues"}, {"GET", "/api/queues/%2Fqueue%2Fx"}, {"POST", "/api/queues/%2Fqueue%2Fx/purge"},
		{"DELETE", "/api/queues/%2Fqueue%2Fx"}, {"GET", "/api/topics"}, {"GET", "/api/errors"},
		{"GET", "/console"}, {"GET", "/console/api"}, {"GET", "/metrics"}, {"GET", "/"},
	} {
		open := public && ep.path == "/metrics"
		for _, tc := range []struct {
			who   string
			setup []func(*http.Request)
			want  int
		}{
			{"a stranger", nil, 401},
			{"a wrong password", []func(*http.Request){as("ops", "nope")}, 401},
			{"alice (no admin)", []func(*http.Request){as("alice", "wonderland")}, 403},
		} {
			resp, body := apiDo(t, srv, ep.method, ep.path, tc.setup...)
			code, h := resp.StatusCode, resp.Header
			switch {
			case open:
				if code != 200 {
					t.Errorf("public metrics, %s: %d", tc.who, code)
				}
			case code != tc.want:
				t.Errorf("%s %s as %s: %d, want %d: %s", ep.method, ep.path, tc.who, code, tc.want, body)
			case code == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), `Basic realm="stompica"`):
				t.Errorf("%s %s: 401 without a challenge", ep.method, ep.path)
			case strings.HasPrefix(ep.path, "/api/") && !strings.Contains(body, `"error"`):
				t.Errorf("%s %s: %d not in JSON: %s", ep.method, ep.path, code, body)
			}
		}
		resp, body := apiDo(t, srv, ep.method, ep.path, as("ops", "secret"))
		if code := resp.StatusCode; code == 401 || code == 403 || code >= 500 {
			t.Errorf("%s %s as ops: %d %s", ep.method, ep.path, code, body)
		}
	}
	if resp, body := apiDo(t, srv, "GET", "/healthz"); resp.StatusCode != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q", resp.StatusCode, body)
	}
	// A STOMP client logs in as before; the admin closes it.
	c := dial(t, srv, "tcp")
	c.connect("1.2", "login", "alice", "passcode", "wonderland")
	var list apiConnList
	apiJSON(t, srv, "GET", "/api/connections", 200, &list, as("ops", "secret"))
	if list.Count != 1 || list.Connections[0].Login != "alice" {
		t.Fatalf("connections %+v", list)
	}
	apiJSON(t, srv, "DELETE", "/api/connections/"+strconv.FormatUint(list.Connections[0].ID, 10), 403, nil,
		as("alice", "wonderland"))
	apiJSON(t, srv, "DELETE", "/api/connections/"+strconv.FormatUint(list.Connections[0].ID, 10), 200, nil,
		as("ops", "secret"))
	c.expectError(adminCloseMessage)
}

// TestErrorRing: the ring keeps the last recentErrorsCap errors, newest
// first, and counts them all; long messages are cut.
func TestErrorRing(t *testing.T) {
	var r errorRing
	if list, total := r.list(); len(list) != 0 || total != 0 {
		t.Fatalf("empty ring: %v %d", list, total)
	}
	for i := range recentErrorsCap + 7 {
		r.add(recentError{Conn: uint64(i)})
	}
	list, total := r.list()
	if total != recentErrorsCap+7 || len(list) != recentErrorsCap {
		t.Fatalf("%d kept, %d total", len(list), total)
	}
	for i, e := range list {
		if want := uint64(recentErrorsCap + 6 - i); e.Conn != want {
			t.Fatalf("list[%d] is error %d, want %d", i, e.Conn, want)
		}
	}

	srv := startServer(t, nil)
	c := dial(t, srv, "tcp")
	c.send("CONNECT\naccept-version:1.2\nlogin:eve\n\n\x00SUBSCRIBE\nid:1\n\n\x00")
	c.expect(frame.CONNECTED)
	c.expectError("no destination header")
	waitFor(t, "the error recorded", func() bool { l, _ := srv.admin.errors.list(); return len(l) == 1 })
	l, _ := srv.admin.errors.list()
	if e := l[0]; e.Login != "eve" || !strings.Contains(e.Message, "destination") || e.Transport != "tcp" {
		t.Errorf("recorded %+v", e)
	}
	long := &conn{s: srv, remote: "x", nc: nil}
	long.mu.Lock()
	long.recordErrorLocked(strings.Repeat("x", 2*recentErrorMax))
	long.mu.Unlock()
	if l, _ := srv.admin.errors.list(); len(l[0].Message) != recentErrorMax {
		t.Errorf("a long message is kept at %d bytes, want %d", len(l[0].Message), recentErrorMax)
	}
}

// TestSnapshotOneSource: DIAG, /console/api, /metrics and /api/ report the
// same figures for the same state.
func TestSnapshotOneSource(t *testing.T) {
	srv := startServer(t, nil)
	a := connected(t, srv, "tcp")
	b := connected(t, srv, "ws")
	a.subscribe("/topic/snap", "1")
	b.subscribe("/queue/snap", "1", "ack", "client")
	a.publish("/queue/snap", "x")
	b.expectMessage("x")

	a.sendFrame(frame.DIAG, "session")
	diag := diagAnswer(t, a)
	v := consoleGetJSON(t, srv)
	var ov consoleData
	apiJSON(t, srv, "GET", "/api/overview", 200, &ov)
	var conns apiConnList
	apiJSON(t, srv, "GET", "/api/connections", 200, &conns)
	metricsExpect(t, srv, map[string]float64{
		`stompica_connections{transport="tcp"}`: 1, `stompica_connections{transport="ws"}`: 1,
		`stompica_subscriptions`: 2, `stompica_connected`: 2,
		`stompica_queue_unacked{queue="/queue/snap"}`: 1,
	})
	if diag["clients"] != 2.0 || diag["websockets"] != 1.0 || diag["subscriptions"] != 2.0 || diag["connected"] != 2.0 {
		t.Errorf("DIAG session %v", diag)
	}
	if consoleField(t, v, "connections.total") != 2 || consoleField(t, v, "subscriptions") != 2 ||
		consoleField(t, v, "unacked") != 1 {
		t.Errorf("/console/api %v", v)
	}
	if ov.Connections.Total != 2 || ov.Unacked != 1 || conns.Count != 2 {
		t.Errorf("/api/overview %+v, /api/connections count %d", ov, conns.Count)
	}
}

// apiStreamList is the answer of GET /api/streams.
type apiStreamList struct {
	Count   int          `json:"count"`
	Streams []streamInfo `json:"streams"`
}

// TestAPIStreams: /api/streams lists every /stream/ destination and
// recorded topic with its messages, bytes, first and last offset and time,
// live subscribers and log readers, and the limits it is kept by.
func TestAPIStreams(t *testing.T) {
	var list apiStreamList
	srv := startServer(t, func(o *Options) {
		o.Store = openJetStream(t, "", func(o *jetstream.Options) {
			o.StreamMaxAge = time.Hour
			o.StreamMaxBytes = 1 << 20
		})
		o.Record = []string{"/topic/prices.>"}
	})
	apiJSON(t, srv, "GET", "/api/streams", 200, &list)
	if list.Count != 0 || list.Streams == nil || len(list.Streams) != 0 {
		t.Fatalf("no stream yet: %+v", list)
	}
	body := strings.Repeat("s", 100)
	before := time.Now().Add(-time.Second) // JetStream's clock, not ours: a margin
	pub := connected(t, srv, "tcp")
	for range 3 {
		pub.publish("/stream/a", body)
	}
	var a streamInfo
	apiJSON(t, srv, "GET", "/api/streams/"+url.PathEscape("/stream/a"), 200, &a)
	after := time.Now().Add(time.Second)
	if a.Name != "/stream/a" || a.Recorded || a.Messages != 3 || a.FirstSeq != 1 || a.LastSeq != 3 ||
		!a.BytesExact || a.Bytes < 3*uint64(len(body)) || a.Bytes > 3*uint64(len(body)+1024) ||
		a.MaxAgeSeconds != 3600 || a.MaxBytes != 1<<20 || a.Readers != 0 || a.Subscribers != 0 {
		t.Fatalf("/stream/a: %+v", a)
	}
	if a.FirstTime == nil || a.LastTime == nil || a.FirstTime.Before(before) || a.LastTime.Before(*a.FirstTime) ||
		a.LastTime.After(after) {
		t.Fatalf("/stream/a times %v..%v, want within %v..%v", a.FirstTime, a.LastTime, before, after)
	}
	exactBytes := a.Bytes

	pub.publish("/topic/prices.eur", body)
	pub.publish("/topic/prices.eur", body)
	pub.publish("/topic/other", "not recorded")
	reader := connected(t, srv, "ws")
	reader.subscribeNoWait("/stream/a", "r", "x-stream-offset", "first")
	for n := uint64(1); n <= 3; n++ {
		reader.expectOffset(body, n)
	}
	live := connected(t, srv, "tcp")
	live.subscribe("/topic/prices.eur", "l")
	replay := connected(t, srv, "tcp")
	replay.subscribeNoWait("/topic/prices.eur", "p", "x-stream-offset", "first")
	replay.expectOffset(body, 4)
	replay.expectOffset(body, 5)
	reader.sync()
	replay.sync()

	apiJSON(t, srv, "GET", "/api/streams", 200, &list)
	if list.Count != 2 || len(list.Streams) != 2 {
		t.Fatalf("two streams: %+v", list)
	}
	a, eur := list.Streams[0], list.Streams[1]
	if a.Name != "/stream/a" || a.Messages != 3 || a.FirstSeq != 1 || a.LastSeq != 3 || a.Readers != 1 || a.Subscribers != 0 {
		t.Errorf("/stream/a: %+v", a)
	}
	if eur.Name != "/topic/prices.eur" || !eur.Recorded || eur.Messages != 2 || eur.FirstSeq != 4 || eur.LastSeq != 5 ||
		eur.Readers != 1 || eur.Subscribers != 1 || eur.MaxBytes != 1<<20 {
		t.Errorf("/topic/prices.eur: %+v", eur)
	}
	// Several streams share one log: each gets its share of its bytes by
	// message count (3 to 2 here), said to be a share.
	if a.BytesExact || eur.BytesExact || a.Bytes < exactBytes*9/10 || a.Bytes > exactBytes*11/10 ||
		a.Bytes*2 > eur.Bytes*3+3 || a.Bytes*2+3 < eur.Bytes*3 {
		t.Errorf("bytes: /stream/a %d (alone %d), /topic/prices.eur %d", a.Bytes, exactBytes, eur.Bytes)
	}
	apiJSON(t, srv, "GET", "/api/streams?limit=1", 200, &list)
	if list.Count != 2 || len(list.Streams) != 1 || list.Streams[0].Name != "/stream/a" {
		t.Errorf("?limit=1 (the most messages): %+v", list)
	}
	apiJSON(t, srv, "GET", "/api/streams/"+url.PathEscape("/topic/other"), 404, nil)

	// A reader that goes is no longer counted.
	reader.close()
	apiWait(t, srv, "/api/streams/"+url.PathEscape("/stream/a"), "the reader to go", func(s streamInfo) bool { return s.Readers == 0 })
}

// TestAPIStreamsWithoutStore: without a store that keeps streams there
// are none.
func TestAPIStreamsWithoutStore(t *testing.T) {
	var list apiStreamList
	srv := startServer(t, nil)
	apiJSON(t, srv, "GET", "/api/streams", 200, &list)
	if list.Count != 0 || list.Streams == nil || len(list.Streams) != 0 {
		t.Errorf("memory store: %+v", list)
	}
}

// TestAPIDurables: /api/durables lists every durable subscription with its
// style, destination, whether its subscriber is connected and the messages
// waiting for it; /api/queues marks the queues whose messages are stored.
func TestAPIDurables(t *testing.T) {
	for _, stored := range []bool{true, false} {
		t.Run(map[bool]string{true: "jetstream", false: "memory"}[stored], func(t *testing.T) {
			srv := startServer(t, func(o *Options) {
				if stored {
					o.Store = openJetStream(t, "")
				}
			})
			here := dial(t, srv, "ws")
			here.connect("1.2", "client-id", "app")
			here.subscribe("/topic/dur", "s1", "activemq.subscriptionName", "here")
			away := connected(t, srv, "tcp")
			away.subscribe("/topic/dur.>", "r1", "durable", "true", "auto-delete", "false")
			away.close()
			waitFor(t, "the away subscriber to go", func() bool {
				q, _ := srv.router.queueInfoOf(durablePrefix + "rabbitmq/_r1")
				return q.Consumers == 0
			})
			pub := dial(t, srv, "tcp")
			pub.connect("1.2", "login", "pub")
			for range 3 {
				pub.publish("/topic/dur", "to here")
			}
			for range 4 {
				pub.publish("/topic/dur.x", "to away")
			}
			for range 3 {
				here.expectMessage("to here")
			}
			pub.publish("/queue/plain", "p")
			pub.subscribe("/temp-queue/t", "t")
			pub.sendFrame(frame.SEND, "to me", "destination", "/temp-queue/t")
			pub.expectMessage("to me")

			want := []durableInfo{
				{Key: "activemq/_app/_here", Style: "activemq", Topic: "/topic/dur", Queue: durablePrefix + "activemq/_app/_here",
					Connected: true, Stored: stored, Depth: 0, Consumers: 1},
				{Key: "rabbitmq/_r1", Style: "rabbitmq", Topic: "/topic/dur.>", Queue: durablePrefix + "rabbitmq/_r1",
					Connected: false, Stored: stored, Depth: 4, Consumers: 0},
			}
			var list struct {
				Count    int           `json:"count"`
				Durables []durableInfo `json:"durables"`
			}
			list = apiWait(t, srv, "/api/durables", "the durables' figures", func(l struct {
				Count    int           `json:"count"`
				Durables []durableInfo `json:"durables"`
			}) bool {
				return l.Count == 2 && len(l.Durables) == 2 && l.Durables[0] == want[0] && l.Durables[1] == want[1]
			})
			if list.Count != 2 {
				t.Fatalf("durables %+v", list)
			}
			apiJSON(t, srv, "GET", "/api/durables?limit=1", 200, &list)
			if list.Count != 2 || len(list.Durables) != 1 || list.Durables[0] != want[1] {
				t.Errorf("?limit=1 (the most waiting): %+v", list)
			}

			var queues apiQueueList
			apiJSON(t, srv, "GET", "/api/queues", 200, &queues)
			durable := map[string]bool{}
			for _, q := range queues.Queues {
				durable[q.Name] = q.Durable
			}
			tmp := replyPrefix + strconv.FormatUint(apiConnOf(t, srv, "pub").ID, 10) + ".t"
			if len(durable) != 4 || durable["/queue/plain"] != stored || durable[want[0].Queue] != stored ||
				durable[want[1].Queue] != stored || durable[tmp] {
				t.Errorf("durable marks %v (stored %v, temporary %s never)", durable, stored, tmp)
			}
		})
	}
}
