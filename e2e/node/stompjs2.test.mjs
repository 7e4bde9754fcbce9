// The old npm `stompjs` 2.3.3 client (the one the original stompica's
// examples used) against stompica.
//
// In Node, stompjs 2.3.3 does not use a global WebSocket: its
// Stomp.overWS(url) (lib/stomp-node.js) wraps the `websocket` package's
// WebSocketClient, which offers no STOMP subprotocol, and Stomp.overTCP(host,
// port) speaks raw STOMP over net.Socket. Only Stomp.client(url) in a browser
// uses `Stomp.WebSocketClass || WebSocket`. package.json pins `websocket`
// (an optional dependency of stompjs, "latest" there) so that it is always
// installed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { TCP_ADDR, tcpHostPort, Inbox, unique, withTimeout, annotate } from './env.mjs';

const require = createRequire(import.meta.url);
const Stomp = require('stompjs');

// The exact URL form of the original examples: no path.
const wsURL = () => `ws://${TCP_ADDR()}`;

// Old wraps one stompjs 2.3.3 client with its debug log and a RECEIPT inbox.
class Old {
  constructor(name, client) {
    this.name = name;
    this.client = client;
    this.log = [];
    this.errors = [];
    this.receipts = new Inbox(`${name} receipts`);
    client.debug = (m) => this.log.push(`${new Date().toISOString()} ${m}`);
    client.onreceipt = (frame) => this.receipts.push(frame.headers['receipt-id']);
  }

  connect() {
    return withTimeout(new Promise((resolve, reject) => {
      this.client.connect({}, resolve, (err) => {
        this.errors.push(String(err?.body ?? err?.headers?.message ?? err));
        reject(new Error(`${this.name}: connect failed: ${err}`));
      });
    }), `${this.name}: CONNECTED`);
  }

  // receipt waits for the RECEIPT with id (receipts arrive in order).
  async receipt(id) {
    const got = await this.receipts.next();
    assert.equal(got, id, `${this.name}: RECEIPT receipt-id`);
  }

  async subscribe(destination, headers = {}) {
    const inbox = new Inbox(`${this.name} messages on ${destination}`);
    const receipt = unique('sub');
    inbox.sub = this.client.subscribe(destination, (m) => inbox.push(m), { ...headers, receipt });
    await this.receipt(receipt);
    return inbox;
  }

  close() {
    if (this.client.connected) {
      return withTimeout(new Promise((resolve) => this.client.disconnect(resolve)), `${this.name}: disconnect`);
    }
    return Promise.resolve();
  }

  report() {
    return `--- ${this.name} debug log:\n${this.log.join('\n')}\n`;
  }
}

async function withOld(fn) {
  const all = [];
  const open = async (name, client) => {
    const o = new Old(name, client);
    all.push(o);
    o.connected = await o.connect();
    return o;
  };
  try {
    await fn(open);
    for (const o of all) assert.deepEqual(o.errors, [], `${o.name} saw errors`);
  } catch (err) {
    throw annotate(err, all.map((o) => o.report()).join('\n'));
  } finally {
    await Promise.all(all.map((o) => o.close()));
  }
}

test("stompjs 2.3.3 Stomp.overWS('ws://127.0.0.1:PORT'): connect, subscribe, send, receive", async () => {
  await withOld(async (open) => {
    const sub = await open('overWS subscriber', Stomp.overWS(wsURL()));
    const pub = await open('overWS publisher', Stomp.overWS(wsURL()));
    assert.equal(sub.connected.command, 'CONNECTED');
    assert.equal(sub.connected.headers.version, '1.1', 'stompjs 2.3.3 accepts 1.1,1.0: the broker picks 1.1');
    const dest = `/topic/${unique('old')}`;
    const inbox = await sub.subscribe(dest);
    pub.client.send(dest, { 'x-note': 'from stompjs 2.3.3' }, 'hello from stompjs 2.3.3');
    pub.client.send(dest, {}, 'second é✓');
    const [m1, m2] = await inbox.take(2);
    assert.equal(m1.command, 'MESSAGE');
    assert.equal(m1.body, 'hello from stompjs 2.3.3');
    assert.equal(m1.headers.destination, dest);
    assert.equal(m1.headers.subscription, inbox.sub.id);
    assert.equal(m1.headers['x-note'], 'from stompjs 2.3.3');
    assert.ok(m1.headers['message-id']);
    assert.equal(m2.body, 'second é✓');
  });
});

test('stompjs 2.3.3: queue with client ack over overWS, published over raw TCP (Stomp.overTCP)', async () => {
  await withOld(async (open) => {
    const { host, port } = tcpHostPort();
    const consumer = await open('overWS consumer', Stomp.overWS(wsURL()));
    const producer = await open('overTCP producer', Stomp.overTCP(host, port));
    const q = `/queue/${unique('old')}`;
    const inbox = await consumer.subscribe(q, { ack: 'client' });
    producer.client.send(q, { receipt: 'sent-1' }, 'work item');
    await producer.receipt('sent-1');
    const m = await inbox.next();
    assert.equal(m.body, 'work item');
    assert.equal(m.headers.destination, q);
    m.ack({ receipt: 'acked-1' });
    await consumer.receipt('acked-1');
    // A topic the other way round: overTCP subscribes, overWS sends.
    const dest = `/topic/${unique('old')}`;
    const tin = await producer.subscribe(dest);
    consumer.client.send(dest, {}, 'ws to tcp');
    assert.equal((await tin.next()).body, 'ws to tcp');
  });
});
