package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/stompica/stompica/frame"
)

// tlsSetup makes a CA, a server certificate for 127.0.0.1 and a client
// certificate, and starts a broker with a TLS port.
func tlsSetup(t *testing.T, requireClientCert bool) (srv *Server, roots *x509.CertPool, client tls.Certificate) {
	t.Helper()
	ca := authCert(t, "test CA", nil, true)
	caFile, _ := authPEM(t, ca)
	certFile, keyFile := authPEM(t, authCert(t, "127.0.0.1", &ca, false, net.IPv4(127, 0, 0, 1)))
	srv = startServer(t, func(o *Options) {
		o.TLSCert, o.TLSKey, o.TLSPort = certFile, keyFile, -1
		if requireClientCert {
			o.TLSClientCA = caFile
		}
	})
	roots = x509.NewCertPool()
	roots.AddCert(ca.Leaf)
	return srv, roots, authCert(t, "device-7", &ca, false)
}

// tlsConnect speaks STOMP over an established TLS connection (raw, or a
// WebSocket on top of it) and expects CONNECTED, then a receipt.
func tlsConnect(t *testing.T, nc net.Conn, overWS bool) {
	t.Helper()
	nc.SetDeadline(time.Now().Add(waitTimeout))
	var rw interface {
		Write([]byte) (int, error)
	} = nc
	r := bufio.NewReader(nc)
	if overWS {
		d := ws.Dialer{Protocols: []string{"v12.stomp"}, NetDial: func(context.Context, string, string) (net.Conn, error) { return nc, nil }}
		conn, br, hs, err := d.Dial(context.Background(), "ws://127.0.0.1/ws")
		if err != nil {
			t.Fatalf("wss upgrade: %v", err)
		}
		if hs.Protocol != "v12.stomp" {
			t.Errorf("wss subprotocol %q", hs.Protocol)
		}
		if br != nil {
			r = br
		}
		raw := []byte("CONNECT\naccept-version:1.2\n\n\x00SEND\ndestination:/topic/tls\nreceipt:r\n\nhi\x00")
		if err := wsutil.WriteClientText(conn, raw); err != nil {
			t.Fatal(err)
		}
		var got []byte
		for !strings.Contains(string(got), "RECEIPT") {
			msg, err := wsutil.ReadServerText(struct {
				io.Reader
				io.Writer
			}{r, conn})
			if err != nil {
				t.Fatalf("wss read: %v (so far %q)", err, got)
			}
			got = append(got, msg...)
		}
		if !strings.HasPrefix(string(got), "CONNECTED\n") {
			t.Fatalf("wss: got %q", got)
		}
		return
	}
	if _, err := rw.Write([]byte("CONNECT\naccept-version:1.2\n\n\x00SEND\ndestination:/topic/tls\nreceipt:r\n\nhi\x00")); err != nil {
		t.Fatal(err)
	}
	var p frame.Parser
	var buf []byte
	var cmds []string
	for len(cmds) < 2 {
		b := make([]byte, 4096)
		n, err := r.Read(b)
		if err != nil {
			t.Fatalf("TLS read: %v (frames so far %v)", err, cmds)
		}
		buf = append(buf, b[:n]...)
		for {
			f, k, err := p.Parse(buf)
			if err != nil {
				t.Fatal(err)
			}
			if k == 0 {
				break
			}
			if f != nil {
				cmds = append(cmds, f.Command)
			}
			buf = buf[k:]
		}
	}
	if cmds[0] != frame.CONNECTED || cmds[1] != frame.RECEIPT {
		t.Fatalf("TLS frames %v, want CONNECTED, RECEIPT", cmds)
	}
}

func TestTLS(t *testing.T) {
	srv, roots, _ := tlsSetup(t, false)
	addr := srv.TLSAddr().String()
	for _, overWS := range []bool{false, true} {
		name := "stomp+ssl"
		if overWS {
			name = "wss"
		}
		t.Run(name, func(t *testing.T) {
			nc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if v := nc.ConnectionState().Version; v < tls.VersionTLS12 {
				t.Errorf("negotiated TLS version %x", v)
			}
			tlsConnect(t, nc, overWS)
		})
	}
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		nc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS11})
		if err == nil {
			nc.Close()
			t.Fatal("a TLS 1.1 handshake succeeded")
		}
	})
	t.Run("plain port still plain", func(t *testing.T) {
		c := connected(t, srv, "tcp")
		c.sync()
	})
}

func TestTLSClientCertificates(t *testing.T) {
	srv, roots, client := tlsSetup(t, true)
	addr := srv.TLSAddr().String()
	t.Run("without a certificate", func(t *testing.T) {
		nc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
		if err == nil {
			// TLS 1.3 reports the refusal on the first read.
			nc.SetDeadline(time.Now().Add(waitTimeout))
			nc.Write([]byte("CONNECT\n\n\x00")) //nolint:errcheck
			_, err = nc.Read(make([]byte, 16))
			nc.Close()
		}
		if err == nil {
			t.Fatal("a client without a certificate was served")
		}
	})
	t.Run("with a certificate", func(t *testing.T) {
		nc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{client}})
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		tlsConnect(t, nc, false)
	})
}

func TestWSOrigins(t *testing.T) {
	srv := startServer(t, func(o *Options) { o.WSOrigins = []string{"https://app.example"} })
	addr := srv.Addr().String()
	upgrade := func(origin string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+"/ws", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"https://app.example", http.StatusSwitchingProtocols},
		{"https://evil.example", http.StatusForbidden},
		{"http://" + addr, http.StatusSwitchingProtocols}, // the console's own pages
		{"", http.StatusSwitchingProtocols},               // not a browser
	} {
		if got := upgrade(tc.origin); got != tc.want {
			t.Errorf("Origin %q: status %d, want %d", tc.origin, got, tc.want)
		}
	}
}
