/**
 * One member of the benchmark cluster, run as its own process by bench/cluster.ts:
 *
 *   node dist/bench/cluster-node.js '{"id":"n1","peers":{...},"dataDir":"..."}'
 *
 * It embeds RaftQueue (TCP, FileStorage with fsync on, default timing) and runs the load loops
 * the parent asks for over the IPC channel, inside this process, so "in flight from the leader's
 * process" means what an embedding application would do. Every loop is bounded by count and time.
 */
import { RaftQueue } from '../lib/index.js';
import type { Subscription } from '../lib/index.js';
import { Packr } from 'msgpackr';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import {
  LOAD_COUNT_MAX,
  PAYLOAD_ENCODED_BYTES,
  PAYLOAD_RAW_BYTES,
  closedLoop,
  errorCode,
  loadResult,
  monoUs,
  summarize,
  wallMs,
  type LatencySummary,
  type FailoverResult,
  type LoadResult,
  type MemoryReport,
  type ClientTraffic,
  type NodeCommand,
  type WaitAppliedResult,
  type DiagReport,
  type NodeEventMessage,
  type NodeReply,
} from './cluster-shared.js';

interface NodeConfig {
  readonly id: string;
  readonly peers: Record<string, string>;
  readonly dataDir: string;
  /** Diagnosis only (`--snapshot-every`): overrides the library default. */
  readonly snapshotEveryEntries?: number;
  /** Join a running cluster through this member address (`peers` then names only this node). */
  readonly join?: string;
}

const config = JSON.parse(process.argv[2] ?? '{}') as NodeConfig;
const payload = Buffer.alloc(PAYLOAD_RAW_BYTES, 0x61);
{
  const encoded = new Packr({ useRecords: false, structuredClone: false, mapsAsObjects: true, int64AsType: 'number', moreTypes: false }).pack(payload);
  if (encoded.length !== PAYLOAD_ENCODED_BYTES) throw new Error(`payload encodes to ${encoded.length} bytes, expected ${PAYLOAD_ENCODED_BYTES}`);
}

function send(m: NodeEventMessage | NodeReply): void {
  if (process.connected) process.send?.(m);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const queue = new RaftQueue({
  id: config.id,
  peers: config.peers,
  dataDir: config.dataDir,
  ...(config.join !== undefined ? { join: config.join } : {}),
  ...(config.snapshotEveryEntries !== undefined ? { snapshotEveryEntries: config.snapshotEveryEntries, snapshotEveryBytes: config.snapshotEveryEntries >= 1e9 ? 2 ** 50 : 64 << 20 } : {}),
});
let firstLeaderAtMs = Number.NaN;
queue.on('leaderChanged', ({ leaderId, term }) => {
  const atMs = wallMs();
  if (leaderId !== undefined && Number.isNaN(firstLeaderAtMs)) firstLeaderAtMs = atMs;
  send({ ev: 'leader', node: config.id, leaderId, term, atMs });
});
queue.on('error', (error) => send({ ev: 'fatal', node: config.id, message: String(error) }));

// The parent went away (Ctrl-C, crash): never outlive it.
process.on('disconnect', () => process.exit(0));

function bump(errors: Record<string, number>, error: unknown): string {
  const code = errorCode(error);
  errors[code] = (errors[code] ?? 0) + 1;
  return code;
}

/** The next key of a keyed publish load. */
let keyTurn = 0;

async function publishLoad(c: Extract<NodeCommand, { op: 'publish' }>): Promise<LoadResult> {
  const monoWarmEnd = monoUs() + c.warmupSeconds * 1e6;
  const result = await closedLoop({
    inFlight: c.inFlight,
    seconds: c.seconds,
    warmupSeconds: c.warmupSeconds,
    countMax: c.countMax,
    latency: c.latency,
    series: c.series === true,
    op: c.keys === undefined ? () => queue.publish(c.topic, payload) : () => queue.publish(c.topic, payload, { key: `k${keyTurn++ % (c.keys as number)}` }),
    stopOn: 'CLOSED',
  });
  // The samples stay here (sending hundreds of thousands over IPC would stall this member).
  lastSeries = result.series;
  const { series: _series, ...rest } = result;
  return { ...rest, monoWindowUs: [monoWarmEnd, monoWarmEnd + result.windowMs * 1000] };
}

let lastSeries: LoadResult['series'];

function latencyWindow(fromMs: number, toMs: number): LatencySummary | undefined {
  const series = lastSeries;
  if (series === undefined) return undefined;
  const during: number[] = [];
  series.issuedAtMs.forEach((at, i) => {
    const ms = series.latencyMs[i] as number;
    if (at >= fromMs && at + ms <= toMs) during.push(ms);
  });
  return during.length > 0 ? summarize(during) : undefined;
}

async function consumeLoad(c: Extract<NodeCommand, { op: 'consume' }>): Promise<LoadResult> {
  const countMax = Math.min(c.countMax, LOAD_COUNT_MAX);
  const started = performance.now();
  const end = started + c.seconds * 1000;
  const errors: Record<string, number> = {};
  let issued = 0;
  let count = 0;
  let empty = 0;
  let errorTotal = 0;
  let lastDone = started;
  const worker = async (): Promise<void> => {
    while (issued < countMax && errorTotal < 10_000 && performance.now() < end) {
      issued++;
      try {
        const m = await queue.consume(c.topic);
        if (m === undefined) {
          empty++;
          return; // drained
        }
        count++;
        lastDone = performance.now();
      } catch (error) {
        errorTotal++;
        if (bump(errors, error) === 'CLOSED') return;
        await sleep(1);
      }
    }
  };
  await Promise.all(Array.from({ length: c.concurrency }, worker));
  const windowMs = Math.max(1, Math.min(end, lastDone) - started);
  return { count, windowMs, perSecond: (count * 1000) / windowMs, total: count, errors, empty };
}

function subscribeLoad(c: Extract<NodeCommand, { op: 'subscribe' }>): Promise<LoadResult> {
  const countMax = Math.min(c.countMax, LOAD_COUNT_MAX);
  return new Promise((resolve) => {
    const started = performance.now();
    let count = 0;
    let lastDone = started;
    let done = false;
    const subs: Subscription[] = [];
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const windowMs = Math.max(1, lastDone - started);
      const result: LoadResult = { count, windowMs, perSecond: (count * 1000) / windowMs, total: count, errors: {} };
      // Unsubscribing waits for the last acks (bounded by its own 5 s drain timeout).
      void Promise.all(subs.map((s) => s.unsubscribe())).then(
        () => resolve(result),
        () => resolve(result),
      );
    };
    const timer = setTimeout(finish, c.seconds * 1000);
    for (let i = 0; i < (c.consumers ?? 1); i++) {
      subs.push(
        queue.subscribe(
          c.topic,
          () => {
            // Resolving acknowledges: the ack is one more replicated command per message.
            count++;
            lastDone = performance.now();
            if (count >= countMax) setImmediate(finish);
          },
          { group: c.group, maxInFlight: c.maxInFlight },
        ),
      );
    }
  });
}

let failoverKill: { atMs: number; oldLeader: string; resolve?: (r: FailoverResult) => void } | undefined;

async function failoverLoad(c: Extract<NodeCommand, { op: 'failoverLoad' }>): Promise<FailoverResult> {
  const errors: Record<string, number> = {};
  const successes: [number, number][] = [];
  const end = performance.now() + c.seconds * 1000;
  let result: FailoverResult | undefined;
  let leaderAtMs = Number.NaN;
  let newLeader: string | undefined;
  let newTerm = 0;
  const onLeader = ({ leaderId, term }: { leaderId: string | undefined; term: number }): void => {
    if (failoverKill && leaderId !== undefined && leaderId !== failoverKill.oldLeader && Number.isNaN(leaderAtMs)) {
      leaderAtMs = wallMs();
      newLeader = leaderId;
      newTerm = term;
    }
  };
  queue.on('leaderChanged', onLeader);
  const check = (t0: number, t1: number): void => {
    if (result || !failoverKill || t0 < failoverKill.atMs) return;
    const s = queue.status();
    result = {
      publishMs: t1 - failoverKill.atMs,
      leaderMs: Number.isNaN(leaderAtMs) ? Number.NaN : leaderAtMs - failoverKill.atMs,
      newLeader: newLeader ?? s.leaderId,
      newTerm: newTerm || s.term,
      errors,
    };
  };
  let issued = 0;
  const worker = async (): Promise<void> => {
    while (!result && performance.now() < end && issued < LOAD_COUNT_MAX) {
      issued++;
      const t0 = wallMs();
      try {
        await queue.publish(c.topic, payload, { timeoutMs: 2_000 });
        const t1 = wallMs();
        if (!failoverKill) {
          successes.push([t0, t1]);
          if (successes.length > 4096) successes.splice(0, 2048);
        } else check(t0, t1);
      } catch (error) {
        bump(errors, error);
        await sleep(2);
      }
    }
  };
  const workers = Promise.all(Array.from({ length: c.inFlight }, worker));
  // Successes recorded before the kill notice arrived may already qualify.
  const poll = setInterval(() => {
    if (failoverKill && !result) for (const [t0, t1] of successes) check(t0, t1);
  }, 5);
  await workers;
  clearInterval(poll);
  queue.off('leaderChanged', onLeader);
  failoverKill = undefined;
  return result ?? { publishMs: Number.NaN, leaderMs: Number.NaN, newLeader, newTerm, errors };
}

async function memoryReport(gc: boolean): Promise<MemoryReport> {
  const collect = (globalThis as { gc?: () => void }).gc;
  const gcRan = gc && typeof collect === 'function';
  if (gcRan) {
    // Twice, with a turn between: the first may leave work (weak callbacks, finalizers) behind.
    collect();
    await sleep(50);
    collect();
  }
  const m = process.memoryUsage();
  const s = queue.status();
  const waiting = queue.metrics().topics.reduce((sum, t) => sum + t.depth, 0);
  return { gcRan, rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, waiting, appliedIndex: s.appliedIndex, commitIndex: s.commitIndex };
}

/** Waits until this member has applied `index` and knows a leader; reports when each happened. */
async function waitApplied(index: number, timeoutMs: number): Promise<WaitAppliedResult> {
  const end = performance.now() + timeoutMs;
  let appliedAtMs = Number.NaN;
  for (;;) {
    const s = queue.status();
    const now = wallMs();
    if (s.leaderId !== undefined && Number.isNaN(firstLeaderAtMs)) firstLeaderAtMs = now;
    if (s.appliedIndex >= index && Number.isNaN(appliedAtMs)) appliedAtMs = now;
    if (!Number.isNaN(appliedAtMs) && !Number.isNaN(firstLeaderAtMs)) return { appliedAtMs, appliedIndex: s.appliedIndex, firstLeaderAtMs };
    if (performance.now() > end) throw new Error(`applied ${s.appliedIndex} of ${index}, leader ${String(s.leaderId)}, within ${timeoutMs} ms`);
    await sleep(1);
  }
}

const loopDelay = monitorEventLoopDelay({ resolution: 1 });
let loopDelayOn = false;
let diagPersists = { count: 0, over50: 0, over200: 0 };
let diagSnapshots = 0;
let diagDropped = 0;
let gcMaxMs = 0;
let gcTotalMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcMaxMs = Math.max(gcMaxMs, e.duration);
    gcTotalMs += e.duration;
  }
}).observe({ entryTypes: ['gc'] });

function persistCounts(): { count: number; over50: number; over200: number } {
  const p = queue.metrics().persist;
  const atMost = (le: number): number => p.buckets.find((b) => b.le >= le)?.count ?? p.count;
  return { count: p.count, over50: p.count - atMost(0.05), over200: p.count - atMost(0.2) };
}

function diag(): DiagReport {
  if (!loopDelayOn) { loopDelay.enable(); loopDelayOn = true; }
  const now = persistCounts();
  const report: DiagReport = {
    loopDelayMaxMs: loopDelay.max / 1e6,
    loopDelayP99Ms: loopDelay.percentile(99) / 1e6,
    persists: now.count - diagPersists.count,
    persistsOver50Ms: now.over50 - diagPersists.over50,
    persistsOver200Ms: now.over200 - diagPersists.over200,
    snapshotsTaken: queue.metrics().snapshotsTaken - diagSnapshots,
    gcMaxMs,
    gcTotalMs,
    transportDropped: (queue.metrics().transport?.messagesDropped ?? 0) - diagDropped,
  };
  diagDropped = queue.metrics().transport?.messagesDropped ?? 0;
  gcMaxMs = 0;
  gcTotalMs = 0;
  diagSnapshots = queue.metrics().snapshotsTaken;
  diagPersists = now;
  loopDelay.reset();
  return report;
}

async function handle(c: NodeCommand): Promise<unknown> {
  switch (c.op) {
    case 'status':
      return { ...queue.status(), rssBytes: process.memoryUsage().rss, pid: process.pid };
    case 'cpu':
      return process.cpuUsage();
    case 'persists':
      return queue.metrics().persist.count;
    case 'diag':
      return diag();
    case 'members':
      return queue.members();
    case 'clientTraffic': {
      const m = queue.metrics();
      const t = m.transport;
      const traffic: ClientTraffic = { ...m.clients, framesIn: t?.framesIn ?? Number.NaN, framesOut: t?.framesOut ?? Number.NaN, bytesIn: t?.bytesIn ?? Number.NaN, bytesOut: t?.bytesOut ?? Number.NaN };
      return traffic;
    }
    case 'latencyWindow':
      return latencyWindow(c.fromMs, c.toMs) ?? null;
    case 'createTopic':
      return queue.createTopic(c.topic, { maxMessages: 10_000_000, maxBytes: 4 * 2 ** 30 });
    case 'deleteTopic':
      return queue.deleteTopic(c.topic);
    case 'publish':
      return publishLoad(c);
    case 'consume':
      return consumeLoad(c);
    case 'subscribe':
      return subscribeLoad(c);
    case 'failoverLoad':
      return failoverLoad(c);
    case 'killedAt':
      failoverKill = { atMs: c.atMs, oldLeader: c.oldLeader };
      return true;
    case 'memory':
      return memoryReport(c.gc);
    case 'publishSized': {
      const big = Buffer.alloc(c.bytes, 0x62);
      return closedLoop({ inFlight: c.inFlight, seconds: c.seconds, warmupSeconds: 0, countMax: c.count, latency: false, op: () => queue.publish(c.topic, big), stopOn: 'CLOSED' });
    }
    case 'waitApplied':
      return waitApplied(c.index, c.timeoutMs);
    case 'stop':
      await queue.stop();
      setTimeout(() => process.exit(0), 20);
      return true;
  }
}

process.on('message', (raw: { id: number; command: NodeCommand }) => {
  handle(raw.command).then(
    (value) => send({ reply: raw.id, ok: true, value }),
    (error: unknown) => send({ reply: raw.id, ok: false, error: `${errorCode(error)}: ${error instanceof Error ? error.message : String(error)}` }),
  );
});

const startBeginMs = wallMs();
await queue.start();
send({ ev: 'ready', pid: process.pid, processStartMs: performance.timeOrigin, startBeginMs, startEndMs: wallMs() });
