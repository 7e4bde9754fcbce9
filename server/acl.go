package server

// Authorization glue: SEND needs auth.Write, SUBSCRIBE auth.Read (of the
// destination or pattern), DIAG and the console auth.Admin, as the
// Authorizer (Options.Authorizer, or the ACL file Options.ACLFile, whose
// format package auth describes) decides.

import (
	"strconv"

	"github.com/stompica/stompica/auth"
)

// authorize checks that login may use dest for access. With no Authorizer
// everything is allowed, except that with authentication on a client that
// has not logged in (a DIAG before CONNECT) may do nothing. A denial names
// the login and the destination.
func (s *Server) authorize(login string, access auth.Access, dest string) error {
	if s.authz == nil && s.authn == nil {
		return nil // the default: no lookup on the publish path
	}
	if s.authn != nil && login == "" {
		return accessErr("access denied: " + strconv.Quote(dest) + " needs a login (CONNECT first)")
	}
	if s.authz == nil || s.authz.Authorize(login, access, dest) {
		return nil
	}
	who := "user " + strconv.Quote(login)
	if login == "" {
		who = "an anonymous client"
	}
	switch access {
	case auth.Write:
		return accessErr("access denied: " + who + " may not write to " + strconv.Quote(dest))
	case auth.Read:
		return accessErr("access denied: " + who + " may not read from " + strconv.Quote(dest))
	}
	return accessErr("access denied: " + who + " has no " + access.String() + " access to " + strconv.Quote(dest))
}
