package server_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/stompica/stompica/server"
)

// Embedding the broker: start it on a random port, publish and receive over
// raw STOMP, shut it down.
func Example() {
	srv, err := server.New(&server.Options{
		Host:   "127.0.0.1",
		Port:   -1,                            // a random free port (0 would be 3490)
		Logger: slog.New(slog.DiscardHandler), // or slog.Default(), or your own
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil { // listens and serves in the background
		log.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil { // clients get ERROR "shutting down"
			log.Fatal(err)
		}
		fmt.Println("shut down")
	}()

	addr := srv.Addr().String()
	subscriber := connect(addr)
	defer subscriber.Close()
	subscriber.send("SUBSCRIBE", "", "destination:/topic/greetings", "id:0", "receipt:subscribed")
	fmt.Println(subscriber.read())

	publisher := connect(addr)
	defer publisher.Close()
	publisher.send("SEND", "hello, world", "destination:/topic/greetings", "content-type:text/plain")

	fmt.Println(subscriber.read())
	// Output:
	// RECEIPT receipt-id:subscribed
	// MESSAGE destination:/topic/greetings subscription:0 content-type:text/plain "hello, world"
	// shut down
}

// With a TTL, a topic message that found no subscriber is kept for the first
// subscriber that comes before it expires: the original stompica's
// "stale queue" (its TTL= argument).
func Example_ttl() {
	srv, err := server.New(&server.Options{
		Host:   "127.0.0.1",
		Port:   -1,
		TTL:    5 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown(context.Background())

	publisher := connect(srv.Addr().String())
	defer publisher.Close()
	publisher.send("SEND", "nobody listens yet", "destination:/topic/news", "receipt:sent")
	fmt.Println(publisher.read())

	late := connect(srv.Addr().String())
	defer late.Close()
	late.send("SUBSCRIBE", "", "destination:/topic/news", "id:late")
	fmt.Println(late.read())
	// Output:
	// RECEIPT receipt-id:sent
	// MESSAGE destination:/topic/news subscription:late "nobody listens yet"
}

// Serve runs the broker on a listener of your own, here a work queue: each
// message goes to one consumer, which acknowledges it.
func ExampleServer_Serve() {
	srv, err := server.New(&server.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }() // Serve returns when the server shuts down

	worker := connect(ln.Addr().String())
	worker.send("SUBSCRIBE", "", "destination:/queue/jobs", "id:w", "ack:client-individual", "receipt:ready")
	fmt.Println(worker.read())
	producer := connect(ln.Addr().String())
	producer.send("SEND", "job 1", "destination:/queue/jobs")
	job := worker.readFrame()
	fmt.Println(job)
	worker.send("ACK", "", "id:"+job.header("ack"), "receipt:acked")
	fmt.Println(worker.read())
	worker.Close()
	producer.Close()

	if err := srv.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-served)
	// Output:
	// RECEIPT receipt-id:ready
	// MESSAGE destination:/queue/jobs subscription:w "job 1"
	// RECEIPT receipt-id:acked
	// stompica: server closed
}

// stompConn is a minimal STOMP 1.2 client over a net.Conn, enough for the
// examples: any STOMP client library works the same way.
type stompConn struct {
	net.Conn
	r *bufio.Reader
}

// connect dials addr and sends CONNECT (heart-beats off); it returns once
// CONNECTED has arrived.
func connect(addr string) *stompConn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	c := &stompConn{Conn: nc, r: bufio.NewReader(nc)}
	c.send("CONNECT", "", "accept-version:1.2", "host:localhost", "heart-beat:0,0")
	if f := c.readFrame(); f.command != "CONNECTED" {
		log.Fatalf("want CONNECTED, got %v", f)
	}
	return c
}

// send writes one frame.
func (c *stompConn) send(command, body string, headers ...string) {
	frame := command + "\n" + strings.Join(headers, "\n") + "\n\n" + body + "\x00"
	if _, err := c.Write([]byte(frame)); err != nil {
		log.Fatal(err)
	}
}

type stompFrame struct {
	command string
	headers []string
	body    string
}

func (f stompFrame) header(key string) string {
	for _, h := range f.headers {
		if k, v, _ := strings.Cut(h, ":"); k == key {
			return v
		}
	}
	return ""
}

// String shows the command, the headers the examples look at (in this
// order, whatever order they came in) and the body.
func (f stompFrame) String() string {
	s := f.command
	for _, k := range []string{"destination", "subscription", "content-type", "receipt-id", "message"} {
		if v := f.header(k); v != "" {
			s += " " + k + ":" + v
		}
	}
	if f.body != "" {
		s += fmt.Sprintf(" %q", f.body)
	}
	return s
}

// readFrame reads the next frame (a text body, up to its NUL).
func (c *stompConn) readFrame() stompFrame {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var f stompFrame
	for f.command == "" { // skip heart-beat end-of-lines
		line, err := c.r.ReadString('\n')
		if err != nil {
			log.Fatal(err)
		}
		f.command = strings.TrimRight(line, "\r\n")
	}
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			log.Fatal(err)
		}
		if line = strings.TrimRight(line, "\r\n"); line == "" {
			break
		}
		f.headers = append(f.headers, line)
	}
	body, err := c.r.ReadString(0)
	if err != nil {
		log.Fatal(err)
	}
	f.body = strings.TrimSuffix(body, "\x00")
	return f
}

// read reads the next frame and shows it.
func (c *stompConn) read() string { return c.readFrame().String() }
