package server

import (
	"encoding/json"
	"strings"

	"github.com/stompica/stompica/auth"
	"github.com/stompica/stompica/frame"
	"github.com/stompica/stompica/store"
)

// diagQueries are the original stompica's DIAG queries.
var diagQueries = []string{"session-size", "session-connected-size", "pubsub-size", "session", "subs", "ws_buffer", "stale", "store"}

// onDiag answers the original stompica's DIAG frame, or a SEND to a
// destination starting with "DIAG", with a MESSAGE whose JSON body answers
// the query in the frame's body (default "session"). The MESSAGE carries the
// id of the connection's subscription to that destination, if any.
func (c *conn) onDiag(f *frame.Frame) error {
	if err := c.s.authorize(c.login, auth.Admin, "DIAG"); err != nil {
		return err
	}
	query := strings.TrimSpace(string(f.Body))
	if query == "" {
		query = "session"
	}
	c.batch.count() // the answer counts the frames sent before it
	body, err := json.Marshal(c.s.diag(query))
	if err != nil {
		return err
	}
	dest := f.GetString("destination")
	if dest == "" {
		dest = "DIAG"
	}
	m := frame.New(frame.MESSAGE, "destination", dest, "content-type", "application/json",
		"message-id", "diag-"+itoa(c.s.router.newID()))
	for _, sub := range c.subs {
		if sub.dest == dest {
			m.Add("subscription", sub.id)
			break
		}
	}
	m.Body = body
	c.sendFrame(m, &c.batch)
	return nil
}

// diagParts is what each DIAG query needs of the snapshot beyond the
// counters and the connection counts.
var diagParts = map[string]snapParts{"subs": snapQueues | snapTopics, "stale": snapQueues, "store": snapQueues}

// diag computes the answer to one DIAG query.
func (s *Server) diag(query string) map[string]any {
	known := false
	for _, q := range diagQueries {
		known = known || q == query
	}
	if !known {
		return map[string]any{"error": "unknown DIAG query " + query, "queries": diagQueries}
	}
	snap := s.snapshot(diagParts[query])
	clients := snap.TCP + snap.WS
	switch query {
	case "session-size":
		return map[string]any{"session-size": clients}
	case "session-connected-size":
		return map[string]any{"session-connected-size": snap.Connected}
	case "pubsub-size":
		return map[string]any{"pubsub-size": snap.Subscriptions}
	case "session":
		return map[string]any{
			"clients":       clients,
			"websockets":    snap.WS,
			"connected":     snap.Connected,
			"subscriptions": snap.Subscriptions,
		}
	case "subs":
		return map[string]any{
			"subscriptions": snap.Subscriptions,
			"topics":        snap.Topics,
			"queues":        snap.Queues,
		}
	case "ws_buffer":
		return map[string]any{
			"websockets":       snap.WS,
			"ws_pending_bytes": snap.WSPending,
			"pending_bytes":    snap.TCPPending + snap.WSPending,
			"max_pending":      s.opts.MaxPendingBytes,
			"max_frame_size":   s.opts.MaxFrameSize,
		}
	default: // "stale"
		return map[string]any{
			"stale":                snap.Retained,
			"max_stale_queue_size": s.opts.MaxStaleQueueSize,
			"stale_dropped":        snap.Counters.StaleDropped,
			"expired":              snap.Counters.Expired,
			"queued":               snap.Queued,
			"ttl_ms":               s.opts.TTL.Milliseconds(),
			"undeliverable":        snap.Undeliverable,
		}
	case "store":
		return s.storeDiag(snap)
	}
}

// storeDiag answers the DIAG query "store": where queue messages live.
func (s *Server) storeDiag(snap *snapshot) map[string]any {
	out := map[string]any{"kind": "memory", "durable": false, "queued": snap.Queued}
	rep, ok := s.router.store.(store.Reporter)
	if !ok {
		return out
	}
	r, err := rep.Report()
	out = map[string]any{
		"kind": r.Kind, "durable": s.router.persistent, "location": r.Location, "queued": snap.Queued,
		"stored_messages": r.Messages, "stored_bytes": r.Bytes, "queues": r.Queues,
		"pending_publishes": r.Pending, "duplicates": r.Duplicates, "store_latency_us": r.Latency.Microseconds(),
	}
	if err != nil {
		out["error"] = err.Error()
	}
	return out
}
