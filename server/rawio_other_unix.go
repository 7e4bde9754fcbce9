//go:build unix && !linux

package server

import "syscall"

// sysRead and sysWrite: see rawio_linux.go. Elsewhere, the announced
// system calls.
func sysRead(fd int, b []byte) (int, error) { return syscall.Read(fd, b) }

func sysWrite(fd int, b []byte) (int, error) { return syscall.Write(fd, b) }
