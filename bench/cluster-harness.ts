/**
 * A three-process raftqueue cluster on loopback for the benchmark: each member is
 * dist/bench/cluster-node.js embedding RaftQueue with TCP and FileStorage (fsync on) in a temp
 * data dir. The parent observes every leader change the members report.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CpuUsage } from './bare-baselines.js';
import type { ReadyMessage } from './cluster-shared.js';
import { freePorts } from '../lib/cli/process-harness.js';
import { Proc, benchProcesses } from './cluster-proc.js';
import type { QueueStatus } from '../lib/index.js';

const CLUSTER_NODE = fileURLToPath(new URL('./cluster-node.js', import.meta.url));
const IDS = ['n1', 'n2', 'n3'] as const;

export type NodeStatus = QueueStatus & { readonly rssBytes: number; readonly pid: number };

export interface LeaderObservation {
  readonly node: string;
  readonly leaderId: string | undefined;
  readonly term: number;
  readonly atMs: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class Cluster {
  readonly procs = new Map<string, Proc>();
  readonly leaderEvents: LeaderObservation[] = [];
  readonly fatal: string[] = [];
  restarts = 0;

  private constructor(
    private readonly dir: string,
    readonly peers: Readonly<Record<string, string>>,
    private readonly execArgvFor: (id: string) => readonly string[],
    private readonly snapshotEvery: number | undefined,
  ) {}

  /** Diagnosis only: a snapshotEveryEntries override for every member (`--snapshot-every`). */
  static snapshotEveryEntries: number | undefined;

  /**
   * `snapshotEveryEntries` overrides the members' option for this cluster (else the static
   * override, else the library's default).
   */
  static async start(options: { execArgvFor?: (id: string) => readonly string[]; snapshotEveryEntries?: number } = {}): Promise<Cluster> {
    const dir = benchProcesses.tempDir('raftqueue-bench-cluster-');
    const ports = await freePorts(IDS.length);
    const peers = Object.fromEntries(IDS.map((id, i) => [id, `127.0.0.1:${ports[i] as number}`]));
    const cluster = new Cluster(dir, peers, options.execArgvFor ?? (() => []), options.snapshotEveryEntries ?? Cluster.snapshotEveryEntries);
    await Promise.all(IDS.map((id) => cluster.spawn(id)));
    return cluster;
  }

  /** The member's data directory (FileStorage: wal/, snapshots/). */
  dataDir(id: string): string {
    return join(this.dir, id);
  }

  /** Addresses of members started with `spawnJoiner` (not in the initial peers). */
  private readonly joiners = new Map<string, { address: string; via: string }>();

  /**
   * Starts a new member `id` that joins the cluster through member `via` (RaftQueue's `join`
   * option: it asks to be added, catches up as a learner, then becomes a voter).
   */
  async spawnJoiner(id: string, via: string, readyTimeoutMs = 15_000): Promise<ReadyMessage> {
    const [port] = await freePorts(1);
    const address = this.peers[via];
    if (address === undefined) throw new Error(`no member ${via} to join through`);
    this.joiners.set(id, { address: `127.0.0.1:${port as number}`, via: address });
    return this.spawn(id, readyTimeoutMs);
  }

  private joinerConfig(id: string): { peers: Record<string, string>; join?: string } {
    const joiner = this.joiners.get(id);
    if (joiner === undefined) return { peers: { ...this.peers } };
    return { peers: { [id]: joiner.address }, join: joiner.via };
  }

  private async spawn(id: string, readyTimeoutMs = 15_000): Promise<ReadyMessage> {
    const dataDir = this.dataDir(id);
    fs.mkdirSync(dataDir, { recursive: true });
    const { proc, ready } = await Proc.spawn(`node ${id}`, CLUSTER_NODE, [JSON.stringify({ id, ...this.joinerConfig(id), dataDir, ...(this.snapshotEvery ? { snapshotEveryEntries: this.snapshotEvery } : {}) })], {
      readyTimeoutMs,
      execArgv: this.execArgvFor(id),
      onEvent: (m) => {
        if (m.ev === 'leader') this.leaderEvents.push(m as unknown as LeaderObservation);
        else if (m.ev === 'fatal') this.fatal.push(`${String(m.node)}: ${String(m.message)}`);
      },
    });
    this.procs.set(id, proc);
    return ready as unknown as ReadyMessage;
  }

  proc(id: string): Proc {
    const p = this.procs.get(id);
    if (!p || !p.alive) throw new Error(`node ${id} is not running`);
    return p;
  }

  live(): string[] {
    return [...this.procs.entries()].filter(([, p]) => p.alive).map(([id]) => id);
  }

  async statuses(): Promise<Map<string, NodeStatus>> {
    const out = new Map<string, NodeStatus>();
    await Promise.all(
      this.live().map(async (id) => {
        try {
          out.set(id, await this.proc(id).request<NodeStatus>({ op: 'status' }, 5_000));
        } catch (error) {
          // A node that does not answer is not counted; say so rather than hide it.
          process.stderr.write(`bench: ${id} did not report its status: ${error instanceof Error ? error.message : String(error)}\n`);
        }
      }),
    );
    return out;
  }

  /** Waits until every live member names the same leader, which says it leads. */
  async waitForLeader(timeoutMs = 15_000): Promise<string> {
    const end = performance.now() + timeoutMs;
    while (performance.now() < end) {
      const s = await this.statuses();
      const leaders = new Set([...s.values()].map((x) => x.leaderId));
      const [only] = leaders;
      if (s.size === this.live().length && leaders.size === 1 && only !== undefined && s.get(only)?.role === 'leader') return only;
      await sleep(20);
    }
    throw new Error(`no agreed leader within ${timeoutMs} ms`);
  }

  /** Waits until `id` has applied everything the leader had committed when the wait began. */
  async waitCaughtUp(id: string, timeoutMs = 30_000): Promise<void> {
    const leader = await this.waitForLeader(timeoutMs);
    const target = (await this.proc(leader).request<NodeStatus>({ op: 'status' })).commitIndex;
    const end = performance.now() + timeoutMs;
    while (performance.now() < end) {
      const s = await this.proc(id).request<NodeStatus>({ op: 'status' });
      if (s.appliedIndex >= target) return;
      await sleep(20);
    }
    throw new Error(`node ${id} did not catch up to ${target} within ${timeoutMs} ms`);
  }

  /** Sum of the members' CPU time, µs. */
  async cpuMicros(): Promise<number> {
    const usages = await Promise.all(this.live().map((id) => this.proc(id).request<CpuUsage>({ op: 'cpu' })));
    return usages.reduce((sum, u) => sum + u.user + u.system, 0);
  }

  /** Each live member's persist count (durable WAL writes), by id. */
  async persists(): Promise<Record<string, number>> {
    const ids = this.live();
    const counts = await Promise.all(ids.map((id) => this.proc(id).request<number>({ op: 'persists' })));
    return Object.fromEntries(ids.map((id, i) => [id, counts[i] as number]));
  }

  /** Elections observed so far: distinct terms in which some member saw a leader. */
  elections(): number {
    return new Set(this.leaderEvents.filter((e) => e.leaderId !== undefined).map((e) => e.term)).size;
  }

  /** Leader changes as observed, first observation per term, relative to the first event. */
  leaderTimeline(): string {
    const first = this.leaderEvents[0]?.atMs ?? 0;
    const seen = new Set<string>();
    const out: string[] = [];
    for (const e of this.leaderEvents) {
      const key = `${e.term}/${String(e.leaderId)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(`+${((e.atMs - first) / 1000).toFixed(2)}s term ${e.term} leader ${String(e.leaderId)} (seen by ${e.node})`);
    }
    return out.join('; ');
  }

  /** SIGKILL by pid. */
  async kill(id: string): Promise<void> {
    const p = this.proc(id);
    p.killNow();
    await p.exited;
  }

  /** Graceful stop of one member (RaftQueue.stop(), SIGKILL after `timeoutMs`). */
  async stopMember(id: string, timeoutMs = 30_000): Promise<void> {
    await this.proc(id).stop(timeoutMs);
  }

  /** Starts `id` again on its data; resolves with its ready message once start() resolved. */
  async restart(id: string, readyTimeoutMs = 15_000): Promise<ReadyMessage> {
    if (this.procs.get(id)?.alive) throw new Error(`node ${id} is still running`);
    const ready = await this.spawn(id, readyTimeoutMs);
    this.restarts++;
    return ready;
  }

  /** Graceful stop of every member (SIGKILL after a timeout), then the data dirs go. */
  async stop(): Promise<void> {
    await Promise.all(this.live().map((id) => this.proc(id).stop(8_000)));
    benchProcesses.removeDir(this.dir);
  }
}
