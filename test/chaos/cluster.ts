/**
 * The processes of a chaos run: N `raftqueue node` children with FileStorage in a temp directory,
 * each behind fault-injecting proxies (one per directed peer link), on 127.0.0.1 only.
 *
 * Node i listens for peers on its own entry of its `--peers` list; every other node j appears in
 * node i's list at the port of the proxy of link i -> j. The processes, ports and the temp
 * directory come from the process harness (lib/cli/process-harness.ts): every child is tracked by
 * pid and SIGKILLed at `shutdown()`, and by the harness's exit cleanup (`killAllNow`, for
 * SIGINT/SIGTERM/exit handlers); the temp directory is removed in both cases.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ProcessHarness, cliMainPath, freePorts } from '../../lib/cli/process-harness.js';
import type { ManagedProcess } from '../../lib/cli/process-harness.js';
import { LinkProxy } from './proxy.js';
import type { LinkMode } from './proxy.js';

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
  /** The latest incarnation (kept after it ended, until the next one starts). */
  proc: ManagedProcess | undefined;
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

export class ChaosCluster {
  readonly nodes: ChaosNode[];
  /** proxies[i][j]: the link i -> j (undefined on the diagonal). */
  readonly proxies: (LinkProxy | undefined)[][];
  readonly unexpectedExits: UnexpectedExit[] = [];
  private expectingExit = new Set<ManagedProcess>();
  private shuttingDown = false;

  private constructor(
    private readonly harness: ProcessHarness,
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
    const harness = new ProcessHarness();
    const root = harness.tempDir('raftqueue-chaos-');
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
        proc: undefined,
        log: [],
      }));
      const peerArgs = ids.map((_, i) => ids.map((id, j) => `${id}=127.0.0.1:${i === j ? (raftPorts[j] as number) : (proxyPort[i]?.[j] as number)}`).join(','));
      const httpPeers = ids.map((id, i) => `${id}=127.0.0.1:${httpPorts[i] as number}`).join(',');
      cluster = new ChaosCluster(harness, root, nodes, proxies, peerArgs, httpPeers, options);
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
      else await harness.cleanup();
      throw error;
    }
  }

  get ids(): string[] {
    return this.nodes.map((n) => n.id);
  }

  /**
   * The addresses other members' `--peers` give node `i` (the proxies of the links into it): a
   * member tells clients the others' addresses as its own `--peers` names them.
   */
  peerAddressesOf(i: number): string[] {
    return this.proxies.flatMap((row) => {
      const p = row[i];
      return p === undefined ? [] : [`127.0.0.1:${p.port}`];
    });
  }

  startAll(): void {
    for (const n of this.nodes) {
      const args = ['node', '--id', n.id, '--peers', this.peerArgs[n.index] as string, '--data-dir', n.dataDir, '--http', `127.0.0.1:${n.httpPort}`, '--http-peers', this.httpPeers];
      this.started(n, this.harness.spawn({ name: n.id, execArgv: ['--import', ORPHAN_GUARD], script: cliMainPath, args, stderr: 'capture', onLine: (line, _stream, proc) => this.log(n, proc, line) }));
    }
  }

  /** Records a new incarnation of `n` and watches for its end. */
  private started(n: ChaosNode, proc: ManagedProcess): void {
    n.proc = proc;
    n.state = 'up';
    this.log(n, proc, `spawned pid ${proc.pid}`);
    void proc.exited.then(({ code, signal }) => {
      this.log(n, proc, `exited (code ${code ?? '-'}, signal ${signal ?? '-'})`);
      if (!this.expectingExit.delete(proc) && !this.shuttingDown) {
        n.state = 'killed';
        this.unexpectedExits.push({ node: n, code, signal, atMs: this.options.now(), logTail: n.log.slice(-40) });
      }
    });
  }

  private log(n: ChaosNode, proc: ManagedProcess, line: string): void {
    n.log.push(`[${n.id}#${proc.incarnation}] ${line}`);
    if (n.log.length > LOG_LINES_MAX) n.log.shift();
    if (this.options.verbose) process.stderr.write(`  [${n.id}#${proc.incarnation}] ${line}\n`);
  }

  /**
   * The running process of node `i` (not one that ended) when its state is `from`, after moving
   * the state to `to`; undefined, and nothing changed, otherwise.
   */
  private transition(i: number, from: NodeState | 'any', to: NodeState): ManagedProcess | undefined {
    const n = this.nodes[i] as ChaosNode;
    const proc = n.proc;
    if (proc === undefined || proc.hasExited || (from !== 'any' && n.state !== from)) return undefined;
    n.state = to;
    return proc;
  }

  /** SIGKILL (synchronous). A node already killed is left alone. */
  kill(i: number): void {
    const proc = this.transition(i, 'any', 'killed');
    if (proc === undefined) return;
    this.expectingExit.add(proc);
    proc.kill();
  }

  /** Starts a killed node again (same ports, same data directory) once its process is reaped. */
  async restart(i: number): Promise<void> {
    const n = this.nodes[i] as ChaosNode;
    const previous = n.proc;
    if (n.state !== 'killed' || this.shuttingDown || previous === undefined) return;
    await previous.exited;
    // Another restart may have come first while this one waited.
    if (n.proc !== previous || this.shuttingDown) return;
    this.started(n, this.harness.respawn(previous));
  }

  /** SIGSTOP to a node that is up. */
  pause(i: number): void {
    this.transition(i, 'up', 'paused')?.pause();
  }

  /** SIGCONT to a paused node. */
  resume(i: number): void {
    this.transition(i, 'paused', 'up')?.resume();
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

  /** SIGKILLs every child, waits for them (at most 5 s), removes the directory, closes the proxies. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    await this.harness.cleanup();
    await Promise.all(this.proxies.flat().map((p) => p?.close()));
  }
}
