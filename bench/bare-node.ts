/**
 * The baselines' child processes for `npm run bench` (see bench/bare-baselines.ts):
 *
 *   node dist/bench/bare-node.js follower <dir>   a pipeline follower: write + fdatasync + ack
 *   node dist/bench/bare-node.js leader <dir>     the pipeline leader with its in-process producers
 *   node dist/bench/bare-node.js echo             a TCP echo server for the round-trip baseline
 *
 * The bare replication pipeline of docs PERFORMANCE.md, no Raft logic: once per event-loop turn
 * (when the previous write is done) the leader takes every pending proposal, encodes one batch
 * record (one checksum per batch), sends the same buffer to both followers, writes it to its log
 * and fdatasyncs; followers write, fdatasync and acknowledge the last index; a batch commits when
 * a majority (2 of 3) has it durable, and its producers' promises resolve in order.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { LOAD_COUNT_MAX, PAYLOAD_ENCODED_BYTES, loadResult, type LoadResult } from './cluster-shared.js';

const HEADER_BYTES = 20; // u32 body length, u32 crc32(body), u32 count, f64 first index
const ACK_BYTES = 8;

export type BareCommand =
  | { readonly op: 'cpu' }
  | { readonly op: 'connect'; readonly ports: readonly number[] }
  | {
      readonly op: 'run';
      readonly inFlight: number;
      readonly seconds: number;
      readonly warmupSeconds: number;
      readonly countMax: number;
      readonly latency: boolean;
    }
  | { readonly op: 'stop' };

const role = process.argv[2];
const dir = process.argv[3];

function reply(id: number, value: unknown, error?: unknown): void {
  if (!process.connected) return;
  process.send?.(error === undefined ? { reply: id, ok: true, value } : { reply: id, ok: false, error: String(error) });
}

process.on('disconnect', () => process.exit(0));

/** An append-only log file written with one write + fdatasync at a time. */
class LogFile {
  private readonly fd: number;
  private position = 0;
  constructor(path: string) {
    this.fd = fs.openSync(path, 'w');
  }
  appendSync(bytes: Uint8Array, cb: (error: Error | null) => void): void {
    fs.write(this.fd, bytes, 0, bytes.length, this.position, (error) => {
      if (error) return cb(error);
      this.position += bytes.length;
      fs.fdatasync(this.fd, cb);
    });
  }
}

// ------------------------------------------------------------------------------------- follower

function follower(): void {
  const log = new LogFile(join(dir as string, 'follower.log'));
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    let buffered: Buffer = Buffer.alloc(0);
    const ready: Buffer[] = [];
    let readyLast = 0;
    let writing = false;
    const flush = (): void => {
      if (writing || ready.length === 0) return;
      const bytes = ready.length === 1 ? (ready[0] as Buffer) : Buffer.concat(ready);
      const last = readyLast;
      ready.length = 0;
      writing = true;
      log.appendSync(bytes, (error) => {
        writing = false;
        if (error) throw error;
        const ack = Buffer.allocUnsafe(ACK_BYTES);
        ack.writeDoubleLE(last, 0);
        socket.write(ack);
        flush();
      });
    };
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      let offset = 0;
      while (buffered.length - offset >= HEADER_BYTES) {
        const bodyBytes = buffered.readUInt32LE(offset);
        const total = HEADER_BYTES + bodyBytes;
        if (buffered.length - offset < total) break;
        const crc = buffered.readUInt32LE(offset + 4);
        const count = buffered.readUInt32LE(offset + 8);
        const first = buffered.readDoubleLE(offset + 12);
        const frame = buffered.subarray(offset, offset + total);
        if (zlib.crc32(frame.subarray(HEADER_BYTES)) !== crc) throw new Error('bad checksum');
        ready.push(frame);
        readyLast = first + count - 1;
        offset += total;
      }
      buffered = offset === buffered.length ? Buffer.alloc(0) : buffered.subarray(offset);
      flush();
    });
    socket.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1', () => {
    process.send?.({ ev: 'ready', port: (server.address() as net.AddressInfo).port });
  });
  process.on('message', (m: { id: number; command: BareCommand }) => {
    if (m.command.op === 'cpu') reply(m.id, process.cpuUsage());
    else if (m.command.op === 'stop') {
      reply(m.id, true);
      setTimeout(() => process.exit(0), 20);
    }
  });
}

// --------------------------------------------------------------------------------------- leader

interface Batch {
  readonly last: number;
  readonly resolvers: (() => void)[];
}

function leader(): void {
  const log = new LogFile(join(dir as string, 'leader.log'));
  const sockets: net.Socket[] = [];
  const followerMatch: number[] = [];
  let pendingData: Buffer[] = [];
  let pendingResolvers: (() => void)[] = [];
  const batches: Batch[] = [];
  let nextIndex = 1;
  let localDurable = 0;
  let writing = false;
  let scheduled = false;

  const tryCommit = (): void => {
    // Majority of three: the median of the leader's and the followers' durable indexes.
    const sorted = [localDurable, ...followerMatch].sort((a, b) => b - a);
    const commit = sorted[1] as number;
    while (batches.length > 0 && (batches[0] as Batch).last <= commit) {
      for (const resolve of (batches.shift() as Batch).resolvers) resolve();
    }
  };

  const flush = (): void => {
    scheduled = false;
    if (writing || pendingData.length === 0) return;
    const data = pendingData;
    const resolvers = pendingResolvers;
    pendingData = [];
    pendingResolvers = [];
    const count = data.length;
    let bodyBytes = 0;
    for (const d of data) bodyBytes += 4 + d.length;
    const frame = Buffer.allocUnsafe(HEADER_BYTES + bodyBytes);
    let offset = HEADER_BYTES;
    for (const d of data) {
      frame.writeUInt32LE(d.length, offset);
      d.copy(frame, offset + 4);
      offset += 4 + d.length;
    }
    const first = nextIndex;
    nextIndex += count;
    frame.writeUInt32LE(bodyBytes, 0);
    frame.writeUInt32LE(zlib.crc32(frame.subarray(HEADER_BYTES)), 4);
    frame.writeUInt32LE(count, 8);
    frame.writeDoubleLE(first, 12);
    const last = first + count - 1;
    batches.push({ last, resolvers });
    for (const s of sockets) s.write(frame); // encoded once, the same buffer to both
    writing = true;
    log.appendSync(frame, (error) => {
      writing = false;
      if (error) throw error;
      localDurable = last;
      tryCommit();
      if (pendingData.length > 0) schedule();
    });
  };

  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(flush);
  };

  const propose = (data: Buffer): Promise<void> =>
    new Promise((resolve) => {
      pendingData.push(data);
      pendingResolvers.push(resolve);
      schedule();
    });

  const template = Buffer.alloc(PAYLOAD_ENCODED_BYTES, 0x61);

  const run = async (c: Extract<BareCommand, { op: 'run' }>): Promise<LoadResult> => {
    const countMax = Math.min(c.countMax, LOAD_COUNT_MAX);
    const started = performance.now();
    const warmEnd = started + c.warmupSeconds * 1000;
    const end = warmEnd + c.seconds * 1000;
    const latencies = c.latency ? new Float64Array(Math.min(countMax, 4_000_000)) : undefined;
    let latencyCount = 0;
    let issued = 0;
    let total = 0;
    let count = 0;
    let lastDone = started;
    const producer = async (): Promise<void> => {
      while (issued < countMax) {
        const t0 = performance.now();
        if (t0 >= end) return;
        issued++;
        // A fresh buffer per message, as an application's encoded payload would be.
        const data = Buffer.allocUnsafe(PAYLOAD_ENCODED_BYTES);
        template.copy(data);
        await propose(data);
        const t1 = performance.now();
        total++;
        lastDone = t1;
        if (t1 >= warmEnd && t1 <= end) {
          count++;
          if (latencies && t0 >= warmEnd && latencyCount < latencies.length) latencies[latencyCount++] = t1 - t0;
        }
      }
    };
    await Promise.all(Array.from({ length: c.inFlight }, producer));
    return loadResult({ count, total, warmEnd, end, lastDone, errors: {}, latencies, latencyCount });
  };

  const connect = async (ports: readonly number[]): Promise<void> => {
    await Promise.all(
      ports.map(
        (port, i) =>
          new Promise<void>((resolve, reject) => {
            const s = net.connect(port, '127.0.0.1', () => resolve());
            s.setNoDelay(true);
            s.on('error', reject);
            followerMatch[i] = 0;
            let acks: Buffer = Buffer.alloc(0);
            s.on('data', (chunk: Buffer) => {
              acks = acks.length === 0 ? chunk : Buffer.concat([acks, chunk]);
              const whole = acks.length - (acks.length % ACK_BYTES);
              if (whole === 0) return;
              followerMatch[i] = acks.readDoubleLE(whole - ACK_BYTES);
              acks = acks.subarray(whole);
              tryCommit();
            });
            sockets.push(s);
          }),
      ),
    );
  };

  process.on('message', (m: { id: number; command: BareCommand }) => {
    const c = m.command;
    if (c.op === 'cpu') reply(m.id, process.cpuUsage());
    else if (c.op === 'connect') connect(c.ports).then(() => reply(m.id, true), (e: unknown) => reply(m.id, undefined, e));
    else if (c.op === 'run') run(c).then((r) => reply(m.id, r), (e: unknown) => reply(m.id, undefined, e));
    else if (c.op === 'stop') {
      reply(m.id, true);
      setTimeout(() => process.exit(0), 20);
    }
  });
  process.send?.({ ev: 'ready' });
}

// ----------------------------------------------------------------------------------------- echo

function echo(): void {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('data', (chunk) => socket.write(chunk));
    socket.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1', () => process.send?.({ ev: 'ready', port: (server.address() as net.AddressInfo).port }));
  process.on('message', (m: { id: number; command: BareCommand }) => {
    if (m.command.op === 'stop') {
      reply(m.id, true);
      setTimeout(() => process.exit(0), 20);
    }
  });
}

if (role === 'follower') follower();
else if (role === 'leader') leader();
else if (role === 'echo') echo();
else {
  console.error(`bare-node: unknown role ${String(role)}`);
  process.exit(2);
}
