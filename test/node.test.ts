/**
 * RaftNode (the Ready loop) below the facade: fail-stop on storage failure, and snapshots.
 */
import test from 'ava';
import { createRandom } from '../lib/core/random.js';
import type { PersistRequest, Snapshot } from '../lib/core/types.js';
import { RaftQueueError } from '../lib/contracts/errors.js';
import { AFTER_TASK_PER_TURN_MAX, systemClock } from '../lib/node/clock.js';
import { RaftNode } from '../lib/node/raft-node.js';
import type { NodeEvent, SubmitOutcome } from '../lib/node/raft-node.js';
import { QueueStateMachine, encodeCommand } from '../lib/queue/index.js';
import type { ApplyResult, Command, QueueEvent } from '../lib/queue/index.js';
import { FileStorage, MemoryStorage } from '../lib/storage/index.js';
import type { Storage, StorageCallback } from '../lib/storage/index.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryNetwork } from '../transports/memory/index.js';

/** A MemoryStorage whose disk "fills up" after `okPersists` successful persists. */
class FullDiskStorage extends MemoryStorage {
  persists = 0;
  constructor(private readonly okPersists: number) {
    super();
  }
  override persist(request: PersistRequest, onPersisted: StorageCallback): void {
    if (++this.persists > this.okPersists) {
      const cause = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      queueMicrotask(() => onPersisted(new RaftQueueError('STORAGE_FAILED', 'write failed', { cause })));
      return;
    }
    super.persist(request, onPersisted);
  }
}

function singleNode(storage: Storage, events: NodeEvent<QueueEvent>[], snapshotEveryEntries = 1_000, seed = 7, snapshotEveryBytes?: number): RaftNode<QueueEvent> {
  const net = new MemoryNetwork();
  return new RaftNode({
    id: 'n1',
    voters: ['n1'],
    storage,
    transport: net.transport('n1'),
    clock: systemClock,
    random: createRandom(seed),
    stateMachine: new QueueStateMachine(),
    tickIntervalMs: 5,
    electionTimeoutTicks: 4,
    heartbeatIntervalTicks: 1,
    snapshotEveryEntries,
    ...(snapshotEveryBytes === undefined ? {} : { snapshotEveryBytes }),
    retryIntervalMs: 200,
    timeTickIntervalMs: 100,
    onEvent: (e) => events.push(e),
  });
}

const submit = (node: RaftNode<QueueEvent>, cmd: Command): Promise<SubmitOutcome> => new Promise((resolve) => node.submit(encodeCommand(cmd), 2_000, resolve));
const resultOf = (o: SubmitOutcome): ApplyResult | undefined => (o.ok ? (o.result as ApplyResult) : undefined);

test('node: a full disk fail-stops the node with STORAGE_FAILED and rejects pending work', async (t) => {
  const events: NodeEvent<QueueEvent>[] = [];
  const storage = new FullDiskStorage(4); // bootstrap, election, createTopic, one publish
  const node = singleNode(storage, events);
  await node.start();
  const created = await submit(node, { t: 'createTopic', topic: 't' });
  t.true(created.ok);
  const outcomes: SubmitOutcome[] = [];
  for (let i = 0; i < 10; i++) outcomes.push(await submit(node, { t: 'publish', topic: 't', payload: new Uint8Array([i]) }));
  const failed = outcomes.filter((o) => !o.ok);
  t.true(failed.length > 0, 'publishes after the disk filled up fail');
  for (const o of failed) if (!o.ok) t.true(o.error.code === 'STORAGE_FAILED' || o.error.code === 'CLOSED', o.error.code);
  const fatal = events.find((e) => e.type === 'fatal');
  t.truthy(fatal);
  if (fatal?.type === 'fatal') t.is(fatal.error.code, 'STORAGE_FAILED');
  // The node stays stopped: later calls fail at once, nothing is retried against the disk.
  const persistsBefore = storage.persists;
  const later = await submit(node, { t: 'publish', topic: 't', payload: new Uint8Array([1]) });
  t.false(later.ok);
  await new Promise((r) => setTimeout(r, 100));
  t.is(storage.persists, persistsBefore);
});

test('node: snapshotEveryBytes compacts a log of few large entries long before snapshotEveryEntries', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'raftqueue-node-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const storage = await FileStorage.open({ dataDir: dir });
  const node = singleNode(storage, [], 1_000_000, 7, 64 * 1024);
  await node.start();
  t.true((await submit(node, { t: 'createTopic', topic: 't' })).ok);
  for (let i = 0; i < 40; i++) t.true((await submit(node, { t: 'publish', topic: 't', payload: new Uint8Array(1000).fill(i) })).ok);
  t.is(storage.snapshot(), undefined, 'under 64 KiB of log: no snapshot yet');
  for (let i = 40; i < 80; i++) t.true((await submit(node, { t: 'publish', topic: 't', payload: new Uint8Array(1000).fill(i) })).ok);
  await new Promise((r) => setTimeout(r, 100));
  const snap = storage.snapshot();
  t.truthy(snap, 'a snapshot was taken by bytes');
  t.true(storage.firstIndex() > 40, `log compacted (first index ${storage.firstIndex()})`);
  await new Promise<void>((resolve) => node.stop(0, resolve));
});

test('node: the log is compacted into a snapshot and a restart recovers from it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'raftqueue-node-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const storage = await FileStorage.open({ dataDir: dir });
  const node = singleNode(storage, [], 16);
  await node.start();
  t.true((await submit(node, { t: 'createTopic', topic: 't' })).ok);
  for (let i = 0; i < 60; i++) t.true((await submit(node, { t: 'publish', topic: 't', payload: new Uint8Array([i]) })).ok);
  await new Promise((r) => setTimeout(r, 50));
  const snap = storage.snapshot() as Snapshot;
  t.truthy(snap, 'a snapshot was taken');
  t.true(storage.firstIndex() > 16, `log compacted (first index ${storage.firstIndex()})`);
  // A new node over the same storage starts from the snapshot plus the log after it.
  await new Promise<void>((resolve) => node.stop(0, resolve));
  const reopened = await FileStorage.open({ dataDir: dir });
  t.deepEqual(reopened.snapshot()?.meta, snap.meta);
  const again = singleNode(reopened, [], 16, 8);
  await again.start();
  t.true(again.status().appliedIndex >= snap.meta.index);
  const poppedOutcome = await submit(again, { t: 'consume', topic: 't' });
  const popped = resultOf(poppedOutcome);
  t.true(popped?.ok);
  if (popped?.ok) t.is((popped.value as { offset: number }).offset, 0);
  t.is(again.queryLocal({ q: 'depth', topic: 't' }), 59);
  await new Promise<void>((resolve) => again.stop(0, resolve));
});

test.serial('clock: afterTask runs at the end of the task, at most AFTER_TASK_PER_TURN_MAX per turn; the rest wait for the next turn', async (t) => {
  const order: string[] = [];
  let ranBeforeIo = -1;
  setImmediate(() => (ranBeforeIo = order.length));
  const total = AFTER_TASK_PER_TURN_MAX + 36;
  for (let i = 0; i < total; i++) systemClock.afterTask(() => order.push(`a${i}`));
  t.is(order.length, 0, 'nothing runs inside the task that asked');
  await new Promise<void>((resolve) => setTimeout(resolve, 20));
  t.is(ranBeforeIo, AFTER_TASK_PER_TURN_MAX, 'the bounded number ran as microtasks, before the I/O phase');
  t.is(order.length, total, 'the rest ran on the next turn');
  t.deepEqual(order, Array.from({ length: total }, (_, i) => `a${i}`), 'in order');
  // A new turn has a fresh budget.
  let again = -1;
  setImmediate(() => (again = order.length));
  for (let i = 0; i < 3; i++) systemClock.afterTask(() => order.push('b'));
  await new Promise<void>((resolve) => setTimeout(resolve, 20));
  t.is(again, total + 3);
});
