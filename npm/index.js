'use strict';
// stompica for Node: starts the bundled stompica broker binary as a child
// process and hands back a handle to wait for it and stop it. The broker
// never outlives the Node process that started it (see README.md).

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const DEFAULT_PORT = 3490;

// The platforms this package bundles a binary for: process.platform-process.arch
// -> the folder under bin/.
const BUNDLED = new Set(['linux-x64', 'linux-arm64']);

// The original stompica's arguments, in the order run() takes them.
const SEED_KEYS = ['processors', 'port', 'max_input_queue_size', 'max_stale_queue_size', 'TTL'];

// How long stop() and the exit handlers wait after SIGTERM before SIGKILL:
// the broker bounds its own graceful shutdown to 10 s.
const KILL_AFTER_MS = 15_000;

// How long a signal handler gives the broker to show that it got the signal
// itself (a Ctrl-C reaches the whole process group) before sending SIGTERM:
// a second signal would cut its graceful shutdown short.
const SIGNAL_GRACE_MS = 300;

/**
 * The path of the stompica binary for this machine: STOMPICA_EXECUTABLE when
 * set, else the bundled one. Throws with a clear message on a platform this
 * package has no binary for.
 */
function binaryPath(platform = process.platform, arch = process.arch, env = process.env) {
  if (env.STOMPICA_EXECUTABLE) return env.STOMPICA_EXECUTABLE;
  const key = `${platform}-${arch}`;
  if (!BUNDLED.has(key)) {
    throw new Error(
      `stompica: this npm package bundles the broker for linux x64 and linux arm64 only, not for ${platform} ${arch}. ` +
      'Use a release binary (stompica-VERSION-OS-ARCH) or the container image instead, ' +
      'or set STOMPICA_EXECUTABLE to the path of a stompica binary built for this machine.');
  }
  const bin = path.join(__dirname, 'bin', key, 'stompica');
  if (!fs.existsSync(bin)) {
    throw new Error(`stompica: the bundled binary ${bin} is missing; reinstall the package`);
  }
  return bin;
}

/** The original's key=value arguments for run(processors, port, input_q, stale_q, ttl). */
function seedArgs(values) {
  if (values.length > SEED_KEYS.length) {
    throw new TypeError(`stompica.run: at most ${SEED_KEYS.length} numbers (processors, port, input_q, stale_q, ttl), got ${values.length}`);
  }
  return SEED_KEYS.map((key, i) => {
    const v = values[i] === undefined ? 0 : values[i];
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new TypeError(`stompica.run: argument ${i + 1} (${key}) must be a non-negative integer (0 = default), got ${String(v)}`);
    }
    return `${key}=${v}`;
  });
}

/** dataDir -> data-dir, maxWSMessage -> max-ws-message, ttl -> ttl. */
function flagName(key) {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1-$2')
    .replace(/_/g, '-')
    .toLowerCase();
}

/** The --kebab-case=value flags for run({ camelCase: value }). */
function flagArgs(flags) {
  const out = [];
  for (const [key, v] of Object.entries(flags)) {
    if (v === undefined || v === null) continue;
    const name = flagName(key);
    if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) {
      throw new TypeError(`stompica.run: ${JSON.stringify(key)} is not a flag name`);
    }
    if (v === true) {
      out.push(`--${name}`);
    } else if (v === false) {
      out.push(`--${name}=false`);
    } else if (Array.isArray(v)) {
      out.push(`--${name}=${v.join(',')}`);
    } else if ((typeof v === 'number' && Number.isFinite(v)) || typeof v === 'bigint' || typeof v === 'string') {
      out.push(`--${name}=${v}`);
    } else {
      throw new TypeError(`stompica.run: flag ${key}: ${String(v)} is not a string, number, boolean or array`);
    }
  }
  return out;
}

/**
 * listenPort reads the broker's plain (non-TLS) port from its
 * `msg="stompica listening" addr=HOST:PORT tls=false` log line, text or
 * JSON; null for any other line.
 */
function listenPort(line) {
  let addr;
  if (line.startsWith('{')) {
    let o;
    try {
      o = JSON.parse(line);
    } catch {
      return null;
    }
    if (o.msg !== 'stompica listening' || o.tls === true || typeof o.addr !== 'string') return null;
    addr = o.addr;
  } else {
    if (!line.includes('msg="stompica listening"') || /\btls=true\b/.test(line)) return null;
    const m = /(?:^|\s)addr="?([^\s"]+)"?/.exec(line);
    if (!m) return null;
    addr = m[1];
  }
  const port = Number(addr.slice(addr.lastIndexOf(':') + 1));
  return Number.isInteger(port) && port > 0 ? port : null;
}

function isShuttingDownLine(line) {
  return line.includes('msg="shutting down"') || line.includes('"msg":"shutting down"');
}

// The brokers this process started and that have not exited yet.
const live = new Set();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let signalsHooked = false;
let exitHooked = false;

function onExit() {
  // Node is exiting: nothing asynchronous runs any more. SIGTERM lets the
  // broker tell its clients; its log pipe closes with us, so it is gone at
  // its next log line at the latest.
  for (const b of live) b.child.kill('SIGTERM');
}

function onSignal(sig) {
  const brokers = [...live];
  for (const b of brokers) {
    if (b.signalled) {
      b.child.kill('SIGKILL'); // a second signal: do not wait any longer
    } else {
      b.signalled = true;
      b.terminateSoon();
    }
  }
  Promise.all(brokers.map((b) => b.exited)).then(() => {
    // Do what the signal would have done, unless someone else handles it.
    unhookSignals();
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  });
}

function hook() {
  if (!exitHooked) {
    process.on('exit', onExit);
    exitHooked = true;
  }
  if (!signalsHooked) {
    for (const sig of SIGNALS) process.on(sig, onSignal);
    signalsHooked = true;
  }
}

function unhookSignals() {
  if (!signalsHooked) return;
  for (const sig of SIGNALS) process.removeListener(sig, onSignal);
  signalsHooked = false;
}

// The log level the broker will run with, from its arguments or environment.
function logLevel(argv, env) {
  let level = env.STOMPICA_LOG_LEVEL || 'info';
  for (let i = 0; i < argv.length; i++) {
    const m = /^--?log-level(?:=(.*))?$/.exec(argv[i]);
    if (m) level = m[1] !== undefined ? m[1] : argv[i + 1] || level;
  }
  return level.toLowerCase();
}

function hostFrom(argv, env) {
  let host = env.STOMPICA_HOST || '';
  for (let i = 0; i < argv.length; i++) {
    const m = /^--?host(?:=(.*))?$/.exec(argv[i]);
    if (m) host = m[1] !== undefined ? m[1] : argv[i + 1] || host;
  }
  return host === '' || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
}

/**
 * runArgs starts the broker with raw command-line arguments (flags first,
 * then the original's key=value arguments) and returns its handle.
 * options: { env, binary, silent, stdin, stdout, expectedPort }.
 */
function runArgs(argv, options = {}) {
  const env = { ...process.env, ...(options.env || {}) };
  const bin = options.binary || binaryPath(process.platform, process.arch, env);
  // Unless the caller wires stdin itself, the broker gets a pipe it watches
  // (--stop-with-stdin): the kernel closes it when this process dies, even
  // by SIGKILL, and the broker then shuts down instead of outliving it.
  const watch = !options.stdin && !argv.includes('version') && !argv.includes('--version');
  const child = spawn(bin, watch ? ['--stop-with-stdin', ...argv] : argv, {
    env,
    stdio: [options.stdin || (watch ? 'pipe' : 'ignore'), options.stdout || 'pipe', 'pipe'],
  });

  let resolveReady;
  let rejectReady;
  const ready = new Promise((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  // A caller that never awaits ready must not crash on an unhandled
  // rejection: the broker's own error is on stderr.
  ready.catch(() => {});
  let isReady = false;
  let resolveExited;
  const exited = new Promise((resolve) => {
    resolveExited = resolve;
  });
  let hasExited = false;
  let killTimer = null;

  const tail = [];
  let partial = '';
  const handle = {
    port: options.expectedPort === undefined ? DEFAULT_PORT : options.expectedPort,
    pid: child.pid,
    process: child,
    ready,
    exited,
    stop(signal = 'SIGTERM') {
      if (!hasExited) {
        child.kill(signal);
        if (!killTimer) {
          killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
          killTimer.unref();
        }
      }
      return exited;
    },
  };

  const entry = {
    child,
    exited,
    signalled: false,
    shuttingDown: false,
    // terminateSoon sends SIGTERM unless the broker shows within
    // SIGNAL_GRACE_MS that it is already shutting down.
    terminateSoon() {
      const t = setTimeout(() => {
        if (!entry.shuttingDown && !hasExited) handle.stop();
      }, SIGNAL_GRACE_MS);
      t.unref();
    },
  };

  function onLine(line) {
    tail.push(line);
    if (tail.length > 20) tail.shift();
    if (!isReady) {
      const port = listenPort(line);
      if (port !== null) {
        isReady = true;
        handle.port = port;
        resolveReady(handle);
      }
    }
    if (isShuttingDownLine(line)) entry.shuttingDown = true;
  }

  child.stderr.on('data', (chunk) => {
    if (!options.silent) process.stderr.write(chunk);
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop();
    for (const l of lines) onLine(l);
  });
  if (child.stdout) {
    child.stdout.on('data', (chunk) => {
      if (!options.silent) process.stdout.write(chunk);
    });
  }

  function finish(code, signal, err) {
    if (hasExited) return;
    hasExited = true;
    if (partial) onLine(partial);
    if (killTimer) clearTimeout(killTimer);
    live.delete(entry);
    if (live.size === 0) unhookSignals();
    if (!isReady) {
      const why = err ? err.message : `exited (${signal ? `signal ${signal}` : `code ${code}`})`;
      rejectReady(new Error(`stompica ${why} before it was listening${tail.length ? `:\n${tail.join('\n')}` : ''}`));
    }
    resolveExited({ code, signal });
  }
  child.on('error', (err) => {
    if (child.pid === undefined) finish(null, null, err); // could not start at all
  });
  child.on('close', (code, signal) => finish(code, signal));

  if (child.pid !== undefined) {
    live.add(entry);
    hook();
  }

  // Without its "listening" log line (--log-level warn or error), ready
  // comes from a connection to the port.
  const level = logLevel(argv, env);
  if ((level === 'warn' || level === 'error') && handle.port > 0) {
    const host = hostFrom(argv, env);
    const poll = () => {
      if (isReady || hasExited) return;
      const s = net.connect({ host, port: handle.port });
      s.once('connect', () => {
        s.destroy();
        if (!isReady && !hasExited) {
          isReady = true;
          resolveReady(handle);
        }
      });
      s.once('error', () => {
        s.destroy();
        setTimeout(poll, 100).unref();
      });
    };
    setTimeout(poll, 50).unref();
  }
  return handle;
}

function defaultPort(env) {
  const p = Number(env.STOMPICA_PORT);
  return Number.isInteger(p) && p > 0 ? p : DEFAULT_PORT;
}

/**
 * run(processors, port, input_q, stale_q, ttl): the original's form, numbers
 * in that order, 0 (or left out) = default.
 * run({ port: 5555, ttl: 5000, dataDir: '...' }, options): every flag of the
 * broker, camelCase for --kebab-case.
 */
function run(...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    if (args.length > 2) {
      throw new TypeError('stompica.run: run(flags, options) takes two arguments');
    }
    const options = args[1] || {};
    const env = { ...process.env, ...(options.env || {}) };
    const argv = flagArgs(first).concat(options.args || []);
    const expectedPort = first.port !== undefined && first.port !== null ? Number(first.port) : defaultPort(env);
    return runArgs(argv, { ...options, expectedPort });
  }
  const argv = seedArgs(args);
  return runArgs(argv, { expectedPort: args[1] || defaultPort(process.env) });
}

/** runDefault(): the broker with every default, on port 3490. */
function runDefault() {
  return run();
}

module.exports = {
  run,
  runDefault,
  runArgs,
  binaryPath,
  flagArgs,
  flagName,
  seedArgs,
  listenPort,
  DEFAULT_PORT,
};
