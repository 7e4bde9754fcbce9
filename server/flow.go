package server

import (
	"sync"
	"sync/atomic"
	"time"
)

// inputGate bounds what the broker has accepted but not yet delivered:
// messages waiting in queues (Options.MaxInputQueueSize), and their bytes
// plus the bytes held by open transactions (Options.MemoryBudget). Over
// either bound, connections that add to them (SENDs to queues, SENDs in a
// transaction) stop being read until consumers drain the queues, so TCP
// pushes back on those publishers instead of the broker dropping messages or
// growing. Topic-only publishers add nothing and are not paused.
type inputGate struct {
	s        *Server
	msgs     atomic.Int64
	bytes    atomic.Int64 // bytes of messages waiting in queues
	txBytes  atomic.Int64 // bytes held by open transactions
	paused   atomic.Bool
	pauses   atomic.Uint64 // times publishers were paused
	mu       sync.Mutex
	released chan struct{} // closed when the pause ends
}

// hold counts m once, as long as it waits in a queue's memory: hold and
// free are idempotent per message (lock held: the mu of the queue that
// holds m), so a message a persistent store has taken to disk can be freed
// early and is not freed twice.
func (g *inputGate) hold(m *message) {
	if !m.gated {
		m.gated = true
		g.add(m)
	}
}

func (g *inputGate) free(m *message) {
	if m.gated {
		m.gated = false
		g.remove(m)
	}
}

func (g *inputGate) add(m *message) {
	g.msgs.Add(1)
	g.bytes.Add(int64(len(m.shared)))
}

func (g *inputGate) remove(m *message) {
	g.msgs.Add(-1)
	g.bytes.Add(-int64(len(m.shared)))
	if g.paused.Load() && g.drained() {
		g.release()
	}
}

// settle counts msgs more messages and bytes more bytes waiting in queues
// (fewer when negative): what a queue counted under its lock (see
// queue.gateHold).
func (g *inputGate) settle(msgs, bytes int64) {
	g.msgs.Add(msgs)
	g.bytes.Add(bytes)
	if (msgs < 0 || bytes < 0) && g.paused.Load() && g.drained() {
		g.release()
	}
}

// addTx counts n more bytes held by open transactions (n < 0 releases).
func (g *inputGate) addTx(n int64) {
	g.txBytes.Add(n)
	if n < 0 && g.paused.Load() && g.drained() {
		g.release()
	}
}

func (g *inputGate) over() bool {
	return g.msgs.Load() >= int64(g.s.opts.MaxInputQueueSize) || g.bytes.Load()+g.txBytes.Load() >= g.s.opts.MemoryBudget
}

// drained reports whether both measures are below the resume mark, 90% of
// their bounds. A pause lasts until then (hysteresis), so a broker running at
// its budget does not flap between pausing and resuming on every message.
func (g *inputGate) drained() bool {
	maxMsgs, budget := int64(g.s.opts.MaxInputQueueSize), g.s.opts.MemoryBudget
	return g.msgs.Load() < maxMsgs-maxMsgs/10 && g.bytes.Load()+g.txBytes.Load() < budget-budget/10
}

// blocked reports whether a publisher must wait now: over a bound, or a
// pause is on and the queues have not drained to the resume mark yet.
func (g *inputGate) blocked() bool {
	return g.over() || g.paused.Load() && !g.drained()
}

func (g *inputGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.released != nil && g.drained() {
		close(g.released)
		g.released = nil
		g.paused.Store(false)
		g.s.log.Info("input queue drained; reading from publishers again", "queued", g.msgs.Load())
	}
}

// wait blocks a publishing connection's read loop while the broker is over
// its bounds. It re-checks periodically so that a missed release, a
// shutdown or the connection's close (closed reports it) never leaves a
// reader stuck.
func (g *inputGate) wait(done <-chan struct{}, closed func() bool) {
	for g.blocked() && !closed() {
		g.mu.Lock()
		if g.released == nil {
			g.released = make(chan struct{})
			g.paused.Store(true)
			g.pauses.Add(1)
			g.s.log.Warn("input queue full; pausing publishers",
				"queued", g.msgs.Load(), "queued_bytes", g.bytes.Load(), "transaction_bytes", g.txBytes.Load(),
				"max_input_queue_size", g.s.opts.MaxInputQueueSize, "memory_budget", g.s.opts.MemoryBudget)
		}
		ch := g.released
		g.mu.Unlock()
		if !awaitRelease(ch, done) {
			return
		}
	}
}

// awaitRelease waits until ch is closed, done is closed or a re-check is
// due (100 ms), for a read loop paused by the broker's flow control. It
// reports false when done was closed (shutdown).
func awaitRelease(ch, done <-chan struct{}) bool {
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-done:
		return false
	}
	return true
}
