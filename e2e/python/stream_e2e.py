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
import threading
import time

import stomp


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.got = []
        self.errors = []
        self.cond = threading.Condition()

    def on_message(self, frame):
        with self.cond:
            self.got.append((frame.body, int(frame.headers.get("x-stream-offset", "-1"))))
            self.cond.notify_all()

    def on_error(self, frame):
        self.errors.append(frame.headers.get("message", "") + " " + frame.body)

    def wait(self, n):
        deadline = time.time() + 10
        with self.cond:
            while len(self.got) < n and time.time() < deadline:
                self.cond.wait(0.2)


def connect(a):
    conn = stomp.Connection([(a.host, a.port)], heartbeats=(0, 0), auto_content_length=True)
    listener = Listener()
    conn.set_listener("", listener)
    conn.connect(wait=True)
    return conn, listener


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
    first = listener.got
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
    print("RESUMED", listener.got)
    if [b for b, _ in listener.got] != ["m5", "m6"]:
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
