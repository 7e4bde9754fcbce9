package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/go-stomp/stomp/v3"
)

// The original stompica's examples (examples/js in the C broker), redone
// against the real binary with a third-party client.

// TestOriginalTTLLateSubscriber: with the original's TTL argument, a topic
// message published before anyone listens reaches the first late subscriber.
func TestOriginalTTLLateSubscriber(t *testing.T) {
	addr := startBroker(t, "processors=2", "max_stale_queue_size=100", "TTL=60000")
	topic := dest(t, "topic")
	pub := dial(t, addr)
	send(t, pub, topic, "published before anyone listened", stomp.SendOpt.Receipt)
	late := subscribe(t, dial(t, addr), topic, stomp.AckAuto, "late")
	if m := recv(t, late); string(m.Body) != "published before anyone listened" || header(m, "destination") != topic {
		t.Fatalf("late subscriber got %q on %q", m.Body, header(m, "destination"))
	}
	// Handed to the first subscriber only.
	second := subscribe(t, dial(t, addr), topic, stomp.AckAuto, "second")
	send(t, pub, topic, "after", stomp.SendOpt.Receipt)
	if m := recv(t, second); string(m.Body) != "after" {
		t.Fatalf("second subscriber got %q, want only the new message", m.Body)
	}
}

// diag sends a DIAG query on a connection subscribed to the DIAG destination.
func diag(t *testing.T, conn *stomp.Conn, sub *stomp.Subscription, query string) map[string]any {
	t.Helper()
	send(t, conn, "DIAG", query)
	m := recv(t, sub)
	var v map[string]any
	if err := json.Unmarshal(m.Body, &v); err != nil {
		t.Fatalf("DIAG %s: %v: %q", query, err, m.Body)
	}
	return v
}

// TestOriginalDiag: the DIAG queries of the original, answered as JSON.
func TestOriginalDiag(t *testing.T) {
	addr := startBroker(t, "--ttl", "60000")
	conn := dial(t, addr)
	sub := subscribe(t, conn, "DIAG", stomp.AckAuto, "diag")
	other := dial(t, addr)
	subscribe(t, other, dest(t, "topic"), stomp.AckAuto, "t")
	send(t, other, dest(t, "topic"), "retained", stomp.SendOpt.Receipt)
	send(t, other, dest(t, "queue"), "queued", stomp.SendOpt.Receipt)

	if v := diag(t, conn, sub, "session-size"); v["session-size"] != float64(2) {
		t.Errorf("session-size: %v", v)
	}
	if v := diag(t, conn, sub, "session-connected-size"); v["session-connected-size"] != float64(2) {
		t.Errorf("session-connected-size: %v", v)
	}
	if v := diag(t, conn, sub, "pubsub-size"); v["pubsub-size"] != float64(2) {
		t.Errorf("pubsub-size: %v", v)
	}
	if v := diag(t, conn, sub, "session"); v["clients"] != float64(2) || v["connected"] != float64(2) || v["websockets"] != float64(0) {
		t.Errorf("session: %v", v)
	}
	if v := diag(t, conn, sub, "subs"); v["subscriptions"] != float64(2) || len(v["queues"].([]any)) != 1 {
		t.Errorf("subs: %v", v)
	}
	if v := diag(t, conn, sub, "ws_buffer"); v["websockets"] != float64(0) || v["max_pending"] == nil {
		t.Errorf("ws_buffer: %v", v)
	}
	// Retained: the message above and the barriers' receipt SENDs (TTL is on).
	if v := diag(t, conn, sub, "stale"); v["stale"].(float64) < 1 || v["queued"] != float64(1) || v["ttl_ms"] != float64(60000) {
		t.Errorf("stale: %v", v)
	}
}

// TestOriginalWorkQueueRoundRobin: a "#name" work queue shares 100 messages
// over 10 consumers, round robin: 10 each, each message once.
func TestOriginalWorkQueueRoundRobin(t *testing.T) {
	addr := startBroker(t)
	queue := "#jobs-" + runID
	const consumers, msgs = 10, 100
	subs := make([]*stomp.Subscription, consumers)
	for i := range subs {
		subs[i] = subscribe(t, dial(t, addr), queue, stomp.AckAuto, "worker-"+strconv.Itoa(i))
	}
	pub := dial(t, addr)
	for i := range msgs {
		send(t, pub, queue, "job-"+strconv.Itoa(i))
	}
	barrier(t, pub)
	seen := map[string]int{}
	for i, sub := range subs {
		for range msgs / consumers {
			m := recv(t, sub)
			seen[string(m.Body)]++
			if header(m, "destination") != queue {
				t.Errorf("worker %d: destination %q", i, header(m, "destination"))
			}
		}
	}
	if len(seen) != msgs {
		t.Fatalf("%d distinct jobs delivered, want %d", len(seen), msgs)
	}
	for job, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", job, n)
		}
	}
}

// TestOriginalThousandSubscribers: 1000 connections, each subscribed to one
// topic; every message reaches all of them, and DIAG counts them.
func TestOriginalThousandSubscribers(t *testing.T) {
	addr := startBroker(t)
	topic := dest(t, "topic")
	const n, msgs = 1000, 5
	subs := make([]*stomp.Subscription, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := stomp.Dial("tcp", addr, connOpts(t)...)
			if err != nil {
				errs <- err
				return
			}
			t.Cleanup(func() { _ = conn.MustDisconnect() })
			sub, err := conn.Subscribe(topic, stomp.AckAuto)
			if err == nil {
				err = conn.Send(topic+".barrier", "text/plain", nil, stomp.SendOpt.Receipt)
			}
			if err != nil {
				errs <- fmt.Errorf("connection %d: %w", i, err)
				return
			}
			mu.Lock()
			subs[i] = sub
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	admin := dial(t, addr)
	diagSub := subscribe(t, admin, "DIAG", stomp.AckAuto, "diag")
	if v := diag(t, admin, diagSub, "session"); v["clients"] != float64(n+1) || v["subscriptions"] != float64(n+1) {
		t.Errorf("DIAG session with %d subscribers: %v", n, v)
	}
	for i := range msgs {
		send(t, admin, topic, "tick-"+strconv.Itoa(i))
	}
	for i, sub := range subs {
		for k := range msgs {
			if m := recv(t, sub); string(m.Body) != "tick-"+strconv.Itoa(k) {
				t.Fatalf("subscriber %d: message %d is %q", i, k, m.Body)
			}
		}
	}
}
