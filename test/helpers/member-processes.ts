/**
 * A cluster of `raftqueue node` processes with HTTP gateways on loopback, for membership tests
 * and the rolling-restart measurement: start (or join), SIGKILL, graceful SIGTERM, an HTTP
 * publish load that follows leader hints, a leaderless-window monitor, and a final drain.
 *
 * Every process is killed by pid and every data dir removed by `cleanup()` (registered with the
 * test's teardown, or called by the script's exit handlers).
 */
import { join } from 'node:path';
import { ProcessHarness } from '../../lib/cli/process-harness.js';
import type { ManagedProcess } from '../../lib/cli/process-harness.js';
import { cliMain, freePorts, httpJson, repoRoot, sleep } from './cli-process.js';

/** Each node keeps this much of its stderr, for failure messages. */
const STDERR_CHARS_MAX = 20_000;
/** A graceful stop (SIGTERM) that has not ended after this becomes a SIGKILL. */
const STOP_GRACE_MS = 5_000;

export interface ProcNode {
  readonly id: string;
  readonly raftPort: number;
  readonly httpPort: number;
  readonly dataDir: string;
  readonly url: string;
  readonly raft: string;
  /** The running process; undefined once killed or stopped. */
  proc: ManagedProcess | undefined;
  /** The latest process, running or not: its stderr for failure messages. */
  last: ManagedProcess | undefined;
}

export class ProcessCluster {
  readonly nodes = new Map<string, ProcNode>();
  private readonly harness = new ProcessHarness();
  private readonly root = this.harness.tempDir('raftqueue-members-');

  /** Allocates ports and directories for `ids` (nothing runs yet). */
  async define(ids: readonly string[]): Promise<void> {
    const ports = await freePorts(ids.length * 2);
    ids.forEach((id, i) => {
      const raftPort = ports[2 * i] as number;
      const httpPort = ports[2 * i + 1] as number;
      this.nodes.set(id, {
        id,
        raftPort,
        httpPort,
        dataDir: join(this.root, id),
        url: `http://127.0.0.1:${httpPort}`,
        raft: `127.0.0.1:${raftPort}`,
        proc: undefined,
        last: undefined,
      });
    });
  }

  node(id: string): ProcNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /**
   * Starts `id`: with `peers` (the initial members, each knowing all), or with `join` (the raft
   * address of a member) and `--listen`, and `extraArgs` (e.g. `--admin-token-file F`). A
   * restart reuses the data dir.
   */
  start(id: string, how: { peers: readonly string[] } | { join: string }, extraArgs: readonly string[] = []): void {
    const n = this.node(id);
    const args = ['node', '--id', id, '--data-dir', n.dataDir, '--http', `127.0.0.1:${n.httpPort}`, ...extraArgs];
    if ('peers' in how) args.push('--peers', how.peers.map((p) => `${p}=${this.node(p).raft}`).join(','));
    else args.push('--join', how.join, '--listen', n.raft);
    n.proc = this.harness.spawn({ name: id, script: cliMain, args, cwd: repoRoot, stderr: 'capture', capturedCharsMax: STDERR_CHARS_MAX });
    n.last = n.proc;
  }

  /** SIGKILL (a crash). */
  async kill(id: string): Promise<void> {
    await this.node(id).proc?.stop(0);
    this.node(id).proc = undefined;
  }

  /** SIGTERM: a graceful stop (a leader hands over first); resolves when the process exited. */
  async stop(id: string): Promise<void> {
    await this.node(id).proc?.stop(STOP_GRACE_MS);
    this.node(id).proc = undefined;
  }

  running(): ProcNode[] {
    return [...this.nodes.values()].filter((n) => n.proc !== undefined);
  }

  /** GET on a node's gateway; undefined when it does not answer. */
  async get(id: string, path: string, timeoutMs = 500): Promise<Record<string, unknown> | undefined> {
    try {
      const r = await httpJson('GET', `${this.node(id).url}${path}`, undefined, { timeoutMs });
      return r.body as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }

  /** The id of a running node that reports itself leader, if any. */
  async leader(): Promise<string | undefined> {
    const answers = await Promise.all(this.running().map(async (n) => ((await this.get(n.id, '/status', 300))?.['role'] === 'Leader' ? n.id : undefined)));
    return answers.find((x) => x !== undefined);
  }

  async waitLeader(withinMs = 10_000): Promise<string> {
    const deadline = Date.now() + withinMs;
    while (Date.now() < deadline) {
      const l = await this.leader();
      if (l !== undefined) return l;
      await sleep(20);
    }
    throw new Error(`no leader within ${withinMs} ms\n${this.logs()}`);
  }

  /** The members as `id` sees them (GET /members). */
  async members(id: string): Promise<{ id: string; role: string; address: string | null; isLeader: boolean }[] | undefined> {
    const body = await this.get(id, '/members');
    return body?.['members'] as { id: string; role: string; address: string | null; isLeader: boolean }[] | undefined;
  }

  /** Waits until `id` lists exactly `voters` as voters (and no learners). */
  async waitVoters(id: string, voters: readonly string[], withinMs = 20_000): Promise<void> {
    const want = [...voters].sort().join(',');
    const deadline = Date.now() + withinMs;
    let last = '';
    while (Date.now() < deadline) {
      const m = await this.members(id);
      if (m) {
        last = m.map((x) => `${x.id}:${x.role}`).join(',');
        if (m.every((x) => x.role === 'voter') && m.map((x) => x.id).sort().join(',') === want) return;
      }
      await sleep(50);
    }
    throw new Error(`${id} never listed voters ${want} (last: ${last})\n${this.logs()}`);
  }

  /** The tail of every node's stderr, for failure messages. */
  logs(): string {
    return [...this.nodes.values()].map((n) => `--- ${n.id}\n${(n.last?.tail('stderr', 15) ?? []).join('\n')}`).join('\n');
  }

  /** Kills every process by pid and removes the data; once. */
  async cleanup(): Promise<void> {
    for (const n of this.nodes.values()) n.proc = undefined;
    await this.harness.cleanup();
  }
}

/**
 * Publishes `topic` messages one at a time through the gateways (following leader hints) until
 * stopped or `maxCount`; records what was acknowledged. Each message is unique.
 */
export class HttpPublisher {
  readonly acked: string[] = [];
  unknown = 0;
  private running = true;
  private readonly done: Promise<void>;

  constructor(
    private readonly cluster: ProcessCluster,
    readonly topic: string,
    maxCount = 20_000,
  ) {
    this.done = this.loop(maxCount);
  }

  private async loop(maxCount: number): Promise<void> {
    let target: string | undefined;
    for (let i = 0; this.running && i < maxCount; ) {
      const message = `m${i}`;
      target ??= await this.cluster.leader();
      if (target === undefined) {
        await sleep(20);
        continue;
      }
      try {
        const r = await httpJson('PUT', `${this.cluster.node(target).url}/message`, { topic: this.topic, message }, { timeoutMs: 3_000 });
        const body = r.body as { success?: boolean; error?: unknown };
        if (r.status === 200 && body.success === true) {
          this.acked.push(message);
          i++;
        } else if (typeof body.error === 'string' && /^(TIMEOUT|CLOSED):/.test(body.error)) {
          // Sent, then no outcome: the member timed out, or stopped (a removed member stops
          // with its requests in flight). It may be stored, so this body is never reused.
          this.unknown++;
          i++;
          target = undefined;
        } else {
          target = undefined; // Not the leader (any more): ask again.
          await sleep(10);
        }
      } catch {
        // No answer: the outcome is unknown, so this body is never reused.
        this.unknown++;
        i++;
        target = undefined;
      }
    }
  }

  async stop(): Promise<string[]> {
    this.running = false;
    await this.done;
    return this.acked;
  }
}

/** Pops every message of `topic` through the leader (GET /message/<topic>) until empty. */
export async function drain(cluster: ProcessCluster, topic: string): Promise<string[]> {
  const got: string[] = [];
  for (let guard = 0; guard < 200_000; ) {
    const leader = await cluster.waitLeader();
    const r = await httpJson('GET', `${cluster.node(leader).url}/message/${encodeURIComponent(topic)}`, undefined, { timeoutMs: 3_000 }).catch(() => undefined);
    const body = r?.body as { success?: boolean; message?: string } | undefined;
    if (body?.success === true && typeof body.message === 'string') {
      got.push(body.message);
      guard++;
      continue;
    }
    // Empty only when the leader itself says so (a follower refuses with success false too).
    if (body?.success === false && r?.headers['x-raftqueue-role'] === 'leader') break;
    await sleep(20);
  }
  return got;
}

/**
 * Polls every node's /status every `intervalMs` (one poller per node, so a slow or stopping
 * node does not delay the others) and records the windows in which no node's latest answer
 * was "Leader"; a node that does not answer counts as not leading. `stop()` returns them in ms.
 */
export class LeaderlessMonitor {
  private readonly windows: number[] = [];
  private running = true;
  private readonly roles = new Map<string, string>();
  private readonly done: Promise<void>;

  constructor(
    private readonly cluster: ProcessCluster,
    private readonly intervalMs = 10,
  ) {
    this.done = Promise.all([...[...cluster.nodes.keys()].map((id) => this.poll(id)), this.watch()]).then(() => undefined);
  }

  private async poll(id: string): Promise<void> {
    while (this.running) {
      const node = this.cluster.node(id);
      const body = node.proc === undefined ? undefined : await this.cluster.get(id, '/status', 200);
      this.roles.set(id, typeof body?.['role'] === 'string' ? (body['role'] as string) : 'down');
      await sleep(this.intervalMs);
    }
  }

  private async watch(): Promise<void> {
    let since: number | undefined;
    await sleep(this.intervalMs * 3);
    while (this.running) {
      const t = performance.now();
      const leading = [...this.roles.values()].includes('Leader');
      if (!leading) since ??= t;
      else if (since !== undefined) {
        this.windows.push(t - since);
        since = undefined;
      }
      await sleep(2);
    }
    if (since !== undefined) this.windows.push(performance.now() - since);
  }

  async stop(): Promise<number[]> {
    this.running = false;
    await this.done;
    return this.windows;
  }
}
