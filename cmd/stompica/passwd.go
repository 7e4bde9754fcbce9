package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"stompica/auth"
)

// runPasswd implements "stompica passwd [--cost N] LOGIN": it reads a
// password from the first line of standard input and prints the users-file
// line "LOGIN:$2a$..." (a bcrypt hash) to standard output.
func runPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stompica passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cost := fs.Int("cost", 12, "bcrypt cost, 4..31; each step doubles the time a login takes to check")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: stompica passwd [--cost N] LOGIN < password-file\n\n"+
			"Reads a password from the first line of standard input and prints the line\n"+
			"'LOGIN:bcrypt-hash' to append to the users file (--users).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	login := fs.Arg(0)
	if err := auth.CheckLogin(login); err != nil {
		fmt.Fprintln(stderr, "stompica passwd:", err)
		return 2
	}
	if f, ok := stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(stderr, "Password (shown as you type): ")
		}
	}
	password, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(stderr, "stompica passwd: reading the password:", err)
		return 1
	}
	password = strings.TrimSuffix(strings.TrimSuffix(password, "\n"), "\r")
	if password == "" {
		fmt.Fprintln(stderr, "stompica passwd: empty password (give it on the first line of standard input)")
		return 1
	}
	line, err := auth.UsersFileLine(login, []byte(password), *cost)
	if err != nil {
		fmt.Fprintln(stderr, "stompica passwd:", err)
		return 1
	}
	fmt.Fprintln(stdout, line)
	return 0
}
