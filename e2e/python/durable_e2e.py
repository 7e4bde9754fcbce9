"""Durable topic subscriptions with python3-stomp (stomp.py), one step per run.

  durable_e2e.py STYLE away|resume --host H --port P

STYLE is activemq, artemis or rabbitmq (the header style). "away" subscribes
durably and disconnects without unsubscribing. "resume" subscribes again with
the same headers, prints every body it gets within the wait as one line
"GOT b1,b2,...", then unsubscribes with the headers (ending the subscription).
"""
import argparse
import sys
import time

from e2e_listener import connect

STYLES = {
    "activemq": ({"client-id": "py-app"}, {"activemq.subscriptionName": "news"}),
    "artemis": ({"client-id": "py-app"}, {"durable-subscription-name": "news"}),
    "rabbitmq": ({}, {"durable": "true", "auto-delete": "false"}),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("style", choices=sorted(STYLES))
    p.add_argument("step", choices=["away", "resume"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--want", type=int, default=3)
    a = p.parse_args()
    conn_hdrs, sub_hdrs = STYLES[a.style]
    conn, listener = connect(a.host, a.port, conn_hdrs)
    conn.subscribe("/topic/py.news", id="sub-1", ack="auto", headers=dict(sub_hdrs, receipt="subscribed"))
    if a.step == "away":
        time.sleep(0.2)
        conn.disconnect()
        print("PASS away:", a.style)
        return 0
    listener.wait(a.want)
    time.sleep(0.3)  # anything extra would come now
    conn.unsubscribe("sub-1", headers=sub_hdrs)
    conn.disconnect()
    print("GOT " + ",".join(f.body for f in listener.frames))
    if listener.errors:
        print("FAIL resume: errors", listener.errors)
        return 1
    print("PASS resume:", a.style)
    return 0


if __name__ == "__main__":
    sys.exit(main())
