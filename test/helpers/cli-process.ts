/**
 * Child processes of the `raftqueue` command (and of the examples) for tests: every child is
 * tracked and SIGKILLed by pid in `t.teardown`, and every temp directory removed, even when the
 * test fails. Loopback only.
 */
import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpJson } from '../../lib/cli/http-client.js';
import type { HttpReply } from '../../lib/cli/http-client.js';

export { httpJson };
export type { HttpReply };

/** The repository root (this file runs from dist/test/helpers). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The compiled command. */
export const cliMain = join(repoRoot, 'dist', 'lib', 'cli', 'main.js');

export interface Spawned {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything written so far. */
  stdout: string;
  stderr: string;
  /** Resolves with the exit code (null if killed by a signal) and the signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited: boolean;
}

/** Tracks children and temp dirs of one test; cleans them up in its teardown. */
export class CliProcesses {
  private readonly children = new Set<Spawned>();
  private readonly dirs: string[] = [];

  constructor(t: ExecutionContext) {
    t.teardown(() => this.cleanup());
  }

  /** `node <script> ...args` (default script: the raftqueue command). */
  spawn(args: readonly string[], options: { env?: NodeJS.ProcessEnv; script?: string } = {}): Spawned {
    const child = spawn(process.execPath, [options.script ?? cliMain, ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (child.pid === undefined) throw new Error(`spawning ${args.join(' ')} failed`);
    let resolveExit!: (v: { code: number | null; signal: NodeJS.Signals | null }) => void;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => (resolveExit = r));
    const s: Spawned = { child, pid: child.pid, stdout: '', stderr: '', exited, hasExited: false };
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (s.stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (s.stderr += d));
    child.on('exit', (code, signal) => {
      s.hasExited = true;
      resolveExit({ code, signal });
    });
    this.children.add(s);
    return s;
  }

  /** Runs to completion; kills the child and rejects after `timeoutMs`. */
  async run(args: readonly string[], options: { env?: NodeJS.ProcessEnv; script?: string; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const s = this.spawn(args, options);
    const timeoutMs = options.timeoutMs ?? 20_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        process.kill(s.pid, 'SIGKILL');
        reject(new Error(`${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout:\n${s.stdout}\nstderr:\n${s.stderr}`));
      }, timeoutMs);
    });
    try {
      const { code } = await Promise.race([s.exited, timeout]);
      return { code, stdout: s.stdout, stderr: s.stderr };
    } finally {
      clearTimeout(timer);
    }
  }

  /** A fresh temp directory, removed at teardown. */
  tempDir(prefix = 'raftqueue-cli-test-'): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  /** SIGKILLs every child still running (by pid), waits for them, removes the temp dirs. */
  async cleanup(): Promise<void> {
    const running = [...this.children].filter((s) => !s.hasExited);
    for (const s of running) {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch (error) {
        // ESRCH: it exited between the check and the kill.
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
    }
    await Promise.race([Promise.all(running.map((s) => s.exited)), sleep(5_000)]);
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}

/** `n` distinct free loopback ports (all held open until every one is chosen). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', resolve);
      });
      servers.push(s);
    }
    return servers.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

/** True when `port` can be bound on 127.0.0.1 right now. */
export async function portFree(port: number): Promise<boolean> {
  const s = createServer();
  return new Promise((resolve) => {
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every 10 ms; resolves with its first truthy value or throws after `withinMs`. */
export async function waitFor<T>(what: string, cond: () => Promise<T | undefined | false> | T | undefined | false, withinMs: number): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const v = await cond();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${withinMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** GET /status of a gateway, or undefined when it does not answer (yet). */
export async function statusOf(url: string, timeoutMs = 500): Promise<{ role: string; term: number } | undefined> {
  try {
    const r = await httpJson('GET', `${url}/status`, undefined, { timeoutMs });
    return r.body as { role: string; term: number };
  } catch (error) {
    if (error instanceof Error) return undefined;
    throw error;
  }
}
