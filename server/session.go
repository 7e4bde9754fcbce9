package server

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/stompica/stompica/auth"
	"github.com/stompica/stompica/frame"
	"github.com/stompica/stompica/sublist"
)

const supportedVersions = "1.0,1.1,1.2"

// handle runs one client frame. It returns false when the connection must
// end (after an ERROR, or DISCONNECT).
func (c *conn) handle(f *frame.Frame) bool {
	c.batch.frames++ // counted when the batch is flushed
	c.batch.st = &c.s.stats
	var err error
	if !c.connected {
		switch f.Command {
		case frame.CONNECT, frame.STOMP:
			return c.onConnect(f)
		case frame.DIAG:
			err = c.onDiag(f)
		default:
			err = protocolErr("expected a CONNECT or STOMP frame, got " + f.Command)
		}
	} else {
		switch f.Command {
		case frame.SEND:
			err = c.onSend(f)
		case frame.SUBSCRIBE:
			err = c.onSubscribe(f)
		case frame.UNSUBSCRIBE:
			err = c.onUnsubscribe(f)
		case frame.ACK, frame.NACK:
			err = c.onAck(f, f.Command == frame.NACK)
		case frame.BEGIN, frame.COMMIT, frame.ABORT:
			err = c.onTx(f)
		case frame.DISCONNECT:
			c.sendReceipt(f)
			c.setCloseReason(Disconnect)
			return false
		case frame.DIAG:
			err = c.onDiag(f)
		case frame.CONNECT, frame.STOMP:
			err = protocolErr("already connected")
		default:
			err = protocolErr("unknown command " + strconv.Quote(f.Command))
		}
	}
	if err == errReceiptLater || err == errReceiptSent {
		return true
	}
	if err != nil {
		c.logger().Info("client error", "command", f.Command, "err", err)
		c.fail(err, f.GetString("receipt"))
		return false
	}
	c.sendReceipt(f)
	return true
}

func (c *conn) sendReceipt(f *frame.Frame) {
	if r, ok := f.Get("receipt"); ok {
		c.sendReceiptID(r)
	}
}

// sendReceiptID sends the RECEIPT of a frame whose receipt header is r.
func (c *conn) sendReceiptID(r []byte) {
	// What the frame made the broker send (MESSAGEs its ACK freed credit
	// for) goes out before its RECEIPT.
	c.batch.dispatchPending()
	// The statistics the batch counts so far are in before the RECEIPT
	// can reach the client (a running writer may write it before the
	// batch ends).
	c.batch.count()
	c.sendFrame(frame.New(frame.RECEIPT, "receipt-id", string(r)), &c.batch)
}

// errReceiptSent tells handle that a frame succeeded and that its handler
// has sent its RECEIPT (if it asked for one).
var errReceiptSent = errors.New("receipt sent")

// negotiate picks the highest version both sides speak (STOMP 1.2: no
// accept-version header means 1.0).
func negotiate(accept []byte, ok bool) (frame.Version, bool) {
	if !ok {
		return frame.Version10, true
	}
	best, found := frame.Version10, false
	for _, v := range strings.Split(string(accept), ",") {
		switch strings.TrimSpace(v) {
		case frame.V10:
			found = true
		case frame.V11:
			best, found = max(best, frame.Version11), true
		case frame.V12:
			best, found = frame.Version12, true
		}
	}
	return best, found
}

func (c *conn) onConnect(f *frame.Frame) bool {
	v, ok := negotiate(f.Get("accept-version"))
	if !ok {
		e := frame.New(frame.ERROR, "version", supportedVersions, "content-type", "text/plain",
			"message", "supported protocol versions are "+supportedVersions)
		e.Body = []byte("Supported protocol versions are " + supportedVersions + "\n")
		c.s.stats.countError(kindProtocol)
		c.sendFrame(e, &c.batch)
		c.setCloseReason(ProtocolError)
		return false
	}
	hb, _ := f.Get("heart-beat")
	cx, cy, err := frame.ParseHeartBeat(hb)
	if err != nil {
		c.fail(errBadHeartBeat, f.GetString("receipt"))
		return false
	}
	if err := c.s.checkHost(f.GetString("host")); err != nil {
		c.logger().Info("client error", "command", f.Command, "err", err)
		c.refuseConnect(f, err, err.Error()+"\n")
		return false
	}
	login, err := c.s.authenticate(c.s.ctx, c.credentials(f))
	if err != nil {
		c.refuseConnect(f, err, loginRefusedBody)
		return false
	}
	c.login = login
	c.clientID = f.GetString("client-id")
	c.version = v
	c.parser.Version = v
	c.connected = true
	c.adminConnected(login, v)
	c.s.stats.connected.Add(1)
	c.s.stats.connectedNow.Add(1)

	sx, sy := c.s.opts.HeartBeatSend.Milliseconds(), c.s.opts.HeartBeatRecv.Milliseconds()
	// STOMP 1.2: the server beats every max(sx, cy) when both are non-zero,
	// and expects the client every max(cx, sy).
	if sx > 0 && cy > 0 {
		c.startHeartBeats(time.Duration(max(sx, int64(cy))) * time.Millisecond)
	}
	if cx > 0 && sy > 0 {
		c.hbRecv = time.Duration(float64(time.Duration(max(int64(cx), sy))*time.Millisecond) * c.s.opts.HeartBeatGrace)
	}
	c.nc.SetReadDeadline(time.Time{})
	c.debug("connected", "version", v.String(), "login", login)
	c.sendFrame(frame.New(frame.CONNECTED,
		"version", v.String(),
		"heart-beat", strconv.FormatInt(sx, 10)+","+strconv.FormatInt(sy, 10),
		"server", "stompica/"+Version,
		"session", itoa(c.id),
	), &c.batch)
	return true
}

// sendHeaders are the headers of a SEND that the broker reads, found in
// one pass over the frame (STOMP: the first of a repeated header wins).
type sendHeaders struct {
	dest, tx, receipt       []byte
	hasDest, hasTx, hasRcpt bool
	replyTo                 bool // a reply-to header is present
}

func (h *sendHeaders) read(f *frame.Frame) {
	for i := range f.Headers {
		k, v := f.Headers[i].Key, f.Headers[i].Value
		switch string(k) {
		case "destination":
			if !h.hasDest {
				h.dest, h.hasDest = v, true
			}
		case "transaction":
			if !h.hasTx {
				h.tx, h.hasTx = v, true
			}
		case "receipt":
			if !h.hasRcpt {
				h.receipt, h.hasRcpt = v, true
			}
		case "reply-to":
			h.replyTo = true
		}
	}
}

// onSend publishes a SEND. Without a transaction it sends the frame's
// RECEIPT itself (errReceiptSent), or leaves it to the store's
// confirmation (errReceiptLater).
func (c *conn) onSend(f *frame.Frame) error {
	var h sendHeaders
	h.read(f)
	raw := h.dest
	if !h.hasDest || len(raw) == 0 {
		return protocolErr("SEND frame has no destination header")
	}
	if len(raw) > c.s.opts.MaxDestinationLength {
		return limitErr("destination longer than " + strconv.Itoa(c.s.opts.MaxDestinationLength) + " bytes")
	}
	if strings.HasPrefix(string(raw), "DIAG") {
		return c.onDiag(f)
	}
	dest, err := c.sendDest(raw)
	if err != nil {
		return err
	}
	if err := c.s.authorize(c.login, auth.Write, dest); err != nil {
		return err
	}
	target := dest
	if strings.HasPrefix(target, tempPrefix) {
		target = c.tempName(target)
		c.useTemp()
	}
	if h.replyTo {
		c.replyTo(f)
	}
	msg := c.s.router.newMessageSpare(f, target, time.Time{}, &c.spareQM)
	if h.hasTx {
		tx, err := c.tx(h.tx)
		if err != nil {
			return err
		}
		return c.txAdd(tx, h.tx, txOp{msg: msg})
	}
	// A queue message (see newMessage); once published it may be gone.
	queued := msg.pooled
	var q *queue
	if queued {
		c.fills = true // adds to the memory budget: paused while it is full
		q = c.sendQueue.get(target == c.lastDest)
	}
	x := sendCtx{c: c, receipt: h.receipt}
	q, err = c.s.router.publishTo(msg, &c.batch, &x, q)
	if err != nil {
		return err
	}
	if queued && target == c.lastDest {
		c.sendQueue.q = q
	}
	if x.finish() {
		return errReceiptLater
	}
	if h.hasRcpt {
		c.sendReceiptID(h.receipt)
	}
	return errReceiptSent
}

// sendDest is the destination a SEND's destination header names, refused
// when it is a pattern. The last one is remembered, so that a publisher
// sending to the same destination again and again does not allocate (or
// check) its name each time.
func (c *conn) sendDest(raw []byte) (string, error) {
	if c.lastDest != "" && string(raw) == c.lastRaw {
		return c.lastDest, nil
	}
	name := string(raw)
	dest, err := compatDest(name)
	if err != nil {
		return "", err
	}
	if sublist.IsPattern(dest) {
		return "", protocolErr("cannot SEND to a wildcard destination " + strconv.Quote(dest))
	}
	c.lastRaw, c.lastDest = name, dest
	c.sendQueue = queueRef{}
	return dest, nil
}

// queueRef is the queue a connection's SENDs to one destination go to, so
// that a run of them looks it up (under the router's lock, shared by all
// publishers) once, not once each. A queue deleted meanwhile is still
// right to use (enqueue goes on to its successor) but costs a detour: it
// is looked up again every 256 SENDs (when uses wraps), so a stale one is
// not kept for long.
type queueRef struct {
	q    *queue
	uses uint8
}

// get returns the queue to use (nil: look it up), when ok says that the
// SEND goes to the destination the reference is for.
func (r *queueRef) get(ok bool) *queue {
	if !ok {
		return nil
	}
	if r.uses++; r.uses == 0 {
		r.q = nil
	}
	return r.q
}

func (c *conn) onSubscribe(f *frame.Frame) error {
	dest, ok := f.Get("destination")
	if !ok || len(dest) == 0 {
		return protocolErr("SUBSCRIBE frame has no destination header")
	}
	id, ok := f.Get("id")
	if !ok || len(id) == 0 {
		if c.version >= frame.Version11 {
			return protocolErr("SUBSCRIBE frame has no id header")
		}
		id = dest // STOMP 1.0: the id is optional
	}
	if len(dest) > c.s.opts.MaxDestinationLength {
		return limitErr("destination longer than " + strconv.Itoa(c.s.opts.MaxDestinationLength) + " bytes")
	}
	target, err := compatDest(string(dest))
	if err != nil {
		return err
	}
	if sel, ok := f.Get("selector"); ok && len(strings.TrimSpace(string(sel))) > 0 {
		return errSelector
	}
	if err := c.s.authorize(c.login, auth.Read, target); err != nil {
		// DIAG answers need admin: the operator rule (ops admin #) may
		// subscribe to them without a read rule.
		if !strings.HasPrefix(target, "DIAG") || c.s.authorize(c.login, auth.Admin, "DIAG") != nil {
			return err
		}
	}
	if _, dup := c.subs[string(id)]; dup {
		return protocolErr("subscription id " + strconv.Quote(string(id)) + " is already in use")
	}
	if len(c.subs) >= c.s.opts.MaxSubscriptions {
		return limitErr("too many subscriptions on this connection (max " + strconv.Itoa(c.s.opts.MaxSubscriptions) + ")")
	}
	mode := ackAuto
	if a, ok := f.Get("ack"); ok {
		switch string(a) {
		case "auto":
		case "client":
			mode = ackClient
		case "client-individual":
			mode = ackIndividual
		default:
			return protocolErr("invalid ack mode " + strconv.Quote(string(a)))
		}
	}
	prefetch := c.s.opts.Prefetch
	for _, h := range []string{"prefetch-count", "activemq.prefetchSize"} {
		if v, ok := f.Get(h); ok {
			n, err := strconv.Atoi(string(v))
			if err != nil || n < 0 {
				return protocolErr("invalid " + h + " header")
			}
			if n > 0 {
				prefetch = n
			}
			break
		}
	}
	prefetch = min(prefetch, c.s.opts.MaxUnacked)
	if strings.HasPrefix(target, tempPrefix) {
		target = c.tempName(target)
		c.useTemp()
	}
	follow, err := c.streamSubscription(f, target)
	if err != nil {
		return err
	}
	if follow == nil && !isQueue(target) { // a durable topic subscription reads its own queue
		key, err := c.durableKey(f)
		if err != nil {
			return err
		}
		if key != "" {
			if target, err = c.s.router.durableSubscribe(key, target); err != nil {
				return err
			}
		}
	}
	c.subSeq++
	sub := newSubscription(c, string(id), target, mode, prefetch, c.subSeq)
	if follow != nil {
		sub.follow = follow
		if err := sub.startFollow(); err != nil {
			return err
		}
	}
	if c.subs == nil {
		c.subs = make(map[string]*subscription)
	}
	c.subs[sub.id] = sub
	c.s.router.subscribe(sub, &c.batch)
	return nil
}

func (c *conn) onUnsubscribe(f *frame.Frame) error {
	id, ok := f.Get("id")
	if !ok && c.version == frame.Version10 {
		id, ok = f.Get("destination")
	}
	if !ok {
		return protocolErr("UNSUBSCRIBE frame has no id header")
	}
	key, err := c.durableKey(f) // UNSUBSCRIBE with these headers ends a durable subscription
	if err != nil {
		return err
	}
	sub := c.subs[string(id)]
	if sub == nil && key == "" {
		return protocolErr("no subscription with id " + strconv.Quote(string(id)))
	}
	if sub != nil {
		delete(c.subs, sub.id)
		if c.ackSub == sub {
			c.ackSub = nil
		}
		c.s.router.unsubscribe(sub, &c.batch)
	}
	if key != "" {
		return c.s.router.durableRemove(key)
	}
	return nil
}

// findAck resolves the subscription and message an ACK or NACK names: the
// 1.2 "id" header (the MESSAGE's ack header), or 1.0/1.1 "message-id" with
// an optional "subscription".
func (c *conn) findAck(f *frame.Frame) (*subscription, uint64, error) {
	if id, ok := f.Get("id"); ok && c.version >= frame.Version12 {
		if dash := bytes.IndexByte(id, '-'); dash > 0 {
			idx, ok1 := frame.ParseUint(id[:dash])
			mid, ok2 := frame.ParseUint(id[dash+1:])
			if ok1 && ok2 {
				if sub := c.subByIdx(idx); sub != nil {
					return sub, mid, nil
				}
			}
		}
		return nil, 0, protocolErr("unknown ack id " + strconv.Quote(string(id)))
	}
	mid, ok := f.Get("message-id")
	if !ok {
		if c.version >= frame.Version12 {
			return nil, 0, protocolErr(f.Command + " frame has no id header")
		}
		return nil, 0, protocolErr(f.Command + " frame has no message-id header")
	}
	n, err := strconv.ParseUint(string(mid), 10, 64)
	if err != nil {
		return nil, 0, protocolErr("unknown message-id " + strconv.Quote(string(mid)))
	}
	if sid, ok := f.Get("subscription"); ok {
		if sub := c.subs[string(sid)]; sub != nil && sub.has(n) {
			return sub, n, nil
		}
		return nil, 0, protocolErr("unknown message-id " + strconv.Quote(string(mid)) + " for subscription " + strconv.Quote(string(sid)))
	}
	for _, sub := range c.subs {
		if sub.has(n) {
			return sub, n, nil
		}
	}
	return nil, 0, protocolErr("unknown message-id " + strconv.Quote(string(mid)))
}

// subByIdx is the subscription whose ack ids carry idx, or nil. The one
// found last is remembered (and forgotten when it is removed from c.subs):
// a connection's ACKs usually name the same subscription one after
// another.
func (c *conn) subByIdx(idx uint64) *subscription {
	if sub := c.ackSub; sub != nil && sub.idx == idx {
		return sub
	}
	for _, sub := range c.subs {
		if sub.idx == idx {
			c.ackSub = sub
			return sub
		}
	}
	return nil
}

func (c *conn) onAck(f *frame.Frame, nack bool) error {
	sub, mid, err := c.findAck(f)
	if err != nil {
		return err
	}
	if txID, ok := f.Get("transaction"); ok {
		if !sub.has(mid) {
			return protocolErr("message " + itoa(mid) + " is not awaiting acknowledgement")
		}
		tx, err := c.tx(txID)
		if err != nil {
			return err
		}
		return c.txAdd(tx, txID, txOp{sub: sub, mid: mid, nack: nack})
	}
	// One lookup: ack takes the delivery, or reports that it is not pending.
	ok, err := c.s.router.ack(sub, mid, nack, &c.batch)
	if !ok {
		return protocolErr("message " + itoa(mid) + " is not awaiting acknowledgement")
	}
	return err
}
