package main

import (
	"fmt"
	"io"
)

// runPasswd implements "stompica passwd LOGIN": it reads a password from
// standard input and prints a users-file line.
func runPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "stompica passwd: not implemented yet")
	return 2
}
