package server

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
	"github.com/stompica/stompica/store"
)

// faultStore is the memory store with faults injected per queue: Append or
// Ack fail, Open fails, or Append completes asynchronously (held until the
// test releases it). Load returns loadNames, or fails with loadErr.
type faultStore struct {
	mem store.Store

	mu         sync.Mutex
	failAppend map[string]error
	failAck    map[string]error
	failOpen   map[string]error
	async      map[string]bool
	held       []heldAppend // async appends waiting for release
	heldSignal chan struct{}

	loadNames []string
	loadErr   error
	loaded    map[string][]*store.Message // given back by Open (persistent-store restart)
	closed    int
}

type heldAppend struct {
	q    *faultQueue
	m    *store.Message
	done store.Done
}

func newFaultStore() *faultStore {
	return &faultStore{
		mem:        store.NewMemory(),
		failAppend: map[string]error{},
		failAck:    map[string]error{},
		failOpen:   map[string]error{},
		async:      map[string]bool{},
		heldSignal: make(chan struct{}, 100),
	}
}

func (s *faultStore) Load() ([]string, error) { return s.loadNames, s.loadErr }

func (s *faultStore) Open(name string) (store.Queue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failOpen[name]; err != nil {
		return nil, err
	}
	q, _ := s.mem.Open(name)
	for _, m := range s.loaded[name] {
		q.Append(m, nil) //nolint:errcheck // memory
	}
	delete(s.loaded, name)
	return &faultQueue{Queue: q, s: s, name: name}, nil
}

func (s *faultStore) Close() error {
	s.mu.Lock()
	s.closed++
	s.mu.Unlock()
	return nil
}

// release completes the held asynchronous appends, refusing them with err
// (or storing them when err is nil), from a goroutine of the store's.
func (s *faultStore) release(err error) {
	s.mu.Lock()
	held := s.held
	s.held = nil
	s.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, h := range held {
			if err == nil {
				h.q.mu.Lock()
				h.q.Queue.Append(h.m, nil) //nolint:errcheck // memory
				h.q.mu.Unlock()
			}
			h.done.Appended(h.m, err)
		}
	}()
	wg.Wait()
}

type faultQueue struct {
	store.Queue
	s    *faultStore
	name string
	// mu guards the inner queue against release's goroutine (a real
	// asynchronous store guards its own state the same way).
	mu sync.Mutex
}

func (q *faultQueue) Append(m *store.Message, done store.Done) error {
	q.s.mu.Lock()
	err, async := q.s.failAppend[q.name], q.s.async[q.name]
	if err == nil && async {
		q.s.held = append(q.s.held, heldAppend{q, m, done})
	}
	q.s.mu.Unlock()
	switch {
	case err != nil:
		return err
	case async:
		q.s.heldSignal <- struct{}{}
		return store.ErrPending
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.Queue.Append(m, done)
}

func (q *faultQueue) Next() (*store.Message, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.Queue.Next()
}

func (q *faultQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.Queue.Len()
}

func (q *faultQueue) Ack(m *store.Message) error {
	q.s.mu.Lock()
	err := q.s.failAck[q.name]
	q.s.mu.Unlock()
	if err != nil {
		return err
	}
	return q.Queue.Ack(m)
}

func (q *faultQueue) Requeue(m *store.Message, delivered bool) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.Queue.Requeue(m, delivered)
}

// faultServer starts a broker on a fault store that setup configures.
func faultServer(t *testing.T, setup func(*faultStore)) (*Server, *faultStore) {
	t.Helper()
	fs := newFaultStore()
	setup(fs)
	return startServer(t, func(o *Options) { o.Store = fs }), fs
}

// expectRefused expects an ERROR about want carrying receipt-id receipt
// (none when receipt is ""), then the close.
func expectRefused(t *testing.T, c *client, want, receipt string) *frame.Frame {
	t.Helper()
	e := c.expectError(want)
	if got, ok := e.Get("receipt-id"); string(got) != receipt || ok != (receipt != "") {
		t.Errorf("ERROR receipt-id = %q, want %q: %s", got, receipt, fmtFrame(e))
	}
	c.expectClosed()
	return e
}

// TestStoreAppendError: a SEND to a queue whose store refuses the message
// is answered with an ERROR carrying the receipt-id, never a RECEIPT; the
// message is not delivered and leaves nothing counted in the memory
// budget; other queues keep working.
func TestStoreAppendError(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv, _ := faultServer(t, func(fs *faultStore) { fs.failAppend["/queue/bad"] = errors.New("disk full") })
		cons := connected(t, srv, tr)
		cons.subscribe("/queue/bad", "b")
		cons.subscribe("/queue/good", "g")

		pub := connected(t, srv, tr)
		pub.publish("/queue/good", "kept")
		cons.expectMessage("kept")
		pub.sendFrame(frame.SEND, "lost", "destination", "/queue/bad", "receipt", "r-bad")
		e := expectRefused(t, pub, "disk full", "r-bad")
		if msg := e.GetString("message"); !strings.Contains(msg, "/queue/bad") || !strings.Contains(msg, "store") {
			t.Errorf("ERROR message %q names neither the store nor the queue", msg)
		}

		// Without a receipt: an ERROR all the same.
		pub2 := connected(t, srv, tr)
		pub2.sendFrame(frame.SEND, "lost", "destination", "/queue/bad")
		expectRefused(t, pub2, "disk full", "")

		cons.sync() // the refused messages were never delivered
		if n, b := srv.input.msgs.Load(), srv.input.bytes.Load(); n != 0 || b != 0 {
			t.Errorf("memory budget counts %d messages, %d bytes after refusals; want 0", n, b)
		}
		for _, q := range srv.router.queueStats() {
			if q.Name == "/queue/bad" && q.Enqueued != 0 {
				t.Errorf("refused messages counted as enqueued: %+v", q)
			}
		}
		if got := srv.stats.errorsTotal(); got != 2 {
			t.Errorf("errors counted = %d, want 2", got)
		}
	})
}

// TestStoreCommitError: a COMMIT whose SEND the store refuses is answered
// with an ERROR carrying the COMMIT's receipt-id; the SENDs before it in the
// transaction that the store took are delivered (the store has them).
func TestStoreCommitError(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv, _ := faultServer(t, func(fs *faultStore) { fs.failAppend["/queue/bad"] = errors.New("quota exceeded") })
		cons := connected(t, srv, tr)
		cons.subscribe("/queue/good", "g")
		pub := connected(t, srv, tr)
		pub.request(frame.BEGIN, "", "transaction", "t1")
		pub.request(frame.SEND, "one", "destination", "/queue/good", "transaction", "t1")
		pub.request(frame.SEND, "two", "destination", "/queue/bad", "transaction", "t1")
		pub.sendFrame(frame.COMMIT, "", "transaction", "t1", "receipt", "r-commit")
		expectRefused(t, pub, "quota exceeded", "r-commit")
		cons.expectMessage("one")
		cons.sync()
	})
}

// TestStoreOpenError: a queue whose store cannot be opened refuses SENDs
// with an ERROR; once the store recovers the queue works.
func TestStoreOpenError(t *testing.T) {
	srv, fs := faultServer(t, func(fs *faultStore) { fs.failOpen["/queue/closed"] = errors.New("no such volume") })
	pub := connected(t, srv, "tcp")
	pub.sendFrame(frame.SEND, "x", "destination", "/queue/closed", "receipt", "r1")
	expectRefused(t, pub, "no such volume", "r1")

	fs.mu.Lock()
	delete(fs.failOpen, "/queue/closed")
	fs.mu.Unlock()
	pub = connected(t, srv, "tcp")
	pub.publish("/queue/closed", "now open")
	cons := connected(t, srv, "tcp")
	cons.subscribeNoWait("/queue/closed", "c")
	cons.expectMessage("now open")
}

// TestStoreAckError: when the store fails to record an ACK, the consumer
// gets an ERROR naming the store error and is disconnected, the broker
// keeps running, and the message (still unacknowledged in the store) goes
// to another consumer, flagged redelivered.
func TestStoreAckError(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv, _ := faultServer(t, func(fs *faultStore) { fs.failAck["/queue/acks"] = errors.New("log unavailable") })
		first := connected(t, srv, tr)
		first.subscribe("/queue/acks", "a", "ack", "client-individual")
		pub := connected(t, srv, tr)
		pub.publish("/queue/acks", "job")
		m := first.expectMessage("job")
		first.sendFrame(frame.ACK, "", "id", ackID(t, m), "receipt", "r-ack")
		expectRefused(t, first, "log unavailable", "r-ack")

		second := connected(t, srv, tr)
		second.subscribeNoWait("/queue/acks", "b", "ack", "auto")
		if m := second.expectMessage("job"); m.GetString("redelivered") != "true" {
			t.Errorf("message after a failed ACK not flagged redelivered: %s", fmtFrame(m))
		}
		second.sync()
	})
}

// TestStoreLoadError: a store that cannot load what it holds makes New
// fail with an error that says so; no broker half-starts.
func TestStoreLoadError(t *testing.T) {
	fs := newFaultStore()
	fs.loadErr = errors.New("corrupt index")
	srv, err := New(&Options{Port: -1, Logger: discardLogger(), Store: fs})
	if err == nil {
		srv.Shutdown(t.Context()) //nolint:errcheck
		t.Fatal("New succeeded with a store that cannot load")
	}
	if msg := err.Error(); !strings.Contains(msg, "store") || !strings.Contains(msg, "corrupt index") {
		t.Errorf("New: %v; want an error naming the store and its cause", err)
	}
	// A queue that fails to open at load time fails New the same way.
	fs = newFaultStore()
	fs.loadNames = []string{"/queue/x"}
	fs.failOpen["/queue/x"] = errors.New("bad segment")
	if _, err := New(&Options{Port: -1, Logger: discardLogger(), Store: fs}); err == nil || !strings.Contains(err.Error(), "bad segment") {
		t.Errorf("New with a queue that cannot open: %v", err)
	}
}

// TestStoreLoadRestart: messages a persistent store held before a restart
// (Data only, no in-process Value) are loaded at start, delivered with
// their headers, body and message-id, and later messages get higher ids.
func TestStoreLoadRestart(t *testing.T) {
	enc := func(id uint64, body string, kv ...string) *store.Message {
		m := &message{id: id, dest: "/queue/kept"}
		f := frame.New(frame.SEND, kv...)
		m.fill(f.Headers, []byte(body), time.Now(), false, nil)
		return &store.Message{ID: id, Data: m.shared}
	}
	srv, _ := faultServer(t, func(fs *faultStore) {
		fs.loadNames = []string{"/queue/kept"}
		fs.loaded = map[string][]*store.Message{"/queue/kept": {
			enc(1000, "first", "x-app", "a:b\\c"),
			enc(1001, "second", "content-type", "text/plain"),
		}}
	})
	qs := srv.router.queueStats()
	if len(qs) != 1 || qs[0].Name != "/queue/kept" || qs[0].Depth != 2 {
		t.Fatalf("queues at start: %+v, want /queue/kept with depth 2", qs)
	}
	c := connected(t, srv, "tcp")
	c.subscribeNoWait("/queue/kept", "k")
	m := c.expectMessage("first")
	if got := m.GetString("x-app"); got != "a:b\\c" {
		t.Errorf("x-app = %q after the round trip through the store", got)
	}
	if got := m.GetString("message-id"); got != "1000" {
		t.Errorf("message-id = %q, want 1000", got)
	}
	m = c.expectMessage("second")
	if got := m.GetString("content-type"); got != "text/plain" || m.GetString("message-id") != "1001" {
		t.Errorf("second message: %s", fmtFrame(m))
	}
	c.sync()
	pub := connected(t, srv, "tcp")
	pub.publish("/queue/kept", "new")
	if id, _ := strconv.ParseUint(c.expectMessage("new").GetString("message-id"), 10, 64); id <= 1001 {
		t.Errorf("new message id %d, want above the loaded ones", id)
	}
	if n := srv.input.msgs.Load(); n != 0 {
		t.Errorf("memory budget counts %d messages after delivery, want 0", n)
	}
}

// TestStoreAsyncReceipt: with a store that confirms appends later, the
// RECEIPT of a SEND (or COMMIT) goes out only once the store confirmed it,
// and a refusal becomes an ERROR with the receipt-id.
func TestStoreAsyncReceipt(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv, fs := faultServer(t, func(fs *faultStore) { fs.async["/queue/slow"] = true })
		cons := connected(t, srv, tr)
		cons.subscribe("/queue/slow", "s")
		pub := connected(t, srv, tr)

		pub.sendFrame(frame.SEND, "one", "destination", "/queue/slow", "receipt", "r-one")
		<-fs.heldSignal
		// A later frame's RECEIPT comes first: the SEND's waits for the store.
		pub.sync()
		cons.sync() // not delivered either: the store has not stored it
		fs.release(nil)
		pub.expectReceipt("r-one")
		cons.expectMessage("one")

		// A COMMIT waits for every message of the transaction.
		pub.request(frame.BEGIN, "", "transaction", "t")
		pub.request(frame.SEND, "two", "destination", "/queue/slow", "transaction", "t")
		pub.request(frame.SEND, "three", "destination", "/queue/slow", "transaction", "t")
		pub.sendFrame(frame.COMMIT, "", "transaction", "t", "receipt", "r-commit")
		<-fs.heldSignal
		<-fs.heldSignal
		pub.sync()
		fs.release(nil)
		pub.expectReceipt("r-commit")
		cons.expectMessage("two")
		cons.expectMessage("three")

		// A refusal: ERROR with the receipt-id, no RECEIPT, no delivery.
		pub.sendFrame(frame.SEND, "four", "destination", "/queue/slow", "receipt", "r-four")
		<-fs.heldSignal
		fs.release(errors.New("replica lost"))
		expectRefused(t, pub, "replica lost", "r-four")
		cons.sync()
		if n := srv.input.msgs.Load(); n != 0 {
			t.Errorf("memory budget counts %d messages, want 0", n)
		}
	})
}

// TestStoreClosedAtShutdown: Shutdown closes the store it was given.
func TestStoreClosedAtShutdown(t *testing.T) {
	fs := newFaultStore()
	srv, err := New(&Options{Port: -1, Logger: discardLogger(), Store: fs})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if fs.closed != 1 {
		t.Errorf("store closed %d times, want 1", fs.closed)
	}
}
