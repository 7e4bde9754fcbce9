//go:build linux

package server

import (
	"syscall"
	"unsafe"
)

// sysRead and sysWrite are read(2) and write(2) on a non-blocking socket,
// made without telling the scheduler that the goroutine enters a system
// call (syscall.RawSyscall): such a call never blocks, it only runs the
// kernel's socket code (a loopback write runs the receiver's TCP path too,
// often longer than the 20 µs after which the runtime's monitor thread
// hands a P that is in a system call to another thread). Announced, that
// hand-off wakes a thread (futex, context switch) and keeps the monitor
// polling every 20 µs for a while; raw, the P stays with the goroutine,
// whose work the kernel is doing anyway. The race detector's build makes
// the same raw calls, so that its tests run the code that ships: the
// bytes the kernel writes or reads are not annotated, which can hide a
// race on a read buffer, never report a false one. A call on more than rawIOMax bytes (a large frame, a
// writer's backlog) is announced: it may take long enough that the P is
// better handed to another thread meanwhile.
func sysRead(fd int, b []byte) (int, error) {
	if len(b) > rawIOMax {
		return syscall.Read(fd, b)
	}
	return rawIO(syscall.SYS_READ, fd, b)
}

func sysWrite(fd int, b []byte) (int, error) {
	if len(b) > rawIOMax {
		return syscall.Write(fd, b)
	}
	return rawIO(syscall.SYS_WRITE, fd, b)
}

// rawIO is read(2) or write(2) (trap) of b on fd, unannounced.
func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}
