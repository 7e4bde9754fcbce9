//go:build unix

package server

import "syscall"

// waitReadable blocks until the socket has data (or EOF, or an error, or
// the read deadline) without a buffer: it peeks one byte and lets the
// runtime poller wait whenever the socket would block.
func (c *conn) waitReadable() error {
	var one [1]byte
	var serr error
	err := c.raw.Read(func(fd uintptr) bool {
		_, _, serr = syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK)
		return serr != syscall.EAGAIN
	})
	return err // on success the following Read reports data, EOF or the socket error
}

// readable reports whether the socket has data (or EOF, or an error) now,
// without waiting and without a buffer; also true when the read deadline
// has passed (the next Read reports it).
func (c *conn) readable() bool {
	var one [1]byte
	ready := true
	err := c.raw.Read(func(fd uintptr) bool {
		_, _, serr := syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ready = serr != syscall.EAGAIN
		return true
	})
	return ready || err != nil
}

// peekSupported says whether an idle connection can wait for data without
// a read buffer (waitReadable).
const peekSupported = true
