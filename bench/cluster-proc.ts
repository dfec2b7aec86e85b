/**
 * The benchmark's processes: one process harness (lib/cli/process-harness.ts) for the whole run,
 * whose cleanup always runs (normal exit, Ctrl-C (SIGINT), SIGTERM, SIGHUP, uncaught errors) and
 * kills by pid only what the benchmark started, then removes its temp dirs; and `Proc`, a forked
 * member with the benchmark's request/reply protocol over IPC. Children also exit on their own
 * when the IPC channel to the parent closes.
 */
import { ProcessHarness, installExitCleanup } from '../lib/cli/process-harness.js';
import type { ExitStatus, ManagedProcess } from '../lib/cli/process-harness.js';

/** Every child process (members, bare pipeline, brokers) and temp dir of this benchmark run. */
export const benchProcesses = new ProcessHarness();

/** Bound on waiting for a child's `{ ev: 'ready' }` message, unless the caller names one. */
const READY_TIMEOUT_MS = 15_000;

/** Cleanup on exit, on SIGINT/SIGTERM/SIGHUP (exit 130) and on uncaught errors (exit 1). */
export function installCleanup(): void {
  installExitCleanup({
    signals: ['SIGINT', 'SIGTERM', 'SIGHUP'],
    onSignal: (signal, held) => process.stderr.write(`\nbench: ${signal}, cleaning up ${held.processes} processes and ${held.dirs} temp dirs\n`),
    onError: (error, origin) =>
      process.stderr.write(
        origin === 'uncaughtException'
          ? `bench: ${error instanceof Error ? (error.stack ?? String(error)) : String(error)}\n`
          : `bench: unhandled rejection: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      ),
  });
}

/** Kills every child still running (SIGKILL, by pid) and removes every temp dir. Synchronous. */
export function cleanupAll(): void {
  benchProcesses.killNow();
}

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

type Message = Record<string, unknown>;

const isMessage = (m: unknown): m is Message => typeof m === 'object' && m !== null;

/** A forked `node` child with a request/reply channel over IPC. */
export class Proc {
  private seq = 0;
  private readonly pending = new Map<number, Pending>();

  private constructor(readonly child: ManagedProcess) {
    void child.exited.then(({ code, signal }) => {
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(`${this.name} (pid ${child.pid}) exited (${signal ?? code}) with a request pending`));
      }
      this.pending.clear();
    });
  }

  /** Forks `script args` and waits for its `{ ev: 'ready' }` message; other events go to `onEvent`. */
  static async spawn(
    name: string,
    script: string,
    args: readonly string[],
    options: { execArgv?: readonly string[]; readyTimeoutMs?: number; onEvent?: (m: Message) => void } = {},
  ): Promise<{ proc: Proc; ready: Message }> {
    let proc: Proc | undefined;
    const child = benchProcesses.spawn({
      name,
      script,
      args,
      execArgv: options.execArgv ?? [],
      ipc: true,
      stdout: 'inherit',
      stderr: 'inherit',
      // Messages arrive asynchronously: `proc` is set by then.
      onMessage: (m) => proc?.receive(m, options.onEvent),
    });
    proc = new Proc(child);
    try {
      const ready = await child.waitForMessage((m) => isMessage(m) && m.ev === 'ready', options.readyTimeoutMs ?? READY_TIMEOUT_MS);
      return { proc, ready: ready as Message };
    } catch (error) {
      child.kill();
      throw error;
    }
  }

  get name(): string {
    return this.child.name;
  }

  get alive(): boolean {
    return !this.child.hasExited;
  }

  get exited(): Promise<ExitStatus> {
    return this.child.exited;
  }

  request<T>(command: Message, timeoutMs = 30_000): Promise<T> {
    if (this.child.hasExited) return Promise.reject(new Error(`${this.name} has exited`));
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: no reply to ${String(command.op)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.child.send({ id, command });
    });
  }

  /** SIGKILL by pid, now. */
  killNow(): void {
    this.child.kill();
  }

  /** Asks the child to stop (op 'stop'); SIGKILL if it has not exited within `timeoutMs`. */
  async stop(timeoutMs = 5_000): Promise<void> {
    // The child may exit before it replies: its exit is what counts, not the reply.
    await this.child.stop(timeoutMs, () => void this.request({ op: 'stop' }, timeoutMs).catch(() => undefined));
  }

  private receive(m: unknown, onEvent: ((m: Message) => void) | undefined): void {
    if (!isMessage(m)) return;
    if (typeof m.reply === 'number') {
      const p = this.pending.get(m.reply);
      if (!p) return;
      this.pending.delete(m.reply);
      clearTimeout(p.timer);
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(`${this.name}: ${String(m.error)}`));
    } else if (m.ev !== 'ready') onEvent?.(m);
  }
}
