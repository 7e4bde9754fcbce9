// The clients of e2e/npm_test.go (TestNpmPackage), which starts a broker
// from the installed npm package and then runs
//
//   node npm-package-client.mjs roundtrip   (STOMPICA_WS, STOMPICA_TCP set)
//   node npm-package-client.mjs ttl         (a broker with a 5 s TTL)
//
// @stomp/stompjs over WebSocket and Debian's python3-stomp over raw TCP talk
// to each other through the broker. Prints "PASS <mode>: ..." and exits 0,
// or prints the failure and exits 1. Not a *.test.mjs file: TestNode does
// not run it.

import { setTimeout as sleep } from 'node:timers/promises';
import { execFile } from 'node:child_process';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';
import { WS_URL, PYTHON, Inbox, unique, withTimeout, pythonSend, tcpHostPort } from './env.mjs';

// TTL_MS is the broker's TTL in the ttl mode; EXPIRED_WAIT_MS the wait after
// a publish before a subscriber must no longer get it (TTL plus a margin).
const TTL_MS = 5000;
const EXPIRED_WAIT_MS = TTL_MS + 1000;

async function connect(name) {
  const errors = [];
  const client = new Client({
    webSocketFactory: () => new WebSocket(WS_URL(), ['v12.stomp']),
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    debug: () => {},
    onStompError: (f) => errors.push(`ERROR ${JSON.stringify(f.headers)} ${f.body}`),
  });
  const connected = new Promise((resolve, reject) => {
    client.onConnect = resolve;
    client.onWebSocketClose = (e) => reject(new Error(`${name}: WebSocket closed before CONNECTED (${e?.code}) ${errors.join('; ')}`));
  });
  client.activate();
  await withTimeout(connected, `${name}: CONNECTED from ${WS_URL()}`);
  client.onWebSocketClose = () => {};
  return { client, errors };
}

// subscribe subscribes with a receipt and resolves, once the broker has
// confirmed it, with the Inbox of the subscription's messages.
async function subscribe(client, destination, name) {
  const inbox = new Inbox(name);
  const id = unique('receipt');
  const confirmed = new Promise((resolve) => client.watchForReceipt(id, resolve));
  client.subscribe(destination, (m) => inbox.push(m), { receipt: id });
  await withTimeout(confirmed, `${name}: RECEIPT for SUBSCRIBE ${destination}`);
  return inbox;
}

// pythonRequest runs stomp.py over raw TCP: it subscribes to replyTo, sends
// body to destination with a reply-to header, and prints the first reply.
function pythonRequest(destination, replyTo, body) {
  const { host, port } = tcpHostPort();
  const script = `
import sys, threading, stomp
host, port, dest, reply_to, body = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
got, done = [], threading.Event()
class L(stomp.ConnectionListener):
    def on_message(self, frame):
        got.append(frame.body); done.set()
conn = stomp.Connection12([(host, port)], heartbeats=(0, 0))
conn.set_listener("l", L())
conn.connect(wait=True)
conn.subscribe(destination=reply_to, id="replies", ack="auto", headers={"receipt": "subscribed"})
conn.send(destination=dest, body=body, headers={"reply-to": reply_to})
if not done.wait(10):
    print("python: no reply on", reply_to, "within 10 s", flush=True); sys.exit(1)
conn.disconnect()
print("python got:", got[0], flush=True)
`;
  const env = { ...process.env, PYTHONDONTWRITEBYTECODE: '1' };
  delete env.PYTHONHOME;
  delete env.PYTHONPATH;
  return new Promise((resolve, reject) => {
    execFile(PYTHON(), ['-c', script, host, String(port), destination, replyTo, body], { timeout: 30_000, env },
      (err, stdout, stderr) => (err
        ? reject(new Error(`python request failed: ${err.message}\n${stdout}\n${stderr}`))
        : resolve(stdout.trim())));
  });
}

// roundtrip: python publishes over TCP to a topic; stompjs, subscribed over
// WebSocket, answers on the message's reply-to queue; python gets the answer.
async function roundtrip() {
  const { client, errors } = await connect('stompjs');
  const topic = `/topic/${unique('npm-roundtrip')}`;
  const requests = await subscribe(client, topic, 'stompjs requests');
  client.onUnhandledMessage = () => {};
  const answered = (async () => {
    const m = await requests.next();
    client.publish({ destination: m.headers['reply-to'], body: `${m.body} / answered by stompjs over WebSocket` });
    return m;
  })();
  const [out, m] = await Promise.all([
    pythonRequest(topic, `/queue/${unique('npm-reply')}`, 'hello from python over TCP'),
    answered,
  ]);
  if (m.body !== 'hello from python over TCP') throw new Error(`stompjs got ${JSON.stringify(m.body)}`);
  if (out !== 'python got: hello from python over TCP / answered by stompjs over WebSocket') {
    throw new Error(`python printed ${JSON.stringify(out)}`);
  }
  if (errors.length) throw new Error(errors.join('; '));
  await client.deactivate();
  return `stompjs (ws) got ${JSON.stringify(m.body)} from python (tcp), python got the answer: ${JSON.stringify(out)}`;
}

// ttl: a topic message that found no subscriber reaches a subscriber that
// comes within the TTL, and not one that comes after it.
async function ttl() {
  const { client, errors } = await connect('stompjs');
  const early = `/topic/${unique('npm-ttl-early')}`;
  const sent = Date.now();
  await pythonSend(early, 'retained for 5 s');
  const earlyInbox = await subscribe(client, early, 'early subscriber');
  const m = await earlyInbox.next();
  const after = Date.now() - sent;
  if (m.body !== 'retained for 5 s') throw new Error(`early subscriber got ${JSON.stringify(m.body)}`);
  if (after >= TTL_MS) throw new Error(`the retained message came ${after} ms after its publish, past the TTL`);

  const late = `/topic/${unique('npm-ttl-late')}`;
  await pythonSend(late, 'expires before anyone comes');
  const published = Date.now(); // the broker had it before python's DISCONNECT receipt
  await sleep(EXPIRED_WAIT_MS - (Date.now() - published)); // the TTL itself is under test
  const lateInbox = await subscribe(client, late, 'late subscriber');
  await pythonSend(late, 'published after the late subscription');
  const first = await lateInbox.next();
  if (first.body !== 'published after the late subscription') {
    throw new Error(`subscriber ${EXPIRED_WAIT_MS} ms after the publish got ${JSON.stringify(first.body)} first, want the expired message gone`);
  }
  if (errors.length) throw new Error(errors.join('; '));
  await client.deactivate();
  return `a subscriber ${after} ms after the publish got the retained message; one ${EXPIRED_WAIT_MS} ms after did not`;
}

const modes = { roundtrip, ttl };
const mode = process.argv[2];
if (!modes[mode]) {
  console.log(`FAIL usage: node npm-package-client.mjs ${Object.keys(modes).join('|')}`);
  process.exit(2);
}
try {
  const what = await withTimeout(modes[mode](), `the ${mode} scenario`, 45_000);
  console.log(`PASS ${mode}: ${what}`);
  process.exit(0);
} catch (err) {
  console.log(`FAIL ${mode}: ${err.stack || err}`);
  process.exit(1);
}
