/**
 * Crash-test child: appends and persists in a loop, printing each durable batch on stdout,
 * until the parent kills it with SIGKILL. Not a test file; run by crash-runner.ts.
 *
 * Lines: `R <lastIndex>` once open; `P <first> <last> <term>` after a batch is durable (entries
 * first..last now have `term`, nothing after `last` remains); `C <index>` after a compaction.
 * Usage: node crash-child.js <dataDir> <seed>
 */
import { writeSync } from 'node:fs';
import type { Entry } from '../../lib/core/types.js';
import { FileStorage } from '../../lib/storage/index.js';
import { compact, entry, persist, snapshotAt } from '../helpers/storage-fixtures.js';
import { mulberry32 } from './crash-runner.js';

/** The child stops on its own after this long, so a dead parent cannot leave it running. */
const LIFETIME_MS_MAX = 20_000;
/** Compact once this many entries are held (with some randomness), like snapshotEveryEntries. */
const ENTRIES_BEFORE_COMPACTION = 1500;

function say(line: string): void {
  // Synchronous: once written, the line reaches the parent even if SIGKILL follows at once.
  writeSync(1, `${line}\n`);
}

async function main(): Promise<void> {
  const [dataDir, seedText] = process.argv.slice(2);
  if (dataDir === undefined || seedText === undefined) throw new Error('usage: crash-child.js <dataDir> <seed>');
  const random = mulberry32(Number(seedText));
  setTimeout(() => process.exit(3), LIFETIME_MS_MAX).unref();
  const storage = await FileStorage.open({ dataDir, segmentBytesMax: 64 * 1024 });
  if (storage.status().needsRepair) throw new Error(`needsRepair: ${storage.status().repairReason ?? ''}`);
  say(`R ${storage.lastIndex()}`);
  const term = storage.hardState().term + 1;
  // A new life starts a new term and sometimes overwrites the last few entries (a new leader's).
  let next = Math.max(storage.firstIndex(), storage.lastIndex() + 1 - Math.floor(random() * 4));
  for (;;) {
    const count = 1 + Math.floor(random() * 64);
    const batch: Entry[] = [];
    for (let index = next; index < next + count; index++) batch.push(entry(index, term, 8 + Math.floor(random() * 200)));
    const last = next + count - 1;
    await persist(storage, { entries: batch, hardState: { term, vote: 'n1', commit: last } });
    say(`P ${next} ${last} ${term}`);
    next = last + 1;
    if (last - storage.firstIndex() > ENTRIES_BEFORE_COMPACTION && random() < 0.1) {
      await compact(storage, snapshotAt(last, term));
      say(`C ${last}`);
    }
  }
}

main().catch((error: unknown) => {
  say(`E ${String(error instanceof Error ? error.stack : error).replace(/\n/g, ' | ')}`);
  process.exit(1);
});
