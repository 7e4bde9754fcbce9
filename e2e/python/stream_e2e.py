"""Streams with python3-stomp (stomp.py): replay, live, resume.

  stream_e2e.py DEST --host H --port P

Publishes m1..m3 to DEST with receipts, subscribes with x-stream-offset:first,
publishes m4 while subscribed, and checks it gets m1..m4 once each, in order,
with increasing x-stream-offset headers. It disconnects, publishes m5 and m6,
subscribes again with x-stream-offset at the last offset seen plus one and
checks it gets exactly m5 and m6. Prints PASS or FAIL and what it saw.
"""
import argparse
import sys
import time

import e2e_listener


def connect(a):
    return e2e_listener.connect(a.host, a.port)


def got(listener):
    """The bodies and x-stream-offsets received."""
    return [(f.body, int(f.headers.get("x-stream-offset", "-1"))) for f in listener.frames]


def publish(a, bodies):
    conn, listener = connect(a)
    for b in bodies:
        conn.send(a.dest, b, headers={"receipt": "r-" + b})
    conn.disconnect(receipt="bye")  # after the receipts: every SEND is stored
    return listener.errors


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dest")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    errors = publish(a, ["m1", "m2", "m3"])
    conn, listener = connect(a)
    conn.subscribe(a.dest, id="s", ack="auto", headers={"x-stream-offset": "first"})
    listener.wait(3)
    errors += publish(a, ["m4"])
    listener.wait(4)
    time.sleep(0.3)  # anything extra would come now
    conn.disconnect()
    first = got(listener)
    print("GOT", first)
    bodies = [b for b, _ in first]
    offsets = [o for _, o in first]
    if bodies != ["m1", "m2", "m3", "m4"] or offsets != sorted(set(offsets)) or min(offsets) < 1:
        print("FAIL replay then live")
        return 1
    errors += publish(a, ["m5", "m6"])
    conn, listener = connect(a)
    conn.subscribe(a.dest, id="s", ack="auto", headers={"x-stream-offset": str(offsets[-1] + 1)})
    listener.wait(2)
    time.sleep(0.3)
    conn.disconnect()
    resumed = got(listener)
    print("RESUMED", resumed)
    if [b for b, _ in resumed] != ["m5", "m6"]:
        print("FAIL resume")
        return 1
    errors += listener.errors
    if errors:
        print("FAIL errors", errors)
        return 1
    print("PASS", a.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
