// Package e2e holds black-box tests of the stompica binary. TestMain builds
// ./cmd/stompica once; each test starts its own broker on a random loopback
// port and drives it with third-party clients: Debian's python3-stomp (the
// scripts in python/, run with /usr/bin/python3) and
// github.com/go-stomp/stomp/v3. `make test` installs python3-stomp.
package e2e
