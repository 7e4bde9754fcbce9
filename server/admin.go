package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"slices"
	"sync"
	"time"

	"github.com/stompica/stompica/frame"
)

// What the management API (api.go) needs from the broker's core: each
// connection's session figures, the recent-errors ring, and a short memory
// of HTTP logins. The hooks the core calls are one line each:
// conn.adminConnected (CONNECT accepted), conn.adminSub (SUBSCRIBE and
// UNSUBSCRIBE) and conn.recordErrorLocked (an ERROR frame sent).

// adminState is the Server's share of the management API.
type adminState struct {
	errors    errorRing
	httpLogin loginCache
}

// connAdmin is what the management API shows of a connection's session,
// guarded by conn.mu (the read goroutine owns conn.login and conn.subs;
// this copy is for other goroutines).
type connAdmin struct {
	login string
	// subs are the connection's subscriptions. Appends may fill spare
	// capacity (readers hold a shorter length); a removal builds a new
	// array, so a reader may range over a copy of the slice header taken
	// under conn.mu.
	subs    []*subscription
	since   int64 // when CONNECT was accepted (Unix ms); 0 before
	version frame.Version
}

// adminConnected records the session's login and version once CONNECT is
// accepted. Read goroutine.
func (c *conn) adminConnected(login string, v frame.Version) {
	c.mu.Lock()
	c.adm.login, c.adm.version, c.adm.since = login, v, time.Now().UnixMilli()
	c.mu.Unlock()
}

// adminSub records a subscription that begins (on) or ends.
func (c *conn) adminSub(sub *subscription, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if on {
		c.adm.subs = append(c.adm.subs, sub)
		return
	}
	if i := slices.Index(c.adm.subs, sub); i >= 0 {
		c.adm.subs = slices.Delete(slices.Clone(c.adm.subs), i, i+1)
	}
}

// transport names how the client reaches the broker: "tcp" or "ws".
func (c *conn) transport() string {
	if c.ws != nil {
		return "ws"
	}
	return "tcp"
}

// isTLS reports whether the connection came through the TLS port.
func (c *conn) isTLS() bool {
	nc := c.nc
	if pc, ok := nc.(*prefixConn); ok {
		nc = pc.Conn
	}
	_, ok := nc.(*tls.Conn)
	return ok
}

// connInfo is one connection as the management API lists it.
type connInfo struct {
	ID          uint64     `json:"id"`
	Peer        string     `json:"peer"`
	Login       string     `json:"login"`
	Transport   string     `json:"transport"` // tcp or ws
	TLS         bool       `json:"tls"`
	Version     string     `json:"version,omitempty"`      // STOMP version; empty before CONNECT
	ConnectedAt *time.Time `json:"connected_at,omitempty"` // when CONNECT was accepted
	// Subscriptions is how many subscriptions the connection has.
	Subscriptions int `json:"subscriptions"`
	// PendingBytes is output queued for the client and not yet written.
	PendingBytes int `json:"pending_bytes"`
	// Unacked counts messages delivered and not yet ACKed or NACKed; Held
	// topic messages waiting for prefetch credit.
	Unacked int `json:"unacked"`
	Held    int `json:"held"`
	// SubscriptionList details each subscription (one connection only).
	SubscriptionList []subInfo `json:"subscription_list,omitempty"`
}

// subInfo is one subscription of a connection.
type subInfo struct {
	ID          string `json:"id"`
	Destination string `json:"destination"`
	Ack         string `json:"ack"`
	Prefetch    int    `json:"prefetch,omitempty"` // client ack modes only
	Unacked     int    `json:"unacked"`
	Held        int    `json:"held"`
}

var ackModeNames = [...]string{ackAuto: "auto", ackClient: "client", ackIndividual: "client-individual"}

// info reads the connection's figures; withSubs adds each subscription.
// It takes conn.mu, then each subscription's mu, one at a time.
func (c *conn) info(withSubs bool) connInfo {
	ci := connInfo{ID: c.id, Peer: c.remote, Transport: c.transport(), TLS: c.isTLS()}
	c.mu.Lock()
	adm := c.adm
	ci.PendingBytes = c.heldLocked()
	c.mu.Unlock()
	ci.Login = adm.login
	if adm.since != 0 {
		ci.Version = adm.version.String()
		t := time.UnixMilli(adm.since).UTC()
		ci.ConnectedAt = &t
	}
	ci.Subscriptions = len(adm.subs)
	if withSubs {
		ci.SubscriptionList = make([]subInfo, 0, len(adm.subs))
	}
	for _, sub := range adm.subs {
		sub.mu.Lock()
		unacked, held := sub.unacked.len(), sub.held.Len()
		sub.mu.Unlock()
		ci.Unacked += unacked
		ci.Held += held
		if withSubs {
			si := subInfo{ID: sub.id, Destination: sub.dest, Ack: ackModeNames[sub.ack], Unacked: unacked, Held: held}
			if sub.ack != ackAuto {
				si.Prefetch = sub.prefetch
			}
			ci.SubscriptionList = append(ci.SubscriptionList, si)
		}
	}
	return ci
}

// connList returns the open connections (a copy, taken under s.mu).
func (s *Server) connList() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

// connByID returns the open connection id, or nil.
func (s *Server) connByID(id uint64) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.id == id {
			return c
		}
	}
	return nil
}

// recentErrorsCap bounds the recent-errors ring.
const recentErrorsCap = 100

// recentErrorMax bounds one recorded ERROR message, in bytes.
const recentErrorMax = 512

// recentError is one ERROR frame the broker sent before closing a
// connection.
type recentError struct {
	Time      time.Time `json:"time"`
	Conn      uint64    `json:"conn"`
	Peer      string    `json:"peer"`
	Login     string    `json:"login"`
	Transport string    `json:"transport"`
	Message   string    `json:"message"`
}

// errorRing keeps the last recentErrorsCap ERRORs.
type errorRing struct {
	mu    sync.Mutex
	buf   []recentError // grows to recentErrorsCap, then wraps
	next  int           // where the next one goes once full
	total uint64        // ever recorded
}

// recordErrorLocked records the ERROR message msg the connection is being
// closed with. conn.mu must be held (it guards the login).
func (c *conn) recordErrorLocked(msg string) {
	if len(msg) > recentErrorMax {
		msg = msg[:recentErrorMax]
	}
	c.s.admin.errors.add(recentError{
		Time: time.Now().UTC(), Conn: c.id, Peer: c.remote, Login: c.adm.login,
		Transport: c.transport(), Message: msg,
	})
}

func (r *errorRing) add(e recentError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	if len(r.buf) < recentErrorsCap {
		r.buf = append(r.buf, e)
		return
	}
	r.buf[r.next] = e
	r.next = (r.next + 1) % recentErrorsCap
}

// list returns the recorded errors, newest first, and how many were ever
// recorded.
func (r *errorRing) list() ([]recentError, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]recentError, 0, len(r.buf))
	for i := len(r.buf) - 1; i >= 0; i-- {
		out = append(out, r.buf[(r.next+i)%len(r.buf)])
	}
	return out, r.total
}

// loginCacheTTL is how long a successful HTTP login is remembered: the
// console polls every second, and each answer would otherwise cost a
// bcrypt check (tens of milliseconds of CPU).
const loginCacheTTL = 10 * time.Second

// loginCacheMax bounds the remembered HTTP logins.
const loginCacheMax = 256

// loginCache remembers successful HTTP basic-auth logins for loginCacheTTL,
// keyed by an HMAC (with a per-process random key) of the client's IP
// address, the login and the password, so no password is kept and an
// Authenticator that looks at the address is asked again for another one.
// Server.Reload forgets them all.
type loginCache struct {
	mu  sync.Mutex
	key []byte
	m   map[[sha256.Size]byte]cachedLogin
}

type cachedLogin struct {
	login   string
	expires time.Time
}

func (lc *loginCache) sum(ip, user, pass string) [sha256.Size]byte {
	if lc.key == nil {
		lc.key = make([]byte, 32)
		rand.Read(lc.key) //nolint:errcheck // crypto/rand.Read never fails
	}
	h := hmac.New(sha256.New, lc.key)
	h.Write([]byte(ip))
	h.Write([]byte{0})
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(pass))
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// get returns the login remembered for user and pass from ip.
func (lc *loginCache) get(ip, user, pass string) (string, bool) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.m == nil {
		return "", false
	}
	k := lc.sum(ip, user, pass)
	e, ok := lc.m[k]
	if !ok || time.Now().After(e.expires) {
		delete(lc.m, k)
		return "", false
	}
	return e.login, true
}

// put remembers that user and pass from ip logged in as login.
func (lc *loginCache) put(ip, user, pass, login string) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	now := time.Now()
	if lc.m == nil {
		lc.m = make(map[[sha256.Size]byte]cachedLogin)
	}
	if len(lc.m) >= loginCacheMax {
		for k, e := range lc.m {
			if now.After(e.expires) {
				delete(lc.m, k)
			}
		}
		if len(lc.m) >= loginCacheMax {
			clear(lc.m)
		}
	}
	lc.m[lc.sum(ip, user, pass)] = cachedLogin{login: login, expires: now.Add(loginCacheTTL)}
}

// forget drops every remembered login (after a reload of the users).
func (lc *loginCache) forget() {
	lc.mu.Lock()
	clear(lc.m)
	lc.mu.Unlock()
}
