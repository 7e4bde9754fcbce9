#!/usr/bin/env node
'use strict';
// The `stompica` command of the npm package: runs the bundled broker binary
// with every argument as given (flags, the original's key=value arguments,
// subcommands such as `version` and `passwd`) and exits as it exits.
// SIGINT, SIGTERM and SIGHUP reach the broker as a graceful SIGTERM.

const { runArgs, binaryPath } = require('../index.js');

let bin;
try {
  bin = binaryPath();
} catch (err) {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}

const handle = runArgs(process.argv.slice(2), {
  binary: bin,
  stdin: 'inherit',
  stdout: 'inherit',
  expectedPort: 0,
});

// index.js forwards these signals to the broker; this handler only keeps
// Node from dying of them itself, so that the command exits as the broker does.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => {});

handle.exited.then(({ code, signal }) => {
  if (signal) {
    // Die the way the broker died, so that a shell sees the same status.
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
    return;
  }
  process.exitCode = code === null ? 1 : code;
});
