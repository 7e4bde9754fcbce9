package server

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
	"github.com/stompica/stompica/store/jetstream"
)

// streamServer is a broker on a fresh JetStream store.
func streamServer(t *testing.T, record ...string) *Server {
	return startServer(t, func(o *Options) {
		o.Store = openJetStream(t, "")
		o.Record = record
	})
}

// expectOffset expects a MESSAGE with body and x-stream-offset offset.
func (c *client) expectOffset(body string, offset uint64) *frame.Frame {
	c.t.Helper()
	f := c.expectMessage(body)
	if got := f.GetString("x-stream-offset"); got != strconv.FormatUint(offset, 10) {
		c.t.Fatalf("%s client: message %q: x-stream-offset %q, want %d", c.tr, body, got, offset)
	}
	return f
}

// Every x-stream-offset form starts where it says, and each stream
// subscription then continues with the messages stored after: the marker
// published last is the next message each one gets, nothing in between.
func TestStreamOffsets(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := streamServer(t)
		pub := connected(t, srv, tr)
		pub.publish("/stream/s", "m1")
		pub.publish("/stream/s", "m2")
		time.Sleep(20 * time.Millisecond) // a time strictly between m2 and m3 in the log
		between := time.Now()
		time.Sleep(20 * time.Millisecond)
		for i := 3; i <= 5; i++ {
			pub.publish("/stream/s", "m"+strconv.Itoa(i))
		}
		cases := []struct {
			offset string
			first  int // first message replayed (6: none, only what comes next)
		}{
			{"first", 1},
			{"last", 5},
			{"next", 6},
			{"3", 3},
			{"1", 1},
			{"6", 6},    // the next offset: nothing yet
			{"1000", 6}, // past the end: the next message, as RabbitMQ does
			{fmt.Sprintf("timestamp=%.3f", float64(between.UnixMilli())/1000), 3},
			{"timestamp=0", 1},
			{"timestamp=" + strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10), 6},
			{"-5m", 1},
		}
		subs := make([]*client, len(cases))
		for i, tc := range cases {
			c := connected(t, srv, tr)
			c.subscribeNoWait("/stream/s", "s", "x-stream-offset", tc.offset)
			subs[i] = c
			for n := tc.first; n <= 5; n++ {
				c.expectOffset("m"+strconv.Itoa(n), uint64(n))
			}
		}
		for _, c := range subs {
			c.sync() // the SUBSCRIBE is handled: its reader exists
		}
		pub.publish("/stream/s", "m6")
		for i, c := range subs {
			t.Logf("offset %s", cases[i].offset)
			c.expectOffset("m6", 6)
		}
		// Without x-stream-offset a /stream/ subscription is live, and its
		// messages carry their offset too.
		live := connected(t, srv, tr)
		live.subscribe("/stream/s", "l")
		pub.publish("/stream/s", "m7")
		live.expectOffset("m7", 7)
	})
}

func TestStreamBadOffsets(t *testing.T) {
	srv := streamServer(t, "/topic/rec.>")
	for _, tc := range []struct{ dest, hdr, val, want string }{
		{"/stream/s", "x-stream-offset", "soon", "invalid x-stream-offset"},
		{"/stream/s", "x-stream-offset", "timestamp=x", "invalid x-stream-offset"},
		{"/stream/s", "x-stream-offset", "-5parsecs", "invalid x-stream-offset"},
		{"/stream/s", "x-replay-speed", "fast", "invalid x-replay-speed"},
		{"/stream/*", "x-stream-offset", "first", "without wildcards"},
		{"/topic/other", "x-stream-offset", "first", "not recorded"},
		{"/queue/q", "x-stream-offset", "first", "not queues"},
	} {
		c := connected(t, srv, "tcp")
		c.sendFrame(frame.SUBSCRIBE, "", "destination", tc.dest, "id", "x", tc.hdr, tc.val)
		c.expectError(tc.want)
	}
}

// Without a store that keeps streams, /stream/ destinations are refused.
func TestStreamNeedsStore(t *testing.T) {
	srv := startServer(t, nil)
	c := connected(t, srv, "tcp")
	c.sendFrame(frame.SEND, "x", "destination", "/stream/s", "receipt", "r")
	if f := c.expectError("streams need --data-dir or --nats"); f.GetString("receipt-id") != "r" {
		t.Fatalf("ERROR without receipt-id: %s", fmtFrame(f))
	}
	c = connected(t, srv, "tcp")
	c.sendFrame(frame.SUBSCRIBE, "", "destination", "/stream/s", "id", "x")
	c.expectError("streams need --data-dir or --nats")
}

// A replay that runs while messages are published goes on with them: every
// message exactly once, in order, offsets one apart.
func TestStreamReplayThenLive(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := streamServer(t)
		pub := connected(t, srv, tr)
		const before, during = 300, 300
		for i := range before {
			pub.sendFrame(frame.SEND, "m"+strconv.Itoa(i), "destination", "/stream/r")
		}
		pub.sync()
		c := connected(t, srv, tr)
		c.subscribeNoWait("/stream/r", "s", "x-stream-offset", "first", "ack", "client-individual", "prefetch-count", "10")
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := before; i < before+during; i++ {
				pub.trySend(string(pub.encode(frame.SEND, "m"+strconv.Itoa(i), "destination", "/stream/r")))
			}
		}()
		for i := range before + during {
			f := c.expectOffset("m"+strconv.Itoa(i), uint64(i+1))
			c.sendFrame(frame.ACK, "", "id", ackID(t, f))
		}
		<-done
		pub.publish("/stream/r", "end")
		c.expectOffset("end", before+during+1)
	})
}

// x-replay-speed:original keeps the spacing the messages were published
// with (generous bounds: a loaded machine only adds delay), and without it
// the replay does not wait.
func TestStreamReplaySpeedOriginal(t *testing.T) {
	srv := streamServer(t)
	pub := connected(t, srv, "tcp")
	const gap = 400 * time.Millisecond
	for i := range 3 {
		if i > 0 {
			time.Sleep(gap) // the spacing to be replayed
		}
		pub.publish("/stream/p", "m"+strconv.Itoa(i))
	}
	c := connected(t, srv, "tcp")
	c.subscribeNoWait("/stream/p", "s", "x-stream-offset", "first", "x-replay-speed", "original")
	var at [3]time.Time
	for i := range 3 {
		c.expectOffset("m"+strconv.Itoa(i), uint64(i+1))
		at[i] = time.Now()
	}
	for i := 1; i < 3; i++ {
		if d := at[i].Sub(at[i-1]); d < gap/2 {
			t.Errorf("message %d came %v after the one before; published %v apart", i, d, gap)
		}
	}
	if d := at[2].Sub(at[0]); d > 20*gap {
		t.Errorf("replay took %v for messages published %v apart", d, 2*gap)
	}
	fast := connected(t, srv, "tcp")
	start := time.Now()
	fast.subscribeNoWait("/stream/p", "s", "x-stream-offset", "first")
	for i := range 3 {
		fast.expectOffset("m"+strconv.Itoa(i), uint64(i+1))
	}
	if d := time.Since(start); d >= 2*gap {
		t.Errorf("a replay at full speed took %v; the messages were published %v apart", d, 2*gap)
	}
}

// A client that stops can resume from the offset after the last one it
// got: exactly the messages it missed, then the live ones.
func TestStreamResume(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := streamServer(t)
		pub := connected(t, srv, tr)
		c := connected(t, srv, tr)
		c.subscribe("/stream/x", "s")
		for i := 1; i <= 3; i++ {
			pub.publish("/stream/x", "m"+strconv.Itoa(i))
		}
		var last uint64
		for i := 1; i <= 3; i++ {
			f := c.expectOffset("m"+strconv.Itoa(i), uint64(i))
			last, _ = strconv.ParseUint(f.GetString("x-stream-offset"), 10, 64)
		}
		c.close()
		for i := 4; i <= 6; i++ {
			pub.publish("/stream/x", "m"+strconv.Itoa(i))
		}
		c = connected(t, srv, tr)
		c.subscribeNoWait("/stream/x", "s", "x-stream-offset", strconv.FormatUint(last+1, 10))
		for i := 4; i <= 6; i++ {
			c.expectOffset("m"+strconv.Itoa(i), uint64(i))
		}
		c.sync()
		pub.publish("/stream/x", "m7")
		c.expectOffset("m7", 7)
	})
}

// --record keeps matching topics: their live subscribers are unchanged,
// and a SUBSCRIBE with x-stream-offset replays them.
func TestStreamRecordTopic(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := streamServer(t, "/topic/prices.>")
		live := connected(t, srv, tr)
		live.subscribe("/topic/prices.eur", "l")
		other := connected(t, srv, tr)
		other.subscribe("/topic/news", "n")
		pub := connected(t, srv, tr)
		pub.publish("/topic/prices.eur", "p1")
		pub.publish("/topic/news", "n1") // not recorded: offset 2 is p2
		pub.publish("/topic/prices.eur", "p2")
		live.expectMessage("p1")
		live.expectMessage("p2")
		other.expectMessage("n1")
		c := connected(t, srv, tr)
		c.subscribeNoWait("/topic/prices.eur", "r", "x-stream-offset", "first")
		c.expectOffset("p1", 1)
		c.expectOffset("p2", 2)
		c.sync()
		pub.publish("/topic/prices.eur", "p3")
		c.expectOffset("p3", 3)
		live.expectMessage("p3")
		c.request(frame.UNSUBSCRIBE, "", "id", "r")
		pub.publish("/topic/prices.eur", "p4")
		live.expectMessage("p4")
		c.sync()
	})
}

// A SEND the store cannot record gets an ERROR with its receipt-id, never
// a RECEIPT.
func TestStreamStoreFault(t *testing.T) {
	st := openJetStream(t, "")
	srv := startServer(t, func(o *Options) { o.Store = st })
	c := connected(t, srv, "tcp")
	c.publish("/stream/f", "ok")
	st.Close() // the store fails from now on
	c.sendFrame(frame.SEND, "lost", "destination", "/stream/f", "receipt", "r-lost")
	if f := c.expectError("cannot record stream"); f.GetString("receipt-id") != "r-lost" {
		t.Fatalf("ERROR without the receipt-id: %s", fmtFrame(f))
	}
}

// A stream keeps at most --stream-max-bytes: past it the oldest messages
// go, and "first", like a numeric offset below the oldest one kept,
// replays from the oldest one kept.
func TestStreamBounded(t *testing.T) {
	srv := startServer(t, func(o *Options) {
		o.Store = openJetStream(t, "", func(o *jetstream.Options) { o.StreamMaxBytes = 8 << 10 })
	})
	pub := connected(t, srv, "tcp")
	body := strings.Repeat("x", 500)
	const n = 100 // 50 KB published, 8 KiB kept
	for i := 1; i <= n; i++ {
		pub.sendFrame(frame.SEND, body+strconv.Itoa(i), "destination", "/stream/b")
	}
	pub.sync()
	pub.publish("/stream/b", body+"last")
	first := 0
	for _, offset := range []string{"first", "1", "2"} {
		c := connected(t, srv, "tcp")
		c.subscribeNoWait("/stream/b", "s", "x-stream-offset", offset)
		f := c.expect(frame.MESSAGE)
		got, _ := strconv.Atoi(f.GetString("x-stream-offset"))
		if offset == "first" {
			if first = got; first <= 2 || first > n-5 {
				t.Fatalf("first offset kept %d of %d published into 8 KiB", first, n+1)
			}
		} else if got != first {
			t.Fatalf("x-stream-offset:%s started at %d, want the oldest kept, %d", offset, got, first)
		}
		if b := string(f.Body); b != body+strconv.Itoa(first) {
			t.Fatalf("offset %d has body ...%s", first, b[len(b)-4:])
		}
		for i := first + 1; i <= n; i++ {
			c.expectOffset(body+strconv.Itoa(i), uint64(i))
		}
		c.expectOffset(body+"last", n+1)
		c.close()
	}
}

// A replay larger than --max-pending-bytes goes at the client's pace: the
// reader waits while the output is full, the subscriber is not cut off as
// a slow consumer, and every message comes, in order, once it reads.
func TestStreamReplayPacedToClient(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		const maxPending = 64 << 10
		srv := startServer(t, func(o *Options) {
			o.Store = openJetStream(t, "")
			o.MaxPendingBytes = maxPending
		})
		pub := connected(t, srv, tr)
		body := strings.Repeat("y", 1000)
		const n = 2000 // 2 MB: 30 times the output bound
		for i := 1; i <= n; i++ {
			pub.sendFrame(frame.SEND, body, "destination", "/stream/big")
		}
		pub.sync()
		pub.close()
		c := connected(t, srv, tr, withRcvBuf(4096))
		waitFor(t, "the publisher's connection to close", func() bool {
			srv.mu.Lock()
			defer srv.mu.Unlock()
			return len(srv.conns) == 1
		})
		stallReplay(t, srv, c, "/stream/big", maxPending)
		c.resume()
		for i := 1; i <= n; i++ {
			c.expectOffset(body, uint64(i))
		}
		if got := srv.stats.slowConsumers.Load(); got != 0 {
			t.Fatalf("%d slow consumer disconnects", got)
		}
	})
}

// shrinkSendBuffer sets a small SO_SNDBUF on the broker's side of a
// connection (which turns the kernel's send-buffer autotuning off).
func shrinkSendBuffer(t *testing.T, nc net.Conn) {
	t.Helper()
	for {
		switch c := nc.(type) {
		case *net.TCPConn:
			if err := c.SetWriteBuffer(4096); err != nil {
				t.Fatal(err)
			}
			return
		case *prefixConn:
			nc = c.Conn
		default:
			t.Fatalf("no TCP connection under %T", nc)
		}
	}
}

// heldRecords is a JetStream store whose records wait for the test: it
// confirms (or refuses with fail) each one only when release is called.
type heldRecords struct {
	*jetstream.Store
	mu   sync.Mutex
	held []func(error)
	fail error
}

func (h *heldRecords) Record(dest string, data []byte, done func(error)) {
	h.Store.Record(dest, data, func(err error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.held = append(h.held, func(error) { done(cmp.Or(err, h.fail)) })
	})
}

// release confirms the n records held once they are stored.
func (h *heldRecords) release(t *testing.T, n int) {
	t.Helper()
	var held []func(error)
	waitFor(t, strconv.Itoa(n)+" records stored", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.held) < n {
			return false
		}
		held, h.held = h.held, nil
		return true
	})
	for _, done := range held {
		done(nil)
	}
}

// A SEND to a recorded topic or a stream gets its RECEIPT only once the
// message is stored, and an ERROR with its receipt-id when the store
// refuses it.
func TestStreamRecordReceipt(t *testing.T) {
	for _, dest := range []string{"/topic/rec.a", "/stream/a"} {
		t.Run(strings.Split(dest, "/")[1], func(t *testing.T) { testRecordReceipt(t, dest) })
	}
}

func testRecordReceipt(t *testing.T, dest string) {
	forEachTransport(t, func(t *testing.T, tr string) {
		st := &heldRecords{Store: openJetStream(t, "")}
		srv := startServer(t, func(o *Options) {
			o.Store = st
			o.Record = []string{"/topic/rec.>"}
		})
		c := connected(t, srv, tr)
		c.sendFrame(frame.SEND, "m1", "destination", dest, "receipt", "r-stored")
		// A SEND that is not recorded is receipted at once: its
		// RECEIPT comes first, while the record is held.
		c.sendFrame(frame.SEND, "x", "destination", "/topic/other", "receipt", "r-other")
		if f := c.expect(frame.RECEIPT); f.GetString("receipt-id") != "r-other" {
			t.Fatalf("%s: %s before the record was confirmed", dest, fmtFrame(f))
		}
		st.release(t, 1)
		if f := c.expect(frame.RECEIPT); f.GetString("receipt-id") != "r-stored" {
			t.Fatalf("%s: %s, want the RECEIPT r-stored", dest, fmtFrame(f))
		}
		st.mu.Lock()
		st.fail = errors.New("disk full")
		st.mu.Unlock()
		c.sendFrame(frame.SEND, "m2", "destination", dest, "receipt", "r-refused")
		st.release(t, 1)
		f := c.expectError("cannot record stream")
		if f.GetString("receipt-id") != "r-refused" || !strings.Contains(f.GetString("message"), "disk full") {
			t.Fatalf("%s: %s, want an ERROR for r-refused saying why", dest, fmtFrame(f))
		}
	})
}

// heapInUse is the heap the process retains (after a collection).
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// A replay of a large stream to a client that stops reading holds a
// bounded read-ahead and the client's output, not the stream; and a client
// that goes away mid-replay leaves no goroutine behind: the reader ends
// and its JetStream consumer (with the server's goroutines for it) is
// deleted.
func TestStreamReplayBoundedAndLeavesNothing(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		const maxPending = 64 << 10
		srv := startServer(t, func(o *Options) {
			o.Store = openJetStream(t, "")
			o.MaxPendingBytes = maxPending
		})
		pub := connected(t, srv, tr)
		body := strings.Repeat("z", 16<<10)
		const n = 4000 // 64 MB
		for range n {
			pub.sendFrame(frame.SEND, body, "destination", "/stream/huge")
		}
		pub.sync()
		pub.close()
		waitFor(t, "the publisher's connection to close", func() bool {
			srv.mu.Lock()
			defer srv.mu.Unlock()
			return len(srv.conns) == 0
		})
		goroutines := runtime.NumGoroutine()
		heap := heapInUse()

		c := connected(t, srv, tr, withRcvBuf(4096))
		stallReplay(t, srv, c, "/stream/huge", maxPending)
		// The reader stalls on the client: what it holds stays bounded
		// however long the client stays away (samples over a second).
		var peak int64
		for range 10 {
			peak = max(peak, heapInUse()-heap)
			time.Sleep(100 * time.Millisecond)
		}
		// What it may hold: the read-ahead (256 messages, 4 MB here), the
		// output, and JetStream's cache of the block it reads (8 MB);
		// measured 16-21 MB. The whole stream would be 64 MB and more.
		t.Logf("heap grew by %.1f MB while a %d MB replay stalled", float64(peak)/(1<<20), n*len(body)>>20)
		if peak > n*int64(len(body))/2 {
			t.Errorf("heap grew by %d MB while a %d MB replay stalled: the replay is held in memory", peak>>20, n*len(body)>>20)
		}
		c.resume()
		for i := 1; i <= 10; i++ {
			c.expectOffset(body, uint64(i))
		}
		c.close() // mid-replay
		waitFor(t, "the connection to close", func() bool {
			srv.mu.Lock()
			defer srv.mu.Unlock()
			return len(srv.conns) == 0
		})
		var now int
		if !poll(waitTimeout, pollEvery, func() bool {
			now = runtime.NumGoroutine()
			return now <= goroutines
		}) {
			var b bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&b, 1) //nolint:errcheck
			t.Fatalf("%d goroutines after the replaying client left, %d before it came:\n%s", now, goroutines, b.String())
		}
	})
}

// stallReplay subscribes c, paused, to replay dest from the first message,
// and waits until the broker holds at least half of maxPending for it: the
// replay is stalled on the client (c is the broker's only connection). A
// small send buffer on the broker's side too: otherwise
// the kernel may take the whole replay and the output never fills.
func stallReplay(t *testing.T, srv *Server, c *client, dest string, maxPending int) {
	t.Helper()
	bc := onlyConn(t, srv)
	shrinkSendBuffer(t, bc.nc)
	c.pause()
	c.subscribeNoWait(dest, "s", "x-stream-offset", "first")
	waitFor(t, "the replay to fill the output", func() bool {
		bc.mu.Lock()
		defer bc.mu.Unlock()
		return bc.pendingLocked() >= maxPending/2
	})
}
