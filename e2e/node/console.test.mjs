// The operator console in a real browser: Debian's Chromium, driven by
// playwright-core, opens the broker's own /console page (served on the STOMP
// port), waits for the live figures, sees them move while a raw-TCP STOMP
// publisher in Node sends traffic, then uses the page's WebSocket panel to
// subscribe, publish and receive (its own message and one from TCP). It
// saves screenshots (light and dark colour schemes) to the temp folder and
// prints their paths.
//
// The console's URL is STOMPICA_HTTP when set, else http://$STOMPICA_TCP
// (the HTTP console shares the plain STOMP port).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { TCP_ADDR, CHROMIUM, WAIT, unique, withTimeout, tcpHostPort } from './env.mjs';

const HTTP_URL = () => process.env.STOMPICA_HTTP || `http://${TCP_ADDR()}`;

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM(),
    timeout: 30_000,
    args: [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--ignore-certificate-errors',
    ],
  });
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

  async open() {
    const { host, port } = tcpHostPort();
    this.sock = connect({ host, port });
    this.sock.on('data', (d) => this.feed(d));
    this.sock.on('error', () => {});
    await withTimeout(new Promise((resolve, reject) => {
      this.sock.once('connect', resolve);
      this.sock.once('error', reject);
    }), `TCP connect to ${host}:${port}`);
    this.write('CONNECT', { 'accept-version': '1.2', host: 'localhost', 'heart-beat': '0,0' });
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

  close() {
    this.sock.destroy();
  }
}

// figure reads the raw number behind a console figure (its data-value).
const figure = (page, id) => page.$eval(`#${id}`, (e) => Number(e.dataset.value));

test('console: live figures, queue table, and the page\'s own WebSocket client', async () => {
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
