/**
 * Small helpers the multi-process examples share: free loopback ports, child processes that
 * report JSON lines on stdout, and cleanup that kills every child by pid and removes temp dirs.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** Ports the OS reports free on 127.0.0.1. */
export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  const servers = [];
  for (let i = 0; i < n; i++) {
    const s = createServer();
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    ports.push((s.address() as AddressInfo).port);
    servers.push(s);
  }
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** A child process of an example; `onEvent` receives every JSON line it prints on stdout. */
export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  exited: boolean;
}

/** Owns the example's children and temp directory; `cleanup` runs once, also on Ctrl-C. */
export class Processes {
  readonly root = mkdtempSync(join(tmpdir(), 'raftqueue-example-'));
  private readonly children = new Set<Child>();

  constructor() {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        this.cleanup();
        process.exit(130);
      });
    }
    process.once('exit', () => this.cleanup());
  }

  /** Starts `node script` with `config` in the RAFTQUEUE_EXAMPLE environment variable. */
  start(name: string, script: string, config: unknown, onEvent: (event: Record<string, unknown>) => void): Child {
    const proc = spawn(process.execPath, [script], {
      env: { ...process.env, RAFTQUEUE_EXAMPLE: JSON.stringify(config) },
      stdio: ['ignore', 'pipe', process.env['EXAMPLE_VERBOSE'] ? 'inherit' : 'ignore'],
    });
    const child: Child = { name, process: proc, exited: false };
    this.children.add(child);
    proc.on('exit', () => {
      child.exited = true;
    });
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      let event: unknown;
      try {
        event = JSON.parse(line);
      } catch (error) {
        process.stdout.write(`[${name}] ${line} (${String(error)})\n`);
        return;
      }
      onEvent(event as Record<string, unknown>);
    });
    return child;
  }

  /** SIGKILL, as a crash would. */
  kill(child: Child): void {
    if (!child.exited) child.process.kill('SIGKILL');
  }

  /** Kills every child still running and removes the temp directory. Synchronous, idempotent. */
  cleanup(): void {
    for (const c of this.children) if (!c.exited && c.process.pid !== undefined) c.process.kill('SIGKILL');
    this.children.clear();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** Resolves once `cond()` holds (checked every 20 ms); rejects after `withinMs`. */
export async function until(what: string, cond: () => boolean, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${withinMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
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
