package frame

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
)

// Default limits used when a Parser field is zero.
const (
	DefaultMaxFrame      = 16 << 20 // bytes of one frame, command line through the terminating NUL
	DefaultMaxHeaders    = 1000     // header lines of one frame (Apache Apollo's default)
	DefaultMaxHeaderLine = 8 << 10  // bytes of one header (or command) line, EOL excluded
)

// Error is a protocol error found while parsing. Its text is meant for the
// message header of the ERROR frame sent back to the client.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

// Parse errors.
var (
	ErrFrameTooLarge     = &Error{"frame too large"}
	ErrTooManyHeaders    = &Error{"too many headers"}
	ErrHeaderTooLong     = &Error{"header line too long"}
	ErrMalformedHeader   = &Error{"malformed header line (no ':')"}
	ErrEmptyHeaderName   = &Error{"empty header name"}
	ErrBadEscape         = &Error{"undefined escape sequence in header"}
	ErrBadContentLength  = &Error{"invalid content-length header"}
	ErrMissingNUL        = &Error{"frame body not terminated by NUL after content-length bytes"}
	ErrMissingCommand    = &Error{"empty command line"}
	ErrBadCommandCharset = &Error{"command contains invalid characters"}
)

// Parser parses STOMP frames incrementally from a byte stream. The zero value
// is ready to use with default limits and 1.0 escaping rules; set Version
// once a connection has negotiated 1.1 or 1.2.
//
// Limits: a frame, from the first byte of its command line through its
// terminating NUL, may be at most MaxFrame bytes; it may have at most
// MaxHeaders header lines; a command or header line may be at most
// MaxHeaderLine bytes, not counting its EOL (LF or CR LF). Heart-beat EOLs
// between frames count toward no limit.
//
// A Parser is not safe for concurrent use. The Frame it returns is reused by
// the next call to Parse.
type Parser struct {
	Version       Version
	MaxFrame      int
	MaxHeaders    int
	MaxHeaderLine int

	f Frame

	// What is known of a pending (incomplete) frame, kept between calls so
	// that Parse never scans the same bytes twice. Offsets, not slices: the
	// caller may move the frame to another buffer between calls.
	stage   uint8  // stageCommand, stageHeaders or stageBody
	escaped bool   // the pending frame's headers are escaped
	cmd     string // the pending frame's command
	line    int    // stageHeaders: start of the current line; stageBody: start of the body
	scan    int    // resume offset of the LF (headers) or NUL (body) search
	end     int    // stageBody: offset of the NUL given by content-length, or -1
	spans   []span // the pending frame's header lines
	lenSpan int    // 1 + the index in spans of the first content-length header, 0 if none
}

// span locates one header line "key:value" in the frame; esc is set when
// it holds escape sequences to decode.
type span struct {
	start, colon, end int
	esc               bool
}

const (
	stageCommand = iota
	stageHeaders
	stageBody
)

// Reset forgets any partially scanned frame.
func (p *Parser) Reset() {
	p.stage = stageCommand
	p.escaped = false
	p.cmd = ""
	p.line, p.scan, p.end = 0, 0, 0
	p.spans = p.spans[:0]
	p.lenSpan = 0
}

// Release frees what the parser keeps between frames: its header index
// and the last frame returned, whose headers and body point into the
// caller's buffer (so that buffer can be reused or collected). For a
// connection going idle; call it between frames (when no partial frame is
// pending, it is forgotten). The next Parse allocates afresh.
func (p *Parser) Release() {
	p.Reset()
	p.spans = nil
	p.f = Frame{}
}

func limit(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// Parse looks for one frame at the start of buf.
//
//   - A complete frame: it returns the frame and the number of bytes it used.
//   - Heart-beat end-of-lines before a frame: nil frame and n > 0 (call again
//     with buf[n:]).
//   - An incomplete frame: nil frame and n == 0; call again once more bytes
//     arrive, with a buffer starting at the same byte (it may be another
//     slice holding the same bytes followed by new ones). Bytes already seen
//     are not scanned again, so feeding a frame in many small pieces costs
//     time linear in its size.
//   - A protocol violation: a *Error. The stream cannot be resynchronised.
//
// Limits are checked before a frame is complete, so a client cannot make the
// caller buffer more than MaxFrame bytes, and the error reported for a stream
// does not depend on how it was split into reads. The returned frame's header
// values are unescaped in place inside buf once the frame is complete; buf is
// not modified otherwise.
func (p *Parser) Parse(buf []byte) (f *Frame, n int, err error) {
	if p.stage == stageCommand {
		// STOMP: frames may be separated by any number of EOLs (heart-beats).
		for n < len(buf) {
			if buf[n] == '\n' {
				n++
			} else if buf[n] == '\r' && n+1 < len(buf) && buf[n+1] == '\n' {
				n += 2
			} else {
				break
			}
		}
		if n > 0 {
			p.Reset()
			return nil, n, nil
		}
		if len(buf) == 1 && buf[0] == '\r' {
			return nil, 0, nil // maybe a heart-beat CR LF: no frame byte yet
		}
	}
	maxFrame := limit(p.MaxFrame, DefaultMaxFrame)
	// Parse only what a frame may span: then whether a frame is too large
	// is decided by the same bytes whatever the reads were, and no byte past
	// the limit is ever scanned.
	data := buf
	if len(data) > maxFrame {
		data = data[:maxFrame]
	}
	if p.scan > len(data) || p.line > len(data) {
		p.Reset() // the caller broke the contract; start the frame over
	}
	if p.stage == stageCommand && p.scan == 0 {
		if f, n, ok := p.parseAck(data, maxFrame, limit(p.MaxHeaderLine, DefaultMaxHeaderLine)); ok {
			return f, n, nil
		}
		if f, n, ok := p.parseWhole(data, maxFrame); ok {
			return f, n, nil
		}
	}
	f, n, err = p.parse(data, maxFrame)
	if err == nil && f == nil && len(data) == maxFrame {
		err = ErrFrameTooLarge // MaxFrame bytes and the frame is not over
	}
	if err != nil {
		p.Reset()
		return nil, 0, err
	}
	return f, n, nil
}

// parseWhole is the fast path for the usual case, a whole frame at the
// start of buf (at most maxFrame bytes) with no escape sequence: one pass
// over its header lines, eight bytes at a time, their headers written
// straight into the frame, and no parser state kept. It reports false for
// anything else (an incomplete frame, an escape, an unknown command, any
// error, a limit reached) and leaves the parser's state as it was, so that
// parse then does the work from the first byte and decides. Parse calls it
// only for a frame not yet looked at, so a frame arriving in many reads
// pays for this attempt once. The frame is Plain when no header holds a
// byte that some version escapes.
func (p *Parser) parseWhole(buf []byte, maxFrame int) (*Frame, int, bool) {
	maxLine := limit(p.MaxHeaderLine, DefaultMaxHeaderLine)
	maxHeaders := limit(p.MaxHeaders, DefaultMaxHeaders)
	var cmd string
	var eol int
	if len(buf) >= 8 {
		// The commands of the queue path in one look: "SEND\n", "ACK\n".
		switch w := binary.LittleEndian.Uint64(buf); {
		case w&(1<<40-1) == sendLine:
			cmd, eol = SEND, len(SEND)
		case w&(1<<32-1) == ackLine:
			cmd, eol = ACK, len(ACK)
		}
	}
	if cmd == "" {
		eol = indexLF(buf, 0)
		if eol < 0 {
			return nil, 0, false
		}
		line := trimCR(buf[:eol])
		var known bool
		if cmd, known = commandOf(line); !known {
			return nil, 0, false
		}
	}
	if eol > maxLine && len(trimCR(buf[:eol])) > maxLine {
		return nil, 0, false
	}
	escaped := p.Version >= Version11 && cmd != CONNECT && cmd != STOMP && cmd != CONNECTED
	hs := p.f.Headers[:0]
	lenAt := -1
	// The header lines: each LF, colon, backslash and CR in turn. start is
	// where the current line starts, colon its first colon (-1: none yet).
	start, colon := eol+1, -1
	dirty := false // some header holds a byte to escape
	pos := -1      // where the body starts, once the blank line is found
	n := len(buf)
	cr := -1 // the last CR seen
scan:
	for i := start; i < n; i += 8 {
		if i-start > maxLine {
			break // a line too long (or never ending): parse decides
		}
		var x uint64
		switch {
		case i+8 <= n:
			x = binary.LittleEndian.Uint64(buf[i:])
		case n >= 8:
			// The word that ends buf, less the bytes already looked at
			// (the shift brings in NULs, whose matches are dropped).
			x = binary.LittleEndian.Uint64(buf[n-8:]) >> (8 * (i - (n - 8)))
		default:
			break scan
		}
		m := matchLine(x)
		if i+8 > n {
			m &= 1<<(8*(n-i)) - 1
		}
		for ; m != 0; m &= m - 1 {
			k := bits.TrailingZeros64(m) &^ 7 // the match's bit offset in x
			j := i + k/8
			switch byte(x >> k) { // buf[j], from the register
			case ':':
				if colon < 0 {
					colon = j
				} else {
					dirty = true // a colon in the value
				}
			case '\n': // the line [start, end) is over
				end := j
				if cr == j-1 && end > start {
					end-- // the CR of a CR LF line end is not part of the line
				}
				if end == start {
					pos = j + 1 // the blank line: the body starts after it
					break scan
				}
				if end-start > maxLine || len(hs) >= maxHeaders || colon <= start {
					break scan // no colon, an empty name, or a limit
				}
				if lenAt < 0 && colon-start == len("content-length") && string(buf[start:colon]) == "content-length" {
					lenAt = len(hs)
				}
				// Field by field: a Header built whole and copied in
				// makes the CPU reload, in wide moves, what it has just
				// stored in words.
				if len(hs) < cap(hs) {
					hs = hs[:len(hs)+1]
				} else {
					hs = append(hs, Header{})
				}
				h := &hs[len(hs)-1]
				h.Key = buf[start:colon:colon]
				h.Value = buf[colon+1 : end : end]
				start, colon = j+1, -1
			case '\\':
				if escaped {
					break scan // an escape sequence: parse decodes it
				}
				dirty = true
			case '\r':
				cr = j
				// Unless it is the CR of a CR LF line end, part of the line.
				dirty = dirty || j+1 >= n || buf[j+1] != '\n'
			} // another control character: nothing to do
		}
	}
	p.f.Headers = hs
	if pos < 0 {
		return nil, 0, false
	}
	var end int
	if lenAt >= 0 {
		size, ok := parseLength(hs[lenAt].Value)
		if !ok || size >= int64(maxFrame-pos) {
			return nil, 0, false
		}
		end = pos + int(size)
		if end >= len(buf) || buf[end] != 0 {
			return nil, 0, false
		}
	} else if pos < len(buf) && buf[pos] == 0 {
		end = pos // no body, as in an ACK
	} else {
		i := bytes.IndexByte(buf[pos:], 0)
		if i < 0 {
			return nil, 0, false
		}
		end = pos + i
	}
	f := &p.f
	f.Command = cmd
	f.Body = buf[pos:end:end]
	f.Plain = !dirty
	return f, end + 1, true
}

// sendLine and ackLine are "SEND\n" and "ACK\n" read as little-endian
// words.
const (
	sendLine = 'S' | 'E'<<8 | 'N'<<16 | 'D'<<24 | '\n'<<32
	ackLine  = 'A' | 'C'<<8 | 'K'<<16 | '\n'<<24
)

// matchLine marks the bytes of x that parseWhole stops at with the high
// bit of each, exactly (SWAR, as index3, but with no false match after a
// true one, so that every match in a word can be taken in turn): colon,
// backslash and the control characters up to CR, LF and CR among them
// (one test for the two, cheaper than two compares). For y = x^c,
// ((y&0x7f..7f)+0x7f..7f)|y has the high bit of every byte that is not zero
// set, and ((x&0x7f..7f)+0x72..72)|x that of every byte not below 0x0e.
func matchLine(x uint64) uint64 {
	const lo, lo7, hi = 0x0101010101010101, 0x7f7f7f7f7f7f7f7f, 0x8080808080808080
	yc, yb := x^(lo*':'), x^(lo*'\\')
	nz := ((yc & lo7) + lo7 | yc) & ((yb & lo7) + lo7 | yb) & ((x & lo7) + lo*(0x80-'\r'-1) | x)
	return ^nz & hi
}

// parse continues the pending frame in buf (at most maxFrame bytes).
func (p *Parser) parse(buf []byte, maxFrame int) (*Frame, int, error) {
	maxLine := limit(p.MaxHeaderLine, DefaultMaxHeaderLine)

	if p.stage == stageCommand {
		eol := indexLF(buf, p.scan)
		if eol < 0 {
			p.scan = len(buf)
			if lineSoFar(buf, 0) > maxLine {
				return nil, 0, ErrHeaderTooLong
			}
			return nil, 0, nil
		}
		line := trimCR(buf[:eol])
		if len(line) > maxLine {
			return nil, 0, ErrHeaderTooLong
		}
		if len(line) == 0 {
			return nil, 0, ErrMissingCommand // unreachable: EOLs are heart-beats
		}
		cmd, known := commandOf(line)
		if !known {
			for _, c := range line {
				if c < 'A' || c > 'Z' {
					return nil, 0, ErrBadCommandCharset
				}
			}
			cmd = string(line)
		}
		p.cmd = cmd
		// STOMP 1.1+: header escaping, except in CONNECT and CONNECTED frames.
		p.escaped = p.Version >= Version11 && cmd != CONNECT && cmd != STOMP && cmd != CONNECTED
		p.spans = p.spans[:0]
		p.lenSpan = 0
		p.line = eol + 1
		p.scan = eol + 1
		p.stage = stageHeaders
	}

	if p.stage == stageHeaders {
		maxHeaders := limit(p.MaxHeaders, DefaultMaxHeaders)
		for {
			start := p.line
			var eol, colon int
			var bs bool
			if p.scan <= start {
				// A line not seen before: its LF, colon and backslashes
				// in one pass.
				eol, colon, bs = scanLine(buf, start, p.escaped)
			} else {
				// The rest of a line seen in part by an earlier call.
				eol = indexLF(buf, p.scan)
				colon = -2
			}
			if eol < 0 {
				p.scan = len(buf)
				if lineSoFar(buf, start) > maxLine {
					return nil, 0, ErrHeaderTooLong
				}
				return nil, 0, nil
			}
			p.scan = eol + 1
			end := eol
			if end > start && buf[end-1] == '\r' {
				end--
			}
			if end-start > maxLine {
				return nil, 0, ErrHeaderTooLong
			}
			if end == start {
				p.line = eol + 1 // the blank line: the body starts after it
				break
			}
			if len(p.spans) >= maxHeaders {
				return nil, 0, ErrTooManyHeaders
			}
			if colon == -2 {
				line := buf[start:end]
				colon = bytes.IndexByte(line, ':')
				if colon >= 0 {
					colon += start
				}
				bs = p.escaped && bytes.IndexByte(line, '\\') >= 0
			}
			if colon < 0 {
				return nil, 0, ErrMalformedHeader
			}
			if colon == start {
				return nil, 0, ErrEmptyHeaderName
			}
			if bs && (!validEscapes(buf[start:colon], p.Version) || !validEscapes(buf[colon+1:end], p.Version)) {
				return nil, 0, ErrBadEscape
			}
			// The first content-length wins. An escaped header name can
			// never read "content-length", so comparing raw bytes is right.
			if p.lenSpan == 0 && colon-start == len("content-length") && string(buf[start:colon]) == "content-length" {
				p.lenSpan = len(p.spans) + 1
			}
			p.spans = append(p.spans, span{start, colon, end, bs})
			p.line = eol + 1
		}
		p.end = -1
		if p.lenSpan > 0 {
			s := p.spans[p.lenSpan-1]
			size, ok := parseLength(buf[s.colon+1 : s.end])
			if !ok {
				return nil, 0, ErrBadContentLength
			}
			// The frame is the headers, the body and the NUL.
			if size >= int64(maxFrame-p.line) {
				return nil, 0, ErrFrameTooLarge
			}
			p.end = p.line + int(size)
		}
		p.scan = p.line
		p.stage = stageBody
	}

	// Body: content-length bytes then NUL, or up to the first NUL.
	end := p.end
	if end >= 0 {
		if end >= len(buf) {
			return nil, 0, nil
		}
		if buf[end] != 0 {
			return nil, 0, ErrMissingNUL
		}
	} else {
		i := bytes.IndexByte(buf[p.scan:], 0)
		if i < 0 {
			p.scan = len(buf)
			return nil, 0, nil
		}
		end = p.scan + i
	}

	f := &p.f
	f.Command = p.cmd
	f.Plain = false // not looked at closely on this path
	if cap(f.Headers) < len(p.spans) {
		f.Headers = make([]Header, len(p.spans), cap(p.spans))
	}
	f.Headers = f.Headers[:len(p.spans)]
	for i, s := range p.spans {
		h := &f.Headers[i]
		h.Key = buf[s.start:s.colon:s.colon]
		h.Value = buf[s.colon+1 : s.end : s.end]
		if s.esc {
			var ok1, ok2 bool
			h.Key, ok1 = unescapeInPlace(h.Key, p.Version)
			h.Value, ok2 = unescapeInPlace(h.Value, p.Version)
			if !ok1 || !ok2 {
				return nil, 0, ErrBadEscape // unreachable: checked line by line
			}
		}
	}
	f.Body = buf[p.line:end:end]
	p.Reset()
	return f, end + 1, nil
}

// shortScan is how many bytes of a line are looked at one by one before
// the search for its LF goes to bytes.IndexByte: header lines are short on
// the hot path, where a plain loop costs less than the call; long lines
// still get the vectorised search.
const shortScan = 32

// indexLF returns the offset of the first LF in buf at or after from, or -1.
func indexLF(buf []byte, from int) int {
	if from >= len(buf) {
		return -1
	}
	b := buf[from:]
	n := min(len(b), shortScan)
	for i, c := range b[:n] {
		if c == '\n' {
			return from + i
		}
	}
	if i := bytes.IndexByte(b[n:], '\n'); i >= 0 {
		return from + n + i
	}
	return -1
}

// scanLine looks at the header line that starts at start in one pass. It
// returns the offset of its LF (-1 if the line is not complete in buf), of
// its first colon (-1 if none before the LF), and, when escaped is set,
// whether the line holds a backslash. The key and the value are looked at
// word by word for their first shortScan bytes; a longer key or value goes
// to the vectorised searches, so that a long line costs what it did.
func scanLine(buf []byte, start int, escaped bool) (eol, colon int, bs bool) {
	// The key: up to the first colon or LF, noting backslashes.
	lim := min(len(buf), start+shortScan)
	colon = -1
	for k := start; colon < 0; {
		i := index3(buf[:lim], k, ':', '\n', '\\')
		if i < 0 {
			return scanLong(buf, start, escaped)
		}
		switch buf[i] {
		case ':':
			colon = i
		case '\n':
			return i, -1, escaped && bs
		default:
			bs = true
			k = i + 1
		}
	}
	// The value.
	v := colon + 1
	lim = min(len(buf), v+shortScan)
	for {
		i := index3(buf[:lim], v, '\n', '\\', '\n')
		if i < 0 {
			break
		}
		if buf[i] == '\n' {
			return i, colon, escaped && bs
		}
		bs = true
		v = i + 1
	}
	i := bytes.IndexByte(buf[lim:], '\n')
	if i < 0 {
		return -1, -1, false
	}
	eol = lim + i
	if escaped && !bs {
		bs = bytes.IndexByte(buf[v:eol], '\\') >= 0
	}
	return eol, colon, escaped && bs
}

// scanLong is scanLine with one vectorised search for each of LF, colon
// and backslash.
func scanLong(buf []byte, start int, escaped bool) (eol, colon int, bs bool) {
	i := bytes.IndexByte(buf[start:], '\n')
	if i < 0 {
		return -1, -1, false
	}
	eol = start + i
	line := buf[start:eol]
	colon = bytes.IndexByte(line, ':')
	if colon >= 0 {
		colon += start
	}
	return eol, colon, escaped && bytes.IndexByte(line, '\\') >= 0
}

// index3 returns the offset of the first of the bytes a, b and c in buf at
// or after from, or -1. It looks at eight bytes at a time (SWAR): x^a has a
// zero byte where x holds a, and (y-0x01..01) &^ y & 0x80..80 sets the high
// bit of the first zero byte of y (and maybe of some after it, never
// before), so the lowest bit set of the three masks is the first match.
func index3(buf []byte, from int, a, b, c byte) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	ma, mb, mc := lo*uint64(a), lo*uint64(b), lo*uint64(c)
	i := from
	for ; i+8 <= len(buf); i += 8 {
		x := binary.LittleEndian.Uint64(buf[i:])
		xa, xb, xc := x^ma, x^mb, x^mc
		m := (xa-lo)&^xa | (xb-lo)&^xb | (xc-lo)&^xc
		if m &= hi; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(buf); i++ {
		if x := buf[i]; x == a || x == b || x == c {
			return i
		}
	}
	return -1
}

// lineSoFar is the length of the incomplete line that starts at start:
// what buf holds of it, less a final CR that may be the start of its EOL.
func lineSoFar(buf []byte, start int) int {
	k := len(buf) - start
	if k > 0 && buf[len(buf)-1] == '\r' {
		k--
	}
	return k
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

// parseLength parses a non-negative decimal content-length of at most ten
// digits (surrounding white space is ignored). It returns an int64 so that
// no value overflows where int has 32 bits.
func parseLength(b []byte) (int64, bool) {
	if n, ok := ParseDigits(b); ok && len(b) <= 10 {
		return int64(n), true // the usual case: digits only
	}
	b = bytes.TrimSpace(b)
	if len(b) > 10 {
		return 0, false
	}
	n, ok := ParseDigits(b)
	return int64(n), ok
}

// ParseDigits parses b, one to nineteen decimal digits and nothing else
// (no sign, no white space), as an unsigned number: the content-length
// header's syntax, and fixed-width numeric fields. Nineteen digits cannot
// overflow.
func ParseDigits(b []byte) (uint64, bool) {
	if len(b) > 19 {
		return 0, false
	}
	return ParseUint(b)
}

// ParseUint parses b, an unsigned decimal number of one to twenty digits
// and nothing else that fits in a uint64 (as in an ack id: the broker's
// message ids have 15 digits and more, the node id being in their top
// bits). The digits are read eight at a time (parse8); only a 20-digit
// number can overflow.
func ParseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if l := len(b); l >= 8 && l <= 16 {
		// The last eight digits, and those before them (k, maybe none)
		// as eight with leading zeros: the first word moved up by 8-k
		// bytes, '0's shifted in.
		const zeros = 0x3030303030303030
		k := l - 8
		hi, ok1 := parse8(binary.LittleEndian.Uint64(b)<<(8*(8-k)) | zeros>>(8*k))
		lo, ok2 := parse8(binary.LittleEndian.Uint64(b[k:]))
		if !ok1 || !ok2 {
			return 0, false
		}
		return hi*1e8 + lo, true
	}
	var n uint64
	i := 0
	for ; i+8 <= len(b) && i < 16; i += 8 { // at most 16 digits: no overflow
		v, ok := parse8(binary.LittleEndian.Uint64(b[i:]))
		if !ok {
			return 0, false
		}
		n = n*1e8 + v
	}
	for ; i < len(b); i++ {
		d := b[i] - '0'
		if d > 9 || i == 19 && (n > math.MaxUint64/10 || uint64(d) > math.MaxUint64-n*10) {
			return 0, false
		}
		n = n*10 + uint64(d)
	}
	return n, true
}

// parse8 is the value of eight ASCII decimal digits loaded little-endian
// (the first digit in the lowest byte), and whether they all are digits
// (SWAR: three multiplications instead of eight steps).
func parse8(x uint64) (uint64, bool) {
	const lo4, hi4 = 0x0f0f0f0f0f0f0f0f, 0xf0f0f0f0f0f0f0f0
	// A digit byte is 0x30-0x39: its high half is 3, and adding 6 to its
	// low half does not carry into it.
	if x&hi4|(x+0x0606060606060606)&hi4>>4 != 0x3333333333333333 {
		return 0, false
	}
	x &= lo4
	x = x * (10<<8 + 1) >> 8 & 0x00ff00ff00ff00ff
	x = x * (100<<16 + 1) >> 16 & 0x0000ffff0000ffff
	return x * (10000<<32 + 1) >> 32, true
}

// validEscapes reports whether every backslash in b starts an escape
// sequence defined by version v (1.1+).
func validEscapes(b []byte, v Version) bool {
	for {
		i := bytes.IndexByte(b, '\\')
		if i < 0 {
			return true
		}
		if i+1 == len(b) {
			return false
		}
		switch b[i+1] {
		case '\\', 'n', 'c':
		case 'r':
			if v < Version12 {
				return false
			}
		default:
			return false
		}
		b = b[i+2:]
	}
}

// unescapeInPlace decodes STOMP header escapes (\\ \n \c, and \r in 1.2)
// inside b and returns the shortened slice. ok is false for an undefined
// escape, which the spec says must be treated as a fatal protocol error.
func unescapeInPlace(b []byte, v Version) ([]byte, bool) {
	i := bytes.IndexByte(b, '\\')
	if i < 0 {
		return b, true
	}
	w := i
	for r := i; r < len(b); r++ {
		c := b[r]
		if c != '\\' {
			b[w] = c
			w++
			continue
		}
		r++
		if r == len(b) {
			return nil, false
		}
		switch b[r] {
		case '\\':
			b[w] = '\\'
		case 'n':
			b[w] = '\n'
		case 'c':
			b[w] = ':'
		case 'r':
			if v < Version12 {
				return nil, false
			}
			b[w] = '\r'
		default:
			return nil, false
		}
		w++
	}
	return b[:w:w], true
}
