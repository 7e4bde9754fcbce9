package server

import (
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

// discardConn is a net.Conn whose writes vanish: the router benchmarks
// measure routing, encoding and buffering, not the kernel.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (discardConn) Close() error                     { return nil }
func (discardConn) SetReadDeadline(time.Time) error  { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func benchServer(b *testing.B) *Server {
	s, err := New(&Options{Port: -1, Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.httpLn.Close() })
	return s
}

func benchConn(s *Server) *conn {
	c := newConn(s, discardConn{}, nil)
	c.connected, c.version = true, frame.Version12
	return c
}

// benchSend is a parsed SEND frame with a 117-byte body and a few headers.
func benchSend(dest string) *frame.Frame {
	var p frame.Parser
	p.Version = frame.Version12
	raw := []byte("SEND\ndestination:" + dest + "\ncontent-type:text/plain\nx-app:bench\npriority:4\n\n" +
		string(make([]byte, 0)) + "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567\x00")
	f, _, err := p.Parse(raw)
	if err != nil || f == nil {
		panic("bad bench frame")
	}
	return &frame.Frame{Command: f.Command, Headers: append([]frame.Header(nil), f.Headers...), Body: f.Body, Plain: f.Plain}
}

// BenchmarkRouterFanout publishes to a topic with 75 subscribers; one op is
// one publish (75 deliveries appended to 75 connection buffers).
func BenchmarkRouterFanout(b *testing.B) {
	for _, subs := range []int{1, 75} {
		b.Run(strconv.Itoa(subs), func(b *testing.B) {
			s := benchServer(b)
			var bt batch
			for i := 0; i < subs; i++ {
				c := benchConn(s)
				s.router.subscribe(newSubscription(c, "s", "/topic/bench", ackAuto, 0, 1), &bt)
			}
			bt.flush()
			f := benchSend("/topic/bench")
			pub := benchConn(s)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.router.publish(s.router.newMessage(f, "/topic/bench", time.Time{}), &pub.batch)
				if i%64 == 63 {
					pub.batch.flush()
				}
			}
			pub.batch.flush()
			b.ReportMetric(float64(b.N*subs)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkRouterPatternFanout routes through the pattern trie and cache
// with 100,000 other exact-name subscriptions present.
func BenchmarkRouterPatternFanout(b *testing.B) {
	s := benchServer(b)
	var bt batch
	c := benchConn(s)
	for i := 0; i < 100_000; i++ {
		s.router.subscribe(newSubscription(c, strconv.Itoa(i), "/topic/other."+strconv.Itoa(i), ackAuto, 0, uint64(i)), &bt)
	}
	for i := 0; i < 10; i++ {
		s.router.subscribe(newSubscription(benchConn(s), "p", "/topic/stocks.*", ackAuto, 0, 1), &bt)
	}
	bt.flush()
	f := benchSend("/topic/stocks.ibm")
	pub := benchConn(s)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.router.publish(s.router.newMessage(f, "/topic/stocks.ibm", time.Time{}), &pub.batch)
		if i%64 == 63 {
			pub.batch.flush()
		}
	}
	pub.batch.flush()
}

// BenchmarkQueueClientIndividual sends to a queue with 4 client-individual
// consumers and acknowledges every delivery.
func BenchmarkQueueClientIndividual(b *testing.B) {
	s := benchServer(b)
	var bt batch
	subs := make([]*subscription, 4)
	for i := range subs {
		subs[i] = newSubscription(benchConn(s), "q", "/queue/bench", ackIndividual, 100, 1)
		s.router.subscribe(subs[i], &bt)
	}
	bt.flush()
	f := benchSend("/queue/bench")
	pub := benchConn(s)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := s.router.newMessage(f, "/queue/bench", time.Time{})
		s.router.publish(m, &pub.batch)
		for _, sub := range subs {
			if sub.has(m.id) {
				s.router.ack(sub, m.id, false, &pub.batch)
				break
			}
		}
		if i%64 == 63 {
			pub.batch.flush()
		}
	}
	pub.batch.flush()
}

// BenchmarkQueueClientIndividualWindow is the queue path with full prefetch
// windows, as in stompbench's queue scenario: 4 client-individual consumers
// each hold prefetch unacknowledged messages, and every publish is matched
// by the ACK of the oldest delivery of one consumer (in turn), which frees
// the credit the next dispatch uses. One op is one message: SEND, dispatch
// and ACK.
func BenchmarkQueueClientIndividualWindow(b *testing.B) {
	for _, prefetch := range []int{100, 1000} {
		b.Run(strconv.Itoa(prefetch), func(b *testing.B) {
			s := benchServer(b)
			var bt batch
			subs := make([]*subscription, 4)
			for i := range subs {
				subs[i] = newSubscription(benchConn(s), "q", "/queue/bench", ackIndividual, prefetch, 1)
				s.router.subscribe(subs[i], &bt)
			}
			f := benchSend("/queue/bench")
			pub := benchConn(s)
			for range 4 * prefetch { // fill every window
				s.router.publish(s.router.newMessage(f, "/queue/bench", time.Time{}), &bt)
			}
			bt.flush()
			oldest := func(sub *subscription) uint64 {
				sub.mu.Lock()
				defer sub.mu.Unlock()
				return sub.unacked.d.Front().id
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.router.publish(s.router.newMessage(f, "/queue/bench", time.Time{}), &pub.batch)
				sub := subs[i%len(subs)]
				if ok, _ := s.router.ack(sub, oldest(sub), false, &pub.batch); !ok {
					b.Fatal("ack of the oldest delivery failed")
				}
				if i%64 == 63 {
					pub.batch.flush()
				}
			}
			pub.batch.flush()
		})
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
