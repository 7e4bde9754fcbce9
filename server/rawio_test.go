//go:build unix

package server

import (
	"bytes"
	"io"
	"net"
	"syscall"
	"testing"
)

// sysWrite and sysRead on a connected non-blocking TCP socket: a write
// takes what the socket buffer has room for and then reports EAGAIN
// (never blocks), small and large (over rawIOMax) alike, and the peer
// reads back exactly the bytes written, in order; a read with nothing
// there reports EAGAIN.
func TestRawIO(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sv := <-accepted
	if sv == nil {
		t.Fatal("accept failed")
	}
	defer sv.Close()
	raw, err := sv.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := func(f func(fd int)) {
		if err := raw.Control(func(p uintptr) { f(int(p)) }); err != nil {
			t.Fatal(err)
		}
	}

	// Nothing sent yet: the read would block.
	fd(func(fd int) {
		buf := make([]byte, 100)
		if n, err := sysRead(fd, buf); n != -1 || err != syscall.EAGAIN {
			t.Fatalf("read on an empty socket: %d, %v; want -1, EAGAIN", n, err)
		}
	})

	// Write until the socket buffer is full, in small and large pieces.
	var sent bytes.Buffer
	var full bool
	for i := 0; !full && i < 10000; i++ {
		size := 1000
		if i%2 == 1 {
			size = rawIOMax + 1000 // announced (see sysWrite)
		}
		chunk := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		fd(func(fd int) {
			n, err := sysWrite(fd, chunk)
			switch {
			case err == syscall.EAGAIN:
				full = true
			case err != nil:
				t.Fatalf("write: %v", err)
			case n <= 0 || n > len(chunk):
				t.Fatalf("write took %d of %d bytes", n, len(chunk))
			default:
				sent.Write(chunk[:n])
			}
		})
	}
	if !full {
		t.Fatal("the socket buffer never filled: the write is not non-blocking")
	}
	if sent.Len() == 0 {
		t.Fatal("nothing written")
	}
	sv.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(cl)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sent.Bytes()) {
		t.Fatalf("peer read %d bytes, want the %d written, in order", len(got), sent.Len())
	}

	// Sent from the client, read back raw.
	msg := []byte("SEND\ndestination:/queue/a\n\nx\x00")
	if _, err := cl.Write(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	var n int
	waitFor(t, "the client's bytes", func() bool {
		fd(func(fd int) {
			k, err := sysRead(fd, buf[n:])
			if err != nil && err != syscall.EAGAIN {
				t.Fatalf("read: %v", err)
			}
			if k > 0 {
				n += k
			}
		})
		return n >= len(msg)
	})
	if !bytes.Equal(buf[:n], msg) {
		t.Fatalf("read %q, want %q", buf[:n], msg)
	}
}
