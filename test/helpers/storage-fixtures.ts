/**
 * Fixtures for storage tests: temp directories that are always removed, deterministic entries,
 * promise wrappers for the callback API, and a fault-injecting fs layer.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import type { Entry, HardState, PersistRequest, Snapshot } from '../../lib/core/types.js';
import type { Storage } from '../../lib/storage/storage.js';
import type { StorageFs } from '../../lib/storage/storage-fs.js';

/** A fresh directory under os.tmpdir(), removed when the test ends, pass or fail. */
export function tempDir(t: ExecutionContext, label = 'storage'): string {
  const dir = mkdtempSync(join(tmpdir(), `raftqueue-${label}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Payload bytes derived from (index, term), so any entry can be checked for integrity alone. */
export function payload(index: number, term: number, bytes: number): Uint8Array {
  const data = new Uint8Array(bytes);
  let state = (index * 2654435761 + term * 40503) >>> 0;
  for (let i = 0; i < bytes; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    data[i] = state >>> 24;
  }
  return data;
}

/** A Normal entry whose data is payload(index, term, bytes). */
export function entry(index: number, term: number, bytes = 16): Entry {
  return { index, term, type: 0, data: payload(index, term, bytes) };
}

/** Entries lo..hi inclusive, all in `term`. */
export function entries(lo: number, hi: number, term: number, bytes = 16): Entry[] {
  const out: Entry[] = [];
  for (let index = lo; index <= hi; index++) out.push(entry(index, term, bytes));
  return out;
}

/** True when `e` carries exactly payload(e.index, e.term, length). */
export function isIntact(e: Entry): boolean {
  const expected = payload(e.index, e.term, e.data.length);
  return Buffer.from(e.data).equals(Buffer.from(expected));
}

/** A snapshot of a single-voter cluster at (index, term). */
export function snapshotAt(index: number, term: number, data: Uint8Array = Buffer.from(`state@${index}`)): Snapshot {
  return { meta: { index, term, conf: { voters: ['n1'], learners: [] } }, data };
}

/** persist() as a promise that rejects with the storage's error. */
export function persist(storage: Storage, request: PersistRequest): Promise<void> {
  return new Promise((resolve, reject) => {
    storage.persist(request, (error) => (error === undefined ? resolve() : reject(error)));
  });
}

/** compact() as a promise that rejects with the storage's error. */
export function compact(storage: Storage, snapshot: Snapshot): Promise<void> {
  return new Promise((resolve, reject) => {
    storage.compact(snapshot, (error) => (error === undefined ? resolve() : reject(error)));
  });
}

/** A hard state with the given fields. */
export function hardState(term: number, vote: string | null, commit: number): HardState {
  return { term, vote, commit };
}

/** Every entry the storage holds, read without a byte bound. */
export function allEntries(storage: Storage): Entry[] {
  if (storage.lastIndex() < storage.firstIndex()) return [];
  return storage.entries(storage.firstIndex(), storage.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
}

/** An errno-style error like the ones node:fs raises. */
export function errnoError(code: string, syscall: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`${code}: injected failure, ${syscall}`);
  error.code = code;
  error.syscall = syscall;
  return error;
}

/**
 * Wraps `base` so `failWhen(operation, callCount)` can fail any call: return an errno code
 * to reject that call with it, or undefined to pass it through.
 */
export function faultyFs(base: StorageFs, failWhen: (operation: keyof StorageFs, calls: number) => string | undefined): StorageFs {
  const counts = new Map<keyof StorageFs, number>();
  const wrap = <K extends keyof StorageFs>(operation: K): StorageFs[K] => {
    const original = base[operation] as (...args: unknown[]) => Promise<unknown>;
    return ((...args: unknown[]) => {
      const calls = (counts.get(operation) ?? 0) + 1;
      counts.set(operation, calls);
      const code = failWhen(operation, calls);
      if (code !== undefined) return Promise.reject(errnoError(code, operation));
      return original(...args);
    }) as StorageFs[K];
  };
  return {
    open: wrap('open'),
    close: wrap('close'),
    write: wrap('write'),
    fdatasync: wrap('fdatasync'),
    fsync: wrap('fsync'),
    readFile: wrap('readFile'),
    read: wrap('read'),
    readFileSync: (path: string) => {
      const calls = (counts.get('readFileSync') ?? 0) + 1;
      counts.set('readFileSync', calls);
      const code = failWhen('readFileSync', calls);
      if (code !== undefined) throw errnoError(code, 'readFileSync');
      return base.readFileSync(path);
    },
    readdir: wrap('readdir'),
    mkdir: wrap('mkdir'),
    rename: wrap('rename'),
    unlink: wrap('unlink'),
  };
}
