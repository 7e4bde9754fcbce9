package server

// Every mistake gets a message that names the fix: one test per message,
// on the wire (the ERROR frame, the close code, the reply) and in the log.

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/stompica/stompica/frame"
)

// startLogged is startServer with the broker's log kept for the test.
func startLogged(t *testing.T, configure func(*Options)) (*Server, *authLogBuffer) {
	t.Helper()
	logs := &authLogBuffer{}
	srv := startServer(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if configure != nil {
			configure(o)
		}
	})
	return srv, logs
}

// waitLog waits for a log line that contains every part, and returns it.
func waitLog(t *testing.T, logs *authLogBuffer, parts ...string) string {
	t.Helper()
	var found string
	waitFor(t, "a log line with "+strings.Join(parts, " and "), func() bool {
		for line := range strings.SplitSeq(logs.String(), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				found = line
				return true
			}
		}
		return false
	})
	return found
}

// localPeer is how the broker's log names the client c: peer=ADDR.
func localPeer(c *client) string { return "peer=" + c.nc.LocalAddr().String() }

// Over TCP and WebSocket (where the STOMP limit is what trips), "frame too
// large" names the limit and its flag.
func TestMistakeFrameTooLargeNamesLimit(t *testing.T) {
	const want = "frame too large: the limit is 4096 bytes (4 KiB), headers and body (the broker's --max-frame-size)"
	forEachTransport(t, func(t *testing.T, tr string) {
		srv, logs := startLogged(t, func(o *Options) { o.MaxFrameSize = 4096; o.MaxWebSocketMessage = 1 << 20 })
		c := connected(t, srv, tr)
		c.trySend(string(c.encode(frame.SEND, strings.Repeat("b", 8000), "destination", "/topic/size")))
		if got := c.expectError(want).GetString("message"); got != want {
			t.Errorf("message %q, want %q", got, want)
		}
		c.expectClosed()
		waitLog(t, logs, "protocol error", want, localPeer(c))
	})
}

// A client still sending a frame or WebSocket message far over the limit
// finishes its write, then reads the ERROR naming the limit and, over
// WebSocket, the close 1009 (a reset instead made stompjs report 1006).
func TestMistakeOversizeWhileSending(t *testing.T) {
	const big = 32 << 20
	forEachTransport(t, func(t *testing.T, tr string) {
		srv, logs := startLogged(t, func(o *Options) { o.MaxFrameSize = 64 << 10 })
		c := connected(t, srv, tr)
		c.pause() // like a browser busy sending: nothing is read meanwhile
		raw := c.encode(frame.SEND, strings.Repeat("z", big), "destination", "/queue/big")
		c.nc.SetWriteDeadline(time.Now().Add(4 * waitTimeout))
		var err error
		if tr == "tcp" {
			_, err = c.nc.Write(raw)
		} else {
			err = wsutil.WriteClientMessage(c.nc, ws.OpText, raw)
		}
		if err != nil {
			t.Errorf("the client's write of %d bytes failed: %v (the broker reset the connection)", len(raw), err)
		}
		c.resume()
		want := "frame too large: the limit is 65536 bytes (64 KiB)"
		if tr == "ws" {
			want = "WebSocket message too large: the limit is 65536 bytes (64 KiB) (the broker's --max-ws-message, which defaults to --max-frame-size)"
		}
		c.expectError(want)
		if code := c.expectClosed(); tr == "ws" && code != ws.StatusMessageTooBig {
			t.Errorf("close code %d, want 1009", code)
		}
		waitLog(t, logs, want, localPeer(c))
	})
}

// A STOMP command in lower case is named, with the rule.
func TestMistakeLowerCaseCommand(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		srv, logs := startLogged(t, nil)
		c := connected(t, srv, tr)
		c.send("send\ndestination:/queue/a\n\nx\x00")
		const want = "unknown command 'send' (STOMP commands are upper-case)"
		if got := c.expectError(want).GetString("message"); got != want {
			t.Errorf("message %q, want %q", got, want)
		}
		c.expectClosed()
		waitLog(t, logs, want, localPeer(c))

		// Before CONNECT too, and after heart-beat EOLs.
		c = dial(t, srv, tr)
		c.send("\n\r\nconnect\naccept-version:1.2\n\n\x00")
		c.expectError("unknown command 'connect' (STOMP commands are upper-case)")
		c.expectClosed()
		c = connected(t, srv, tr)
		c.send("frob\n\n\x00")
		c.expectError(`unknown command "frob" (STOMP commands are upper-case letters)`)
	})
}

// TLS on the plain port, or plain TCP on the TLS port: a log line says so
// and names the port to use; plain STOMP and HTTP also get an answer.
func TestMistakeWrongPortForTLS(t *testing.T) {
	t.Run("with a TLS port", testWrongPortWithTLS)
	t.Run("without a TLS port", func(t *testing.T) {
		srv, logs := startLogged(t, nil)
		nc, err := net.DialTimeout("tcp", srv.Addr().String(), waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
		tc.SetDeadline(time.Now().Add(waitTimeout))
		tc.Handshake() //nolint:errcheck // fails
		waitLog(t, logs, "this broker has no TLS port: start it with --tls-cert and --tls-key", "peer="+nc.LocalAddr().String())
		tc.Close()
	})
}

func testWrongPortWithTLS(t *testing.T) {
	ca := authCert(t, "test CA", nil, true)
	certFile, keyFile := authPEM(t, authCert(t, "127.0.0.1", &ca, false, net.IPv4(127, 0, 0, 1)))
	srv, logs := startLogged(t, func(o *Options) { o.TLSCert, o.TLSKey, o.TLSPort = certFile, keyFile, -1 })
	plain, tlsAddr := srv.Addr().String(), srv.TLSAddr().String()

	nc, err := net.DialTimeout("tcp", plain, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
	tc.SetDeadline(time.Now().Add(waitTimeout))
	if err := tc.Handshake(); err == nil {
		t.Error("a TLS handshake on the plain port succeeded")
	}
	waitLog(t, logs, "TLS on the plain port: the client started a TLS handshake", "connect it to the TLS port "+tlsAddr,
		"peer="+nc.LocalAddr().String())
	tc.Close()

	for _, tt := range []struct{ send, reply, log string }{
		{"CONNECT\naccept-version:1.2\n\n\x00", "message:this port speaks TLS: connect with TLS (stomp+ssl://), or without TLS to the plain port " + plain,
			"plain TCP on the TLS port: the client sent a STOMP frame or other data without TLS"},
		{"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.0 400 Bad Request",
			"plain TCP on the TLS port: the client sent an HTTP request (http://, ws://) without TLS"},
	} {
		nc, err := net.DialTimeout("tcp", tlsAddr, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(waitTimeout))
		if _, err := nc.Write([]byte(tt.send)); err != nil {
			t.Fatal(err)
		}
		reply, err := io.ReadAll(nc)
		if err != nil {
			t.Errorf("reading the reply: %v", err)
		}
		if !strings.Contains(string(reply), tt.reply) || !strings.Contains(string(reply), "TLS") {
			t.Errorf("reply %q, want it to contain %q", reply, tt.reply)
		}
		waitLog(t, logs, tt.log, "or without TLS to the plain port "+plain, "peer="+nc.LocalAddr().String())
		nc.Close()
	}
}

// TLS options that cannot work are refused at Start, naming the missing
// flag; a key that cannot be read is reported as the key.
func TestMistakeTLSOptions(t *testing.T) {
	ca := authCert(t, "test CA", nil, true)
	caFile, _ := authPEM(t, ca)
	certFile, keyFile := authPEM(t, authCert(t, "127.0.0.1", &ca, false, net.IPv4(127, 0, 0, 1)))
	for _, tt := range []struct {
		o    Options
		want string
	}{
		{Options{TLSKey: keyFile}, "--tls-key (Options.TLSKey) is set without --tls-cert"},
		{Options{TLSCert: certFile}, "--tls-cert (Options.TLSCert) is set without --tls-key"},
		{Options{TLSClientCA: caFile}, "--tls-client-ca (Options.TLSClientCA) needs a TLS port: --tls-cert and --tls-key"},
	} {
		tt.o.Host, tt.o.Port = "127.0.0.1", -1
		if err := authNew(t, tt.o).Start(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Start with %+v: %v, want an error with %q", tt.o, err, tt.want)
		}
	}
	missing := filepath.Join(t.TempDir(), "no-such-key.pem")
	notPEM := authWriteFile(t, "garbage.pem", "not a key")
	for _, tt := range []struct {
		cert, key, want string
	}{
		{certFile, missing, "TLS private key (--tls-key): open " + missing},
		{missing, keyFile, "TLS certificate (--tls-cert): open " + missing},
		{certFile, notPEM, "TLS certificate " + certFile + " and key " + notPEM},
	} {
		srv := authNew(t, Options{Host: "127.0.0.1", Port: -1, TLSPort: -1, TLSCert: tt.cert, TLSKey: tt.key})
		err := srv.Start()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Start with cert %s key %s: %v, want %q", tt.cert, tt.key, err, tt.want)
		}
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("the missing key exists")
	}
}

// The start log names the URLs: STOMP, WebSocket, console, metrics, and
// the TLS port's when it is open.
func TestStartLogURLs(t *testing.T) {
	ca := authCert(t, "test CA", nil, true)
	certFile, keyFile := authPEM(t, authCert(t, "127.0.0.1", &ca, false, net.IPv4(127, 0, 0, 1)))
	srv, logs := startLogged(t, func(o *Options) { o.TLSCert, o.TLSKey, o.TLSPort = certFile, keyFile, -1 })
	p, s := srv.Addr().String(), srv.TLSAddr().String()
	waitLog(t, logs, `msg="stompica listening"`, "tls=false", "stomp=stomp://"+p+" ", "websocket=ws://"+p+"/ws", "console=http://"+p+"/console", "metrics=http://"+p+"/metrics")
	waitLog(t, logs, `msg="stompica listening"`, "tls=true", "stomp=stomp+ssl://"+s+" ", "websocket=wss://"+s+"/ws", "console=https://"+s+"/console", "metrics=https://"+s+"/metrics")
	all := listenURLs(&net.TCPAddr{IP: net.IPv6unspecified, Port: 3490}, false)
	if len(all) != 8 || all[1] != "stomp://localhost:3490" || all[3] != "ws://localhost:3490/ws" {
		t.Errorf("URLs on all interfaces: %q", all)
	}
	if v6 := listenURLs(&net.TCPAddr{IP: net.IPv6loopback, Port: 1}, true); v6[1] != "stomp+ssl://[::1]:1" {
		t.Errorf("IPv6 URL %q", v6[1])
	}
}
