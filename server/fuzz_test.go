package server

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/gobwas/ws"

	"github.com/stompica/stompica/frame"
)

// wsClientFrame encodes one masked client frame.
func wsClientFrame(op ws.OpCode, fin bool, payload []byte) []byte {
	var b bytes.Buffer
	fr := ws.NewFrame(op, fin, append([]byte(nil), payload...))
	ws.WriteFrame(&b, ws.MaskFrameInPlace(fr)) //nolint:errcheck // bytes.Buffer
	return b.Bytes()
}

// FuzzWebSocketStream feeds arbitrary client bytes through the WebSocket
// reader into the STOMP parser, as a connection does: no input may panic,
// hang, or make the reader return more than asked.
func FuzzWebSocketStream(f *testing.F) {
	connect := []byte("CONNECT\naccept-version:1.2\n\n\x00")
	send := []byte("SEND\ndestination:/queue/a\ncontent-length:3\n\na\x00b\x00")
	f.Add(wsClientFrame(ws.OpText, true, connect))
	f.Add(append(wsClientFrame(ws.OpText, false, send[:10]), wsClientFrame(ws.OpContinuation, true, send[10:])...))
	f.Add(append(wsClientFrame(ws.OpPing, true, []byte("hi")), wsClientFrame(ws.OpBinary, true, append(connect, send...))...))
	f.Add(wsClientFrame(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))
	f.Add(wsClientFrame(ws.OpText, true, []byte("SEND\ndestination:/a\n\n\xe2\x82\xac\xff\x00"))) // not UTF-8
	f.Add(append(wsClientFrame(ws.OpText, false, []byte("SEND\n\n\xe2")), wsClientFrame(ws.OpContinuation, true, []byte("\x82\xac\x00"))...))
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}) // unmasked
	f.Add([]byte{0x89, 0xfe, 0, 200, 1, 2, 3, 4})      // oversized control frame
	f.Add([]byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4})
	srv, err := New(&Options{Port: -1, Logger: discardLogger()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.httpLn.Close() })
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newConn(srv, discardConn{}, nil)
		w := &wsReader{c: c, br: bufio.NewReaderSize(bytes.NewReader(data), 16), max: 1 << 12}
		c.ws = w
		p := frame.Parser{MaxFrame: 1 << 12, Version: frame.Version12}
		var pending []byte
		tmp := make([]byte, 257)
		for range 4*len(data) + 8 {
			n, rerr := w.Read(tmp)
			if n < 0 || n > len(tmp) {
				t.Fatalf("Read returned %d for a %d-byte buffer", n, len(tmp))
			}
			pending = append(pending, tmp[:n]...)
			for len(pending) > 0 {
				fr, k, perr := p.Parse(pending)
				if perr != nil {
					return
				}
				if k == 0 {
					break
				}
				if fr != nil && len(fr.Body) > 1<<12 {
					t.Fatalf("body of %d bytes beyond MaxFrame", len(fr.Body))
				}
				pending = pending[k:]
			}
			if rerr != nil {
				return
			}
		}
		t.Fatalf("reader made no progress on %d bytes", len(data))
	})
}
