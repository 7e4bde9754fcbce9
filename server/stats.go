package server

import "sync/atomic"

// stats are the broker's counters; gauges are computed when read.
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
	errors        atomic.Uint64 // ERROR frames sent for client mistakes
	subscriptions atomic.Uint64 // current subscriptions
	connectedNow  atomic.Int64  // connections past CONNECT now
	inputPauses   atomic.Uint64 // times publishers were paused (input queue or memory budget)
}
