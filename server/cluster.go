package server

import (
	"errors"
	"fmt"
	"time"
)

// inbound hands topic messages that other nodes published (through
// Options.Cluster) to this node's subscribers. It never passes them back to
// the link, so a message crosses to each node once.
type inbound struct{ r *router }

// errClusterQueue refuses a queue message from the link: queues spread over
// nodes live in a shared store, not on the link.
var errClusterQueue = errors.New("cluster: only topic messages are carried between nodes")

// Deliver implements cluster.Inbound.
func (in inbound) Deliver(dest string, data []byte) error {
	m, err := parseEncoded(data)
	if err != nil {
		return fmt.Errorf("cluster: undecodable message for %q: %w", dest, err)
	}
	if isQueue(m.dest) {
		return errClusterQueue
	}
	if m.expires != 0 && m.expired(time.Now().UnixMilli()) {
		in.r.s.stats.expired.Add(1)
		return nil
	}
	var b batch
	in.r.deliverTopic(m, &b)
	b.flush()
	return nil
}

// startCluster starts the link to other nodes, once (Start may be called
// after Serve, or twice).
func (s *Server) startCluster() error {
	if s.opts.Cluster == nil {
		return nil
	}
	var err error
	s.clusterOnce.Do(func() {
		if err = s.opts.Cluster.Start(inbound{s.router}); err != nil {
			err = fmt.Errorf("stompica: cluster link: %w", err)
		}
	})
	return err
}

// stopCluster closes the link to other nodes at Shutdown.
func (s *Server) stopCluster() {
	if s.opts.Cluster == nil {
		return
	}
	if err := s.opts.Cluster.Close(); err != nil {
		s.log.Warn("cluster link: close failed", "err", err)
	}
}
