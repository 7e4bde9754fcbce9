package server

import (
	"bytes"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/stompica/stompica/frame"
)

// onlyConn returns the broker side of the one client connection open.
func onlyConn(t *testing.T, srv *Server) *conn {
	t.Helper()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.conns) != 1 {
		t.Fatalf("%d connections open, want 1", len(srv.conns))
	}
	for c := range srv.conns {
		return c
	}
	return nil
}

// outputState reads what the broker holds for c: the most output held after
// the read loop queued a frame, and whether the read loop waits for it.
func outputState(c *conn) (peak int, waiting bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.outPeak, c.outWait != nil
}

// rawSender writes chunks to the client's socket from its own goroutine,
// with no write deadline: a write blocks while the broker does not read. It
// counts the chunks written, and stops early at a nil chunk.
type rawSender struct {
	written atomic.Int64
	err     error
	done    chan struct{}
}

func startRawSender(c *client, chunks func(i int) []byte, n int) *rawSender {
	s := &rawSender{done: make(chan struct{})}
	c.nc.SetWriteDeadline(time.Time{})
	go func() {
		defer close(s.done)
		for i := range n {
			b := chunks(i)
			if b == nil {
				return // the sender is told to stop
			}
			if _, err := c.nc.Write(b); err != nil {
				s.err = err
				return
			}
			s.written.Add(1)
		}
	}()
	return s
}

func (s *rawSender) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(4 * waitTimeout):
		t.Fatalf("%s: the sender did not finish (%d chunks written)", what, s.written.Load())
	}
	if s.err != nil {
		t.Fatalf("%s: write: %v", what, s.err)
	}
}

// liveHeap is the live heap after a collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// parkedHeapGrowth waits until the broker has stopped reading from bc and
// the sender is stuck (TCP pushed back: it wrote nothing for 200 ms), and
// returns the live heap's growth since base and the chunks written by then.
func parkedHeapGrowth(t *testing.T, bc *conn, s *rawSender, base int64) (int64, int64) {
	t.Helper()
	waitFor(t, "the broker to stop reading from the client", func() bool {
		_, waiting := outputState(bc)
		return waiting
	})
	last, still := s.written.Load(), 0
	waitFor(t, "the sender to be held up", func() bool {
		time.Sleep(50 * time.Millisecond) // no signal says a write blocks
		n := s.written.Load()
		if n != last {
			last, still = n, 0
		} else {
			still++
		}
		return still >= 4
	})
	return liveHeap() - base, last
}

// A client that sends SENDs with receipts and never reads: the broker stops
// reading from it once the RECEIPTs it holds pass max-pending-bytes, so they
// never exceed the bound by more than one frame, TCP holds the client up
// and the broker's heap stays flat; once the client reads, every RECEIPT
// arrives in order. (Before: every RECEIPT was queued, 4 GB in 20 s.)
func TestOutputBoundReceiptFlood(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		const maxPending = 256 << 10
		srv := startServer(t, func(o *Options) { o.MaxPendingBytes = maxPending })
		c := connected(t, srv, tr, withRcvBuf(4096))
		bc := onlyConn(t, srv)
		c.pause()

		// 4,000 SENDs of 8 KB whose receipt ids are 8,000 bytes long: each
		// RECEIPT is as large as its SEND, 32 MB in all. Eight per write.
		const n, perWrite = 4000, 8
		pad := strings.Repeat("r", 8000)
		receipt := func(i int) string { return strconv.Itoa(i) + "-" + pad }
		chunk := func(i int) []byte {
			var b []byte
			for k := range perWrite {
				f := c.encode(frame.SEND, "", "destination", "/topic/nobody", "receipt", receipt(i*perWrite+k))
				if tr == "ws" {
					b = append(b, wsClientFrame(ws.OpText, true, f)...)
				} else {
					b = append(b, f...)
				}
			}
			return b
		}
		rcpt := c.encode(frame.RECEIPT, "", "receipt-id", receipt(0))
		base := liveHeap()
		sender := startRawSender(c, chunk, n/perWrite)
		grown, written := parkedHeapGrowth(t, bc, sender, base)
		answered := srv.stats.framesIn.Load()
		t.Logf("%s: client held up after writing %d of %d SENDs; the broker read %d frames; live heap +%.1f MB",
			tr, written*perWrite, n, answered, float64(grown)/(1<<20))
		if written*perWrite >= n {
			t.Fatalf("the client could write all %d SENDs without reading: nothing held it up", n)
		}
		// The broker holds the bound, its read buffer and the frame being
		// handled; everything else waits in the kernel or the client.
		if grown > 4<<20 {
			t.Errorf("live heap grew by %.1f MB while the client did not read", float64(grown)/(1<<20))
		}
		if m := scrapeMetrics(t, srv); !strings.Contains(m, "stompica_output_paused_connections 1\n") {
			t.Errorf("metrics do not show the paused connection:\n%s", grepLines(m, "stompica_output"))
		}

		c.resume()
		for i := range n {
			f := c.expect(frame.RECEIPT)
			if got, want := f.GetString("receipt-id"), receipt(i); got != want {
				t.Fatalf("RECEIPT %d: receipt-id %.20q..., want %.20q...", i, got, want)
			}
		}
		sender.wait(t, "SENDs")
		c.sync()

		peak, _ := outputState(bc)
		oneFrame := len(rcpt) + ws.MaxHeaderSize
		t.Logf("%s: all %d RECEIPTs (%d MB) arrived; output held at most %d bytes (bound %d); %d pauses",
			tr, n, n*len(rcpt)>>20, peak, maxPending, srv.stats.outputPauses.Load())
		if peak > maxPending+oneFrame {
			t.Errorf("output held reached %d bytes, over max-pending-bytes %d + one frame (%d)", peak, maxPending, oneFrame)
		}
		if peak < maxPending {
			t.Errorf("output held peaked at %d bytes: the bound (%d) was never reached", peak, maxPending)
		}
		m := scrapeMetrics(t, srv)
		if !strings.Contains(m, "stompica_output_pauses_total "+strconv.FormatUint(srv.stats.outputPauses.Load(), 10)+"\n") ||
			!strings.Contains(m, "stompica_output_paused_connections 0\n") {
			t.Errorf("metrics after the pauses:\n%s", grepLines(m, "stompica_output"))
		}
		if e := srv.stats.errorsTotal(); e != 0 {
			t.Errorf("%d ERRORs sent", e)
		}
	})
}

// A WebSocket client that floods pings and never reads: pongs count against
// the output bound like RECEIPTs, and every pong arrives once it reads.
func TestOutputBoundPingFlood(t *testing.T) {
	const maxPending = 64 << 10
	srv := startServer(t, func(o *Options) { o.MaxPendingBytes = maxPending })
	c := connected(t, srv, "ws", withRcvBuf(4096))
	bc := onlyConn(t, srv)
	c.pause()

	// 150,000 pings with the largest payload allowed (125 bytes), 64 per
	// write: 19 MB each way.
	const n, perWrite = 150000, 50
	payload := func(i int) []byte {
		p := bytes.Repeat([]byte{'p'}, 125)
		copy(p, strconv.Itoa(i)+":")
		return p
	}
	chunk := func(i int) []byte {
		var b []byte
		for k := range perWrite {
			b = append(b, wsClientFrame(ws.OpPing, true, payload(i*perWrite+k))...)
		}
		return b
	}
	base := liveHeap()
	sender := startRawSender(c, chunk, n/perWrite)
	grown, written := parkedHeapGrowth(t, bc, sender, base)
	t.Logf("client held up after writing %d of %d pings; live heap +%.1f MB", written*perWrite, n, float64(grown)/(1<<20))
	if written*perWrite >= n {
		t.Fatalf("the client could write all %d pings without reading: nothing held it up", n)
	}
	if grown > 4<<20 {
		t.Errorf("live heap grew by %.1f MB while the client did not read", float64(grown)/(1<<20))
	}
	c.resume()
	for i := range n {
		if got := c.expectControl(ws.OpPong); !bytes.Equal(got, payload(i)) {
			t.Fatalf("pong %d: payload %.10q..., want %.10q...", i, got, payload(i))
		}
	}
	sender.wait(t, "pings")
	c.sync()
	peak, _ := outputState(bc)
	t.Logf("all %d pongs arrived; output held at most %d bytes (bound %d); %d pauses", n, peak, maxPending, srv.stats.outputPauses.Load())
	if oneFrame := 2 + 125; peak > maxPending+oneFrame {
		t.Errorf("output held reached %d bytes, over max-pending-bytes %d + one pong", peak, maxPending)
	}
}

// A client paused because it does not read its RECEIPTs (or pongs) keeps
// beating: it is not closed for the silence of the pause, which lasts five
// times its heart-beat timeout.
func TestOutputPauseKeepsHeartBeatingClient(t *testing.T) {
	for _, variant := range []string{"tcp", "ws", "ws-pings"} {
		t.Run(variant, func(t *testing.T) {
			tr, pings := variant, false
			if variant == "ws-pings" {
				tr, pings = "ws", true
			}
			const maxPending = 64 << 10
			srv := startServer(t, func(o *Options) {
				o.MaxPendingBytes = maxPending
				o.HeartBeatRecv = 200 * time.Millisecond
			})
			c := dial(t, srv, tr, withRcvBuf(4096))
			c.connect("1.2", "heart-beat", "200,0")
			bc := onlyConn(t, srv)
			if bc.hbRecv != 400*time.Millisecond {
				t.Fatalf("the broker expects the client every %v, want 400ms", bc.hbRecv)
			}
			c.pause()
			frameFor := func(b []byte) []byte {
				if tr == "ws" {
					return wsClientFrame(ws.OpText, true, b)
				}
				return b
			}
			// 8 MB of RECEIPTs or 6 MB of pongs: more than the bound and the
			// socket buffers together.
			n, pad := 1000, strings.Repeat("r", 8000)
			chunk := func(i int) []byte {
				return frameFor(c.encode(frame.SEND, "", "destination", "/topic/nobody", "receipt", strconv.Itoa(i)+pad))
			}
			if pings {
				n, pad = 50000, strings.Repeat("p", 115)
				chunk = func(i int) []byte { return wsClientFrame(ws.OpPing, true, []byte(strconv.Itoa(i)+pad)) }
			}
			sends := startRawSender(c, chunk, n)
			waitFor(t, "the broker to stop reading from the client", func() bool {
				_, waiting := outputState(bc)
				return waiting
			})
			var stop atomic.Bool
			beats := startRawSender(c, func(int) []byte {
				time.Sleep(100 * time.Millisecond)
				if stop.Load() {
					return nil
				}
				return frameFor([]byte("\n"))
			}, 1<<30)
			// The duration is what is under test: nothing to wait for but time.
			time.Sleep(2 * time.Second)
			if _, waiting := outputState(bc); !waiting {
				t.Fatalf("the pause ended while the client did not read")
			}
			c.resume()
			for i := range n {
				want := strconv.Itoa(i) + pad
				if pings {
					if got := c.expectControl(ws.OpPong); string(got) != want {
						t.Fatalf("pong %d: %.10q...", i, got)
					}
				} else if got := c.expect(frame.RECEIPT).GetString("receipt-id"); got != want {
					t.Fatalf("RECEIPT %d: %.10q...", i, got)
				}
			}
			sends.wait(t, "SENDs")
			stop.Store(true)
			beats.wait(t, "heart-beats")
			c.sync()
			if k := srv.stats.errorCounts()[3]; k != 0 { // errorKinds[3] is heartbeat
				t.Errorf("%d heart-beat timeouts", k)
			}
		})
	}
}

// A queue publisher with 1 s heart-beats is paused by the memory budget for
// 5 s (2.5 times the 2 s it may be silent): it is not closed for a silence
// the broker caused, and when a consumer drains the queue every message it
// wrote arrives. (Before: closed for "heart-beat timeout", its SENDs lost.)
func TestPauseKeepsHeartBeatingPublisher(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) {
			o.MemoryBudget = 64 << 10
			o.HeartBeatSend, o.HeartBeatRecv = time.Second, time.Second
		})
		pub := dial(t, srv, tr)
		pub.connect("1.2", "heart-beat", "1000,1000")
		bc := onlyConn(t, srv)
		if bc.hbRecv != 2*time.Second {
			t.Fatalf("the broker expects the publisher every %v, want 2s", bc.hbRecv)
		}
		const n, perWrite = 2000, 10
		body := strings.Repeat("b", 1000)
		chunk := func(i int) []byte {
			var b []byte
			for k := range perWrite {
				seq := i*perWrite + k
				kv := []string{"destination", "/queue/hb", "seq", strconv.Itoa(seq)}
				if seq == n-1 {
					kv = append(kv, "receipt", "last")
				}
				f := pub.encode(frame.SEND, body, kv...)
				if tr == "ws" {
					b = append(b, wsClientFrame(ws.OpText, true, f)...)
				} else {
					b = append(b, f...)
				}
			}
			return b
		}
		// After its SENDs the publisher beats every 500 ms, 12 times: the
		// broker reads those beats only after the pause.
		beat := []byte("\n")
		if tr == "ws" {
			beat = wsClientFrame(ws.OpText, true, beat)
		}
		sender := startRawSender(pub, func(i int) []byte {
			if i < n/perWrite {
				return chunk(i)
			}
			time.Sleep(500 * time.Millisecond)
			return beat
		}, n/perWrite+12)
		waitFor(t, "the publisher to be paused", func() bool { return srv.input.paused.Load() })
		start := time.Now()
		// The duration is what is under test: nothing to wait for but time.
		const pause = 5 * time.Second
		time.Sleep(pause)
		if !srv.input.paused.Load() {
			t.Fatalf("the pause ended on its own")
		}
		queued := srv.input.msgs.Load()

		sub := connected(t, srv, tr)
		sub.subscribeNoWait("/queue/hb", "s")
		for i := range n {
			m := sub.expect(frame.MESSAGE)
			if got := m.GetString("seq"); got != strconv.Itoa(i) {
				t.Fatalf("message %d: seq %s", i, got)
			}
		}
		pub.expectReceipt("last")
		paused := time.Since(start)
		sender.wait(t, "SENDs and heart-beats")
		pub.sync()
		t.Logf("%s: publisher paused %v with %d messages queued; all %d arrived", tr, paused.Round(time.Millisecond), queued, n)
		if k := srv.stats.errorCounts()[3]; k != 0 { // errorKinds[3] is heartbeat
			t.Errorf("%d heart-beat timeouts", k)
		}
		if paused < 2*bc.hbRecv {
			t.Errorf("paused only %v", paused)
		}
	})
}

// A queue that fills the memory budget pauses its publisher, not a
// publisher that only sends to topics: its messages keep flowing while the
// pause lasts. (Before: every publisher was paused.)
func TestPauseLeavesTopicPublishers(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.MemoryBudget = 16 << 10 })
		qpub := connected(t, srv, tr)
		var raw strings.Builder
		for i := range 100 {
			raw.Write(qpub.encode(frame.SEND, strings.Repeat("q", 1000), "destination", "/queue/full", "seq", strconv.Itoa(i)))
		}
		qpub.send(raw.String())
		waitFor(t, "the queue publisher to be paused", func() bool { return srv.input.paused.Load() })

		sub := connected(t, srv, tr)
		sub.subscribe("/topic/live", "s")
		tpub := connected(t, srv, tr)
		const m = 300
		raw.Reset()
		for i := range m {
			raw.Write(tpub.encode(frame.SEND, strings.Repeat("t", 1000), "destination", "/topic/live", "seq", strconv.Itoa(i)))
		}
		tpub.send(raw.String())
		tpub.sync()
		for i := range m {
			if got := sub.expect(frame.MESSAGE).GetString("seq"); got != strconv.Itoa(i) {
				t.Fatalf("topic message %d: seq %s", i, got)
			}
		}
		if !srv.input.paused.Load() {
			t.Fatalf("the queue publisher's pause ended: the topic messages did not all arrive during it")
		}
		queued := srv.input.msgs.Load()
		if queued >= 100 {
			t.Fatalf("%d messages queued: the queue publisher was not paused", queued)
		}
		// The queue publisher's messages are all there once consumed.
		qsub := connected(t, srv, tr)
		qsub.subscribeNoWait("/queue/full", "q")
		for i := range 100 {
			if got := qsub.expect(frame.MESSAGE).GetString("seq"); got != strconv.Itoa(i) {
				t.Fatalf("queue message %d: seq %s", i, got)
			}
		}
		qpub.sync()
		t.Logf("%s: %d topic messages delivered while the queue publisher was paused with %d queued", tr, m, queued)
	})
}

// A transaction may hold max-transaction-bytes: past it the client gets an
// ERROR naming the bound (with the receipt-id it asked for) and is closed,
// and the memory budget no longer counts what it held. ACKs in a
// transaction count too, so the number of operations is bounded.
func TestTxBytesBound(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		const limit = 64 << 10
		srv := startServer(t, func(o *Options) { o.MaxTransactionBytes = limit })
		c := connected(t, srv, tr)
		c.request(frame.BEGIN, "", "transaction", "t1")
		body := strings.Repeat("x", 1024)
		accepted, held := 0, int64(0)
		for {
			if accepted > 100 {
				t.Fatalf("100 KB held by one transaction and no ERROR")
			}
			id := c.newReceipt()
			c.sendFrame(frame.SEND, body, "destination", "/queue/txb", "transaction", "t1", "receipt", id)
			f := c.nextFrame("RECEIPT or ERROR").f
			if f.Command == frame.RECEIPT {
				accepted++
				held = srv.input.txBytes.Load()
				continue
			}
			if f.Command != frame.ERROR {
				t.Fatalf("got %s", fmtFrame(f))
			}
			want := `transaction "t1" would hold more than 65536 bytes (max-transaction-bytes)`
			if msg := f.GetString("message"); msg != want {
				t.Errorf("ERROR message %q, want %q", msg, want)
			}
			if got := f.GetString("receipt-id"); got != id {
				t.Errorf("ERROR receipt-id %q, want %q", got, id)
			}
			break
		}
		c.expectClosed()
		cost := held / int64(accepted) // one SEND: its encoding and the op
		t.Logf("%s: %d SENDs of 1 KiB accepted (%d bytes each, %d held) before the ERROR", tr, accepted, cost, held)
		if cost < 1024+txOpCost || held > limit || held+cost <= limit {
			t.Errorf("%d SENDs accepted holding %d bytes (%d each) under a %d-byte bound", accepted, held, cost, limit)
		}
		waitFor(t, "the transaction's bytes to leave the budget", func() bool { return srv.input.txBytes.Load() == 0 })
		if k := srv.stats.errorCounts()[1]; k != 1 { // errorKinds[1] is limit
			t.Errorf("limit errors = %d, want 1", k)
		}
	})
}

// ACKs in a transaction count against max-transaction-bytes too (txOpCost
// each), so the number of buffered operations is bounded.
func TestTxOpsBound(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.MaxTransactionBytes = 16 * txOpCost })
		a := connected(t, srv, tr)
		a.publish("/queue/acks", "m")
		a.subscribeNoWait("/queue/acks", "s", "ack", "client")
		ack := ackID(t, a.expectMessage("m"))
		a.request(frame.BEGIN, "", "transaction", "t2")
		for range 16 {
			a.request(frame.ACK, "", "id", ack, "transaction", "t2")
		}
		a.sendFrame(frame.ACK, "", "id", ack, "transaction", "t2")
		a.expectError(`transaction "t2" would hold more than 4096 bytes (max-transaction-bytes)`)
		a.expectClosed()
		waitFor(t, "the transaction's bytes to leave the budget", func() bool { return srv.input.txBytes.Load() == 0 })
	})
}

// Open transactions count in the memory budget: a publisher whose
// transaction takes the budget over is paused like any other until
// consumers drain the queues; COMMIT, ABORT and disconnect give the bytes
// back (the counter returns to 0). Together open transactions may hold at
// most half the budget.
func TestTxBytesInMemoryBudget(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		const budget = 64 << 10
		srv := startServer(t, func(o *Options) {
			o.MemoryBudget = budget
			o.MaxTransactionBytes = 24 << 10
		})
		body := strings.Repeat("y", 1000)
		pub := connected(t, srv, tr)

		// ABORT.
		pub.request(frame.BEGIN, "", "transaction", "a")
		for range 5 {
			pub.sendFrame(frame.SEND, body, "destination", "/queue/tx", "transaction", "a")
		}
		pub.sync()
		if n := srv.input.txBytes.Load(); n < 5*(1000+txOpCost) {
			t.Fatalf("5 SENDs in a transaction count %d bytes", n)
		}
		pub.request(frame.ABORT, "", "transaction", "a")
		if n := srv.input.txBytes.Load(); n != 0 {
			t.Errorf("after ABORT transactions hold %d bytes, want 0", n)
		}

		// Disconnect with a transaction open.
		gone := connected(t, srv, tr)
		gone.request(frame.BEGIN, "", "transaction", "g")
		gone.publish("/queue/tx", body, "transaction", "g")
		if srv.input.txBytes.Load() == 0 {
			t.Fatalf("the open transaction is not counted")
		}
		gone.close()
		waitFor(t, "the closed connection's transaction to leave the budget", func() bool { return srv.input.txBytes.Load() == 0 })

		// Half the budget at most, all transactions together.
		x, y := connected(t, srv, tr), connected(t, srv, tr)
		x.request(frame.BEGIN, "", "transaction", "x")
		y.request(frame.BEGIN, "", "transaction", "y")
		for range 17 {
			x.sendFrame(frame.SEND, body, "destination", "/queue/tx", "transaction", "x")
		}
		x.sync()
		for range 17 { // the broker closes the connection on the way
			y.trySend(string(y.encode(frame.SEND, body, "destination", "/queue/tx", "transaction", "y")))
		}
		y.expectError("half the memory budget")
		y.expectClosed()
		if n := srv.input.txBytes.Load(); n > budget/2 {
			t.Errorf("open transactions hold %d bytes, over half the budget", n)
		}
		x.request(frame.ABORT, "", "transaction", "x")
		if n := srv.input.txBytes.Load(); n != 0 {
			t.Errorf("after ABORT transactions hold %d bytes, want 0", n)
		}

		// A queue holds 48 KB (under the budget); a transaction of 22 KB
		// takes the budget over: its publisher is paused, its COMMIT waits.
		for i := range 45 {
			pub.sendFrame(frame.SEND, body, "destination", "/queue/tx", "seq", strconv.Itoa(i))
		}
		pub.sync()
		if srv.input.paused.Load() {
			t.Fatalf("paused under the budget")
		}
		pub.request(frame.BEGIN, "", "transaction", "c")
		for i := range 17 {
			pub.sendFrame(frame.SEND, body, "destination", "/queue/tx", "transaction", "c", "seq", strconv.Itoa(45+i))
		}
		waitFor(t, "the transaction's publisher to be paused", func() bool { return srv.input.paused.Load() })
		pub.sendFrame(frame.COMMIT, "", "transaction", "c", "receipt", "commit")
		held := srv.input.txBytes.Load()
		if q := srv.input.bytes.Load(); held == 0 || q+held < budget {
			t.Fatalf("paused with %d bytes queued and %d in the transaction, under the %d-byte budget", q, held, budget)
		}
		sub := connected(t, srv, tr)
		sub.subscribeNoWait("/queue/tx", "s")
		for i := range 45 + 17 {
			if got := sub.expect(frame.MESSAGE).GetString("seq"); got != strconv.Itoa(i) {
				t.Fatalf("message %d: seq %s", i, got)
			}
		}
		pub.expectReceipt("commit")
		sub.sync()
		if tx, q := srv.input.txBytes.Load(), srv.input.bytes.Load(); tx != 0 || q != 0 {
			t.Errorf("after COMMIT and drain: transactions hold %d bytes, queues %d; want 0 and 0", tx, q)
		}
		if m := scrapeMetrics(t, srv); !strings.Contains(m, "stompica_transaction_bytes 0\n") {
			t.Errorf("metrics: %s", grepLines(m, "stompica_transaction"))
		}
		t.Logf("%s: a transaction holding %d bytes paused its publisher; all 62 messages arrived", tr, held)
	})
}
