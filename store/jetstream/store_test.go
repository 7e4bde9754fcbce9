package jetstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/stompica/stompica/store"
)

// doneRec records Appended calls.
type doneRec struct {
	mu   sync.Mutex
	ok   int
	errs []error
	ch   chan struct{}
}

func newDone() *doneRec { return &doneRec{ch: make(chan struct{}, 1<<16)} }

func (d *doneRec) Appended(_ *store.Message, err error) {
	d.mu.Lock()
	if err == nil {
		d.ok++
	} else {
		d.errs = append(d.errs, err)
	}
	d.mu.Unlock()
	d.ch <- struct{}{}
}

// wait waits for n Appended calls.
func (d *doneRec) wait(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-d.ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d appends confirmed", i, n)
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func openStore(t *testing.T, dir string, mod ...func(*Options)) *Store {
	t.Helper()
	o := Options{Dir: dir, Logger: testLogger(t)}
	for _, f := range mod {
		f(&o)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func appendN(t *testing.T, q store.Queue, from, n int, d *doneRec) {
	t.Helper()
	for i := from; i < from+n; i++ {
		m := &store.Message{ID: uint64(1000 + i), Data: []byte(fmt.Sprintf("msg-%d", i))}
		if err := q.Append(m, d); err != store.ErrPending {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	d.wait(t, n)
	if len(d.errs) > 0 {
		t.Fatalf("appends refused: %v", d.errs[0])
	}
}

// take takes n messages, waiting for the read-ahead when Next comes back
// empty (the queue notifies).
func take(t *testing.T, q store.Queue, n int) []*store.Message {
	t.Helper()
	wake := make(chan struct{}, 1)
	q.(store.Notifier).Notify(func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	var out []*store.Message
	for len(out) < n {
		m, err := q.Next()
		if err != nil {
			t.Fatal(err)
		}
		if m != nil {
			out = append(out, m)
			continue
		}
		select {
		case <-wake:
		case <-time.After(10 * time.Second):
			t.Fatalf("took %d of %d; Len %d", len(out), n, q.Len())
		}
	}
	return out
}

func TestStoreAppendTakeAck(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	q, err := s.Open("/queue/a.b*>c")
	if err != nil {
		t.Fatal(err)
	}
	d := newDone()
	appendN(t, q, 0, 100, d)
	if q.Len() != 100 {
		t.Fatalf("Len = %d, want 100", q.Len())
	}
	ms := take(t, q, 100)
	for i, m := range ms {
		if want := fmt.Sprintf("msg-%d", i); string(m.Data) != want || m.ID != uint64(1000+i) || m.Deliveries != 1 {
			t.Fatalf("message %d = %q id %d deliveries %d, want %q", i, m.Data, m.ID, m.Deliveries, want)
		}
	}
	if q.Len() != 0 {
		t.Fatalf("Len after taking all = %d", q.Len())
	}
	// Acknowledge the first 60; put 10 back; leave 30 in flight.
	for _, m := range ms[:60] {
		if err := q.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
	for i := 69; i >= 60; i-- {
		q.Requeue(ms[i], true)
	}
	if q.Len() != 10 {
		t.Fatalf("Len after requeue = %d, want 10", q.Len())
	}
	again := take(t, q, 1)
	if string(again[0].Data) != "msg-60" || again[0].Deliveries != 2 {
		t.Fatalf("requeued head = %q deliveries %d", again[0].Data, again[0].Deliveries)
	}
	q.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// After a restart the 40 not acknowledged are there, in order, and
	// count as delivered before.
	s = openStore(t, dir)
	defer s.Close()
	names, err := s.Load()
	if err != nil || len(names) != 1 || names[0] != "/queue/a.b*>c" {
		t.Fatalf("Load = %q, %v", names, err)
	}
	if s.IDFloor() <= 1100 {
		t.Fatalf("IDFloor %d not above the stored ids", s.IDFloor())
	}
	q, err = s.Open("/queue/a.b*>c")
	if err != nil {
		t.Fatal(err)
	}
	if q.Len() != 40 {
		t.Fatalf("Len after restart = %d, want 40", q.Len())
	}
	ms = take(t, q, 40)
	for i, m := range ms {
		if want := fmt.Sprintf("msg-%d", 60+i); string(m.Data) != want || m.Deliveries != 2 {
			t.Fatalf("after restart %d = %q deliveries %d, want %q delivered before", i, m.Data, m.Deliveries, want)
		}
		q.Ack(m)
	}
}

func TestStoreTransientKeepsOrder(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	q, _ := s.Open("/queue/mixed")
	d := newDone()
	var want []string
	for i := 0; i < 20; i++ {
		transient := i%3 == 0
		hdr := ""
		if transient {
			hdr = "persistent:false\n"
		}
		m := &store.Message{ID: uint64(i + 1), Data: frameData(fmt.Sprint(i), hdr)}
		want = append(want, fmt.Sprint(i))
		err := q.Append(m, d)
		if transient && err != nil || !transient && err != store.ErrPending {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	d.wait(t, 13)
	var got []string
	for _, m := range take(t, q, 20) {
		got = append(got, bodyOf(m.Data))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("order %v, want %v", got, want)
	}
}

func TestStoreRefusesOverLimit(t *testing.T) {
	s := openStore(t, t.TempDir(), func(o *Options) { o.MaxBytes = 4096 })
	defer s.Close()
	q, _ := s.Open("/queue/full")
	d := newDone()
	for i := 0; i < 20; i++ {
		q.Append(&store.Message{ID: uint64(i + 1), Data: make([]byte, 500)}, d)
	}
	d.wait(t, 20)
	if d.ok == 0 || len(d.errs) == 0 {
		t.Fatalf("stored %d, refused %d: want some of each", d.ok, len(d.errs))
	}
	if q.Len() != d.ok {
		t.Fatalf("Len %d, want the %d stored", q.Len(), d.ok)
	}
}

func TestStoreDataDirChecks(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	_, err := Open(Options{Dir: dir, Logger: testLogger(t)})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("second Open of a locked dir: %v", err)
	}
	s.Close()

	foreign := t.TempDir()
	os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("mine"), 0o644)
	if _, err := Open(Options{Dir: foreign, Logger: testLogger(t)}); err == nil || !strings.Contains(err.Error(), "not a stompica data dir") {
		t.Fatalf("foreign dir: %v", err)
	}

	// A stream whose metadata is unreadable is reported, not recreated.
	meta := filepath.Join(dir, "jetstream", "$G", "streams", streamName, "meta.inf")
	if err := os.WriteFile(meta, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Dir: dir, Logger: testLogger(t)}); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged dir: %v", err)
	}
}

// runNATS runs a NATS server with JetStream on a loopback port (the given
// one, or a random one when 0), storing in dir.
func runNATS(t *testing.T, dir string, port int) *natsserver.Server {
	t.Helper()
	if port == 0 {
		port = -1
	}
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// An external NATS that goes away: appends fail (at once, or when their
// acknowledgement is overdue) instead of hanging; once it is back, the
// store reconnects and serves the messages it held and new ones.
func TestStoreExternalNATSGoesAway(t *testing.T) {
	natsDir := t.TempDir()
	ns := runNATS(t, natsDir, 0)
	port := ns.Addr().(*net.TCPAddr).Port
	s, err := Open(Options{URL: ns.ClientURL(), Logger: testLogger(t), PublishTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q, _ := s.Open("/queue/away")
	d := newDone()
	appendN(t, q, 0, 10, d)

	ns.Shutdown()
	ns.WaitForShutdown()
	d = newDone()
	refused := 0
	for i := 0; i < 5; i++ {
		err := q.Append(&store.Message{ID: uint64(100 + i), Data: []byte("while away")}, d)
		switch err {
		case store.ErrPending:
			d.wait(t, 1)
			if len(d.errs) == 0 {
				t.Fatalf("append %d stored with NATS gone", i)
			}
			refused++
		case nil:
			t.Fatalf("append %d stored with NATS gone", i)
		default:
			refused++
		}
	}
	if refused != 5 {
		t.Fatalf("%d of 5 appends refused", refused)
	}

	runNATS(t, natsDir, port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		d = newDone()
		err := q.Append(&store.Message{ID: 200, Data: []byte("msg-10")}, d)
		if err == store.ErrPending {
			d.wait(t, 1)
			if len(d.errs) == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconnection: %v %v", err, d.errs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ms := take(t, q, 11)
	for i, m := range ms {
		if want := fmt.Sprintf("msg-%d", i); string(m.Data) != want {
			t.Fatalf("after reconnecting, message %d = %q, want %q", i, m.Data, want)
		}
		q.Ack(m)
	}
}

// A message whose DedupID was seen on the same queue within the window is
// confirmed but stored once; the same id on another queue is another
// message.
func TestStoreDedup(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	q, _ := s.Open("/queue/dedup")
	other, _ := s.Open("/queue/other")
	d := newDone()
	for i, dq := range []store.Queue{q, q, q, other} {
		id := "order-17"
		if i == 2 {
			id = "order-18"
		}
		if err := dq.Append(&store.Message{ID: uint64(i + 1), Data: frameData(id, "x-dedup-id:"+id+"\n")}, d); err != store.ErrPending {
			t.Fatal(err)
		}
	}
	d.wait(t, 4)
	if d.ok != 4 {
		t.Fatalf("%d of 4 confirmed: %v", d.ok, d.errs)
	}
	if q.Len() != 2 || other.Len() != 1 {
		t.Fatalf("Len %d and %d, want 2 and 1", q.Len(), other.Len())
	}
	ms := take(t, q, 2)
	if bodyOf(ms[0].Data) != "order-17" || bodyOf(ms[1].Data) != "order-18" {
		t.Fatalf("got %q, %q", ms[0].Data, ms[1].Data)
	}
	if st, err := s.Stats(); err != nil || st.Duplicates != 1 || st.Messages != 3 {
		t.Fatalf("stats %+v %v: want 1 duplicate, 3 stored", st, err)
	}
}

// frameData is a message's Data as the broker encodes it, with extra
// header lines hdr ("k:v\n"...).
func frameData(body, hdr string) []byte {
	return []byte("message-id:1\ndestination:/queue/x\n" + hdr + "content-length:" + fmt.Sprint(len(body)) + "\n\n" + body + "\x00")
}

func bodyOf(data []byte) string {
	_, body, _ := strings.Cut(string(data), "\n\n")
	return strings.TrimSuffix(body, "\x00")
}

// collect makes q's next appends wait as if maxQueuePubs records were in
// flight; the returned func sends the record they make.
func collect(t *testing.T, q store.Queue) (send func()) {
	t.Helper()
	qq := q.(*queue)
	qq.mu.Lock()
	qq.sending += maxQueuePubs
	qq.mu.Unlock()
	return func() {
		qq.mu.Lock()
		qq.sending -= maxQueuePubs
		failed := qq.flushLocked(nil)
		qq.mu.Unlock()
		if len(failed) > 0 {
			t.Fatalf("record refused: %v", failed[0].err)
		}
	}
}

// streamMsgs is the number of JetStream messages (records) of the queues'
// stream.
func streamMsgs(t *testing.T, s *Store) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := s.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// Group commit: messages appended while records are in flight go to
// JetStream as one record; they are handed out from memory (the very
// messages appended); a graceful stop with the record partly acknowledged
// brings back exactly the messages not acknowledged; once all are, the
// record is gone.
func TestStoreGroupCommit(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	q, _ := s.Open("/queue/group")
	d := newDone()
	send := collect(t, q)
	in := make([]*store.Message, 50)
	for i := range in {
		in[i] = &store.Message{ID: uint64(1000 + i), Data: []byte(fmt.Sprintf("msg-%d", i)), Value: i}
		if err := q.Append(in[i], d); err != store.ErrPending {
			t.Fatal(err)
		}
	}
	send()
	d.wait(t, 50)
	if len(d.errs) > 0 {
		t.Fatal(d.errs[0])
	}
	if n := streamMsgs(t, s); n != 1 {
		t.Fatalf("%d JetStream messages for 50 appended together, want 1 record", n)
	}
	if st, err := s.Stats(); err != nil || st.Messages != 50 {
		t.Fatalf("stats %+v %v: want 50 messages", st, err)
	}
	ms := take(t, q, 50)
	for i, m := range ms {
		if m != in[i] || m.Value != i || m.Deliveries != 1 {
			t.Fatalf("message %d: %p (value %v, deliveries %d), want the one appended, %p", i, m, m.Value, m.Deliveries, in[i])
		}
	}
	// Acknowledge the even ones of the first 40.
	for i := 0; i < 40; i += 2 {
		q.Ack(ms[i])
	}
	if st, _ := s.Stats(); st.Messages != 30 {
		t.Fatalf("stats %+v: want 30 messages", st)
	}
	q.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir)
	q, _ = s.Open("/queue/group")
	if q.Len() != 30 {
		t.Fatalf("Len after restart = %d, want 30", q.Len())
	}
	if st, _ := s.Stats(); st.Messages != 30 {
		t.Fatalf("stats after restart %+v: want 30 messages", st)
	}
	var want []string
	for i := 1; i < 40; i += 2 {
		want = append(want, fmt.Sprintf("msg-%d", i))
	}
	for i := 40; i < 50; i++ {
		want = append(want, fmt.Sprintf("msg-%d", i))
	}
	ms = take(t, q, 30)
	for i, m := range ms {
		if string(m.Data) != want[i] || m.Deliveries != 2 || m.Value != nil {
			t.Fatalf("after restart %d = %q deliveries %d value %v, want %q read back, delivered before", i, m.Data, m.Deliveries, m.Value, want[i])
		}
	}
	// A crash (no graceful stop) with the record partly acknowledged: all
	// of it comes again, flagged delivered before.
	q.Ack(ms[0])
	q.Close()
	s.shutdown()
	s = openStore(t, dir)
	defer s.Close()
	q, _ = s.Open("/queue/group")
	if q.Len() != 30 {
		t.Fatalf("Len after a crash = %d, want 30 (the record's unacknowledged part and the one acknowledged after the last stop)", q.Len())
	}
	ms = take(t, q, 30)
	for i, m := range ms {
		if string(m.Data) != want[i] || m.Deliveries != 2 {
			t.Fatalf("after a crash %d = %q deliveries %d, want %q delivered before", i, m.Data, m.Deliveries, want[i])
		}
		q.Ack(m)
	}
	deadline := time.Now().Add(10 * time.Second)
	for streamMsgs(t, s) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("record still stored with all its messages acknowledged")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st, _ := s.Stats(); st.Messages != 0 {
		t.Fatalf("stats %+v: want 0 messages", st)
	}
}

// JetStream takes acks asynchronously: a record acknowledged just before a
// graceful stop, whose ack JetStream had not processed, does not come
// again after the restart (the skip list names it).
func TestStoreAckInFlightAtStop(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	q, _ := s.Open("/queue/late-ack")
	d := newDone()
	send := collect(t, q)
	for i := 0; i < 10; i++ {
		if err := q.Append(&store.Message{ID: uint64(1 + i), Data: []byte(fmt.Sprint(i))}, d); err != store.ErrPending {
			t.Fatal(err)
		}
	}
	send()
	d.wait(t, 10)
	ms := take(t, q, 10)
	qq := q.(*queue)
	// Wait for the record's read-back (its ack subject), then lose the
	// ack: it goes to a subject nobody reads, as if JetStream had not
	// processed it before the stop.
	deadline := time.Now().Add(10 * time.Second)
	for {
		qq.mu.Lock()
		n := len(qq.pretaken)
		qq.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the record was not read back")
		}
		time.Sleep(5 * time.Millisecond)
	}
	qq.mu.Lock()
	for _, m := range ms {
		qq.refs[m].r.reply = "stompica.test.nowhere"
	}
	qq.mu.Unlock()
	for _, m := range ms {
		q.Ack(m)
	}
	q.Close()
	s.Close()

	s = openStore(t, dir)
	defer s.Close()
	q, _ = s.Open("/queue/late-ack")
	// The record whose ack was lost is still stored, unless the restarted
	// store has already read it back and acknowledged it.
	if n := streamMsgs(t, s); n > 1 {
		t.Fatalf("%d records stored, want at most the 1 whose ack was lost", n)
	}
	if q.Len() != 0 {
		t.Fatalf("Len after restart = %d, want 0: every message was acknowledged", q.Len())
	}
	for streamMsgs(t, s) != 0 { // read back, skipped, acknowledged
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatal("the skipped record is still stored")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if m, _ := q.Next(); m != nil {
		t.Fatalf("Next after restart = %q, want nothing", m.Data)
	}
}
