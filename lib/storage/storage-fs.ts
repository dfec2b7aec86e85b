/**
 * StorageFs: the slice of node:fs that FileStorage uses, injectable so tests can fail any call
 * (ENOSPC, EACCES, EIO) at a chosen moment and check that the files stay recoverable.
 *
 * Numeric file descriptors and the thread-pool (callback) API keep the write path to two
 * thread-pool round trips per persist (write, fdatasync) and off the event loop.
 */
import * as fs from 'node:fs';
import { promisify } from 'node:util';

/** The file-system operations FileStorage performs. Every one may reject with an errno error. */
export interface StorageFs {
  /** `flags` as node:fs takes them: a string ('r+') or O_* constants or'ed together. */
  open(path: string, flags: string | number): Promise<number>;
  close(fd: number): Promise<void>;
  /** Writes `length` bytes of `buffer` from `offset` at file `position`; resolves bytes written. */
  write(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  fdatasync(fd: number): Promise<void>;
  fsync(fd: number): Promise<void>;
  readFile(path: string): Promise<Buffer>;
  /** Reads up to `length` bytes at file `position` into `buffer` at `offset`; resolves bytes read. */
  read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** Synchronous read, only for reloading a compacted snapshot when a follower needs it. */
  readFileSync(path: string): Buffer;
  readdir(path: string): Promise<string[]>;
  mkdir(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
}

function writeAsync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.write(fd, buffer, offset, length, position, (error, bytesWritten) => {
      if (error === null) resolve(bytesWritten);
      else reject(error);
    });
  });
}

function readAsync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buffer, offset, length, position, (error, bytesRead) => {
      if (error === null) resolve(bytesRead);
      else reject(error);
    });
  });
}

/**
 * One read call moves at most this much: node's whole-file reads stop at 2 GiB (a snapshot file
 * may be larger), so files are read in pieces into one buffer of their size.
 */
const READ_PIECE_BYTES = 2 ** 30;

function readWholeSync(path: string): Buffer {
  const fd = fs.openSync(path, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const out = Buffer.allocUnsafeSlow(size);
    for (let got = 0; got < size; ) {
      const n = fs.readSync(fd, out, got, Math.min(READ_PIECE_BYTES, size - got), got);
      if (n <= 0) throw Object.assign(new Error(`${path} ended after ${got} of ${size} bytes`), { code: 'EIO' });
      got += n;
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

async function readWhole(path: string): Promise<Buffer> {
  const fd = await promisify(fs.open)(path, 'r');
  try {
    const size = (await promisify(fs.fstat)(fd)).size;
    const out = Buffer.allocUnsafeSlow(size);
    for (let got = 0; got < size; ) {
      const n = await readAsync(fd, out, got, Math.min(READ_PIECE_BYTES, size - got), got);
      if (n <= 0) throw Object.assign(new Error(`${path} ended after ${got} of ${size} bytes`), { code: 'EIO' });
      got += n;
    }
    return out;
  } finally {
    await promisify(fs.close)(fd);
  }
}

/** StorageFs backed by node:fs. */
export const nodeStorageFs: StorageFs = {
  open: (path, flags) => promisify(fs.open)(path, flags),
  close: promisify(fs.close),
  write: writeAsync,
  fdatasync: promisify(fs.fdatasync),
  fsync: promisify(fs.fsync),
  readFile: readWhole,
  read: readAsync,
  readFileSync: readWholeSync,
  readdir: (path) => promisify(fs.readdir)(path),
  mkdir: async (path) => {
    await promisify(fs.mkdir)(path, { recursive: true });
  },
  rename: promisify(fs.rename),
  unlink: promisify(fs.unlink),
};

/** True when `error` is an errno error with the given code (e.g. 'ENOENT'). */
export function hasErrorCode(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}
