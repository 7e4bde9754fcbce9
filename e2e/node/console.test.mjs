// The operator console in a real browser: Debian's Chromium, driven by
// playwright-core, opens the broker's own /console page (served on the STOMP
// port), waits for the live figures, sees them move while a raw-TCP STOMP
// publisher in Node sends traffic, then uses the page's WebSocket panel to
// subscribe, publish and receive (its own message and one from TCP). A
// second test shows what is stuck and fixes it from the page: the unacked
// column of a queue whose consumer holds messages, closing that consumer's
// connection, purging and deleting the queue, the recent errors. It saves
// screenshots (light and dark colour schemes) to the temp folder and
// prints their paths.
//
// A third test runs in the Go driver's durable run (TestNodeDurable, phase
// durable-console: a broker with --data-dir and --record) and checks the
// durable queues, durable subscriptions and streams with the figures the
// driver set up.
//
// The console's URL is STOMPICA_HTTP when set, else http://$STOMPICA_TCP
// (the HTTP console shares the plain STOMP port).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TCP_ADDR, WAIT, unique, withTimeout, tcpHostPort, env } from './env.mjs';
import { launchChromium, PHASE } from './chromium.mjs';

const HTTP_URL = () => process.env.STOMPICA_HTTP || `http://${TCP_ADDR()}`;

let browser;

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

// RawStomp is a minimal STOMP 1.2 client over a raw TCP socket: enough to
// publish with receipts (no heart-beats).
class RawStomp {
  constructor() {
    this.buf = Buffer.alloc(0);
    this.frames = [];
    this.waiters = [];
    this.seq = 0;
  }

  async open(headers = {}) {
    const { host, port } = tcpHostPort();
    this.sock = connect({ host, port });
    this.closed = new Promise((resolve) => this.sock.once('close', resolve));
    this.sock.on('data', (d) => this.feed(d));
    this.sock.on('error', () => {});
    await withTimeout(new Promise((resolve, reject) => {
      this.sock.once('connect', resolve);
      this.sock.once('error', reject);
    }), `TCP connect to ${host}:${port}`);
    this.write('CONNECT', { 'accept-version': '1.2', host: 'localhost', 'heart-beat': '0,0', ...headers });
    const f = await this.next((x) => x.command === 'CONNECTED' || x.command === 'ERROR', 'CONNECTED');
    assert.equal(f.command, 'CONNECTED', `CONNECT answered ${JSON.stringify(f)}`);
  }

  write(command, headers, body = '') {
    let s = `${command}\n`;
    for (const [k, v] of Object.entries(headers)) s += `${k}:${v}\n`;
    const b = Buffer.from(body, 'utf8');
    if (command === 'SEND') s += `content-length:${b.length}\n`;
    this.sock.write(Buffer.concat([Buffer.from(`${s}\n`, 'utf8'), b, Buffer.from([0])]));
  }

  feed(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      let i = 0;
      while (i < this.buf.length && (this.buf[i] === 10 || this.buf[i] === 13)) i++;
      this.buf = this.buf.subarray(i);
      const he = this.buf.indexOf('\n\n');
      if (he < 0) return;
      const lines = this.buf.subarray(0, he).toString('utf8').split('\n');
      const headers = {};
      for (const l of lines.slice(1)) {
        const c = l.indexOf(':');
        if (c > 0 && !(l.slice(0, c) in headers)) headers[l.slice(0, c)] = l.slice(c + 1);
      }
      const start = he + 2;
      const end = headers['content-length'] !== undefined
        ? start + Number(headers['content-length']) : this.buf.indexOf(0, start);
      if (end < 0 || this.buf.length < end + 1) return;
      this.frames.push({ command: lines[0], headers, body: this.buf.subarray(start, end).toString('utf8') });
      this.buf = this.buf.subarray(end + 1);
      this.wake();
    }
  }

  wake() {
    for (const w of [...this.waiters]) {
      const i = this.frames.findIndex(w.match);
      if (i >= 0) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(this.frames.splice(i, 1)[0]);
      }
    }
  }

  next(match, what) {
    return withTimeout(new Promise((resolve) => {
      this.waiters.push({ match, resolve });
      this.wake();
    }), what);
  }

  // send publishes bodies to dest; the last SEND carries a receipt, so the
  // broker has routed them all when this resolves.
  async send(dest, bodies) {
    const id = `r${++this.seq}`;
    bodies.forEach((b, i) => {
      const h = { destination: dest };
      if (i === bodies.length - 1) h.receipt = id;
      this.write('SEND', h, b);
    });
    const f = await this.next((x) => (x.command === 'RECEIPT' && x.headers['receipt-id'] === id) || x.command === 'ERROR',
      `RECEIPT ${id}`);
    assert.equal(f.command, 'RECEIPT', `SEND answered ${JSON.stringify(f)}`);
  }

  // subscribe subscribes with a receipt and waits for it.
  async subscribe(dest, headers = {}) {
    const id = `r${++this.seq}`;
    this.write('SUBSCRIBE', { id: `sub-${id}`, destination: dest, receipt: id, ...headers });
    const f = await this.next((x) => (x.command === 'RECEIPT' && x.headers['receipt-id'] === id) || x.command === 'ERROR',
      `RECEIPT ${id}`);
    assert.equal(f.command, 'RECEIPT', `SUBSCRIBE answered ${JSON.stringify(f)}`);
  }

  close() {
    this.sock.destroy();
  }
}

// figure reads the raw number behind a console figure (its data-value).
const figure = (page, id) => page.$eval(`#${id}`, (e) => Number(e.dataset.value));

if (PHASE === '') test('console: live figures, queue table, and the page\'s own WebSocket client', async () => {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 }, colorScheme: 'light' });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  const pub = new RawStomp();
  try {
    const resp = await page.goto(`${HTTP_URL()}/console`, { timeout: WAIT });
    assert.equal(resp.status(), 200);
    assert.equal(await page.title(), 'stompica console');

    // The figures render from /console/api.
    await page.waitForFunction(() => document.getElementById('live').textContent === 'live'
      && document.getElementById('stat-connections').dataset.value !== undefined, null, { timeout: WAIT });
    const version = await page.textContent('#version');
    assert.match(version, /^v\d+\.\d+\.\d+/);
    const msgsBefore = await figure(page, 'stat-msgs-in');
    const tcpBefore = await figure(page, 'stat-tcp');

    // Traffic from a raw TCP publisher: 25 messages to a queue nobody
    // consumes. The page sees the connection, the counters, the rate and
    // the queue's depth.
    await pub.open();
    const queue = `/queue/${unique('console')}`;
    await pub.send(queue, Array.from({ length: 25 }, (_, i) => `job ${i}`));
    await page.waitForFunction(([q, before, tcp]) => {
      const depth = document.querySelector(`#queues tr[data-queue="${CSS.escape(q)}"] td[data-col="depth"]`);
      return depth && Number(depth.dataset.value) === 25
        && Number(document.getElementById('stat-msgs-in').dataset.value) >= before + 25
        && Number(document.getElementById('stat-tcp').dataset.value) >= tcp + 1;
    }, [queue, msgsBefore, tcpBefore], { timeout: WAIT });
    // The in-rate is computed from two polls around the traffic.
    await page.waitForFunction(() => Number(document.getElementById('stat-in-rate').dataset.value) > 0,
      null, { timeout: WAIT });

    // The page's WebSocket panel: connect, subscribe, publish, receive.
    const wsBefore = await figure(page, 'stat-ws');
    await page.click('#ws-connect');
    await page.waitForFunction(() => /^connected/.test(document.getElementById('ws-status').textContent),
      null, { timeout: WAIT });
    const topic = `/topic/${unique('console')}`;
    await page.fill('#sub-dest', topic);
    await page.click('#sub-btn');
    await page.waitForSelector(`#subs .chip:not(.pending)[data-dest="${topic}"]`, { timeout: WAIT });
    await page.fill('#pub-dest', topic);
    const body = `hello from the console e2e ✓ ${Date.now()}`;
    await page.fill('#pub-body', body);
    await page.click('#pub-btn');
    await page.waitForFunction((b) => [...document.querySelectorAll('#received li.message .mbody')]
      .some((e) => e.textContent === b), body, { timeout: WAIT });

    // A message from the TCP publisher reaches the page's subscription too.
    await pub.send(topic, ['from raw TCP']);
    await page.waitForFunction(() => [...document.querySelectorAll('#received li.message .mbody')]
      .some((e) => e.textContent === 'from raw TCP'), null, { timeout: WAIT });
    assert.equal(await page.textContent('#recv-count'), '2');

    // The figures show the page's own WebSocket session and subscription.
    await page.waitForFunction(([t, ws]) => {
      const subs = document.querySelector(`#topics tr[data-topic="${CSS.escape(t)}"] td[data-col="subscribers"]`);
      return subs && Number(subs.dataset.value) === 1
        && Number(document.getElementById('stat-ws').dataset.value) >= ws + 1;
    }, [topic, wsBefore], { timeout: WAIT });

    // One more burst, seen by the figures, so that the screenshot shows it.
    const burstBefore = await figure(page, 'stat-msgs-in');
    await pub.send('/topic/console-e2e-burst', Array.from({ length: 40 }, (_, i) => `tick ${i}`));
    await page.waitForFunction((before) => Number(document.getElementById('stat-msgs-in').dataset.value) >= before + 40
      && Number(document.getElementById('stat-in-rate').dataset.value) > 0, burstBefore, { timeout: WAIT });

    const shot = join(tmpdir(), `stompica-console-${process.pid}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`console screenshot (light): ${shot}`);
    await page.emulateMedia({ colorScheme: 'dark' });
    const dark = join(tmpdir(), `stompica-console-${process.pid}-dark.png`);
    await page.screenshot({ path: dark, fullPage: true });
    console.log(`console screenshot (dark): ${dark}`);

    // Disconnect from the panel: the broker closes the WebSocket.
    await page.click('#ws-connect');
    await page.waitForFunction(() => document.getElementById('ws-status').textContent === 'disconnected',
      null, { timeout: WAIT });

    assert.deepEqual(problems, [], 'the page logged no errors (CSP violations included)');
  } finally {
    pub.close();
    await context.close();
  }
});

if (PHASE === '') test('console: what is stuck, and fixing it (unacked, close a connection, purge and delete a queue, recent errors)', async () => {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1200 }, colorScheme: 'light' });
  const page = await context.newPage();
  const problems = [], dialogs = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('dialog', (d) => { dialogs.push(d.message()); d.accept(); });
  const pub = new RawStomp(), cons = new RawStomp();
  try {
    const resp = await page.goto(`${HTTP_URL()}/console`, { timeout: WAIT });
    assert.equal(resp.status(), 200);
    await page.waitForFunction(() => document.getElementById('live').textContent === 'live', null, { timeout: WAIT });

    // A consumer takes 7 messages with ack:client and acknowledges none.
    const login = unique('stuck-consumer');
    const queue = `/queue/${unique('stuck')}`;
    await pub.open();
    await cons.open({ login });
    await cons.subscribe(queue, { ack: 'client', 'prefetch-count': '100' });
    await pub.send(queue, Array.from({ length: 7 }, (_, i) => `job ${i}`));
    for (let i = 0; i < 7; i++) {
      const m = await cons.next((x) => x.command === 'MESSAGE', `MESSAGE ${i}`);
      assert.equal(m.body, `job ${i}`);
    }

    // The queue's unacked column shows the 7 in flight (none waiting), the
    // connection's row shows them too, and so does the Unacked tile.
    const qrow = `#queues tr[data-queue="${queue}"]`, crow = `#conns tr[data-login="${login}"]`;
    const value = (sel) => page.$eval(sel, (e) => Number(e.dataset.value));
    await page.waitForFunction(([q, c]) => {
      const v = (sel) => { const e = document.querySelector(sel); return e ? Number(e.dataset.value) : NaN; };
      return v(`${q} td[data-col="unacked"]`) === 7 && v(`${q} td[data-col="depth"]`) === 0
        && v(`${q} td[data-col="consumers"]`) === 1 && v(`${c} td[data-col="unacked"]`) === 7
        && v(`${c} td[data-col="subscriptions"]`) === 1 && v('#stat-unacked') >= 7;
    }, [qrow, crow], { timeout: WAIT });
    assert.equal(await page.textContent(`${crow} td[data-col="login"]`), login);
    assert.equal(await page.textContent(`${crow} td[data-col="version"]`), '1.2');
    assert.equal(await page.textContent(`${crow} td[data-col="transport"]`), 'tcp');
    // Throughput with units.
    assert.match(await page.textContent('#stat-bytes-in-rate'), /^(–|[\d.]+ (B|KiB|MiB|GiB)\/s)$/);
    const shot = join(tmpdir(), `stompica-console-${process.pid}-stuck.png`);
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`console screenshot (stuck queue): ${shot}`);

    // Close the consumer's connection from its row: the client gets the
    // ERROR and the close; its 7 messages go back to the queue.
    await page.click(`${crow} button.close`);
    const err = await cons.next((x) => x.command === 'ERROR', 'the ERROR of the close');
    assert.equal(err.headers.message, 'connection closed by an administrator');
    await withTimeout(cons.closed, 'the consumer\'s socket to close');
    await page.waitForFunction(([q, c]) => {
      const v = (sel) => { const e = document.querySelector(sel); return e ? Number(e.dataset.value) : NaN; };
      return !document.querySelector(c) && v(`${q} td[data-col="depth"]`) === 7 && v(`${q} td[data-col="unacked"]`) === 0
        && v(`${q} td[data-col="redelivered"]`) === 7 && v(`${q} td[data-col="consumers"]`) === 0;
    }, [qrow, crow], { timeout: WAIT });
    assert.match(await page.textContent('#conns-flash'), /^closed \d+ \(stuck-consumer/);

    // Purge: the depth goes to 0.
    await page.click(`${qrow} button.purge`);
    await page.waitForFunction((q) => {
      const e = document.querySelector(`${q} td[data-col="depth"]`);
      return e && Number(e.dataset.value) === 0;
    }, qrow, { timeout: WAIT });
    assert.equal(await page.textContent('#queues-flash'), `purged 7 from ${queue}`);
    assert.equal(await value(`${qrow} td[data-col="enqueued"]`), 7);

    // Delete: the queue is gone.
    await page.click(`${qrow} button.delete`);
    await page.waitForFunction((q) => !document.querySelector(q), qrow, { timeout: WAIT });
    assert.equal(await page.textContent('#queues-flash'), `deleted ${queue} (0 dropped)`);

    // The recent errors behind the Errors tile name the close.
    await page.click('#errors-tile');
    // (Message, Time, Conn, Peer, Login.)
    await page.waitForFunction((l) => [...document.querySelectorAll('#errors tbody tr')]
      .some((tr) => tr.cells[0].textContent === 'connection closed by an administrator' && tr.cells[4].textContent === l),
    login, { timeout: WAIT });

    assert.equal(dialogs.length, 3, `one confirmation per action: ${JSON.stringify(dialogs)}`);
    assert.match(dialogs[0], /^Close connection \d+ from 127\.0\.0\.1:\d+ \(stuck-consumer/);
    assert.equal(dialogs[1], `Purge ${queue}: drop its waiting messages?`);
    assert.equal(dialogs[2], `Delete ${queue} and its waiting messages?`);
    const shot2 = join(tmpdir(), `stompica-console-${process.pid}-errors.png`);
    await page.screenshot({ path: shot2, fullPage: true });
    console.log(`console screenshot (after the fixes, recent errors open): ${shot2}`);
    assert.deepEqual(problems, [], 'the page logged no errors (CSP violations included)');
  } finally {
    pub.close();
    cons.close();
    await context.close();
  }
});

// The durable run: the driver (TestNodeDurable) left a durable queue with
// STOMPICA_DURABLE_QUEUE_DEPTH messages, the two durable subscriptions of
// browser.test.mjs away with STOMPICA_DURABLE_AWAY messages waiting each,
// and two streams: STOMPICA_STREAM with STOMPICA_STREAM_MESSAGES messages
// (offsets 1..n, published first) and a recorded topic STOMPICA_RECORDED
// with 2 after them.
if (PHASE === 'durable-console') {
  test('console: durable queues, durable subscriptions (away, messages waiting) and streams, with --data-dir', async () => {
    const context = await browser.newContext({ viewport: { width: 1440, height: 1300 }, colorScheme: 'light' });
    const page = await context.newPage();
    const problems = [];
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    const num = (name) => Number(env(name));
    const queue = env('STOMPICA_DURABLE_QUEUE'), depth = num('STOMPICA_DURABLE_QUEUE_DEPTH');
    const topic = env('STOMPICA_DURABLE_TOPIC'), away = num('STOMPICA_DURABLE_AWAY');
    const clientID = env('STOMPICA_DURABLE_CLIENT_ID');
    const stream = env('STOMPICA_STREAM'), n = num('STOMPICA_STREAM_MESSAGES'), recorded = env('STOMPICA_RECORDED');
    try {
      const resp = await page.goto(`${HTTP_URL()}/console`, { timeout: WAIT });
      assert.equal(resp.status(), 200);
      // Every figure of a row, by data-col: {col: [data-value, text]}.
      const rowOf = (sel) => page.$$eval(`${sel} td[data-col]`, (tds) => Object.fromEntries(
        tds.map((td) => [td.dataset.col, [td.dataset.value, td.textContent]])));
      const waitRow = async (sel, what, want) => {
        try {
          await page.waitForFunction(([s, w]) => {
            const tr = document.querySelector(s);
            return tr && Object.entries(w).every(([col, v]) => tr.querySelector(`td[data-col="${col}"]`)?.dataset.value === String(v));
          }, [sel, want], { timeout: WAIT });
        } catch (err) {
          throw new Error(`${what}: ${err.message}; row: ${JSON.stringify(await rowOf(sel).catch(() => null))}`);
        }
        return rowOf(sel);
      };

      // The durable queue, marked.
      const qrow = `#queues tr[data-queue="${queue}"]`;
      await waitRow(qrow, 'the durable queue', { depth });
      assert.equal(await page.getAttribute(qrow, 'data-durable'), 'true');
      assert.equal(await page.textContent(`${qrow} td:first-child .mark`), 'durable');

      // The two durable subscriptions: away, each keeping what was published.
      const keys = { rabbitmq: 'rabbitmq/_browser-durable', activemq: `activemq/_${clientID}/_browser-news` };
      for (const [style, key] of Object.entries(keys)) {
        const row = await waitRow(`#durables tr[data-durable="${key}"]`, `durable subscription ${key}`,
          { waiting: away, connected: false, unacked: 0, stored: true });
        assert.deepEqual(row, {
          topic: [topic, topic], style: [style, style], connected: ['false', 'away'],
          waiting: [String(away), String(away)], unacked: ['0', '0'], stored: ['true', 'yes'],
        }, `durable subscription ${key}`);
      }
      assert.equal(await page.textContent('#durable-count'), '2');

      // The streams: messages and offsets, nobody reading.
      const srow = await waitRow(`#streams tr[data-stream="${stream}"]`, stream,
        { messages: n, first: 1, last: n, subscribers: 0, readers: 0 });
      assert.match(srow.bytes[1], /^~[\d.]+ (B|KiB|MiB)$/, 'two streams share the log: a share of its bytes');
      assert.ok(Number(srow.bytes[0]) > n * 10, `bytes ${srow.bytes[0]}`);
      assert.ok(Date.parse(srow.newest[0]) > Date.now() - 5 * 60_000, `newest ${srow.newest[0]}`);
      await waitRow(`#streams tr[data-stream="${recorded}"]`, recorded,
        { messages: 2, first: n + 1, last: n + 2, readers: 0 });
      assert.equal(await page.textContent('#stream-count'), '2');

      const shot = join(tmpdir(), `stompica-console-${process.pid}-durable.png`);
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`console screenshot (durable queue, subscriptions and streams): ${shot}`);
      assert.deepEqual(problems, [], 'the page logged no errors (CSP violations included)');
    } finally {
      await context.close();
    }
  });
}
