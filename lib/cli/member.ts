/**
 * Runs one long-lived member: a RaftQueue over TCP, optionally the HTTP gateway, logging role and
 * leader changes on stderr, and a graceful stop on SIGTERM/SIGINT within STOP_DEADLINE_MS.
 * Expected failures (every RaftQueueError, a listen or data-dir errno) end the process with one
 * line and an exit code from args.ts; only unexpected ones print a stack.
 */
import { isRaftQueueError } from '../contracts/errors.js';
import type { RaftQueue } from '../index.js';
import type { RaftQueueOptions } from '../options.js';
import { EXIT_FAILED, EXIT_OK, EXIT_REMOVED, EXIT_USAGE } from './args.js';
import { Gateway } from './gateway.js';

/**
 * A graceful stop (leadership handover, storage closed) must end within this; then exit 1 (3
 * after a removal).
 */
export const STOP_DEADLINE_MS = 1_900;

export interface MemberConfig {
  readonly id: string;
  readonly peers: Readonly<Record<string, string>>;
  readonly dataDir: string;
  /** Join a running cluster through this member's Raft address. */
  readonly join?: string;
  readonly clusterSecret?: string;
  /** Where the gateway listens; no gateway when undefined. */
  readonly http?: { readonly host: string; readonly port: number };
  /** Required by the gateway's membership routes (otherwise loopback clients only). */
  readonly adminToken?: string;
  /** Member id -> gateway base URL, for leader hints. */
  readonly httpAddresses?: Readonly<Record<string, string>>;
  /** The gateway serves the queue routes on a non-leader too, forwarding through the queue. */
  readonly forward?: boolean;
  /** Client processes served at once (RaftQueueOptions.clientsMax). */
  readonly clientsMax?: number;
}

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}

/** What the command prints for an expected error, and the code it exits with. */
export interface FailureReport {
  /** 'raftqueue <command>: <message> (<CODE>)', then a 'hint: ...' line when there is one. */
  readonly lines: readonly string[];
  readonly exitCode: number;
}

/** Errors of the system around the member (its ports, its data dir): expected, no stack. */
const KNOWN_ERRNOS: ReadonlySet<string> = new Set(['EADDRINUSE', 'EADDRNOTAVAIL', 'EACCES', 'EPERM', 'ENOENT', 'ENOTDIR', 'EISDIR', 'EEXIST', 'EROFS', 'ENOSPC', 'EDQUOT', 'EMFILE', 'ENFILE']);

/** How deep a chain of causes is searched for an errno (each wrapping layer adds one). */
const CAUSE_DEPTH_MAX = 8;

interface Errno {
  readonly code: string;
  readonly syscall?: string;
  readonly port?: number;
  readonly address?: string;
}

/** The first errno (an error with a code like 'EADDRINUSE') in `error`'s chain of causes. */
function errnoIn(error: unknown): Errno | undefined {
  let e: unknown = error;
  for (let depth = 0; depth < CAUSE_DEPTH_MAX && e instanceof Error; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return e as Error & Errno;
    e = e.cause;
  }
  return undefined;
}

/**
 * The report for an expected error, or undefined for an unexpected one (a bug: the caller prints
 * its stack). Every RaftQueueError is expected; so is a known errno (a port in use, a data dir
 * that cannot be written) anywhere in an error's causes.
 */
export function failureReport(command: string, error: unknown): FailureReport | undefined {
  const errno = errnoIn(error);
  let code: string;
  let exitCode = EXIT_FAILED;
  if (isRaftQueueError(error)) {
    code = error.code;
    // Compared as a string: IDENTITY_MISMATCH is added to ErrorCode by another change.
    if (code === 'INVALID_OPTIONS' || (code as string) === 'IDENTITY_MISMATCH') exitCode = EXIT_USAGE;
  } else if (errno !== undefined && KNOWN_ERRNOS.has(errno.code)) {
    code = errno.code;
  } else {
    return undefined;
  }
  const message = (error as Error).message.replace(/\s*\n\s*/g, ' ');
  const hint = hintFor(command, code, errno);
  return { lines: [`raftqueue ${command}: ${message} (${code})`, ...(hint === undefined ? [] : [`hint: ${hint}`])], exitCode };
}

/** What the operator can do about it, in the command's terms; undefined when the message says it. */
function hintFor(command: string, code: string, errno: Errno | undefined): string | undefined {
  if (code === 'STORAGE_LOCKED') return 'another process holds this data dir; stop it or choose another --data-dir';
  if (code === 'IDENTITY_MISMATCH') {
    const members = command === 'serve' ? 'the config file' : '--peers';
    return `the data dir belongs to another member or cluster, or ${members} differs from the members it records: start the member it records with the peers it was founded with; ${command === 'serve' ? 'members of a config file are all founded together' : 'a new member needs an empty --data-dir and --join'} (members change only with 'raftqueue members add|remove')`;
  }
  const port = errno?.port === undefined ? 'the port' : `port ${errno.port}`;
  switch (errno?.code) {
    case 'EADDRINUSE':
      return `${port} is in use: stop the process holding it or choose another port`;
    case 'EADDRNOTAVAIL':
      return `${errno.address ?? 'the host'} is not an address of this machine: listen on one of its own (127.0.0.1 for a local cluster)`;
    case 'EACCES':
    case 'EPERM':
      return errno.syscall === 'listen' || errno.syscall === 'bind' ? `${port} needs privileges this user lacks (ports below 1024 usually do): choose another port` : 'this user may not write there: fix the permissions or choose another --data-dir';
    case 'ENOENT':
    case 'ENOTDIR':
    case 'EISDIR':
    case 'EEXIST':
      return 'part of the data dir path is missing or is not a directory: check --data-dir';
    case 'EROFS':
      return 'the data dir is on a read-only file system: choose another --data-dir';
    case 'ENOSPC':
    case 'EDQUOT':
      return 'the disk holding the data dir is full: free space or choose another --data-dir';
    default:
      return undefined;
  }
}

/** Prints `error` (one line and a hint when expected, its stack otherwise) and exits. */
export function exitOnError(command: string, error: unknown): never {
  const report = failureReport(command, error);
  if (report !== undefined) {
    process.stderr.write(`${report.lines.join('\n')}\n`);
    process.exit(report.exitCode);
  }
  process.stderr.write(`raftqueue ${command}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(EXIT_FAILED);
}

/** The payload of the queue's 'removed' event: this member is out of the cluster's configuration. */
interface Removed {
  readonly by?: string;
  readonly term?: number;
  readonly message: string;
}

/**
 * Starts the member and returns once it runs; the process exits when it stops. `command` names
 * the subcommand in error lines. A failure to start ends the process (see failureReport).
 */
export async function runMember(config: MemberConfig, command = 'node'): Promise<void> {
  const options: RaftQueueOptions = {
    id: config.id,
    peers: { ...config.peers },
    dataDir: config.dataDir,
    ...(config.join !== undefined ? { join: config.join } : {}),
    handoverTimeoutMs: 1_000,
    logger: log,
    ...(config.clusterSecret !== undefined ? { clusterSecret: config.clusterSecret } : {}),
    ...(config.clientsMax !== undefined ? { clientsMax: config.clientsMax } : {}),
  };
  // The gateway listens before the library is loaded and storage recovered, so /status answers
  // (as a follower in term 0) within milliseconds of launch.
  let gateway: Gateway | undefined;
  if (config.http) {
    gateway = new Gateway(undefined, {
      ...(config.httpAddresses ? { httpAddresses: config.httpAddresses } : {}),
      ...(config.adminToken !== undefined ? { adminToken: config.adminToken } : {}),
      ...(config.forward === true ? { forward: true } : {}),
    });
    const { host, port } = config.http;
    const bound = await gateway.listen(host, port).catch((error: unknown) => {
      const why = error instanceof Error ? error.message.replace(/^\w+ E[A-Z0-9]+: /, '') : String(error);
      exitOnError(command, new Error(`the HTTP gateway cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port}: ${why}`, { cause: error }));
    });
    log(`[raftqueue ${config.id}] http listening on ${bound.address}:${bound.port}`);
  }
  const lib = await import('../index.js');
  let queue: RaftQueue;
  try {
    queue = new lib.RaftQueue(options);
  } catch (error) {
    exitOnError(command, error);
  }
  gateway?.attach(queue);
  let stopping = false;
  /** Stops the queue and the gateway, then exits with `exitCode` (1 if the stop fails or hangs). */
  const shutdown = (why: string, exitCode: number): void => {
    if (stopping) return;
    stopping = true;
    log(`[raftqueue ${config.id}] ${why}: stopping (handing over leadership if leading)`);
    // A stop that fails or overruns turns a clean exit into a failure; a removal stays exit 3,
    // since the member is out of the cluster either way.
    const failedCode = exitCode === EXIT_OK ? EXIT_FAILED : exitCode;
    const deadline = setTimeout(() => {
      log(`[raftqueue ${config.id}] graceful stop exceeded ${STOP_DEADLINE_MS} ms; exiting`);
      process.exit(failedCode);
    }, STOP_DEADLINE_MS);
    // Not unref'd: it also keeps the process alive while stop() waits on unref'd node timers.
    void deadline;
    Promise.all([queue.stop(), gateway?.close()]).then(
      () => {
        log(`[raftqueue ${config.id}] stopped`);
        process.exit(exitCode);
      },
      (error: unknown) => {
        log(`[raftqueue ${config.id}] stop failed: ${error instanceof Error ? error.message : String(error)}`);
        process.exit(failedCode);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM', EXIT_OK));
  process.on('SIGINT', () => shutdown('SIGINT', EXIT_OK));
  // 'removed' is not in RaftQueueEvents yet (another change adds it): a narrow cast, so this
  // compiles before and after.
  (queue as unknown as { on(event: 'removed', listener: (removed: Removed) => void): void }).on('removed', (removed) => {
    if (stopping) return;
    process.stderr.write(`raftqueue ${command}: ${removed.message.replace(/\s*\n\s*/g, ' ')}\n`);
    shutdown('removed from the cluster', EXIT_REMOVED);
  });
  try {
    await queue.start();
  } catch (error) {
    // A signal during start stops the queue, which rejects start: the stop decides the exit.
    if (stopping) return;
    exitOnError(command, error);
  }
  log(`[raftqueue ${config.id}] raft listening on ${config.peers[config.id] ?? '?'} (data ${config.dataDir})`);
  void queue.closed().then((error) => {
    if (error === undefined || stopping) return;
    stopping = true;
    void (gateway?.close() ?? Promise.resolve()).finally(() => exitOnError(command, error));
  });
}
