package server

import (
	"cmp"
	"slices"
	"sync/atomic"
	"time"
)

// stats are the broker's counters; gauges are computed when read. They are
// plain atomics bumped on the hot path and read only by DIAG, the console
// and the Prometheus collector (metrics.go) at scrape time.
type stats struct {
	connsTotal    atomic.Uint64 // connections accepted
	wsConns       atomic.Uint64 // of which WebSocket
	connected     atomic.Uint64 // CONNECT frames accepted
	refused       atomic.Uint64 // connections refused (limit, shutdown)
	framesIn      atomic.Uint64
	bytesIn       atomic.Uint64
	bytesOut      atomic.Uint64
	msgsIn        atomic.Uint64 // messages published
	deliveries    atomic.Uint64 // MESSAGE frames queued to subscribers
	acks          atomic.Uint64
	nacks         atomic.Uint64
	redeliveries  atomic.Uint64
	deadLettered  atomic.Uint64
	expired       atomic.Uint64
	staleDropped  atomic.Uint64
	slowConsumers atomic.Uint64
	outputPauses  atomic.Uint64 // times a read loop paused because its client's output was over the bound
	outputPaused  atomic.Int64  // read loops paused for that now
	flowPaused    atomic.Int64  // read loops paused now on a queue over Options.QueueFlowLimit
	flowPauses    atomic.Uint64 // such pauses ever
	subscriptions atomic.Uint64 // current subscriptions
	connectedNow  atomic.Int64  // connections past CONNECT now

	errorsByKind   [numErrorKinds]atomic.Uint64   // ERROR frames sent, by kind (countError)
	closedByReason [numClosedStates]atomic.Uint64 // connections ended, by reason (countClosed)
}

// countError counts one ERROR sent to a client, by its kind.
func (st *stats) countError(k errKind) {
	if int(k) >= numErrorKinds {
		k = kindOther
	}
	st.errorsByKind[k].Add(1)
}

// errorCounts returns the errors counted per kind, in errorKinds order.
func (st *stats) errorCounts() [numErrorKinds]uint64 {
	var n [numErrorKinds]uint64
	for i := range n {
		n[i] = st.errorsByKind[i].Load()
	}
	return n
}

// errorsTotal is the number of ERROR frames sent for client mistakes.
func (st *stats) errorsTotal() uint64 {
	var t uint64
	for _, n := range st.errorCounts() {
		t += n
	}
	return t
}

// countClosed counts one connection that ended for reason r.
func (st *stats) countClosed(r ClosedState) {
	if int(r) < numClosedStates {
		st.closedByReason[r].Add(1)
	}
}

// ClosedCounts returns how many client connections (STOMP over TCP, TLS or
// WebSocket) ended for each reason since the server started; reasons no
// connection ended for are left out.
func (s *Server) ClosedCounts() map[ClosedState]uint64 {
	m := make(map[ClosedState]uint64)
	for r := range s.stats.closedByReason {
		if n := s.stats.closedByReason[r].Load(); n > 0 {
			m[ClosedState(r)] = n
		}
	}
	return m
}

// snapParts selects the parts of a snapshot that walk lists under locks.
type snapParts uint8

const (
	snapQueues snapParts = 1 << iota // every queue's figures, and the total queued
	snapTopics                       // every topic's subscriber count
	snapConns                        // every connection's figures (connInfo)
)

// snapshot is the broker's figures at one moment, built once per DIAG
// answer, console poll, API request or Prometheus scrape: DIAG, the
// console, the management API and /metrics all read this one struct, so
// the connection walk and the counter list exist once.
type snapshot struct {
	Time  time.Time
	Start time.Time

	// Open connections by transport (HTTP ones not upgraded apart) and the
	// output they hold (queued and being written).
	TCP, WS, HTTP         int
	TCPPending, WSPending int
	Connected             int64 // past CONNECT
	Subscriptions         int64

	Counters counterValues
	Errors   [numErrorKinds]uint64 // by kind, in errorKinds order

	Retained      int    // topic messages retained for late subscribers (TTL)
	Undeliverable uint64 // replies to private queues of closed sessions
	InputPaused   bool
	InputPauses   uint64
	QueuedBytes   int64 // bytes of messages waiting in queues
	TxBytes       int64 // bytes held by open transactions
	OutputPaused  int64
	FlowPaused    int64  // connections not read now: a queue they send to is over the flow limit
	FlowPauses    uint64 // such pauses ever

	Queued int         // messages waiting in all queues (with snapQueues)
	Queues []queueInfo // in name order (snapQueues)
	Topics []topicInfo // in name order (snapTopics)
	Conns  []connInfo  // in id order (snapConns)
}

// counterValues are the broker's counters, as the console and the API show
// them.
type counterValues struct {
	Connections   uint64 `json:"connections"`
	WSConnections uint64 `json:"ws_connections"`
	Refused       uint64 `json:"refused"`
	FramesIn      uint64 `json:"frames_in"`
	MessagesIn    uint64 `json:"messages_in"`
	BytesIn       uint64 `json:"bytes_in"`
	BytesOut      uint64 `json:"bytes_out"`
	Deliveries    uint64 `json:"deliveries"`
	Acks          uint64 `json:"acks"`
	Nacks         uint64 `json:"nacks"`
	Redeliveries  uint64 `json:"redeliveries"`
	DeadLettered  uint64 `json:"dead_lettered"`
	Expired       uint64 `json:"expired"`
	StaleDropped  uint64 `json:"stale_dropped"`
	SlowConsumers uint64 `json:"slow_consumers"`
	OutputPauses  uint64 `json:"output_pauses"`
	Errors        uint64 `json:"errors"` // ERROR frames sent for client mistakes, all kinds
}

// snapshot reads the counters and gauges, walks the open connections once
// (one short lock each), and walks queues, topics and connection details
// as parts asks.
func (s *Server) snapshot(parts snapParts) *snapshot {
	st := &s.stats
	snap := &snapshot{Time: time.Now(), Start: s.start}
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	snap.HTTP = s.httpConns
	s.mu.Unlock()
	if parts&snapConns != 0 {
		snap.Conns = make([]connInfo, 0, len(conns))
	}
	for _, c := range conns {
		var pending int
		if parts&snapConns != 0 {
			ci := c.info(false)
			pending = ci.PendingBytes
			snap.Conns = append(snap.Conns, ci)
		} else {
			c.mu.Lock()
			pending = c.heldLocked()
			c.mu.Unlock()
		}
		if c.ws != nil {
			snap.WS++
			snap.WSPending += pending
		} else {
			snap.TCP++
			snap.TCPPending += pending
		}
	}
	slices.SortFunc(snap.Conns, func(a, b connInfo) int { return cmp.Compare(a.ID, b.ID) })
	snap.Connected = st.connectedNow.Load()
	snap.Subscriptions = int64(st.subscriptions.Load())
	snap.Counters = counterValues{
		Connections:   st.connsTotal.Load(),
		WSConnections: st.wsConns.Load(),
		Refused:       st.refused.Load(),
		FramesIn:      st.framesIn.Load(),
		MessagesIn:    st.msgsIn.Load(),
		BytesIn:       st.bytesIn.Load(),
		BytesOut:      st.bytesOut.Load(),
		Deliveries:    st.deliveries.Load(),
		Acks:          st.acks.Load(),
		Nacks:         st.nacks.Load(),
		Redeliveries:  st.redeliveries.Load(),
		DeadLettered:  st.deadLettered.Load(),
		Expired:       st.expired.Load(),
		StaleDropped:  st.staleDropped.Load(),
		SlowConsumers: st.slowConsumers.Load(),
		OutputPauses:  st.outputPauses.Load(),
	}
	snap.Errors = st.errorCounts()
	for _, n := range snap.Errors {
		snap.Counters.Errors += n
	}
	snap.Retained = s.router.retainedCount()
	snap.Undeliverable = s.router.undeliverable.Load()
	snap.InputPaused = s.input.paused.Load()
	snap.InputPauses = s.input.pauses.Load()
	snap.QueuedBytes = s.input.bytes.Load()
	snap.TxBytes = s.input.txBytes.Load()
	snap.OutputPaused = st.outputPaused.Load()
	snap.FlowPaused = st.flowPaused.Load()
	snap.FlowPauses = st.flowPauses.Load()
	if parts&snapQueues != 0 {
		snap.Queues = s.router.queueStats()
		for _, q := range snap.Queues {
			snap.Queued += q.Depth
		}
	}
	if parts&snapTopics != 0 {
		snap.Topics = s.router.topicStats()
	}
	return snap
}
