/**
 * Child processes and temp dirs of the cluster benchmark, with cleanup that always runs: on
 * normal exit, Ctrl-C (SIGINT), SIGTERM, SIGHUP and uncaught errors. Children are killed by pid,
 * one by one; temp dirs are removed. Children also exit on their own when the IPC channel to
 * the parent closes.
 */
import { fork, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const liveProcs = new Set<Proc>();
const liveExternal = new Set<External>();
const tempDirs = new Set<string>();
let cleanupInstalled = false;

/** Kills every child still running (SIGKILL, by pid) and removes every temp dir. Synchronous. */
export function cleanupAll(): void {
  for (const p of liveProcs) p.killNow();
  liveProcs.clear();
  for (const e of liveExternal) e.killNow();
  liveExternal.clear();
  for (const dir of tempDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch (error) {
      process.stderr.write(`bench: could not remove ${dir}: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  }
  tempDirs.clear();
}

export function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', cleanupAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}, cleaning up ${liveProcs.size + liveExternal.size} processes and ${tempDirs.size} temp dirs\n`);
      cleanupAll();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (error) => {
    process.stderr.write(`bench: ${error.stack ?? String(error)}\n`);
    cleanupAll();
    process.exit(1);
  });
  process.on('unhandledRejection', (error) => {
    process.stderr.write(`bench: unhandled rejection: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    cleanupAll();
    process.exit(1);
  });
}

export function makeTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  tempDirs.delete(dir);
}

/** A free loopback TCP port (the OS's choice, released again at once). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** A forked `node` child with a request/reply channel over IPC. */
export class Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly name: string;
  readonly exited: Promise<number | null>;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private hasExited = false;

  private constructor(name: string, child: ChildProcess, onEvent: (m: Record<string, unknown>) => void) {
    this.name = name;
    this.child = child;
    this.pid = child.pid as number;
    liveProcs.add(this);
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.hasExited = true;
        liveProcs.delete(this);
        for (const p of this.pending.values()) {
          clearTimeout(p.timer);
          p.reject(new Error(`${name} (pid ${this.pid}) exited (${signal ?? code}) with a request pending`));
        }
        this.pending.clear();
        resolve(code);
      });
    });
    child.on('message', (m: Record<string, unknown>) => {
      if (typeof m.reply === 'number') {
        const p = this.pending.get(m.reply);
        if (!p) return;
        this.pending.delete(m.reply);
        clearTimeout(p.timer);
        if (m.ok) p.resolve(m.value);
        else p.reject(new Error(`${name}: ${String(m.error)}`));
      } else onEvent(m);
    });
    child.on('error', () => undefined);
  }

  /** Forks `script args` and waits for its `{ ev: 'ready' }` message. */
  static spawn(
    name: string,
    script: string,
    args: readonly string[],
    options: { execArgv?: readonly string[]; readyTimeoutMs?: number; onEvent?: (m: Record<string, unknown>) => void } = {},
  ): Promise<{ proc: Proc; ready: Record<string, unknown> }> {
    const child = fork(script, [...args], { execArgv: [...(options.execArgv ?? [])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return new Promise((resolve, reject) => {
      let proc: Proc | undefined = undefined;
      let ready = false;
      const timer = setTimeout(() => {
        proc?.killNow();
        reject(new Error(`${name} was not ready within ${options.readyTimeoutMs ?? 15_000} ms`));
      }, options.readyTimeoutMs ?? 15_000);
      proc = new Proc(name, child, (m) => {
        if (!ready && m.ev === 'ready') {
          ready = true;
          clearTimeout(timer);
          resolve({ proc: proc as Proc, ready: m });
          return;
        }
        options.onEvent?.(m);
      });
      void proc.exited.then((code) => {
        if (!ready) {
          clearTimeout(timer);
          reject(new Error(`${name} exited (${code}) before it was ready`));
        }
      });
    });
  }

  get alive(): boolean {
    return !this.hasExited;
  }

  request<T>(command: Record<string, unknown>, timeoutMs = 30_000): Promise<T> {
    if (this.hasExited) return Promise.reject(new Error(`${this.name} has exited`));
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
    if (this.hasExited) return;
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch (error) {
      // ESRCH: it is already gone. Anything else is a real problem.
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  }

  /** Asks the child to stop (op 'stop'); SIGKILL if it has not exited within `timeoutMs`. */
  async stop(timeoutMs = 5_000): Promise<void> {
    if (this.hasExited) return;
    const killer = setTimeout(() => this.killNow(), timeoutMs);
    try {
      await this.request({ op: 'stop' }, timeoutMs).catch(() => undefined);
      await this.exited;
    } finally {
      clearTimeout(killer);
    }
  }
}

/**
 * A program that is not ours (a broker, epmd) started in a process group of its own, so that a
 * wrapper script and everything it starts (e.g. rabbitmq-server's sh -> beam.smp ->
 * erl_child_setup) go with it: killed with SIGKILL by that group's id, which is its pid.
 */
export class External {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<number | null>;
  private hasExited = false;
  private readonly tail: string[] = [];

  constructor(
    readonly name: string,
    command: string,
    args: readonly string[],
    options: SpawnOptions = {},
  ) {
    this.child = spawn(command, [...args], { ...options, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    if (this.child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
    this.pid = this.child.pid;
    liveExternal.add(this);
    const keep = (chunk: Buffer): void => {
      this.tail.push(chunk.toString('utf8'));
      if (this.tail.length > 50) this.tail.splice(0, this.tail.length - 50);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code) => {
        this.hasExited = true;
        resolve(code);
      });
      this.child.on('error', (error) => {
        keep(Buffer.from(String(error)));
        this.hasExited = true;
        resolve(null);
      });
    });
  }

  get alive(): boolean {
    return !this.hasExited;
  }

  /** The last lines it printed (for error messages). */
  output(): string {
    return this.tail.join('').split('\n').slice(-15).join('\n');
  }

  /** SIGKILL to its process group (its pid), then to the pid itself should the group be gone. */
  killNow(): void {
    for (const target of this.hasExited ? [-this.pid] : [-this.pid, this.pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
    }
    liveExternal.delete(this);
  }

  async kill(): Promise<void> {
    this.killNow();
    if (!this.hasExited) await Promise.race([this.exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
  }
}
