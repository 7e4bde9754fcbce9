package server

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// BenchmarkWSRead measures the WebSocket read path of a publisher: 256
// masked messages, each one SEND frame, unmasked (and, for text, checked to
// be UTF-8) into a 32 KiB read buffer. One op is one message.
func BenchmarkWSRead(b *testing.B) {
	for _, tc := range []struct {
		name string
		op   ws.OpCode
		body string
	}{
		{"text-117B", ws.OpText, strings.Repeat("x", 117)},
		{"text-117B-utf8", ws.OpText, strings.Repeat("é", 58) + "x"},
		{"text-16KiB", ws.OpText, strings.Repeat("y", 16<<10)},
		{"binary-117B", ws.OpBinary, strings.Repeat("x", 117)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			const msgs = 256
			send := []byte("SEND\ndestination:/topic/bench.fanout\ncontent-type:text/plain\ncontent-length:" +
				itoa(uint64(len(tc.body))) + "\n\n" + tc.body + "\x00")
			var stream []byte
			for range msgs {
				stream = append(stream, wsClientFrame(tc.op, true, send)...)
			}
			src := bytes.NewReader(stream)
			w := &wsReader{br: bufio.NewReaderSize(src, 4<<10), max: 1 << 30}
			buf := make([]byte, readBufSize)
			b.SetBytes(int64(len(send)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += msgs {
				src.Reset(stream)
				w.br.Reset(src)
				total := 0
				for {
					n, err := w.Read(buf)
					total += n
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				if total != msgs*len(send) {
					b.Fatalf("read %d bytes, want %d", total, msgs*len(send))
				}
			}
		})
	}
}
