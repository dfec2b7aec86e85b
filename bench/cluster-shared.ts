/**
 * Shared pieces of the cluster benchmark (`npm run bench`): the parent <-> child IPC protocol,
 * percentiles, and the 100-byte payload.
 */

/** The payload every benchmark publishes: 98 raw bytes, which msgpack encodes (bin 8) in 100. */
export const PAYLOAD_RAW_BYTES = 98;
export const PAYLOAD_ENCODED_BYTES = 100;

/** Hard upper bound on the count of any load loop, whatever its duration. */
export const LOAD_COUNT_MAX = 20_000_000;

/** Milliseconds on a clock shared by every process of the machine (epoch, sub-ms resolution). */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

export function median(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return Number.NaN;
  const sorted = [...finite].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export interface LatencySummary {
  readonly samples: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

export function summarize(latencies: Float64Array | number[], n = latencies.length): LatencySummary {
  const sorted = Float64Array.from(Array.prototype.slice.call(latencies, 0, n) as number[]).sort();
  return {
    samples: n,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    p999Ms: percentile(sorted, 0.999),
    maxMs: n > 0 ? (sorted[n - 1] as number) : Number.NaN,
  };
}

/** The result of one closed-loop load phase inside a node process. */
export interface LoadResult {
  /** Operations completed inside the measuring window. */
  readonly count: number;
  /** Length of the measuring window, ms. */
  readonly windowMs: number;
  readonly perSecond: number;
  /** Operations completed in total (warm-up and drain included). */
  readonly total: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly latency?: LatencySummary;
  /** consume: pops that found the topic empty. */
  readonly empty?: number;
  /** The measuring window on the monotonic clock V8's CPU profiles use (µs). */
  readonly monoWindowUs?: readonly [number, number];
  /** With `series`: every latency sample and when it was issued (wallMs), to cut any window. */
  readonly series?: { readonly issuedAtMs: readonly number[]; readonly latencyMs: readonly number[] };
}

/**
 * The result of a closed-loop phase: `count` completions inside the window that started at
 * `warmEnd` and closed at `end` (or at the last completion, if earlier).
 */
export function loadResult(p: {
  count: number;
  total: number;
  warmEnd: number;
  end: number;
  lastDone: number;
  errors: Readonly<Record<string, number>>;
  latencies?: Float64Array | undefined;
  latencyCount?: number;
  issuedAt?: Float64Array | undefined;
}): LoadResult & { windowMs: number } {
  const windowMs = Math.max(1, Math.min(p.end, p.lastDone) - p.warmEnd);
  return {
    count: p.count,
    windowMs,
    perSecond: (p.count * 1000) / windowMs,
    total: p.total,
    errors: p.errors,
    ...(p.latencies ? { latency: summarize(p.latencies, p.latencyCount) } : {}),
    ...(p.latencies && p.issuedAt
      ? { series: { issuedAtMs: Array.from(p.issuedAt.subarray(0, p.latencyCount)), latencyMs: Array.from(p.latencies.subarray(0, p.latencyCount)) } }
      : {}),
  };
}

/** Microseconds on CLOCK_MONOTONIC, the clock of `.cpuprofile` timestamps on Linux. */
export function monoUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** Commands from the parent to a node process (`id` pairs a reply with its request). */
export type NodeCommand =
  | { readonly op: 'status' }
  | { readonly op: 'cpu' }
  /** Storage persists (WAL writes + fdatasync) this member made so far. */
  | { readonly op: 'persists' }
  /** Event-loop delay and slow persists since the last `diag` (diagnosis of latency tails). */
  | { readonly op: 'diag' }
  /** Publishes `count` payloads of `bytes` bytes each (a deep state in few messages), `inFlight` at a time. */
  | { readonly op: 'publishSized'; readonly topic: string; readonly bytes: number; readonly count: number; readonly inFlight: number; readonly seconds: number }
  /** This member's view of the membership (queue.members()). */
  | { readonly op: 'members' }
  /** Client processes connected now and the transport's frame and byte counters (`ClientTraffic`). */
  | { readonly op: 'clientTraffic' }
  /** Latency of the last `series` publish load's samples issued at or after `fromMs` and done by `toMs` (wallMs). */
  | { readonly op: 'latencyWindow'; readonly fromMs: number; readonly toMs: number }
  | { readonly op: 'createTopic'; readonly topic: string }
  | { readonly op: 'deleteTopic'; readonly topic: string }
  | {
      readonly op: 'publish';
      readonly topic: string;
      readonly inFlight: number;
      readonly seconds: number;
      readonly warmupSeconds: number;
      readonly countMax: number;
      readonly latency: boolean;
      /** Keep every latency sample with its issue time, for `latencyWindow` (a window known only afterwards). */
      readonly series?: boolean;
      /** Publish with a message key, `k0` to `k<keys-1>` in turn (FIFO per key); none: no key. */
      readonly keys?: number;
    }
  | { readonly op: 'consume'; readonly topic: string; readonly concurrency: number; readonly seconds: number; readonly countMax: number }
  | {
      readonly op: 'subscribe';
      readonly topic: string;
      readonly group: string;
      readonly maxInFlight: number;
      readonly seconds: number;
      readonly countMax: number;
      /** Subscriptions in the group, each with `maxInFlight` (default 1). */
      readonly consumers?: number;
    }
  /** Publishes until told the leader was killed, then reports when publishing works again. */
  | { readonly op: 'failoverLoad'; readonly topic: string; readonly inFlight: number; readonly seconds: number }
  | { readonly op: 'killedAt'; readonly atMs: number; readonly oldLeader: string }
  /** Runs a full GC first when the process has --expose-gc, then reports memory use. */
  | { readonly op: 'memory'; readonly gc: boolean }
  /** Resolves once this member has applied `index` and knows a leader (bounded by `timeoutMs`). */
  | { readonly op: 'waitApplied'; readonly index: number; readonly timeoutMs: number }
  | { readonly op: 'stop' };

export interface FailoverResult {
  /** From SIGKILL to the first successful publish issued after it. */
  readonly publishMs: number;
  /** From SIGKILL to this node learning of a new leader. */
  readonly leaderMs: number;
  readonly newLeader: string | undefined;
  readonly newTerm: number;
  readonly errors: Readonly<Record<string, number>>;
}

/** What a member reports for `clientTraffic`: metrics().clients and metrics().transport counters. */
export interface ClientTraffic {
  readonly connected: number;
  readonly refused: number;
  /** Frames and bytes in and out on every link (members and clients), since the member started. */
  readonly framesIn: number;
  readonly framesOut: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

export interface MemoryReport {
  readonly gcRan: boolean;
  readonly rss: number;
  readonly heapTotal: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
  /** Messages waiting in every topic as this member's state has them. */
  readonly waiting: number;
  readonly appliedIndex: number;
  readonly commitIndex: number;
}

export interface WaitAppliedResult {
  /** Wall clock (wallMs) when appliedIndex first reached the index asked for. */
  readonly appliedAtMs: number;
  readonly appliedIndex: number;
  /** Wall clock when this process first knew a leader (NaN, null over IPC, if it does not yet). */
  readonly firstLeaderAtMs: number | null;
}

/** What a node process reports when RaftQueue.start() has resolved. */
export interface ReadyMessage {
  readonly ev: 'ready';
  readonly pid: number;
  /** Wall clock of the process's start (performance.timeOrigin). */
  readonly processStartMs: number;
  /** Wall clock just before and just after `await queue.start()`. */
  readonly startBeginMs: number;
  readonly startEndMs: number;
}

/** Unsolicited events from a node process. */
export type NodeEventMessage =
  | ReadyMessage
  | { readonly ev: 'leader'; readonly node: string; readonly leaderId: string | undefined; readonly term: number; readonly atMs: number }
  | { readonly ev: 'fatal'; readonly node: string; readonly message: string };

export type NodeReply = { readonly reply: number; readonly ok: true; readonly value: unknown } | { readonly reply: number; readonly ok: false; readonly error: string };

export function errorCode(error: unknown): string {
  if (error && typeof error === 'object' && 'code' in error && typeof (error as { code: unknown }).code === 'string') return (error as { code: string }).code;
  return error instanceof Error ? error.name : 'unknown';
}

/**
 * A closed loop of `inFlight` workers calling `op`, bounded by count and time: completions
 * inside the window after `warmupSeconds` are counted; latencies if asked (1 in flight).
 */
export async function closedLoop(p: {
  inFlight: number;
  seconds: number;
  warmupSeconds: number;
  countMax: number;
  latency: boolean;
  op: () => Promise<unknown>;
  /** A worker stops at an error with this code (e.g. CLOSED: the member is stopping). */
  stopOn?: string;
  /** Also return every latency sample with its issue time (`LoadResult.series`). */
  series?: boolean;
}): Promise<LoadResult> {
  const countMax = Math.min(p.countMax, LOAD_COUNT_MAX);
  const started = performance.now();
  const warmEnd = started + p.warmupSeconds * 1000;
  const end = warmEnd + p.seconds * 1000;
  const errors: Record<string, number> = {};
  const latencies = p.latency ? new Float64Array(Math.min(countMax, 4_000_000)) : undefined;
  const issuedAt = p.latency && p.series ? new Float64Array(latencies?.length ?? 0) : undefined;
  let latencyCount = 0;
  let issued = 0;
  let total = 0;
  let count = 0;
  let errorTotal = 0;
  let lastDone = started;
  const worker = async (): Promise<void> => {
    while (issued < countMax && errorTotal < 10_000) {
      const t0 = performance.now();
      if (t0 >= end) return;
      issued++;
      try {
        await p.op();
        const t1 = performance.now();
        total++;
        lastDone = t1;
        if (t1 >= warmEnd && t1 <= end) {
          count++;
          if (latencies && t0 >= warmEnd && latencyCount < latencies.length) {
            if (issuedAt) issuedAt[latencyCount] = performance.timeOrigin + t0;
            latencies[latencyCount++] = t1 - t0;
          }
        }
      } catch (error) {
        errorTotal++;
        const code = errorCode(error);
        errors[code] = (errors[code] ?? 0) + 1;
        if (code === p.stopOn) return;
        await new Promise((r) => setTimeout(r, 1));
      }
    }
  };
  await Promise.all(Array.from({ length: p.inFlight }, worker));
  return loadResult({ count, total, warmEnd, end, lastDone, errors, latencies, latencyCount, issuedAt });
}

/** What a member reports for `diag`: its event loop's worst delays and its slow persists. */
export interface DiagReport {
  readonly loopDelayMaxMs: number;
  readonly loopDelayP99Ms: number;
  readonly persists: number;
  /** Persists slower than 50 ms and than 200 ms (from the persist histogram). */
  readonly persistsOver50Ms: number;
  readonly persistsOver200Ms: number;
  /** Snapshots the member took in the interval. */
  readonly snapshotsTaken: number;
  /** Garbage collection in the interval: the longest pause and the sum. */
  readonly gcMaxMs: number;
  readonly gcTotalMs: number;
  /** Peer messages the transport dropped in the interval (peer down or its queue full). */
  readonly transportDropped: number;
}
