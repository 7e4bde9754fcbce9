package server

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

// stressLedger records what the stress workers know for certain.
type stressLedger struct {
	mu        sync.Mutex
	published map[string]bool // confirmed by a RECEIPT (or a COMMIT's RECEIPT)
	aborted   map[string]bool // sent in a transaction that was aborted
	acked     map[string]int  // ACKs confirmed by a RECEIPT
	ackSent   map[string]bool // ACKs sent, confirmed or not
	seen      map[string]int  // deliveries seen by any client
	history   map[string][]string
	fresh     map[string]int // deliveries without redelivered:true
	errs      []string
}

func (l *stressLedger) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 20 {
		l.errs = append(l.errs, strings.TrimSpace(strings.ReplaceAll(sprintf(format, args...), "\n", " ")))
	}
}

func sprintf(format string, args ...any) string {
	var b strings.Builder
	b.WriteString(format)
	for _, a := range args {
		b.WriteString(" ")
		switch v := a.(type) {
		case string:
			b.WriteString(v)
		case int:
			b.WriteString(strconv.Itoa(v))
		case *frame.Frame:
			b.WriteString(fmtFrame(v))
		}
	}
	return b.String()
}

// stressWorker is one client doing random things for a while.
type stressWorker struct {
	t      *testing.T
	srv    *Server
	rng    *rand.Rand
	led    *stressLedger
	id     int
	seq    int
	c      *client
	subs   map[string]string // sub id -> ack mode
	held   map[string][]*frame.Frame
	pend   map[string]func() // receipt id -> what it confirms
	txOpen string
	txMsgs []string
}

var stressQueues = []string{"/queue/stress.a", "/queue/stress.b", "#stress-c"}

func (w *stressWorker) connect() {
	tr := transports[w.rng.IntN(2)]
	w.c = dial(w.t, w.srv, tr)
	w.c.connect("1.2")
	w.subs, w.held, w.pend, w.txOpen, w.txMsgs = map[string]string{}, map[string][]*frame.Frame{}, map[string]func(){}, "", nil
}

func (w *stressWorker) next() string {
	w.seq++
	return "w" + strconv.Itoa(w.id) + "-" + strconv.Itoa(w.seq)
}

func (w *stressWorker) send(cmd, receipt string, confirm func(), kv ...string) {
	if receipt != "" {
		w.pend[receipt] = confirm
		kv = append(kv, "receipt", receipt)
	}
	w.c.trySend(string(w.c.encode(cmd, "", kv...)))
}

func (w *stressWorker) publish(body string, kv ...string) {
	w.pend["p-"+body] = func() { w.led.mu.Lock(); w.led.published[body] = true; w.led.mu.Unlock() }
	f := frame.New(frame.SEND, append([]string{"receipt", "p-" + body}, kv...)...)
	f.Body = []byte(body)
	w.c.trySend(string(frame.Append(nil, f, frame.Version12)))
}

func (w *stressWorker) ackMsg(sub string, m *frame.Frame, nack bool) {
	body := string(m.Body)
	cmd := frame.ACK
	if nack {
		cmd = frame.NACK
	}
	// Ack mode client is cumulative: it acknowledges every earlier held message too.
	var covered []string
	held := w.held[sub]
	for i, h := range held {
		if h == m {
			if w.subs[sub] == "client" && !nack {
				for _, e := range held[:i+1] {
					covered = append(covered, string(e.Body))
				}
				w.held[sub] = append([]*frame.Frame(nil), held[i+1:]...)
			} else {
				covered = []string{body}
				w.held[sub] = append(append([]*frame.Frame(nil), held[:i]...), held[i+1:]...)
			}
			break
		}
	}
	if w.subs[sub] == "client" && nack {
		w.held[sub] = nil // cumulative NACK: the broker takes back every earlier one too
	}
	if !nack {
		w.led.mu.Lock()
		for _, b := range covered {
			w.led.ackSent[b] = true
		}
		w.led.mu.Unlock()
	}
	id, _ := m.Get("ack")
	w.send(cmd, "a-"+w.next(), func() {
		if nack {
			return
		}
		w.led.mu.Lock()
		for _, b := range covered {
			w.led.acked[b]++
		}
		w.led.mu.Unlock()
	}, "id", string(id))
}

// drain handles what arrived so far.
func (w *stressWorker) drain(wait time.Duration) bool {
	for {
		ev, ended, _ := w.c.next(wait)
		wait = 0
		if ended {
			return false
		}
		if ev.f == nil {
			return true
		}
		f := ev.f
		switch f.Command {
		case frame.RECEIPT:
			rid := f.GetString("receipt-id")
			if fn := w.pend[rid]; fn != nil {
				fn()
			}
			delete(w.pend, rid)
		case frame.MESSAGE:
			body, sub := string(f.Body), f.GetString("subscription")
			w.led.mu.Lock()
			w.led.seen[body]++
			w.led.history[body] = append(w.led.history[body], "w"+strconv.Itoa(w.id)+"/"+sub+"/"+f.GetString("ack")+"/"+f.GetString("redelivered")+"/"+w.subs[sub])
			// Workers read concurrently, so the order they see deliveries in
			// is not the broker's: only one delivery may lack the flag.
			if f.GetString("redelivered") != "true" {
				w.led.fresh[body]++
			}
			twice := w.led.fresh[body] > 1
			hist := strings.Join(w.led.history[body], " ")
			w.led.mu.Unlock()
			if twice {
				w.led.fail("delivered twice without redelivered:true:", f, hist)
			}
			if _, ok := w.subs[sub]; !ok {
				continue // for a subscription just dropped
			}
			w.held[sub] = append(w.held[sub], f)
			switch r := w.rng.IntN(10); {
			case r < 6:
				w.ackMsg(sub, f, false)
			case r < 8:
				w.ackMsg(sub, f, true)
			}
		case frame.ERROR:
			w.led.fail("ERROR", f)
			return false
		}
	}
}

func (w *stressWorker) step() {
	switch r := w.rng.IntN(100); {
	case r < 35:
		w.publish(w.next(), "destination", stressQueues[w.rng.IntN(len(stressQueues))])
	case r < 40:
		w.send(frame.SEND, "", nil, "destination", "/topic/stress.noise")
	case r < 55:
		if len(w.subs) < 3 {
			id := "s" + w.next()
			mode := []string{"client", "client-individual"}[w.rng.IntN(2)]
			w.subs[id] = mode
			w.send(frame.SUBSCRIBE, "", nil, "id", id, "destination", stressQueues[w.rng.IntN(len(stressQueues))],
				"ack", mode, "prefetch-count", strconv.Itoa(1+w.rng.IntN(4)))
		}
	case r < 62:
		for id := range w.subs {
			delete(w.subs, id)
			delete(w.held, id)
			w.send(frame.UNSUBSCRIBE, "", nil, "id", id)
			break
		}
	case r < 75:
		if w.txOpen == "" {
			w.txOpen = "tx" + w.next()
			w.txMsgs = nil
			w.send(frame.BEGIN, "", nil, "transaction", w.txOpen)
		}
		body := w.next()
		w.txMsgs = append(w.txMsgs, body)
		f := frame.New(frame.SEND, "destination", stressQueues[w.rng.IntN(len(stressQueues))], "transaction", w.txOpen)
		f.Body = []byte(body)
		w.c.trySend(string(frame.Append(nil, f, frame.Version12)))
	case r < 82:
		if w.txOpen != "" {
			msgs := w.txMsgs
			if w.rng.IntN(2) == 0 {
				w.send(frame.COMMIT, "c-"+w.next(), func() {
					w.led.mu.Lock()
					for _, b := range msgs {
						w.led.published[b] = true
					}
					w.led.mu.Unlock()
				}, "transaction", w.txOpen)
			} else {
				w.send(frame.ABORT, "", nil, "transaction", w.txOpen)
				w.led.mu.Lock()
				for _, b := range msgs {
					w.led.aborted[b] = true
				}
				w.led.mu.Unlock()
			}
			w.txOpen, w.txMsgs = "", nil
		}
	case r < 88:
		w.c.close() // abrupt: unacked messages go back, receipts never come
		w.connect()
	case r < 91:
		w.send(frame.DISCONNECT, "bye-"+w.next(), func() {})
		for w.drain(waitTimeout) {
		}
		w.connect()
	}
}

// TestStress has clients on both transports publish, subscribe, ack, nack,
// use transactions and drop their connections at random, concurrently. In
// the end every queue message the broker confirmed is acknowledged once or
// still queued, nothing aborted ever appears, redeliveries say so, and the
// broker shuts down cleanly.
func TestStress(t *testing.T) {
	srv := startServer(t, func(o *Options) { o.Prefetch = 4 })
	led := &stressLedger{published: map[string]bool{}, aborted: map[string]bool{}, acked: map[string]int{}, ackSent: map[string]bool{}, seen: map[string]int{}, history: map[string][]string{}, fresh: map[string]int{}}
	const workers = 6
	deadline := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &stressWorker{t: t, srv: srv, rng: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano()))), led: led, id: i}
			w.connect()
			for n := 0; n < 3000 && time.Now().Before(deadline); n++ {
				w.step()
				if !w.drain(0) {
					w.connect()
				}
			}
			// Wait for the outstanding receipts, then leave abruptly or not.
			w.send(frame.SEND, "last-"+w.next(), func() {}, "destination", "/topic/stress.noise")
			for len(w.pend) > 0 && w.drain(waitTimeout) {
			}
			w.c.close()
		}()
	}
	wg.Wait()
	if len(led.errs) > 0 {
		t.Fatalf("during the run: %s", strings.Join(led.errs, "\n"))
	}

	// Collect what is left in the queues.
	waitFor(t, "all connections of the run gone", func() bool { snap := srv.snapshot(0); return snap.TCP+snap.WS == 0 })
	d := connected(t, srv, "tcp")
	for i, q := range stressQueues {
		d.subscribeNoWait(q, "drain"+strconv.Itoa(i))
	}
	waitFor(t, "queues drained", func() bool { return srv.input.msgs.Load() == 0 })
	left := map[string]int{}
	for _, f := range d.messagesUntilReceipt(d.sendSync()) {
		left[string(f.Body)]++
	}
	lost, twice := 0, 0
	for body := range led.published {
		switch {
		case led.acked[body] > 1:
			twice++
			t.Errorf("%s acknowledged %d times", body, led.acked[body])
		case led.acked[body] == 1 && left[body] > 0:
			twice++
			t.Errorf("%s acknowledged and still queued", body)
		case led.acked[body] == 0 && left[body] == 0 && !led.ackSent[body]:
			lost++
			t.Errorf("%s confirmed but never delivered", body)
		}
	}
	for body := range left {
		if led.aborted[body] {
			t.Errorf("%s from an aborted transaction was delivered", body)
		}
	}
	for body := range led.seen {
		if led.aborted[body] {
			t.Errorf("%s from an aborted transaction was delivered", body)
		}
	}
	t.Logf("%d messages confirmed, %d acknowledged, %d drained at the end, %d deliveries seen, %d lost, %d twice",
		len(led.published), len(led.acked), len(left), len(led.seen), lost, twice)
}
