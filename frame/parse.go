package frame

import "bytes"

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

// parse continues the pending frame in buf (at most maxFrame bytes).
func (p *Parser) parse(buf []byte, maxFrame int) (*Frame, int, error) {
	maxLine := limit(p.MaxHeaderLine, DefaultMaxHeaderLine)

	if p.stage == stageCommand {
		line, next, err := p.nextLine(buf, 0, maxLine)
		if next < 0 || err != nil {
			return nil, 0, err
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
		p.line = next
		p.stage = stageHeaders
	}

	if p.stage == stageHeaders {
		maxHeaders := limit(p.MaxHeaders, DefaultMaxHeaders)
		for {
			line, next, err := p.nextLine(buf, p.line, maxLine)
			if next < 0 || err != nil {
				return nil, 0, err
			}
			if len(line) == 0 {
				p.line = next // the blank line: the body starts after it
				break
			}
			if len(p.spans) >= maxHeaders {
				return nil, 0, ErrTooManyHeaders
			}
			colon := bytes.IndexByte(line, ':')
			if colon < 0 {
				return nil, 0, ErrMalformedHeader
			}
			if colon == 0 {
				return nil, 0, ErrEmptyHeaderName
			}
			esc := p.escaped && bytes.IndexByte(line, '\\') >= 0
			if esc && (!validEscapes(line[:colon], p.Version) || !validEscapes(line[colon+1:], p.Version)) {
				return nil, 0, ErrBadEscape
			}
			p.spans = append(p.spans, span{p.line, p.line + colon, p.line + len(line), esc})
			p.line = next
		}
		// The first content-length wins. An escaped header name can never
		// read "content-length", so comparing raw bytes is right.
		p.end = -1
		for _, s := range p.spans {
			if string(buf[s.start:s.colon]) == "content-length" {
				size, ok := parseLength(buf[s.colon+1 : s.end])
				if !ok {
					return nil, 0, ErrBadContentLength
				}
				// The frame is the headers, the body and the NUL.
				if size >= int64(maxFrame-p.line) {
					return nil, 0, ErrFrameTooLarge
				}
				p.end = p.line + int(size)
				break
			}
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
	f.Headers = f.Headers[:0]
	for _, s := range p.spans {
		h := Header{Key: buf[s.start:s.colon:s.colon], Value: buf[s.colon+1 : s.end : s.end]}
		if s.esc {
			var ok1, ok2 bool
			h.Key, ok1 = unescapeInPlace(h.Key, p.Version)
			h.Value, ok2 = unescapeInPlace(h.Value, p.Version)
			if !ok1 || !ok2 {
				return nil, 0, ErrBadEscape // unreachable: checked line by line
			}
		}
		f.Headers = append(f.Headers, h)
	}
	f.Body = buf[p.line:end:end]
	p.Reset()
	return f, end + 1, nil
}

// nextLine returns the line that starts at start, without its EOL, and the
// offset of the next line. next < 0 means the line is not complete yet.
func (p *Parser) nextLine(buf []byte, start, maxLine int) (line []byte, next int, err error) {
	from := max(start, p.scan)
	i := bytes.IndexByte(buf[from:], '\n')
	if i < 0 {
		p.scan = len(buf)
		// The line so far, less a final CR that may be the start of its EOL.
		k := len(buf) - start
		if k > 0 && buf[len(buf)-1] == '\r' {
			k--
		}
		if k > maxLine {
			return nil, 0, ErrHeaderTooLong
		}
		return nil, -1, nil
	}
	eol := from + i
	p.scan = eol + 1
	line = trimCR(buf[start:eol])
	if len(line) > maxLine {
		return nil, 0, ErrHeaderTooLong
	}
	return line, eol + 1, nil
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
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
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
