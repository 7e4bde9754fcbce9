package server

import (
	"encoding/json"
	"strings"

	"stompica/frame"
)

// onDiag answers the original stompica's DIAG frame, or a SEND to a
// destination starting with "DIAG", with the broker's stats as JSON in a
// MESSAGE frame.
func (c *conn) onDiag(f *frame.Frame) error {
	if err := c.s.authorize(c.login, accessAdmin, "DIAG"); err != nil {
		return err
	}
	query := strings.TrimSpace(string(f.Body))
	if query == "" {
		query = "session"
	}
	body, err := json.Marshal(c.s.diag(query))
	if err != nil {
		return err
	}
	dest := f.GetString("destination")
	if dest == "" {
		dest = "DIAG"
	}
	m := frame.New(frame.MESSAGE, "destination", dest, "content-type", "application/json",
		"message-id", "diag-"+itoa(c.s.router.nextID.Add(1)))
	if id, ok := f.Get("id"); ok {
		m.Add("subscription", string(id))
	}
	m.Body = body
	c.sendFrame(m, &c.batch)
	return nil
}

// diag computes the answer to one DIAG query.
func (s *Server) diag(query string) map[string]any {
	s.mu.Lock()
	conns := len(s.conns)
	ws, connected := 0, 0
	for c := range s.conns {
		if c.ws != nil {
			ws++
		}
	}
	s.mu.Unlock()
	_ = connected
	return map[string]any{
		"query":         query,
		"sessions":      conns,
		"websockets":    ws,
		"subscriptions": s.stats.subscriptions.Load(),
		"stale":         s.router.retainedCount(),
		"queues":        s.router.queueStats(),
	}
}
