package prefetch

import (
	"testing"
	"unsafe"
)

// TestBlock prefetches a block and checks that its contents are left as
// they were (a prefetch only moves memory into the cache).
func TestBlock(t *testing.T) {
	b := make([]byte, 448)
	for i := range b {
		b[i] = byte(i)
	}
	Block(unsafe.Pointer(&b[0]))
	for i := range b {
		if b[i] != byte(i) {
			t.Fatalf("byte %d is %d after the prefetch, want %d", i, b[i], byte(i))
		}
	}
}
