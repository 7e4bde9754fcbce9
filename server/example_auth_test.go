package server_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/stompica/stompica/auth"
	"github.com/stompica/stompica/server"
	"github.com/stompica/stompica/sublist"
)

// reverseAuth is an Authenticator that accepts a passcode that is the
// login spelled backwards. A real one would ask LDAP, check a JWT or look
// in a database.
type reverseAuth struct{}

func (reverseAuth) Authenticate(ctx context.Context, c auth.Credentials) (string, error) {
	r := []rune(c.Login)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	if c.Login == "" || c.Passcode != string(r) {
		return "", auth.ErrRefused
	}
	return c.Login, nil
}

// ownQueues is an Authorizer that gives each user the queues under
// /queue/LOGIN. to read and write, and nothing else.
type ownQueues struct{}

func (ownQueues) Authorize(login string, a auth.Access, dest string) bool {
	// dest may be a SUBSCRIBE pattern: Covers is true only when every
	// destination it matches is under the user's own prefix.
	return a != auth.Admin && sublist.Covers("/queue/"+login+".>", dest)
}

// unescape undoes STOMP 1.2 header escaping.
var unescape = strings.NewReplacer(`\c`, ":", `\n`, "\n", `\r`, "\r", `\\`, `\`)

// exchangeFrame sends one STOMP frame on nc and prints the command and the
// message header of the answer.
func exchangeFrame(nc net.Conn, r *bufio.Reader, who, frame string) {
	nc.Write([]byte(frame + "\x00"))
	answer, err := r.ReadString(0)
	if err != nil {
		fmt.Println(who+":", err)
		return
	}
	cmd, headers, _ := strings.Cut(answer, "\n")
	fmt.Print(who + ": " + cmd)
	for h := range strings.SplitSeq(headers, "\n") {
		if msg, ok := strings.CutPrefix(h, "message:"); ok {
			fmt.Print(" ", unescape.Replace(msg))
		}
	}
	fmt.Println()
}

// An embedder's own Authenticator and Authorizer, in place of the users
// and ACL files.
func ExampleOptions_authenticator() {
	srv, err := server.New(&server.Options{
		Host:          "127.0.0.1",
		Port:          -1, // a free port
		Authenticator: reverseAuth{},
		Authorizer:    ownQueues{},
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	if err := srv.Start(); err != nil {
		panic(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	login := func(who, passcode string) (net.Conn, *bufio.Reader) {
		nc, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			panic(err)
		}
		r := bufio.NewReader(nc)
		exchangeFrame(nc, r, who, "CONNECT\naccept-version:1.2\nheart-beat:0,0\nlogin:"+who+"\npasscode:"+passcode+"\n\n")
		return nc, r
	}

	mallory, _ := login("mallory", "letmein") // refused: the broker answers and closes
	mallory.Close()

	alice, r := login("alice", "ecila")
	defer alice.Close()
	exchangeFrame(alice, r, "alice", "SEND\ndestination:/queue/alice.inbox\nreceipt:1\n\nhello")
	exchangeFrame(alice, r, "alice", "SEND\ndestination:/queue/bob.inbox\nreceipt:2\n\nhello")

	// Output:
	// mallory: ERROR access refused
	// alice: CONNECTED
	// alice: RECEIPT
	// alice: ERROR access denied: user "alice" may not write to "/queue/bob.inbox"
}
