//go:build unix && (!linux || race)

package server

import "syscall"

// sysRead and sysWrite: see rawio_linux.go. Elsewhere, and in the race
// detector's build, the announced system calls (which carry its
// annotations).
func sysRead(fd int, b []byte) (int, error) { return syscall.Read(fd, b) }

func sysWrite(fd int, b []byte) (int, error) { return syscall.Write(fd, b) }
