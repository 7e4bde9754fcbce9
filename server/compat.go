package server

// What clients of other brokers send: RabbitMQ's destinations are mapped to
// ours, and what stompica does not do (selectors, virtual hosts) is refused
// with an ERROR that says so, never silently ignored.

import (
	"net"
	"os"
	"strconv"
	"strings"
)

// RabbitMQ destination prefixes that stompica maps to its own names.
const (
	amqQueuePrefix = "/amq/queue/"          // /amq/queue/NAME = /queue/NAME
	exchangePrefix = "/exchange/"           // /exchange/amq.topic/KEY = /topic/KEY
	amqTopicPrefix = "/exchange/amq.topic/" // the only exchange served
)

// compatDest maps RabbitMQ's names for a queue and a topic to stompica's:
// "/amq/queue/NAME" is "/queue/NAME" and "/exchange/amq.topic/KEY" is
// "/topic/KEY" (KEY may be a pattern on SUBSCRIBE). Other exchanges are
// refused. The mapped name is the destination from then on: ACLs check it,
// and MESSAGE frames carry it (clients tell subscriptions apart by the
// subscription header).
func compatDest(dest string) (string, error) {
	if len(dest) < len("/amq/") || dest[0] != '/' || dest[1] != 'a' && dest[1] != 'e' {
		return dest, nil // the common case, quickly
	}
	if name, ok := strings.CutPrefix(dest, amqQueuePrefix); ok && name != "" {
		return "/queue/" + name, nil
	}
	if key, ok := strings.CutPrefix(dest, amqTopicPrefix); ok && key != "" {
		return "/topic/" + key, nil
	}
	if strings.HasPrefix(dest, exchangePrefix) || strings.HasPrefix(dest, "/amq/") {
		return "", protocolErr("destination " + strconv.Quote(dest) + " is not supported: stompica serves RabbitMQ's " +
			"/exchange/amq.topic/KEY (= /topic/KEY) and /amq/queue/NAME (= /queue/NAME); use /topic/... or /queue/...")
	}
	return dest, nil
}

// errSelector answers a SUBSCRIBE with a selector header (ActiveMQ's and
// RabbitMQ's message filter), which stompica does not evaluate.
var errSelector = protocolErr("selectors are not supported yet: SUBSCRIBE without the selector header " +
	"and filter in the client, or publish to a narrower destination")

// checkHost refuses a CONNECT host header that names a virtual host other
// than the broker's one. It never refuses what clients send by default
// (nothing, "/", or the host they dialled: an IP address, localhost, a DNS
// or container name), so without Options.HostNames only names that cannot
// be a host name are refused, such as RabbitMQ's "/prod" or "my vhost".
// With Options.HostNames, a host name must be one of them, localhost,
// Options.Host or this machine's host name (or "default", which go-stomp
// sends when it cannot tell the address it dialled).
func (s *Server) checkHost(host string) error {
	if host == "" || host == "/" {
		return nil
	}
	name := host
	if h, port, err := net.SplitHostPort(host); err == nil && isDigits(port) {
		name = h
	}
	name = strings.TrimSuffix(strings.Trim(name, "[]"), ".")
	if ip, _, _ := strings.Cut(name, "%"); net.ParseIP(ip) != nil {
		return nil
	}
	if !isHostName(name) {
		return protocolErr("virtual host " + strconv.Quote(host) + " not found: stompica has one virtual host, " +
			`"/"; send host:/ or the broker's host name, or no host header`)
	}
	// go-stomp sends "default" when it cannot tell the address it dialled.
	if len(s.opts.HostNames) == 0 || strings.EqualFold(name, "localhost") || name == "default" || strings.EqualFold(name, s.opts.Host) {
		return nil
	}
	for _, n := range s.opts.HostNames {
		if strings.EqualFold(name, strings.TrimSuffix(n, ".")) {
			return nil
		}
	}
	if hn, err := os.Hostname(); err == nil {
		short, _, _ := strings.Cut(hn, ".")
		if strings.EqualFold(name, hn) || strings.EqualFold(name, short) {
			return nil
		}
	}
	return protocolErr("virtual host " + strconv.Quote(host) + " not found: this broker answers to " +
		strings.Join(s.opts.HostNames, ", ") + " (--host-names), localhost, its host name and IP addresses; " +
		`send host:/ or one of those, or no host header`)
}

// isHostName reports whether s is a syntactically valid DNS or container
// name: labels of letters, digits, '-' and '_' separated by dots.
func isHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
