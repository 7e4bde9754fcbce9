package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"stompica/server"
)

// runCtl implements "stompica ctl": a small client of the broker's
// management API (/api/ on its HTTP port), as rabbitmqctl is for RabbitMQ.
func runCtl(args []string, env func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stompica ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defURL := env("STOMPICA_URL")
	if defURL == "" {
		port := server.DefaultPort
		if n, err := strconv.Atoi(env("STOMPICA_PORT")); err == nil && n > 0 {
			port = n
		}
		defURL = "http://" + net.JoinHostPort(checkHost(env("STOMPICA_HOST")), strconv.Itoa(port))
	}
	o := ctlOptions{}
	fs.StringVar(&o.url, "url", defURL, "the broker's HTTP address (env STOMPICA_URL)")
	fs.StringVar(&o.user, "user", env("STOMPICA_USER"), "login for HTTP basic auth (env STOMPICA_USER)")
	fs.StringVar(&o.password, "password", env("STOMPICA_PASSWORD"), "password (env STOMPICA_PASSWORD, which other users cannot see in the process list)")
	fs.StringVar(&o.ca, "ca", "", "CA certificate (PEM) to verify an https:// broker with")
	fs.BoolVar(&o.json, "json", false, "print the API's JSON instead of a table")
	fs.IntVar(&o.limit, "limit", 0, "list at most this many (the busiest), 0 = all")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the broker")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: stompica ctl [flags] COMMAND [ARG]

Asks a running broker's management API (/api/ on its HTTP port).

Commands:
  overview          the broker's figures
  connections       list the connections (id, peer, login, subscriptions, unacked, pending bytes)
  connection ID     one connection and its subscriptions
  close ID          close a connection (the client gets an ERROR, then the close)
  queues            list the queues (depth, consumers, unacked, enqueued, delivered, redelivered)
  queue NAME        one queue
  purge NAME        drop the messages waiting in a queue (not those in flight)
  delete NAME       delete a queue and its messages (refused while it has consumers)
  topics            list the topics with their subscriber counts
  errors            the last ERROR frames the broker sent (newest first)

Flags (before or after the command):
`)
		fs.PrintDefaults()
	}
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(pos) == 0 {
		fs.Usage()
		return 2
	}
	cmd, ok := ctlCommands[pos[0]]
	if !ok {
		fmt.Fprintf(stderr, "stompica ctl: unknown command %q (stompica ctl --help lists them)\n", pos[0])
		return 2
	}
	if len(pos)-1 != len(cmd.args) {
		if len(cmd.args) == 0 {
			fmt.Fprintf(stderr, "stompica ctl %s: takes no argument\n", pos[0])
		} else {
			fmt.Fprintf(stderr, "stompica ctl %s: want %s\n", pos[0], strings.Join(cmd.args, " "))
		}
		return 2
	}
	c, err := newCtlClient(o)
	if err != nil {
		fmt.Fprintln(stderr, "stompica ctl:", err)
		return 2
	}
	method, path := cmd.request(pos[1:])
	if cmd.list && o.limit > 0 {
		path += "?limit=" + strconv.Itoa(o.limit)
	}
	body, err := c.do(method, path)
	if err != nil {
		fmt.Fprintf(stderr, "stompica ctl %s: %v\n", pos[0], err)
		return 1
	}
	if o.json {
		var out bytes.Buffer
		if err := json.Indent(&out, body, "", "  "); err != nil {
			stdout.Write(body) //nolint:errcheck
			return 0
		}
		out.WriteByte('\n')
		stdout.Write(out.Bytes()) //nolint:errcheck
		return 0
	}
	if err := cmd.print(stdout, body); err != nil {
		fmt.Fprintf(stderr, "stompica ctl %s: reading the answer: %v\n", pos[0], err)
		return 1
	}
	return 0
}

type ctlOptions struct {
	url, user, password, ca string
	json                    bool
	limit                   int
	timeout                 time.Duration
}

// ctlCommand is one command of stompica ctl: its arguments, the request
// it makes and how it prints the answer.
type ctlCommand struct {
	args    []string
	list    bool // takes --limit
	request func(args []string) (method, path string)
	print   func(w io.Writer, body []byte) error
}

func get(path string) func([]string) (string, string) {
	return func([]string) (string, string) { return http.MethodGet, path }
}

var ctlCommands = map[string]ctlCommand{
	"overview":    {request: get("/api/overview"), print: printOverview},
	"connections": {list: true, request: get("/api/connections"), print: printConnections},
	"connection": {args: []string{"ID"}, print: printConnection,
		request: func(a []string) (string, string) { return http.MethodGet, "/api/connections/" + url.PathEscape(a[0]) }},
	"close": {args: []string{"ID"}, print: printClosed,
		request: func(a []string) (string, string) {
			return http.MethodDelete, "/api/connections/" + url.PathEscape(a[0])
		}},
	"queues": {list: true, request: get("/api/queues"), print: printQueues},
	"queue": {args: []string{"NAME"}, print: printQueue,
		request: func(a []string) (string, string) { return http.MethodGet, "/api/queues/" + url.PathEscape(a[0]) }},
	"purge": {args: []string{"NAME"}, print: printQueueAction,
		request: func(a []string) (string, string) {
			return http.MethodPost, "/api/queues/" + url.PathEscape(a[0]) + "/purge"
		}},
	"delete": {args: []string{"NAME"}, print: printQueueAction,
		request: func(a []string) (string, string) { return http.MethodDelete, "/api/queues/" + url.PathEscape(a[0]) }},
	"topics": {list: true, request: get("/api/topics"), print: printTopics},
	"errors": {request: get("/api/errors"), print: printErrors},
}

// ctlClient makes the API requests.
type ctlClient struct {
	base           *url.URL
	user, password string
	hc             *http.Client
	timeout        time.Duration
}

func newCtlClient(o ctlOptions) (*ctlClient, error) {
	u, err := url.Parse(strings.TrimRight(o.url, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want http://HOST:PORT or https://HOST:PORT", o.url)
	}
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if o.ca != "" {
		pem, err := os.ReadFile(o.ca)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate in it", o.ca)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &ctlClient{base: u, user: o.user, password: o.password, timeout: o.timeout,
		hc: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}}, nil
}

// do makes one request and returns the body of a 2xx answer; any other
// answer is an error carrying the API's message.
func (c *ctlClient) do(method, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, nil)
	if err != nil {
		return nil, err
	}
	if c.user != "" || c.password != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the broker at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", c.base, err)
	}
	if resp.StatusCode/100 == 2 {
		return body, nil
	}
	msg := strings.TrimSpace(string(body))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		if c.user == "" {
			msg += " (give --user and --password, or STOMPICA_USER and STOMPICA_PASSWORD)"
		}
	case http.StatusNotFound:
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			msg = "no management API at " + c.base.String() + " (is it a stompica broker?)"
		}
	}
	return nil, fmt.Errorf("%s: %s", resp.Status, msg)
}

// table prints rows under a header, aligned.
func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func num[T ~int | ~int64 | ~uint64](n T) string { return strconv.FormatInt(int64(n), 10) }

// shown notes a list cut by --limit.
func shown(w io.Writer, n, count int, what string) {
	if n < count {
		fmt.Fprintf(w, "(showing the %d busiest of %d %s)\n", n, count, what)
	}
}

// ctlConn is a connection as the API lists it.
type ctlConn struct {
	ID            uint64 `json:"id"`
	Peer          string `json:"peer"`
	Login         string `json:"login"`
	Transport     string `json:"transport"`
	TLS           bool   `json:"tls"`
	Version       string `json:"version"`
	ConnectedAt   string `json:"connected_at"`
	Subscriptions int    `json:"subscriptions"`
	PendingBytes  int    `json:"pending_bytes"`
	Unacked       int    `json:"unacked"`
	Held          int    `json:"held"`
	Subs          []struct {
		ID          string `json:"id"`
		Destination string `json:"destination"`
		Ack         string `json:"ack"`
		Prefetch    int    `json:"prefetch"`
		Unacked     int    `json:"unacked"`
		Held        int    `json:"held"`
	} `json:"subscription_list"`
}

func (c *ctlConn) transport() string {
	if c.TLS {
		return c.Transport + "+tls"
	}
	return c.Transport
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printConnections(w io.Writer, body []byte) error {
	var v struct {
		Count       int       `json:"count"`
		Connections []ctlConn `json:"connections"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	rows := make([][]string, 0, len(v.Connections))
	for _, c := range v.Connections {
		rows = append(rows, []string{num(c.ID), c.Peer, orDash(c.Login), c.transport(), orDash(c.Version),
			num(c.Subscriptions), num(c.Unacked), num(c.PendingBytes)})
	}
	if err := table(w, "ID\tPEER\tLOGIN\tTRANSPORT\tVERSION\tSUBS\tUNACKED\tPENDING", rows); err != nil {
		return err
	}
	shown(w, len(v.Connections), v.Count, "connections")
	return nil
}

func printConnection(w io.Writer, body []byte) error {
	var c ctlConn
	if err := json.Unmarshal(body, &c); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"id", num(c.ID)}, {"peer", c.Peer}, {"login", orDash(c.Login)}, {"transport", c.transport()},
		{"version", orDash(c.Version)}, {"connected at", orDash(c.ConnectedAt)},
		{"pending bytes", num(c.PendingBytes)}, {"unacked", num(c.Unacked)}, {"held", num(c.Held)},
		{"subscriptions", num(c.Subscriptions)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(c.Subs) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	rows := make([][]string, 0, len(c.Subs))
	for _, s := range c.Subs {
		rows = append(rows, []string{s.ID, s.Destination, s.Ack, num(s.Prefetch), num(s.Unacked), num(s.Held)})
	}
	return table(w, "SUBSCRIPTION\tDESTINATION\tACK\tPREFETCH\tUNACKED\tHELD", rows)
}

func printClosed(w io.Writer, body []byte) error {
	var v struct {
		Closed uint64 `json:"closed"`
		Peer   string `json:"peer"`
		Login  string `json:"login"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	who := v.Peer
	if v.Login != "" {
		who = v.Login + " at " + v.Peer
	}
	_, err := fmt.Fprintf(w, "closed connection %d (%s)\n", v.Closed, who)
	return err
}

// ctlQueue is a queue as the API lists it.
type ctlQueue struct {
	Name        string `json:"name"`
	Depth       int    `json:"depth"`
	Consumers   int    `json:"consumers"`
	Unacked     int    `json:"unacked"`
	Enqueued    uint64 `json:"enqueued"`
	Delivered   uint64 `json:"delivered"`
	Redelivered uint64 `json:"redelivered"`
}

const queueHeader = "QUEUE\tDEPTH\tCONSUMERS\tUNACKED\tENQUEUED\tDELIVERED\tREDELIVERED"

func (q ctlQueue) row() []string {
	return []string{q.Name, num(q.Depth), num(q.Consumers), num(q.Unacked), num(q.Enqueued), num(q.Delivered), num(q.Redelivered)}
}

func printQueues(w io.Writer, body []byte) error {
	var v struct {
		Count  int        `json:"count"`
		Queues []ctlQueue `json:"queues"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	rows := make([][]string, 0, len(v.Queues))
	for _, q := range v.Queues {
		rows = append(rows, q.row())
	}
	if err := table(w, queueHeader, rows); err != nil {
		return err
	}
	shown(w, len(v.Queues), v.Count, "queues")
	return nil
}

func printQueue(w io.Writer, body []byte) error {
	var q ctlQueue
	if err := json.Unmarshal(body, &q); err != nil {
		return err
	}
	return table(w, queueHeader, [][]string{q.row()})
}

func printQueueAction(w io.Writer, body []byte) error {
	var v struct {
		Queue   string `json:"queue"`
		Purged  int    `json:"purged"`
		Deleted bool   `json:"deleted"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	var err error
	if v.Deleted {
		_, err = fmt.Fprintf(w, "deleted %s (%d waiting messages dropped)\n", v.Queue, v.Purged)
	} else {
		_, err = fmt.Fprintf(w, "purged %d messages from %s\n", v.Purged, v.Queue)
	}
	return err
}

func printTopics(w io.Writer, body []byte) error {
	var v struct {
		Count  int `json:"count"`
		Topics []struct {
			Name        string `json:"name"`
			Subscribers int    `json:"subscribers"`
		} `json:"topics"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	rows := make([][]string, 0, len(v.Topics))
	for _, t := range v.Topics {
		rows = append(rows, []string{t.Name, num(t.Subscribers)})
	}
	if err := table(w, "TOPIC\tSUBSCRIBERS", rows); err != nil {
		return err
	}
	shown(w, len(v.Topics), v.Count, "topics")
	return nil
}

func printErrors(w io.Writer, body []byte) error {
	var v struct {
		Total  uint64 `json:"total"`
		Errors []struct {
			Time      time.Time `json:"time"`
			Conn      uint64    `json:"conn"`
			Peer      string    `json:"peer"`
			Login     string    `json:"login"`
			Transport string    `json:"transport"`
			Message   string    `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	rows := make([][]string, 0, len(v.Errors))
	for _, e := range v.Errors {
		rows = append(rows, []string{e.Time.Local().Format("2006-01-02 15:04:05"), num(e.Conn), e.Peer,
			orDash(e.Login), e.Transport, e.Message})
	}
	if err := table(w, "TIME\tCONN\tPEER\tLOGIN\tTRANSPORT\tMESSAGE", rows); err != nil {
		return err
	}
	if uint64(len(v.Errors)) < v.Total {
		fmt.Fprintf(w, "(the last %d of %d errors since the broker started)\n", len(v.Errors), v.Total)
	}
	return nil
}

func printOverview(w io.Writer, body []byte) error {
	var v struct {
		Version       string  `json:"version"`
		UptimeSeconds float64 `json:"uptime_seconds"`
		Connections   struct {
			TCP, WS, Total int
			PendingBytes   int `json:"pending_bytes"`
		} `json:"connections"`
		Connected     int  `json:"connected"`
		Subscriptions int  `json:"subscriptions"`
		Queued        int  `json:"queued"`
		Unacked       int  `json:"unacked"`
		Retained      int  `json:"retained"`
		InputPaused   bool `json:"input_paused"`
		QueueCount    int  `json:"queue_count"`
		TopicCount    int  `json:"topic_count"`
		Counters      struct {
			MessagesIn uint64 `json:"messages_in"`
			Deliveries uint64 `json:"deliveries"`
			BytesIn    uint64 `json:"bytes_in"`
			BytesOut   uint64 `json:"bytes_out"`
			Errors     uint64 `json:"errors"`
		} `json:"counters"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"version", v.Version},
		{"uptime", (time.Duration(v.UptimeSeconds) * time.Second).String()},
		{"connections", fmt.Sprintf("%d (tcp %d, ws %d), %d past CONNECT", v.Connections.Total, v.Connections.TCP, v.Connections.WS, v.Connected)},
		{"pending bytes", num(v.Connections.PendingBytes)},
		{"subscriptions", num(v.Subscriptions)},
		{"queues", fmt.Sprintf("%d: %d messages waiting, %d unacked", v.QueueCount, v.Queued, v.Unacked)},
		{"topics", num(v.TopicCount)},
		{"retained (TTL)", num(v.Retained)},
		{"publishers paused", strconv.FormatBool(v.InputPaused)},
		{"messages in", num(v.Counters.MessagesIn)},
		{"deliveries", num(v.Counters.Deliveries)},
		{"bytes in / out", num(v.Counters.BytesIn) + " / " + num(v.Counters.BytesOut)},
		{"errors", num(v.Counters.Errors)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	return tw.Flush()
}
