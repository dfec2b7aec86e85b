/**
 * FileStorage beyond the conformance suite: layout, lock, version, fs failures, repair.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { isRaftQueueError, type RaftQueueError } from '../../lib/contracts/errors.js';
import { FileStorage, nodeStorageFs } from '../../lib/storage/index.js';
import { encodeSnapshotFile } from '../../lib/storage/wal-format.js';
import type { Snapshot } from '../../lib/core/types.js';
import {
  allEntries,
  compact,
  entries,
  faultyFs,
  hardState,
  isIntact,
  persist,
  snapshotAt,
  tempDir,
} from '../helpers/storage-fixtures.js';

/** Segment files in wal/, without the spare being preallocated in the background. */
function walNames(dataDir: string): string[] {
  return readdirSync(join(dataDir, 'wal'))
    .filter((name) => name.endsWith('.wal'))
    .sort();
}

test('storage: rolls segments past segmentBytesMax and deletes those below a snapshot (file)', async (t) => {
  const dataDir = tempDir(t);
  const storage = await FileStorage.open({ dataDir, segmentBytesMax: 4096 });
  t.teardown(() => storage.close());
  for (let lo = 1; lo <= 400; lo += 10) await persist(storage, { entries: entries(lo, lo + 9, 1, 100) });
  const before = walNames(dataDir);
  t.true(before.length >= 10, `${before.length} segments`);
  t.is(storage.status().segmentCount, before.length);
  t.deepEqual(readdirSync(join(dataDir, 'wal')).filter((name) => name.endsWith('.tmp')), ['next-segment.tmp'], 'one spare, no stray temp files');
  await compact(storage, snapshotAt(300, 1));
  const after = walNames(dataDir);
  t.true(after.length < before.length / 2, `${after.length} segments after compaction`);
  t.deepEqual(after, before.slice(before.length - after.length), 'only a prefix of segments is deleted');
  t.deepEqual(readdirSync(join(dataDir, 'snapshots')), [`${(300).toString(16).padStart(16, '0')}-${'1'.padStart(16, '0')}.snap`]);
  await storage.close();
  const reopened = await FileStorage.open({ dataDir, segmentBytesMax: 4096 });
  t.teardown(() => reopened.close());
  t.is(reopened.firstIndex(), 301);
  t.is(reopened.lastIndex(), 400);
  t.true(allEntries(reopened).every(isIntact));
  t.false(reopened.status().needsRepair);
});

test('storage: writes the layout of the issue: VERSION, LOCK, hard-state, wal/, snapshots/ (file)', async (t) => {
  const dataDir = tempDir(t);
  const storage = await FileStorage.open({ dataDir, segmentBytesMax: 8192 });
  await persist(storage, { entries: entries(1, 3, 1), hardState: hardState(1, 'n1', 0) });
  t.is(readFileSync(join(dataDir, 'VERSION'), 'utf8'), 'raftqueue-storage 1\n');
  t.is(readFileSync(join(dataDir, 'LOCK'), 'utf8').trim(), String(process.pid));
  t.true(existsSync(join(dataDir, 'hard-state')));
  t.deepEqual(walNames(dataDir), ['0000000000000001.wal']);
  t.is(readFileSync(join(dataDir, 'wal', '0000000000000001.wal')).length, 8192, 'preallocated');
  await storage.close();
  t.false(existsSync(join(dataDir, 'LOCK')), 'close releases the lock');
  t.deepEqual(readdirSync(join(dataDir, 'wal')), ['0000000000000001.wal'], 'close removes the spare segment');
});

test('storage: a second opener is refused while the first is open (file)', async (t) => {
  const dataDir = tempDir(t);
  const first = await FileStorage.open({ dataDir });
  t.teardown(() => first.close());
  const error = await t.throwsAsync(FileStorage.open({ dataDir }));
  t.true(isRaftQueueError(error, 'STORAGE_LOCKED'));
  t.regex(error?.message ?? '', new RegExp(`in use by process ${process.pid}`));
});

function spawnIdle(t: import('ava').ExecutionContext): ChildProcess {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  });
  return child;
}

test('storage: a lock held by another live process is refused (file)', async (t) => {
  const dataDir = tempDir(t);
  await (await FileStorage.open({ dataDir })).close();
  const holder = spawnIdle(t);
  writeFileSync(join(dataDir, 'LOCK'), `${holder.pid}\n`);
  const error = await t.throwsAsync(FileStorage.open({ dataDir }));
  t.true(isRaftQueueError(error, 'STORAGE_LOCKED'));
  t.regex(error?.message ?? '', new RegExp(`process ${holder.pid}`));
});

test('storage: a stale lock from a dead process is taken over (file)', async (t) => {
  const dataDir = tempDir(t);
  const first = await FileStorage.open({ dataDir });
  await persist(first, { entries: entries(1, 2, 1) });
  await first.close();
  const dead = spawnIdle(t);
  const exited = new Promise((resolve) => dead.once('exit', resolve));
  dead.kill('SIGKILL');
  await exited;
  writeFileSync(join(dataDir, 'LOCK'), `${dead.pid}\n`);
  const storage = await FileStorage.open({ dataDir });
  t.teardown(() => storage.close());
  t.is(storage.lastIndex(), 2);
  t.is(readFileSync(join(dataDir, 'LOCK'), 'utf8').trim(), String(process.pid));
});

test('storage: another format version is refused with a clear error (file)', async (t) => {
  const dataDir = tempDir(t);
  await (await FileStorage.open({ dataDir })).close();
  writeFileSync(join(dataDir, 'VERSION'), 'raftqueue-storage 2\n');
  const error = await t.throwsAsync(FileStorage.open({ dataDir }));
  t.true(isRaftQueueError(error, 'STORAGE_VERSION'));
  t.regex(error?.message ?? '', /uses storage format 2; this raftqueue reads format 1 only/);
  t.false(existsSync(join(dataDir, 'LOCK')), 'a refused open leaves no lock behind');
});

test('storage: a directory with files but no VERSION is refused (file)', async (t) => {
  const dataDir = tempDir(t);
  writeFileSync(join(dataDir, 'something-else'), 'x');
  const error = await t.throwsAsync(FileStorage.open({ dataDir }));
  t.true(isRaftQueueError(error, 'STORAGE_VERSION'));
});

/**
 * The fs steps a persist takes, each failed in turn with a typical errno, in both ways of making
 * a record durable (an O_DSYNC write, or a write and fdatasync).
 */
const failurePoints = [
  ['write', 'ENOSPC', 'dsync'],
  ['write', 'EIO', 'fdatasync'],
  ['fdatasync', 'EIO', 'fdatasync'],
  ['open', 'EACCES', 'dsync'],
  ['open', 'EACCES', 'fdatasync'],
  ['rename', 'ENOSPC', 'dsync'],
  ['fsync', 'EIO', 'dsync'],
] as const;

for (const [operation, code, walSync] of failurePoints) {
  test(`storage: ${code} in ${operation} surfaces as STORAGE_FAILED, fail-stops, and loses nothing acknowledged (file, ${walSync})`, async (t) => {
    const dataDir = tempDir(t);
    let armed = false;
    let failedCalls = 0;
    const fs = faultyFs(nodeStorageFs, (op) => {
      if (!armed || op !== operation) return undefined;
      failedCalls++;
      return code;
    });
    const storage = await FileStorage.open({ dataDir, segmentBytesMax: 4096, fs, walSync });
    t.teardown(() => storage.close());
    let acknowledged = 0;
    let failure: RaftQueueError | undefined;
    for (let lo = 1; lo <= 400 && failure === undefined; lo += 10) {
      // Arm after some progress, so the failure lands mid-log (a roll, a term change, ...).
      if (lo > 150) armed = true;
      const term = lo > 200 ? 2 : 1;
      try {
        await persist(storage, { entries: entries(lo, lo + 9, term, 100), hardState: hardState(term, 'n1', lo - 1) });
        acknowledged = lo + 9;
      } catch (error) {
        failure = error as RaftQueueError;
      }
    }
    t.truthy(failure, `a ${operation} failure was injected (${failedCalls} calls failed)`);
    t.true(isRaftQueueError(failure, 'STORAGE_FAILED'));
    t.is((failure?.cause as { code?: string } | undefined)?.code, code);
    t.true(storage.status().failed);
    await t.throwsAsync(persist(storage, { entries: entries(acknowledged + 1, acknowledged + 1, 2) }), {
      message: /earlier failure/,
    });
    armed = false;
    await storage.close();
    const reopened = await FileStorage.open({ dataDir, segmentBytesMax: 4096 });
    t.teardown(() => reopened.close());
    t.false(reopened.status().needsRepair, reopened.status().repairReason ?? '');
    t.true(reopened.lastIndex() >= acknowledged, `${reopened.lastIndex()} >= ${acknowledged}`);
    const held = allEntries(reopened);
    t.is(held.length, reopened.lastIndex());
    t.true(held.every(isIntact));
  });
}

test('storage: after compaction and install the snapshot bytes are read back from the file, not held (file)', async (t) => {
  const dataDir = tempDir(t);
  let reads = 0;
  const fs = faultyFs(nodeStorageFs, (operation) => {
    if (operation === 'readFileSync') reads++;
    return undefined;
  });
  const storage = await FileStorage.open({ dataDir, fs });
  t.teardown(() => storage.close());
  await persist(storage, { entries: entries(1, 40, 1) });
  const state = Buffer.alloc(100_000, 7);
  await compact(storage, snapshotAt(30, 1, state));
  t.is(reads, 0, 'compaction keeps only the metadata');
  const held = storage.snapshot();
  t.deepEqual(held?.meta, snapshotAt(30, 1).meta);
  t.true(Buffer.from(held?.data ?? []).equals(state), 'the bytes come back from the file');
  t.is(reads, 1);
  // A snapshot from a leader is held the same way.
  const installed = Buffer.alloc(50_000, 9);
  await persist(storage, { snapshot: snapshotAt(60, 2, installed), entries: [], hardState: hardState(2, null, 60) });
  const after = storage.snapshot();
  t.is(after?.meta.index, 60);
  t.true(Buffer.from(after?.data ?? []).equals(installed));
  t.is(reads, 2);
});

test('storage: a crash between the snapshot file and the log reset recovers to the snapshot (file)', async (t) => {
  const dataDir = tempDir(t);
  const storage = await FileStorage.open({ dataDir });
  await persist(storage, { entries: entries(1, 30, 1), hardState: hardState(1, null, 5) });
  await storage.close();
  // The leader's snapshot at 20 (term 3) made it to disk; the reset record did not.
  writeFileSync(join(dataDir, 'snapshots', `${(20).toString(16).padStart(16, '0')}-${'3'.padStart(16, '0')}.snap`), encodeSnapshotFile(snapshotAt(20, 3)));
  const reopened = await FileStorage.open({ dataDir });
  t.teardown(() => reopened.close());
  t.false(reopened.status().needsRepair);
  t.is(reopened.firstIndex(), 21);
  t.is(reopened.lastIndex(), 20, 'entries after the snapshot from another history are dropped');
  t.is(reopened.term(20), 3);
});

test('storage: a missing segment in the middle means needsRepair (file)', async (t) => {
  const dataDir = tempDir(t);
  const storage = await FileStorage.open({ dataDir, segmentBytesMax: 4096 });
  for (let lo = 1; lo <= 200; lo += 10) await persist(storage, { entries: entries(lo, lo + 9, 1, 100) });
  await storage.close();
  const names = walNames(dataDir);
  const missing = names[2] ?? '';
  rmSync(join(dataDir, 'wal', missing));
  const reopened = await FileStorage.open({ dataDir, segmentBytesMax: 4096 });
  t.teardown(() => reopened.close());
  const status = reopened.status();
  t.true(status.needsRepair);
  t.regex(status.repairReason ?? '', /segments 3 to 3 are missing/);
  t.true(reopened.lastIndex() > 0 && reopened.lastIndex() < 200, 'serves the valid prefix');
  t.true(allEntries(reopened).every(isIntact));
  t.deepEqual(walNames(dataDir), names.filter((name) => name !== missing), 'nothing deleted');
});

test('storage: a gap between the snapshot and the first entry means needsRepair (file)', async (t) => {
  const dataDir = tempDir(t);
  const storage = await FileStorage.open({ dataDir, segmentBytesMax: 4096 });
  for (let lo = 1; lo <= 200; lo += 10) await persist(storage, { entries: entries(lo, lo + 9, 1, 100) });
  await compact(storage, snapshotAt(50, 1));
  await storage.close();
  const names = walNames(dataDir);
  rmSync(join(dataDir, 'wal', names[0] ?? ''));
  const reopened = await FileStorage.open({ dataDir, segmentBytesMax: 4096 });
  t.teardown(() => reopened.close());
  t.true(reopened.status().needsRepair);
  t.regex(reopened.status().repairReason ?? '', /gap between the snapshot at 50 and the first entry/);
  t.is(reopened.firstIndex(), 51);
  t.is(reopened.lastIndex(), 50, 'nothing after the gap is served');
});

test('storage: a WAL emptied after voting means needsRepair, and the vote is kept (file)', async (t) => {
  const dataDir = tempDir(t);
  const storage = await FileStorage.open({ dataDir });
  await persist(storage, { entries: entries(1, 5, 4), hardState: hardState(4, 'n3', 3) });
  await storage.close();
  for (const name of walNames(dataDir)) rmSync(join(dataDir, 'wal', name));
  const reopened = await FileStorage.open({ dataDir });
  t.teardown(() => reopened.close());
  t.true(reopened.status().needsRepair);
  t.regex(reopened.status().repairReason ?? '', /WAL data was lost after voting/);
  t.is(reopened.hardState().term, 4);
  t.is(reopened.hardState().vote, 'n3', 'never forget a vote');
});

test('storage: needsRepair survives later writes and a restart, and a leader snapshot repairs it (file)', async (t) => {
  const dataDir = tempDir(t);
  const options = { dataDir, segmentBytesMax: 4096 };
  const storage = await FileStorage.open(options);
  for (let lo = 1; lo <= 200; lo += 10) await persist(storage, { entries: entries(lo, lo + 9, 1, 100) });
  await storage.close();
  const names = walNames(dataDir);
  rmSync(join(dataDir, 'wal', names[2] ?? ''));

  const damaged = await FileStorage.open(options);
  const served = damaged.lastIndex();
  // The leader appends after the served prefix; the node must still not vote after a restart.
  await persist(damaged, { entries: entries(served + 1, served + 5, 2), hardState: hardState(2, null, 0) });
  await damaged.close();
  t.true(existsSync(join(dataDir, 'NEEDS_REPAIR')));

  const again = await FileStorage.open(options);
  t.true(again.status().needsRepair);
  t.regex(again.status().repairReason ?? '', /marked for repair earlier/);
  t.is(again.lastIndex(), served + 5, 'the checkpoint and the writes after it are replayed');
  t.true(allEntries(again).every(isIntact));
  await persist(again, { snapshot: snapshotAt(300, 3), entries: entries(301, 302, 3), hardState: hardState(3, null, 300) });
  t.false(again.status().needsRepair);
  t.false(existsSync(join(dataDir, 'NEEDS_REPAIR')));
  t.is(walNames(dataDir).length, 1, 'the damaged segments are gone once superseded');
  await again.close();

  const repaired = await FileStorage.open(options);
  t.teardown(() => repaired.close());
  t.false(repaired.status().needsRepair, repaired.status().repairReason ?? '');
  t.is(repaired.firstIndex(), 301);
  t.is(repaired.lastIndex(), 302);
  t.deepEqual(repaired.hardState(), hardState(3, null, 300));
});

test('storage: compaction while damaged deletes no file (file)', async (t) => {
  const dataDir = tempDir(t);
  const options = { dataDir, segmentBytesMax: 4096 };
  const storage = await FileStorage.open(options);
  for (let lo = 1; lo <= 200; lo += 10) await persist(storage, { entries: entries(lo, lo + 9, 1, 100) });
  await compact(storage, snapshotAt(20, 1));
  await storage.close();
  const names = walNames(dataDir);
  rmSync(join(dataDir, 'wal', names[names.length - 3] ?? ''));
  const damaged = await FileStorage.open(options);
  t.teardown(() => damaged.close());
  t.true(damaged.status().needsRepair);
  const walBefore = walNames(dataDir);
  const snapshotsBefore = readdirSync(join(dataDir, 'snapshots'));
  await compact(damaged, snapshotAt(damaged.lastIndex(), 1));
  t.deepEqual(walNames(dataDir), walBefore);
  t.deepEqual(readdirSync(join(dataDir, 'snapshots')).filter((name) => snapshotsBefore.includes(name)), snapshotsBefore);
});

test('storage: requests after close fail with CLOSED (file)', async (t) => {
  const dataDir = tempDir(t);
  const storage = await FileStorage.open({ dataDir });
  await storage.close();
  const error = await t.throwsAsync(persist(storage, { entries: entries(1, 1, 1) }));
  t.true(isRaftQueueError(error, 'CLOSED'));
});

test('storage: markRepaired after a repair by entries drops the damage and the marker (file)', async (t) => {
  const dataDir = tempDir(t);
  const options = { dataDir, segmentBytesMax: 4096 };
  const storage = await FileStorage.open(options);
  for (let lo = 1; lo <= 200; lo += 10) await persist(storage, { entries: entries(lo, lo + 9, 1, 100) });
  await storage.close();
  const names = walNames(dataDir);
  rmSync(join(dataDir, 'wal', names[2] ?? ''));

  const damaged = await FileStorage.open(options);
  t.true(damaged.status().needsRepair);
  const served = damaged.lastIndex();
  // The leader re-sends what was lost (the node layer calls markRepaired once the core says so).
  await persist(damaged, { entries: entries(served + 1, 220, 2), hardState: hardState(2, null, 210) });
  t.true(damaged.status().needsRepair, 'entries alone do not clear the flag: the core decides');
  await new Promise<void>((resolve, reject) => damaged.markRepaired((error) => (error ? reject(error) : resolve())));
  t.false(damaged.status().needsRepair);
  t.false(existsSync(join(dataDir, 'NEEDS_REPAIR')));
  t.false(walNames(dataDir).some((name) => names.slice(0, 2).includes(name)), 'the damaged segments are gone');
  await damaged.close();

  const reopened = await FileStorage.open(options);
  t.teardown(() => reopened.close());
  t.false(reopened.status().needsRepair, reopened.status().repairReason ?? '');
  t.is(reopened.lastIndex(), 220);
  t.true(allEntries(reopened).every(isIntact));
  t.deepEqual(reopened.hardState(), hardState(2, null, 210));
});

/** nodeStorageFs whose renames into snapshots/ wait until `open()` is called. */
function gatedSnapshotRenames(): { fs: typeof nodeStorageFs; waiting: () => number; open: () => void } {
  let waiting = 0;
  let release: (() => void) | undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const fs = {
    ...nodeStorageFs,
    rename: async (from: string, to: string) => {
      if (to.includes(`${join('snapshots', '')}`)) {
        waiting++;
        await gate;
      }
      return nodeStorageFs.rename(from, to);
    },
  };
  return { fs, waiting: () => waiting, open: () => release?.() };
}

test('storage: persists go on while a compaction writes its snapshot file (file)', async (t) => {
  const dataDir = tempDir(t);
  const gated = gatedSnapshotRenames();
  const storage = await FileStorage.open({ dataDir, segmentBytesMax: 4096, fs: gated.fs });
  t.teardown(() => storage.close());
  for (let lo = 1; lo <= 200; lo += 10) await persist(storage, { entries: entries(lo, lo + 9, 1, 100) });
  let compacted = false;
  const compaction = compact(storage, snapshotAt(150, 1, Buffer.alloc(200_000, 3))).then(() => (compacted = true));
  while (gated.waiting() === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  // The snapshot file is held before its rename; the WAL does not wait for it.
  for (let lo = 201; lo <= 300; lo += 10) await persist(storage, { entries: entries(lo, lo + 9, 1, 100) });
  t.false(compacted, 'the compaction is still writing');
  t.is(storage.firstIndex(), 1, 'the log switches to the snapshot only once its file is durable');
  gated.open();
  await compaction;
  t.is(storage.firstIndex(), 151);
  t.is(storage.lastIndex(), 300);
  await storage.close();
  const reopened = await FileStorage.open({ dataDir, segmentBytesMax: 4096 });
  t.teardown(() => reopened.close());
  t.is(reopened.firstIndex(), 151);
  t.is(reopened.lastIndex(), 300);
  t.true(allEntries(reopened).every(isIntact));
  t.true(Buffer.from(reopened.snapshot()?.data ?? []).equals(Buffer.alloc(200_000, 3)));
});

test('storage: a snapshot installed while a compaction writes its file supersedes it (file)', async (t) => {
  const dataDir = tempDir(t);
  const gated = gatedSnapshotRenames();
  const storage = await FileStorage.open({ dataDir, fs: gated.fs });
  t.teardown(() => storage.close());
  await persist(storage, { entries: entries(1, 40, 1) });
  const compaction = compact(storage, snapshotAt(30, 1));
  while (gated.waiting() === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  const install = persist(storage, { snapshot: snapshotAt(60, 2, Buffer.alloc(1000, 9)), entries: [], hardState: hardState(2, null, 60) });
  gated.open();
  await Promise.all([compaction, install]);
  t.is(storage.firstIndex(), 61);
  t.is(storage.snapshot()?.meta.index, 60);
  t.deepEqual(readdirSync(join(dataDir, 'snapshots')), [`${(60).toString(16).padStart(16, '0')}-${'2'.padStart(16, '0')}.snap`], 'the superseded file is removed');
  await storage.close();
  const reopened = await FileStorage.open({ dataDir });
  t.teardown(() => reopened.close());
  t.is(reopened.snapshot()?.meta.index, 60);
  t.true(Buffer.from(reopened.snapshot()?.data ?? []).equals(Buffer.alloc(1000, 9)));
});

test('storage: a snapshot file that cannot be written fails the compaction and stops the storage (file)', async (t) => {
  const dataDir = tempDir(t);
  const fs = {
    ...nodeStorageFs,
    rename: async (from: string, to: string) => {
      if (to.includes(join('snapshots', ''))) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      return nodeStorageFs.rename(from, to);
    },
  };
  const storage = await FileStorage.open({ dataDir, fs });
  t.teardown(() => storage.close());
  await persist(storage, { entries: entries(1, 40, 1) });
  const error = await t.throwsAsync(compact(storage, snapshotAt(30, 1)));
  t.true(isRaftQueueError(error, 'STORAGE_FAILED'), String(error));
  t.true(storage.status().failed);
  t.is(storage.firstIndex(), 1, 'the log still starts where it did');
  await t.throwsAsync(persist(storage, { entries: entries(41, 41, 1) }), { message: /earlier failure/ });
  await storage.close();
  const reopened = await FileStorage.open({ dataDir });
  t.teardown(() => reopened.close());
  t.is(reopened.firstIndex(), 1);
  t.is(reopened.lastIndex(), 40);
});

test('storage: close() waits for a compaction queued behind a persist; nothing touches the directory after it returns (file)', async (t) => {
  const dataDir = tempDir(t);
  const storage = await FileStorage.open({ dataDir, segmentBytesMax: 4096 });
  for (let lo = 1; lo <= 200; lo += 10) await persist(storage, { entries: entries(lo, lo + 9, 1, 100) });
  let settled = false;
  const pending = persist(storage, { entries: entries(201, 210, 1, 100) });
  const compaction = compact(storage, snapshotAt(150, 1, Buffer.alloc(300_000, 5))).then(
    () => 'compacted',
    (error: RaftQueueError) => error.code,
  );
  void compaction.then(() => (settled = true));
  await storage.close();
  t.true(settled, 'the compaction called back before close() returned');
  t.true(['compacted', 'CLOSED'].includes(await compaction), await compaction);
  await pending.catch(() => undefined);
  const listing = (): string => [...readdirSync(join(dataDir, 'wal')), '|', ...readdirSync(join(dataDir, 'snapshots'))].join(',');
  const before = listing();
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.is(listing(), before, 'no file work after close()');
  const reopened = await FileStorage.open({ dataDir, segmentBytesMax: 4096 });
  t.teardown(() => reopened.close());
  t.false(reopened.status().needsRepair, reopened.status().repairReason ?? '');
  t.true(allEntries(reopened).every(isIntact));
});

function finishStage(stage: ReturnType<FileStorage['stageSnapshot']>): Promise<Snapshot> {
  return new Promise((resolve, reject) => stage.finish((error, snapshot) => (error || !snapshot ? reject(error) : resolve(snapshot))));
}

test('storage: a snapshot received into a temporary file is installed by moving the file; a discarded one leaves nothing (file)', async (t) => {
  const dataDir = tempDir(t);
  const storage = await FileStorage.open({ dataDir });
  t.teardown(() => storage.close());
  await persist(storage, { entries: entries(1, 10, 1) });
  const data = Buffer.alloc(300_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 255;
  const meta = snapshotAt(60, 2).meta;
  // A different snapshot offered first, then given up.
  const dropped = storage.stageSnapshot(snapshotAt(40, 2).meta, 1_000);
  dropped.append(Buffer.alloc(500, 1), () => undefined);
  dropped.discard();
  const stage = storage.stageSnapshot(meta, data.length);
  for (let at = 0; at < data.length; at += 65_536) {
    const chunk = Buffer.from(data.subarray(at, Math.min(data.length, at + 65_536)));
    stage.append(chunk, (error) => t.is(error, undefined));
    chunk.fill(0); // the caller reuses its buffer at once
  }
  const received = await finishStage(stage);
  t.true(readdirSync(join(dataDir, 'snapshots')).some((name) => /\.incoming-\d+\.tmp$/.test(name)), 'received into a temporary file');
  t.true(Buffer.from(received.data).equals(data));
  await persist(storage, { snapshot: received, entries: [], hardState: hardState(2, null, 60) });
  t.deepEqual(readdirSync(join(dataDir, 'snapshots')), [`${(60).toString(16).padStart(16, '0')}-${'2'.padStart(16, '0')}.snap`], 'moved into place; the discarded one is gone');
  t.true(Buffer.from(received.data).equals(data), 'the snapshot follows its file');
  t.is(storage.firstIndex(), 61);
  await storage.close();
  const reopened = await FileStorage.open({ dataDir });
  t.teardown(() => reopened.close());
  t.is(reopened.snapshot()?.meta.index, 60);
  t.true(Buffer.from(reopened.snapshot()?.data ?? []).equals(data));
});

test('storage: staging refuses more or fewer bytes than announced (file)', async (t) => {
  const storage = await FileStorage.open({ dataDir: tempDir(t) });
  t.teardown(() => storage.close());
  const stage = storage.stageSnapshot(snapshotAt(5, 1).meta, 10);
  const first = new Promise<Error | undefined>((resolve) => stage.append(Buffer.alloc(6), resolve));
  const second = new Promise<Error | undefined>((resolve) => stage.append(Buffer.alloc(6), resolve));
  t.is(await first, undefined);
  t.regex(String((await second)?.message), /more bytes than announced/);
  await t.throwsAsync(finishStage(stage), { message: /6 of 10 bytes/ });
});

test('storage: a staged snapshot given up after it was received whole is removed, unless installed; a failed open is reported, not thrown (file)', async (t) => {
  const dataDir = tempDir(t);
  const fs = {
    ...nodeStorageFs,
    open: async (path: string, flags: string) => {
      if (path.includes('0000000000000063-')) throw Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' });
      return nodeStorageFs.open(path, flags);
    },
  };
  const storage = await FileStorage.open({ dataDir, fs });
  t.teardown(() => storage.close());
  const stage = storage.stageSnapshot(snapshotAt(70, 2).meta, 1_000);
  stage.append(Buffer.alloc(1_000, 3), (error) => t.is(error, undefined));
  await finishStage(stage);
  const temps = (): string[] => readdirSync(join(dataDir, 'snapshots')).filter((name) => name.endsWith('.tmp'));
  t.is(temps().length, 1);
  stage.discard();
  await persist(storage, { entries: entries(1, 1, 1) }); // the queue has run past the removal
  t.deepEqual(temps(), []);
  // The open of this one fails: no unhandled rejection, the first append says so.
  const failing = storage.stageSnapshot(snapshotAt(99, 2).meta, 10);
  await new Promise((resolve) => setTimeout(resolve, 30));
  const error = await new Promise<Error | undefined>((resolve) => failing.append(Buffer.alloc(10), resolve));
  t.regex(String(error?.message), /EMFILE/);
  failing.discard();
  t.false(storage.status().failed, 'a staging failure does not stop the storage');
});

test('storage: with walSync dsync a record is one write through an O_DSYNC descriptor, no fdatasync (file)', async (t) => {
  const dataDir = tempDir(t);
  const calls: string[] = [];
  const dsyncFds = new Set<number>();
  const walFds = new Set<number>();
  const base = nodeStorageFs;
  // The calls on WAL segments (the hard-state file, written when the vote changes, aside).
  const fs = {
    ...base,
    open: async (path: string, flags: string | number) => {
      const fd = await base.open(path, flags);
      dsyncFds.delete(fd);
      walFds.delete(fd);
      if (typeof flags === 'number' && (flags & constants.O_DSYNC) !== 0) dsyncFds.add(fd);
      if (path.endsWith('.wal') || path.includes('.wal.')) walFds.add(fd);
      return fd;
    },
    write: (fd: number, buffer: Uint8Array, offset: number, length: number, position: number) => {
      if (walFds.has(fd)) calls.push(dsyncFds.has(fd) ? 'dsync write' : 'write');
      return base.write(fd, buffer, offset, length, position);
    },
    fdatasync: (fd: number) => {
      if (walFds.has(fd)) calls.push('fdatasync');
      return base.fdatasync(fd);
    },
  };
  const storage = await FileStorage.open({ dataDir, fs, preallocate: false });
  t.teardown(() => storage.close());
  calls.length = 0;
  for (let lo = 1; lo <= 50; lo += 10) await persist(storage, { entries: entries(lo, lo + 9, 1, 100), hardState: hardState(1, 'n1', lo - 1) });
  // Linux only: elsewhere the default is write + fdatasync (see FileStorageOptions.walSync).
  t.deepEqual(calls, process.platform === 'linux' ? Array(5).fill('dsync write') : Array(5).fill(['write', 'fdatasync']).flat());
  await storage.close();
  const reopened = await FileStorage.open({ dataDir, walSync: 'fdatasync' });
  t.teardown(() => reopened.close());
  t.is(reopened.lastIndex(), 50);
  t.true(allEntries(reopened).every(isIntact));
  // The other way: a write and an fdatasync per record.
  const other = tempDir(t);
  const plain = await FileStorage.open({ dataDir: other, fs, walSync: 'fdatasync', preallocate: false });
  t.teardown(() => plain.close());
  calls.length = 0;
  await persist(plain, { entries: entries(1, 10, 1, 100) });
  t.deepEqual(calls, ['write', 'fdatasync']);
  await t.throwsAsync(FileStorage.open({ dataDir: tempDir(t), walSync: 'sometimes' as never }), { message: /walSync must be 'dsync' or 'fdatasync'/ });
});
