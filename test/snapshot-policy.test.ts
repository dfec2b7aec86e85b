/**
 * When the Ready loop takes a snapshot of its own state (lib/node/ready-loop.ts, maybeCompact):
 * the amortized rule (the log since the last snapshot is at least as large as it) and the growth
 * rule (a backlog that only grows waits for dead bytes or LOG_PER_SNAPSHOT_MAX times the last
 * snapshot of log). A follower is fed one committed entry of 1,000 bytes at a time; the state
 * machine's snapshot is as large as the test says the state is.
 */
import test from 'ava';
import { RaftCore } from '../lib/core/raft-core.js';
import { createRandom } from '../lib/core/random.js';
import { EntryType, type Entry } from '../lib/core/types.js';
import type { StateMachine } from '../lib/contracts/state-machine.js';
import { Applier } from '../lib/node/applier.js';
import { MemoryStorage } from '../lib/storage/memory-storage.js';
import { testReadyLoop } from './helpers/ready-loop-harness.js';
import { encodeCommand, encodePublishBytes } from '../lib/queue/commands.js';
import { QueueStateMachine } from '../lib/queue/state-machine.js';

const ENTRY_BYTES = 1000;
/** Snapshot points, and how many images (snapshot() calls) the state machine was asked for. */
type Points = number[] & { images: number };
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 2));

/**
 * Feeds `entries` entries to a follower whose state is `stateBytes(applied)` bytes; returns the
 * log bytes applied since the start at which each snapshot was taken.
 */
async function snapshotPoints(entries: number, stateBytes: (applied: number) => number, withHint = false, byEntries = false, entryBytes: (index: number) => number = () => ENTRY_BYTES, byIndex = false): Promise<Points> {
  const storage = new MemoryStorage();
  const core = new RaftCore({ id: 'n2', voters: ['n1', 'n2', 'n3'], storage, random: createRandom(7), electionTimeoutTicks: 10, heartbeatIntervalTicks: 1, bootstrap: false });
  let applier: Applier<unknown> | undefined;
  const machine: StateMachine = {
    apply: () => undefined,
    tick: () => undefined,
    wantsTime: () => false,
    query: () => undefined,
    snapshot: () => {
      images++;
      return new Uint8Array(stateBytes(applier?.appliedIndex ?? 0));
    },
    restore: () => undefined,
    ...(withHint ? { snapshotSizeHint: () => stateBytes(applier?.appliedIndex ?? 0) } : {}),
  };
  applier = new Applier(machine, undefined, () => undefined, () => undefined, () => undefined) as Applier<unknown>;
  // Due every 4,000 bytes of log (4 entries), or with `byEntries` every 4 entries (then the growth
  // rule also stops at 4 times that many entries held).
  const { loop, failures } = byEntries
    ? testReadyLoop({ core, storage, applier, snapshotEveryEntries: 4 })
    : testReadyLoop({ core, storage, applier, snapshotEveryEntries: 1 << 30, snapshotEveryBytes: 4 * ENTRY_BYTES });
  const points: number[] = [];
  let images = 0;
  try {
    for (let index = 1; index <= entries; index++) {
      const entry: Entry = { index, term: 1, type: EntryType.Noop, data: new Uint8Array(entryBytes(index)) };
      core.step({ type: 'append', from: 'n1', to: 'n2', term: 1, prevLogIndex: index - 1, prevLogTerm: index === 1 ? 0 : 1, entries: [entry], commit: index });
      const before = loop.counters.snapshotsTaken;
      loop.schedulePump();
      // Each snapshot is copied out and compacted before the next entry comes.
      for (let i = 0; i < 20 && (storage.firstIndex() <= index - 1 || i === 0) && loop.counters.snapshotsTaken > before; i++) await settle();
      await settle();
      if (loop.counters.snapshotsTaken > before) points.push(byIndex ? index : index * ENTRY_BYTES);
    }
  } finally {
    loop.close();
  }
  if (failures.length > 0) throw failures[0];
  return Object.assign(points, { images });
}

test('snapshot policy: when nothing grows, a snapshot once the log since the last is as large as it', async (t) => {
  // A state of 4,000 bytes (plus the node layer's header): every 5 entries.
  const points = await snapshotPoints(40, () => 4000);
  t.true(points.length >= 7, `snapshots at ${points.join(', ')}`);
  for (let i = 1; i < points.length; i++) {
    const gap = (points[i] as number) - (points[i - 1] as number);
    t.true(gap >= 4000 && gap <= 6000, `gap ${gap} between snapshots at ${points.join(', ')}`);
  }
});

test('snapshot policy: a backlog that only grows waits for 4 times the last snapshot of log', async (t) => {
  // The state is every byte applied: no byte of the log is dead.
  const points = await snapshotPoints(130, (applied) => applied * ENTRY_BYTES);
  t.is(points.length, 3, `snapshots at ${points.join(", ")}`);
  const [first, second, third] = [...points] as [number, number, number];
  t.is(first, 4 * ENTRY_BYTES, 'the first one when snapshotEveryEntries is reached');
  // Each next one once the log since the last is 4 times it: at 5 times the last.
  t.true(second >= 5 * first && second <= 5 * first + 2 * ENTRY_BYTES, `second at ${second}`);
  t.true(third >= 5 * second && third <= 5 * second + 2 * ENTRY_BYTES, `third at ${third}`);
  // Under the amortized rule alone they came at every doubling: 4k, 8k, 16k, 32k, 64k, 128k.
});

test('snapshot policy: a backlog that only grows keeps at most 4 times snapshotEveryEntries entries', async (t) => {
  // One small entry per request: the entries, not their bytes, bound the log. The second comes at
  // 16 entries held (not at 4 times the first snapshot, 16,000 bytes, plus), the third as soon as
  // the amortized rule allows (the log as large as the second snapshot): the growth rule never
  // holds more entries than the larger of the two.
  const points = await snapshotPoints(60, (applied) => applied * ENTRY_BYTES, true, true);
  t.deepEqual(points.slice(0, 3), [4000, 20000, 41000], `snapshots at ${points.join(', ')}`);
});

test('snapshot policy: a state drained by small entries behind a large snapshot is snapshotted within the entries bound', async (t) => {
  // 60 entries of 1,000 bytes grow the state to 60,000; then entries of 10 bytes (acks) drain it,
  // 1,000 bytes each, to nothing. Due every 4 entries; the bound is 16 entries held. The amortized
  // rule alone (the log since the last snapshot as large as it, ~60,000 bytes) would hold
  // thousands of them; with the hint the state now (smaller than the log) stands in for it.
  const points = await snapshotPoints(
    200,
    (applied) => Math.max(0, Math.min(applied, 60) - Math.max(0, applied - 60)) * ENTRY_BYTES,
    true,
    true,
    (index) => (index <= 60 ? ENTRY_BYTES : 10),
    true,
  );
  const late = points.filter((i) => i > 60);
  t.true(late.length >= 2, `snapshots at entries ${points.join(', ')}`);
  for (let k = 1; k < late.length; k++) t.true((late[k] as number) - (late[k - 1] as number) <= 16 + 4, `snapshots at entries ${points.join(', ')}`);
});

test('snapshot policy: a backlog growing by half the log waits for the limit (a snapshot then never frees what it writes)', async (t) => {
  // Half of every entry stays in the state, half is consumed: dead bytes are half the log, and
  // the state grows by as much, so dead bytes never reach the state's size. Each snapshot comes at
  // the limit, 4 times the larger of the last snapshot and snapshotEveryBytes (4,000): 16,000
  // bytes after the first (of 2,000), then 4 times the second (10,000): 4,000, 20,000, 61,000.
  const points = await snapshotPoints(100, (applied) => (applied * ENTRY_BYTES) / 2);
  t.deepEqual([...points], [4000, 20000, 61000], `snapshots at ${points.join(', ')}`);
});

test('snapshot policy: a snapshot that frees at least what it writes is taken at once', async (t) => {
  // 60 entries grow the state; then each entry replaces all but 2,000 bytes of it (a queue
  // consumed as fast as it is published): dead bytes pass the state's size within a few entries.
  const points = await snapshotPoints(80, (applied) => (applied <= 60 ? applied * ENTRY_BYTES : 2000));
  const late = points.filter((p) => p > 60 * ENTRY_BYTES);
  t.true(late.length >= 1 && (late[0] as number) <= 64 * ENTRY_BYTES, `snapshots at ${points.join(', ')}`);
});

test('snapshot policy: with the state machine\'s size hint, the same points, and no image taken to decline', async (t) => {
  const withoutHint = await snapshotPoints(130, (applied) => applied * ENTRY_BYTES);
  const imagesWithout = withoutHint.images;
  const points = await snapshotPoints(130, (applied) => applied * ENTRY_BYTES, true);
  t.deepEqual([...points], [...withoutHint]);
  // Without a hint every look took an image (12 declined per snapshot); with one, only the 3 taken.
  t.is(points.images, points.length);
  t.true(imagesWithout > 2 * points.length, `${imagesWithout} images without a hint`);
  // State deleted at once (a topic) leaves dead log: the snapshot comes as soon as the log since
  // the last one (at 21,000, of 21,000 bytes) is as large as it, at 43,000.
  const shrinking = await snapshotPoints(60, (applied) => (applied <= 40 ? applied : 0) * ENTRY_BYTES, true);
  t.deepEqual(shrinking.slice(0, 3), [4000, 21000, 43000], `snapshots at ${shrinking.join(', ')}`);
});

test('snapshot policy: the queue state machine\'s size hint follows its snapshot size, up and down', (t) => {
  const sm = new QueueStateMachine({});
  let index = 0;
  const apply = (body: Uint8Array): void => void sm.applyCommandBytes(body, { index: ++index, atMs: 1 });
  apply(encodeCommand({ t: 'createTopic', topic: 'a' }));
  apply(encodeCommand({ t: 'createTopic', topic: 'b' }));
  const base = sm.snapshotBytes().length - sm.snapshotSizeHint();
  const payload = new Uint8Array(100).fill(7);
  for (let i = 0; i < 2_000; i++) apply(encodePublishBytes(i % 2 === 0 ? 'a' : 'b', payload));
  apply(encodePublishBytes('a', payload, undefined, { key: 'k1', priority: 3 }));
  const grown = sm.snapshotBytes().length;
  // What the hint leaves out (topic headers, groups, timers) did not grow with the messages.
  const hint = sm.snapshotSizeHint();
  t.true(Math.abs(grown - hint - base) < 0.02 * grown, `snapshot ${grown}, hint ${hint}, base ${base}`);
  apply(encodeCommand({ t: 'deleteTopic', topic: 'b' }));
  t.true(sm.snapshotSizeHint() < 0.55 * hint, `after deleting half: ${sm.snapshotSizeHint()} of ${hint}`);
});
