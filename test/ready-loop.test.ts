/**
 * The Ready loop with a write held in flight (storage that completes persists only when told):
 * a follower applies, during its write of a deposed leader's entries, the new leader's entries
 * committed at the same indexes; the snapshot taken after that write must wait for the write of
 * the new copies. (From the review of the change that applies entries early: the snapshot was
 * checked against the old copy in storage, and the follower fail-stopped.)
 */
import test from 'ava';
import { RaftCore } from '../lib/core/raft-core.js';
import { createRandom } from '../lib/core/random.js';
import { EntryType, type Entry } from '../lib/core/types.js';
import type { StateMachine } from '../lib/contracts/state-machine.js';
import { Applier } from '../lib/node/applier.js';
import { MemoryStorage } from '../lib/storage/memory-storage.js';
import { testReadyLoop } from './helpers/ready-loop-harness.js';

const noop = (index: number, term: number): Entry => ({ index, term, type: EntryType.Noop, data: new Uint8Array(0) });
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

/** Persists (and the compactions queued behind them) wait until `release()`. */
class HeldStorage extends MemoryStorage {
  readonly held: (() => void)[] = [];
  override persist(request: Parameters<MemoryStorage['persist']>[0], done: Parameters<MemoryStorage['persist']>[1]): void {
    this.held.push(() => super.persist(request, done));
  }
  override compact(snapshot: Parameters<MemoryStorage['compact']>[0], done: Parameters<MemoryStorage['compact']>[1]): void {
    if (this.held.length > 0) this.held.push(() => super.compact(snapshot, done));
    else super.compact(snapshot, done);
  }
  release(): void {
    this.held.shift()?.();
  }
}

test('ready loop: a snapshot after entries applied over a stale write in flight waits for the new copies', async (t) => {
  const storage = new HeldStorage();
  const core = new RaftCore({ id: 'n2', voters: ['n1', 'n2', 'n3'], storage, random: createRandom(1), electionTimeoutTicks: 10, heartbeatIntervalTicks: 1, bootstrap: false });
  const machine: StateMachine = { apply: () => undefined, tick: () => undefined, wantsTime: () => false, query: () => undefined, snapshot: () => new Uint8Array([1, 2, 3]), restore: () => undefined };
  const applier = new Applier(machine, undefined, () => undefined, () => undefined, () => undefined);
  const { loop, failures } = testReadyLoop({ core, storage, applier: applier as Applier<unknown>, snapshotEveryEntries: 4 });
  t.teardown(() => loop.close());
  // Leader n1 (term 1): 1..2 committed and written.
  core.step({ type: 'append', from: 'n1', to: 'n2', term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [noop(1, 1), noop(2, 1)], commit: 2 });
  loop.schedulePump();
  await settle();
  storage.release();
  await settle();
  // n1 sends 3..10 (never committed); their write is in flight.
  core.step({ type: 'append', from: 'n1', to: 'n2', term: 1, prevLogIndex: 2, prevLogTerm: 1, entries: [3, 4, 5, 6, 7, 8, 9, 10].map((i) => noop(i, 1)), commit: 2 });
  loop.schedulePump();
  await settle();
  t.is(storage.held.length, 1);
  // New leader n3 (term 2) committed its own 3..5 over them, and says so while that write runs.
  core.step({ type: 'append', from: 'n3', to: 'n2', term: 2, prevLogIndex: 2, prevLogTerm: 1, entries: [noop(3, 2), noop(4, 2), noop(5, 2)], commit: 5 });
  loop.schedulePump();
  await settle();
  t.is(applier.appliedIndex, 5, 'applied early, before the write of the new copies');
  t.is(loop.counters.appliedEarly, 3);
  // The stale write completes; a snapshot at 5 becomes due. Then the write of the new copies.
  for (let i = 0; i < 10 && storage.held.length > 0; i++) {
    storage.release();
    await settle();
  }
  t.deepEqual(failures, []);
  t.is(storage.term(5), 2);
  t.is(loop.counters.snapshotsTaken, 1);
  t.is(storage.firstIndex(), 6, 'compacted through 5, of term 2');
});
