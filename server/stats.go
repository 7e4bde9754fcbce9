package server

import "sync/atomic"

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
