/**
 * Starts RaftQueue clusters inside one test process: over the in-memory transport (with link
 * controls) or over real TCP on loopback, with memory or file storage in temp directories.
 * Everything is torn down in `t.teardown`, also when the test fails.
 */
import type { ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../../lib/cli/process-harness.js';
import { RaftQueue as TcpRaftQueue } from '../../lib/index.js';
import { RaftQueue } from '../../lib/raft-queue.js';
import type { RaftQueueOptions } from '../../lib/options.js';
import { MemoryNetwork } from '../../transports/memory/index.js';

export interface TestCluster {
  readonly ids: string[];
  readonly queues: Map<string, RaftQueue>;
  readonly network: MemoryNetwork | undefined;
  readonly dirs: Map<string, string>;
  q(id: string): RaftQueue;
  leader(): Promise<RaftQueue>;
  followers(): Promise<RaftQueue[]>;
  /** Builds a fresh RaftQueue for `id` (after a stop), same data directory and transport kind. */
  restart(id: string): Promise<RaftQueue>;
  /**
   * Starts a new node `id` that joins through `via` (its Raft address over TCP, its id on the
   * memory network), knowing nothing else. Resolves once started (not yet a member).
   */
  spawn(id: string, via: string): Promise<RaftQueue>;
  /** The Raft address of `id` (what addPeer takes). */
  address(id: string): string;
}

export interface ClusterOptions {
  readonly size?: number;
  readonly transport?: 'memory' | 'tcp';
  readonly storage?: 'memory' | 'file';
  readonly start?: readonly string[];
  readonly overrides?: Partial<RaftQueueOptions>;
}

export async function startCluster(t: ExecutionContext, options: ClusterOptions = {}): Promise<TestCluster> {
  const size = options.size ?? 3;
  const ids = Array.from({ length: size }, (_, i) => `n${i + 1}`);
  const kind = options.transport ?? 'memory';
  const network = kind === 'memory' ? new MemoryNetwork() : undefined;
  const ports = kind === 'tcp' ? await freePorts(size) : ids.map((_, i) => 7001 + i);
  const peers = Object.fromEntries(ids.map((id, i) => [id, `127.0.0.1:${ports[i]}`]));
  const dirs = new Map<string, string>();
  const queues = new Map<string, RaftQueue>();
  const storage = options.storage ?? 'memory';
  if (storage === 'file') for (const id of ids) dirs.set(id, mkdtempSync(join(tmpdir(), `raftqueue-${id}-`)));

  const spawned = new Map<string, { readonly via: string }>();
  const build = (id: string): RaftQueue => {
    const joining = spawned.get(id);
    const base: RaftQueueOptions = {
      id,
      peers: joining ? { [id]: peers[id] as string } : peers,
      ...(joining ? { join: joining.via } : {}),
      ...(storage === 'file' ? { dataDir: dirs.get(id) as string } : { storage: 'memory' as const }),
      requestTimeoutMs: 3_000,
      retryIntervalMs: 300,
      ...options.overrides,
    };
    if (network) return new RaftQueue({ ...base, transport: network.transport(id) });
    return new TcpRaftQueue(base);
  };

  t.teardown(async () => {
    await Promise.allSettled([...queues.values()].map((q) => q.stop()));
    for (const dir of dirs.values()) rmSync(dir, { recursive: true, force: true });
  });

  for (const id of options.start ?? ids) {
    const q = build(id);
    queues.set(id, q);
  }
  await Promise.all([...queues.values()].map((q) => q.start()));

  const cluster: TestCluster = {
    ids,
    queues,
    network,
    dirs,
    q(id) {
      const q = queues.get(id);
      if (!q) throw new Error(`no queue ${id}`);
      return q;
    },
    async leader() {
      const deadline = Date.now() + 5_000;
      while (Date.now() < deadline) {
        for (const q of queues.values()) if (q.status().role === 'leader') return q;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error('no leader within 5 s');
    },
    async followers() {
      const leader = await cluster.leader();
      return [...queues.values()].filter((q) => q !== leader);
    },
    async restart(id) {
      const q = build(id);
      queues.set(id, q);
      await q.start();
      return q;
    },
    async spawn(id, via) {
      const port = kind === 'tcp' ? ((await freePorts(1))[0] as number) : 7001 + ids.length + spawned.size;
      peers[id] = `127.0.0.1:${port}`;
      spawned.set(id, { via: kind === 'tcp' ? (peers[via] as string) : via });
      if (storage === 'file') dirs.set(id, mkdtempSync(join(tmpdir(), `raftqueue-${id}-`)));
      return cluster.restart(id);
    },
    address(id) {
      return peers[id] as string;
    },
  };
  return cluster;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every 10 ms until it holds or `withinMs` passes. */
export async function eventually(cond: () => boolean | Promise<boolean>, withinMs = 5_000): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await sleep(10);
  }
  return cond();
}
