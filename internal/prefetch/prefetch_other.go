//go:build !amd64 && !arm64

package prefetch

import "unsafe"

// Block does nothing on this architecture (see the amd64 version).
func Block(p unsafe.Pointer) {}
