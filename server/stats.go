package server

import (
	"errors"
	"strings"
	"sync/atomic"

	"stompica/frame"
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
	errors        atomic.Uint64 // ERROR frames sent for client mistakes not counted by kind (kind "other")
	subscriptions atomic.Uint64 // current subscriptions
	connectedNow  atomic.Int64  // connections past CONNECT now

	errorsByKind [numErrorKinds]atomic.Uint64 // see countError
}

// Error kinds: why the broker sent an ERROR frame and closed a connection.
// They label stompica_errors_total and the console's error figures.
const (
	errKindProtocol  = "protocol"  // malformed frame, unknown command, missing or bad header, bad ack id
	errKindLimit     = "limit"     // frame, header, subscription, transaction or connection limit exceeded
	errKindAuth      = "auth"      // failed login, or access denied to a destination or DIAG
	errKindHeartbeat = "heartbeat" // nothing received within the negotiated heart-beat interval
	errKindTimeout   = "timeout"   // no CONNECT within Options.ConnectTimeout
	errKindWebSocket = "websocket" // WebSocket protocol violation
	errKindOther     = "other"     // anything else
)

// errorKinds lists the kinds in errorsByKind order.
var errorKinds = [...]string{
	errKindProtocol, errKindLimit, errKindAuth, errKindHeartbeat,
	errKindTimeout, errKindWebSocket, errKindOther,
}

const numErrorKinds = len(errorKinds)

// countError counts one ERROR sent to a client, by kind (one of the errKind
// constants; an unknown kind counts as "other"). Errors are rare: the string
// switch costs nothing that matters.
func (st *stats) countError(kind string) {
	for i, k := range errorKinds {
		if k == kind {
			if kind == errKindOther {
				break
			}
			st.errorsByKind[i].Add(1)
			return
		}
	}
	st.errors.Add(1)
}

// errorCounts returns the errors counted per kind, in errorKinds order.
// Kind "other" includes the plain errors counter, so code that still does
// stats.errors.Add(1) is counted too.
func (st *stats) errorCounts() [numErrorKinds]uint64 {
	var n [numErrorKinds]uint64
	for i := range n {
		n[i] = st.errorsByKind[i].Load()
	}
	n[numErrorKinds-1] += st.errors.Load()
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

// errorKindOf classifies an error that ends a connection with an ERROR
// frame: parser and broker limits are "limit", refused logins and denied
// access "auth", WebSocket violations "websocket", other protocol errors
// "protocol".
func errorKindOf(err error) string {
	switch {
	case err == nil:
		return errKindOther
	case errors.Is(err, frame.ErrFrameTooLarge), errors.Is(err, frame.ErrTooManyHeaders),
		errors.Is(err, frame.ErrHeaderTooLong), errors.Is(err, errTooManyConns):
		return errKindLimit
	case errors.Is(err, errWSProtocol):
		return errKindWebSocket
	}
	var le limitError
	if errors.As(err, &le) {
		return errKindLimit
	}
	var pe protoError
	if errors.As(err, &pe) {
		msg := string(pe)
		switch {
		case strings.HasPrefix(msg, "too many "):
			return errKindLimit
		case strings.HasPrefix(msg, "access "), strings.Contains(msg, "not authorized"),
			strings.Contains(msg, "denied"), strings.Contains(msg, "permission"):
			return errKindAuth
		}
		return errKindProtocol
	}
	var fe *frame.Error
	if errors.As(err, &fe) {
		return errKindProtocol
	}
	return errKindOther
}
