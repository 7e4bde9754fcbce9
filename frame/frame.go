// Package frame implements the STOMP 1.0, 1.1 and 1.2 wire format: the Frame
// type, an incremental zero-copy parser, an append-style encoder, header
// escaping per version and the heart-beat header. It does no I/O and knows
// nothing about the broker.
package frame

import (
	"bytes"
	"errors"
	"math"
)

// Commands. Parsed frames carry these constant strings so that comparing a
// command never allocates.
const (
	CONNECT     = "CONNECT"
	STOMP       = "STOMP"
	CONNECTED   = "CONNECTED"
	SEND        = "SEND"
	SUBSCRIBE   = "SUBSCRIBE"
	UNSUBSCRIBE = "UNSUBSCRIBE"
	ACK         = "ACK"
	NACK        = "NACK"
	BEGIN       = "BEGIN"
	COMMIT      = "COMMIT"
	ABORT       = "ABORT"
	DISCONNECT  = "DISCONNECT"
	MESSAGE     = "MESSAGE"
	RECEIPT     = "RECEIPT"
	ERROR       = "ERROR"
	// DIAG is the original stompica's diagnostics command.
	DIAG = "DIAG"
)

// Protocol versions.
const (
	V10 = "1.0"
	V11 = "1.1"
	V12 = "1.2"
)

// Version is a negotiated protocol version; it decides header escaping.
type Version uint8

// Versions in increasing order. The zero value is 1.0.
const (
	Version10 Version = iota
	Version11
	Version12
)

// String returns the version as it appears in the version header.
func (v Version) String() string {
	switch v {
	case Version11:
		return V11
	case Version12:
		return V12
	}
	return V10
}

// Header is one header line. Key and Value point into the parser's buffer
// (already unescaped) for parsed frames.
type Header struct {
	Key, Value []byte
}

// Frame is one STOMP frame. For a frame returned by Parser.Parse, Headers and
// Body alias the parser's input buffer and are valid only until that buffer is
// reused; copy what must outlive it.
type Frame struct {
	Command string
	Headers []Header
	Body    []byte
	// Plain is set by Parser.Parse when it saw that no header key or
	// value holds a byte that some version escapes (see NeedsEscape), so
	// that an encoder can copy them as they are without looking. False
	// says nothing: a frame built by hand, or one the parser did not
	// look at that closely (a long header line, an escape), has it unset.
	// Whoever changes a header of a parsed frame must clear it (or keep
	// it only when the new bytes need no escaping either).
	Plain bool
}

// Get returns the value of the first header named key (STOMP: when a header
// is repeated, the first occurrence wins).
func (f *Frame) Get(key string) ([]byte, bool) {
	for i := range f.Headers {
		if string(f.Headers[i].Key) == key {
			return f.Headers[i].Value, true
		}
	}
	return nil, false
}

// GetString is Get returning a string ("" when absent).
func (f *Frame) GetString(key string) string {
	v, _ := f.Get(key)
	return string(v)
}

// Has reports whether the frame has a header named key.
func (f *Frame) Has(key string) bool {
	_, ok := f.Get(key)
	return ok
}

// Add appends a header. It is meant for building frames to encode.
func (f *Frame) Add(key, value string) *Frame {
	f.Headers = append(f.Headers, Header{Key: []byte(key), Value: []byte(value)})
	return f
}

// New returns a frame with the command and key/value header pairs.
func New(command string, kv ...string) *Frame {
	f := &Frame{Command: command}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add(kv[i], kv[i+1])
	}
	return f
}

// ErrBadHeartBeat is returned for a malformed heart-beat header.
var ErrBadHeartBeat = errors.New("malformed heart-beat header")

// ParseHeartBeat parses a "cx,cy" heart-beat header value: two non-negative
// decimal integers (digits only, no sign or white space) separated by a
// comma. An empty value means "0,0" as the spec says.
func ParseHeartBeat(v []byte) (x, y int, err error) {
	if len(v) == 0 {
		return 0, 0, nil
	}
	i := bytes.IndexByte(v, ',')
	if i < 0 {
		return 0, 0, ErrBadHeartBeat
	}
	x, ok1 := parseMillis(v[:i])
	y, ok2 := parseMillis(v[i+1:])
	if !ok1 || !ok2 {
		return 0, 0, ErrBadHeartBeat
	}
	return x, y, nil
}

// parseMillis parses a non-empty string of decimal digits that fits an int.
func parseMillis(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int(c - '0')
		if n > (math.MaxInt-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// commandOf maps command bytes to the constant strings without allocating.
func commandOf(b []byte) (string, bool) {
	switch string(b) {
	case SEND:
		return SEND, true
	case MESSAGE:
		return MESSAGE, true
	case ACK:
		return ACK, true
	case NACK:
		return NACK, true
	case SUBSCRIBE:
		return SUBSCRIBE, true
	case UNSUBSCRIBE:
		return UNSUBSCRIBE, true
	case CONNECT:
		return CONNECT, true
	case STOMP:
		return STOMP, true
	case CONNECTED:
		return CONNECTED, true
	case BEGIN:
		return BEGIN, true
	case COMMIT:
		return COMMIT, true
	case ABORT:
		return ABORT, true
	case DISCONNECT:
		return DISCONNECT, true
	case RECEIPT:
		return RECEIPT, true
	case ERROR:
		return ERROR, true
	case DIAG:
		return DIAG, true
	}
	return "", false
}
