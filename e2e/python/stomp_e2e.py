#!/usr/bin/python3
"""End-to-end scenarios for stompica driven by Debian's python3-stomp (stomp.py).

Run with Debian's interpreter (/usr/bin/python3), which sees python3-stomp:

    /usr/bin/python3 e2e/python/stomp_e2e.py SCENARIO --host 127.0.0.1 --port PORT

Each scenario prints one line "PASS <scenario>: ..." and exits 0, or prints
"FAIL <scenario>: <reason>" and exits 1. Every wait is bounded: events are
awaited with timeouts (receipts, messages, CONNECTED) and a watchdog ends the
process if a scenario as a whole takes too long. The only deliberate idle time
is the heart-beat scenario's, where idleness is what is being tested.
"""

import argparse
import os
import random
import sys
import threading
import time
import traceback
import uuid

try:
    import stomp
except ImportError as e:  # pragma: no cover - reported by the Go test
    print("FAIL import: python3-stomp is missing (%s); `make test` installs it" % e)
    sys.exit(2)

WAIT = 10.0  # seconds to wait for any single event
WATCHDOG = 45.0  # seconds for a whole scenario

ARGS = None
SCENARIO = "?"


class Failure(Exception):
    pass


def check(cond, msg, *a):
    if not cond:
        raise Failure(msg % a if a else msg)


def uid():
    return uuid.uuid4().hex[:10]


class Collector(stomp.ConnectionListener):
    """Records everything a connection receives, with waitable conditions."""

    def __init__(self, name):
        self.name = name
        self.cond = threading.Condition()
        self.connected = None  # CONNECTED frame
        self.messages = []  # MESSAGE frames in arrival order
        self.receipts = set()  # receipt-ids seen
        self.errors = []  # ERROR frames
        self.disconnected = False
        self.heartbeats_in = 0
        self.heartbeats_out = 0
        self.heartbeat_timeout = False
        self.on_message_hook = None

    def _notify(self):
        self.cond.notify_all()

    def on_connected(self, frame):
        with self.cond:
            self.connected = frame
            self._notify()

    def on_message(self, frame):
        with self.cond:
            self.messages.append(frame)
            self._notify()
        if self.on_message_hook is not None:
            self.on_message_hook(frame)

    def on_receipt(self, frame):
        with self.cond:
            self.receipts.add(frame.headers.get("receipt-id"))
            self._notify()

    def on_error(self, frame):
        with self.cond:
            self.errors.append(frame)
            self._notify()

    def on_disconnected(self):
        with self.cond:
            self.disconnected = True
            self._notify()

    def on_heartbeat(self):
        with self.cond:
            self.heartbeats_in += 1

    def on_send(self, frame):
        if frame.cmd is None:  # the library's heart-beat thread sends an EOL "frame"
            with self.cond:
                self.heartbeats_out += 1

    def on_heartbeat_timeout(self):
        with self.cond:
            self.heartbeat_timeout = True
            self._notify()

    def wait_for(self, pred, what, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred():
                if self.errors:
                    raise Failure("%s: ERROR frame while waiting for %s: headers=%r body=%r" % (
                        self.name, what, self.errors[0].headers, self.errors[0].body))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure("%s: timed out after %.1fs waiting for %s" % (self.name, timeout, what))
                self.cond.wait(left)

    def wait_receipt(self, rid, timeout=WAIT):
        self.wait_for(lambda: rid in self.receipts, "RECEIPT receipt-id:%s" % rid, timeout)

    def wait_messages(self, n, timeout=WAIT):
        self.wait_for(lambda: len(self.messages) >= n, "%d MESSAGE frame(s) (have %d)" % (n, len(self.messages)),
                      timeout)

    def snapshot(self):
        with self.cond:
            return list(self.messages)

    def assert_no_errors(self):
        with self.cond:
            check(not self.errors, "%s: unexpected ERROR frame: headers=%r body=%r", self.name,
                  self.errors[0].headers if self.errors else None, self.errors[0].body if self.errors else None)


def connect(name, cls=None, heartbeats=None, **kw):
    """Connects with stomp.py, waits (bounded) for CONNECTED, returns (conn, collector)."""
    cls = cls or stomp.Connection
    opts = dict(kw)
    if heartbeats is not None:
        opts["heartbeats"] = heartbeats
    if ARGS.vhost and cls is not stomp.Connection10:
        opts["vhost"] = ARGS.vhost
    conn = cls([(ARGS.host, ARGS.port)], reconnect_attempts_max=1, **opts)
    if heartbeats is not None:
        tolerate_coalesced_heartbeats(conn)
    col = Collector(name)
    conn.set_listener("collector", col)
    login = {}
    if ARGS.login:
        login = {"username": ARGS.login, "passcode": ARGS.passcode}
    conn.connect(wait=False, **login)
    col.wait_for(lambda: col.connected is not None, "CONNECTED")
    return conn, col


def tolerate_coalesced_heartbeats(conn):
    """Works around a stomp.py 8.0 receive-side limitation.

    stomp.py takes a socket read as a heart-beat only when it is exactly one EOL.
    When the reader thread falls behind (a loaded CI machine), two beats arrive
    in one read ("\n\n"); stomp.py then buffers them as the start of a frame,
    stops seeing beats and in the end declares a heart-beat timeout, although
    the broker beat on time. Treat any read made only of EOLs as heart-beats.
    """
    def is_eol(c):
        return len(c) > 0 and c.strip(b"\r\n") == b""
    t = conn.transport
    if hasattr(t, "_BaseTransport__is_eol"):
        t._BaseTransport__is_eol = is_eol


def disconnect(conn, col, rid=None):
    """Sends DISCONNECT with a receipt and waits (bounded) for the RECEIPT."""
    rid = rid or "disc-" + uid()
    t = threading.Thread(target=lambda: conn.disconnect(receipt=rid), daemon=True)
    t.start()
    col.wait_receipt(rid)
    t.join(WAIT)
    check(not t.is_alive(), "%s: disconnect() did not return after the DISCONNECT receipt", col.name)


def subscribe(conn, col, dest, sid, ack="auto", **headers):
    """SUBSCRIBE with a receipt, so the subscription is known to be active before anything is sent."""
    rid = "sub-" + uid()
    conn.subscribe(dest, id=sid, ack=ack, receipt=rid, **headers)
    col.wait_receipt(rid)


def send_sync(conn, col, dest, body, **headers):
    rid = "send-" + uid()
    conn.send(dest, body, receipt=rid, **headers)
    col.wait_receipt(rid)


def ack_id(frame):
    """The id to ACK/NACK a 1.2 MESSAGE with (its ack header)."""
    h = frame.headers
    check("ack" in h, "STOMP 1.2 MESSAGE on a client-ack subscription has no ack header: %r", h)
    return h["ack"]


# ---------------------------------------------------------------------------
# scenarios


def first_delivery(prefix, body):
    """A producer sends body to a fresh queue (prefix + a unique id) that a client-individual consumer reads;
    returns the queue, both connections and the message delivered."""
    dest = prefix + uid()
    prod, pcol = connect("producer", stomp.Connection12)
    c, col = connect("c1", stomp.Connection12)
    subscribe(c, col, dest, "q-1", ack="client-individual")
    send_sync(prod, pcol, dest, body)
    col.wait_messages(1)
    return dest, prod, pcol, c, col, col.snapshot()[0]


def with_receipt(col, prefix, send):
    """Calls send with a fresh receipt id, then waits for that RECEIPT."""
    rid = prefix + "-" + uid()
    send(rid)
    col.wait_receipt(rid)


def expect_redelivered(dest, body):
    """A new client-individual consumer of dest gets body again, flagged redelivered:true."""
    c, col = connect("c2", stomp.Connection12)
    subscribe(c, col, dest, "q-2", ack="client-individual")
    col.wait_messages(1)
    m = col.snapshot()[0]
    check(m.body == body, "the next consumer got %r, want the redelivered %r", m.body, body)
    check(m.headers.get("redelivered") == "true", "redelivery lacks redelivered:true: %r", m.headers)
    return c, col, m


def expect_drained(prod, pcol, dest, why):
    """A new consumer of dest gets only a fence sent now: the queue held nothing else. Ends prod's connection."""
    c, col = connect("drained", stomp.Connection12)
    subscribe(c, col, dest, "q-drained", ack="auto")
    send_sync(prod, pcol, dest, "fence")
    col.wait_messages(1)
    got = [m.body for m in col.snapshot()]
    check(got[0] == "fence", why + ", the next consumer got %r", got)
    disconnect(c, col)
    disconnect(prod, pcol)


def scenario_pubsub():
    n = 20
    dest = "/topic/e2e.pubsub." + uid()
    pub, pcol = connect("publisher")
    subs = []
    for sid in ("sub-a", "sub-b"):
        c, col = connect(sid)
        subscribe(c, col, dest, sid)
        subs.append((sid, c, col))
    for i in range(n):
        pub.send(dest, "msg-%d" % i, headers={"seq": str(i)})
    # a fence sent after the n messages: once it is in, nothing of the n may still be on its way
    send_sync(pub, pcol, dest, "fence")
    for sid, c, col in subs:
        col.wait_messages(n + 1)
        msgs = col.snapshot()
        check(len(msgs) == n + 1, "%s got %d messages, want %d (+1 fence)", sid, len(msgs), n + 1)
        ids = set()
        for i, m in enumerate(msgs[:n]):
            h = m.headers
            check(m.body == "msg-%d" % i, "%s message %d: body %r, want %r (order or content)", sid, i, m.body,
                  "msg-%d" % i)
            check(h.get("destination") == dest, "%s message %d: destination %r, want %r", sid, i,
                  h.get("destination"), dest)
            check(h.get("subscription") == sid, "%s message %d: subscription %r, want %r", sid, i,
                  h.get("subscription"), sid)
            check(h.get("message-id"), "%s message %d: no message-id header: %r", sid, i, h)
            check(h.get("seq") == str(i), "%s message %d: user header seq=%r, want %r", sid, i, h.get("seq"), str(i))
            ids.add(h["message-id"])
        check(len(ids) == n, "%s: message-ids are not unique: %d distinct of %d", sid, len(ids), n)
        check(msgs[n].body == "fence", "%s: last message %r, want the fence", sid, msgs[n].body)
        col.assert_no_errors()
    for sid, c, col in subs:
        disconnect(c, col)
    disconnect(pub, pcol)
    return "2 subscribers x %d messages with destination/subscription/message-id headers" % n


def scenario_queue():
    """client-individual acks over 2 consumers; one NACK comes back with redelivered:true."""
    n = 10
    dest = "/queue/e2e.work." + uid()
    prod, pcol = connect("producer", stomp.Connection12)
    state = threading.Condition()
    acked = []  # bodies acked
    deliveries = []  # (consumer, body, redelivered, headers)
    nacked = []  # bodies nacked
    consumers = {}
    for name in ("c1", "c2"):
        consumers[name] = connect(name, stomp.Connection12)

    def handler(name):
        c, col = consumers[name]

        def on_msg(frame):
            redelivered = frame.headers.get("redelivered") == "true"
            with state:
                deliveries.append((name, frame.body, redelivered, dict(frame.headers)))
                do_nack = not nacked and not redelivered and frame.body != "fence"
                (nacked if do_nack else acked).append(frame.body)
                state.notify_all()
            if do_nack:
                c.nack(ack_id(frame))
            else:
                c.ack(ack_id(frame))
        return on_msg

    for name, (c, col) in consumers.items():
        col.on_message_hook = handler(name)
        subscribe(c, col, dest, "q-" + name, ack="client-individual")

    def wait_acked(want, what):
        deadline = time.monotonic() + WAIT
        with state:
            while not set(acked) >= want:
                for _, col in consumers.values():
                    col.assert_no_errors()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure("timed out after %.0fs waiting for %s: acked=%s nacked=%s deliveries=%s" % (
                        WAIT, what, sorted(acked), nacked, [(d[0], d[1], d[2]) for d in deliveries]))
                state.wait(min(left, 0.5))

    bodies = ["job-%d" % i for i in range(n)]
    for b in bodies:
        prod.send(dest, b)
    wait_acked(set(bodies), "every job to be delivered and acked")
    # fence: a last message through the queue; after it no stray redelivery may be pending
    prod.send(dest, "fence")
    wait_acked({"fence"}, "the fence message")

    with state:
        check(len(nacked) == 1, "expected exactly one NACK, got %r", nacked)
        nb = nacked[0]
        work = [d for d in deliveries if d[1] != "fence"]
        summary = [(d[0], d[1], d[2]) for d in work]
        check(len(work) == n + 1, "expected %d deliveries (%d jobs + 1 redelivery), got %d: %s", n + 1, n, len(work),
              summary)
        per_body = {}
        for d in work:
            per_body.setdefault(d[1], []).append(d)
        for b in bodies:
            want = 2 if b == nb else 1
            check(len(per_body.get(b, [])) == want, "job %s delivered %d times, want %d: %s", b,
                  len(per_body.get(b, [])), want, summary)
        first, again = per_body[nb]
        check(not first[2], "first delivery of %s already marked redelivered: %r", nb, first[3])
        check(again[2], "NACKed %s came back without redelivered:true: headers=%r", nb, again[3])
        redelivered = [d for d in work if d[2]]
        check(len(redelivered) == 1, "only the NACKed message may be redelivered, got %s", summary)
        count = {name: len([d for d in work if d[0] == name]) for name in consumers}
        check(all(v >= 1 for v in count.values()), "round-robin: each consumer should get jobs, got %r", count)
        for d in work:
            check(d[3].get("subscription") == "q-" + d[0], "delivery to %s has subscription %r", d[0],
                  d[3].get("subscription"))
            check(d[3].get("destination") == dest, "delivery has destination %r, want %r", d[3].get("destination"),
                  dest)
            check(d[3].get("message-id"), "delivery without message-id: %r", d[3])
    for name, (c, col) in consumers.items():
        col.assert_no_errors()
        disconnect(c, col)
    disconnect(prod, pcol)
    return "%d jobs over 2 consumers %r, NACKed %s (first to %s) redelivered to %s with redelivered:true" % (
        n, count, nb, first[0], again[0])


def scenario_requeue():
    """An unacked queue message goes to another consumer, marked redelivered, when its consumer disconnects."""
    dest, prod, pcol, c1, col1, m1 = first_delivery("/queue/e2e.requeue.", "unlucky")
    check(m1.body == "unlucky", "c1 got %r", m1.body)
    check(m1.headers.get("redelivered") != "true", "first delivery marked redelivered: %r", m1.headers)
    disconnect(c1, col1)  # without ACK

    c2, col2, m2 = expect_redelivered(dest, "unlucky")
    with_receipt(col2, "ack", lambda rid: c2.ack(ack_id(m2), receipt=rid))
    disconnect(c2, col2)

    # acked: a new consumer must not see it again
    expect_drained(prod, pcol, dest, "after ACK the queue should hold only the fence")
    return "unacked message re-queued on disconnect with redelivered:true, gone after ACK"


def scenario_rpc():
    """Request-reply: reply-to:/temp-queue/NAME is rewritten, and the reply reaches the requester."""
    service = "/queue/e2e.rpc." + uid()
    srv, scol = connect("responder", stomp.Connection12)
    subscribe(srv, scol, service, "rpc")
    req, rcol = connect("requester", stomp.Connection12)
    req.send(service, "2+2", headers={"reply-to": "/temp-queue/answers"})
    scol.wait_messages(1)
    request = scol.snapshot()[0]
    reply_to = request.headers.get("reply-to", "")
    check(reply_to.startswith("/reply-queue/"), "reply-to not rewritten: %r", request.headers)
    send_sync(srv, scol, reply_to, "4")
    rcol.wait_messages(1)
    reply = rcol.snapshot()[0]
    check(reply.body == "4", "reply body %r", reply.body)
    check(reply.headers.get("subscription") == "/temp-queue/answers", "reply subscription %r", reply.headers)
    disconnect(req, rcol)
    disconnect(srv, scol)
    return "reply-to %s reached the requester on subscription /temp-queue/answers" % reply_to


def scenario_tx():
    """SENDs in a transaction are delivered only on COMMIT, never after ABORT."""
    dest = "/topic/e2e.tx." + uid()
    pub, pcol = connect("publisher")
    sub, scol = connect("subscriber")
    subscribe(sub, scol, dest, "s1")

    tx = pub.begin()
    for i in range(3):
        pub.send(dest, "tx1-%d" % i, transaction=tx)
    # a plain SEND after the transactional ones: it must overtake them
    send_sync(pub, pcol, dest, "marker-1")
    scol.wait_messages(1)
    got = [m.body for m in scol.snapshot()]
    check(got == ["marker-1"], "before COMMIT the subscriber must see only marker-1, got %r", got)
    rid = "commit-" + uid()
    pub.commit(tx, receipt=rid)
    pcol.wait_receipt(rid)
    scol.wait_messages(4)
    got = [m.body for m in scol.snapshot()]
    check(got == ["marker-1", "tx1-0", "tx1-1", "tx1-2"], "after COMMIT got %r", got)

    tx2 = pub.begin()
    for i in range(2):
        pub.send(dest, "tx2-%d" % i, transaction=tx2)
    rid = "abort-" + uid()
    pub.abort(tx2, receipt=rid)
    pcol.wait_receipt(rid)
    send_sync(pub, pcol, dest, "marker-2")
    scol.wait_messages(5)
    got = [m.body for m in scol.snapshot()]
    check(got == ["marker-1", "tx1-0", "tx1-1", "tx1-2", "marker-2"],
          "aborted messages must never appear: got %r", got)
    scol.assert_no_errors()
    pcol.assert_no_errors()
    disconnect(sub, scol)
    disconnect(pub, pcol)
    return "3 messages appeared only after COMMIT, 2 aborted never appeared"


def scenario_txack():
    """An ACK inside a transaction takes effect only on COMMIT."""
    dest, prod, pcol, c1, col1, m = first_delivery("/queue/e2e.txack.", "job")
    tx = c1.begin()
    c1.ack(ack_id(m), transaction=tx)
    with_receipt(col1, "abort", lambda rid: c1.abort(tx, receipt=rid))
    disconnect(c1, col1)  # the ACK was aborted: the message is still unacked and must be re-queued

    c2, col2, m2 = expect_redelivered(dest, "job")
    tx = c2.begin()
    c2.ack(ack_id(m2), transaction=tx)
    with_receipt(col2, "commit", lambda rid: c2.commit(tx, receipt=rid))
    disconnect(c2, col2)

    expect_drained(prod, pcol, dest, "a committed ACK must remove the job")
    return "aborted ACK re-queued the job, committed ACK removed it"


def scenario_receipts():
    dest = "/topic/e2e.receipts." + uid()
    c, col = connect("client")
    rid = "r-sub-" + uid()
    c.subscribe(dest, id="s1", ack="auto", receipt=rid)
    col.wait_receipt(rid)
    rid = "r-send-" + uid()
    c.send(dest, "hello", receipt=rid)
    col.wait_receipt(rid)
    col.wait_messages(1)
    check(col.snapshot()[0].body == "hello", "got %r", col.snapshot()[0].body)
    tx = c.begin(receipt="r-begin")
    col.wait_receipt("r-begin")
    c.commit(tx, receipt="r-commit")
    col.wait_receipt("r-commit")
    rid = "r-unsub-" + uid()
    c.unsubscribe("s1", receipt=rid)
    col.wait_receipt(rid)
    # after the UNSUBSCRIBE receipt nothing more may be delivered to s1
    send_sync(c, col, dest, "after-unsubscribe")
    check(len(col.snapshot()) == 1, "message delivered after UNSUBSCRIBE receipt: %r",
          [m.body for m in col.snapshot()])
    rid = "r-disc-" + uid()
    disconnect(c, col, rid)
    col.wait_for(lambda: col.disconnected, "the connection to close after the DISCONNECT receipt")
    col.assert_no_errors()
    return "RECEIPT for SUBSCRIBE, SEND, BEGIN, COMMIT, UNSUBSCRIBE, DISCONNECT"


def scenario_heartbeat():
    idle = ARGS.idle
    # receive scale 10: tolerate scheduling hiccups of a loaded CI machine (1s for a 100ms beat);
    # the count of received beats below checks that the broker beats every ~100ms
    c, col = connect("client", heartbeats=(100, 100), heart_beat_receive_scale=10.0)
    hb = col.connected.headers.get("heart-beat")
    check(hb is not None, "CONNECTED has no heart-beat header: %r", col.connected.headers)
    sx, sy = [int(x) for x in hb.replace(" ", "").split(",")]
    if ARGS.expect_heartbeat:
        check(hb.replace(" ", "") == ARGS.expect_heartbeat, "CONNECTED heart-beat:%s, want %s", hb,
              ARGS.expect_heartbeat)
    check(sx > 0 and sy > 0, "server offered heart-beat:%s, want both non-zero", hb)
    dest = "/topic/e2e.hb." + uid()
    subscribe(c, col, dest, "s1")
    with col.cond:
        in0, out0 = col.heartbeats_in, col.heartbeats_out
    # idleness is the point of this scenario: nothing to wait for but time
    time.sleep(idle)
    with col.cond:
        hin, hout, timeout, disc = col.heartbeats_in - in0, col.heartbeats_out - out0, col.heartbeat_timeout, \
            col.disconnected
    check(not timeout, "client saw a heart-beat timeout: the broker went silent (received %d beats in %.1fs)", hin,
          idle)
    check(not disc, "connection closed during %.1fs of idleness (beats in %d, out %d)", idle, hin, hout)
    # negotiated intervals (STOMP 1.1 "Heart-beating"): we send every max(cx, sy), the broker every max(cy, sx)
    out_ms, in_ms = max(100, sy), max(100, sx)
    # at least a third of the expected beats, so a loaded machine does not make this flaky
    min_in, min_out = int(idle * 1000 / in_ms / 3), int(idle * 1000 / out_ms / 3)
    check(hin >= min_in, "received %d heart-beats from the broker in %.1fs, want >= %d (every %dms)", hin, idle,
          min_in, in_ms)
    check(hout >= min_out, "the library sent %d heart-beats in %.1fs, want >= %d (every %dms)", hout, idle,
          min_out, out_ms)
    send_sync(c, col, dest, "still-alive")
    col.wait_messages(1)
    check(col.snapshot()[0].body == "still-alive", "got %r", col.snapshot()[0].body)
    col.assert_no_errors()
    disconnect(c, col)
    return "heart-beat:%s, alive after %.1fs idle, %d beats received, %d sent" % (hb, idle, hin, hout)


def scenario_binary():
    size = 1 << 20
    rnd = random.Random(20240601)
    body = bytearray(rnd.randbytes(size))
    for i in range(0, size, 997):  # plenty of NULs, at the start and the end too
        body[i] = 0
    body[-1] = 0
    body = bytes(body)
    check(body.count(b"\x00") > 1000, "test body should contain NULs")
    results = []
    for kind in ("topic", "queue"):
        dest = "/%s/e2e.binary.%s" % (kind, uid())
        pub, pcol = connect("publisher-" + kind)
        sub, scol = connect("subscriber-" + kind, auto_decode=False)
        # big reads: stomp.py's default 1 KiB recv makes a 1 MiB frame slow to assemble
        try:
            sub.transport._Transport__recv_bytes = 1 << 16
        except AttributeError:
            pass
        subscribe(sub, scol, dest, "s1")
        pub.send(dest, body, content_type="application/octet-stream")
        send_sync(pub, pcol, dest, b"after")
        scol.wait_messages(2, timeout=30)
        msgs = scol.snapshot()
        got = msgs[0].body
        check(isinstance(got, bytes), "body is %s, want bytes", type(got))
        if got != body:
            first = next((i for i in range(min(len(got), len(body))) if got[i] != body[i]), min(len(got), len(body)))
            raise Failure("%s: 1 MiB body differs: got %d bytes, want %d, first difference at %d" % (
                kind, len(got), len(body), first))
        cl = msgs[0].headers.get("content-length")
        check(cl == str(size), "%s: MESSAGE content-length %r, want %d", kind, cl, size)
        check(msgs[0].headers.get("content-type") == "application/octet-stream", "%s: content-type %r", kind,
              msgs[0].headers.get("content-type"))
        check(msgs[1].body == b"after", "%s: the frame after the binary one is corrupt: %r", kind, msgs[1].body[:64])
        scol.assert_no_errors()
        disconnect(sub, scol)
        disconnect(pub, pcol)
        results.append(kind)
    return "1 MiB body with %d NULs byte-exact over %s" % (body.count(b"\x00"), "+".join(results))


def scenario_versions():
    out = []
    for cls, want in ((stomp.Connection10, "1.0"), (stomp.Connection11, "1.1"), (stomp.Connection12, "1.2")):
        c, col = connect("v" + want, cls)
        v = col.connected.headers.get("version")
        if want == "1.0":
            check(v in (None, "1.0"), "STOMP 1.0 CONNECT answered with version:%s", v)
        else:
            check(v == want, "accept-version:%s answered with version:%s", want, v)
        dest = "/topic/e2e.v%s.%s" % (want.replace(".", ""), uid())
        subscribe(c, col, dest, "s-" + want)
        headers = {}
        if want != "1.0":
            headers["x-escaped"] = "a:b\\c"  # needs escaping in 1.1 and 1.2
        send_sync(c, col, dest, "hello " + want, **headers)
        col.wait_messages(1)
        m = col.snapshot()[0]
        check(m.body == "hello " + want, "%s: got body %r", want, m.body)
        check(m.headers.get("destination") == dest, "%s: destination %r", want, m.headers.get("destination"))
        if want != "1.0":
            check(m.headers.get("x-escaped") == "a:b\\c", "%s: escaped header came back as %r", want,
                  m.headers.get("x-escaped"))
            check(m.headers.get("subscription") == "s-" + want, "%s: subscription %r", want,
                  m.headers.get("subscription"))
        col.assert_no_errors()
        disconnect(c, col)
        out.append("%s->%s" % (want, v))
    return "connected with " + ", ".join(out)


SCENARIOS = {
    "pubsub": scenario_pubsub,
    "rpc": scenario_rpc,
    "queue": scenario_queue,
    "requeue": scenario_requeue,
    "tx": scenario_tx,
    "txack": scenario_txack,
    "receipts": scenario_receipts,
    "heartbeat": scenario_heartbeat,
    "binary": scenario_binary,
    "versions": scenario_versions,
}


def main():
    global ARGS, SCENARIO
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--vhost", default="", help="CONNECT host header (RabbitMQ needs /)")
    p.add_argument("--login", default="")
    p.add_argument("--passcode", default="")
    p.add_argument("--idle", type=float, default=1.5, help="heartbeat: seconds of idleness")
    p.add_argument("--expect-heartbeat", default="", help="heartbeat: expected CONNECTED heart-beat value")
    ARGS = p.parse_args()
    SCENARIO = ARGS.scenario

    def watchdog():
        print("FAIL %s: watchdog: scenario still running after %.0fs" % (SCENARIO, WATCHDOG), flush=True)
        os._exit(3)

    wd = threading.Timer(WATCHDOG, watchdog)
    wd.daemon = True
    wd.start()
    try:
        detail = SCENARIOS[SCENARIO]()
    except Failure as e:
        print("FAIL %s: %s" % (SCENARIO, e), flush=True)
        os._exit(1)
    except Exception:
        traceback.print_exc()
        print("FAIL %s: exception %s" % (SCENARIO, sys.exc_info()[1]), flush=True)
        os._exit(1)
    print("PASS %s: %s" % (SCENARIO, detail), flush=True)
    # stomp.py threads are daemons; exit without waiting for them
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
