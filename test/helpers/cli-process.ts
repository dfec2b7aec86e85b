/**
 * Child processes of the `raftqueue` command (and of the examples) for tests, on the process
 * harness (lib/cli/process-harness.ts): every child is tracked and SIGKILLed by pid in
 * `t.teardown`, and every temp directory removed, even when the test fails. Loopback only.
 */
import type { ExecutionContext } from 'ava';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpJson } from '../../lib/cli/http-client.js';
import type { HttpReply } from '../../lib/cli/http-client.js';
import { ProcessHarness, cliMainPath, freePorts, sleep, waitUntil } from '../../lib/cli/process-harness.js';
import type { ManagedProcess } from '../../lib/cli/process-harness.js';

export { freePorts, httpJson, sleep };
export type { HttpReply };

/** The repository root (this file runs from dist/test/helpers). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The compiled command. */
export const cliMain = cliMainPath;

/** A child of a test: `stdout` and `stderr` hold everything it wrote (up to OUTPUT_CHARS_MAX). */
export type Spawned = ManagedProcess;

/** Bound on the output a test keeps of one child: far above what any command here prints. */
const OUTPUT_CHARS_MAX = 16 * 1024 * 1024;

/** Tracks children and temp dirs of one test; cleans them up in its teardown. */
export class CliProcesses {
  private readonly harness = new ProcessHarness();

  constructor(t: ExecutionContext) {
    t.teardown(() => this.cleanup());
  }

  /** `node <script> ...args` (default script: the raftqueue command). */
  spawn(args: readonly string[], options: { env?: NodeJS.ProcessEnv; script?: string } = {}): Spawned {
    return this.harness.spawn({
      name: args.join(' '),
      script: options.script ?? cliMain,
      args,
      cwd: repoRoot,
      env: { ...process.env, ...options.env },
      stdout: 'capture',
      stderr: 'capture',
      capturedCharsMax: OUTPUT_CHARS_MAX,
    });
  }

  /** Runs to completion; kills the child and rejects after `timeoutMs`. */
  async run(args: readonly string[], options: { env?: NodeJS.ProcessEnv; script?: string; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const s = this.spawn(args, options);
    const timeoutMs = options.timeoutMs ?? 20_000;
    if (!(await s.waitExit(timeoutMs))) {
      s.kill();
      throw new Error(`${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout:\n${s.stdout}\nstderr:\n${s.stderr}`);
    }
    const { code } = await s.exited;
    return { code, stdout: s.stdout, stderr: s.stderr };
  }

  /** A fresh temp directory, removed at teardown. */
  tempDir(prefix = 'raftqueue-cli-test-'): string {
    return this.harness.tempDir(prefix);
  }

  /** SIGKILLs every child still running (by pid), waits for them, removes the temp dirs. */
  cleanup(): Promise<void> {
    return this.harness.cleanup();
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

/** Polls `cond` every 10 ms; resolves with its first truthy value or throws after `withinMs`. */
export function waitFor<T>(what: string, cond: () => Promise<T | undefined | false> | T | undefined | false, withinMs: number): Promise<T> {
  return waitUntil(what, cond, withinMs, 10);
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
