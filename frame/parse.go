package frame

import "bytes"

// Default limits used when a Parser field is zero.
const (
	DefaultMaxFrame      = 16 << 20 // bytes of one frame, headers and body
	DefaultMaxHeaders    = 64       // header lines of one frame
	DefaultMaxHeaderLine = 8 << 10  // bytes of one header (or command) line
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
// A Parser is not safe for concurrent use. The Frame it returns is reused by
// the next call to Parse.
type Parser struct {
	Version       Version
	MaxFrame      int
	MaxHeaders    int
	MaxHeaderLine int

	f       Frame
	scanNUL int // resume offset of the NUL search in the pending frame (0 = none)
}

// Reset forgets any partially scanned frame.
func (p *Parser) Reset() { p.scanNUL = 0 }

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
//     arrive, with a buffer starting at the same byte.
//   - A protocol violation: a *Error. The stream cannot be resynchronised.
//
// Limits are checked before a frame is complete, so a client cannot make the
// caller buffer more than MaxFrame bytes. The returned frame's header values
// are unescaped in place inside buf.
func (p *Parser) Parse(buf []byte) (f *Frame, n int, err error) {
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
		return nil, n, nil
	}
	maxFrame := limit(p.MaxFrame, DefaultMaxFrame)
	maxLine := limit(p.MaxHeaderLine, DefaultMaxHeaderLine)
	maxHeaders := limit(p.MaxHeaders, DefaultMaxHeaders)

	// Command line.
	eol := bytes.IndexByte(buf, '\n')
	if eol < 0 {
		if len(buf) > maxLine {
			return nil, 0, ErrHeaderTooLong
		}
		return nil, 0, nil
	}
	if eol > maxLine {
		return nil, 0, ErrHeaderTooLong
	}
	cmd := trimCR(buf[:eol])
	if len(cmd) == 0 {
		return nil, 0, ErrMissingCommand
	}
	f = &p.f
	f.Headers = f.Headers[:0]
	f.Body = nil
	var known bool
	if f.Command, known = commandOf(cmd); !known {
		for _, c := range cmd {
			if c < 'A' || c > 'Z' {
				return nil, 0, ErrBadCommandCharset
			}
		}
		f.Command = string(cmd)
	}
	pos := eol + 1

	// Header lines up to the blank line.
	for {
		if pos > maxFrame {
			return nil, 0, ErrFrameTooLarge
		}
		eol = bytes.IndexByte(buf[pos:], '\n')
		if eol < 0 {
			if len(buf)-pos > maxLine {
				return nil, 0, ErrHeaderTooLong
			}
			return nil, 0, nil
		}
		if eol > maxLine {
			return nil, 0, ErrHeaderTooLong
		}
		line := trimCR(buf[pos : pos+eol])
		pos += eol + 1
		if len(line) == 0 {
			break
		}
		if len(f.Headers) >= maxHeaders {
			return nil, 0, ErrTooManyHeaders
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return nil, 0, ErrMalformedHeader
		}
		if colon == 0 {
			return nil, 0, ErrEmptyHeaderName
		}
		f.Headers = append(f.Headers, Header{Key: line[:colon], Value: line[colon+1:]})
	}

	// Body: content-length bytes then NUL, or up to the first NUL.
	bodyStart := pos
	if cl, ok := f.Get("content-length"); ok {
		size, ok := parseLength(cl)
		if !ok {
			return nil, 0, ErrBadContentLength
		}
		if size > maxFrame-bodyStart {
			return nil, 0, ErrFrameTooLarge
		}
		end := bodyStart + size
		if end >= len(buf) {
			return nil, 0, nil
		}
		if buf[end] != 0 {
			return nil, 0, ErrMissingNUL
		}
		f.Body = buf[bodyStart:end:end]
		n = end + 1
	} else {
		from := max(bodyStart, p.scanNUL)
		i := bytes.IndexByte(buf[from:], 0)
		if i < 0 {
			if len(buf) >= maxFrame {
				return nil, 0, ErrFrameTooLarge
			}
			p.scanNUL = len(buf)
			return nil, 0, nil
		}
		end := from + i
		if end >= maxFrame {
			return nil, 0, ErrFrameTooLarge
		}
		f.Body = buf[bodyStart:end:end]
		n = end + 1
	}
	p.scanNUL = 0

	// STOMP 1.1+: header escaping, except in CONNECT and CONNECTED frames.
	if p.Version >= Version11 && f.Command != CONNECT && f.Command != STOMP && f.Command != CONNECTED {
		for i := range f.Headers {
			h := &f.Headers[i]
			var ok bool
			if h.Key, ok = unescapeInPlace(h.Key, p.Version); !ok {
				return nil, 0, ErrBadEscape
			}
			if h.Value, ok = unescapeInPlace(h.Value, p.Version); !ok {
				return nil, 0, ErrBadEscape
			}
		}
	}
	return f, n, nil
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

// parseLength parses a non-negative decimal content-length.
func parseLength(b []byte) (int, bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
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
	return b[:w], true
}
