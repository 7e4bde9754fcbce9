package server

import (
	"fmt"
	"net/http"
)

// httpHandler serves HTTP on the STOMP port: a WebSocket upgrade on any
// path, /healthz, and a short page saying what the port serves.
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "stompica %s: a STOMP 1.0/1.1/1.2 message broker.\n\n"+
			"This port serves raw STOMP over TCP and STOMP over WebSocket\n"+
			"(ws://HOST:PORT/ws or /stomp; subprotocols v12.stomp, v11.stomp, v10.stomp).\n", Version)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWebSocketUpgrade(r) {
			s.serveWebSocket(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}
