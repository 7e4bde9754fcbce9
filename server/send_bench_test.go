package server

import (
	"strconv"
	"testing"
)

// BenchmarkQueueWire is BenchmarkQueueClientIndividualWindow from the
// wire on: each op parses and handles one SEND frame, as stompbench's
// producers write it, on a publisher connection, and one 1.2 ACK frame
// for the oldest delivery of one consumer (in turn) on that consumer's
// connection. No socket: the frames are put in the connections' read
// buffers and processed as a read would.
func BenchmarkQueueWire(b *testing.B) {
	send := benchSendFrame()
	for _, prefetch := range []int{100, 1000} {
		b.Run(strconv.Itoa(prefetch), func(b *testing.B) {
			s := benchServer(b)
			var bt batch
			conns := make([]*conn, 4)
			subs := make([]*subscription, 4)
			for i := range subs {
				conns[i] = benchConn(s)
				subs[i] = newSubscription(conns[i], "1", "/queue/bench", ackIndividual, prefetch, uint64(i+1))
				conns[i].subs = map[string]*subscription{"1": subs[i]}
				s.router.subscribe(subs[i], &bt)
			}
			bt.flush()
			pub := benchConn(s)
			feed := func(c *conn, raw []byte) {
				c.rbuf = append(c.rbuf[:0], raw...)
				c.rpos, c.rlen = 0, len(raw)
				if !c.process() || c.rpos != c.rlen {
					b.Fatalf("frame %q not handled", raw)
				}
			}
			for range 4 * prefetch { // fill every window
				feed(pub, send)
			}
			oldest := func(sub *subscription) uint64 {
				sub.mu.Lock()
				defer sub.mu.Unlock()
				return sub.unacked.d.Front().id
			}
			var ack []byte
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				feed(pub, send)
				k := i % len(subs)
				ack = append(ack[:0], "ACK\nid:"...)
				ack = strconv.AppendUint(ack, subs[k].idx, 10)
				ack = append(ack, '-')
				ack = strconv.AppendUint(ack, oldest(subs[k]), 10)
				ack = append(ack, "\n\n\x00"...)
				feed(conns[k], ack)
			}
			b.StopTimer()
			if n := s.stats.acks.Load(); n < uint64(b.N) {
				b.Fatalf("%d acks for %d ops", n, b.N)
			}
		})
	}
}

// benchBody is the body of stompbench's default SEND (117 bytes).
const benchBody = "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567"

// benchSendFrame is a SEND as stompbench's producers write it:
// destination, content-type, content-length and benchBody.
func benchSendFrame() []byte {
	return []byte("SEND\ndestination:/queue/bench\ncontent-type:text/plain\ncontent-length:" +
		strconv.Itoa(len(benchBody)) + "\n\n" + benchBody + "\x00")
}
