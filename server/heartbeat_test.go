package server

import (
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

func TestHeartBeatServerSends(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.HeartBeatSend = 50 * time.Millisecond })
		c := dial(t, srv, tr)
		f := c.connect("1.2", "heart-beat", "0,100")
		if got := f.GetString("heart-beat"); got == "" || got[:3] != "50," {
			t.Fatalf("CONNECTED heart-beat = %q, want 50,<recv>", got)
		}
		// STOMP: the server beats every max(50, 100) = 100 ms.
		start := time.Now()
		beats := 0
		deadline := time.Now().Add(waitTimeout)
		for beats < 3 {
			ev, ended, err := c.next(time.Until(deadline))
			if ended || err != nil {
				t.Fatalf("waiting for heart-beats: got %d, ended=%v err=%v", beats, ended, err)
			}
			switch ev.kind {
			case evBeat:
				beats++
			case evFrame:
				t.Fatalf("unexpected frame %s", fmtFrame(ev.f))
			}
		}
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Errorf("3 heart-beats in %v: faster than the negotiated 100 ms", d)
		}
		c.sync()
	})
}

func TestHeartBeatNoneWhenClientRefuses(t *testing.T) {
	// The client asks for no beats (cy = 0): after a while, a receipt round
	// trip sees no EOL before the RECEIPT.
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) { o.HeartBeatSend = 20 * time.Millisecond })
		c := dial(t, srv, tr)
		c.connect("1.2", "heart-beat", "0,0")
		time.Sleep(150 * time.Millisecond) // several server intervals
		c.sendFrame(frame.SEND, "", "destination", "sync-noop", "receipt", "r")
		ev, _, err := c.next(waitTimeout)
		if err != nil || ev.kind != evFrame || ev.f.Command != frame.RECEIPT {
			t.Fatalf("want the RECEIPT and no heart-beat, got kind=%v err=%v", ev.kind, err)
		}
	})
}

func TestHeartBeatSilentClientClosed(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) {
			o.HeartBeatRecv = 50 * time.Millisecond
			o.HeartBeatSend = -1
		})
		c := dial(t, srv, tr)
		start := time.Now()
		f := c.connect("1.2", "heart-beat", "100,0")
		if got := f.GetString("heart-beat"); got != "0,50" {
			t.Errorf("CONNECTED heart-beat = %q, want 0,50", got)
		}
		// The client promised a beat every max(100, 50) ms and sends nothing.
		c.expectError("heart-beat")
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Errorf("closed after %v, before the agreed 100 ms interval", d)
		}
		c.expectClosed()
	})
}

func TestHeartBeatBeatingClientStays(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) {
			o.HeartBeatRecv = 50 * time.Millisecond
			o.HeartBeatSend = -1
			o.HeartBeatGrace = 4
		})
		c := dial(t, srv, tr)
		// The client promises a beat every 250 ms (the broker waits for up
		// to 1 s: a loaded CI machine may stall a beat or two) and beats
		// every 50 ms for 2.5 s, well past that window.
		c.connect("1.2", "heart-beat", "250,0")
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		end := time.Now().Add(2500 * time.Millisecond)
		for time.Now().Before(end) {
			<-tick.C
			c.send("\n")
		}
		c.sync()
		// Frames count as activity too.
		for range 8 {
			<-tick.C
			c.sendFrame(frame.SEND, "", "destination", "sync-noop")
		}
		c.sync()
	})
}

func TestHeartBeatMalformed(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, nil)
		c := dial(t, srv, tr)
		c.sendFrame(frame.CONNECT, "", "accept-version", "1.2", "host", "localhost", "heart-beat", "ten,twenty")
		c.expectError("heart-beat")
		c.expectClosed()
	})
}

// TestHeartBeatBusyClientSilent: a client whose frames come in quick
// succession (its read loop then waits idleGrace in place before a
// hand-off, see busy) and that then goes silent is still closed for its
// missing heart-beats: the wait gives the read deadline back.
func TestHeartBeatBusyClientSilent(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv := startServer(t, func(o *Options) {
			o.HeartBeatRecv = 50 * time.Millisecond
			o.HeartBeatSend = -1
		})
		c := dial(t, srv, tr)
		c.connect("1.2", "heart-beat", "200,0")
		for range 20 {
			c.sendFrame(frame.SEND, "", "destination", "sync-noop")
			c.sync()
		}
		last := time.Now()
		c.expectError("heart-beat")
		if d := time.Since(last); d < 200*time.Millisecond {
			t.Errorf("closed %v after the last frame, before the agreed 200 ms interval", d)
		}
		c.expectClosed()
	})
}
