package server

import "errors"

// Reload reads the users file, the ACL file and the TLS certificate, key
// and client CA again (those that are configured) without touching a
// connection: new logins and access checks use the new users and ACL, new
// TLS handshakes the new certificate. A file that fails to load keeps its
// old version in force and is logged (warning, with the file and error);
// Reload then returns the errors joined, and the other files are still
// reloaded. Connections already open stay open, logged in as they were.
// The stompica command calls it on SIGHUP.
func (s *Server) Reload() error {
	if s.isClosing() {
		return ErrServerClosed
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	var errs []error
	if err := s.reloadAuth(); err != nil {
		errs = append(errs, err)
	}
	if s.opts.TLSCert != "" || s.opts.TLSKey != "" {
		conf, err := s.tlsConfig()
		if err != nil {
			s.log.Warn("reload: keeping the old TLS certificate", "cert", s.opts.TLSCert, "key", s.opts.TLSKey,
				"client_ca", s.opts.TLSClientCA, "err", err)
			errs = append(errs, err)
		} else {
			s.tlsConf.Store(conf)
			args := []any{"cert", s.opts.TLSCert}
			if leaf := conf.Certificates[0].Leaf; leaf != nil {
				args = append(args, "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
			}
			if s.opts.TLSClientCA != "" {
				args = append(args, "client_ca", s.opts.TLSClientCA)
			}
			s.log.Info("reload: TLS certificate loaded", args...)
		}
	}
	return errors.Join(errs...)
}
