package server

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/stompica/stompica/cluster"
	"github.com/stompica/stompica/sublist"
)

// pipeLink is a test cluster link: it records what the router tells it and
// forwards each published topic message to the peer nodes that announced a
// matching interest, as a NATS-backed link would through subjects.
type pipeLink struct {
	mu        sync.Mutex
	in        cluster.Inbound
	peers     []*pipeLink
	interest  map[string]int
	events    []string // "+dest" / "-dest", in order
	published []string // destinations
}

func (l *pipeLink) Start(in cluster.Inbound) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.in = in
	return nil
}

func (l *pipeLink) Published(dest string, data []byte) {
	l.mu.Lock()
	l.published = append(l.published, dest)
	peers := l.peers
	l.mu.Unlock()
	for _, p := range peers {
		if p.wants(dest) {
			p.in.Deliver(dest, data) //nolint:errcheck // checked by what subscribers receive
		}
	}
}

func (l *pipeLink) wants(dest string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for pat := range l.interest {
		if pat == dest || sublist.IsPattern(pat) && sublist.Matches(pat, dest) {
			return true
		}
	}
	return false
}

func (l *pipeLink) Interest(dest string, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.interest == nil {
		l.interest = make(map[string]int)
	}
	if on {
		l.interest[dest]++
		l.events = append(l.events, "+"+dest)
	} else {
		l.interest[dest]--
		if l.interest[dest] == 0 {
			delete(l.interest, dest)
		}
		l.events = append(l.events, "-"+dest)
	}
}

func (l *pipeLink) Close() error { return nil }

func (l *pipeLink) snapshot() (events, published []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events), slices.Clone(l.published)
}

// Two nodes joined by the cluster seam: a topic message published on one
// reaches the other's subscribers (names and patterns) once, with an id
// that names its node; interest is announced on the first subscriber and
// withdrawn after the last; queue messages stay off the link.
func TestClusterSeam(t *testing.T) {
	la, lb := &pipeLink{}, &pipeLink{}
	la.peers, lb.peers = []*pipeLink{lb}, []*pipeLink{la}
	a := startServer(t, func(o *Options) { o.Cluster, o.NodeID = la, 1 })
	// The second node is started by hand: startServer's leak check counts
	// every broker goroutine, and node 1's run until its own cleanup.
	b, err := New(&Options{Host: "127.0.0.1", Port: -1, Cluster: lb, NodeID: 2, Logger: a.log})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown node 2: %v", err)
		}
	})
	forEachTransport(t, func(t *testing.T, tr string) {
		pub := connected(t, a, tr)
		local := connected(t, a, tr)
		remote := connected(t, b, tr)
		remote2 := connected(t, b, tr)
		local.subscribe("/topic/x", "l")
		remote.subscribe("/topic/x", "r")
		remote2.subscribe("/topic/x", "r2") // a second subscriber: no second Interest
		remote2.subscribe("/topic/p.*", "p")

		pub.publish("/topic/x", "one")
		pub.publish("/topic/p.q", "two")
		pub.publish("/topic/x", "three")
		pub.publish("/queue/jobs", "job")
		for _, c := range []*client{local, remote} {
			f := c.expectMessage("one")
			id, err := strconv.ParseUint(f.GetString("message-id"), 10, 64)
			if err != nil || cluster.NodeOf(id) != 1 {
				t.Errorf("message-id %q: want an id of node 1", f.GetString("message-id"))
			}
			c.expectMessage("three") // nothing in between: each message arrived once
		}
		for _, want := range []string{"one", "two", "three"} {
			remote2.expectMessage(want)
		}

		// Ids given on node 2 carry node 2.
		back := connected(t, b, tr)
		back.publish("/topic/x", "from b")
		f := local.expectMessage("from b")
		if id, _ := strconv.ParseUint(f.GetString("message-id"), 10, 64); cluster.NodeOf(id) != 2 {
			t.Errorf("message from node 2 has id %d (node %d)", id, cluster.NodeOf(id))
		}
		remote.expectMessage("from b")
		remote2.expectMessage("from b")

		remote.request("UNSUBSCRIBE", "", "id", "r")
		remote2.request("UNSUBSCRIBE", "", "id", "r2")
		remote2.request("UNSUBSCRIBE", "", "id", "p")
		events, _ := lb.snapshot()
		want := []string{"+/topic/x", "+/topic/p.*", "-/topic/x", "-/topic/p.*"}
		if !slices.Equal(events, want) {
			t.Errorf("node 2 interest events %q, want %q", events, want)
		}
		_, published := la.snapshot()
		if slices.Contains(published, "/queue/jobs") {
			t.Errorf("a queue message went on the link: %q", published)
		}
		if n := len(published); n != 3 {
			t.Errorf("node 1 published %d topic messages on the link (%q), want 3", n, published)
		}
		// Reset the recordings for the next transport.
		for _, l := range []*pipeLink{la, lb} {
			l.mu.Lock()
			l.events, l.published = nil, nil
			l.mu.Unlock()
		}
		local.request("UNSUBSCRIBE", "", "id", "l")
	})
}
