package testutil

import (
	"bufio"
	"io"
	"strings"
	"testing"
	"time"
)

func TestReadFrame(t *testing.T) {
	r := bufio.NewReader(strings.NewReader("\n\r\nMESSAGE\nk:1\nk:2\nx:a:b\n\nbody\x00\nRECEIPT\nreceipt-id:7\n\n\x00"))
	cmd, hdr, body, err := ReadFrame(r)
	if err != nil || cmd != "MESSAGE" || body != "body" || len(hdr) != 2 || hdr["k"] != "1" || hdr["x"] != "a:b" {
		t.Fatalf("first frame: %q %v %q %v", cmd, hdr, body, err)
	}
	cmd, hdr, body, err = ReadFrame(r)
	if err != nil || cmd != "RECEIPT" || body != "" || hdr["receipt-id"] != "7" {
		t.Fatalf("second frame: %q %v %q %v", cmd, hdr, body, err)
	}
	if _, _, _, err := ReadFrame(r); err != io.EOF {
		t.Fatalf("at the end: %v, want EOF", err)
	}
}

func TestPoll(t *testing.T) {
	n := 0
	if !Poll(time.Minute, time.Microsecond, func() bool { n++; return n == 3 }) || n != 3 {
		t.Errorf("Poll returned before the third look (%d)", n)
	}
	start := time.Now()
	if Poll(20*time.Millisecond, time.Millisecond, func() bool { return false }) {
		t.Error("Poll of a condition that never holds returned true")
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Errorf("Poll gave up after %v, before its timeout", took)
	}
}
