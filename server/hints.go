package server

// Messages that name the fix: what a client or an operator got wrong, said
// so that they know what to change (the limit and its flag, the port to
// use, the spelling the broker expects).

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/stompica/stompica/frame"
)

// sizeText writes a byte count for people: "16777216 bytes (16 MiB)".
func sizeText(n int) string {
	s := strconv.Itoa(n) + " bytes"
	for _, u := range []struct {
		name string
		size int
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return s + " (" + strconv.Itoa(n/u.size) + " " + u.name + ")"
		}
	}
	return s
}

// parseLimitError is a parse error that names the limit it hit and the setting
// that raises it. It wraps the parser's error (errors.Is still finds
// frame.ErrFrameTooLarge and its kin).
type parseLimitError struct {
	err error
	msg string
}

func (e *parseLimitError) Error() string { return e.msg }
func (e *parseLimitError) Unwrap() error { return e.err }

// explainParseError turns a parser error into the message of the ERROR
// frame: limits name their value and their flag, and a command line that is
// a STOMP command in lower case says that commands are upper-case. data is
// what the parser was given (the failed frame starts it).
func (c *conn) explainParseError(err error, data []byte) error {
	o := &c.s.opts
	switch {
	case errors.Is(err, frame.ErrFrameTooLarge):
		c.linger = true // the client is likely still sending the frame
		return &parseLimitError{err, "frame too large: the limit is " + sizeText(o.MaxFrameSize) +
			", headers and body (the broker's --max-frame-size)"}
	case errors.Is(err, frame.ErrTooManyHeaders):
		return &parseLimitError{err, "too many headers: the limit is " + strconv.Itoa(o.MaxHeaders) +
			" header lines per frame (the broker's --max-headers)"}
	case errors.Is(err, frame.ErrHeaderTooLong):
		return &parseLimitError{err, "header line too long: the limit is " + sizeText(o.MaxHeaderLine) +
			" per header line (the broker's --max-header-line)"}
	case errors.Is(err, frame.ErrBadCommandCharset):
		line := bytes.TrimLeft(data, "\r\n")
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = bytes.TrimSuffix(line[:i], []byte("\r"))
		}
		if len(line) <= 16 {
			cmd := string(line)
			if _, known := knownCommands[strings.ToUpper(cmd)]; known {
				return &parseLimitError{err, "unknown command '" + cmd + "'" + " (STOMP commands are upper-case)"}
			}
			if len(line) > 0 {
				return &parseLimitError{err, "unknown command " + strconv.Quote(cmd) + " (STOMP commands are upper-case letters)"}
			}
		}
	}
	return err
}

// knownCommands are the commands a client may send.
var knownCommands = map[string]struct{}{
	frame.CONNECT: {}, frame.STOMP: {}, frame.SEND: {}, frame.SUBSCRIBE: {}, frame.UNSUBSCRIBE: {},
	frame.ACK: {}, frame.NACK: {}, frame.BEGIN: {}, frame.COMMIT: {}, frame.ABORT: {},
	frame.DISCONNECT: {}, frame.DIAG: {},
}

// wsTooBigMessage is the ERROR message for a WebSocket message over the
// limit (the close code that follows is 1009).
func (s *Server) wsTooBigMessage() string {
	return "WebSocket message too large: the limit is " + sizeText(s.opts.MaxWebSocketMessage) +
		" (the broker's --max-ws-message, which defaults to --max-frame-size)"
}

// isTLSHello reports whether the first bytes of a connection are a TLS
// handshake record (a ClientHello: content type 22, version 3.x).
func isTLSHello(head []byte) bool {
	return len(head) >= 3 && head[0] == 0x16 && head[1] == 0x03 && head[2] <= 0x04
}

// tlsOnPlainPort logs a client that starts TLS on the plain port; the
// connection is then closed.
func (s *Server) tlsOnPlainPort(nc net.Conn) {
	s.stats.countError(kindProtocol)
	fix := "this broker has no TLS port: start it with --tls-cert and --tls-key, or connect the client without TLS (stomp://, ws://)"
	if a := s.TLSAddr(); a != nil {
		fix = "connect it to the TLS port " + a.String() + ", or without TLS (stomp://, ws://) to this one"
	}
	s.log.Info("TLS on the plain port: the client started a TLS handshake (stomp+ssl://, wss://) on the port that speaks plain STOMP and WebSocket; "+fix,
		"peer", nc.RemoteAddr().String(), "port", nc.LocalAddr().String())
}

// plainOnTLSPort answers and logs a client that speaks plain TCP (STOMP, or
// HTTP) on the TLS port: an HTTP 400 or a STOMP ERROR in clear text that
// says to use TLS or the plain port. rh is the TLS handshake's error.
func (s *Server) plainOnTLSPort(rh tls.RecordHeaderError, peer string) {
	s.stats.countError(kindProtocol)
	plain := "the plain port"
	if a := s.Addr(); a != nil {
		plain += " " + a.String()
	}
	what := "a STOMP frame or other data"
	if bytes.HasPrefix(rh.RecordHeader[:], []byte("GET ")) {
		what = "an HTTP request (http://, ws://)"
	}
	s.log.Info("plain TCP on the TLS port: the client sent "+what+" without TLS; connect it with TLS (stomp+ssl://, wss://, https://), or without TLS to "+plain,
		"peer", peer)
	rh.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	if what != "a STOMP frame or other data" {
		body := "This port speaks TLS: use https:// or wss://, or " + plain + ".\n"
		fmt.Fprintf(rh.Conn, "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body) //nolint:errcheck // best effort
	} else {
		msg := "this port speaks TLS: connect with TLS (stomp+ssl://), or without TLS to " + plain
		rh.Conn.Write([]byte("ERROR\ncontent-type:text/plain\nmessage:" + msg + "\n\n" + msg + "\n\x00")) //nolint:errcheck // best effort
	}
	rh.Conn.Close()
}

// Bounds of lingerClose.
const (
	lingerTime  = closeFlushWait
	lingerBytes = 64 << 20
)

// lingerClose half-closes a connection closed for a frame or WebSocket
// message over the limit, and reads (and drops) what the client still
// sends, for at most lingerTime and lingerBytes. Closing a socket with
// unread data makes the kernel send a reset, and a client still sending the
// oversized frame then fails its write and never reads the ERROR and the
// WebSocket close 1009 already sent: stompjs reported 1006. Read goroutine
// only (finish).
func (c *conn) lingerClose() {
	nc := c.nc
	if pc, ok := nc.(*prefixConn); ok {
		nc = pc.Conn
	}
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite() //nolint:errcheck // best effort: the close follows
	}
	c.nc.SetReadDeadline(time.Now().Add(lingerTime))
	buf := make([]byte, 32<<10)
	for n := 0; n < lingerBytes; {
		k, err := c.nc.Read(buf)
		n += k
		if err != nil {
			return
		}
	}
}

// loginRefusedBody is the body of the ERROR that answers a refused login:
// the message stays "access refused", which tells nobody whether the login
// exists; the body says what to check.
const loginRefusedBody = "Login refused: the CONNECT frame's login and passcode headers do not match a user of this broker " +
	"(or no verified TLS client certificate names one). Check them; the operator adds a user to the users file " +
	"(--users) with 'stompica passwd LOGIN'.\n"

// refuseConnect answers a CONNECT that is refused with an ERROR (message,
// text body, receipt-id when asked) and ends the connection.
func (c *conn) refuseConnect(f *frame.Frame, err error, body string) {
	ce := asClientError(err)
	c.s.stats.countError(ce.kind)
	e := frame.New(frame.ERROR, "message", ce.msg, "content-type", "text/plain")
	if r, ok := f.Get("receipt"); ok {
		e.Add("receipt-id", string(r))
	}
	e.Body = []byte(body)
	c.sendFrame(e, &c.batch)
	c.setCloseReason(ce.reason)
	c.mu.Lock()
	c.recordErrorLocked(ce.msg)
	c.mu.Unlock()
}

// listenURLs are the URLs a listener serves, for the start log: STOMP over
// TCP, WebSocket, the console and the metrics (with the TLS schemes on the
// TLS port). A listener on all interfaces is shown as localhost.
func listenURLs(a net.Addr, isTLS bool) []any {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return nil
	}
	host := "localhost"
	if !ta.IP.IsUnspecified() && ta.IP != nil {
		host = ta.IP.String()
	}
	hp := net.JoinHostPort(host, strconv.Itoa(ta.Port))
	stomp, ws, http := "stomp://", "ws://", "http://"
	if isTLS {
		stomp, ws, http = "stomp+ssl://", "wss://", "https://"
	}
	return []any{"stomp", stomp + hp, "websocket", ws + hp + "/ws", "console", http + hp + "/console", "metrics", http + hp + "/metrics"}
}
