/**
 * Snapshot transfer in chunks, of any size, over the member channel 'snap'.
 *
 * The core still decides when a follower needs a snapshot and emits one InstallSnapshot message
 * (`{ type: 'snapshot', snapshot }`); the node never sends it whole. The leader's sender offers
 * the snapshot (its identity: index, term, size; and its metadata), then streams chunks of at most
 * `chunkBytes`, each with its own CRC-32, at most `windowChunks` unacknowledged at a time (so a
 * chunk stream never fills the link: heartbeats go between chunks). The follower's receiver
 * appends chunks in order, acknowledging the bytes it holds, into its storage's temporary file
 * (or into memory when the storage has none); when it has them all (synced) it hands the message
 * to its core, exactly as if it had arrived whole, and installing it moves the file into place.
 *
 * Resumable: when acknowledgements stop (a lost connection, lost chunks, a restarted leader), the
 * sender offers again and the receiver answers with the bytes it already holds of that snapshot,
 * from which the stream continues. Snapshots are deterministic (every member produces the same
 * bytes at an index), so a new leader offering the same snapshot resumes a transfer its
 * predecessor started. A receiver holds one snapshot in progress (bounded by `bytesMax`) and
 * drops it for a different one.
 */
import type { Message } from '../core/messages.js';
import type { NodeId, SnapshotMeta, SnapshotSource } from '../core/types.js';
import { Packr } from 'msgpackr';
import { z } from 'zod';
import { MEMBER_ID_CHARS_MAX, ADDRESS_CHARS_MAX } from '../contracts/limits.js';
import { MSGPACK_OPTIONS } from '../contracts/msgpack-options.js';
import type { AppMessage, Transport } from '../contracts/transport.js';
import type { SnapshotStage } from '../storage/storage.js';
import type { Clock } from './clock.js';

export const SNAPSHOT_CHANNEL = 'snap';

type SnapshotMessage = Extract<Message, { type: 'snapshot' }>;

const packr = new Packr({ ...MSGPACK_OPTIONS });
const uint = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const nodeId = z.string().min(1).max(MEMBER_ID_CHARS_MAX);
const members = z.array(nodeId).max(256);
const metaSchema = z.strictObject({
  index: uint,
  term: uint,
  conf: z.strictObject({
    voters: members,
    learners: members,
    addresses: z.record(nodeId, z.string().max(ADDRESS_CHARS_MAX)).optional(),
  }),
});
/** A snapshot's identity: the same index, term and size mean the same bytes (snapshots are deterministic). */
const id = { index: uint, sterm: uint, total: uint };
const bodySchema = z.discriminatedUnion('k', [
  /** Leader -> follower: this snapshot is for you (answer with what you hold of it). */
  z.strictObject({ k: z.literal('offer'), ...id, term: uint, meta: metaSchema }),
  /** Leader -> follower: `data` goes at `offset`; `crc` is its CRC-32. */
  z.strictObject({ k: z.literal('chunk'), ...id, term: uint, offset: uint, crc: uint, data: z.custom<Uint8Array>((v) => v instanceof Uint8Array) }),
  /** Follower -> leader: I hold the first `offset` bytes of this snapshot. */
  z.strictObject({ k: z.literal('ack'), ...id, offset: uint }),
]);
type Body = z.infer<typeof bodySchema>;
type WireMeta = z.infer<typeof metaSchema>;

export interface SnapshotTransferHost {
  readonly id: NodeId;
  readonly transport: Transport;
  readonly clock: Clock;
  /** Largest chunk; keep it well under the transport's frame bound. */
  readonly chunkBytes: number;
  /** Unacknowledged chunks at a time, per follower. */
  readonly windowChunks: number;
  /** With no acknowledgement for this long, offer again (resume). */
  readonly stallMs: number;
  /** Largest snapshot this node accepts to receive. */
  readonly bytesMax: number;
  readonly crc32: (data: Uint8Array) => number;
  /**
   * Optional: where a snapshot being received is written as it arrives (the storage's temporary
   * file). Without it the receiver assembles the snapshot in memory.
   */
  stage?(meta: SnapshotMeta, byteLength: number): SnapshotStage;
  /** A whole snapshot arrived: step it into the core. */
  deliver(message: SnapshotMessage): void;
  log(line: string): void;
}

interface OutStream {
  readonly to: NodeId;
  readonly term: number;
  readonly meta: SnapshotMeta;
  readonly total: number;
  /** The bytes in memory, or where to read them a chunk at a time (a snapshot in a file). */
  readonly data: Uint8Array | undefined;
  readonly source: SnapshotSource | undefined;
  /** Bytes the follower acknowledged, and bytes sent so far. */
  acked: number;
  sent: number;
  lastProgressMs: number;
  /** An offer was sent and not yet answered: the next acknowledgement sets the position. */
  offered: boolean;
  /** A chunk is being read from `source` (one at a time, in order). */
  reading: boolean;
}

interface InStream {
  readonly index: number;
  readonly sterm: number;
  readonly total: number;
  from: NodeId;
  term: number;
  meta: SnapshotMeta;
  /** The bytes so far: in memory, or in the storage's temporary file. */
  readonly data: Uint8Array | undefined;
  readonly stage: SnapshotStage | undefined;
  /** Bytes received in order (held or being written), and bytes written (what acks report). */
  offset: number;
  written: number;
}

/** Counters for status and tests. */
export interface SnapshotTransferStats {
  offersSent: number;
  chunksSent: number;
  chunksReceived: number;
  chunksRejected: number;
  resumed: number;
  delivered: number;
  /** Of the delivered, received into the storage's temporary file. */
  receivedToFile: number;
}

export class SnapshotTransfer {
  private readonly out = new Map<NodeId, OutStream>();
  private incoming: InStream | undefined;
  /**
   * The last snapshot delivered whole: a later offer of it is answered with its size and it is
   * handed to the core again under the offer's term (the core ignores an old term's copy, and a
   * new leader may need it in its own term).
   */
  private done: (SnapshotMessage & { readonly total: number; readonly index: number; readonly sterm: number }) | undefined;
  /** The staged file of `done`, released when another snapshot replaces it. */
  private doneStage: SnapshotStage | undefined;
  /**
   * A staged snapshot with every byte received, being synced: offers of it are answered whole,
   * and the latest offer's sender and term are the ones it is delivered under.
   */
  private finishing: { readonly index: number; readonly sterm: number; readonly total: number; from: NodeId; term: number } | undefined;
  readonly stats: SnapshotTransferStats = { offersSent: 0, chunksSent: 0, chunksReceived: 0, chunksRejected: 0, resumed: 0, delivered: 0, receivedToFile: 0 };

  constructor(private readonly host: SnapshotTransferHost) {}

  // ---------------------------------------------------------------------------------------------
  // Leader side

  /** The core wants `m.to` to install `m.snapshot`: stream it (or keep streaming it). */
  send(m: SnapshotMessage): void {
    const s = this.out.get(m.to);
    const meta = m.snapshot.meta;
    // (The identity check reads no data: a compacted snapshot's bytes are loaded only when sent.)
    if (s && s.term === m.term && s.meta.index === meta.index && s.meta.term === meta.term) {
      // The core retries an unanswered snapshot: the stream already carries it (and offers again
      // by itself when acknowledgements stop).
      return;
    }
    // A snapshot kept in a file is read a chunk at a time as the window opens; one in memory
    // is sliced.
    const source = m.snapshot.source;
    let data: Uint8Array | undefined;
    if (source === undefined) {
      try {
        data = m.snapshot.data;
      } catch (error) {
        // Superseded by a newer compaction between the core's choice and now: the core sends
        // the newer snapshot when it retries.
        this.host.log(`snapshot ${meta.index}/${meta.term} for ${m.to} is no longer readable (${(error as Error).message}); waiting for a newer one`);
        this.out.delete(m.to);
        return;
      }
    }
    const total = source !== undefined ? source.byteLength : (data as Uint8Array).length;
    const stream: OutStream = { to: m.to, term: m.term, meta, total, data, source, acked: 0, sent: 0, lastProgressMs: this.host.clock.monoMs(), offered: false, reading: false };
    this.out.set(m.to, stream);
    this.offer(stream);
  }

  private offer(s: OutStream): void {
    const meta = s.meta;
    s.offered = true;
    s.sent = s.acked;
    s.lastProgressMs = this.host.clock.monoMs();
    this.stats.offersSent++;
    this.post(s.to, { k: 'offer', index: meta.index, sterm: meta.term, total: s.total, term: s.term, meta: plainMeta(meta) });
  }

  /** Sends chunks up to the window (only once the follower answered the offer). */
  private pump(s: OutStream): void {
    const chunk = this.host.chunkBytes;
    while (!s.reading && s.sent < s.total && s.sent - s.acked < chunk * this.host.windowChunks) {
      const offset = s.sent;
      const end = Math.min(s.total, offset + chunk);
      if (s.data !== undefined) {
        this.postChunk(s, offset, s.data.subarray(offset, end));
        continue;
      }
      // From the file: one read at a time; a resume or a newer stream meanwhile discards it.
      s.reading = true;
      (s.source as SnapshotSource).read(offset, end - offset, (error, bytes) => {
        s.reading = false;
        if (this.out.get(s.to) !== s) return;
        if (error !== undefined || bytes === undefined) {
          // Superseded by a newer snapshot (its file was deleted): the core sends the newer one.
          this.host.log(`snapshot ${s.meta.index}/${s.meta.term} for ${s.to} could not be read (${error?.message ?? 'no data'}); waiting for a newer one`);
          this.out.delete(s.to);
          return;
        }
        if (s.sent === offset) this.postChunk(s, offset, bytes);
        this.pump(s);
      });
    }
  }

  private postChunk(s: OutStream, offset: number, bytes: Uint8Array): void {
    this.stats.chunksSent++;
    this.post(s.to, { k: 'chunk', index: s.meta.index, sterm: s.meta.term, total: s.total, term: s.term, offset, crc: this.host.crc32(bytes), data: bytes });
    s.sent = offset + bytes.length;
  }

  private onAck(from: NodeId, b: Extract<Body, { k: 'ack' }>): void {
    const s = this.out.get(from);
    if (!s || s.meta.index !== b.index || s.meta.term !== b.sterm || s.total !== b.total) return;
    if (b.offset >= s.total) {
      // Whole: the follower's core takes it from here (its answer ends the core's snapshot state).
      this.out.delete(from);
      return;
    }
    if (s.offered) {
      // The answer to an offer: what the follower holds, wherever that is (it may have
      // restarted, or a previous leader may have sent more): continue from there.
      s.offered = false;
      if (b.offset !== s.acked) this.stats.resumed++;
      s.acked = b.offset;
      s.sent = b.offset;
    } else if (b.offset > s.acked) {
      s.acked = b.offset;
      s.sent = Math.max(s.sent, b.offset);
    } else {
      // A duplicate or a reordered older acknowledgement. Rewinding on it resent what the follower
      // already had, whose rejections rewound again: a storm of chunks that never finished
      // (simulator seed 0x5eed2947). Lost chunks show as acknowledgements that stop advancing,
      // and the stall timer offers again.
      return;
    }
    s.lastProgressMs = this.host.clock.monoMs();
    this.pump(s);
  }

  /** Leadership (or the term) ended: the next leader streams its own. */
  stopSending(): void {
    this.out.clear();
  }

  // ---------------------------------------------------------------------------------------------
  // Follower side

  private onOffer(from: NodeId, b: Extract<Body, { k: 'offer' }>): void {
    const same = (x: { index: number; sterm: number; total: number } | undefined): boolean => x !== undefined && x.index === b.index && x.sterm === b.sterm && x.total === b.total;
    const done = this.done;
    if (done !== undefined && same(done)) {
      this.post(from, { k: 'ack', index: b.index, sterm: b.sterm, total: b.total, offset: b.total });
      this.host.deliver({ type: 'snapshot', from, to: this.host.id, term: b.term, snapshot: done.snapshot });
      return;
    }
    const finishing = this.finishing;
    if (finishing !== undefined && same(finishing)) {
      // Every byte is here and being synced: the core gets it as soon as it is.
      finishing.from = from;
      finishing.term = Math.max(finishing.term, b.term);
      this.post(from, { k: 'ack', index: b.index, sterm: b.sterm, total: b.total, offset: b.total });
      return;
    }
    const cur = this.incoming;
    if (cur !== undefined && same(cur)) {
      // Resume: the same snapshot (from this leader or the next), from what we hold.
      cur.from = from;
      cur.term = b.term;
      this.post(from, { k: 'ack', index: b.index, sterm: b.sterm, total: b.total, offset: cur.offset });
      return;
    }
    if (b.total > this.host.bytesMax) {
      this.host.log(`refused a snapshot of ${b.total} bytes from ${from}: over the ${this.host.bytesMax} this member accepts`);
      return;
    }
    cur?.stage?.discard();
    this.incoming = undefined;
    let stage: SnapshotStage | undefined;
    try {
      stage = this.host.stage?.(b.meta, b.total);
    } catch (error) {
      this.host.log(`refused a snapshot of ${b.total} bytes from ${from}: ${(error as Error).message}`);
      return;
    }
    this.incoming = { index: b.index, sterm: b.sterm, total: b.total, from, term: b.term, meta: b.meta, data: stage === undefined ? new Uint8Array(b.total) : undefined, stage, offset: 0, written: 0 };
    this.post(from, { k: 'ack', index: b.index, sterm: b.sterm, total: b.total, offset: 0 });
    if (b.total === 0) this.finish();
  }

  private onChunk(from: NodeId, b: Extract<Body, { k: 'chunk' }>): void {
    const cur = this.incoming;
    if (cur === undefined || cur.index !== b.index || cur.sterm !== b.sterm || cur.total !== b.total) return; // Not offered (or superseded): the sender stalls and offers again.
    this.stats.chunksReceived++;
    const fits = b.offset === cur.offset && b.offset + b.data.length <= cur.total && b.data.length > 0;
    if (!fits || this.host.crc32(b.data) !== b.crc) {
      // A gap, a duplicate or damage: keep what we hold and say so; the sender resumes there.
      this.stats.chunksRejected++;
      this.post(from, { k: 'ack', index: b.index, sterm: b.sterm, total: b.total, offset: cur.offset });
      return;
    }
    cur.from = from;
    cur.term = Math.max(cur.term, b.term);
    if (cur.stage !== undefined) {
      // Acknowledged once written, so the sender's window bounds the bytes waiting for the disk.
      const length = b.data.length;
      cur.stage.append(b.data, (error) => {
        if (error !== undefined) {
          if (this.incoming !== cur) return;
          // The temporary file failed: start over (the sender offers again when acks stop).
          this.host.log(`receiving snapshot ${cur.index}/${cur.sterm}: ${error.message}; dropped it`);
          cur.stage?.discard();
          this.incoming = undefined;
          return;
        }
        cur.written += length;
        if (this.incoming === cur || this.finishing?.index === cur.index) this.post(cur.from, { k: 'ack', index: cur.index, sterm: cur.sterm, total: cur.total, offset: cur.written });
      });
      cur.offset += length;
    } else {
      (cur.data as Uint8Array).set(b.data, cur.offset);
      cur.offset += b.data.length;
      cur.written = cur.offset;
      this.post(from, { k: 'ack', index: b.index, sterm: b.sterm, total: b.total, offset: cur.offset });
    }
    if (cur.offset === cur.total) this.finish();
  }

  private finish(): void {
    const cur = this.incoming as InStream;
    this.incoming = undefined;
    const stage = cur.stage;
    if (stage === undefined) {
      this.deliverWhole(cur, { meta: cur.meta, data: cur.data as Uint8Array });
      return;
    }
    const finishing = { index: cur.index, sterm: cur.sterm, total: cur.total, from: cur.from, term: cur.term };
    this.finishing = finishing;
    stage.finish((error, snapshot) => {
      if (this.finishing === finishing) this.finishing = undefined;
      if (error !== undefined || snapshot === undefined) {
        // Not durable: it is received again (the leader offers it again, from 0).
        this.host.log(`receiving snapshot ${cur.index}/${cur.sterm}: ${error?.message ?? 'no snapshot'}; dropped it`);
        return;
      }
      this.stats.receivedToFile++;
      // Under the latest offer's sender and term (a new leader may have offered it meanwhile).
      cur.from = finishing.from;
      cur.term = Math.max(cur.term, finishing.term);
      this.deliverWhole(cur, snapshot, stage);
    });
  }

  private deliverWhole(cur: InStream, snapshot: SnapshotMessage['snapshot'], stage?: SnapshotStage): void {
    const message: SnapshotMessage = { type: 'snapshot', from: cur.from, to: this.host.id, term: cur.term, snapshot };
    // The one it replaces is no longer offered: its file goes unless it was installed.
    this.doneStage?.discard();
    this.doneStage = stage;
    this.done = { ...message, index: cur.index, sterm: cur.sterm, total: cur.total };
    this.stats.delivered++;
    this.host.deliver(message);
  }

  // ---------------------------------------------------------------------------------------------
  // Plumbing

  /** Offers again to followers that stopped acknowledging (lost chunks or connection). */
  tick(): void {
    const now = this.host.clock.monoMs();
    for (const s of this.out.values()) {
      if (now - s.lastProgressMs >= this.host.stallMs) this.offer(s);
    }
  }

  /** Handles a 'snap' message; malformed ones are dropped (members are authenticated). */
  onMessage(m: AppMessage): void {
    let raw: unknown;
    try {
      raw = packr.unpack(m.body);
    } catch {
      return; // Malformed msgpack from a peer: dropped like any invalid frame.
    }
    const parsed = bodySchema.safeParse(raw);
    if (!parsed.success) return;
    const b = parsed.data;
    switch (b.k) {
      case 'offer':
        this.onOffer(m.from, b);
        return;
      case 'chunk':
        this.onChunk(m.from, b);
        return;
      case 'ack':
        this.onAck(m.from, b);
        return;
    }
  }

  private post(to: NodeId, body: Body): void {
    this.host.transport.send({ type: 'app', from: this.host.id, to, channel: SNAPSHOT_CHANNEL, body: packr.pack(body) });
  }
}

function plainMeta(meta: SnapshotMeta): WireMeta {
  const conf = meta.conf;
  return {
    index: meta.index,
    term: meta.term,
    conf: { voters: [...conf.voters], learners: [...conf.learners], ...(conf.addresses ? { addresses: { ...conf.addresses } } : {}) },
  };
}
