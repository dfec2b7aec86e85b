/**
 * The processes of a chaos run: N `raftqueue node` children with FileStorage in a temp directory,
 * each behind fault-injecting proxies (one per directed peer link), on 127.0.0.1 only.
 *
 * Node i listens for peers on its own entry of its `--peers` list; every other node j appears in
 * node i's list at the port of the proxy of link i -> j. Every child is tracked by pid and
 * SIGKILLed at `shutdown()`, and also by `killEverything()` (for SIGINT/SIGTERM/exit handlers);
 * the temp directory is removed in both cases.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePorts } from '../helpers/cli-process.js';
import { LinkProxy } from './proxy.js';
import type { LinkMode } from './proxy.js';

/** The compiled command (this file runs from dist/test/chaos). */
export const CLI_MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'lib', 'cli', 'main.js');
/** Preloaded into each node: it kills itself if the harness dies without cleaning up. */
const ORPHAN_GUARD = pathToFileURL(resolve(dirname(fileURLToPath(import.meta.url)), 'orphan-guard.js')).href;

export type NodeState = 'up' | 'killed' | 'paused';

export interface ChaosNode {
  readonly index: number;
  readonly id: string;
  readonly raftPort: number;
  readonly httpPort: number;
  readonly url: string;
  readonly dataDir: string;
  state: NodeState;
  child: ChildProcess | undefined;
  pid: number | undefined;
  /** Resolves when the current child has exited (and was reaped). */
  exited: Promise<void>;
  incarnation: number;
  /** The last lines of stderr, across incarnations. */
  readonly log: string[];
}

export interface UnexpectedExit {
  readonly node: ChaosNode;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly atMs: number;
  readonly logTail: readonly string[];
}

const LOG_LINES_MAX = 400;

/** Every cluster alive in this process, for the emergency cleanup. */
const live = new Set<ChaosCluster>();

/** Synchronously SIGKILLs every child of every live cluster and removes their directories. */
export function killEverything(): void {
  for (const c of live) c.killNow();
}

export class ChaosCluster {
  readonly nodes: ChaosNode[];
  /** proxies[i][j]: the link i -> j (undefined on the diagonal). */
  readonly proxies: (LinkProxy | undefined)[][];
  readonly unexpectedExits: UnexpectedExit[] = [];
  private expectingExit = new Set<ChildProcess>();
  private shuttingDown = false;

  private constructor(
    readonly root: string,
    nodes: ChaosNode[],
    proxies: (LinkProxy | undefined)[][],
    private readonly peerArgs: string[],
    private readonly httpPeers: string,
    private readonly options: { verbose: boolean; now: () => number },
  ) {
    this.nodes = nodes;
    this.proxies = proxies;
  }

  /** Picks ports, creates directories and starts the proxies (not the nodes). */
  static async create(count: number, options: { verbose: boolean; now: () => number }): Promise<ChaosCluster> {
    const root = mkdtempSync(join(tmpdir(), 'raftqueue-chaos-'));
    const proxies: (LinkProxy | undefined)[][] = [];
    let cluster: ChaosCluster | undefined;
    try {
      const ports = await freePorts(2 * count + count * (count - 1));
      const ids = Array.from({ length: count }, (_, i) => `n${i + 1}`);
      const raftPorts = ports.slice(0, count);
      const httpPorts = ports.slice(count, 2 * count);
      let next = 2 * count;
      const proxyPort: number[][] = ids.map((_, i) => ids.map((__, j) => (i === j ? 0 : (ports[next++] as number))));
      const nodes: ChaosNode[] = ids.map((id, i) => ({
        index: i,
        id,
        raftPort: raftPorts[i] as number,
        httpPort: httpPorts[i] as number,
        url: `http://127.0.0.1:${httpPorts[i] as number}`,
        dataDir: join(root, id),
        state: 'killed',
        child: undefined,
        pid: undefined,
        exited: Promise.resolve(),
        incarnation: 0,
        log: [],
      }));
      const peerArgs = ids.map((_, i) => ids.map((id, j) => `${id}=127.0.0.1:${i === j ? (raftPorts[j] as number) : (proxyPort[i]?.[j] as number)}`).join(','));
      const httpPeers = ids.map((id, i) => `${id}=127.0.0.1:${httpPorts[i] as number}`).join(',');
      cluster = new ChaosCluster(root, nodes, proxies, peerArgs, httpPeers, options);
      live.add(cluster);
      for (let i = 0; i < count; i++) {
        const row: (LinkProxy | undefined)[] = [];
        proxies.push(row);
        for (let j = 0; j < count; j++) {
          if (i === j) {
            row.push(undefined);
            continue;
          }
          const p = new LinkProxy(ids[i] as string, ids[j] as string, raftPorts[j] as number);
          row.push(p);
          await p.listen(proxyPort[i]?.[j] as number);
        }
      }
      return cluster;
    } catch (error) {
      if (cluster) await cluster.shutdown();
      else rmSync(root, { recursive: true, force: true });
      throw error;
    }
  }

  get ids(): string[] {
    return this.nodes.map((n) => n.id);
  }

  startAll(): void {
    for (const n of this.nodes) this.spawn(n);
  }

  private spawn(n: ChaosNode): void {
    const args = ['--import', ORPHAN_GUARD, CLI_MAIN, 'node', '--id', n.id, '--peers', this.peerArgs[n.index] as string, '--data-dir', n.dataDir, '--http', `127.0.0.1:${n.httpPort}`, '--http-peers', this.httpPeers];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    if (child.pid === undefined) throw new Error(`spawning ${n.id} failed`);
    n.child = child;
    n.pid = child.pid;
    n.state = 'up';
    n.incarnation++;
    const incarnation = n.incarnation;
    const push = (line: string): void => {
      n.log.push(`[${n.id}#${incarnation}] ${line}`);
      if (n.log.length > LOG_LINES_MAX) n.log.shift();
      if (this.options.verbose) process.stderr.write(`  [${n.id}#${incarnation}] ${line}\n`);
    };
    push(`spawned pid ${child.pid}`);
    let partial = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) push(l);
    });
    n.exited = new Promise((resolveExit) => {
      child.on('exit', (code, signal) => {
        if (partial) push(partial);
        push(`exited (code ${code ?? '-'}, signal ${signal ?? '-'})`);
        if (!this.expectingExit.delete(child) && !this.shuttingDown) {
          n.state = 'killed';
          this.unexpectedExits.push({ node: n, code, signal, atMs: this.options.now(), logTail: n.log.slice(-40) });
        }
        if (n.child === child) {
          n.child = undefined;
          n.pid = undefined;
        }
        resolveExit();
      });
    });
  }

  /** SIGKILL (synchronous). A node already killed is left alone. */
  kill(i: number): void {
    const n = this.nodes[i] as ChaosNode;
    const child = n.child;
    if (child === undefined || n.pid === undefined) return;
    this.expectingExit.add(child);
    n.state = 'killed';
    try {
      process.kill(n.pid, 'SIGKILL');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  }

  /** Starts a killed node again (same ports, same data directory) once its process is reaped. */
  async restart(i: number): Promise<void> {
    const n = this.nodes[i] as ChaosNode;
    if (n.state !== 'killed' || this.shuttingDown) return;
    await n.exited;
    if (n.child !== undefined || this.shuttingDown) return;
    this.spawn(n);
  }

  pause(i: number): void {
    const n = this.nodes[i] as ChaosNode;
    if (n.state !== 'up' || n.pid === undefined) return;
    n.state = 'paused';
    process.kill(n.pid, 'SIGSTOP');
  }

  resume(i: number): void {
    const n = this.nodes[i] as ChaosNode;
    if (n.state !== 'paused' || n.pid === undefined) return;
    n.state = 'up';
    process.kill(n.pid, 'SIGCONT');
  }

  setLink(from: number, to: number, mode: LinkMode): void {
    this.proxies[from]?.[to]?.setMode(mode);
  }

  /** Every link passes, every paused node continues, every killed node restarts. */
  async healAll(): Promise<void> {
    for (const row of this.proxies) for (const p of row) p?.setMode('pass');
    for (const n of this.nodes) if (n.state === 'paused') this.resume(n.index);
    await Promise.all(this.nodes.filter((n) => n.state === 'killed').map((n) => this.restart(n.index)));
  }

  /** SIGKILLs every child, waits for them (at most 5 s), closes the proxies, removes the directory. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    const waits = this.nodes.map((n) => n.exited);
    this.killNow();
    await Promise.race([Promise.all(waits), new Promise((r) => setTimeout(r, 5_000).unref())]);
    await Promise.all(this.proxies.flat().map((p) => p?.close()));
    removeDir(this.root);
    live.delete(this);
  }

  /** Synchronous part of the cleanup: SIGKILL by pid (stopped processes die too), remove files. */
  killNow(): void {
    this.shuttingDown = true;
    for (const n of this.nodes) {
      if (n.pid === undefined) continue;
      try {
        process.kill(n.pid, 'SIGKILL');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
    }
    removeDir(this.root);
  }
}

function removeDir(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  } catch (error) {
    // A child killed a moment ago may still have been writing: shutdown() removes it again.
    process.stderr.write(`chaos: could not remove ${dir} yet: ${String(error)}\n`);
  }
}
