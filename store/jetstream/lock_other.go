//go:build !unix

package jetstream

import "os"

// lockFile is a no-op where flock is missing: one broker per data dir is
// then the operator's duty.
func lockFile(*os.File) error { return nil }

func unlockFile(*os.File) {}
