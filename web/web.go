// Package web holds the operator console: one self-contained HTML page
// (inline CSS and JavaScript, no external resources, no build step) that the
// server embeds in the binary and serves under /console. The page polls
// /console/api for the broker's figures and has a small STOMP-over-WebSocket
// client of its own to subscribe and publish from the browser.
package web

import _ "embed"

// Console is the console page (console.html).
//
//go:embed console.html
var Console []byte
