/**
 * The one process harness behind `raftqueue demo`, the tests, the chaos runs, the benchmarks and
 * the examples: free loopback ports, child processes (a Node script, or any program) with the
 * tails of their output kept for diagnostics, readiness waits (a line or an IPC message),
 * signals by pid, graceful stops, restarts on the same data directory, temporary directories,
 * and a cleanup that runs once and kills only the processes the harness started.
 *
 * It imports only `node:*` modules: the demo ships in the package and uses it.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The compiled `raftqueue` command (dist/lib/cli/main.js): what `raftqueue node` children run. */
export const cliMainPath = fileURLToPath(new URL('./main.js', import.meta.url));

/** Default bound on the captured text of each output stream of a child. */
export const CAPTURED_CHARS_MAX = 64 * 1024;
/** Default bound on how long `cleanup()` waits for the children it killed before removing files. */
export const CLEANUP_EXIT_WAIT_MS = 5_000;
/** After a child ended, how long its output may still be read before `exited` resolves anyway. */
const OUTPUT_DRAIN_MS_MAX = 1_000;

// ------------------------------------------------------------------------------------ ports, waits

/**
 * `count` distinct ports that were free on 127.0.0.1: each is bound with listen(0) and held
 * until all are chosen, then all are released. Another process could take one before the caller
 * binds it; on loopback that is rare enough for tests, demos and benchmarks.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
      servers.push(server);
    }
    return servers.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

/** One port that was free on 127.0.0.1 (see {@link freePorts}). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port as number;
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `condition` every `intervalMs` until it returns something other than undefined or
 * false, and resolves with that; throws after `withinMs`.
 */
export async function waitUntil<T>(what: string, condition: () => Promise<T | undefined | false> | T | undefined | false, withinMs: number, intervalMs = 10): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const value = await condition();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${withinMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------------------- children

/** How a child ended: its exit code, or the signal that ended it. */
export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** What becomes of a child's stdout or stderr: kept (see `capturedCharsMax`), shared with ours, or dropped. */
export type OutputMode = 'capture' | 'inherit' | 'ignore';
/** One of a child's two output streams. */
export type OutputStream = 'stdout' | 'stderr';

interface SpawnCommon {
  /** For messages and diagnostics: `n1`, `raftqueue demo`, `nats-server nb1`. */
  readonly name: string;
  readonly args?: readonly string[];
  /** The whole environment of the child (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Default 'ignore'. */
  readonly stdout?: OutputMode;
  /** Default 'capture'. */
  readonly stderr?: OutputMode;
  /** Each captured stream keeps its last this many characters; older text is dropped. Default {@link CAPTURED_CHARS_MAX}. */
  readonly capturedCharsMax?: number;
  /** Every line of a captured stream as it arrives (an unterminated last line when the child ends). */
  readonly onLine?: (line: string, stream: OutputStream, child: ManagedProcess) => void;
  /** Opens an IPC channel, as `fork` does: `send`, `onMessage` and `waitForMessage` work. */
  readonly ipc?: boolean;
  /** Every IPC message from the child (with `ipc`). */
  readonly onMessage?: (message: unknown, child: ManagedProcess) => void;
  /**
   * Starts the child in a process group of its own and signals the whole group: for a program
   * that starts children of its own (a broker's wrapper script), so that they go with it.
   */
  readonly detached?: boolean;
}

/** A Node script run by this Node binary (`process.execPath`): `node [execArgv] script [args]`. */
export interface NodeSpawnSpec extends SpawnCommon {
  readonly script: string;
  /** Node's own flags (e.g. `--import`); nothing of this process's execArgv is passed on. */
  readonly execArgv?: readonly string[];
}

/** Any other program, found as `command` (a path, or a name on PATH). */
export interface CommandSpawnSpec extends SpawnCommon {
  readonly command: string;
}

/** What to start: a Node script, or another program. */
export type SpawnSpec = NodeSpawnSpec | CommandSpawnSpec;

/**
 * A child process started by a {@link ProcessHarness}. Signals go to its pid only while it runs
 * (to its process group, when `detached`, until the group is gone), so a pid the OS hands out
 * again after it ended is not hit.
 */
export class ManagedProcess {
  readonly pid: number;
  /**
   * Resolves once the process ended and its output was read to the end (at most
   * OUTPUT_DRAIN_MS_MAX after the end); never rejects.
   */
  readonly exited: Promise<ExitStatus>;
  private status: ExitStatus | undefined;
  private groupKilled = false;
  private readonly captured: Record<OutputStream, string> = { stdout: '', stderr: '' };
  private readonly partial: Record<OutputStream, string> = { stdout: '', stderr: '' };
  private readonly lineWaiters = new Set<(line: string) => void>();
  private readonly messageWaiters = new Set<(message: unknown) => void>();

  /** @internal Use {@link ProcessHarness.spawn}. */
  constructor(
    readonly spec: SpawnSpec,
    /** 1 at the first start of a member, one more at each {@link ProcessHarness.respawn}. */
    readonly incarnation: number,
    readonly child: ChildProcess,
    onEnded: (child: ManagedProcess) => void,
  ) {
    this.pid = child.pid as number;
    for (const stream of ['stdout', 'stderr'] as const) {
      child[stream]?.setEncoding('utf8').on('data', (chunk: string) => this.receive(stream, chunk));
    }
    child.on('message', (message: unknown) => {
      for (const waiter of [...this.messageWaiters]) waiter(message);
      spec.onMessage?.(message, this);
    });
    // A failed kill or send: keep it with the diagnostics rather than crash the harness.
    child.on('error', (error) => {
      this.flushPartial('stderr');
      this.receive('stderr', `[harness] ${spec.name}: ${error.message}\n`);
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.status = { code, signal };
        let finished = false;
        const finish = (): void => {
          if (finished) return;
          finished = true;
          clearTimeout(drainTimer);
          for (const stream of ['stdout', 'stderr'] as const) this.flushPartial(stream);
          resolve({ code, signal });
          onEnded(this);
        };
        // 'close' follows once the output pipes are read to the end; a grandchild that still
        // holds them must not keep the exit from being reported.
        const drainTimer = setTimeout(finish, OUTPUT_DRAIN_MS_MAX);
        child.once('close', finish);
      });
    });
  }

  /** The name it was started with, for messages. */
  get name(): string {
    return this.spec.name;
  }

  /** True once the process ended (its output may still be in flight until `exited` resolves). */
  get hasExited(): boolean {
    return this.status !== undefined;
  }

  /** The captured stdout so far (its last `capturedCharsMax` characters). */
  get stdout(): string {
    return this.captured.stdout;
  }

  /** The captured stderr so far (its last `capturedCharsMax` characters). */
  get stderr(): string {
    return this.captured.stderr;
  }

  /** The last `count` lines of a captured stream (the last one possibly unterminated), for failure messages. */
  tail(stream: OutputStream, count: number): string[] {
    const lines = this.captured[stream].split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return lines.slice(-count);
  }

  /** Sends `signal` to the process (and its group when detached) if it still runs. */
  signal(signal: NodeJS.Signals): void {
    if (this.spec.detached === true && !this.groupKilled) {
      // The group outlives its leader while any member lives: signal it even after the leader ended.
      if (!signalPid(-this.pid, signal) || (signal === 'SIGKILL' && this.hasExited)) this.groupKilled = true;
    }
    if (!this.hasExited) signalPid(this.pid, signal);
  }

  /** SIGKILL, as a crash would; `exited` resolves when it is gone. */
  kill(): void {
    this.signal('SIGKILL');
  }

  /** SIGSTOP: the process freezes (its sockets stay open), as under a long GC pause or a VM stall. */
  pause(): void {
    this.signal('SIGSTOP');
  }

  /** SIGCONT after {@link pause}. */
  resume(): void {
    this.signal('SIGCONT');
  }

  /**
   * A graceful stop: `ask` (default SIGTERM), then SIGKILL if the process still runs after
   * `graceMs` (at once when `graceMs` is 0). Resolves when it is gone.
   */
  async stop(graceMs: number, ask: () => void = () => this.signal('SIGTERM')): Promise<ExitStatus> {
    if (this.hasExited) {
      if (this.spec.detached === true) this.kill();
    } else if (graceMs <= 0) {
      this.kill();
    } else {
      ask();
      if (!(await this.waitExit(graceMs))) this.kill();
    }
    return this.exited;
  }

  /** Resolves true once `exited` has resolved, or false after `withinMs`. */
  async waitExit(withinMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), withinMs)));
    try {
      return await Promise.race([this.exited.then(() => true as const), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Readiness by output: the first line of a captured stream matching `predicate`, among the
   * lines still captured or the next to come. Rejects when the child ends first or after `withinMs`.
   */
  waitForLine(predicate: (line: string) => boolean, withinMs: number): Promise<string> {
    const seen = (['stdout', 'stderr'] as const).flatMap((s) => this.tail(s, Number.MAX_SAFE_INTEGER)).find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    return this.waitFor(this.lineWaiters, predicate, withinMs);
  }

  /**
   * Readiness by IPC: the first message from now on matching `predicate` (call it right after
   * spawning: messages arrive asynchronously). Rejects when the child ends first or after `withinMs`.
   */
  waitForMessage(predicate: (message: unknown) => boolean, withinMs: number): Promise<unknown> {
    return this.waitFor(this.messageWaiters, predicate, withinMs);
  }

  /** Sends `message` over the IPC channel (`ipc: true`); a closed channel is reported as an 'error'. */
  send(message: unknown): void {
    this.child.send(message as object);
  }

  private waitFor<T>(waiters: Set<(value: T) => void>, predicate: (value: T) => boolean, withinMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(waiter);
      };
      const waiter = (value: T): void => {
        if (!predicate(value)) return;
        done();
        resolve(value);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name} was not ready within ${withinMs} ms`));
      }, withinMs);
      waiters.add(waiter);
      void this.exited.then((status) => {
        if (!waiters.has(waiter)) return;
        done();
        reject(new Error(`${this.name} exited (${status.signal ?? String(status.code)}) before it was ready`));
      });
    });
  }

  private receive(stream: OutputStream, chunk: string): void {
    const max = this.spec.capturedCharsMax ?? CAPTURED_CHARS_MAX;
    this.captured[stream] = (this.captured[stream] + chunk).slice(-max);
    const lines = (this.partial[stream] + chunk).split('\n');
    // A line longer than the capture bound keeps only its end.
    this.partial[stream] = (lines.pop() ?? '').slice(-max);
    for (const line of lines) this.emitLine(stream, line);
  }

  private flushPartial(stream: OutputStream): void {
    const rest = this.partial[stream];
    this.partial[stream] = '';
    if (rest !== '') this.emitLine(stream, rest);
  }

  private emitLine(stream: OutputStream, line: string): void {
    for (const waiter of [...this.lineWaiters]) waiter(line);
    this.spec.onLine?.(line, stream, this);
  }
}

/** `process.kill` by pid; false when there is no such process (ESRCH: it is gone already). */
function signalPid(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

function stdio(spec: SpawnSpec): StdioOptions {
  const mode = (m: OutputMode | undefined, fallback: OutputMode): 'pipe' | 'inherit' | 'ignore' => {
    const chosen = m ?? fallback;
    return chosen === 'capture' ? 'pipe' : chosen;
  };
  const out: StdioOptions = ['ignore', mode(spec.stdout, 'ignore'), mode(spec.stderr, 'capture')];
  if (spec.ipc === true) out.push('ipc');
  return out;
}

// ----------------------------------------------------------------------------------------- harness

/** How a harness stops what it started. */
export interface HarnessOptions {
  /** `cleanup()` sends SIGTERM first and SIGKILL after this; 0 (the default): SIGKILL at once. */
  readonly stopGraceMs?: number;
  /** `cleanup()` waits at most this for its children to be gone. Default {@link CLEANUP_EXIT_WAIT_MS}. */
  readonly exitWaitMsMax?: number;
}

/** What the harnesses of this process still hold. */
export interface HarnessHoldings {
  readonly processes: number;
  readonly dirs: number;
}

/** Every harness of this process not cleaned up yet, for the exit handlers. */
const live = new Set<ProcessHarness>();

/**
 * Owns child processes and temporary directories: tracks every child it starts by pid, and
 * `cleanup()` (once) or `killNow()` (synchronously, for exit paths) kills those still running,
 * and nothing else, and removes the directories.
 */
export class ProcessHarness {
  private readonly children = new Set<ManagedProcess>();
  private readonly dirs = new Set<string>();
  private cleaning: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly options: HarnessOptions = {}) {
    live.add(this);
  }

  /** Starts a child and tracks it until it is gone. */
  spawn(spec: SpawnSpec): ManagedProcess {
    return this.start(spec, 1);
  }

  /**
   * Starts the member `previous` ran again, with the same script, arguments and environment
   * (so on the same data directory), as its next incarnation. `previous` must be gone.
   */
  respawn(previous: ManagedProcess): ManagedProcess {
    if (!previous.hasExited) throw new Error(`process harness: ${previous.name} (pid ${previous.pid}) still runs`);
    return this.start(previous.spec, previous.incarnation + 1);
  }

  private start(spec: SpawnSpec, incarnation: number): ManagedProcess {
    if (this.closed) throw new Error(`process harness: cannot start ${spec.name}: the harness was cleaned up`);
    const [command, argv] = 'script' in spec ? [process.execPath, [...(spec.execArgv ?? []), spec.script, ...(spec.args ?? [])]] : [spec.command, [...(spec.args ?? [])]];
    const child = spawn(command, argv, {
      stdio: stdio(spec),
      env: spec.env ?? process.env,
      ...(spec.cwd !== undefined ? { cwd: spec.cwd } : {}),
      ...(spec.detached === true ? { detached: true } : {}),
    });
    if (child.pid === undefined) {
      // The reason (ENOENT, EACCES) comes as an 'error' event; this throw reports the failure.
      child.once('error', () => undefined);
      throw new Error(`${spec.name}: could not start ${command}`);
    }
    const managed = new ManagedProcess(spec, incarnation, child, (ended) => {
      if (ended.spec.detached !== true) this.children.delete(ended);
    });
    this.children.add(managed);
    return managed;
  }

  /** The children that still run. */
  running(): ManagedProcess[] {
    return [...this.children].filter((c) => !c.hasExited);
  }

  /** A fresh directory under the OS's temp dir, removed at cleanup. */
  tempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.add(dir);
    return dir;
  }

  /** Removes a directory now (retrying briefly: a child killed a moment ago may still write). */
  removeDir(dir: string): void {
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    this.dirs.delete(dir);
  }

  /** How many of its children still run, and how many directories it still holds. */
  holdings(): HarnessHoldings {
    return { processes: this.running().length, dirs: this.dirs.size };
  }

  /**
   * Stops every child still running (SIGTERM and SIGKILL after `stopGraceMs`, or SIGKILL at
   * once), waits for them (at most `exitWaitMsMax`), removes the directories. Runs once; every
   * call returns the same promise. Nothing can be started afterwards.
   */
  cleanup(): Promise<void> {
    this.cleaning ??= this.runCleanup();
    return this.cleaning;
  }

  /** The synchronous cleanup for exit paths: SIGKILL every child still running, remove the directories. */
  killNow(): void {
    this.closed = true;
    for (const c of this.children) c.kill();
    this.children.clear();
    this.removeAllDirs();
    // A directory that could not be removed keeps the harness listed: the exit cleanup tries again.
    if (this.dirs.size === 0) live.delete(this);
  }

  private async runCleanup(): Promise<void> {
    this.closed = true;
    const graceMs = this.options.stopGraceMs ?? 0;
    const stopping = Promise.all([...this.children].map((c) => c.stop(graceMs)));
    await Promise.race([stopping, unrefSleep(graceMs + (this.options.exitWaitMsMax ?? CLEANUP_EXIT_WAIT_MS))]);
    // Whatever did not go within the bound (or started meanwhile) is killed now.
    this.killNow();
  }

  private removeAllDirs(): void {
    for (const dir of this.dirs) {
      try {
        this.removeDir(dir);
      } catch (error) {
        // Kept tracked for a later attempt. Say so; do not fail the cleanup.
        process.stderr.write(`process harness: could not remove ${dir}: ${error instanceof Error ? error.message : String(error)}\n`);
      }
    }
  }
}

function unrefSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

// ------------------------------------------------------------------------------------ exit handling

/** The synchronous cleanup of every harness of this process: SIGKILL their children, remove their directories. */
export function killAllNow(): void {
  for (const harness of [...live]) harness.killNow();
}

/** What every harness of this process still holds. */
export function holdingsOfAll(): HarnessHoldings {
  const all = [...live].map((h) => h.holdings());
  return { processes: all.reduce((n, h) => n + h.processes, 0), dirs: all.reduce((n, h) => n + h.dirs, 0) };
}

/** How a script's harnesses are cleaned up when the process is interrupted or fails. */
export interface ExitCleanup {
  /** Default SIGINT and SIGTERM. */
  readonly signals?: readonly NodeJS.Signals[];
  /** Says why the process stops; called before the cleanup. */
  readonly onSignal?: (signal: NodeJS.Signals, holdings: HarnessHoldings) => void;
  /** On a signal: each harness's graceful `cleanup()` rather than SIGKILL at once. A second signal does not wait. */
  readonly graceful?: boolean;
  /** Exit code after a signal. Default 130. */
  readonly signalExitCode?: number;
  /** When given, an uncaught exception or unhandled rejection is reported here, then cleanup and exit 1. */
  readonly onError?: (error: unknown, origin: 'uncaughtException' | 'unhandledRejection') => void;
}

let exitCleanupInstalled = false;

/**
 * Cleans up every harness of this process on exit (synchronously: SIGKILL by pid, directories
 * removed), on the given signals (then exits with `signalExitCode`) and, with `onError`, on an
 * uncaught error (exit 1). One installation per process; returns its removal.
 */
export function installExitCleanup(how: ExitCleanup = {}): () => void {
  if (exitCleanupInstalled) throw new Error('process harness: the exit cleanup is installed already');
  exitCleanupInstalled = true;
  const exitCode = how.signalExitCode ?? 130;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    how.onSignal?.(signal, holdingsOfAll());
    if (how.graceful === true && !stopping) {
      stopping = true;
      void Promise.all([...live].map((h) => h.cleanup())).finally(() => process.exit(exitCode));
      return;
    }
    killAllNow();
    process.exit(exitCode);
  };
  const onError = (origin: 'uncaughtException' | 'unhandledRejection') => (error: unknown) => {
    how.onError?.(error, origin);
    killAllNow();
    process.exit(1);
  };
  const onUncaught = onError('uncaughtException');
  const onRejection = onError('unhandledRejection');
  const signals = how.signals ?? ['SIGINT', 'SIGTERM'];
  process.on('exit', killAllNow);
  for (const s of signals) process.on(s, onSignal);
  if (how.onError !== undefined) {
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onRejection);
  }
  return () => {
    process.off('exit', killAllNow);
    for (const s of signals) process.off(s, onSignal);
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onRejection);
    exitCleanupInstalled = false;
  };
}
