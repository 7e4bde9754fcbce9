package server

// Errors the broker answers with an ERROR frame and a close, and the reasons
// a connection ends.
//
// Every such error is a *clientError: its kind labels the
// stompica_errors_total metric (errorKinds), its close reason is recorded on
// the connection, and its message is the ERROR frame's message header.
// Nothing is ever classified by the text of a message: rewording an ERROR
// changes no label. An error with a cause (a parser error, a store error,
// the Authenticator's refusal) wraps it, so errors.Is and errors.As see it;
// the client sees only the message.

import (
	"errors"
	"fmt"

	"github.com/stompica/stompica/frame"
)

// errKind is why the broker sent an ERROR frame: the kind label of
// stompica_errors_total and of the console's error figures.
type errKind uint8

const (
	kindProtocol  errKind = iota // malformed frame, unknown command, missing or bad header, bad ack id
	kindLimit                    // frame, header, subscription, transaction or connection limit exceeded
	kindAuth                     // refused login, or access denied to a destination or DIAG
	kindHeartbeat                // nothing received within the negotiated heart-beat interval
	kindTimeout                  // no CONNECT within Options.ConnectTimeout, or a frame not finished in time
	kindWebSocket                // WebSocket protocol violation
	kindStore                    // the store failed to take or give a message
	kindOther                    // anything else
	numErrorKinds = iota
)

// errorKinds are the kinds' label values, in kind order (TestEnumNames
// checks that every kind has one).
var errorKinds = [numErrorKinds]string{"protocol", "limit", "auth", "heartbeat", "timeout", "websocket", "store", "other"}

func (k errKind) String() string {
	if int(k) < len(errorKinds) {
		return errorKinds[k]
	}
	return errorKinds[kindOther]
}

// ClosedState is why a client connection ended. The first reason recorded
// wins; the connection logs it when it closes, and the server counts
// connections closed per reason (Server.ClosedCounts).
type ClosedState uint8

// Close reasons.
const (
	Open               ClosedState = iota // not closed (yet)
	ClientClosed                          // the client closed the socket, or sent a WebSocket close
	Disconnect                            // the client sent DISCONNECT
	ProtocolError                         // a malformed or unexpected frame, or no common version
	WebSocketError                        // a WebSocket framing violation
	AuthFailed                            // the login was refused
	AccessDenied                          // a destination or DIAG the login may not use
	LimitExceeded                         // a frame, header, subscription or transaction bound
	SlowConsumer                          // a subscriber that could not keep up
	HeartbeatTimeout                      // nothing received within the agreed heart-beat interval
	ConnectTimeout                        // no CONNECT within Options.ConnectTimeout
	FrameTimeout                          // a frame not finished within Options.FrameTimeout
	ReadError                             // the socket failed while reading
	WriteError                            // the socket failed while writing (or the write timed out)
	ServerShutdown                        // Shutdown
	TooManyConnections                    // over a connection limit (or out of file descriptors)
	StoreError                            // the store failed
	ServerError                           // any other failure on the broker's side
	AdminClosed                           // an administrator closed it (management API, console, ctl)
	numClosedStates    = iota
)

var closedStateNames = [numClosedStates]string{
	Open:               "open",
	ClientClosed:       "client closed",
	Disconnect:         "DISCONNECT",
	ProtocolError:      "protocol error",
	WebSocketError:     "websocket protocol error",
	AuthFailed:         "authentication failed",
	AccessDenied:       "access denied",
	LimitExceeded:      "limit exceeded",
	SlowConsumer:       "slow consumer",
	HeartbeatTimeout:   "heart-beat timeout",
	ConnectTimeout:     "connect timeout",
	FrameTimeout:       "frame timeout",
	ReadError:          "read error",
	WriteError:         "write error",
	ServerShutdown:     "server shutdown",
	TooManyConnections: "too many connections",
	StoreError:         "store error",
	ServerError:        "server error",
	AdminClosed:        "closed by an administrator",
}

func (s ClosedState) String() string {
	if int(s) < len(closedStateNames) {
		return closedStateNames[s]
	}
	return fmt.Sprintf("ClosedState(%d)", uint8(s))
}

// clientError is an error answered with an ERROR frame (message header
// msg) and a close for reason.
type clientError struct {
	kind   errKind
	reason ClosedState
	msg    string
	cause  error
}

func (e *clientError) Error() string { return e.msg }
func (e *clientError) Unwrap() error { return e.cause }

// protocolErr is a client mistake: a malformed or unexpected frame.
func protocolErr(msg string) *clientError {
	return &clientError{kind: kindProtocol, reason: ProtocolError, msg: msg}
}

// limitErr is a client going past a broker bound.
func limitErr(msg string) *clientError {
	return &clientError{kind: kindLimit, reason: LimitExceeded, msg: msg}
}

// accessErr is a destination (or DIAG) the client's login may not use.
func accessErr(msg string) *clientError {
	return &clientError{kind: kindAuth, reason: AccessDenied, msg: msg}
}

// loginErr is a refused login; cause is the Authenticator's error, if
// any (logged, never shown to the client).
func loginErr(msg string, cause error) *clientError {
	return &clientError{kind: kindAuth, reason: AuthFailed, msg: msg, cause: cause}
}

// wsErr is a WebSocket framing violation; cause is the codec's error, if
// any.
func wsErr(msg string, cause error) *clientError {
	return &clientError{kind: kindWebSocket, reason: WebSocketError, msg: "websocket protocol error: " + msg, cause: cause}
}

// storeErr is a store failure answered to the client (a SEND the store
// did not take gets an ERROR, never a RECEIPT).
func storeErr(msg string, cause error) *clientError {
	return &clientError{kind: kindStore, reason: StoreError, msg: msg, cause: cause}
}

// slowConsumerErr closes a subscriber that cannot keep up (counted by
// stompica_slow_consumer_disconnects_total, not as an error).
func slowConsumerErr(why string) *clientError {
	return &clientError{kind: kindLimit, reason: SlowConsumer, msg: "slow consumer: " + why}
}

// timeoutErr is a deadline the client missed: reason ConnectTimeout or
// FrameTimeout.
func timeoutErr(reason ClosedState, msg string) *clientError {
	return &clientError{kind: kindTimeout, reason: reason, msg: msg}
}

// Errors with fixed texts.
var (
	errShuttingDown    = &clientError{kind: kindOther, reason: ServerShutdown, msg: "shutting down"}
	errTooManyConns    = &clientError{kind: kindLimit, reason: TooManyConnections, msg: "too many connections"}
	errTooManyFromAddr = &clientError{kind: kindLimit, reason: TooManyConnections, msg: "too many connections from this address"}
	errOutOfFDs        = &clientError{kind: kindLimit, reason: TooManyConnections, msg: "too many connections: the broker is out of file descriptors"}
	errConnectTimeout  = timeoutErr(ConnectTimeout, "timeout waiting for CONNECT")
	errHeartbeat       = &clientError{kind: kindHeartbeat, reason: HeartbeatTimeout,
		msg: "heart-beat timeout: nothing received from the client within the agreed interval"}
	errBadHeartBeat = protocolErr("malformed heart-beat header")
)

// parseErr classifies a frame parser error: the parser's bounds are
// limits, anything else a protocol error.
func parseErr(err error) *clientError {
	switch {
	case errors.Is(err, frame.ErrFrameTooLarge), errors.Is(err, frame.ErrTooManyHeaders),
		errors.Is(err, frame.ErrHeaderTooLong):
		return &clientError{kind: kindLimit, reason: LimitExceeded, msg: err.Error(), cause: err}
	}
	return &clientError{kind: kindProtocol, reason: ProtocolError, msg: err.Error(), cause: err}
}

// asClientError returns err as a *clientError; any other error becomes
// one of kind "other" with err's text, wrapping it.
func asClientError(err error) *clientError {
	var ce *clientError
	if errors.As(err, &ce) {
		return ce
	}
	var se *storeError
	if errors.As(err, &se) {
		return storeErr(err.Error(), err)
	}
	return &clientError{kind: kindOther, reason: ServerError, msg: err.Error(), cause: err}
}

// kindOf is the kind of err ("other" for anything not a *clientError).
func kindOf(err error) errKind {
	var ce *clientError
	if errors.As(err, &ce) {
		return ce.kind
	}
	return kindOther
}
