package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/stompica/stompica/server"
)

// version and commit are stamped by the release build (the Makefile's
// GO_LDFLAGS: -X main.version=... -X main.commit=...). A plain `go build`
// leaves them empty: the version is then server.Version and the commit
// "unknown".
var (
	version string
	commit  string
)

// buildVersion is the version this binary was built as.
func buildVersion() string {
	if version != "" {
		return version
	}
	return server.Version
}

// buildCommit is the commit this binary was built from, or "unknown".
func buildCommit() string {
	if commit != "" {
		return commit
	}
	return "unknown"
}

// subcommand runs the subcommands other than the broker itself: `version`
// (also `--version` and `-version` as the first argument) and `healthcheck`.
// ok is false when args do not start with one of them.
func subcommand(args []string, stdout, stderr io.Writer) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case "version", "--version", "-version":
		return runVersion(args[1:], stdout, stderr), true
	case "healthcheck":
		return runHealthcheck(args[1:], stdout, stderr), true
	}
	return 0, false
}

// runVersion prints "stompica VERSION (commit COMMIT, GOVERSION OS/ARCH)".
func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "stompica version: unexpected argument %q\n", args[0])
		return 2
	}
	fmt.Fprintf(stdout, "stompica %s (commit %s, %s %s/%s)\n",
		buildVersion(), buildCommit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}
