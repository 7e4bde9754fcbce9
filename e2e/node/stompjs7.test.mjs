// @stomp/stompjs v7 against stompica over WebSocket (ws and wss), with the
// `ws` package as the Node WebSocket.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';
import { WS_URL, WSS_URL, TLS_CA, Inbox, unique, withTimeout, bytesDiff, annotate } from './env.mjs';

const ALL_PROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

// Session wraps one @stomp/stompjs Client with what the tests inspect: the
// raw WebSocket messages both ways, the debug log, heart-beats and closes.
class Session {
  constructor(name, url, { protocols = ALL_PROTOCOLS, wsOptions = {}, ...config } = {}) {
    this.name = name;
    this.url = url;
    this.log = [];
    this.rawIn = []; // {data: Buffer, isBinary} for every WebSocket message from the broker
    this.rawOut = []; // every WebSocket message to the broker
    this.heartbeats = 0;
    this.heartbeatTimes = []; // Date.now() of each broker heart-beat
    this.heartbeatLost = false;
    this.closes = new Inbox(`${name} WebSocket close`);
    this.errors = [];
    this.unhandled = []; // MESSAGE frames for no current subscription, RECEIPTs nobody waits for
    this.socket = null;
    this.client = new Client({
      webSocketFactory: () => {
        const ws = new WebSocket(url, protocols, wsOptions);
        ws.on('message', (data, isBinary) => {
          this.rawIn.push({ data: Buffer.from(data), isBinary });
        });
        const send = ws.send.bind(ws);
        ws.send = (d, ...rest) => {
          this.rawOut.push(d);
          return send(d, ...rest);
        };
        this.socket = ws;
        return ws;
      },
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      debug: (m) => this.log.push(`${new Date().toISOString()} ${m}`),
      onHeartbeatReceived: () => { this.heartbeats++; this.heartbeatTimes.push(Date.now()); },
      onHeartbeatLost: () => { this.heartbeatLost = true; },
      onWebSocketClose: (evt) => this.closes.push(evt),
      onStompError: (frame) => this.errors.push(`ERROR frame: ${JSON.stringify(frame.headers)} ${frame.body}`),
      onWebSocketError: (evt) => this.errors.push(`WebSocket error: ${evt?.message ?? evt?.error ?? evt}`),
      onUnhandledMessage: (m) => this.unhandled.push(`MESSAGE subscription:${m.headers.subscription} ${JSON.stringify(m.body)}`),
      onUnhandledReceipt: (f) => this.unhandled.push(`RECEIPT nobody waited for: ${JSON.stringify(f.headers)}`),
      onUnhandledFrame: (f) => this.unhandled.push(`unexpected ${f.command} frame ${JSON.stringify(f.headers)}`),
      ...config,
    });
  }

  // connect activates the client and resolves with the CONNECTED frame.
  async connect() {
    const connected = new Promise((resolve, reject) => {
      this.client.onConnect = resolve;
      const fail = (what) => (x) => reject(new Error(`${this.name}: ${what} before CONNECTED: ${this.errors.join('; ') || JSON.stringify(x?.reason ?? x?.code ?? '')}`));
      this.client.onStompError = (frame) => { this.errors.push(`ERROR frame: ${JSON.stringify(frame.headers)} ${frame.body}`); fail('ERROR frame')(frame); };
      this.client.onWebSocketClose = (evt) => { this.closes.push(evt); fail('WebSocket closed')(evt); };
    });
    this.client.activate();
    const frame = await withTimeout(connected, `${this.name}: CONNECTED from ${this.url}`);
    this.client.onWebSocketClose = (evt) => this.closes.push(evt);
    this.client.onStompError = (frame) => this.errors.push(`ERROR frame: ${JSON.stringify(frame.headers)} ${frame.body}`);
    return frame;
  }

  // receipt sends nothing itself: it returns a promise for the RECEIPT with id.
  receipt(id) {
    return withTimeout(new Promise((resolve) => this.client.watchForReceipt(id, resolve)),
      `${this.name}: RECEIPT receipt-id:${id}`);
  }

  // subscribe subscribes and waits for the broker's RECEIPT for the SUBSCRIBE;
  // the messages go to the returned Inbox (or the one given).
  async subscribe(destination, headers = {}, inbox = new Inbox(`${this.name} messages on ${destination}`)) {
    const receipt = unique('sub');
    const got = this.receipt(receipt);
    const sub = this.client.subscribe(destination, (m) => inbox.push(m), { ...headers, receipt });
    await got;
    inbox.sub = sub;
    return inbox;
  }

  // publish sends with a receipt and waits for it.
  async publish(params) {
    const receipt = unique('send');
    const got = this.receipt(receipt);
    this.client.publish({ ...params, headers: { ...(params.headers ?? {}), receipt } });
    await got;
  }

  async close() {
    if (this.client.active) {
      await withTimeout(this.client.deactivate(), `${this.name}: deactivate`).catch(() => this.client.deactivate({ force: true }));
    }
  }

  report() {
    return `--- ${this.name} (${this.url}) debug log:\n${this.log.join('\n')}\n` +
      (this.errors.length ? `errors: ${this.errors.join('; ')}\n` : '');
  }
}

// sessions runs fn with a factory of connected Sessions; every session is
// closed afterwards and, when fn fails, their logs go into the error.
async function sessions(fn) {
  const all = [];
  const open = async (name, url = WS_URL(), opts = {}) => {
    const s = new Session(name, url, opts);
    all.push(s);
    s.connected = await s.connect();
    return s;
  };
  try {
    await fn(open);
    for (const s of all) {
      assert.deepEqual(s.errors, [], `${s.name} saw errors`);
      assert.deepEqual(s.unhandled, [], `${s.name} got frames for no current subscription`);
    }
  } catch (err) {
    throw annotate(err, all.map((s) => s.report()).join('\n'));
  } finally {
    await Promise.all(all.map((s) => s.close()));
  }
}

// assertNoMore checks that inbox holds nothing beyond what the test took.
function assertNoMore(inbox, what) {
  assert.equal(inbox.items.length, 0,
    `${what}: unexpected extra message(s): ${inbox.items.map((m) => JSON.stringify({ headers: m.headers, body: m.body })).join(', ')}`);
}

test('WebSocket subprotocol negotiation: v12/v11/v10.stomp or none', async () => {
  const cases = [
    { offer: ALL_PROTOCOLS, want: 'v12.stomp' },
    { offer: ['v11.stomp', 'v10.stomp'], want: 'v11.stomp' },
    { offer: ['v10.stomp'], want: 'v10.stomp' },
    { offer: [], want: '' },
  ];
  for (const { offer, want } of cases) {
    await sessions(async (open) => {
      const s = await open(`offer [${offer}]`, WS_URL(), { protocols: offer });
      assert.equal(s.socket.protocol, want, `offered ${JSON.stringify(offer)}: Sec-WebSocket-Protocol`);
      if (want === 'v12.stomp') {
        assert.equal(s.connected.headers.version, '1.2', 'CONNECTED version');
      }
      const dest = `/topic/${unique('proto')}`;
      const inbox = await s.subscribe(dest);
      await s.publish({ destination: dest, body: `over [${offer}]` });
      const m = await inbox.next();
      assert.equal(m.body, `over [${offer}]`);
    });
  }
});

test('connect, subscribe, publish: topic fan-out with headers, order kept', async () => {
  await sessions(async (open) => {
    const a = await open('subscriber A');
    const b = await open('subscriber B');
    const p = await open('publisher');
    assert.equal(a.connected.headers.version, '1.2');
    assert.equal(a.socket.protocol, 'v12.stomp');
    const dest = `/topic/${unique('fanout')}`;
    const ia = await a.subscribe(dest);
    const ib = await b.subscribe(dest);
    const n = 20;
    for (let i = 0; i < n; i++) {
      p.client.publish({ destination: dest, body: `msg ${i} é✓😀`, headers: { 'content-type': 'text/plain;charset=utf-8', 'x-seq': String(i), 'x-colon': 'a:b' } });
    }
    for (const [s, inbox] of [[a, ia], [b, ib]]) {
      const got = await inbox.take(n);
      const ids = new Set();
      got.forEach((m, i) => {
        assert.equal(m.body, `msg ${i} é✓😀`, `${s.name} message ${i} body`);
        assert.equal(m.headers.destination, dest);
        assert.equal(m.headers.subscription, inbox.sub.id, `${s.name} subscription header`);
        assert.equal(m.headers['x-seq'], String(i));
        assert.equal(m.headers['x-colon'], 'a:b', 'header value with an escaped colon');
        assert.ok(m.headers['message-id'], 'message-id header');
        ids.add(m.headers['message-id']);
      });
      assert.equal(ids.size, n, `${s.name}: message-ids are unique`);
      // UTF-8 text bodies go out as WebSocket text messages.
      const msgFrames = s.rawIn.filter((r) => r.data.toString('latin1').startsWith('MESSAGE'));
      assert.equal(msgFrames.length, n, `${s.name}: one WebSocket message per MESSAGE frame`);
      assert.ok(msgFrames.every((r) => !r.isBinary), `${s.name}: UTF-8 MESSAGE frames are text WebSocket messages`);
      for (const r of msgFrames) {
        const head = r.data.toString('utf8').split('\n\n')[0];
        const cl = head.split('\n').filter((l) => l.startsWith('content-length:'));
        assert.equal(cl.length, 1, `${s.name}: exactly one content-length header in ${JSON.stringify(head)}`);
      }
    }
    // A late subscriber gets nothing of what was sent before it subscribed (no TTL).
    const c = await open('late subscriber');
    const ic = await c.subscribe(dest);
    await p.publish({ destination: dest, body: 'after' });
    assert.equal((await ic.next()).body, 'after');
    assertNoMore(ic, 'late subscriber');
  });
});

test('receipts for SUBSCRIBE, SEND, UNSUBSCRIBE, ACK and DISCONNECT', async () => {
  await sessions(async (open) => {
    const s = await open('receipts');
    const dest = `/topic/${unique('receipts')}`;
    // SUBSCRIBE with a receipt (Session.subscribe waits for it).
    const inbox = await s.subscribe(dest);
    // SEND with a receipt; the message arrives.
    await s.publish({ destination: dest, body: 'one' });
    assert.equal((await inbox.next()).body, 'one');
    // UNSUBSCRIBE with a receipt: after it nothing more arrives on that subscription.
    const unsub = s.receipt('unsub-1');
    inbox.sub.unsubscribe({ receipt: 'unsub-1' });
    const r = await unsub;
    assert.equal(r.command, 'RECEIPT');
    assert.equal(r.headers['receipt-id'], 'unsub-1');
    const other = await s.subscribe(dest);
    await s.publish({ destination: dest, body: 'two' });
    assert.equal((await other.next()).body, 'two');
    assertNoMore(inbox, 'unsubscribed subscription');
    assert.deepEqual(s.unhandled, [], 'a MESSAGE arrived for the unsubscribed subscription');
    // ACK with a receipt on a client-ack queue subscription.
    const q = `/queue/${unique('receipts')}`;
    const qi = await s.subscribe(q, { ack: 'client-individual' });
    await s.publish({ destination: q, body: 'ackme' });
    const m = await qi.next();
    const acked = s.receipt('ack-1');
    m.ack({ receipt: 'ack-1' });
    await acked;
    // DISCONNECT: deactivate() sends it with a receipt and waits for the RECEIPT.
    const disconnected = new Promise((resolve) => { s.client.onDisconnect = resolve; });
    await withTimeout(s.client.deactivate(), 'deactivate (DISCONNECT receipt, then close)');
    const d = await withTimeout(disconnected, 'onDisconnect (RECEIPT for DISCONNECT)');
    assert.equal(d.command, 'RECEIPT');
    assert.match(d.headers['receipt-id'], /^close-/);
  });
});

test('heart-beats 100,100: connection stays up across >1 s idle and still works', async () => {
  await sessions(async (open) => {
    // The client gives up after 5 silent intervals (500 ms) rather than its
    // default 2, for the same reason the broker runs with --heart-beat-grace 5:
    // a loaded machine may stall either process for 200 ms.
    const s = await open('heart-beating', WS_URL(), { heartbeatIncoming: 100, heartbeatOutgoing: 100, heartbeatGracePeriods: 5 });
    const p = await open('publisher');
    assert.equal(s.connected.headers['heart-beat'], '100,100', 'CONNECTED heart-beat (broker runs with --heart-beat 100,100)');
    const dest = `/topic/${unique('hb')}`;
    const inbox = await s.subscribe(dest);
    const beforeIn = s.heartbeats;
    const beforeOut = s.rawOut.filter((d) => d === '\n' || String(d) === '\n').length;
    const idle = 1300; // the idle period under test
    const t0 = Date.now();
    await sleep(idle);
    const elapsed = Date.now() - t0;
    const gotIn = s.heartbeats - beforeIn;
    const times = s.heartbeatTimes.slice(beforeIn);
    const maxGap = Math.max(0, ...times.slice(1).map((t, i) => t - times[i]));
    const sentOut = s.rawOut.filter((d) => d === '\n' || String(d) === '\n').length - beforeOut;
    assert.equal(s.heartbeatLost, false, `client saw no broker activity for 5 intervals (onHeartbeatLost); largest gap between heart-beats ${maxGap} ms`);
    assert.equal(s.closes.items.length, 0, `connection closed during idle: ${JSON.stringify(s.closes.items.map((e) => [e.code, String(e.reason)]))}`);
    assert.ok(s.client.connected, 'still connected after idling');
    // 100 ms each way over ~1.3 s: expect about 13 each; allow for timer slack.
    assert.ok(gotIn >= 6, `received ${gotIn} broker heart-beats in ${elapsed} ms, want >= 6 (largest gap ${maxGap} ms)`);
    assert.ok(sentOut >= 6, `sent ${sentOut} client heart-beats in ${elapsed} ms, want >= 6`);
    await p.publish({ destination: dest, body: 'after idle' });
    assert.equal((await inbox.next()).body, 'after idle');
    await s.publish({ destination: dest, body: 'from the idle client' });
    assert.equal((await inbox.next()).body, 'from the idle client');
  });
});

test('heart-beats: the broker closes a client that promised heart-beats and went silent', async () => {
  const ws = new WebSocket(WS_URL(), ['v12.stomp']);
  const frames = new Inbox('raw frames');
  const closed = new Inbox('close');
  ws.on('message', (d) => frames.push(d.toString()));
  ws.on('close', (code, reason) => closed.push({ code, reason: reason.toString() }));
  ws.on('error', () => {});
  try {
    await withTimeout(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 'raw WebSocket open');
    ws.send('CONNECT\naccept-version:1.2\nhost:127.0.0.1\nheart-beat:100,0\n\n\0');
    const connected = await frames.next();
    assert.match(connected, /^CONNECTED\n/);
    assert.match(connected, /\nheart-beat:100,100\n/);
    const t0 = Date.now();
    // The broker's grace is 5 intervals (500 ms); 5 s is far beyond it.
    const c = await closed.next(5000);
    const after = Date.now() - t0;
    assert.ok(after >= 300, `closed after only ${after} ms, before 5 silent intervals of 100 ms`);
    assert.ok(c.code !== undefined);
  } finally {
    ws.terminate();
  }
});

test('binary bodies with NUL bytes round-trip byte-exact (topic and queue)', async () => {
  await sessions(async (open) => {
    const s = await open('binary subscriber');
    const p = await open('binary publisher');
    const body = new Uint8Array(70_000);
    for (let i = 0; i < 256; i++) body[i] = i; // every byte value, NUL first
    for (let i = 256; i < body.length; i++) body[i] = (i * 7919) % 251 === 0 ? 0 : (i * 31) & 0xff;
    body[body.length - 1] = 0; // a trailing NUL too
    for (const kind of ['topic', 'queue']) {
      const dest = `/${kind}/${unique('bin')}`;
      const inbox = await s.subscribe(dest);
      await p.publish({ destination: dest, binaryBody: body, headers: { 'content-type': 'application/octet-stream' } });
      const m = await inbox.next();
      assert.equal(m.headers['content-length'], String(body.length), 'content-length header');
      assert.equal(m.headers['content-type'], 'application/octet-stream');
      const diff = bytesDiff(m.binaryBody, body);
      assert.equal(diff, '', `${kind}: binary body differs: ${diff}`);
      const raw = s.rawIn.filter((r) => r.data.toString('latin1').startsWith('MESSAGE') && r.data.toString('latin1').includes(dest));
      assert.equal(raw.length, 1, 'one WebSocket message for the MESSAGE frame');
      assert.equal(raw[0].isBinary, true, 'a body with NULs goes out as a binary WebSocket message');
    }
    // Invalid UTF-8 without NULs is binary on the wire as well.
    const dest = `/topic/${unique('latin1')}`;
    const inbox = await s.subscribe(dest);
    const bad = new Uint8Array([0xff, 0xfe, 0x41, 0xc3, 0x28]);
    await p.publish({ destination: dest, binaryBody: bad });
    const m = await inbox.next();
    assert.equal(bytesDiff(m.binaryBody, bad), '');
    const raw = s.rawIn.filter((r) => r.data.toString('latin1').includes(dest) && r.data.toString('latin1').startsWith('MESSAGE'));
    assert.equal(raw.length, 1);
    assert.equal(raw[0].isBinary, true, 'a body with invalid UTF-8 goes out as a binary WebSocket message');
  });
});

test('queue: client-individual ACK and NACK; a NACKed message comes back redelivered:true', async () => {
  await sessions(async (open) => {
    const c = await open('consumer');
    const p = await open('producer');
    const q = `/queue/${unique('nack')}`;
    const inbox = await c.subscribe(q, { ack: 'client-individual' });
    for (const b of ['m1', 'm2', 'm3']) await p.publish({ destination: q, body: b });
    const got = await inbox.take(3);
    assert.deepEqual(got.map((m) => m.body).sort(), ['m1', 'm2', 'm3']);
    for (const m of got) {
      assert.ok(m.headers.ack, `MESSAGE ${m.body} carries an ack header (STOMP 1.2)`);
      assert.notEqual(m.headers.redelivered, 'true', `${m.body} is a first delivery`);
    }
    const by = Object.fromEntries(got.map((m) => [m.body, m]));
    // ACK m1 and m3, NACK m2 (out of order: client-individual acks only that message).
    by.m3.ack();
    const nacked = c.receipt('nack-m2');
    by.m2.nack({ receipt: 'nack-m2' });
    await nacked;
    by.m1.ack();
    const again = await inbox.next();
    assert.equal(again.body, 'm2', 'the NACKed message is delivered again');
    assert.equal(again.headers.redelivered, 'true', 'redelivered header on the second delivery');
    const acked = c.receipt('ack-m2');
    again.ack({ receipt: 'ack-m2' });
    await acked;
    assertNoMore(inbox, 'after acking everything');
    await c.close();
    // Nothing is left on the queue: a new consumer gets only a fresh marker.
    const d = await open('second consumer');
    const di = await d.subscribe(q, { ack: 'client-individual' });
    await p.publish({ destination: q, body: 'marker' });
    const first = await di.next();
    assert.equal(first.body, 'marker', `acked messages came back: got ${first.body} (redelivered=${first.headers.redelivered})`);
    first.ack();
  });
});

test('queue: client ack is cumulative; unacked messages return to the queue on disconnect', async () => {
  await sessions(async (open) => {
    const p = await open('producer');
    const q = `/queue/${unique('cumulative')}`;
    const c = await open('client-ack consumer');
    const inbox = await c.subscribe(q, { ack: 'client' });
    for (const b of ['c1', 'c2', 'c3']) await p.publish({ destination: q, body: b });
    const got = await inbox.take(3);
    assert.deepEqual(got.map((m) => m.body), ['c1', 'c2', 'c3'], 'one consumer gets queue messages in order');
    const acked = c.receipt('ack-c2');
    got[1].ack({ receipt: 'ack-c2' }); // acks c1 and c2, not c3
    await acked;
    await c.close();
    const d = await open('second consumer');
    const di = await d.subscribe(q, { ack: 'client-individual' });
    const back = await di.next();
    assert.equal(back.body, 'c3', 'only the unacked message returns to the queue');
    assert.equal(back.headers.redelivered, 'true');
    back.ack();
    await p.publish({ destination: q, body: 'marker' });
    const marker = await di.next();
    assert.equal(marker.body, 'marker', `expected only c3 then the marker, got ${marker.body}`);
  });
});

test('queue: two auto-ack consumers share the work, each message delivered once', async () => {
  await sessions(async (open) => {
    const a = await open('worker A');
    const b = await open('worker B');
    const p = await open('producer');
    const q = `/queue/${unique('work')}`;
    const both = new Inbox('messages of both workers');
    await a.subscribe(q, {}, both);
    await b.subscribe(q, {}, both);
    const n = 40;
    for (let i = 0; i < n; i++) p.client.publish({ destination: q, body: `w${i}` });
    const got = (await both.take(n)).map((m) => m.body);
    assert.equal(new Set(got).size, n, `a message was delivered twice: ${got}`);
    await p.publish({ destination: q, body: 'marker' });
    assert.equal((await both.next()).body, 'marker', 'nothing but the marker after all 40');
  });
});

test('wss: connect, subscribe, publish over TLS with the test certificate; ws and wss share one broker', async () => {
  await sessions(async (open) => {
    const tlsOpts = { wsOptions: { ca: TLS_CA() } };
    const s = await open('wss subscriber', WSS_URL(), tlsOpts);
    assert.ok(WSS_URL().startsWith('wss://'));
    assert.equal(s.socket.protocol, 'v12.stomp');
    assert.equal(s.socket._socket.encrypted, true, 'the socket is TLS');
    const ps = await open('wss publisher', WSS_URL(), tlsOpts);
    const pw = await open('ws publisher', WS_URL());
    const dest = `/topic/${unique('wss')}`;
    const inbox = await s.subscribe(dest);
    await ps.publish({ destination: dest, body: 'over wss' });
    await pw.publish({ destination: dest, body: 'from plain ws' });
    const bin = new Uint8Array([0, 1, 0, 2, 0xff, 0]);
    await ps.publish({ destination: dest, binaryBody: bin });
    const got = await inbox.take(3);
    assert.deepEqual(got.slice(0, 2).map((m) => m.body), ['over wss', 'from plain ws']);
    assert.equal(bytesDiff(got[2].binaryBody, bin), '');
  });
});

test('a message over the broker limit: ERROR naming the limit, then close 1009 (not 1006)', async () => {
  const s = new Session('oversize', WS_URL());
  try {
    await s.connect();
    const errors = new Inbox('oversize ERROR frames');
    s.client.onStompError = (f) => errors.push(f);
    // 17 MiB in one WebSocket message: over the default 16 MiB.
    s.client.publish({ destination: `/queue/${unique('big')}`, body: 'x'.repeat(17 << 20) });
    const e = await errors.next();
    assert.equal(e.headers.message, 'WebSocket message too large: the limit is 16777216 bytes (16 MiB) ' +
      "(the broker's --max-ws-message, which defaults to --max-frame-size)");
    const evt = await s.closes.next();
    assert.equal(evt.code, 1009, `close code ${evt.code} ${String(evt.reason)}`);
  } catch (err) {
    throw annotate(err, s.report());
  } finally {
    await s.close();
  }
});
