package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/stompica/stompica/frame"
	"github.com/stompica/stompica/store"
	"github.com/stompica/stompica/store/jetstream"
)

// testStore, when set, gives every startServer that configures no store
// one of its own (TestOnJetStream runs queue tests on the JetStream store).
var testStore func(t *testing.T) store.Store

// openJetStream opens a JetStream store in dir (a fresh one when empty);
// Shutdown closes it.
func openJetStream(t *testing.T, dir string, mod ...func(*jetstream.Options)) *jetstream.Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	o := jetstream.Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, f := range mod {
		f(&o)
	}
	st, err := jetstream.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// The queue semantics (FIFO, round-robin, acks, NACK, prefetch,
// redelivery, transactions, dead letters, temporary queues) hold the same
// on the JetStream store as in memory: the same tests, on it. A message an
// ACK frees comes before the ACK's RECEIPT in memory; on JetStream it
// usually does too (a message stored in this run is taken from memory),
// but not when the record ahead of it is still being read back, so there
// freedMessage lets it follow the RECEIPT.
func TestOnJetStream(t *testing.T) {
	testStore = func(t *testing.T) store.Store { return openJetStream(t, "") }
	defer func() { testStore = nil }()
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"QueueRoundRobin", TestQueueRoundRobin},
		{"QueueKeepsMessagesUntilConsumer", TestQueueKeepsMessagesUntilConsumer},
		{"QueueAutoAckConsumed", TestQueueAutoAckConsumed},
		{"QueueAckClientCumulative", TestQueueAckClientCumulative},
		{"QueueAckClientCumulativeOldID", TestQueueAckClientCumulativeOldID},
		{"QueueAckClientIndividual", TestQueueAckClientIndividual},
		{"QueueNackWithTwoConsumers", TestQueueNackWithTwoConsumers},
		{"QueueRedeliverOnDisconnect", TestQueueRedeliverOnDisconnect},
		{"QueueUnackedNotLostOnDisconnect", TestQueueUnackedNotLostOnDisconnect},
		{"QueueRequeueDeep", TestQueueRequeueDeep},
		{"QueuePattern", TestQueuePattern},
		{"AckUnknownID", TestAckUnknownID},
		{"Ack11", TestAck11},
		{"Ack10", TestAck10},
		{"NackClientCumulative", TestNackClientCumulative},
		{"PatternQueueUnsubscribe", TestPatternQueueUnsubscribe},
		{"TxSendDeliveredAtCommit", TestTxSendDeliveredAtCommit},
		{"TxAbortDiscards", TestTxAbortDiscards},
		{"TxDisconnectDiscards", TestTxDisconnectDiscards},
		{"DeadLetterQueue", TestDeadLetterQueue},
		{"TempQueueRequestReply", TestTempQueueRequestReply},
		{"UnusedQueueForgotten", TestUnusedQueueForgotten},
		{"PrefetchCappedByMaxUnacked", TestPrefetchCappedByMaxUnacked},
		{"SlowQueueConsumer", TestSlowQueueConsumer},
		{"QueuePrefetch", TestQueuePrefetch},
		{"QueuePrefetchActiveMQHeader", TestQueuePrefetchActiveMQHeader},
		{"PatternQueueAckFreesCredit", TestPatternQueueAckFreesCredit},
		{"TxAckAtCommit", TestTxAckAtCommit},
		{"TxNackAbortKeepsUnacked", TestTxNackAbortKeepsUnacked},
	} {
		t.Run(tc.name, tc.f)
	}
}

// framesUntil collects MESSAGE frames until each of want and the RECEIPT
// id have come, in any order; it returns the last MESSAGE.
func (c *client) framesUntil(id string, want ...string) *frame.Frame {
	c.t.Helper()
	left := map[string]bool{}
	for _, w := range want {
		left[w] = true
	}
	receipt := false
	var last *frame.Frame
	for len(left) > 0 || !receipt {
		ev := c.nextFrame("RECEIPT " + id + " and " + strings.Join(want, ","))
		switch {
		case ev.f.Command == frame.MESSAGE && left[string(ev.f.Body)]:
			delete(left, string(ev.f.Body))
			last = ev.f
		case ev.f.Command == frame.RECEIPT && ev.f.GetString("receipt-id") == id:
			receipt = true
		default:
			c.t.Fatalf("%s client: unexpected %s", c.tr, fmtFrame(ev.f))
		}
	}
	return last
}

// Prefetch on the JetStream store: the second message waits for the ACK
// of the first, then comes (with or after the ACK's RECEIPT).
func TestJetStreamPrefetch(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.Store = openJetStream(t, "") })
		a := connected(t, srv, tr)
		a.subscribe("/queue/pf", "a", "ack", "client-individual", "prefetch-count", "1")
		pub := connected(t, srv, tr)
		for i := 1; i <= 3; i++ {
			pub.publish("/queue/pf", "m"+strconv.Itoa(i))
		}
		m := a.expectMessage("m1")
		a.sync() // m2 waits: one unacknowledged message is the limit
		for i := 2; i <= 3; i++ {
			a.sendFrame(frame.ACK, "", "id", ackID(t, m), "receipt", "ack")
			m = a.framesUntil("ack", "m"+strconv.Itoa(i))
		}
	})
}

// Dead letters are durable: a message moved to /queue/DLQ after
// MaxRedeliveries is there after a restart, and the original queue is
// empty.
func TestJetStreamDeadLetterSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, func(o *Options) { o.MaxRedeliveries = 1; o.Store = openJetStream(t, dir) })
	pub := connected(t, srv, "tcp")
	pub.publish("/queue/poison", "bad")
	pub.publish("/queue/poison", "good")
	c := connected(t, srv, "tcp")
	c.subscribeNoWait("/queue/poison", "s", "ack", "client-individual", "prefetch-count", "1")
	m := c.expectMessage("bad")
	c.sendFrame(frame.NACK, "", "id", ackID(t, m))
	m = c.expectMessage("bad") // the one redelivery allowed
	c.sendFrame(frame.NACK, "", "id", ackID(t, m))
	c.expectMessage("good") // not acknowledged: it must come again after the restart
	dlq := connected(t, srv, "tcp")
	dlq.subscribeNoWait(dlqName, "d", "ack", "client-individual")
	dlq.expectMessage("bad") // not acknowledged either
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	srv = startServer(t, func(o *Options) { o.Store = openJetStream(t, dir) })
	c = connected(t, srv, "tcp")
	c.subscribeNoWait(dlqName, "d")
	if m := c.expectMessage("bad"); m.GetString("destination") != "/queue/poison" || m.GetString("redelivered") != "true" {
		t.Errorf("dead letter after the restart: %s", fmtFrame(m))
	}
	c.subscribeNoWait("/queue/poison", "s")
	if m := c.expectMessage("good"); m.GetString("redelivered") != "true" {
		t.Errorf("after the restart: %s", fmtFrame(m))
	}
	c.sync() // nothing else: "bad" left /queue/poison
}

// A message the JetStream store refuses (over its byte bound) gets an
// ERROR with the SEND's receipt-id, never a RECEIPT.
func TestJetStreamStoreRefusal(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) {
			o.Store = openJetStream(t, "", func(jo *jetstream.Options) { jo.MaxBytes = 8 << 10 })
		})
		c := connected(t, srv, tr)
		body := strings.Repeat("x", 1000)
		for i := 0; ; i++ {
			if i == 20 {
				t.Fatal("20 KB stored under an 8 KiB bound")
			}
			id := "r" + strconv.Itoa(i)
			c.sendFrame(frame.SEND, body, "destination", "/queue/full", "receipt", id)
			ev := c.nextFrame("RECEIPT " + id)
			if ev.f.Command == frame.RECEIPT && ev.f.GetString("receipt-id") == id {
				continue
			}
			if ev.f.Command != frame.ERROR || ev.f.GetString("receipt-id") != id || !strings.Contains(ev.f.GetString("message"), "store") {
				t.Fatalf("SEND %d over the bound: %s", i, fmtFrame(ev.f))
			}
			if i < 3 {
				t.Fatalf("refused after %d messages", i)
			}
			break
		}
		c.expectClosed()
	})
}

// x-dedup-id: a publisher that resends (say, after losing the connection
// before the RECEIPT) gets a RECEIPT each time, and the consumer gets the
// message once.
func TestJetStreamDedup(t *testing.T) {
	srv := startServer(t, func(o *Options) { o.Store = openJetStream(t, "") })
	pub := connected(t, srv, "tcp")
	for _, body := range []string{"a", "a-again", "b"} {
		id := body[:1]
		pub.publish("/queue/orders", body, "x-dedup-id", "order-"+id) // waits for its RECEIPT
	}
	c := connected(t, srv, "tcp")
	c.subscribeNoWait("/queue/orders", "s")
	if m := c.expectMessage("a"); m.GetString("x-dedup-id") != "order-a" {
		t.Errorf("header kept: %s", fmtFrame(m))
	}
	c.expectMessage("b")
	c.sync()
}

// An ack:auto delivery is acknowledged in the store: nothing comes back
// after a restart.
func TestJetStreamAutoAckRemoves(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, func(o *Options) { o.Store = openJetStream(t, dir) })
	pub := connected(t, srv, "tcp")
	for _, body := range []string{"auto-1", "auto-2", "auto-3"} {
		pub.publish("/queue/auto", body)
	}
	c := connected(t, srv, "tcp")
	c.subscribeNoWait("/queue/auto", "a", "prefetch-count", "2")
	c.expectMessage("auto-1")
	c.expectMessage("auto-2")
	c.expectMessage("auto-3")
	c.sync()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, func(o *Options) { o.Store = openJetStream(t, dir) })
	if qs := srv.router.queueStats(); len(qs) != 0 {
		t.Fatalf("queues after a restart: %+v, want none", qs)
	}
}

// DIAG "store": where queue messages live, and how many are stored.
func TestDiagStore(t *testing.T) {
	mem := startServer(t, nil)
	d := dial(t, mem, "tcp")
	d.sendFrame(frame.DIAG, "store")
	if v := diagAnswer(t, d); v["kind"] != "memory" || v["durable"] != false {
		t.Errorf("memory store: %v", v)
	}
}

func TestDiagStoreJetStream(t *testing.T) {
	srv := startServer(t, func(o *Options) { o.Store = openJetStream(t, "") })
	pub := connected(t, srv, "tcp")
	for i := 0; i < 3; i++ {
		pub.publish("/queue/diag", "m"+strconv.Itoa(i), "x-dedup-id", strconv.Itoa(i%2))
	}
	d := dial(t, srv, "tcp")
	d.sendFrame(frame.DIAG, "store")
	v := diagAnswer(t, d)
	if v["kind"] != "jetstream" || v["durable"] != true || v["stored_messages"] != float64(2) ||
		v["duplicates"] != float64(1) || v["queued"] != float64(2) || v["stored_bytes"].(float64) <= 0 {
		t.Errorf("jetstream store: %v", v)
	}
}

// /metrics has the store's figures with a persistent store.
func TestStoreMetrics(t *testing.T) {
	srv := startServer(t, func(o *Options) { o.Store = openJetStream(t, "") })
	pub := connected(t, srv, "tcp")
	pub.publish("/queue/m", "one")
	pub.publish("/queue/m", "two")
	rec := httptest.NewRecorder()
	srv.metricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{"stompica_store_messages 2\n", "stompica_store_pending_publishes 0\n", "stompica_store_duplicates_total 0\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !strings.Contains(body, "stompica_store_latency_seconds ") || !strings.Contains(body, "stompica_store_bytes ") {
		t.Errorf("/metrics lacks the store's latency or bytes")
	}
}

// An external NATS (--nats) that goes away: a SEND to a durable queue gets
// an ERROR with its receipt-id, topics keep flowing, and once NATS is back
// the broker reconnects: SENDs are receipted and the stored messages are
// delivered.
func TestJetStreamExternalNATSGoesAway(t *testing.T) {
	natsDir := t.TempDir()
	runNATS := func(port int) *natsserver.Server {
		ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: natsDir, NoSigs: true, NoLog: true})
		if err != nil {
			t.Fatal(err)
		}
		ns.Start()
		if !ns.ReadyForConnections(waitTimeout) {
			t.Fatal("NATS not ready")
		}
		return ns
	}
	ns := runNATS(-1)
	port := ns.Addr().(*net.TCPAddr).Port
	st, err := jetstream.Open(jetstream.Options{URL: ns.ClientURL(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PublishTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, func(o *Options) { o.Store = st })
	pub := connected(t, srv, "tcp")
	pub.publish("/queue/ext", "before")

	ns.Shutdown()
	ns.WaitForShutdown()
	sub := connected(t, srv, "tcp")
	sub.subscribe("/topic/live", "t")
	pub.publish("/topic/live", "topics flow")
	sub.expectMessage("topics flow")
	pub.sendFrame(frame.SEND, "lost", "destination", "/queue/ext", "receipt", "r-away")
	if e := pub.expect(frame.ERROR); e.GetString("receipt-id") != "r-away" || !strings.Contains(e.GetString("message"), "store") {
		t.Fatalf("SEND with NATS away: %s", fmtFrame(e))
	}

	ns = runNATS(port)
	defer ns.Shutdown()
	pub = connected(t, srv, "tcp")
	var ev event
	if !poll(waitTimeout, 50*time.Millisecond, func() bool {
		id := pub.newReceipt()
		pub.sendFrame(frame.SEND, "after", "destination", "/queue/ext", "receipt", id)
		if ev = pub.nextFrame("RECEIPT " + id); ev.f.Command == frame.RECEIPT {
			return true
		}
		pub = connected(t, srv, "tcp") // the ERROR closed it; try again
		return false
	}) {
		t.Fatalf("no RECEIPT after NATS came back: %s", fmtFrame(ev.f))
	}
	c := connected(t, srv, "tcp")
	c.subscribeNoWait("/queue/ext", "q")
	c.expectMessage("before")
	c.expectMessage("after")
}
