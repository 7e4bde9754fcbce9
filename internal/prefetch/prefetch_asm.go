//go:build amd64 || arm64

package prefetch

import "unsafe"

// Block prefetches the 448 bytes (seven 64-byte lines) at p, which must be
// the start of a block of at least that size. It never faults: a prefetch
// of an unmapped address is ignored.
//
//go:noescape
func Block(p unsafe.Pointer)
