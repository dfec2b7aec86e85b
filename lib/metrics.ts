/**
 * Persist latency, measured around the Storage contract so that no storage knows about metrics:
 * a cumulative histogram the facade reports in `metrics().persist`.
 */
import type { QueueMetrics } from './api-types.js';
import type { Storage } from './storage/storage.js';
import { EntryType, type Entry } from './core/types.js';
import { entryStampMs } from './node/envelope.js';

/** Upper bounds (seconds) of the persist latency histogram buckets in {@link QueueMetrics}. */
export const PERSIST_SECONDS_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** Cumulative histogram of persist durations (bucket bounds: PERSIST_SECONDS_BUCKETS). */
export class PersistTimer {
  private count = 0;
  private secondsSum = 0;
  private readonly buckets = PERSIST_SECONDS_BUCKETS.map(() => 0);

  record(seconds: number): void {
    this.count++;
    this.secondsSum += seconds;
    for (let i = 0; i < PERSIST_SECONDS_BUCKETS.length; i++) {
      if (seconds <= (PERSIST_SECONDS_BUCKETS[i] as number)) this.buckets[i] = (this.buckets[i] as number) + 1;
    }
  }

  snapshot(): QueueMetrics['persist'] {
    return { count: this.count, secondsSum: this.secondsSum, buckets: PERSIST_SECONDS_BUCKETS.map((le, i) => ({ le, count: this.buckets[i] as number })) };
  }
}

/**
 * Commit latency as this member sees it: for each entry of requests it applies, the time from the
 * leader's stamp (taken when the leader proposed the entry) to this member applying it. On the
 * leader that is the commit round trip (replication, the followers' fsyncs and its own) and the
 * wait for its turn to apply; on a follower it also includes the commit notice's trip. Time ticks
 * (entries without requests) are not counted. Wall clocks: a follower's figure includes any
 * clock difference with the leader.
 */
export function commitTracer(timer: PersistTimer, nowMs: () => number): (entry: Entry) => void {
  return (entry) => {
    if (entry.type !== EntryType.Normal) return;
    const at = entryStampMs(entry.data);
    if (at === undefined) return;
    timer.record(Math.max(0, nowMs() - at) / 1000);
  };
}

/** `storage` with every persist timed into `timer`; everything else passes straight through. */
export function timedStorage(storage: Storage, timer: PersistTimer): Storage {
  return {
    firstIndex: () => storage.firstIndex(),
    lastIndex: () => storage.lastIndex(),
    term: (index) => storage.term(index),
    entries: (lo, hi, bytesMax) => storage.entries(lo, hi, bytesMax),
    hardState: () => storage.hardState(),
    snapshot: () => storage.snapshot(),
    persist: (request, onPersisted) => {
      const started = process.hrtime.bigint();
      storage.persist(request, (error) => {
        timer.record(Number(process.hrtime.bigint() - started) / 1e9);
        onPersisted(error);
      });
    },
    compact: (snapshot, onDone) => storage.compact(snapshot, onDone),
    markRepaired: (onDone) => storage.markRepaired(onDone),
    ...(storage.stageSnapshot !== undefined ? { stageSnapshot: (meta, byteLength) => (storage.stageSnapshot as NonNullable<Storage['stageSnapshot']>).call(storage, meta, byteLength) } : {}),
    status: () => storage.status(),
    close: () => storage.close(),
  };
}
