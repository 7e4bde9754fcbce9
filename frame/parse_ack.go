package frame

import (
	"encoding/binary"
	"math/bits"
)

// parseAck is parseWhole for the frame a consumer sends most, an ACK or
// NACK with one header, the 1.2 "id" (the MESSAGE's ack header), and no
// body: "ACK\nid:<value>\n\n\x00". Its value is taken as it is when it
// holds no byte that a header could escape or that parse would look at
// twice (colon, backslash, CR, NUL); anything else, and any limit within
// reach, reports false and leaves the frame to parseWhole, as if this
// path were not there. With the usual ack id of about twenty bytes, one
// short loop instead of parseWhole's general scan.
func (p *Parser) parseAck(buf []byte, maxFrame, maxLine int) (*Frame, int, bool) {
	var cmd string
	var i int
	switch {
	case len(buf) >= 7 && string(buf[:7]) == "ACK\nid:":
		cmd, i = ACK, 4
	case len(buf) >= 8 && string(buf[:8]) == "NACK\nid:":
		cmd, i = NACK, 5
	default:
		return nil, 0, false
	}
	if len(cmd) > maxLine {
		return nil, 0, false
	}
	start := i
	n := min(len(buf), start+maxLine+1) // a line past maxLine: parseWhole decides
	// The first LF, colon, backslash, CR or NUL of the value, eight bytes
	// at a time (matchLine: any control character up to CR, NUL among
	// them), then one by one.
	j := start + 3
	for ; j+8 <= n; j += 8 {
		x := binary.LittleEndian.Uint64(buf[j:])
		if m := matchLine(x); m != 0 {
			j += bits.TrailingZeros64(m) / 8
			return p.ackEnd(buf, cmd, start, j, maxFrame)
		}
	}
	for ; j < n; j++ {
		switch buf[j] {
		case ':', '\\', '\r', 0, '\n':
			return p.ackEnd(buf, cmd, start, j, maxFrame)
		}
	}
	return nil, 0, false
}

// ackEnd is parseAck's frame once the first byte of the id's value that
// is not plain, at j, is found: it must be the line's LF, followed by the
// blank line and the NUL of an empty body.
func (p *Parser) ackEnd(buf []byte, cmd string, start, j, maxFrame int) (*Frame, int, bool) {
	if buf[j] != '\n' || j+2 >= len(buf) || buf[j+1] != '\n' || buf[j+2] != 0 || j+2 >= maxFrame {
		return nil, 0, false
	}
	hs := p.f.Headers[:0]
	if cap(hs) == 0 {
		hs = append(hs, Header{})
	} else {
		hs = hs[:1]
	}
	hs[0].Key = buf[start : start+2 : start+2]
	hs[0].Value = buf[start+3 : j : j]
	f := &p.f
	f.Headers = hs
	f.Command = cmd
	f.Body = buf[j+2 : j+2 : j+2]
	f.Plain = true
	return f, j + 3, true
}
