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

	"github.com/stompica/stompica/server"
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
  durables          list the durable topic subscriptions (connected or away, messages waiting)
  streams           list the streams (/stream/ and recorded topics: messages, bytes, offsets, readers)
  stream NAME       one stream, with its first and last message's time and its limits
  errors            the last ERROR frames the broker sent (newest first)

Flags (before or after the command):
`)
		fs.PrintDefaults()
	}
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return flagExit(err)
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
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		fmt.Fprintf(stderr, "stompica ctl %s: reading the answer: %v\n", pos[0], err)
		return 1
	}
	if err := cmd.print(stdout, obj); err != nil {
		fmt.Fprintf(stderr, "stompica ctl %s: %v\n", pos[0], err)
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
// it makes and how it prints the answer (a JSON object).
type ctlCommand struct {
	args    []string
	list    bool // takes --limit
	request func(args []string) (method, path string)
	print   func(w io.Writer, answer map[string]any) error
}

func get(path string) func([]string) (string, string) {
	return func([]string) (string, string) { return http.MethodGet, path }
}

// on makes the request method on the API path prefix + the escaped
// argument + suffix.
func on(method, prefix, suffix string) func([]string) (string, string) {
	return func(a []string) (string, string) { return method, prefix + url.PathEscape(a[0]) + suffix }
}

var ctlCommands = map[string]ctlCommand{
	"overview":    {request: get("/api/overview"), print: printOverview},
	"connections": {list: true, request: get("/api/connections"), print: printList("connections", connColumns, "count")},
	"connection":  {args: []string{"ID"}, request: on(http.MethodGet, "/api/connections/", ""), print: printConnection},
	"close": {args: []string{"ID"}, request: on(http.MethodDelete, "/api/connections/", ""),
		print: printf("closed connection {closed} ({login} at {peer})")},
	"queues": {list: true, request: get("/api/queues"), print: printList("queues", queueColumns, "count")},
	"queue":  {args: []string{"NAME"}, request: on(http.MethodGet, "/api/queues/", ""), print: printOne(queueColumns)},
	"purge": {args: []string{"NAME"}, request: on(http.MethodPost, "/api/queues/", "/purge"),
		print: printf("purged {purged} messages from {queue}")},
	"delete": {args: []string{"NAME"}, request: on(http.MethodDelete, "/api/queues/", ""),
		print: printf("deleted {queue} ({purged} waiting messages dropped)")},
	"topics":   {list: true, request: get("/api/topics"), print: printList("topics", topicColumns, "count")},
	"durables": {list: true, request: get("/api/durables"), print: printList("durables", durableColumns, "count")},
	"streams":  {list: true, request: get("/api/streams"), print: printList("streams", streamColumns, "count")},
	"stream":   {args: []string{"NAME"}, request: on(http.MethodGet, "/api/streams/", ""), print: printStream},
	"errors":   {request: get("/api/errors"), print: printList("errors", errorColumns, "total")},
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

// column is one column of a table: its header and the field of each row
// object it shows (through format when set).
type column struct {
	head, key string
	format    func(v any, row map[string]any) string
}

var (
	connColumns = []column{{"ID", "id", nil}, {"PEER", "peer", nil}, {"LOGIN", "login", nil},
		{"TRANSPORT", "transport", func(v any, row map[string]any) string {
			if row["tls"] == true {
				return text(v) + "+tls"
			}
			return text(v)
		}},
		{"VERSION", "version", nil}, {"SUBS", "subscriptions", nil}, {"UNACKED", "unacked", nil}, {"PENDING", "pending_bytes", nil}}
	subColumns = []column{{"SUBSCRIPTION", "id", nil}, {"DESTINATION", "destination", nil}, {"ACK", "ack", nil},
		{"PREFETCH", "prefetch", nil}, {"UNACKED", "unacked", nil}, {"HELD", "held", nil}}
	queueColumns = []column{{"QUEUE", "name", nil}, {"DEPTH", "depth", nil}, {"CONSUMERS", "consumers", nil},
		{"UNACKED", "unacked", nil}, {"ENQUEUED", "enqueued", nil}, {"DELIVERED", "delivered", nil},
		{"REDELIVERED", "redelivered", nil}, {"DURABLE", "durable", yesNo}}
	durableColumns = []column{{"KEY", "key", nil}, {"STYLE", "style", nil}, {"TOPIC", "topic", nil},
		{"CONNECTED", "connected", yesNo}, {"WAITING", "depth", nil}, {"UNACKED", "unacked", nil}, {"STORED", "stored", yesNo}}
	streamColumns = []column{{"STREAM", "name", nil}, {"MESSAGES", "messages", nil}, {"BYTES", "bytes", streamBytes},
		{"FIRST", "first_seq", nil}, {"LAST", "last_seq", nil}, {"SUBSCRIBERS", "subscribers", nil}, {"READERS", "readers", nil}}
	topicColumns = []column{{"TOPIC", "name", nil}, {"SUBSCRIBERS", "subscribers", nil}}
	errorColumns = []column{{"TIME", "time", func(v any, _ map[string]any) string {
		t, err := time.Parse(time.RFC3339Nano, text(v))
		if err != nil {
			return text(v)
		}
		return t.Local().Format("2006-01-02 15:04:05")
	}}, {"CONN", "conn", nil}, {"PEER", "peer", nil}, {"LOGIN", "login", nil}, {"TRANSPORT", "transport", nil},
		{"MESSAGE", "message", nil}}
)

// yesNo shows a flag.
func yesNo(v any, _ map[string]any) string {
	if v == true {
		return "yes"
	}
	return "no"
}

// streamBytes shows a stream's bytes, with "~" when they are its share of
// the log's by message count.
func streamBytes(v any, row map[string]any) string {
	if row["bytes_exact"] == false {
		return "~" + text(v)
	}
	return text(v)
}

// text shows one JSON value: "-" for nothing.
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return "-"
	case string:
		if v == "" {
			return "-"
		}
		return v
	case json.Number:
		return v.String()
	}
	return fmt.Sprint(v)
}

// table prints the row objects under the columns' headers, aligned.
func table(w io.Writer, cols []column, rows []any) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, c := range cols {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, c.head)
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		row, _ := r.(map[string]any)
		for i, c := range cols {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			if c.format != nil {
				fmt.Fprint(tw, c.format(row[c.key], row))
			} else {
				fmt.Fprint(tw, text(row[c.key]))
			}
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// printList prints the list under key as a table, and a note when it is
// not all of them (total is the field that counts them all).
func printList(key string, cols []column, total string) func(io.Writer, map[string]any) error {
	return func(w io.Writer, obj map[string]any) error {
		rows, _ := obj[key].([]any)
		if err := table(w, cols, rows); err != nil {
			return err
		}
		n, err := obj[total].(json.Number).Int64()
		switch {
		case err != nil || int64(len(rows)) >= n:
		case total == "count":
			fmt.Fprintf(w, "(showing the %d busiest of %d %s)\n", len(rows), n, key)
		default:
			fmt.Fprintf(w, "(the last %d of %d %s since the broker started)\n", len(rows), n, key)
		}
		return nil
	}
}

// printOne prints one object as a one-row table.
func printOne(cols []column) func(io.Writer, map[string]any) error {
	return func(w io.Writer, obj map[string]any) error { return table(w, cols, []any{obj}) }
}

// printf prints a line made of format with each {field} of the answer
// replaced.
func printf(format string) func(io.Writer, map[string]any) error {
	return func(w io.Writer, obj map[string]any) error {
		line := format
		for k, v := range obj {
			line = strings.ReplaceAll(line, "{"+k+"}", text(v))
		}
		_, err := fmt.Fprintln(w, line)
		return err
	}
}

// fields prints "name: value" lines, aligned; a value is a field of obj
// (a dotted path into nested objects) or, quoted, the text itself.
func fields(w io.Writer, obj map[string]any, lines [][2]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, l := range lines {
		fmt.Fprintf(tw, "%s:\t%s\n", l[0], expand(l[1], obj))
	}
	return tw.Flush()
}

// expand replaces each {path} in s by the field at that dotted path.
func expand(s string, obj map[string]any) string {
	for {
		i := strings.IndexByte(s, '{')
		j := strings.IndexByte(s, '}')
		if i < 0 || j < i {
			return s
		}
		var v any = obj
		for _, k := range strings.Split(s[i+1:j], ".") {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		s = s[:i] + text(v) + s[j+1:]
	}
}

func printConnection(w io.Writer, obj map[string]any) error {
	if obj["tls"] == true {
		obj["transport"] = text(obj["transport"]) + "+tls"
	}
	err := fields(w, obj, [][2]string{
		{"id", "{id}"}, {"peer", "{peer}"}, {"login", "{login}"}, {"transport", "{transport}"},
		{"version", "{version}"}, {"connected at", "{connected_at}"}, {"pending bytes", "{pending_bytes}"},
		{"unacked", "{unacked}"}, {"held", "{held}"}, {"subscriptions", "{subscriptions}"},
	})
	subs, _ := obj["subscription_list"].([]any)
	if err != nil || len(subs) == 0 {
		return err
	}
	fmt.Fprintln(w)
	return table(w, subColumns, subs)
}

func printStream(w io.Writer, obj map[string]any) error {
	obj["bytes"] = streamBytes(obj["bytes"], obj)
	if age, err := obj["max_age_seconds"].(json.Number).Float64(); err == nil {
		obj["max_age"] = (time.Duration(age) * time.Second).String()
	}
	obj["recorded"] = map[bool]string{true: "a topic --record keeps", false: "a /stream/ destination"}[obj["recorded"] == true]
	return fields(w, obj, [][2]string{
		{"stream", "{name} ({recorded})"}, {"messages", "{messages}"}, {"bytes", "{bytes}"},
		{"first", "offset {first_seq} at {first_time}"}, {"last", "offset {last_seq} at {last_time}"},
		{"subscribers", "{subscribers} live, {readers} reading the log"},
		{"limits", "max age {max_age}, max bytes {max_bytes} (all streams together)"},
	})
}

func printOverview(w io.Writer, obj map[string]any) error {
	if up, err := obj["uptime_seconds"].(json.Number).Float64(); err == nil {
		obj["uptime"] = (time.Duration(up) * time.Second).String()
	}
	return fields(w, obj, [][2]string{
		{"version", "{version}"},
		{"uptime", "{uptime}"},
		{"connections", "{connections.total} (tcp {connections.tcp}, ws {connections.ws}), {connected} past CONNECT"},
		{"pending bytes", "{connections.pending_bytes}"},
		{"subscriptions", "{subscriptions}"},
		{"queues", "{queue_count}: {queued} messages waiting, {unacked} unacked"},
		{"topics", "{topic_count}"},
		{"retained (TTL)", "{retained}"},
		{"publishers paused", "{input_paused}"},
		{"messages in", "{counters.messages_in}"},
		{"deliveries", "{counters.deliveries}"},
		{"bytes in / out", "{counters.bytes_in} / {counters.bytes_out}"},
		{"errors", "{counters.errors}"},
	})
}

// flagExit is the exit code for a failed flag parse: 0 for -h/--help (the
// usage was printed), 2 for a bad flag.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
