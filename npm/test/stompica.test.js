'use strict';
// Unit tests of the npm package's JavaScript: argument mapping, platform
// choice, log parsing, and the process handling against a stand-in binary
// (test/fake-broker.sh). The real broker is tested end to end by
// e2e/npm_test.go, which installs the packed tarball.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const stompica = require('../index.js');

const FAKE = path.join(__dirname, 'fake-broker.sh');

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code !== 'ESRCH';
  }
}

async function gone(pid, ms = 10000) {
  const end = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

test('run(processors, port, input_q, stale_q, ttl) maps to the original key=value arguments', () => {
  assert.deepEqual(stompica.seedArgs([0, 5555, 0, 0, 5000]),
    ['processors=0', 'port=5555', 'max_input_queue_size=0', 'max_stale_queue_size=0', 'TTL=5000']);
  assert.deepEqual(stompica.seedArgs([]),
    ['processors=0', 'port=0', 'max_input_queue_size=0', 'max_stale_queue_size=0', 'TTL=0']);
  assert.deepEqual(stompica.seedArgs([4]).slice(0, 2), ['processors=4', 'port=0']);
  for (const bad of [[-1], [1.5], ['5555'], [0, NaN], [0, 0, 0, 0, 0, 0]]) {
    assert.throws(() => stompica.seedArgs(bad), TypeError, `${JSON.stringify(bad)} accepted`);
  }
});

test('run({camelCase}) maps to --kebab-case flags', () => {
  assert.deepEqual(stompica.flagArgs({
    port: 5555, ttl: 5000, dataDir: '/var/lib/x', maxWSMessage: 10, tlsClientCa: 'ca.pem',
    httpAuth: true, pprof: false, wsOrigins: ['https://a', 'https://b'], logLevel: 'debug',
    'max-frame-size': 99, skipped: undefined, alsoSkipped: null,
  }), [
    '--port=5555', '--ttl=5000', '--data-dir=/var/lib/x', '--max-ws-message=10', '--tls-client-ca=ca.pem',
    '--http-auth', '--pprof=false', '--ws-origins=https://a,https://b', '--log-level=debug',
    '--max-frame-size=99',
  ]);
  assert.throws(() => stompica.flagArgs({ port: {} }), TypeError);
  assert.throws(() => stompica.flagArgs({ port: Infinity }), TypeError);
  assert.throws(() => stompica.flagArgs({ 'a b': 1 }), TypeError);
});

test('the binary is picked by platform and architecture, with a clear error elsewhere', () => {
  for (const [platform, arch] of [['darwin', 'arm64'], ['win32', 'x64'], ['linux', 'ia32'], ['freebsd', 'x64']]) {
    assert.throws(() => stompica.binaryPath(platform, arch, {}),
      (err) => err.message.includes(`not for ${platform} ${arch}`) && err.message.includes('linux x64 and linux arm64') &&
        err.message.includes('STOMPICA_EXECUTABLE'));
  }
  assert.equal(stompica.binaryPath('darwin', 'arm64', { STOMPICA_EXECUTABLE: '/opt/stompica' }), '/opt/stompica');
  for (const [arch, dir] of [['x64', 'linux-x64'], ['arm64', 'linux-arm64']]) {
    const want = path.join(__dirname, '..', 'bin', dir, 'stompica');
    if (fs.existsSync(want)) {
      assert.equal(stompica.binaryPath('linux', arch, {}), want);
    } else { // the source tree: `make npm` adds the binaries to the packed copy
      assert.throws(() => stompica.binaryPath('linux', arch, {}), /is missing; reinstall/);
    }
  }
});

test('the listening line is read from text and JSON logs', () => {
  assert.equal(stompica.listenPort('time=t level=INFO msg="stompica listening" addr=[::]:3490 tls=false'), 3490);
  assert.equal(stompica.listenPort('time=t level=INFO msg="stompica listening" addr=127.0.0.1:41234 tls=false'), 41234);
  assert.equal(stompica.listenPort('time=t level=INFO msg="stompica listening" addr=[::]:3491 tls=true'), null);
  assert.equal(stompica.listenPort('{"time":"t","level":"INFO","msg":"stompica listening","addr":"[::]:5555","tls":false}'), 5555);
  assert.equal(stompica.listenPort('{"msg":"stompica listening","addr":"[::]:3491","tls":true}'), null);
  assert.equal(stompica.listenPort('time=t level=INFO msg="shutting down"'), null);
});

test('ready resolves with the listening port; stop() resolves when the process has exited', async () => {
  const argsFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'stompica-npm-')), 'args');
  const b = stompica.run({ port: 0, ttl: 5000 },
    { binary: FAKE, silent: true, env: { FAKE_PORT: '4567', FAKE_ARGS_FILE: argsFile }, args: ['TTL=5000'] });
  assert.equal(b.port, 0);
  assert.equal(await b.ready, b);
  assert.equal(b.port, 4567);
  assert.deepEqual(fs.readFileSync(argsFile, 'utf8').trim().split('\n'), ['--stop-with-stdin', '--port=0', '--ttl=5000', 'TTL=5000']);
  assert.ok(alive(b.pid));
  assert.deepEqual(await b.stop(), { code: 0, signal: null });
  assert.ok(!alive(b.pid), `pid ${b.pid} still there after stop()`);
  assert.deepEqual(await b.stop(), { code: 0, signal: null }, 'a second stop() resolves the same');
});

test('run(0, 5555, 0, 0, 5000) passes the original arguments to the binary', async () => {
  const argsFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'stompica-npm-')), 'args');
  const saved = { ...process.env };
  Object.assign(process.env, { STOMPICA_EXECUTABLE: FAKE, FAKE_PORT: '5555', FAKE_ARGS_FILE: argsFile });
  let b;
  try {
    b = stompica.run(0, 5555, 0, 0, 5000);
  } finally {
    for (const k of ['STOMPICA_EXECUTABLE', 'FAKE_PORT', 'FAKE_ARGS_FILE']) {
      if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
    }
  }
  assert.equal(b.port, 5555);
  await b.ready;
  assert.deepEqual(fs.readFileSync(argsFile, 'utf8').trim().split('\n'),
    ['--stop-with-stdin', 'processors=0', 'port=5555', 'max_input_queue_size=0', 'max_stale_queue_size=0', 'TTL=5000']);
  assert.deepEqual(await b.stop(), { code: 0, signal: null });
});

test('ready rejects with the broker\'s log when it exits before listening', async () => {
  const failing = stompica.runArgs([], { binary: FAKE, silent: true, env: { FAKE_FAIL: '1' } });
  await assert.rejects(failing.ready, /exited \(code 1\) before it was listening:\n.*address already in use/);
  assert.deepEqual(await failing.exited, { code: 1, signal: null });
  const missing = stompica.runArgs([], { binary: path.join(__dirname, 'no-such-binary'), silent: true });
  await assert.rejects(missing.ready, /ENOENT/);
});

// A Node process that starts the stand-in broker, prints its pid once it is
// ready, and then does what `then` says.
function parentNode(then) {
  const script = `
    const b = require(${JSON.stringify(path.join(__dirname, '..', 'index.js'))})
      .runArgs([], { binary: ${JSON.stringify(FAKE)}, silent: true });
    b.ready.then(() => { console.log(b.pid); ${then} });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  const pid = new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    child.on('exit', () => reject(new Error(`node exited before the broker was ready: ${out}`)));
  });
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, pid, exit };
}

test('the broker does not outlive a Node process that exits', async () => {
  const p = parentNode('process.exit(3)');
  const pid = await p.pid;
  assert.deepEqual(await p.exit, { code: 3, signal: null });
  assert.ok(await gone(pid), `broker pid ${pid} outlived node`);
});

test('SIGTERM to Node stops the broker, then Node dies of the signal', async () => {
  const p = parentNode('');
  const pid = await p.pid;
  p.child.kill('SIGTERM');
  assert.deepEqual(await p.exit, { code: null, signal: 'SIGTERM' });
  assert.ok(await gone(pid), `broker pid ${pid} outlived node`);
});

test('an uncaught exception in Node takes the broker with it', async () => {
  const p = parentNode('setTimeout(() => { throw new Error("boom") }, 10)');
  const pid = await p.pid;
  assert.equal((await p.exit).code, 1);
  assert.ok(await gone(pid), `broker pid ${pid} outlived node`);
});
