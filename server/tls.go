package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// The TLS listener's configuration: checked and loaded at Start, loaded
// again by Reload (reload.go).

// checkTLS refuses TLS options that cannot work together, naming the
// missing one by its flag and its Options field.
func (o *Options) checkTLS() error {
	switch {
	case o.TLSKey != "" && o.TLSCert == "":
		return errors.New("stompica: --tls-key (Options.TLSKey) is set without --tls-cert (Options.TLSCert): give the certificate too")
	case o.TLSCert != "" && o.TLSKey == "":
		return errors.New("stompica: --tls-cert (Options.TLSCert) is set without --tls-key (Options.TLSKey): give the private key too")
	case o.TLSClientCA != "" && o.TLSCert == "":
		return errors.New("stompica: --tls-client-ca (Options.TLSClientCA) needs a TLS port: --tls-cert and --tls-key (Options.TLSCert, TLSKey) are missing")
	}
	return nil
}

// tlsConfig loads the certificate: TLS 1.2 at least, Go's modern defaults,
// and optional client certificate verification. Start and Reload call it.
// An error names the file at fault: the certificate, the key or the CA.
func (s *Server) tlsConfig() (*tls.Config, error) {
	certPEM, err := os.ReadFile(s.opts.TLSCert)
	if err != nil {
		return nil, fmt.Errorf("stompica: TLS certificate (--tls-cert): %w", err)
	}
	keyPEM, err := os.ReadFile(s.opts.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("stompica: TLS private key (--tls-key): %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("stompica: TLS certificate %s and key %s: %w", s.opts.TLSCert, s.opts.TLSKey, err)
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if s.opts.TLSClientCA != "" {
		pem, err := os.ReadFile(s.opts.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("stompica: TLS client CA (--tls-client-ca): %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("stompica: TLS client CA %s: no certificates", s.opts.TLSClientCA)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

// listenerTLSConfig loads the certificate (when one is configured; nil
// otherwise) and returns the TLS listener's configuration: every handshake
// takes the configuration loaded last, so Reload changes the certificate
// (and client CA) of new connections.
func (s *Server) listenerTLSConfig() (*tls.Config, error) {
	if s.opts.TLSCert == "" && s.opts.TLSKey == "" {
		return nil, nil
	}
	conf, err := s.tlsConfig()
	if err != nil {
		return nil, err
	}
	s.tlsConf.Store(conf)
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.tlsConf.Load(), nil
		},
	}, nil
}
