/**
 * A process holding many idle RaftQueueClients, for the `clients` section of `npm run bench`
 * (bench/cluster-clients.ts), run as its own process so that a thousand clients spread over a
 * few event loops:
 *
 *   node dist/bench/client-swarm.js '{"name":"s1","members":["127.0.0.1:7001"]}'
 *
 * The parent drives it over IPC with the benchmark's request/reply protocol (bench/cluster-proc.ts):
 * `connect` opens N clients (each registers its session in the replicated session table as it
 * connects), `state`, `cpu` and `memory` (RSS and JS heap, after GC with --expose-gc) report, `close` closes
 * them. Every loop is bounded in count and time; the process exits when its IPC channel closes.
 */
import { RaftQueueClient } from '../lib/index.js';
import { errorCode } from './cluster-shared.js';

interface SwarmConfig {
  /** Names the process's clients (`idle-<name>-<i>`). */
  readonly name: string;
  readonly members: readonly string[];
}

/** What the parent asks of a swarm. */
export type SwarmCommand =
  | { readonly op: 'connect'; readonly count: number; readonly concurrency: number; readonly timeoutMs: number }
  | { readonly op: 'state' }
  | { readonly op: 'cpu' }
  | { readonly op: 'memory' }
  | { readonly op: 'close'; readonly timeoutMs: number }
  | { readonly op: 'stop' };

export interface SwarmBatchResult {
  readonly ok: number;
  readonly failed: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly ms: number;
  /** One failure in words, if any (the first), to say why. */
  readonly firstError?: string;
}

/** A swarm's memory after GC. */
export interface SwarmMemory {
  readonly rss: number;
  readonly heapUsed: number;
}

export interface SwarmState {
  readonly clients: number;
  /** Clients connected to a member now. */
  readonly connected: number;
  /** 'disconnected' events since the clients connected (each is a lost connection). */
  readonly disconnects: number;
}

/** Hard bound on the clients one swarm holds. */
const SWARM_CLIENTS_MAX = 10_000;

const config = JSON.parse(process.argv[2] ?? '{}') as SwarmConfig;
const clients: RaftQueueClient[] = [];
let disconnects = 0;

function send(m: unknown): void {
  if (process.connected) process.send?.(m as object);
}

// The parent went away (Ctrl-C, crash): never outlive it.
process.on('disconnect', () => process.exit(0));

/**
 * Runs `op` for each index in [0, count) with at most `concurrency` at once, until all are done
 * or `timeoutMs` passed (the rest are counted as failed with TIMEOUT, not started).
 */
async function batch(count: number, concurrency: number, timeoutMs: number, op: (i: number) => Promise<unknown>): Promise<SwarmBatchResult> {
  const started = performance.now();
  const end = started + timeoutMs;
  const errors: Record<string, number> = {};
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstError: string | undefined;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      if (performance.now() > end) {
        failed++;
        errors.TIMEOUT = (errors.TIMEOUT ?? 0) + 1;
        continue;
      }
      try {
        await op(i);
        ok++;
      } catch (error) {
        failed++;
        const code = errorCode(error);
        errors[code] = (errors[code] ?? 0) + 1;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, worker));
  return { ok, failed, errors, ms: performance.now() - started, ...(firstError !== undefined ? { firstError } : {}) };
}

async function connect(c: Extract<SwarmCommand, { op: 'connect' }>): Promise<SwarmBatchResult> {
  if (clients.length + c.count > SWARM_CLIENTS_MAX) throw new Error(`a swarm holds at most ${SWARM_CLIENTS_MAX} clients`);
  const first = clients.length;
  return batch(c.count, c.concurrency, c.timeoutMs, async (i) => {
    // Without preferLeader a client stays on the member it was given, so the figure is that member's.
    const client = new RaftQueueClient({ members: [...config.members], clientId: `idle-${config.name}-${first + i}`, connectTimeoutMs: Math.min(c.timeoutMs, 30_000), preferLeader: false });
    await client.connect();
    client.on('disconnected', () => disconnects++);
    clients.push(client);
  });
}

async function closeAll(timeoutMs: number): Promise<SwarmBatchResult> {
  const all = clients.splice(0);
  return batch(all.length, 64, timeoutMs, (i) => (all[i] as RaftQueueClient).close());
}

async function handle(c: SwarmCommand): Promise<unknown> {
  switch (c.op) {
    case 'connect':
      return connect(c);
    case 'state': {
      const state: SwarmState = { clients: clients.length, connected: clients.filter((x) => x.connectedTo !== undefined).length, disconnects };
      return state;
    }
    case 'cpu':
      return process.cpuUsage();
    case 'memory': {
      // The parent starts swarms with --expose-gc; twice, with a turn between, as the members do.
      const collect = (globalThis as { gc?: () => void }).gc;
      if (collect) {
        collect();
        await new Promise((resolve) => setTimeout(resolve, 50));
        collect();
      }
      const m = process.memoryUsage();
      return { rss: m.rss, heapUsed: m.heapUsed };
    }
    case 'close':
      return closeAll(c.timeoutMs);
    case 'stop':
      await closeAll(5_000);
      setTimeout(() => process.exit(0), 20);
      return true;
  }
}

process.on('message', (raw: { id: number; command: SwarmCommand }) => {
  handle(raw.command).then(
    (value) => send({ reply: raw.id, ok: true, value }),
    (error: unknown) => send({ reply: raw.id, ok: false, error: `${errorCode(error)}: ${error instanceof Error ? error.message : String(error)}` }),
  );
});

send({ ev: 'ready', pid: process.pid });
