// Debian's Chromium for the browser tests (browser.test.mjs,
// console.test.mjs), launched headless through playwright-core: never a
// downloaded browser.

import { chromium } from 'playwright-core';
import { CHROMIUM } from './env.mjs';

// launchChromium starts a headless Chromium that takes the broker's
// self-signed test certificate.
export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM(),
    timeout: 30_000,
    args: [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--ignore-certificate-errors',
    ],
  });
}

// PHASE is the step of a test that the Go driver runs in several node
// invocations around a broker restart (e2e/node_test.go, TestNodeDurable):
// each file registers only the tests of its phase ("" for TestNode's run).
export const PHASE = process.env.STOMPICA_PHASE || '';
