//go:build !unix

package server

// waitReadable returns at once where a socket cannot be peeked without a
// buffer (Windows): an idle connection then waits in Read, holding its read
// buffer. Only memory per idle connection differs.
func (c *conn) waitReadable() error { return nil }

// readable reports true: without a buffer-less wait, an idle connection
// waits in Read.
func (c *conn) readable() bool { return true }

// peekSupported says whether an idle connection can wait for data without
// a read buffer (waitReadable).
const peekSupported = false

// writeNow is not used where peekSupported is false (see kick).
func (c *conn) writeNow(b []byte) (int, error) { panic("writeNow: not supported") }

// writeAll is not used where peekSupported is false (see writeLoop).
func (c *conn) writeAll(b []byte) (int, error) { panic("writeAll: not supported") }

// readRaw is not used where peekSupported is false (see read).
func (c *conn) readRaw(wait bool) (int, bool, error) { panic("readRaw: not supported") }
