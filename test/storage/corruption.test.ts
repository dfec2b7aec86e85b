/**
 * Corruption tests: a damaged last record is a torn tail and is cut; damage anywhere before it
 * means needsRepair with every file left exactly as it was.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { FileStorage } from '../../lib/storage/index.js';
import { dataEndOf, readFrame } from '../../lib/storage/wal-format.js';
import { allEntries, entries, hardState, isIntact, persist, tempDir } from '../helpers/storage-fixtures.js';

/** Batches written by `build`: batch k holds entries 3k-2..3k; the last holds one entry. */
const BATCHES = 6;
const LAST_INDEX = (BATCHES - 1) * 3 + 1;

interface Frame {
  readonly start: number;
  readonly end: number;
}

function framesOf(path: string): Frame[] {
  const bytes = readFileSync(path);
  const dataEnd = dataEndOf(bytes);
  const frames: Frame[] = [];
  for (let at = 0; ; ) {
    const read = readFrame(bytes, at, dataEnd);
    if (read.kind !== 'record') break;
    frames.push({ start: at, end: read.end });
    at = read.end;
  }
  return frames;
}

async function build(t: ExecutionContext, preallocate: boolean, segmentBytesMax = 64 * 1024): Promise<string> {
  const dataDir = tempDir(t, 'corruption');
  const storage = await FileStorage.open({ dataDir, preallocate, segmentBytesMax });
  for (let k = 1; k < BATCHES; k++) {
    await persist(storage, { entries: entries(3 * k - 2, 3 * k, 1, 8), hardState: hardState(1, 'n1', 3 * k - 3) });
  }
  await persist(storage, { entries: entries(LAST_INDEX, LAST_INDEX, 1, 8), hardState: hardState(1, 'n1', LAST_INDEX - 1) });
  await storage.close();
  return dataDir;
}

/** Every file under `dir` with the SHA-256 of its bytes, by relative path. */
function tree(dir: string, root = dir, out: Record<string, string> = {}): Record<string, string> {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) tree(path, root, out);
    else out[relative(root, path)] = createHash('sha256').update(readFileSync(path)).digest('hex');
  }
  return out;
}

/** Opens, returns what recovery served, closes. */
async function recover(dataDir: string, segmentBytesMax = 64 * 1024) {
  const storage = await FileStorage.open({ dataDir, segmentBytesMax });
  try {
    const held = allEntries(storage);
    return { status: storage.status(), lastIndex: storage.lastIndex(), intact: held.every(isIntact), held: held.length };
  } finally {
    await storage.close();
  }
}

for (const preallocate of [true, false]) {
  const mode = preallocate ? 'preallocated' : 'appended';

  test(`storage: a last record cut at every byte offset is a torn tail; earlier records survive (file, ${mode})`, async (t) => {
    const dataDir = await build(t, preallocate);
    const segment = join(dataDir, 'wal', '0000000000000001.wal');
    const original = readFileSync(segment);
    const last = framesOf(segment).at(-1);
    if (last === undefined) return t.fail('no records');
    for (let cut = last.start; cut < last.end; cut++) {
      for (const how of ['truncate', 'zero'] as const) {
        writeFileSync(segment, original);
        if (how === 'truncate') truncateSync(segment, cut);
        else writeFileSync(segment, Buffer.concat([original.subarray(0, cut), Buffer.alloc(original.length - cut)]));
        const result = await recover(dataDir);
        t.false(result.status.needsRepair, `${how} at ${cut}: ${result.status.repairReason ?? ''}`);
        t.is(result.lastIndex, LAST_INDEX - 1, `${how} at ${cut}`);
        t.true(result.intact);
      }
    }
    // Recovery continues: the log accepts writes after the cut and keeps them.
    const storage = await FileStorage.open({ dataDir });
    await persist(storage, { entries: entries(LAST_INDEX, LAST_INDEX + 2, 2, 8) });
    await storage.close();
    const after = await recover(dataDir);
    t.is(after.lastIndex, LAST_INDEX + 2);
    t.false(after.status.needsRepair);
    t.true(after.intact);
  });

  test(`storage: a bit flipped anywhere in the last record is a torn tail; earlier records survive (file, ${mode})`, async (t) => {
    const dataDir = await build(t, preallocate);
    const segment = join(dataDir, 'wal', '0000000000000001.wal');
    const original = readFileSync(segment);
    const last = framesOf(segment).at(-1);
    if (last === undefined) return t.fail('no records');
    for (let bit = last.start * 8; bit < last.end * 8; bit++) {
      const damaged = Buffer.from(original);
      damaged[bit >> 3] = (damaged[bit >> 3] ?? 0) ^ (1 << (bit & 7));
      writeFileSync(segment, damaged);
      const result = await recover(dataDir);
      t.false(result.status.needsRepair, `bit ${bit}: ${result.status.repairReason ?? ''}`);
      t.is(result.lastIndex, LAST_INDEX - 1, `bit ${bit}`);
      t.true(result.intact);
    }
  });
}

test('storage: a bit flipped in a middle record means needsRepair and nothing is deleted or rewritten (file)', async (t) => {
  const dataDir = await build(t, true);
  const segment = join(dataDir, 'wal', '0000000000000001.wal');
  const original = readFileSync(segment);
  const middle = framesOf(segment)[2];
  if (middle === undefined) return t.fail('no records');
  for (let byte = middle.start; byte < middle.end; byte++) {
    const damaged = Buffer.from(original);
    damaged[byte] = (damaged[byte] ?? 0) ^ (1 << (byte & 7));
    writeFileSync(segment, damaged);
    const before = tree(dataDir);
    const result = await recover(dataDir);
    t.true(result.status.needsRepair, `byte ${byte}`);
    t.regex(result.status.repairReason ?? '', /with data after it|malformed/);
    t.is(result.lastIndex, 6, 'the two records before the damage are served');
    t.true(result.intact);
    t.deepEqual(tree(dataDir), before, `byte ${byte}: every file unchanged`);
  }
});

test('storage: damage at the end of an earlier segment is not a torn tail (file)', async (t) => {
  const segmentBytesMax = 4096;
  const dataDir = tempDir(t, 'corruption');
  const storage = await FileStorage.open({ dataDir, segmentBytesMax });
  for (let lo = 1; lo <= 200; lo += 10) await persist(storage, { entries: entries(lo, lo + 9, 1, 100) });
  await storage.close();
  const first = join(dataDir, 'wal', '0000000000000001.wal');
  const last = framesOf(first).at(-1);
  if (last === undefined) return t.fail('no records');
  const damaged = readFileSync(first);
  damaged[last.end - 1] = (damaged[last.end - 1] ?? 0) ^ 0x10;
  writeFileSync(first, damaged);
  const before = tree(dataDir);
  const result = await recover(dataDir, segmentBytesMax);
  t.true(result.status.needsRepair);
  t.regex(result.status.repairReason ?? '', /0000000000000001\.wal: record checksum mismatch/);
  t.true(result.lastIndex < 200);
  t.deepEqual(tree(dataDir), before);
});

test('storage: a corrupted newest snapshot means needsRepair (file)', async (t) => {
  const dataDir = await build(t, true);
  const storage = await FileStorage.open({ dataDir });
  await new Promise<void>((resolve, reject) =>
    storage.compact({ meta: { index: 9, term: 1, conf: { voters: ['n1'], learners: [] } }, data: Buffer.from('image') }, (error) =>
      error ? reject(error) : resolve(),
    ),
  );
  await storage.close();
  const [name] = readdirSync(join(dataDir, 'snapshots'));
  const path = join(dataDir, 'snapshots', name ?? '');
  const bytes = readFileSync(path);
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
  writeFileSync(path, bytes);
  const before = tree(dataDir);
  const result = await recover(dataDir);
  t.true(result.status.needsRepair);
  t.regex(result.status.repairReason ?? '', /snapshot .* is unusable: record checksum mismatch/);
  t.deepEqual(tree(dataDir), before);
});
