package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"
)

// Tests that drive the broker with github.com/go-stomp/stomp/v3.

// quietLogger keeps go-stomp's informational chatter out of the test output.
type quietLogger struct{ t testing.TB }

func (l quietLogger) Debugf(string, ...interface{}) {}
func (l quietLogger) Infof(string, ...interface{})  {}
func (l quietLogger) Warningf(f string, v ...interface{}) {
	l.t.Logf("go-stomp warning: "+f, v...)
}
func (l quietLogger) Errorf(f string, v ...interface{}) { l.t.Logf("go-stomp error: "+f, v...) }
func (l quietLogger) Debug(string)                      {}
func (l quietLogger) Info(string)                       {}
func (l quietLogger) Warning(m string)                  { l.t.Logf("go-stomp warning: %s", m) }
func (l quietLogger) Error(m string)                    { l.t.Logf("go-stomp error: %s", m) }

// connOpts are the options every test connection gets: every wait go-stomp
// does is bounded.
func connOpts(t testing.TB) []func(*stomp.Conn) error {
	return []func(*stomp.Conn) error{
		stomp.ConnOpt.MsgSendTimeout(waitTimeout),
		stomp.ConnOpt.RcvReceiptTimeout(waitTimeout),
		stomp.ConnOpt.DisconnectReceiptTimeout(waitTimeout),
		stomp.ConnOpt.UnsubscribeReceiptTimeout(waitTimeout),
		stomp.ConnOpt.Logger(quietLogger{t}),
	}
}

// dial connects with go-stomp's Dial; the connection is dropped when the test ends.
func dial(t testing.TB, addr string, opts ...func(*stomp.Conn) error) *stomp.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, err := stomp.DialWithContext(ctx, "tcp", addr, append(connOpts(t), opts...)...)
	if err != nil {
		t.Fatalf("stomp.Dial(%s): %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.MustDisconnect() })
	return conn
}

var destSeq atomic.Int64

var unsafeDestRE = regexp.MustCompile(`[^A-Za-z0-9]+`)

// runID tells this run's destinations from those of another run on the same broker.
var runID = strconv.FormatUint(rand.Uint64()%1e8, 36)

// dest returns a destination name unique to this test and run, e.g.
// /queue/e2e.TestX.k3j5.3.
func dest(t testing.TB, kind string) string {
	return fmt.Sprintf("/%s/e2e.%s.%s.%d", kind, unsafeDestRE.ReplaceAllString(t.Name(), "-"), runID, destSeq.Add(1))
}

// barrier sends a SEND with a receipt and waits for it. The broker handles a
// connection's frames in order, so afterwards every earlier frame of conn
// (a SUBSCRIBE, an ACK) has taken effect. The destination has no subscriber.
func barrier(t testing.TB, conn *stomp.Conn) {
	t.Helper()
	if err := conn.Send(dest(t, "topic")+".barrier", "text/plain", nil, stomp.SendOpt.Receipt); err != nil {
		t.Fatalf("SEND with receipt (barrier): %v", err)
	}
}

func subscribe(t testing.TB, conn *stomp.Conn, destination string, ack stomp.AckMode, id string) *stomp.Subscription {
	t.Helper()
	sub, err := conn.Subscribe(destination, ack, stomp.SubscribeOpt.Id(id))
	if err != nil {
		t.Fatalf("SUBSCRIBE %s: %v", destination, err)
	}
	barrier(t, conn)
	return sub
}

func send(t testing.TB, conn *stomp.Conn, destination, body string, opts ...func(*frame.Frame) error) {
	t.Helper()
	if err := conn.Send(destination, "text/plain", []byte(body), opts...); err != nil {
		t.Fatalf("SEND %s %q: %v", destination, body, err)
	}
}

// recv waits (bounded) for the next message of sub.
func recv(t testing.TB, sub *stomp.Subscription) *stomp.Message {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case m, ok := <-sub.C:
		if !ok {
			t.Fatalf("subscription %s (%s) closed while waiting for a message", sub.Id(), sub.Destination())
		}
		if m.Err != nil {
			t.Fatalf("subscription %s (%s): %v", sub.Id(), sub.Destination(), m.Err)
		}
		return m
	case <-timer.C:
		t.Fatalf("no message on %s (subscription %s) within %v", sub.Destination(), sub.Id(), waitTimeout)
	}
	return nil
}

func header(m *stomp.Message, key string) string { return m.Header.Get(key) }

func TestGoStompPubSub(t *testing.T) {
	addr := startBroker(t)
	const n = 20
	topic := dest(t, "topic")
	pub := dial(t, addr)
	subs := map[string]*stomp.Subscription{}
	for _, id := range []string{"sub-a", "sub-b"} {
		subs[id] = subscribe(t, dial(t, addr), topic, stomp.AckAuto, id)
	}
	for i := range n {
		send(t, pub, topic, fmt.Sprintf("msg-%d", i), stomp.SendOpt.Header("seq", strconv.Itoa(i)))
	}
	send(t, pub, topic, "fence", stomp.SendOpt.Receipt)
	for id, sub := range subs {
		ids := map[string]bool{}
		for i := range n {
			m := recv(t, sub)
			if got, want := string(m.Body), fmt.Sprintf("msg-%d", i); got != want {
				t.Fatalf("%s message %d: body %q, want %q", id, i, got, want)
			}
			if m.Destination != topic {
				t.Errorf("%s message %d: destination %q, want %q", id, i, m.Destination, topic)
			}
			if got := header(m, "subscription"); got != id {
				t.Errorf("%s message %d: subscription %q, want %q", id, i, got, id)
			}
			if got := header(m, "seq"); got != strconv.Itoa(i) {
				t.Errorf("%s message %d: user header seq=%q, want %d", id, i, got, i)
			}
			mid := header(m, "message-id")
			if mid == "" || ids[mid] {
				t.Errorf("%s message %d: message-id %q missing or repeated", id, i, mid)
			}
			ids[mid] = true
		}
		if m := recv(t, sub); string(m.Body) != "fence" {
			t.Errorf("%s: after %d messages got %q, want the fence (a duplicate or extra message)", id, n, m.Body)
		}
	}
}

type delivery struct {
	consumer    string
	body        string
	redelivered bool
	msg         *stomp.Message
}

// TestGoStompQueueNack: a queue with client-individual acks over 2 consumers;
// each job goes to exactly one consumer, and the one NACKed job comes back
// with redelivered:true.
func TestGoStompQueueNack(t *testing.T) {
	addr := startBroker(t)
	const n = 10
	queue := dest(t, "queue")
	prod := dial(t, addr)
	v12 := stomp.ConnOpt.AcceptVersion(stomp.V12)
	c1, c2 := dial(t, addr, v12), dial(t, addr, v12)
	s1 := subscribe(t, c1, queue, stomp.AckClientIndividual, "q-c1")
	s2 := subscribe(t, c2, queue, stomp.AckClientIndividual, "q-c2")
	for i := range n {
		send(t, prod, queue, fmt.Sprintf("job-%d", i))
	}

	var deliveries []delivery
	acked := map[string]bool{}
	nacked := ""
	next := func() delivery {
		t.Helper()
		timer := time.NewTimer(waitTimeout)
		defer timer.Stop()
		var m *stomp.Message
		var ok bool
		var who string
		select {
		case m, ok = <-s1.C:
			who = "c1"
		case m, ok = <-s2.C:
			who = "c2"
		case <-timer.C:
			t.Fatalf("no delivery within %v; acked %v, nacked %q, deliveries so far %v", waitTimeout, acked, nacked,
				summarize(deliveries))
		}
		if !ok || m.Err != nil {
			t.Fatalf("consumer %s: subscription ended: %v", who, m)
		}
		d := delivery{consumer: who, body: string(m.Body), redelivered: header(m, "redelivered") == "true", msg: m}
		deliveries = append(deliveries, d)
		return d
	}
	for len(acked) < n {
		d := next()
		if nacked == "" && !d.redelivered {
			nacked = d.body
			if err := d.msg.Conn.Nack(d.msg); err != nil {
				t.Fatalf("NACK: %v", err)
			}
			continue
		}
		if err := d.msg.Conn.Ack(d.msg); err != nil {
			t.Fatalf("ACK: %v", err)
		}
		acked[d.body] = true
	}
	// fence: once it is through, no stray (re)delivery of a job can be pending
	send(t, prod, queue, "fence")
	if d := next(); d.body != "fence" {
		t.Fatalf("after all jobs were acked got %q (redelivered=%v), want the fence; deliveries %v", d.body,
			d.redelivered, summarize(deliveries))
	} else if err := d.msg.Conn.Ack(d.msg); err != nil {
		t.Fatalf("ACK: %v", err)
	}
	deliveries = deliveries[:len(deliveries)-1]

	if len(deliveries) != n+1 {
		t.Errorf("%d deliveries, want %d (%d jobs + 1 redelivery): %v", len(deliveries), n+1, n, summarize(deliveries))
	}
	perConsumer := map[string]int{}
	var first, again *delivery
	for i := range deliveries {
		d := &deliveries[i]
		perConsumer[d.consumer]++
		if d.body == nacked {
			if first == nil {
				first = d
			} else {
				again = d
			}
		} else if d.redelivered {
			t.Errorf("%s was never NACKed but came with redelivered:true", d.body)
		}
		if got, want := header(d.msg, "subscription"), "q-"+d.consumer; got != want {
			t.Errorf("delivery of %s to %s: subscription %q, want %q", d.body, d.consumer, got, want)
		}
		if d.msg.Destination != queue {
			t.Errorf("delivery of %s: destination %q, want %q", d.body, d.msg.Destination, queue)
		}
	}
	if again == nil {
		t.Fatalf("NACKed %s was not redelivered: %v", nacked, summarize(deliveries))
	}
	if first.redelivered {
		t.Errorf("first delivery of %s already had redelivered:true", nacked)
	}
	if !again.redelivered {
		t.Errorf("NACKed %s came back without redelivered:true; headers %v", nacked, again.msg.Header)
	}
	if perConsumer["c1"] == 0 || perConsumer["c2"] == 0 {
		t.Errorf("round-robin: both consumers should get jobs, got %v", perConsumer)
	}
	t.Logf("deliveries per consumer %v; NACKed %s on %s, redelivered to %s", perConsumer, nacked, first.consumer,
		again.consumer)
}

func summarize(ds []delivery) []string {
	var s []string
	for _, d := range ds {
		r := ""
		if d.redelivered {
			r = "(redelivered)"
		}
		s = append(s, d.consumer+":"+d.body+r)
	}
	return s
}

// TestGoStompRequeueOnDisconnect: an unacked message goes to the next consumer
// with redelivered:true when its consumer disconnects; after an ACK it is gone.
func TestGoStompRequeueOnDisconnect(t *testing.T) {
	addr := startBroker(t)
	queue := dest(t, "queue")
	prod := dial(t, addr)
	c1 := dial(t, addr)
	s1 := subscribe(t, c1, queue, stomp.AckClientIndividual, "q-1")
	send(t, prod, queue, "unlucky", stomp.SendOpt.Receipt)
	if m := recv(t, s1); string(m.Body) != "unlucky" || header(m, "redelivered") == "true" {
		t.Fatalf("first delivery: body %q redelivered %q", m.Body, header(m, "redelivered"))
	}
	if err := c1.Disconnect(); err != nil {
		t.Fatalf("DISCONNECT: %v", err)
	}
	c2 := dial(t, addr)
	s2 := subscribe(t, c2, queue, stomp.AckClientIndividual, "q-2")
	m := recv(t, s2)
	if string(m.Body) != "unlucky" {
		t.Fatalf("after the first consumer left, got %q, want the unacked message", m.Body)
	}
	if header(m, "redelivered") != "true" {
		t.Errorf("re-queued message lacks redelivered:true; headers %v", m.Header)
	}
	if err := c2.Ack(m); err != nil {
		t.Fatalf("ACK: %v", err)
	}
	barrier(t, c2)
	if err := c2.Disconnect(); err != nil {
		t.Fatalf("DISCONNECT: %v", err)
	}
	s3 := subscribe(t, dial(t, addr), queue, stomp.AckAuto, "q-3")
	send(t, prod, queue, "fence", stomp.SendOpt.Receipt)
	if m := recv(t, s3); string(m.Body) != "fence" {
		t.Errorf("an acked message came back: got %q, want the fence", m.Body)
	}
}

// TestGoStompTransactions: SENDs in a transaction appear only after COMMIT and
// never after ABORT.
func TestGoStompTransactions(t *testing.T) {
	addr := startBroker(t)
	topic := dest(t, "topic")
	pub := dial(t, addr)
	sub := subscribe(t, dial(t, addr), topic, stomp.AckAuto, "s1")

	tx, err := pub.BeginWithError()
	if err != nil {
		t.Fatalf("BEGIN: %v", err)
	}
	for i := range 3 {
		if err := tx.Send(topic, "text/plain", fmt.Appendf(nil, "tx1-%d", i)); err != nil {
			t.Fatalf("SEND in tx: %v", err)
		}
	}
	// a plain SEND after the transactional ones must overtake them
	send(t, pub, topic, "marker-1", stomp.SendOpt.Receipt)
	if m := recv(t, sub); string(m.Body) != "marker-1" {
		t.Fatalf("before COMMIT got %q, want marker-1 (a transactional SEND leaked)", m.Body)
	}
	if err := tx.CommitWithReceipt(); err != nil {
		t.Fatalf("COMMIT: %v", err)
	}
	for i := range 3 {
		if m, want := recv(t, sub), fmt.Sprintf("tx1-%d", i); string(m.Body) != want {
			t.Fatalf("after COMMIT got %q, want %q", m.Body, want)
		}
	}

	tx2 := pub.Begin()
	for i := range 2 {
		if err := tx2.Send(topic, "text/plain", fmt.Appendf(nil, "tx2-%d", i)); err != nil {
			t.Fatalf("SEND in tx: %v", err)
		}
	}
	if err := tx2.AbortWithReceipt(); err != nil {
		t.Fatalf("ABORT: %v", err)
	}
	send(t, pub, topic, "marker-2", stomp.SendOpt.Receipt)
	if m := recv(t, sub); string(m.Body) != "marker-2" {
		t.Fatalf("after ABORT got %q, want marker-2 (an aborted SEND was delivered)", m.Body)
	}
}

// TestGoStompTransactionalAck: an ACK inside a transaction takes effect only on COMMIT.
func TestGoStompTransactionalAck(t *testing.T) {
	addr := startBroker(t)
	queue := dest(t, "queue")
	prod := dial(t, addr)
	c1 := dial(t, addr)
	s1 := subscribe(t, c1, queue, stomp.AckClientIndividual, "q-1")
	send(t, prod, queue, "job", stomp.SendOpt.Receipt)
	m := recv(t, s1)
	tx := c1.Begin()
	if err := tx.Ack(m); err != nil {
		t.Fatalf("ACK in tx: %v", err)
	}
	if err := tx.AbortWithReceipt(); err != nil {
		t.Fatalf("ABORT: %v", err)
	}
	if err := c1.Disconnect(); err != nil { // the ACK was aborted: the job must be re-queued
		t.Fatalf("DISCONNECT: %v", err)
	}

	c2 := dial(t, addr)
	s2 := subscribe(t, c2, queue, stomp.AckClientIndividual, "q-2")
	m = recv(t, s2)
	if string(m.Body) != "job" || header(m, "redelivered") != "true" {
		t.Fatalf("after an aborted ACK and disconnect got %q redelivered=%q, want job redelivered=true", m.Body,
			header(m, "redelivered"))
	}
	tx = c2.Begin()
	if err := tx.Ack(m); err != nil {
		t.Fatalf("ACK in tx: %v", err)
	}
	if err := tx.CommitWithReceipt(); err != nil {
		t.Fatalf("COMMIT: %v", err)
	}
	if err := c2.Disconnect(); err != nil {
		t.Fatalf("DISCONNECT: %v", err)
	}
	s3 := subscribe(t, dial(t, addr), queue, stomp.AckAuto, "q-3")
	send(t, prod, queue, "fence", stomp.SendOpt.Receipt)
	if m := recv(t, s3); string(m.Body) != "fence" {
		t.Errorf("a job acked in a committed transaction came back: got %q, want the fence", m.Body)
	}
}

// TestGoStompReceipts: go-stomp waits for the RECEIPT (matched by receipt-id)
// of SEND, COMMIT, ABORT, UNSUBSCRIBE and DISCONNECT; each must come.
func TestGoStompReceipts(t *testing.T) {
	addr := startBroker(t)
	topic := dest(t, "topic")
	conn := dial(t, addr)
	sub, err := conn.Subscribe(topic, stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Send(topic, "text/plain", []byte("hello"), stomp.SendOpt.Receipt); err != nil {
		t.Fatalf("SEND with receipt: %v", err)
	}
	if m := recv(t, sub); string(m.Body) != "hello" {
		t.Fatalf("got %q", m.Body)
	}
	if err := conn.Begin().CommitWithReceipt(); err != nil {
		t.Fatalf("COMMIT with receipt: %v", err)
	}
	if err := conn.Begin().AbortWithReceipt(); err != nil {
		t.Fatalf("ABORT with receipt: %v", err)
	}
	if err := sub.Unsubscribe(); err != nil && !unsubscribeReceived(err, sub) { // go-stomp asks UNSUBSCRIBE for a receipt and waits
		t.Fatalf("UNSUBSCRIBE with receipt: %v", err)
	}
	if err := conn.Send(topic, "text/plain", []byte("after"), stomp.SendOpt.Receipt); err != nil {
		t.Fatalf("SEND with receipt: %v", err)
	}
	if err := conn.Disconnect(); err != nil {
		t.Fatalf("DISCONNECT with receipt: %v", err)
	}
}

// unsubscribeReceived tells whether the RECEIPT of an UNSUBSCRIBE came
// after all when go-stomp's Unsubscribe reported a receipt timeout.
// go-stomp v3.1.3 can miss its own wake-up: it starts waiting, in a fresh
// goroutine, after checking the subscription's state, and the RECEIPT that
// closes the subscription can come in between. The RECEIPT came if the
// subscription's channel was closed (a real timeout leaves it open, with
// an error message in it).
func unsubscribeReceived(err error, sub *stomp.Subscription) bool {
	if !errors.Is(err, &stomp.ErrUnsubscribeReceiptTimeout) {
		return false
	}
	for {
		select {
		case m, ok := <-sub.C:
			if !ok {
				return true
			}
			if m.Err != nil {
				return false
			}
		case <-time.After(time.Second):
			return false
		}
	}
}

// countingConn counts the bytes a connection reads and the heart-beats (lone
// newlines) it writes, and notes the longest wait between two reads.
type countingConn struct {
	net.Conn
	read     atomic.Int64
	beatsOut atomic.Int64
	lastRead atomic.Int64 // UnixNano
	maxGap   atomic.Int64 // nanoseconds
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	now := time.Now().UnixNano()
	if last := c.lastRead.Swap(now); last != 0 && now-last > c.maxGap.Load() {
		c.maxGap.Store(now - last)
	}
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	if string(p) == "\n" || string(p) == "\r\n" {
		c.beatsOut.Add(1)
	}
	return c.Conn.Write(p)
}

// heartBeatArgs make the broker offer heart-beats 100,100. The grace before
// it closes a silent client is raised to 10 intervals (1s): these tests check
// that beats keep an idle connection alive, and a loaded CI machine can stall
// a client's beat thread for a few hundred milliseconds.
// TestSilentClientIsClosed checks the default grace.
var heartBeatArgs = []string{"--heart-beat", "100,100", "--heart-beat-grace", "10"}

// TestGoStompHeartBeats: with heart-beats 100,100 on both sides the broker and
// the client beat while idle, and the connection still works after 1.5s of
// idleness. go-stomp closes the connection if nothing arrives within
// 100ms+1900ms; the byte counter checks that the broker beats every ~100ms.
func TestGoStompHeartBeats(t *testing.T) {
	addr := startBroker(t, heartBeatArgs...)
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	cc := &countingConn{Conn: nc}
	var serverBeat string
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	opts := append([]func(*stomp.Conn) error{stomp.ConnOpt.Host("127.0.0.1")}, connOpts(t)...)
	conn, err := stomp.ConnectWithContext(ctx, cc, append(opts,
		stomp.ConnOpt.HeartBeat(100*time.Millisecond, 100*time.Millisecond),
		stomp.ConnOpt.HeartBeatError(1900*time.Millisecond),
		stomp.ConnOpt.ResponseHeaders(func(h *frame.Header) { serverBeat = h.Get(frame.HeartBeat) }),
	)...)
	if err != nil {
		t.Fatalf("CONNECT: %v", err)
	}
	t.Cleanup(func() { _ = conn.MustDisconnect() })
	if serverBeat != "100,100" {
		t.Errorf("CONNECTED heart-beat:%q, want 100,100 (the broker's --heart-beat offer)", serverBeat)
	}
	topic := dest(t, "topic")
	sub := subscribe(t, conn, topic, stomp.AckAuto, "s1")

	const idle = 1500 * time.Millisecond
	read0, out0 := cc.read.Load(), cc.beatsOut.Load()
	cc.maxGap.Store(0)
	timer := time.NewTimer(idle)
	select { // idleness is what is tested: wait it out, but notice an early close
	case m := <-sub.C:
		t.Fatalf("connection ended while idle with heart-beats: %v", m.Err)
	case <-timer.C:
	}
	read, out := cc.read.Load()-read0, cc.beatsOut.Load()-out0
	t.Logf("idle %v: %d bytes of broker heart-beats (longest gap %v), %d client heart-beats", idle, read,
		time.Duration(cc.maxGap.Load()).Round(time.Millisecond), out)
	if read < 5 {
		t.Errorf("the broker sent %d bytes in %v of idleness, want heart-beats every 100ms (>= 5)", read, idle)
	}
	if out < 5 {
		t.Errorf("go-stomp sent %d heart-beats in %v", out, idle)
	}
	send(t, conn, topic, "still-alive", stomp.SendOpt.Receipt)
	if m := recv(t, sub); string(m.Body) != "still-alive" {
		t.Fatalf("got %q", m.Body)
	}
	if err := conn.Disconnect(); err != nil {
		t.Fatalf("DISCONNECT: %v", err)
	}
}

// binaryBody is 1 MiB of pseudo-random bytes with many NULs, the first and
// last byte among them.
func binaryBody() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	for i := 0; i < len(b); i += 997 {
		b[i] = 0
	}
	b[len(b)-1] = 0
	return b
}

// TestGoStompBinaryBody: a 1 MiB body with NULs round-trips byte-exact over a
// topic and a queue, and the frame after it is intact.
func TestGoStompBinaryBody(t *testing.T) {
	addr := startBroker(t)
	body := binaryBody()
	for _, kind := range []string{"topic", "queue"} {
		t.Run(kind, func(t *testing.T) {
			d := dest(t, kind)
			pub := dial(t, addr)
			sub := subscribe(t, dial(t, addr), d, stomp.AckAuto, "s1")
			if err := pub.Send(d, "application/octet-stream", body); err != nil {
				t.Fatalf("SEND 1 MiB: %v", err)
			}
			send(t, pub, d, "after", stomp.SendOpt.Receipt)
			m := recv(t, sub)
			if !bytes.Equal(m.Body, body) {
				i := 0
				for i < len(m.Body) && i < len(body) && m.Body[i] == body[i] {
					i++
				}
				t.Fatalf("1 MiB body differs: got %d bytes, want %d, first difference at byte %d", len(m.Body),
					len(body), i)
			}
			if got := header(m, "content-length"); got != strconv.Itoa(len(body)) {
				t.Errorf("content-length %q, want %d", got, len(body))
			}
			if m.ContentType != "application/octet-stream" {
				t.Errorf("content-type %q", m.ContentType)
			}
			if m := recv(t, sub); string(m.Body) != "after" {
				t.Errorf("the frame after the binary one: %q", m.Body)
			}
		})
	}
}

// TestGoStompVersions: each of 1.0, 1.1, 1.2 offered alone is negotiated and
// works; 1.1 and 1.2 escape header values.
func TestGoStompVersions(t *testing.T) {
	addr := startBroker(t)
	for _, v := range []stomp.Version{stomp.V10, stomp.V11, stomp.V12} {
		t.Run(string(v), func(t *testing.T) {
			conn := dial(t, addr, stomp.ConnOpt.AcceptVersion(v))
			if conn.Version() != v {
				t.Fatalf("accept-version:%s negotiated %s", v, conn.Version())
			}
			d := dest(t, "topic")
			sub := subscribe(t, conn, d, stomp.AckAuto, "s-"+string(v))
			var opts []func(*frame.Frame) error
			if v != stomp.V10 {
				opts = append(opts, stomp.SendOpt.Header("x-escaped", "a:b\\c"))
			}
			send(t, conn, d, "hello "+string(v), append(opts, stomp.SendOpt.Receipt)...)
			m := recv(t, sub)
			if string(m.Body) != "hello "+string(v) || m.Destination != d {
				t.Fatalf("got body %q destination %q", m.Body, m.Destination)
			}
			if v != stomp.V10 {
				if got := header(m, "x-escaped"); got != "a:b\\c" {
					t.Errorf("escaped header came back as %q, want %q", got, "a:b\\c")
				}
			}
			if err := conn.Disconnect(); err != nil {
				t.Fatalf("DISCONNECT: %v", err)
			}
		})
	}
}

// TestShutdownNotifiesClients: on SIGTERM a connected client gets an ERROR
// frame with message:shutting down, and the broker exits 0 (checked by stop).
func TestShutdownNotifiesClients(t *testing.T) {
	b := startBrokerProc(t)
	conn := dial(t, b.addr)
	sub := subscribe(t, conn, dest(t, "topic"), stomp.AckAuto, "s1")
	b.signal(t)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case m, ok := <-sub.C:
		if !ok || m.Err == nil {
			t.Fatalf("want an ERROR frame on shutdown, got %+v", m)
		}
		f := errorFrame(m.Err)
		switch {
		case f == nil:
			t.Fatalf("connection closed without an ERROR frame: %v", m.Err)
		case f.Header.Get(frame.Message) != "shutting down":
			t.Errorf("ERROR message:%q, want %q", f.Header.Get(frame.Message), "shutting down")
		}
	case <-timer.C:
		t.Fatalf("no ERROR frame within %v of SIGTERM", stopTimeout)
	}
	b.stop(t)
}

// errorFrame returns the ERROR frame behind a go-stomp error, or nil when the
// error did not come from one (a closed connection, a timeout).
func errorFrame(err error) *frame.Frame {
	var pe *stomp.Error
	if errors.As(err, &pe) && pe.Frame != nil && pe.Frame.Command == frame.ERROR {
		return pe.Frame
	}
	var ve stomp.Error
	if errors.As(err, &ve) && ve.Frame != nil && ve.Frame.Command == frame.ERROR {
		return ve.Frame
	}
	return nil
}

// TestSilentClientIsClosed: a client that promises heart-beats every 100ms and
// then sends nothing is closed by the broker with an ERROR frame, after the
// agreed interval times the default grace (2), well within 5s.
func TestSilentClientIsClosed(t *testing.T) {
	addr := startBroker(t, "--heart-beat", "100,100")
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	w, r := frame.NewWriter(nc), frame.NewReader(nc)
	if err := w.Write(frame.New(frame.CONNECT, frame.AcceptVersion, "1.2", frame.Host, "127.0.0.1",
		frame.HeartBeat, "100,0")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = nc.SetReadDeadline(start.Add(5 * time.Second))
	f, err := r.Read()
	if err != nil || f == nil || f.Command != frame.CONNECTED {
		t.Fatalf("want CONNECTED, got %v, %v", f, err)
	}
	for { // the broker offered 0 for its own beats towards us (we asked for 0), so expect no beats
		f, err = r.Read()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("a client silent for %v after promising heart-beats every 100ms is still connected",
				time.Since(start).Round(time.Millisecond))
		}
		if err != nil {
			t.Fatalf("connection ended after %v without an ERROR frame: %v", time.Since(start), err)
		}
		if f != nil {
			break
		}
	}
	if f.Command != frame.ERROR {
		t.Fatalf("silent client got %s, want ERROR", f.Command)
	}
	took := time.Since(start)
	t.Logf("closed after %v with ERROR message:%q", took.Round(time.Millisecond), f.Header.Get(frame.Message))
	if took < 100*time.Millisecond {
		t.Errorf("closed after %v, before the agreed 100ms interval passed", took)
	}
	if _, err := r.Read(); err == nil {
		t.Errorf("connection still open after the ERROR frame")
	}
}
