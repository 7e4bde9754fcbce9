package jetstream

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// natsLogger passes the embedded server's logs to the broker's: notices
// and debug at debug level, warnings and errors as such.
type natsLogger struct {
	log *slog.Logger

	mu   sync.Mutex
	last string // the last error, for a failed start
}

func (l *natsLogger) Noticef(format string, v ...any) {
	l.log.Debug("nats: " + fmt.Sprintf(format, v...))
}

func (l *natsLogger) Debugf(format string, v ...any) {
	l.log.Debug("nats: " + fmt.Sprintf(format, v...))
}

func (l *natsLogger) Tracef(format string, v ...any) {
	l.log.Debug("nats: " + fmt.Sprintf(format, v...))
}

func (l *natsLogger) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(msg, "Maximum payloads over") {
		// The broker's frame bound sets max_payload; said at debug.
		l.log.Debug("nats: " + msg)
		return
	}
	l.log.Warn("nats: " + msg)
}

func (l *natsLogger) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	l.last = msg
	l.mu.Unlock()
	l.log.Error("nats: " + msg)
}

func (l *natsLogger) Fatalf(format string, v ...any) {
	l.Errorf(format, v...)
}

func (l *natsLogger) lastError() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == "" {
		return "no error logged"
	}
	return l.last
}
