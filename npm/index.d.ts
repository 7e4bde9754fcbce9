// Types for the stompica npm package.

import type { ChildProcess } from 'node:child_process';

/** How the broker process ended. */
export interface Exit {
  /** The exit code, or null when a signal ended it. */
  code: number | null;
  /** The signal that ended it, or null. */
  signal: NodeJS.Signals | null;
}

/** A running broker started by run(), runDefault() or runArgs(). */
export interface Broker {
  /**
   * The STOMP/WebSocket port. Before `ready` it is the port asked for (3490
   * by default, 0 for a random one); after, the port the broker listens on.
   */
  port: number;
  /** The broker's process id (undefined when it could not be started). */
  readonly pid: number | undefined;
  /** The broker's child process. */
  readonly process: ChildProcess;
  /**
   * Resolves with this handle once the broker is listening; rejects, with the
   * broker's last log lines, when it exits before (port busy, a bad flag).
   */
  readonly ready: Promise<Broker>;
  /** Resolves when the broker process has exited, however it ended. */
  readonly exited: Promise<Exit>;
  /**
   * Asks the broker to shut down (SIGTERM: clients get an ERROR frame, output
   * is flushed) and resolves when it has exited. After 15 s it is killed.
   */
  stop(signal?: NodeJS.Signals): Promise<Exit>;
}

/**
 * Every flag of the stompica command, camelCase for --kebab-case:
 * `{ port: 5555, ttl: 5000, dataDir: './data', logLevel: 'debug' }` runs
 * `stompica --port=5555 --ttl=5000 --data-dir=./data --log-level=debug`.
 * `true` is `--flag`, `false` is `--flag=false`, an array is joined with
 * commas, null and undefined are left out. Durations are strings with a unit
 * (`connectTimeout: '5s'`); ttl is in milliseconds. `port: 0` is a random
 * free port (read it from `port` once `ready` resolves).
 */
export interface Flags {
  host?: string;
  port?: number;
  tlsPort?: number;
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  wsOrigins?: string | string[];
  users?: string;
  acl?: string;
  httpAuth?: boolean;
  ttl?: number;
  processors?: number;
  maxInputQueueSize?: number;
  maxStaleQueueSize?: number;
  maxConnections?: number;
  maxFrameSize?: number;
  heartBeat?: string;
  dataDir?: string;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  logFormat?: 'text' | 'json';
  [flag: string]: string | number | bigint | boolean | string[] | number[] | null | undefined;
}

/** How run(flags, options) and runArgs() start the process. */
export interface Options {
  /** Extra environment variables (STOMPICA_* set flags too). */
  env?: NodeJS.ProcessEnv;
  /** Extra raw arguments after the flags, e.g. ['TTL=5000']. */
  args?: string[];
  /** The stompica binary to run instead of the bundled one. */
  binary?: string;
  /** Do not copy the broker's log to this process's stderr. */
  silent?: boolean;
}

/**
 * The original stompica's form: numbers in this order, 0 (or left out) =
 * the default. `run(0, 5555, 0, 0, 5000)` listens on 5555 and keeps topic
 * messages that found no subscriber for 5 s for late subscribers.
 */
export function run(processors?: number, port?: number, inputQ?: number, staleQ?: number, ttl?: number): Broker;
/** Every flag as an object: `run({ port: 5555, ttl: 5000 })`. */
export function run(flags: Flags, options?: Options): Broker;

/** The broker with every default, on port 3490. */
export function runDefault(): Broker;

/** The broker with raw command-line arguments (flags first, then key=value ones). */
export function runArgs(args: string[], options?: Options): Broker;

/**
 * The path of the binary for this machine (STOMPICA_EXECUTABLE when set);
 * throws on a platform the package bundles no binary for.
 */
export function binaryPath(platform?: string, arch?: string, env?: NodeJS.ProcessEnv): string;

/** The --flag arguments for a Flags object. */
export function flagArgs(flags: Flags): string[];

/** The default STOMP/WebSocket port, 3490. */
export const DEFAULT_PORT: number;
