package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stompica/stompica/frame"
)

// reloadWrite replaces the content of path (as an operator's editor or a
// config manager would).
func reloadWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// reloadLogged starts a broker with o whose log goes to the returned buffer
// as well as the test log.
func reloadLogged(t *testing.T, configure func(*Options)) (*Server, *authLogBuffer) {
	t.Helper()
	logs := &authLogBuffer{}
	srv := startServer(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		configure(o)
	})
	return srv, logs
}

// TestReloadUsers: after Reload a user added to the users file can log in
// and a removed one cannot, while a connection the removed user opened
// before stays up and keeps exchanging messages.
func TestReloadUsers(t *testing.T) {
	authFastFail(t, time.Millisecond)
	forEachTransport(t, func(t *testing.T, tr string) {
		users := authWriteFile(t, "users", "alice:"+authHash(t, "wonderland")+"\nbob:"+authHash(t, "builder")+"\n")
		srv, logs := reloadLogged(t, func(o *Options) { o.UsersFile = users })

		old := dial(t, srv, tr)
		old.connect("1.2", "login", "alice", "passcode", "wonderland")
		old.subscribe("/topic/reload", "s")
		refused := dial(t, srv, tr)
		refused.sendFrame(frame.CONNECT, "", "accept-version", "1.2", "host", "h", "login", "carol", "passcode", "c4rol")
		refused.expectError("access refused")

		// alice leaves the file, carol arrives.
		reloadWrite(t, users, "bob:"+authHash(t, "builder")+"\ncarol:"+authHash(t, "c4rol")+"\n")
		if err := srv.Reload(); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		if !strings.Contains(logs.String(), "reload: users file loaded") || !strings.Contains(logs.String(), "users=2") {
			t.Errorf("no reload line with users=2 in the log:\n%s", logs)
		}

		carol := dial(t, srv, tr)
		carol.connect("1.2", "login", "carol", "passcode", "c4rol")
		gone := dial(t, srv, tr)
		gone.sendFrame(frame.CONNECT, "", "accept-version", "1.2", "host", "h", "login", "alice", "passcode", "wonderland")
		gone.expectError("access refused")

		// alice's connection from before is still served, both ways.
		for i := range 3 {
			carol.publish("/topic/reload", fmt.Sprint("after reload ", i))
			old.expectMessage(fmt.Sprint("after reload ", i))
		}
		id := old.newReceipt()
		old.sendFrame(frame.SEND, "from alice", "destination", "/topic/reload", "receipt", id)
		if ms := old.messagesUntilReceipt(id); len(ms) != 1 || string(ms[0].Body) != "from alice" {
			t.Errorf("alice's own publish after the reload: %d messages, want 1 \"from alice\"", len(ms))
		}
	})
}

// TestReloadBadUsersFileKeepsOld: a users file that does not parse on
// Reload leaves the old users in force, and the warning names the file and
// the line.
func TestReloadBadUsersFileKeepsOld(t *testing.T) {
	authFastFail(t, time.Millisecond)
	users := authWriteFile(t, "users", "alice:"+authHash(t, "wonderland")+"\n")
	srv, logs := reloadLogged(t, func(o *Options) { o.UsersFile = users })

	reloadWrite(t, users, "carol:"+authHash(t, "c4rol")+"\nthis line is not an entry\n")
	err := srv.Reload()
	if err == nil || !strings.Contains(err.Error(), users+" line 2") {
		t.Fatalf("Reload = %v, want an error naming %s line 2", err, users)
	}
	log := logs.String()
	if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "reload: keeping the old users file") ||
		!strings.Contains(log, "file="+users) || !strings.Contains(log, "line 2") {
		t.Errorf("want a warning with the file and the error, log:\n%s", log)
	}
	connected := dial(t, srv, "tcp")
	connected.connect("1.2", "login", "alice", "passcode", "wonderland")
	connected.sync()
	c := dial(t, srv, "tcp")
	c.sendFrame(frame.CONNECT, "", "accept-version", "1.2", "host", "h", "login", "carol", "passcode", "c4rol")
	c.expectError("access refused")

	// A missing file too.
	os.Remove(users)
	if err := srv.Reload(); err == nil {
		t.Fatal("Reload with the users file gone: no error")
	}
	c = dial(t, srv, "tcp")
	c.connect("1.2", "login", "alice", "passcode", "wonderland")
	c.sync()
}

// TestReloadACL: a new ACL applies to the next frames of connections
// already open; a bad one keeps the old rules.
func TestReloadACL(t *testing.T) {
	authFastFail(t, time.Millisecond)
	users := authWriteFile(t, "users", "alice:"+authHash(t, "wonderland")+"\n")
	aclFile := authWriteFile(t, "acl", "alice write /queue/a\n")
	srv, logs := reloadLogged(t, func(o *Options) { o.UsersFile, o.ACLFile = users, aclFile })

	denied := dial(t, srv, "tcp")
	denied.connect("1.2", "login", "alice", "passcode", "wonderland")
	denied.sendFrame(frame.SEND, "x", "destination", "/queue/b")
	denied.expectError(`user "alice" may not write to "/queue/b"`)

	c := dial(t, srv, "tcp")
	c.connect("1.2", "login", "alice", "passcode", "wonderland")
	c.publish("/queue/a", "allowed before")
	reloadWrite(t, aclFile, "alice write /queue/#\n")
	if err := srv.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	c.publish("/queue/b", "allowed after the reload") // same connection, new rule

	reloadWrite(t, aclFile, "alice scribble /queue/#\n")
	if err := srv.Reload(); err == nil || !strings.Contains(err.Error(), "scribble") {
		t.Fatalf("Reload of a bad ACL = %v, want the error", err)
	}
	if log := logs.String(); !strings.Contains(log, "reload: keeping the old ACL file") || !strings.Contains(log, "file="+aclFile) {
		t.Errorf("no warning naming the ACL file:\n%s", log)
	}
	c.publish("/queue/c", "the rules from before the bad file still apply")
}

// TestReloadTLS: after Reload, new handshakes get the new certificate
// while a TLS connection opened before keeps working; a bad certificate
// file keeps the one in force. A new client CA applies to new handshakes.
func TestReloadTLS(t *testing.T) {
	ca := authCert(t, "test CA", nil, true)
	caFile, _ := authPEM(t, ca)
	first := authCert(t, "first", &ca, false, net.IPv4(127, 0, 0, 1))
	certFile, keyFile := authPEM(t, first)
	client := authCert(t, "device-1", &ca, false)
	srv, logs := reloadLogged(t, func(o *Options) {
		o.TLSCert, o.TLSKey, o.TLSPort, o.TLSClientCA = certFile, keyFile, -1, caFile
	})
	roots := x509.NewCertPool()
	roots.AddCert(ca.Leaf)
	handshake := func(cert tls.Certificate) (*tls.Conn, error) {
		nc, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", srv.TLSAddr().String(),
			&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { nc.Close() })
		// TLS 1.3 reports a refused client certificate on the first read.
		nc.SetDeadline(time.Now().Add(waitTimeout))
		if _, err := nc.Write([]byte("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\x00")); err != nil {
			return nil, err
		}
		c := &authClient{t: t, nc: nc, buf: make([]byte, 64<<10)}
		c.p.Version = frame.Version12
		f, err := c.read()
		if err != nil {
			return nil, err
		}
		if f.Command != frame.CONNECTED {
			t.Fatalf("TLS CONNECT: got %s", f.Command)
		}
		return nc, nil
	}
	serverCN := func(nc *tls.Conn) string { return nc.ConnectionState().PeerCertificates[0].Subject.CommonName }

	before, err := handshake(client)
	if err != nil {
		t.Fatal(err)
	}
	if cn := serverCN(before); cn != "first" {
		t.Fatalf("server certificate %q, want first", cn)
	}
	oldConn := &authClient{t: t, nc: before, buf: make([]byte, 64<<10)}
	oldConn.p.Version = frame.Version12

	second := authCert(t, "second", &ca, false, net.IPv4(127, 0, 0, 1))
	c2, k2 := authPEM(t, second)
	for _, f := range [][2]string{{c2, certFile}, {k2, keyFile}} {
		b, _ := os.ReadFile(f[0])
		reloadWrite(t, f[1], string(b))
	}
	if err := srv.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if !strings.Contains(logs.String(), "reload: TLS certificate loaded") || !strings.Contains(logs.String(), "CN=second") {
		t.Errorf("no reload line for the new certificate:\n%s", logs)
	}
	after, err := handshake(client)
	if err != nil {
		t.Fatal(err)
	}
	if cn := serverCN(after); cn != "second" {
		t.Errorf("after Reload the server certificate is %q, want second", cn)
	}
	oldConn.send(frame.SEND, "x", "destination", "/topic/tls", "receipt", "still-here")
	if f := oldConn.expect(frame.RECEIPT); f.GetString("receipt-id") != "still-here" {
		t.Errorf("old TLS connection: %s", f.GetString("receipt-id"))
	}

	// A key file that is not a key: the second certificate stays.
	reloadWrite(t, keyFile, "not a key\n")
	if err := srv.Reload(); err == nil {
		t.Fatal("Reload with a bad key: no error")
	}
	if log := logs.String(); !strings.Contains(log, "reload: keeping the old TLS certificate") || !strings.Contains(log, "key="+keyFile) {
		t.Errorf("no warning naming the key file:\n%s", log)
	}
	if nc, err := handshake(client); err != nil {
		t.Fatalf("handshake after a bad reload: %v", err)
	} else if cn := serverCN(nc); cn != "second" {
		t.Errorf("after a bad reload the server certificate is %q, want second (kept)", cn)
	}

	// A new client CA: clients of the old CA are refused from now on.
	otherCA := authCert(t, "other CA", nil, true)
	otherFile, _ := authPEM(t, otherCA)
	b, _ := os.ReadFile(otherFile)
	reloadWrite(t, caFile, string(b))
	k, _ := os.ReadFile(k2)
	reloadWrite(t, keyFile, string(k))
	if err := srv.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if _, err := handshake(client); err == nil {
		t.Error("a client certificate of the old CA was accepted after the CA changed")
	}
	if _, err := handshake(authCert(t, "device-2", &otherCA, false)); err != nil {
		t.Errorf("a client certificate of the new CA: %v", err)
	}
	oldConn.send(frame.SEND, "x", "destination", "/topic/tls", "receipt", "still-here-2")
	oldConn.expect(frame.RECEIPT)
}

// TestReloadNothingConfigured: without users, ACL or TLS files Reload has
// nothing to do and succeeds; after Shutdown it says the server is closed.
func TestReloadNothingConfigured(t *testing.T) {
	srv := authNew(t, Options{})
	if err := srv.Reload(); err != nil {
		t.Errorf("Reload: %v", err)
	}
	srv.Shutdown(context.Background()) //nolint:errcheck
	if err := srv.Reload(); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Reload after Shutdown = %v, want ErrServerClosed", err)
	}
}
