package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/stompica/stompica/auth"
)

// runPasswd implements "stompica passwd [--cost N] LOGIN": it reads a
// password (on a terminal without echo, twice; otherwise the first line of
// standard input) and prints the users-file line "LOGIN:$2a$..." (a bcrypt
// hash) to standard output.
func runPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stompica passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cost := fs.Int("cost", 12, "bcrypt cost, 4..31; each step doubles the time a login takes to check")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: stompica passwd [--cost N] LOGIN [< password-file]\n\n"+
			"Reads a password (on a terminal: typed twice and not shown; otherwise the first\n"+
			"line of standard input) and prints the line 'LOGIN:bcrypt-hash' to append to the\n"+
			"users file (--users).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
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
	password, err := readPassword(stdin, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "stompica passwd: reading the password:", err)
		return 1
	}
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

// readPassword reads the password: on a terminal without echo, asked
// twice; otherwise the first line of stdin (a pipe or a file).
func readPassword(stdin io.Reader, prompt io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "Password (not shown): ")
		first, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil || len(first) == 0 {
			return "", err
		}
		fmt.Fprint(prompt, "Again: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		if string(again) != string(first) {
			return "", errors.New("the two passwords differ")
		}
		return string(first), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"), nil
}
