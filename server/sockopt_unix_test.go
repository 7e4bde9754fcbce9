//go:build unix

package server

import "syscall"

// rcvBufControl sets SO_RCVBUF on a socket before it connects, so the TCP
// window stays small (a slow consumer).
func rcvBufControl(n int) func(network, address string, rc syscall.RawConn) error {
	return func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
		})
		if err != nil {
			return err
		}
		return serr
	}
}
