package server

// Access kinds checked by the authorizer.
const (
	accessRead  = "read"  // SUBSCRIBE
	accessWrite = "write" // SEND
	accessAdmin = "admin" // DIAG, console data
)

// authenticate checks a CONNECT's login and passcode. Authentication is off
// by default (anonymous access), as for local development.
func (s *Server) authenticate(login, passcode string) error {
	return nil
}

// authorize checks that login may use dest for access (read, write, admin).
// With no ACL configured everything is allowed.
func (s *Server) authorize(login, access, dest string) error {
	return nil
}
