package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/stompica/stompica/frame"
)

// target is a parsed broker URL.
type target struct {
	ws   bool
	addr string // host:port
	url  string // normalised URL (the WebSocket URL for ws)
}

// parseTarget accepts tcp://host[:port] (also stomp://) and ws://host[:port]/path.
func parseTarget(s string) (target, error) {
	u, err := url.Parse(s)
	if err != nil {
		return target{}, err
	}
	if u.Host == "" {
		return target{}, fmt.Errorf("URL %q has no host", s)
	}
	var t target
	port := u.Port()
	switch u.Scheme {
	case "tcp", "stomp":
		if port == "" {
			port = "61613"
		}
	case "ws":
		t.ws = true
		if port == "" {
			port = "80"
		}
	default:
		return target{}, fmt.Errorf("URL %q: scheme must be tcp:// or ws://", s)
	}
	t.addr = net.JoinHostPort(u.Hostname(), port)
	if t.ws {
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		t.url = "ws://" + t.addr + path
		if u.RawQuery != "" {
			t.url += "?" + u.RawQuery
		}
	} else {
		t.url = "tcp://" + t.addr
	}
	return t, nil
}

// connOpts are the per-connection settings shared by a run.
type connOpts struct {
	target
	login, passcode, vhost string
	rbuf                   int    // initial read buffer size
	wbuf                   int    // write buffer size (flush threshold)
	heartBeat              string // CONNECT heart-beat header ("" = "0,0")
}

// WebSocket opcodes and header bits (RFC 6455).
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
	wsFin    = 0x80
	wsMasked = 0x80

	maxReadBuf = 64 << 20
)

// Conn is one STOMP connection over TCP or WebSocket. It is used by one
// goroutine at a time for writing (the owner) and one for reading; when the
// owner is also the reader (owner == true) pending output is flushed before
// the reader blocks.
type Conn struct {
	nc      net.Conn
	ws      bool
	raw     *bufio.Reader // WebSocket: the socket byte stream
	owner   bool          // the reader goroutine also writes (flush before blocking)
	Version frame.Version
	Server  string

	p          frame.Parser
	rbuf       []byte
	rpos, rend int
	rerr       error // deferred read error
	readNS     int64 // nowNS() after the last socket read: when the bytes arrived

	// WebSocket read state: payload bytes left in the current data frame.
	wsLeft   int64
	wsMask   [4]byte
	wsMasked bool
	wsOff    int
	wsHdr    [ws.MaxHeaderSize - 2]byte // ws.ReadHeaderBuffer's scratch
	ctl      [125]byte

	out       []byte
	wlimit    int
	rng       uint64       // xorshift state for the masking keys
	lastWrite atomic.Int64 // unix ns of the last socket write (for keepalives)
}

// dial opens a connection and completes the STOMP handshake.
func dial(ctx context.Context, o *connOpts) (*Conn, error) {
	var c *Conn
	if o.ws {
		d := ws.Dialer{Protocols: []string{"v12.stomp", "v11.stomp", "v10.stomp"}}
		nc, br, _, err := d.Dial(ctx, o.url)
		if err != nil {
			return nil, err
		}
		c = newConn(nc, br, true, o.rbuf, o.wbuf)
	} else {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", o.addr)
		if err != nil {
			return nil, err
		}
		c = newConn(nc, nil, false, o.rbuf, o.wbuf)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetDeadline(dl)
	}
	if err := c.handshake(o); err != nil {
		c.nc.Close()
		return nil, err
	}
	_ = c.nc.SetDeadline(time.Time{})
	return c, nil
}

// clockBase is the origin of the nanosecond timestamps in message bodies.
var clockBase = time.Now()

// nowNS is the monotonic time in ns since clockBase.
func nowNS() int64 { return int64(time.Since(clockBase)) }

// newConn wraps an established socket; br holds bytes read past the
// WebSocket handshake, if any.
func newConn(nc net.Conn, br *bufio.Reader, isWS bool, rbuf, wbuf int) *Conn {
	c := &Conn{nc: nc, ws: isWS, wlimit: max(wbuf, 512)}
	c.rbuf = make([]byte, max(rbuf, 1024))
	c.out = make([]byte, 0, c.wlimit+1024)
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	c.rng = binary.LittleEndian.Uint64(seed[:]) | 1
	if isWS {
		var src io.Reader = nc
		if br != nil {
			src = io.MultiReader(br, nc)
		}
		c.raw = bufio.NewReaderSize(src, max(rbuf, 4096))
	}
	return c
}

func (c *Conn) handshake(o *connOpts) error {
	hb := o.heartBeat
	if hb == "" {
		hb = "0,0"
	}
	f := frame.New(frame.CONNECT, "accept-version", "1.0,1.1,1.2", "host", o.vhost, "heart-beat", hb)
	if o.login != "" {
		f.Add("login", o.login)
	}
	if o.passcode != "" {
		f.Add("passcode", o.passcode)
	}
	c.Write(frame.Append(nil, f, frame.Version10))
	if err := c.Flush(); err != nil {
		return err
	}
	r, err := c.ReadFrame()
	if err != nil {
		return fmt.Errorf("waiting for CONNECTED: %w", err)
	}
	switch r.Command {
	case frame.CONNECTED:
	case frame.ERROR:
		return errorFrame(r)
	default:
		return fmt.Errorf("expected CONNECTED, got %s", r.Command)
	}
	switch r.GetString("version") {
	case frame.V11:
		c.Version = frame.Version11
	case frame.V12:
		c.Version = frame.Version12
	}
	c.Server = r.GetString("server")
	c.p.Version = c.Version
	return nil
}

// errorFrame turns an ERROR frame into an error (copying what it keeps).
func errorFrame(f *frame.Frame) error {
	msg := f.GetString("message")
	body := strings.TrimSpace(string(f.Body))
	if len(body) > 200 {
		body = body[:200] + "..."
	}
	if body != "" {
		msg += ": " + strings.ReplaceAll(body, "\n", " ")
	}
	return fmt.Errorf("ERROR frame: %s", msg)
}

// ReadFrame returns the next frame. The frame aliases the read buffer and is
// valid until the next call.
func (c *Conn) ReadFrame() (*frame.Frame, error) {
	for {
		if c.rpos < c.rend {
			f, n, err := c.p.Parse(c.rbuf[c.rpos:c.rend])
			if err != nil {
				return nil, err
			}
			if n > 0 {
				c.rpos += n
				if f != nil {
					return f, nil
				}
				continue
			}
		}
		if c.rerr != nil {
			return nil, c.rerr
		}
		// Everything buffered is consumed: send pending output first.
		if c.owner && len(c.out) > 0 {
			if err := c.Flush(); err != nil {
				return nil, err
			}
		}
		if c.rpos == c.rend {
			c.rpos, c.rend = 0, 0
		} else if c.rend == len(c.rbuf) {
			if c.rpos > 0 {
				c.rend = copy(c.rbuf, c.rbuf[c.rpos:c.rend])
				c.rpos = 0
			} else {
				if len(c.rbuf) >= maxReadBuf {
					return nil, errors.New("frame larger than the read buffer limit")
				}
				nb := make([]byte, 2*len(c.rbuf))
				c.rend = copy(nb, c.rbuf[c.rpos:c.rend])
				c.rbuf = nb
			}
		}
		var n int
		var err error
		if c.ws {
			n, err = c.wsRead(c.rbuf[c.rend:])
		} else {
			n, err = c.nc.Read(c.rbuf[c.rend:])
		}
		c.rend += n
		if n > 0 {
			c.readNS = nowNS()
		}
		if err != nil {
			c.rerr = err
		}
	}
}

// wsRead fills p with WebSocket message payload, stripping frame headers, so
// that STOMP frames may span messages and messages may hold several frames.
// It blocks only while p is still empty.
func (c *Conn) wsRead(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if c.wsLeft == 0 {
			// A frame header is at most ws.MaxHeaderSize bytes: with fewer
			// buffered, reading one could block, so return what p holds.
			if n > 0 && c.raw.Buffered() < ws.MaxHeaderSize {
				break
			}
			h, err := ws.ReadHeaderBuffer(c.raw, c.wsHdr[:])
			if err != nil {
				return n, err
			}
			op, length := byte(h.OpCode), h.Length
			c.wsMasked, c.wsMask, c.wsOff = h.Masked, h.Mask, 0
			if op >= opClose {
				if length > int64(len(c.ctl)) {
					return n, errors.New("websocket: oversized control frame")
				}
				payload := c.ctl[:length]
				if _, err := io.ReadFull(c.raw, payload); err != nil {
					return n, err
				}
				if c.wsMasked {
					ws.Cipher(payload, c.wsMask, 0)
				}
				switch op {
				case opClose:
					return n, fmt.Errorf("websocket closed by peer: %w", io.EOF)
				case opPing:
					if c.owner {
						c.writeWS(opPong, payload)
					}
				}
				continue
			}
			if op != opText && op != opBinary && op != opCont {
				return n, fmt.Errorf("websocket: unexpected opcode %d", op)
			}
			c.wsLeft = length
			continue
		}
		if n > 0 && c.raw.Buffered() == 0 {
			break
		}
		m := len(p) - n
		if int64(m) > c.wsLeft {
			m = int(c.wsLeft)
		}
		k, err := c.raw.Read(p[n : n+m])
		if c.wsMasked {
			ws.Cipher(p[n:n+k], c.wsMask, c.wsOff)
			c.wsOff += k
		}
		n += k
		c.wsLeft -= int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Write queues one complete STOMP frame (one WebSocket message over ws; text
// when the frame is valid UTF-8, binary otherwise) and flushes when the
// buffer is full. Write errors are returned by Flush.
func (c *Conn) Write(b []byte) error {
	op := byte(opText)
	if c.ws && !utf8.Valid(b) {
		op = opBinary
	}
	return c.WriteOp(b, op)
}

// WriteOp is Write with the WebSocket opcode chosen by the caller.
func (c *Conn) WriteOp(b []byte, op byte) error {
	if c.ws {
		c.writeWS(op, b)
	} else {
		c.out = append(c.out, b...)
	}
	if len(c.out) >= c.wlimit {
		return c.Flush()
	}
	return nil
}

// writeWS appends one masked WebSocket frame (RFC 6455 client-to-server).
func (c *Conn) writeWS(op byte, payload []byte) {
	c.out = appendWSFrame(c.out, op, payload, c.nextMask())
}

func (c *Conn) nextMask() [4]byte {
	c.rng ^= c.rng << 13
	c.rng ^= c.rng >> 7
	c.rng ^= c.rng << 17
	var m [4]byte
	binary.LittleEndian.PutUint32(m[:], uint32(c.rng>>16))
	return m
}

// appendWSFrame appends a final, masked frame carrying payload.
func appendWSFrame(dst []byte, op byte, payload []byte, mask [4]byte) []byte {
	n := len(payload)
	dst = append(dst, wsFin|op)
	switch {
	case n < 126:
		dst = append(dst, wsMasked|byte(n))
	case n <= 0xffff:
		dst = append(dst, wsMasked|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, wsMasked|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

// Flush writes the buffered output.
func (c *Conn) Flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	c.lastWrite.Store(time.Now().UnixNano())
	return err
}

// wsKeepalive is an empty, masked, unsolicited pong: a one-way heartbeat
// that keeps WebSocket servers' idle timers (RabbitMQ's is 60 s) from
// closing connections that only receive.
var wsKeepalive = []byte{wsFin | opPong, wsMasked, 0x5a, 0xa5, 0x3c, 0xc3}

// keepalive writes wsKeepalive when the connection wrote nothing for idle.
// It runs concurrently with the owner: net.Conn writes do not interleave and
// the owner only ever writes whole WebSocket frames.
func (c *Conn) keepalive(idle time.Duration) {
	if c.ws && time.Since(time.Unix(0, c.lastWrite.Load())) >= idle {
		_, _ = c.nc.Write(wsKeepalive)
	}
}

// beat writes one heart-beat EOL (over WebSocket, a masked text message
// holding it) straight to the socket. Like keepalive it may run beside the
// owner, which writes whole frames only.
func (c *Conn) beat() {
	if !c.ws {
		_, _ = c.nc.Write([]byte{'\n'})
		return
	}
	_, _ = c.nc.Write([]byte{wsFin | opText, wsMasked | 1, 0, 0, 0, 0, '\n'})
}

// Buffered is the number of output bytes not yet written.
func (c *Conn) Buffered() int { return len(c.out) }

// Subscribe queues a SUBSCRIBE frame asking for a receipt and flushes.
func (c *Conn) Subscribe(id, dest, ack string, prefetch int) error {
	return c.subscribe(id, dest, ack, prefetch, true)
}

// subscribe queues a SUBSCRIBE frame, with a receipt header "sub-"+id when
// receipt is set, and flushes.
func (c *Conn) subscribe(id, dest, ack string, prefetch int, receipt bool) error {
	f := frame.New(frame.SUBSCRIBE, "id", id, "destination", dest, "ack", ack)
	if receipt {
		f.Add("receipt", "sub-"+id)
	}
	if prefetch > 0 {
		p := strconv.Itoa(prefetch)
		f.Add("activemq.prefetchSize", p).Add("prefetch-count", p)
	}
	c.Write(frame.Append(nil, f, c.Version))
	return c.Flush()
}

// appendAck appends an ACK frame for the message m (subscription sub) for the
// negotiated version.
func appendAck(dst []byte, m *frame.Frame, sub string, v frame.Version) []byte {
	return appendAckCmd(dst, "ACK\n", m, sub, v)
}

// appendAckCmd appends cmd ("ACK\n" or "NACK\n") and the headers that name
// the message m (subscription sub) for the negotiated version.
func appendAckCmd(dst []byte, cmd string, m *frame.Frame, sub string, v frame.Version) []byte {
	dst = append(dst, cmd...)
	switch v {
	case frame.Version12:
		ack, _ := m.Get("ack")
		dst = append(dst, "id:"...)
		dst = frame.AppendEscaped(dst, ack, v)
		dst = append(dst, '\n')
	default:
		mid, _ := m.Get("message-id")
		if v == frame.Version11 {
			dst = frame.AppendHeader(dst, "subscription", sub, v)
		}
		dst = append(dst, "message-id:"...)
		dst = frame.AppendEscaped(dst, mid, v)
		dst = append(dst, '\n')
	}
	return append(dst, '\n', 0)
}

// disconnect sends DISCONNECT (best effort) and closes the socket.
func (c *Conn) disconnect(deadline time.Time) {
	_ = c.nc.SetWriteDeadline(deadline)
	c.Write([]byte("DISCONNECT\n\n\x00"))
	if c.ws {
		c.writeWS(opClose, []byte{0x03, 0xe8}) // 1000 normal closure
	}
	_ = c.Flush()
	c.nc.Close()
}
