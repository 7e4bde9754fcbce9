package server

import (
	"context"
	"strings"
	"testing"

	"github.com/stompica/stompica/frame"
)

// Durable topic subscriptions in the three header styles: messages
// published while the subscriber is away are kept, across a restart, and
// delivered in order when it subscribes again; UNSUBSCRIBE with the same
// headers ends it.
func TestDurableTopicSubscription(t *testing.T) {
	styles := []struct {
		name     string
		clientID string
		hdrs     []string
	}{
		{"activemq", "app-1", []string{"activemq.subscriptionName", "news-sub"}},
		{"artemis", "app-2", []string{"durable-subscription-name", "news-sub"}},
		{"rabbitmq", "", []string{"durable", "true", "auto-delete", "false"}},
	}
	for _, st := range styles {
		t.Run(st.name, func(t *testing.T) {
			dir := t.TempDir()
			open := func() *Server {
				return startServer(t, func(o *Options) { o.Store = openJetStream(t, dir) })
			}
			sub := func(srv *Server, wait bool) *client {
				c := dial(t, srv, "tcp")
				if st.clientID != "" {
					c.connect("1.2", "client-id", st.clientID)
				} else {
					c.connect("1.2")
				}
				if wait {
					c.subscribe("/topic/news", "d1", st.hdrs...)
				} else {
					c.subscribeNoWait("/topic/news", "d1", st.hdrs...)
				}
				return c
			}
			srv := open()
			c := sub(srv, true)
			pub := connected(t, srv, "tcp")
			pub.publish("/topic/news", "live")
			if m := c.expectMessage("live"); m.GetString("destination") != "/topic/news" || m.GetString("subscription") != "d1" {
				t.Errorf("live delivery: %s", fmtFrame(m))
			}
			c.close()
			// Away means the broker has seen it go: until then an auto-ack
			// delivery to the closing socket is lost like any other.
			waitDurableAway(t, srv)
			pub.publish("/topic/news", "away-1")
			pub.publish("/topic/news", "away-2")
			pub.publish("/topic/other", "not for it")
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}

			srv = open()
			c = sub(srv, false)
			for _, body := range []string{"away-1", "away-2"} {
				if m := c.expectMessage(body); m.GetString("redelivered") != "" || m.GetString("destination") != "/topic/news" {
					t.Errorf("kept message: %s", fmtFrame(m))
				}
			}
			c.sync()
			// UNSUBSCRIBE with the headers ends it: nothing is kept after.
			c.request(frame.UNSUBSCRIBE, "", append([]string{"id", "d1"}, st.hdrs...)...)
			pub = connected(t, srv, "tcp")
			pub.publish("/topic/news", "after the end")
			c.subscribe("/topic/news", "d2", st.hdrs...)
			pub.publish("/topic/news", "new")
			c.expectMessage("new")
			c.sync()
		})
	}
}

// A durable subscription on the memory store keeps messages while the
// subscriber is away (not across a restart), and ActiveMQ's style needs a
// client-id.
func TestDurableTopicSubscriptionMemory(t *testing.T) {
	srv := startServer(t, nil)
	c := dial(t, srv, "tcp")
	c.connect("1.2")
	c.sendFrame(frame.SUBSCRIBE, "", "destination", "/topic/t", "id", "s", "activemq.subscriptionName", "x")
	c.expectError("client-id")

	c = dial(t, srv, "tcp")
	c.connect("1.2", "client-id", "me")
	c.subscribe("/topic/t", "s", "activemq.subscriptionName", "x")
	c.close()
	waitDurableAway(t, srv)
	pub := connected(t, srv, "tcp")
	pub.publish("/topic/t", "kept")
	// The management API lists it, with what it keeps while away.
	var list struct {
		Count    int           `json:"count"`
		Durables []durableInfo `json:"durables"`
	}
	apiJSON(t, srv, "GET", "/api/durables", 200, &list)
	if list.Count != 1 || len(list.Durables) != 1 || list.Durables[0].Topic != "/topic/t" ||
		list.Durables[0].Depth != 1 || list.Durables[0].Consumers != 0 {
		t.Errorf("GET /api/durables: %+v", list)
	}
	c = dial(t, srv, "tcp")
	c.connect("1.2", "client-id", "me")
	c.subscribeNoWait("/topic/t", "s", "activemq.subscriptionName", "x")
	c.expectMessage("kept")
}

// waitDurableAway waits until no durable subscription has a consumer: the
// broker has seen its subscriber go. Until then an auto-ack delivery to the
// closing socket is lost like any other.
func waitDurableAway(t *testing.T, srv *Server) {
	t.Helper()
	waitFor(t, "the durable subscriber to be gone", func() bool {
		for _, q := range srv.router.queueStats() {
			if strings.HasPrefix(q.Name, durablePrefix) && q.Consumers > 0 {
				return false
			}
		}
		return true
	})
}
