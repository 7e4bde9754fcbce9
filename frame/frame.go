// Package frame implements the STOMP 1.0, 1.1 and 1.2 wire format: the Frame
// type, an incremental zero-copy parser, an append-style encoder, header
// escaping per version and the heart-beat header. It does no I/O and knows
// nothing about the broker.
package frame

import (
	"errors"
	"strconv"
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

// ParseHeartBeat parses a "cx,cy" heart-beat header value. An empty value
// means "0,0" as the spec says.
func ParseHeartBeat(v []byte) (x, y int, err error) {
	if len(v) == 0 {
		return 0, 0, nil
	}
	for i, c := range v {
		if c == ',' {
			x, err1 := strconv.Atoi(string(v[:i]))
			y, err2 := strconv.Atoi(string(v[i+1:]))
			if err1 != nil || err2 != nil || x < 0 || y < 0 {
				return 0, 0, ErrBadHeartBeat
			}
			return x, y, nil
		}
	}
	return 0, 0, ErrBadHeartBeat
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
