//go:build !unix

package server

import "syscall"

// rcvBufControl is a no-op where SO_RCVBUF cannot be set portably.
func rcvBufControl(int) func(network, address string, rc syscall.RawConn) error { return nil }
