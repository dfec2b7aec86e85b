/**
 * The Storage conformance suite: the same macros run against MemoryStorage and FileStorage.
 */
import test, { type ExecutionContext } from 'ava';
import { entryBytes } from '../../lib/core/types.js';
import { FileStorage, MemoryStorage, type Storage } from '../../lib/storage/index.js';
import {
  allEntries,
  compact,
  entries,
  entry,
  hardState,
  isIntact,
  persist,
  snapshotAt,
  tempDir,
} from '../helpers/storage-fixtures.js';

/** How a macro gets a storage; `reopen` closes it and opens the same data again (file only). */
interface Subject {
  storage: Storage;
  reopen?: () => Promise<Storage>;
}

interface Kind {
  readonly name: 'memory' | 'file';
  open(t: ExecutionContext): Promise<Subject>;
}

const memory: Kind = {
  name: 'memory',
  open: async () => ({ storage: new MemoryStorage() }),
};

const file: Kind = {
  name: 'file',
  async open(t) {
    const dataDir = tempDir(t, 'conformance');
    // Small segments so the suite crosses segment boundaries and compaction deletes files.
    const options = { dataDir, segmentBytesMax: 4096 };
    let current: Storage = await FileStorage.open(options);
    t.teardown(() => current.close());
    return {
      storage: current,
      reopen: async () => {
        await current.close();
        current = await FileStorage.open(options);
        return current;
      },
    };
  },
};

const appends = test.macro(async (t, kind: Kind) => {
  const { storage } = await kind.open(t);
  t.is(storage.firstIndex(), 1);
  t.is(storage.lastIndex(), 0);
  t.is(storage.term(0), 0);
  await persist(storage, { entries: entries(1, 3, 1) });
  await persist(storage, { entries: entries(4, 10, 2) });
  t.is(storage.lastIndex(), 10);
  const held = allEntries(storage);
  t.deepEqual(held.map((e) => e.index), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.true(held.every(isIntact));
  t.is(storage.term(3), 1);
  t.is(storage.term(4), 2);
});

const overwrites = test.macro(async (t, kind: Kind) => {
  const { storage } = await kind.open(t);
  await persist(storage, { entries: entries(1, 10, 1) });
  await persist(storage, { entries: entries(6, 7, 2) });
  t.is(storage.lastIndex(), 7, 'the conflicting suffix 8..10 is gone');
  t.deepEqual(allEntries(storage).map((e) => e.term), [1, 1, 1, 1, 1, 2, 2]);
  t.is(storage.term(8), undefined);
});

const readsWithBytes = test.macro(async (t, kind: Kind) => {
  const { storage } = await kind.open(t);
  await persist(storage, { entries: entries(1, 10, 1, 100) });
  const one = entryBytes(entry(1, 1, 100));
  t.is(storage.entries(1, 11, one * 3).length, 3);
  t.is(storage.entries(1, 11, one * 3 + one - 1).length, 3, 'stops before the bound is exceeded');
  t.is(storage.entries(1, 11, 0).length, 1, 'at least one entry, however small the bound');
  t.is(storage.entries(4, 6, Number.MAX_SAFE_INTEGER).length, 2, 'hi is exclusive');
  t.deepEqual(storage.entries(5, 5, 1000), []);
  t.throws(() => storage.entries(0, 3, 1000), { instanceOf: RangeError });
  t.throws(() => storage.entries(1, 12, 1000), { instanceOf: RangeError });
});

const termBoundaries = test.macro(async (t, kind: Kind) => {
  const { storage } = await kind.open(t);
  await persist(storage, { entries: entries(1, 5, 3) });
  t.is(storage.term(0), 0);
  t.is(storage.term(1), 3);
  t.is(storage.term(5), 3);
  t.is(storage.term(6), undefined);
  await compact(storage, snapshotAt(3, 3));
  t.is(storage.term(2), undefined, 'compacted');
  t.is(storage.term(3), 3, "the snapshot's term stands for firstIndex() - 1");
  t.is(storage.firstIndex(), 4);
});

const hardStates = test.macro(async (t, kind: Kind) => {
  const { storage, reopen } = await kind.open(t);
  t.deepEqual(storage.hardState(), hardState(0, null, 0));
  await persist(storage, { entries: [], hardState: hardState(1, 'n2', 0) });
  await persist(storage, { entries: entries(1, 2, 1), hardState: hardState(1, 'n2', 2) });
  t.deepEqual(storage.hardState(), hardState(1, 'n2', 2));
  await persist(storage, { entries: [], hardState: hardState(2, null, 2) });
  t.deepEqual(storage.hardState(), hardState(2, null, 2));
  if (reopen !== undefined) t.deepEqual((await reopen()).hardState(), hardState(2, null, 2));
});

const snapshotThenCompaction = test.macro(async (t, kind: Kind) => {
  const { storage, reopen } = await kind.open(t);
  for (let lo = 1; lo <= 200; lo += 20) await persist(storage, { entries: entries(lo, lo + 19, 1, 64) });
  await compact(storage, snapshotAt(150, 1));
  t.is(storage.firstIndex(), 151);
  t.is(storage.lastIndex(), 200);
  t.is(storage.snapshot()?.meta.index, 150);
  t.deepEqual(allEntries(storage).map((e) => e.index)[0], 151);
  t.is(storage.status().snapshotIndex, 150);
  await compact(storage, snapshotAt(100, 1));
  t.is(storage.firstIndex(), 151, 'an older snapshot is a no-op');
  await persist(storage, { entries: entries(201, 210, 2) });
  if (reopen !== undefined) {
    const reopened = await reopen();
    t.is(reopened.firstIndex(), 151);
    t.is(reopened.lastIndex(), 210);
    t.true(allEntries(reopened).every(isIntact));
    t.deepEqual(reopened.snapshot()?.data, snapshotAt(150, 1).data);
    t.false(reopened.status().needsRepair);
  }
});

const installDiscardsLog = test.macro(async (t, kind: Kind) => {
  const { storage, reopen } = await kind.open(t);
  await persist(storage, { entries: entries(1, 30, 1), hardState: hardState(1, 'n1', 10) });
  await persist(storage, {
    snapshot: snapshotAt(20, 3),
    entries: entries(21, 22, 3),
    hardState: hardState(3, null, 20),
  });
  t.is(storage.firstIndex(), 21);
  t.is(storage.lastIndex(), 22);
  t.is(storage.term(20), 3);
  t.is(storage.term(21), 3);
  t.deepEqual(storage.hardState(), hardState(3, null, 20));
  if (reopen !== undefined) {
    const reopened = await reopen();
    t.is(reopened.firstIndex(), 21);
    t.is(reopened.lastIndex(), 22);
    t.deepEqual(allEntries(reopened).map((e) => e.term), [3, 3]);
    t.is(reopened.snapshot()?.meta.term, 3);
  }
});

const queuedInOrder = test.macro(async (t, kind: Kind) => {
  const { storage } = await kind.open(t);
  const order: number[] = [];
  await new Promise<void>((resolve, reject) => {
    storage.persist({ entries: entries(1, 5, 1) }, (error) => (error ? reject(error) : order.push(1)));
    storage.persist({ entries: entries(3, 4, 2) }, (error) => {
      if (error) return reject(error);
      order.push(2);
      resolve();
    });
  });
  t.deepEqual(order, [1, 2]);
  t.is(storage.lastIndex(), 4);
  t.is(storage.term(3), 2);
});

const contractViolationFailStops = test.macro(async (t, kind: Kind) => {
  const { storage } = await kind.open(t);
  await persist(storage, { entries: entries(1, 3, 1) });
  const error = await t.throwsAsync(persist(storage, { entries: entries(6, 7, 1) }));
  t.is((error as { code?: string } | undefined)?.code, 'STORAGE_FAILED');
  t.true(storage.status().failed);
  await t.throwsAsync(persist(storage, { entries: entries(4, 4, 1) }), { message: /earlier failure/ });
});

const behaviours = [
  ['appends entries in order', appends],
  ['overwrites a conflicting suffix', overwrites],
  ['reads ranges within a byte bound, at least one entry', readsWithBytes],
  ['term() at the boundaries', termBoundaries],
  ['stores the hard state', hardStates],
  ['snapshot then compaction', snapshotThenCompaction],
  ['snapshot install discards the log', installDiscardsLog],
  ['queued requests complete in order', queuedInOrder],
  ['a request that breaks the contract fail-stops', contractViolationFailStops],
] as const;

for (const kind of [memory, file]) {
  for (const [behaviour, macro] of behaviours) test(`storage: ${behaviour} (${kind.name})`, macro, kind);
}
