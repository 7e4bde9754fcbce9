// Shared helpers of the Node end-to-end tests. The broker's addresses come
// from the environment that e2e/node_test.go (TestNode) sets:
//
//   STOMPICA_WS      ws://127.0.0.1:PORT/ws      plain WebSocket
//   STOMPICA_WSS     wss://127.0.0.1:PORT/stomp  WebSocket over TLS
//   STOMPICA_TCP     127.0.0.1:PORT              raw STOMP over TCP
//   STOMPICA_TLS_CA  PEM file of the broker's self-signed test certificate
//   STOMPICA_PYTHON  Debian's interpreter with python3-stomp (/usr/bin/python3)
//   STOMPICA_CHROMIUM the browser binary (/usr/bin/chromium)
//
// The broker runs with --heart-beat 100,100 --heart-beat-grace 5: it closes
// a client that promised heart-beats and stays silent for 500 ms.

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';

export function env(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: run these tests through \`go test -run TestNode ./e2e\`, which starts the broker`);
  }
  return v;
}

export const WS_URL = () => env('STOMPICA_WS');
export const WSS_URL = () => env('STOMPICA_WSS');
export const TCP_ADDR = () => env('STOMPICA_TCP');
export const TLS_CA = () => readFileSync(env('STOMPICA_TLS_CA'));
export const PYTHON = () => process.env.STOMPICA_PYTHON || '/usr/bin/python3';
export const CHROMIUM = () => process.env.STOMPICA_CHROMIUM || '/usr/bin/chromium';

// tcpHostPort splits STOMPICA_TCP.
export function tcpHostPort() {
  const addr = TCP_ADDR();
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

// WAIT bounds every single wait for the broker (a frame, a receipt, a message).
export const WAIT = 10_000;

// unique returns a destination name no other test uses.
let counter = 0;
export function unique(prefix) {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${++counter}`;
}

// withTimeout rejects when p has not settled within ms, naming what it waited for.
export function withTimeout(p, what, ms = WAIT) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

// Inbox collects values pushed by callbacks and lets a test await the next
// one (or the first n) with a bounded timeout.
export class Inbox {
  constructor(name) {
    this.name = name;
    this.items = [];
    this.waiters = [];
  }

  push(v) {
    this.items.push(v);
    const ready = this.waiters.filter((w) => this.items.length >= w.n);
    this.waiters = this.waiters.filter((w) => this.items.length < w.n);
    for (const w of ready) w.resolve();
  }

  // take waits until n items are queued and removes and returns them.
  async take(n = 1, ms = WAIT) {
    if (this.items.length < n) {
      let resolve;
      const p = new Promise((r) => { resolve = r; });
      this.waiters.push({ n, resolve });
      await withTimeout(p, `${n} item(s) on ${this.name} (have ${this.items.length})`, ms);
    }
    return this.items.splice(0, n);
  }

  async next(ms = WAIT) {
    return (await this.take(1, ms))[0];
  }
}

// pythonSend runs a tiny stomp.py (Debian's python3-stomp) script that
// connects over raw TCP with stomp.Connection12, SENDs body to destination and
// disconnects (stomp.py waits for the DISCONNECT receipt, so the SEND has been
// processed when it exits).
export function pythonSend(destination, body, headers = {}) {
  const { host, port } = tcpHostPort();
  const script = `
import json, sys, stomp
host, port, dest, body, headers = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
conn = stomp.Connection12([(host, port)], heartbeats=(0, 0))
conn.connect(wait=True)
conn.send(destination=dest, body=body, headers=headers)
conn.disconnect()
print("python sent", dest, flush=True)
`;
  const childEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1' };
  delete childEnv.PYTHONHOME;
  delete childEnv.PYTHONPATH;
  return new Promise((resolve, reject) => {
    execFile(PYTHON(), ['-c', script, host, String(port), destination, body, JSON.stringify(headers)],
      { timeout: 30_000, env: childEnv },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`${PYTHON()} stomp.Connection12 send failed: ${err.message}\nstdout:\n${stdout}\nstderr:\n${stderr}`));
          return;
        }
        resolve(stdout);
      });
  });
}

// bytesDiff compares two Uint8Arrays and describes the first difference.
export function bytesDiff(got, want) {
  if (got.length !== want.length) return `length ${got.length}, want ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) return `byte ${i} is 0x${got[i].toString(16)}, want 0x${want[i].toString(16)}`;
  }
  return '';
}

// annotate appends diagnostics (client logs, the page's console) to err so
// that node's test reporter, which prints err.stack, shows them.
export function annotate(err, text) {
  if (err && typeof err === 'object') {
    try {
      err.message += `\n${text}`;
      if (typeof err.stack === 'string') err.stack += `\n${text}`;
    } catch {
      // a frozen error: keep it as it is
    }
  }
  return err;
}
