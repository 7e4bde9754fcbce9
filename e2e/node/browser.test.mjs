// A real browser: Debian's Chromium, driven by playwright-core, loads a page
// (served here on 127.0.0.1) that connects to stompica with @stomp/stompjs
// over the browser's own WebSocket, ws and wss. The page publishes and
// receives, and a message that Debian's python3-stomp publishes over raw TCP
// arrives in the page. Run by TestNodeDurable with STOMPICA_PHASE set, it
// checks instead that the page's durable subscriptions keep what is
// published while it is away, across a broker restart (see below).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';
import { WS_URL, WSS_URL, WAIT, unique, pythonSend, withTimeout, annotate, env } from './env.mjs';
import { launchChromium, PHASE } from './chromium.mjs';

// BROWSER_WAIT bounds browser-side steps that include Chromium's own work
// (a new page, a navigation) on a busy 2-core machine.
const BROWSER_WAIT = 30_000;

const here = dirname(fileURLToPath(import.meta.url));
const files = {
  '/stomp.umd.min.js': readFileSync(join(here, 'node_modules/@stomp/stompjs/bundles/stomp.umd.min.js')),
  '/page.js': readFileSync(join(here, 'browser-page.js')),
  '/index.html': Buffer.from(`<!doctype html>
<html><head><meta charset="utf-8"><title>stompica e2e</title>
<script src="/stomp.umd.min.js"></script>
<script src="/page.js"></script>
</head><body><p>stompica e2e</p></body></html>
`),
};
const types = { '.js': 'text/javascript; charset=utf-8', '.html': 'text/html; charset=utf-8' };

let server;
let pageBase;
let browser;

before(async () => {
  server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const body = files[path];
    if (!body) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': types[path.slice(path.lastIndexOf('.'))], 'cache-control': 'no-store' });
    res.end(body);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  pageBase = `http://127.0.0.1:${server.address().port}`;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
});

// onPage opens a fresh browser context, loads the test page for brokerURL
// and destination (extra: the page's connect and subs parameters), runs
// body(page), then has the page DISCONNECT and waits for its WebSocket to
// close. A failure carries the page's console.
async function onPage(brokerURL, dest, extra, body) {
  const context = await browser.newContext();
  const consoleLines = [];
  const page = await context.newPage();
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  const q = new URLSearchParams({ url: brokerURL, dest, ...extra });
  try {
    await page.goto(`${pageBase}/index.html?${q}`, { timeout: BROWSER_WAIT });
    await body(page);
    // DISCONNECT with a receipt, then the WebSocket closes.
    await page.evaluate(() => window.e2eDisconnect());
    await waitPage(page, 'the WebSocket to close after DISCONNECT', (s) => s.closed);
  } catch (err) {
    throw annotate(err, `--- page console (${brokerURL}):\n${consoleLines.join('\n')}`);
  } finally {
    await context.close();
  }
}

// waitPage waits until cond(window.e2e, arg) holds or the page reports an
// error, and returns window.e2e; it fails on page errors.
async function waitPage(page, what, cond, arg) {
  try {
    await page.waitForFunction(([src, a]) => {
      const s = window.e2e;
      // eslint-disable-next-line no-new-func
      return s && (s.errors.length > 0 || new Function('s', 'a', `return (${src})(s, a)`)(s, a));
    }, [cond.toString(), arg], { timeout: WAIT });
  } catch (err) {
    const state = await page.evaluate(() => window.e2e).catch(() => undefined);
    throw annotate(err, `while waiting for ${what}; page state: ${JSON.stringify(state)}`);
  }
  const state = await page.evaluate(() => window.e2e);
  assert.deepEqual(state.errors, [], `page errors while waiting for ${what}`);
  return state;
}

async function browserScenario(brokerURL) {
  const dest = `/topic/${unique('browser')}`;
  await onPage(brokerURL, dest, {}, async (page) => {
    let state = await waitPage(page, 'CONNECTED and the SUBSCRIBE receipt', (s) => s.subscribed);
    assert.equal(state.protocol, 'v12.stomp', 'the browser WebSocket negotiated v12.stomp');
    assert.equal(state.version, '1.2', 'CONNECTED version');

    // The page publishes to its own subscription and receives it.
    await page.evaluate(() => window.e2ePublish('hello from the browser ✓', { 'x-from': 'browser' }));
    state = await waitPage(page, 'message 1 (text from the page)', (s, n) => s.messages.length >= n, 1);
    let msgs = state.messages;
    assert.equal(msgs[0].body, 'hello from the browser ✓');
    assert.equal(msgs[0].headers['x-from'], 'browser');
    assert.equal(msgs[0].headers.destination, dest);

    // A binary body with NULs, byte-exact through the browser.
    const bytes = [0, 1, 2, 0, 255, 254, 0, 10, 13, 0];
    await page.evaluate((b) => window.e2ePublishBytes(b), bytes);
    msgs = (await waitPage(page, 'message 2 (binary from the page)', (s, n) => s.messages.length >= n, 2)).messages;
    assert.deepEqual(msgs[1].bytes, bytes, 'binary body received by the browser');

    // Debian's python3-stomp publishes over raw TCP; the browser receives it.
    await withTimeout(pythonSend(dest, 'hello from python ✓', { 'x-from': 'python3-stomp' }), 'python3-stomp send', 30_000);
    msgs = (await waitPage(page, 'message 3 (from python3-stomp over TCP)', (s, n) => s.messages.length >= n, 3)).messages;
    assert.equal(msgs[2].body, 'hello from python ✓');
    assert.equal(msgs[2].headers['x-from'], 'python3-stomp');
    assert.equal(msgs[2].headers.destination, dest);
    assert.equal(msgs.length, 3, `unexpected extra messages: ${JSON.stringify(msgs.slice(3))}`);
    // Text bodies came as text WebSocket messages, the NUL-laden one as binary.
    const kinds = (await page.evaluate(() => window.e2e.wsMessages))
      .filter((w) => w.command === 'MESSAGE').map((w) => w.kind);
    assert.deepEqual(kinds, ['text', 'binary', 'text'], 'WebSocket message kinds of the 3 MESSAGE frames');
  });
}

if (PHASE === '') {
  test('Chromium over ws: @stomp/stompjs page subscribes, publishes, receives; python3-stomp (TCP) to browser', async () => {
    await browserScenario(WS_URL());
  });

  test('Chromium over wss (self-signed test certificate): same scenario', async () => {
    assert.ok(WSS_URL().startsWith('wss://'));
    await browserScenario(WSS_URL());
  });
}

// A durable topic subscription from @stomp/stompjs in Chromium, in two
// phases around what the Go driver (TestNodeDurable) does: the page
// subscribes durably in both styles at once (RabbitMQ: durable:true,
// auto-delete:false and the id; ActiveMQ: client-id on CONNECT and
// activemq.subscriptionName), gets a live message on each and goes away;
// the driver publishes STOMPICA_DURABLE_AWAY messages "away-1".. to the
// topic and restarts the broker on the same --data-dir; the page comes back
// with the same headers and gets exactly those messages, in order, on each
// subscription, then a live one.
const durable = () => ({
  topic: env('STOMPICA_DURABLE_TOPIC'),
  away: Number(env('STOMPICA_DURABLE_AWAY')),
  page: {
    connect: JSON.stringify({ 'client-id': env('STOMPICA_DURABLE_CLIENT_ID') }),
    subs: JSON.stringify([
      { id: 'browser-durable', durable: 'true', 'auto-delete': 'false' },
      { id: 'browser-amq', 'activemq.subscriptionName': 'browser-news' },
    ]),
  },
});

// bySubscription groups the bodies received by subscription id.
function bySubscription(msgs) {
  const out = { 'browser-durable': [], 'browser-amq': [] };
  for (const m of msgs) {
    assert.ok(m.headers.subscription in out, `a message for subscription ${m.headers.subscription}`);
    assert.equal(m.headers.redelivered, undefined, `${m.body} flagged redelivered`);
    out[m.headers.subscription].push(m.body);
  }
  return out;
}

// durablePage runs body(d, page) on the page with the durable
// subscriptions.
function durablePage(body) {
  const d = durable();
  return onPage(WS_URL(), d.topic, d.page, (page) => body(d, page));
}

if (PHASE === 'durable-away') {
  test('Chromium durable subscriptions (RabbitMQ and ActiveMQ headers), phase 1: subscribe, a live message, go away', async () => {
    await durablePage(async (d, page) => {
      await waitPage(page, 'CONNECTED and both SUBSCRIBE receipts', (s) => s.subscribed);
      await page.evaluate(() => window.e2ePublish('live-before'));
      const state = await waitPage(page, 'live-before on both subscriptions', (s) => s.messages.length >= 2);
      assert.deepEqual(bySubscription(state.messages), { 'browser-durable': ['live-before'], 'browser-amq': ['live-before'] });
    });
  });
}

if (PHASE === 'durable-back') {
  test('Chromium durable subscriptions, phase 2 (after a broker restart): exactly the messages published while away, in order, then a live one', async () => {
    await durablePage(async (d, page) => {
      const kept = Array.from({ length: d.away }, (_, i) => `away-${i + 1}`);
      await waitPage(page, 'both subscriptions and what they kept', (s, n) => s.subscribed && s.messages.length >= n, 2 * d.away);
      await page.evaluate(() => window.e2ePublish('live-after'));
      const state = await waitPage(page, 'live-after on both subscriptions', (s, n) => s.messages.length >= n, 2 * d.away + 2);
      // Per subscription, anything kept comes before the live message:
      // live-after last on each proves nothing more was kept.
      assert.deepEqual(bySubscription(state.messages), {
        'browser-durable': [...kept, 'live-after'], 'browser-amq': [...kept, 'live-after'],
      });
      assert.equal(state.messages.length, 2 * d.away + 2);
      for (const m of state.messages) assert.equal(m.headers.destination, d.topic);
    });
  });
}
