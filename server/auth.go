package server

// authenticate checks a CONNECT's login and passcode. Authentication is off
// by default (anonymous access), as for local development.
func (s *Server) authenticate(login, passcode string) error {
	return nil
}
