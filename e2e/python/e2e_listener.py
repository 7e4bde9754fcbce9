"""What the python3-stomp (stomp.py) end-to-end scripts share: a listener
that collects the MESSAGE frames and ERRORs a connection gets, and waits for
them with a bound."""
import threading
import time

import stomp


class Listener(stomp.ConnectionListener):
    """Collects every MESSAGE frame (frames) and ERROR (errors)."""

    def __init__(self):
        self.frames = []
        self.errors = []
        self.cond = threading.Condition()

    def on_message(self, frame):
        with self.cond:
            self.frames.append(frame)
            self.cond.notify_all()

    def on_error(self, frame):
        self.errors.append(frame.headers.get("message", "") + " " + frame.body)

    def wait(self, n, seconds=10):
        """Waits until n messages have come, or seconds have passed."""
        deadline = time.time() + seconds
        with self.cond:
            while len(self.frames) < n and time.time() < deadline:
                self.cond.wait(0.2)


def connect(host, port, headers=None):
    """Connects over raw TCP (no heart-beats) and returns the connection and
    its listener."""
    conn = stomp.Connection([(host, port)], heartbeats=(0, 0), auto_content_length=True)
    listener = Listener()
    conn.set_listener("", listener)
    conn.connect(wait=True, headers=headers or {})
    return conn, listener
