package web

import (
	"bytes"
	"testing"
)

// The embedded page is whole and self-contained: it talks to /console/api
// and speaks STOMP over WebSocket itself, and loads nothing from elsewhere.
func TestConsoleEmbedded(t *testing.T) {
	for _, want := range []string{"<!doctype html>", "</html>", "/console/api", "new WebSocket(", "CONNECT", "SUBSCRIBE"} {
		if !bytes.Contains(bytes.ToLower(Console), bytes.ToLower([]byte(want))) {
			t.Errorf("console page lacks %q", want)
		}
	}
	page := bytes.ReplaceAll(Console, []byte("http://www.w3.org/2000/svg"), nil) // an XML namespace, not a fetch
	for _, banned := range []string{"http://", "https://", "<script src", "<link rel=\"stylesheet\""} {
		if bytes.Contains(page, []byte(banned)) {
			t.Errorf("console page refers to something outside itself: %q", banned)
		}
	}
}
