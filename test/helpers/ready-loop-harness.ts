/**
 * A ReadyLoop wired for unit tests: a real core, storage and applier, a clock of timers that fire
 * on the next turns, no transport, and hooks that record failures instead of stopping a node.
 */
import type { RaftCore } from '../../lib/core/raft-core.js';
import type { Applier } from '../../lib/node/applier.js';
import type { Clock } from '../../lib/node/clock.js';
import { ReadyLoop } from '../../lib/node/ready-loop.js';
import type { Storage } from '../../lib/storage/storage.js';

/** Timers that fire on the next turns, a clock that stands still. */
export const turnClock: Clock = {
  nowMs: () => 0,
  monoMs: () => 0,
  every: () => ({ cancel: () => undefined }),
  after: (_ms, fn) => {
    const h = setTimeout(fn, 0);
    return { cancel: () => clearTimeout(h) };
  },
  soon: (fn) => void setImmediate(fn),
  afterTask: (fn) => queueMicrotask(fn),
};

/** The loop and the errors its hooks were handed (a guard's throw, a fail-stop). */
export function testReadyLoop(o: { core: RaftCore; storage: Storage; applier: Applier<unknown>; snapshotEveryEntries: number; snapshotEveryBytes?: number }): { loop: ReadyLoop; failures: unknown[] } {
  const failures: unknown[] = [];
  const loop: ReadyLoop = new ReadyLoop({
    core: o.core,
    storage: o.storage,
    transport: { send: () => undefined } as never,
    clock: turnClock,
    applier: o.applier,
    snapshotEveryEntries: o.snapshotEveryEntries,
    snapshotEveryBytes: o.snapshotEveryBytes ?? 1 << 30,
    snapshotSliceBytes: 1 << 20,
    initialSnapshotBytes: 0,
    hooks: {
      beforeReady: () => undefined,
      beforeSend: () => undefined,
      onSoftState: () => undefined,
      onReadStates: () => undefined,
      afterRestore: () => undefined,
      sendSnapshot: () => undefined,
      afterAdvance: () => undefined,
      afterApply: () => undefined,
      guard: (fn) => {
        try {
          return fn();
        } catch (error) {
          failures.push(error);
          return undefined;
        }
      },
      fail: (error) => {
        failures.push(error);
        loop.close();
      },
      log: () => undefined,
    },
  });
  return { loop, failures };
}
