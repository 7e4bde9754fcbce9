// A real browser: Debian's Chromium, driven by playwright-core, loads a page
// (served here on 127.0.0.1) that connects to stompica with @stomp/stompjs
// over the browser's own WebSocket, ws and wss. The page publishes and
// receives, and a message that Debian's python3-stomp publishes over raw TCP
// arrives in the page.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';
import { chromium } from 'playwright-core';
import { WS_URL, WSS_URL, CHROMIUM, WAIT, unique, pythonSend, withTimeout, annotate } from './env.mjs';

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
  await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
});

// openPage opens a fresh browser context and loads the test page for
// brokerURL and destination. report() returns the page's console so far.
async function openPage(brokerURL, dest) {
  const context = await browser.newContext();
  const consoleLines = [];
  const report = () => `--- page console (${brokerURL}):\n${consoleLines.join('\n')}`;
  const page = await context.newPage();
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  const q = new URLSearchParams({ url: brokerURL, dest });
  return { context, page, report, load: () => page.goto(`${pageBase}/index.html?${q}`, { timeout: BROWSER_WAIT }) };
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
  const { context, page, report, load } = await openPage(brokerURL, dest);
  try {
    await load();
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

    // DISCONNECT with a receipt, then the WebSocket closes.
    await page.evaluate(() => window.e2eDisconnect());
    await waitPage(page, 'the WebSocket to close after DISCONNECT', (s) => s.closed);
  } catch (err) {
    throw annotate(err, report());
  } finally {
    await context.close();
  }
}

test('Chromium over ws: @stomp/stompjs page subscribes, publishes, receives; python3-stomp (TCP) to browser', async () => {
  await browserScenario(WS_URL());
});

test('Chromium over wss (self-signed test certificate): same scenario', async () => {
  assert.ok(WSS_URL().startsWith('wss://'));
  await browserScenario(WSS_URL());
});
