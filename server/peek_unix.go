//go:build unix

package server

import (
	"errors"
	"io"
	"os"
	"syscall"
)

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

// rawIOMax is the largest read or write made without announcing the
// system call to the scheduler where that is done (see sysRead in
// rawio_linux.go): the largest pooled output buffer (outSizes), which a
// writer goroutine may write whole (a loopback write of it takes a few
// hundred µs at most, during which the goroutine cannot be preempted).
const rawIOMax = 256 << 10

// peekSupported says whether an idle connection can wait for data without
// a read buffer (waitReadable).
const peekSupported = true

// writeNow makes one non-blocking write(2) of b on the plain TCP socket:
// it never waits for the socket to take more. A full socket buffer is not
// an error (n is what it took), and neither is a write deadline that has
// passed: a writer goroutine arms one writeTimeout ahead and leaves it
// armed when it ends, so a connection quiet for longer has one in the
// past, and the poller then refuses the write before making it. That
// output goes to a writer goroutine (see kick), which arms a fresh one.
func (c *conn) writeNow(b []byte) (int, error) {
	var n int
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		n, werr = sysWrite(int(fd), b)
		return true
	})
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, nil // not written: the writer goroutine does it
	}
	if n < 0 {
		n = 0
	}
	if werr == syscall.EAGAIN || werr == syscall.EINTR {
		werr = nil
	}
	if err == nil {
		err = werr
	}
	return n, err
}

// writeAll writes b on the plain TCP socket for a writer goroutine: the
// poller waits whenever the socket buffer is full, until the write
// deadline. It reports how much was written.
func (c *conn) writeAll(b []byte) (int, error) {
	var n int
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		for n < len(b) {
			k, e := sysWrite(int(fd), b[n:])
			if k > 0 {
				n += k
			}
			switch e {
			case nil:
				if k <= 0 {
					werr = io.ErrShortWrite
					return true
				}
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				werr = e
				return true
			}
		}
		return true
	})
	if werr != nil {
		err = os.NewSyscallError("write", werr)
	}
	return n, err
}

// readRaw reads from the plain TCP socket into a read buffer that it takes
// only once the socket has something to read: it gives the buffer back and
// (with wait) lets the runtime poller wait whenever the socket would block,
// so a connection holds no read buffer while it waits. Without wait it
// returns again when nothing could be read at once. End of stream is io.EOF.
func (c *conn) readRaw(wait bool) (n int, again bool, err error) {
	var rerr error
	err = c.raw.Read(func(fd uintptr) bool {
		c.getReadBuf()
		for {
			n, rerr = sysRead(int(fd), c.rbuf[c.rlen:])
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			n, rerr = 0, nil
			c.releaseReadBuf()
			again = true
			return !wait
		}
		again = false
		return true
	})
	if err != nil || again {
		return 0, again, err
	}
	if rerr != nil {
		return 0, false, os.NewSyscallError("read", rerr)
	}
	if n == 0 {
		return 0, false, io.EOF
	}
	return n, false, nil
}
