/**
 * Small helpers the multi-process examples share, on top of the process harness of the command
 * (lib/cli/process-harness.ts): child processes that report JSON lines on stdout, and cleanup that
 * kills every child by pid and removes the temp directory, also on Ctrl-C.
 */
import { ProcessHarness, cliMainPath, freePorts, installExitCleanup, waitUntil } from '../../lib/cli/process-harness.js';
import type { ManagedProcess } from '../../lib/cli/process-harness.js';

export { freePorts };

/** A child process of an example. */
export type Child = ManagedProcess;

/** Owns the example's children and temp directory; `cleanup` runs once, also on Ctrl-C. */
export class Processes {
  private readonly harness = new ProcessHarness();
  readonly root = this.harness.tempDir('raftqueue-example-');

  constructor() {
    installExitCleanup();
  }

  /** Starts `node script` with `config` in the RAFTQUEUE_EXAMPLE environment variable; `onEvent` receives every JSON line it prints on stdout. */
  start(name: string, script: string, config: unknown, onEvent: (event: Record<string, unknown>) => void): Child {
    return this.harness.spawn({
      name,
      script,
      env: { ...process.env, RAFTQUEUE_EXAMPLE: JSON.stringify(config) },
      stdout: 'capture',
      stderr: process.env['EXAMPLE_VERBOSE'] ? 'inherit' : 'ignore',
      onLine: (line) => {
        let event: unknown;
        try {
          event = JSON.parse(line);
        } catch (error) {
          process.stdout.write(`[${name}] ${line} (${String(error)})\n`);
          return;
        }
        onEvent(event as Record<string, unknown>);
      },
    });
  }

  /**
   * Starts `raftqueue node` (the package's command, not example code) with `args`; `onLog`
   * receives every line it logs on stderr (role and leader changes among them). The last lines
   * stay with the child for failure messages (`child.tail('stderr', n)`).
   */
  startNode(name: string, args: readonly string[], onLog: (line: string) => void): Child {
    return this.harness.spawn({
      name,
      script: cliMainPath,
      args,
      stdout: 'ignore',
      stderr: 'capture',
      capturedCharsMax: 16 * 1024,
      onLine: (line) => {
        if (process.env['EXAMPLE_VERBOSE']) process.stderr.write(`${line}\n`);
        onLog(line);
      },
    });
  }

  /** Starts a child that has exited again: same script and configuration, so the same data directory. */
  restart(child: Child): Child {
    return this.harness.respawn(child);
  }

  /** SIGKILL, as a crash would. */
  kill(child: Child): void {
    child.kill();
  }

  /** Kills every child still running and removes the temp directory. Synchronous, idempotent. */
  cleanup(): void {
    this.harness.killNow();
  }
}

/** Resolves once `cond()` holds (checked every 20 ms); rejects after `withinMs`. */
export async function until(what: string, cond: () => boolean, withinMs: number): Promise<void> {
  await waitUntil(what, cond, withinMs, 20);
}

/** An integer command-line flag `--name N`, or `fallback`. */
export function intArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} expects a positive integer`);
  return n;
}

/** Prints one JSON line on stdout: how a child process reports to its launcher. */
export function report(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

/** The JSON configuration a launcher passed in RAFTQUEUE_EXAMPLE. */
export function childConfig<T>(): T {
  const raw = process.env['RAFTQUEUE_EXAMPLE'];
  if (raw === undefined) throw new Error('run the example through its main.js, which starts this process');
  return JSON.parse(raw) as T;
}
