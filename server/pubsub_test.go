package server

import (
	"strconv"
	"testing"

	"github.com/stompica/stompica/frame"
)

func TestPubSubFanOut(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		var subs []*client
		for i := range 3 {
			s := connected(t, srv, tr)
			s.subscribe("/topic/news", "sub-"+strconv.Itoa(i))
			subs = append(subs, s)
		}
		pub := connected(t, srv, tr)
		pub.publish("/topic/news", "hello world", "x-custom", "v1", "content-type", "text/plain")
		var ids []string
		for i, s := range subs {
			m := s.expectMessage("hello world")
			want := map[string]string{
				"subscription":   "sub-" + strconv.Itoa(i),
				"destination":    "/topic/news",
				"x-custom":       "v1",
				"content-type":   "text/plain",
				"content-length": "11",
			}
			for k, v := range want {
				if got := m.GetString(k); got != v {
					t.Errorf("subscriber %d: header %s = %q, want %q: %s", i, k, got, v, fmtFrame(m))
				}
			}
			id := m.GetString("message-id")
			if id == "" {
				t.Errorf("subscriber %d: no message-id: %s", i, fmtFrame(m))
			}
			ids = append(ids, id)
			s.sync()
		}
		// Another message gets another message-id.
		pub.publish("/topic/news", "second")
		m := subs[0].expectMessage("second")
		if m.GetString("message-id") == ids[0] {
			t.Errorf("two messages share message-id %q", ids[0])
		}
	})
}

func TestPubSubPlainName(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		a := connected(t, srv, tr)
		b := connected(t, srv, tr)
		a.subscribe("news", "a")
		b.subscribe("news", "b")
		pub := connected(t, srv, tr)
		pub.publish("news", "both get it")
		pub.publish("news", "and this")
		for _, s := range []*client{a, b} {
			if got := s.expectMessage("both get it").GetString("destination"); got != "news" {
				t.Errorf("destination = %q, want news", got)
			}
			s.expectMessage("and this")
		}
	})
}

func TestPubSubNotRetainedWithoutTTL(t *testing.T) {
	// A topic message published with no subscriber (and no TTL) is dropped:
	// a later subscriber does not get it.
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		pub := connected(t, srv, tr)
		pub.publish("/topic/late", "lost")
		s := connected(t, srv, tr)
		s.subscribe("/topic/late", "s")
		pub.publish("/topic/late", "seen")
		s.expectMessage("seen")
	})
}

func TestUnsubscribeStopsDelivery(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		s := connected(t, srv, tr)
		other := connected(t, srv, tr)
		s.subscribe("/topic/u", "s1")
		other.subscribe("/topic/u", "o1")
		pub := connected(t, srv, tr)
		pub.publish("/topic/u", "m1")
		s.expectMessage("m1")
		other.expectMessage("m1")
		s.request(frame.UNSUBSCRIBE, "", "id", "s1")
		pub.publish("/topic/u", "m2")
		other.expectMessage("m2")
		s.sync() // nothing for s

		// The id may be reused after UNSUBSCRIBE.
		s.subscribe("/topic/u", "s1")
		pub.publish("/topic/u", "m3")
		s.expectMessage("m3")
	})
}

func TestUnsubscribeUnknownID(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.sendFrame(frame.UNSUBSCRIBE, "", "id", "never")
		c.expect(frame.ERROR)
		c.expectClosed()
	})
}

func TestSendWithoutDestination(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.sendFrame(frame.SEND, "x")
		c.expectError("destination")
		c.expectClosed()
	})
}

func TestSubscribeWithoutID(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		for _, v := range []string{"1.1", "1.2"} {
			t.Run(v, func(t *testing.T) {
				c := dial(t, srv, tr)
				c.connect(v)
				c.sendFrame(frame.SUBSCRIBE, "", "destination", "/topic/a")
				c.expectError("id")
				c.expectClosed()
			})
		}
		t.Run("1.0", func(t *testing.T) {
			c := dial(t, srv, tr)
			c.connect("1.0")
			c.request(frame.SUBSCRIBE, "", "destination", "/topic/old")
			pub := connected(t, srv, tr)
			pub.publish("/topic/old", "for 1.0")
			c.expectMessage("for 1.0")
			// STOMP 1.0: UNSUBSCRIBE by destination.
			c.request(frame.UNSUBSCRIBE, "", "destination", "/topic/old")
			pub.publish("/topic/old", "after")
			c.sync()
		})
	})
}

func TestSubscribeWithoutDestination(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.sendFrame(frame.SUBSCRIBE, "", "id", "x")
		c.expectError("destination")
		c.expectClosed()
	})
}

func TestDuplicateSubscriptionID(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.subscribe("/topic/a", "dup")
		c.sendFrame(frame.SUBSCRIBE, "", "destination", "/topic/b", "id", "dup")
		c.expectError("dup")
		c.expectClosed()
	})
}

func TestInvalidAckMode(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := connected(t, srv, tr)
		c.sendFrame(frame.SUBSCRIBE, "", "destination", "/queue/a", "id", "1", "ack", "sometimes")
		c.expectError("ack")
		c.expectClosed()
	})
}

func TestBrokerOwnedHeadersNotPassedThrough(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		s := connected(t, srv, tr)
		s.subscribe("/topic/h", "real-sub")
		pub := connected(t, srv, tr)
		pub.publish("/topic/h", "body",
			"message-id", "forged-id",
			"subscription", "forged-sub",
			"ack", "forged-ack",
			"redelivered", "true",
			"destination", "/topic/forged",
			"x-user", "kept")
		m := s.expectMessage("body")
		for _, k := range []string{"message-id", "subscription", "destination", "content-length"} {
			if n := headerCount(m, k); n != 1 {
				t.Errorf("MESSAGE has %d %s headers, want 1: %s", n, k, fmtFrame(m))
			}
		}
		for _, k := range []string{"ack", "redelivered", "receipt"} {
			if n := headerCount(m, k); n != 0 {
				t.Errorf("MESSAGE for an auto-ack topic subscription has %d %s headers, want 0: %s", n, k, fmtFrame(m))
			}
		}
		if got := m.GetString("message-id"); got == "forged-id" {
			t.Errorf("message-id passed through from SEND: %s", fmtFrame(m))
		}
		if got := m.GetString("subscription"); got != "real-sub" {
			t.Errorf("subscription = %q, want real-sub", got)
		}
		if got := m.GetString("destination"); got != "/topic/h" {
			t.Errorf("destination = %q, want /topic/h", got)
		}
		if got := m.GetString("x-user"); got != "kept" {
			t.Errorf("user header x-user = %q, want kept", got)
		}
	})
}

func TestPatterns(t *testing.T) {
	cases := []struct {
		pattern string
		match   []string
		miss    []string
	}{
		{"/topic/a.*", []string{"/topic/a.b", "/topic/a/c"}, []string{"/topic/a", "/topic/a.b.c", "/topic/b.c"}},
		{"/topic/*.c", []string{"/topic/b.c", "/topic/x/c"}, []string{"/topic/b.x.c", "/topic/c"}},
		{"/topic/a.>", []string{"/topic/a.b", "/topic/a.b.c", "/topic/a/b/c/d"}, []string{"/topic/a", "/topic/b.c"}},
		{"/topic/a.#", []string{"/topic/a", "/topic/a.b", "/topic/a.b.c", "/topic/a/b"}, []string{"/topic/ab", "/topic/b"}},
		{"/topic/#.z", []string{"/topic/z", "/topic/x.z", "/topic/x/y.z"}, []string{"/topic/z.x", "/topic/x"}},
		{"/topic/a/*", []string{"/topic/a/b", "/topic/a.b"}, []string{"/topic/a/b/c"}},
		{"stocks.*.nyse", []string{"stocks.ibm.nyse"}, []string{"stocks.nyse", "stocks.ibm.x.nyse"}},
	}
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		pub := connected(t, srv, tr)
		for i, tc := range cases {
			t.Run(tc.pattern, func(t *testing.T) {
				s := connected(t, srv, tr)
				s.subscribe(tc.pattern, "p")
				marker := "/marker/" + strconv.Itoa(i)
				s.subscribe(marker, "m")
				// Interleave matches and misses; only the matches arrive, in order.
				for j := 0; j < max(len(tc.match), len(tc.miss)); j++ {
					if j < len(tc.miss) {
						pub.publish(tc.miss[j], "miss "+tc.miss[j])
					}
					if j < len(tc.match) {
						pub.publish(tc.match[j], "match "+tc.match[j])
					}
				}
				pub.publish(marker, "marker")
				for _, d := range tc.match {
					m := s.expectMessage("match " + d)
					if got := m.GetString("destination"); got != d {
						t.Errorf("pattern %s: MESSAGE destination %q, want the real destination %q", tc.pattern, got, d)
					}
					if got := m.GetString("subscription"); got != "p" {
						t.Errorf("subscription = %q, want p", got)
					}
				}
				s.expectMessage("marker")
			})
		}
	})
}

func TestPatternAndExactBothDeliver(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		s := connected(t, srv, tr)
		s.subscribe("/topic/x.*", "wild")
		s.subscribe("/topic/x.y", "exact")
		pub := connected(t, srv, tr)
		pub.publish("/topic/x.y", "m")
		got := map[string]bool{}
		for range 2 {
			got[s.expectMessage("m").GetString("subscription")] = true
		}
		if !got["wild"] || !got["exact"] {
			t.Errorf("one message should reach both subscriptions, got %v", got)
		}
		s.sync()
	})
}

func TestSendToPattern(t *testing.T) {
	for _, dest := range []string{"/topic/a.*", "/topic/>", "/topic/#", "/queue/jobs.*"} {
		t.Run(dest, func(t *testing.T) {
			srv := startServer(t, nil)
			forEachTransport(t, func(t *testing.T, tr string) {
				c := connected(t, srv, tr)
				c.sendFrame(frame.SEND, "x", "destination", dest, "receipt", "r")
				if got := c.expectError("").GetString("receipt-id"); got != "r" {
					t.Errorf("receipt-id = %q, want r", got)
				}
				c.expectClosed()
			})
		})
	}
}

func TestQueuePattern(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		pub := connected(t, srv, tr)
		// A queue that exists (with a waiting message) before the pattern
		// consumer subscribes, and one created after.
		pub.publish("/queue/jobs.early", "early")
		s := connected(t, srv, tr)
		s.subscribeNoWait("/queue/jobs.*", "jobs")
		m := s.expectMessage("early")
		if got := m.GetString("destination"); got != "/queue/jobs.early" {
			t.Errorf("destination = %q, want /queue/jobs.early", got)
		}
		pub.publish("/queue/jobs.a", "a")
		pub.publish("/queue/other", "not for jobs.*")
		pub.publish("/queue/jobs.b.c", "not for jobs.* either")
		pub.publish("/queue/jobs.b", "b")
		if got := s.expectMessage("a").GetString("destination"); got != "/queue/jobs.a" {
			t.Errorf("destination = %q, want /queue/jobs.a", got)
		}
		if got := s.expectMessage("b").GetString("destination"); got != "/queue/jobs.b" {
			t.Errorf("destination = %q, want /queue/jobs.b", got)
		}
		s.sync()
		// The non-matching queue kept its message.
		o := connected(t, srv, tr)
		o.subscribeNoWait("/queue/other", "o")
		o.expectMessage("not for jobs.*")
	})
}
