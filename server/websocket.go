package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// stompProtocols are the STOMP WebSocket subprotocols, most preferred first.
var stompProtocols = []string{"v12.stomp", "v11.stomp", "v10.stomp"}

func isWebSocketUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// bestProtocol picks the highest STOMP subprotocol the client offers ("" when
// it offers none, as stomp.js 2.x and many tools do).
func bestProtocol(r *http.Request) string {
	offered := map[string]bool{}
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			offered[strings.TrimSpace(p)] = true
		}
	}
	for _, p := range stompProtocols {
		if offered[p] {
			return p
		}
	}
	return ""
}

// serveWebSocket upgrades an HTTP request on any path and runs a STOMP
// connection over it.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if !s.originAllowed(r.Header.Get("Origin"), r.Host) {
		s.log.Info("websocket origin refused", "peer", r.RemoteAddr, "origin", r.Header.Get("Origin"))
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	best := bestProtocol(r)
	u := ws.HTTPUpgrader{Protocol: func(p string) bool { return p == best }}
	nc, rw, _, err := u.Upgrade(r, w)
	if err != nil {
		s.log.Debug("websocket upgrade failed", "peer", r.RemoteAddr, "err", err)
		if nc != nil {
			nc.Close()
		}
		return
	}
	wr := &wsReader{max: int64(s.opts.MaxWebSocketMessage)}
	if rw.Reader.Buffered() > 0 {
		wr.br = rw.Reader // the client's first frames came with the request
	}
	// Else net/http's reader is left to the garbage collector rather than
	// put in wsBufPool at the first park: one per upgrade would pile up
	// there (and count as live heap) while the pool serves only the
	// connections reading at a given moment.
	c := newConn(s, nc, wr)
	wr.c = c
	// A goroutine of its own: returning lets net/http's request, response
	// and buffers go, which an idle WebSocket would otherwise keep (~8 KiB).
	if !s.startGoRoutine(c.serve) {
		nc.Close() // shutting down
	}
}

// isWebSocketUpgrade reports whether the request head asks for a
// WebSocket upgrade (an Upgrade header naming websocket).
func (h *httpHead) isWebSocketUpgrade() bool {
	if h.end == 0 {
		return false
	}
	head := h.buf[:h.end]
	for len(head) > 0 {
		i := bytes.IndexByte(head, '\n')
		line := head[:i]
		head = head[i+1:]
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("Upgrade")) {
			return bytes.EqualFold(bytes.TrimSpace(v), []byte("websocket"))
		}
	}
	return false
}

// upgradeWebSocket answers the WebSocket upgrade request in req itself
// (gobwas/ws's Upgrader, with pooled buffers) and serves the STOMP
// connection in this goroutine. Going through net/http instead would cost
// three 4 KiB buffers and the request's state per connection, garbage that
// raises the heap of a broker whose clients connect over WebSocket. pc is
// counted as an HTTP connection until the upgrade is done.
func (s *Server) upgradeWebSocket(pc *prefixConn, req *httpHead) {
	nc := pc.Conn
	var origin, host string
	u := ws.Upgrader{
		OnHost: func(h []byte) error {
			host = string(h)
			return nil
		},
		OnHeader: func(k, v []byte) error {
			if string(k) == "Origin" {
				origin = string(v)
			}
			return nil
		},
		ProtocolCustom: func(offered []byte) (string, bool) {
			return bestOffered(string(offered)), true
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			if !s.originAllowed(origin, host) {
				return nil, ws.RejectConnectionError(ws.RejectionStatus(http.StatusForbidden),
					ws.RejectionReason("origin not allowed"))
			}
			return nil, nil
		},
	}
	_, err := u.Upgrade(&headConn{Conn: nc, head: req.buf[:req.end]})
	s.doneHTTPConn(pc)
	if err != nil {
		if origin != "" && !s.originAllowed(origin, host) {
			s.log.Info("websocket origin refused", "peer", nc.RemoteAddr().String(), "origin", origin)
		} else {
			s.log.Debug("websocket upgrade failed", "peer", nc.RemoteAddr().String(), "err", err)
		}
		req.release()
		nc.Close()
		return
	}
	wr := &wsReader{max: int64(s.opts.MaxWebSocketMessage)}
	if rest := req.buf[req.end:]; len(rest) > 0 {
		// The client's first frames came with the request: buffered, so
		// the connection reads them before it parks.
		wr.br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(rest)), nc), max(4<<10, len(rest)))
		wr.br.Peek(len(rest)) //nolint:errcheck // the bytes are in memory
	}
	req.release()
	c := newConn(s, nc, wr)
	wr.c = c
	c.serve()
}

// headConn gives gobwas/ws's Upgrader the request head already read (and
// nothing more), and writes to the connection.
type headConn struct {
	net.Conn
	head []byte
}

func (h *headConn) Read(p []byte) (int, error) {
	if len(h.head) == 0 {
		return 0, io.EOF
	}
	n := copy(p, h.head)
	h.head = h.head[n:]
	return n, nil
}

// bestOffered picks the highest STOMP subprotocol in a
// Sec-WebSocket-Protocol value ("" when it offers none).
func bestOffered(offered string) string {
	best := len(stompProtocols)
	for _, p := range strings.Split(offered, ",") {
		for i, sp := range stompProtocols {
			if strings.TrimSpace(p) == sp && i < best {
				best = i
			}
		}
	}
	if best == len(stompProtocols) {
		return ""
	}
	return stompProtocols[best]
}

// wsReader turns the client's WebSocket data frames into the STOMP byte
// stream: payloads are unmasked in place, fragments and messages are simply
// concatenated, so a STOMP frame may span messages and a message may carry
// several frames. Control frames are answered as RFC 6455 requires.
type wsReader struct {
	c         *conn
	src       net.Conn      // the connection br reads
	br        *bufio.Reader // nil while parked (idle)
	max       int64         // largest message accepted
	remaining int64         // payload bytes left in the current frame
	msgLen    int64
	inMessage bool
	text      bool    // the current message is text: its payload must be UTF-8
	u8        [4]byte // text: the start of a UTF-8 sequence the bytes read so far end in
	u8n       uint8   // bytes in u8
	mask      [4]byte
	offset    int
	closeSent bool
	closeCode ws.StatusCode
	hdr       [ws.MaxHeaderSize]byte // scratch for outbound headers, under c.mu
	out       appender
}

// fail records the close code the connection will end with and returns
// the WebSocket error for a violation (wsErr: an ERROR frame, then the
// close frame with code).
func (w *wsReader) fail(code ws.StatusCode, cause error, format string, args ...any) error {
	w.closeCode = code
	return wsErr(fmt.Sprintf(format, args...), cause)
}

// Read fills p with unmasked payload bytes. It keeps decoding frames that
// are already buffered, so a burst of small WebSocket messages is handled
// as one batch, like a burst of raw STOMP frames in one TCP read. After
// control frames (a ping, a pong) or an empty frame, with nothing else
// buffered, it returns what it has (maybe 0, and no error) rather than
// block for the next frame: the connection then waits for data without
// holding a read buffer (conn.serve, park).
func (w *wsReader) Read(p []byte) (int, error) {
	if w.br == nil {
		w.br = wsBufPool.Get().(*bufio.Reader)
		w.br.Reset(w.src)
	}
	n := 0
	for n < len(p) {
		if w.remaining == 0 {
			// Block for the next header only when nothing was read yet.
			if n > 0 && !w.dataHeaderBuffered() {
				break
			}
			data, err := w.next()
			if err != nil {
				if n > 0 && kindOf(err) != kindWebSocket {
					return n, nil
				}
				return n, err
			}
			if !data || w.remaining == 0 && w.br.Buffered() == 0 {
				return n, nil // control frames or an empty frame: idle again
			}
			continue
		}
		want := min(int64(len(p)-n), w.remaining)
		if n > 0 {
			want = min(want, int64(w.br.Buffered()))
			if want == 0 {
				break
			}
		}
		m, err := w.br.Read(p[n : n+int(want)])
		ws.Cipher(p[n:n+m], w.mask, w.offset)
		w.offset += m
		w.remaining -= int64(m)
		if w.text && !w.validText(p[n:n+m]) {
			// RFC 6455 §8.1: invalid UTF-8 in a text message fails the
			// connection with 1007. Its bytes are not handed on.
			return n, w.fail(ws.StatusInvalidFramePayloadData, nil, "invalid UTF-8 in a text message")
		}
		n += m
		if err != nil {
			if err == io.EOF && w.remaining > 0 {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
	return n, nil
}

// wsBufPool holds the read buffers of WebSocket connections that are not
// parked.
var wsBufPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// validText checks the next payload bytes b of the current message, once
// unmasked: nothing for a binary message; for a text message, b must
// complete the UTF-8 sequence the previous bytes ended in (if any) and be
// valid UTF-8, except that it may end in the start of a sequence, kept for
// the next bytes; at the end of the message nothing may be left over. A
// character may so span frames (RFC 6455 §5.6 validates the whole
// message), and each byte is looked at once: utf8.Valid on the payload,
// plus at most three carried bytes.
func (w *wsReader) validText(b []byte) bool {
	if !w.text {
		return true
	}
	for w.u8n > 0 && len(b) > 0 {
		w.u8[w.u8n] = b[0]
		w.u8n++
		b = b[1:]
		if utf8.FullRune(w.u8[:w.u8n]) {
			if _, size := utf8.DecodeRune(w.u8[:w.u8n]); size != int(w.u8n) {
				return false
			}
			w.u8n = 0
		}
	}
	if tail := incompleteRune(b); tail > 0 {
		if !utf8.Valid(b[:len(b)-tail]) {
			return false
		}
		w.u8n = uint8(copy(w.u8[:], b[len(b)-tail:]))
	} else if !utf8.Valid(b) {
		return false
	}
	// The message ends with this frame's last byte: nothing may be left.
	return w.u8n == 0 || w.inMessage || w.remaining > 0
}

// incompleteRune is the length of the UTF-8 sequence b ends in when it is
// cut short (its start, which more bytes may complete), else 0.
func incompleteRune(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-3; i-- {
		if b[i]&0xc0 != 0x80 { // the last sequence starts here
			if utf8.FullRune(b[i:]) {
				return 0
			}
			return len(b) - i
		}
	}
	return 0
}

// park gives an idle connection's read buffer back to the pool, so that it
// can wait for data without one. It reports false (and keeps the buffer)
// when bytes are already buffered.
func (w *wsReader) park() bool {
	if w.br == nil {
		return true
	}
	if w.br.Buffered() > 0 {
		return false
	}
	w.br.Reset(nil)
	wsBufPool.Put(w.br)
	w.br = nil
	return true
}

// dataHeaderBuffered reports whether the whole header of a data frame is
// already buffered (control frames wait for the next Read).
func (w *wsReader) dataHeaderBuffered() bool {
	b, _ := w.br.Peek(min(w.br.Buffered(), 2))
	if len(b) < 2 || b[0]&0x08 != 0 {
		return false
	}
	size := 2
	switch b[1] & 0x7f {
	case 126:
		size += 2
	case 127:
		size += 8
	}
	if b[1]&0x80 != 0 {
		size += 4
	}
	return w.br.Buffered() >= size
}

// next reads frame headers until a data frame starts (data), answering
// control frames on the way. It stops after a control frame when nothing
// more is buffered (no data, no error): reading on would block.
func (w *wsReader) next() (data bool, err error) {
	for {
		h, err := ws.ReadHeader(w.br)
		if err != nil {
			if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
				return false, w.fail(ws.StatusProtocolError, err, "%v", err)
			}
			return false, err
		}
		if !h.Masked {
			return false, w.fail(ws.StatusProtocolError, nil, "client frames must be masked")
		}
		if h.Rsv != 0 {
			return false, w.fail(ws.StatusProtocolError, nil, "reserved bits set without a negotiated extension")
		}
		if h.OpCode.IsControl() {
			if err := w.control(h); err != nil {
				return false, err
			}
			if w.br.Buffered() == 0 {
				return false, nil
			}
			continue
		}
		switch h.OpCode {
		case ws.OpContinuation:
			if !w.inMessage {
				return false, w.fail(ws.StatusProtocolError, nil, "continuation frame without a message to continue")
			}
		case ws.OpText, ws.OpBinary:
			if w.inMessage {
				return false, w.fail(ws.StatusProtocolError, nil, "new message before the previous one was finished")
			}
			w.msgLen = 0
		default:
			return false, w.fail(ws.StatusProtocolError, nil, "reserved opcode %d", h.OpCode)
		}
		w.msgLen += h.Length
		if w.msgLen > w.max {
			w.closeCode = ws.StatusMessageTooBig
			w.c.linger = true // the client is likely still sending it
			return false, &clientError{kind: kindLimit, reason: LimitExceeded, msg: w.c.s.wsTooBigMessage()}
		}
		if h.OpCode != ws.OpContinuation {
			w.text, w.u8n = h.OpCode == ws.OpText, 0
		}
		w.inMessage = !h.Fin
		w.remaining, w.mask, w.offset = h.Length, h.Mask, 0
		if h.Fin && h.Length == 0 && !w.validText(nil) {
			return false, w.fail(ws.StatusInvalidFramePayloadData, nil, "invalid UTF-8 in a text message")
		}
		return true, nil
	}
}

// control answers a ping with a pong and a close with a close.
func (w *wsReader) control(h ws.Header) error {
	if h.Length > 125 || !h.Fin {
		return w.fail(ws.StatusProtocolError, nil, "control frame too long or fragmented")
	}
	var buf [125]byte
	payload := buf[:h.Length]
	if _, err := io.ReadFull(w.br, payload); err != nil {
		return err
	}
	ws.Cipher(payload, h.Mask, 0)
	switch h.OpCode {
	case ws.OpPing:
		// A pong counts against the output bound like any frame: a client
		// that pings without reading stops being read (see conn.waitOutput).
		c := w.c
		c.mu.Lock()
		if !c.closed {
			c.grabOutLocked()
			c.out = w.appendControl(c.out, ws.OpPong, payload)
			c.queuedOwnLocked()
			c.startWriterLocked()
		}
		c.mu.Unlock()
		if c.outFull && !c.waitOutput() {
			return net.ErrClosed
		}
		return nil
	case ws.OpPong:
		return nil
	case ws.OpClose:
		code, _ := ws.ParseCloseFrameData(payload)
		if code == 0 {
			code = ws.StatusNormalClosure
		}
		w.closeCode = code
		return io.EOF
	}
	return w.fail(ws.StatusProtocolError, nil, "reserved control opcode %d", h.OpCode)
}

// appendControl appends an unmasked server control frame. Lock should be
// held: c.mu (it guards w.out and w.hdr).
func (w *wsReader) appendControl(dst []byte, op ws.OpCode, payload []byte) []byte {
	w.out.b = dst
	ws.WriteHeaderBuffer(&w.out, ws.Header{Fin: true, OpCode: op, Length: int64(len(payload))}, w.hdr[:]) //nolint:errcheck // appending cannot fail
	dst = append(w.out.b, payload...)
	w.out.b = nil
	return dst
}

// close sends the close frame that ends the WebSocket (after the last STOMP
// frame was flushed): the client's code echoed, or ours.
func (w *wsReader) close(nc net.Conn) {
	if w.closeSent {
		return
	}
	w.closeSent = true
	code := w.closeCode
	if code == 0 {
		code = ws.StatusNormalClosure
	}
	w.c.mu.Lock()
	buf := w.appendControl(nil, ws.OpClose, ws.NewCloseFrameBody(code, ""))
	w.c.mu.Unlock()
	nc.Write(buf) //nolint:errcheck // best effort before closing
}

type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// appendMessage appends one unmasked WebSocket message holding a then b:
// binary when the STOMP body has NULs or is not UTF-8, else text. Lock
// should be held: c.mu (it guards w.out and w.hdr).
func (w *wsReader) appendMessage(dst []byte, binary bool, a, b []byte) []byte {
	op := ws.OpText
	if binary {
		op = ws.OpBinary
	}
	w.out.b = dst
	ws.WriteHeaderBuffer(&w.out, ws.Header{Fin: true, OpCode: op, Length: int64(len(a) + len(b))}, w.hdr[:]) //nolint:errcheck // appending cannot fail
	dst = append(w.out.b, a...)
	w.out.b = nil
	return append(dst, b...)
}

// isBinary reports whether a body must travel in a binary WebSocket message.
func isBinary(body []byte) bool {
	return bytes.IndexByte(body, 0) >= 0 || !utf8.Valid(body)
}

// originAllowed applies Options.WSOrigins. Requests without an Origin
// header come from non-browser clients, and pages served by this broker
// (the console) have its own origin: both are allowed.
func (s *Server) originAllowed(origin, host string) bool {
	if len(s.opts.WSOrigins) == 0 || origin == "" {
		return true
	}
	if u, err := url.Parse(origin); err == nil && u.Host == host {
		return true
	}
	for _, o := range s.opts.WSOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}
