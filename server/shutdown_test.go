package server

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

func TestShutdownNotifiesClients(t *testing.T) {
	srv := startServer(t, nil)
	var clients []*client
	for _, tr := range transports {
		c := connected(t, srv, tr)
		c.subscribe("/topic/s", "s")
		clients = append(clients, c)
		// A client that has not sent CONNECT yet is told too.
		clients = append(clients, dial(t, srv, tr))
	}
	// Make sure the unconnected clients are past the HTTP/STOMP sniffing
	// and registered (TestShutdownWhileSniffing covers the others).
	clients[1].send("CONNECT\naccept-version:1.2\n")
	poller := connected(t, srv, "tcp")
	poller.waitSessions(len(clients) + 1)
	clients = append(clients, poller)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for i, c := range clients {
		f := c.expect(frame.ERROR)
		if got := f.GetString("message"); got != "shutting down" {
			t.Errorf("%s client %d: ERROR message %q, want shutting down", c.tr, i, got)
		}
		c.expectClosed()
	}
	// No new connections.
	nc, err := net.DialTimeout("tcp", srv.Addr().String(), time.Second)
	if err == nil {
		nc.Close()
		t.Errorf("dial after Shutdown succeeded")
	}
	// Shutdown is idempotent.
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

func TestServeAfterShutdown(t *testing.T) {
	srv := startServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v, want ErrServerClosed", err)
	}
}

func TestServeOwnListener(t *testing.T) {
	base := startServer(t, nil) // only for its cleanup-time goroutine check
	_ = base
	srv, err := New(&Options{Logger: base.Options().Logger})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	nc, err := net.DialTimeout("tcp", ln.Addr().String(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(waitTimeout))
	nc.Write([]byte("CONNECT\naccept-version:1.2\nhost:h\n\n\x00"))
	buf := make([]byte, 9)
	if _, err := nc.Read(buf); err != nil || string(buf) != "CONNECTED" {
		t.Fatalf("read %q, %v; want CONNECTED", buf, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not return after Shutdown")
	}
}

// TestShutdownWhileSniffing: a TCP connection that has sent fewer bytes
// than the HTTP/STOMP sniffer needs (or nothing) must not hold Shutdown up
// until ConnectTimeout.
func TestShutdownWhileSniffing(t *testing.T) {
	for _, sent := range []string{"", "\n", "CON"} {
		t.Run(strconv.Quote(sent), func(t *testing.T) {
			srv := startServer(t, func(o *Options) { o.ConnectTimeout = 20 * time.Second })
			c := dial(t, srv, "tcp")
			if sent != "" {
				c.send(sent)
			}
			// Let the broker accept it (a connected client's receipt
			// round trip is accepted after it in the same accept loop).
			connected(t, srv, "tcp").sync()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start := time.Now()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown with a connection still being sniffed: %v after %v", err, time.Since(start))
			}
			// Whether a connection that has not shown it speaks STOMP is
			// told "shutting down" is the broker's choice; it must close.
			ev, ended, err := c.next(waitTimeout)
			if !ended && err == nil && ev.kind == evFrame && ev.f.Command == frame.ERROR {
				c.expectClosed()
			} else if !ended {
				t.Fatalf("want the connection closed, got kind=%v err=%v", ev.kind, err)
			}
		})
	}
}

// TestShutdownRacesNewConnections: Shutdown while connections are being
// set up must still end them promptly (the read loop must notice the
// close even if it arms its own read deadline after Shutdown woke it).
// first is what each client has sent: exactly the
// 4 bytes the sniffer reads, or more (bytes the broker may not have read
// when it closes the socket).
func TestShutdownRacesNewConnections(t *testing.T) {
	for _, first := range []string{"CONN", "CONNECT\naccept-version:1.2\n"} {
		t.Run(strconv.Quote(first), func(t *testing.T) {
			for round := range 5 {
				srv := startServer(t, func(o *Options) { o.ConnectTimeout = 20 * time.Second })
				var cs []*client
				for range 10 {
					c := dial(t, srv, "tcp")
					c.send(first) // no CONNECT yet
					cs = append(cs, c)
				}
				// Accepted in order: once a later connection works, all ten
				// were accepted (some may still be setting up: the point).
				connected(t, srv, "tcp")
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				start := time.Now()
				err := srv.Shutdown(ctx)
				cancel()
				if err != nil {
					t.Fatalf("round %d: Shutdown with connections being set up: %v after %v", round, err, time.Since(start))
				}
				for _, c := range cs {
					c.expectShutdownClose()
				}
			}
		})
	}
}

// TestShutdownWaitsForItsGoroutines: when Shutdown returns, the loops the
// server started have returned (accept loops, connection read loops, the
// HTTP server's serve loop), without polling: Shutdown waits for them.
// (A goroutine may still be on its way out past its WaitGroup's Done, so
// only frames of the loops themselves are looked for.)
func TestShutdownWaitsForItsGoroutines(t *testing.T) {
	loops := []string{"net/http.(*Server).Serve(", "github.com/stompica/stompica/server.(*Server).acceptLoop(",
		"github.com/stompica/stompica/server.(*Server).handleConn(", "github.com/stompica/stompica/server.(*conn).serve("}
	for i := range 30 {
		srv := startServer(t, nil)
		if i%2 == 0 { // with a connection, and without: nothing else to wait for
			c := connected(t, srv, "tcp")
			c.subscribe("/topic/g", "g")
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		err := srv.Shutdown(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range brokerGoroutines() {
			for _, l := range loops {
				if strings.Contains(g, l) {
					t.Fatalf("round %d: a loop of the server still runs after Shutdown returned:\n%s", i, g)
				}
			}
		}
	}
}
