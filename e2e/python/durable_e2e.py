"""Durable topic subscriptions with python3-stomp (stomp.py), one step per run.

  durable_e2e.py STYLE away|resume --host H --port P

STYLE is activemq, artemis or rabbitmq (the header style). "away" subscribes
durably and disconnects without unsubscribing. "resume" subscribes again with
the same headers, prints every body it gets within the wait as one line
"GOT b1,b2,...", then unsubscribes with the headers (ending the subscription).
"""
import argparse
import sys
import threading
import time

import stomp

STYLES = {
    "activemq": ({"client-id": "py-app"}, {"activemq.subscriptionName": "news"}),
    "artemis": ({"client-id": "py-app"}, {"durable-subscription-name": "news"}),
    "rabbitmq": ({}, {"durable": "true", "auto-delete": "false"}),
}


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.bodies = []
        self.errors = []
        self.cond = threading.Condition()

    def on_message(self, frame):
        with self.cond:
            self.bodies.append(frame.body)
            self.cond.notify_all()

    def on_error(self, frame):
        self.errors.append(frame.headers.get("message", "") + " " + frame.body)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("style", choices=sorted(STYLES))
    p.add_argument("step", choices=["away", "resume"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--want", type=int, default=3)
    a = p.parse_args()
    conn_hdrs, sub_hdrs = STYLES[a.style]
    conn = stomp.Connection([(a.host, a.port)], heartbeats=(0, 0), auto_content_length=True)
    listener = Listener()
    conn.set_listener("", listener)
    conn.connect(wait=True, headers=conn_hdrs)
    conn.subscribe("/topic/py.news", id="sub-1", ack="auto", headers=dict(sub_hdrs, receipt="subscribed"))
    if a.step == "away":
        time.sleep(0.2)
        conn.disconnect()
        print("PASS away:", a.style)
        return 0
    deadline = time.time() + 10
    with listener.cond:
        while len(listener.bodies) < a.want and time.time() < deadline:
            listener.cond.wait(0.2)
    time.sleep(0.3)  # anything extra would come now
    conn.unsubscribe("sub-1", headers=sub_hdrs)
    conn.disconnect()
    print("GOT " + ",".join(listener.bodies))
    if listener.errors:
        print("FAIL resume: errors", listener.errors)
        return 1
    print("PASS resume:", a.style)
    return 0


if __name__ == "__main__":
    sys.exit(main())
