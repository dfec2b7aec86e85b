/**
 * A small driver for queue state machine tests: applies commands as the node layer would (one
 * record per entry, consecutive indexes, an explicit entry time) through the node's Applier, so
 * the replicated state under test is the queue plus the session table that deduplicates retried
 * requests. A test names a request by its `rid`; the driver maps each rid to a sequence number of
 * one session, so the same rid is a retry of the same request.
 */
import { MSGPACK_OPTIONS } from '../../lib/contracts/msgpack-options.js';
import { Packr, Unpackr } from 'msgpackr';
import { EntryType } from '../../lib/core/types.js';
import { imageBytes } from '../../lib/contracts/state-machine.js';
import { Applier } from '../../lib/node/applier.js';
import { EntryBuilder, REGISTER_SESSION } from '../../lib/node/envelope.js';
import { sessionIdAt } from '../../lib/node/sessions.js';
import type { SessionLimits } from '../../lib/node/sessions.js';
import {
  QUEUE_PACKR_OPTIONS,
  QueueStateMachine,
  encodeCommand,
  type ApplyResult,
  type Command,
  type Delivery,
  type QueueEvent,
  type QueueStateMachineOptions,
  type StoredMessage,
  type TopicOptions,
} from '../../lib/queue/index.js';

const payloadPackr = new Packr({ ...MSGPACK_OPTIONS });
/** A payload as members store it: one msgpack value (here a string). */
export const bytes = (text: string): Uint8Array => payloadPackr.pack(text);
/** The string a `bytes` payload holds. */
export const text = (payload: Uint8Array): string => payloadPackr.unpack(payload) as string;

/** A command with the test's name for its request (retries reuse it). */
export type DriverCommand = Command & { rid: string };

/** What one applied command gave: its request name, result and events. */
export interface DriverOutput {
  rid: string;
  result: ApplyResult;
  events: QueueEvent[];
}

export interface ClaimOptions {
  max?: number;
  ackTimeoutMs?: number;
  maxDeliveries?: number;
}

/** The driver's request session: registered by the first entry (index 1, position 0). */
export const DRIVER_SESSION = sessionIdAt(1, 0);

/** The entry that registers DRIVER_SESSION (apply it at index 1). */
export function registrationEntry(atMs = 0): Uint8Array {
  const b = new EntryBuilder();
  b.addRecord(REGISTER_SESSION, 1, 0, new TextEncoder().encode('driver'));
  return b.build(atMs);
}

/** One entry holding one record: (DRIVER_SESSION, seq) with `body`, at `atMs`. */
export function entryData(seq: number, body: Uint8Array, atMs: number): Uint8Array {
  const b = new EntryBuilder();
  b.addRecord(DRIVER_SESSION, seq, 0, body);
  return b.build(atMs);
}

export class QueueDriver {
  readonly sm: QueueStateMachine;
  readonly applier: Applier<QueueEvent>;
  /** Entry time of the next command (tests move it explicitly). */
  nowMs = 1_000;
  /** Counter behind rid(); copy it to make another driver issue the same request ids. */
  ridSeq = 0;
  private readonly seqs = new Map<string, number>();
  private lastResult: { result: ApplyResult } | undefined;
  private events: QueueEvent[] = [];

  /** `register`: apply the registration entry now (false: the caller's entries include it). */
  constructor(options: QueueStateMachineOptions = {}, sessionLimits?: SessionLimits, register = true) {
    this.sm = new QueueStateMachine(options);
    this.applier = new Applier<QueueEvent>(
      this.sm,
      sessionLimits,
      (_session, _seq, _index, result) => {
        this.lastResult = result === undefined ? undefined : { result: result as ApplyResult };
      },
      () => undefined,
      (events) => this.events.push(...events),
    );
    // Entry 1 registers the driver's session; commands follow from entry 2.
    if (register) this.applier.apply({ index: 1, term: 1, type: EntryType.Normal, data: registrationEntry() });
  }

  get appliedIndex(): number {
    return this.applier.appliedIndex;
  }

  /** The sequence number of request `rid` (the same for every retry). */
  seqOf(rid: string): number {
    let seq = this.seqs.get(rid);
    if (seq === undefined) {
      seq = this.seqs.size + 1;
      this.seqs.set(rid, seq);
    }
    return seq;
  }

  /** Applies one command at `atMs` (default nowMs) as the next entry. */
  run(command: DriverCommand, atMs: number = this.nowMs): DriverOutput {
    const { rid, ...rest } = command;
    return this.body(rid, encodeCommand(rest as Command), atMs);
  }

  /** Applies a raw request body as request `rid`. */
  body(rid: string, body: Uint8Array, atMs: number = this.nowMs): DriverOutput {
    return this.entry(rid, entryData(this.seqOf(rid), body, atMs));
  }

  /** Applies raw entry data (whose records are request `rid`'s). */
  entry(rid: string, data: Uint8Array, type: EntryType = EntryType.Normal): DriverOutput {
    this.lastResult = undefined;
    this.events = [];
    this.applier.apply({ index: this.applier.appliedIndex + 1, term: 1, type, data });
    const result = this.lastResult as { result: ApplyResult } | undefined;
    return { rid, result: result?.result ?? { ok: true, value: null, duplicate: false }, events: this.events };
  }

  rid(): string {
    return `rid-${++this.ridSeq}`;
  }

  /** The value of a successful result; throws with the error otherwise. */
  value<T>(output: DriverOutput): T {
    return valueOf<T>(output.result);
  }

  createTopic(topic: string, opts?: TopicOptions): boolean {
    return this.value(this.run(opts === undefined ? { t: 'createTopic', rid: this.rid(), topic } : { t: 'createTopic', rid: this.rid(), topic, opts }));
  }

  publish(topic: string, payload: string, publishId?: string): DriverOutput {
    const command: DriverCommand =
      publishId === undefined
        ? { t: 'publish', rid: this.rid(), topic, payload: bytes(payload) }
        : { t: 'publish', rid: this.rid(), topic, payload: bytes(payload), publishId };
    return this.run(command);
  }

  /** Publishes and returns the offset. */
  pub(topic: string, payload: string): number {
    return this.value<{ offset: number }>(this.publish(topic, payload)).offset;
  }

  consume(topic: string): StoredMessage | null {
    return this.value(this.run({ t: 'consume', rid: this.rid(), topic }));
  }

  claimOutput(topic: string, group: string, consumer: string, options: ClaimOptions = {}): DriverOutput {
    return this.run({
      t: 'claim',
      rid: this.rid(),
      topic,
      group,
      consumer,
      max: options.max ?? 1,
      ackTimeoutMs: options.ackTimeoutMs ?? 30_000,
      maxDeliveries: options.maxDeliveries ?? 5,
    });
  }

  claim(topic: string, group: string, consumer: string, options: ClaimOptions = {}): Delivery[] {
    return this.value(this.claimOutput(topic, group, consumer, options));
  }

  ack(d: Delivery, token: number = d.token): DriverOutput {
    return this.run({ t: 'ack', rid: this.rid(), topic: d.topic, group: d.group, offset: d.offset, token });
  }

  nack(d: Delivery, delayMs = 0): DriverOutput {
    return this.run({ t: 'nack', rid: this.rid(), topic: d.topic, group: d.group, offset: d.offset, token: d.token, delayMs });
  }

  extend(d: Delivery): DriverOutput {
    return this.run({ t: 'extend', rid: this.rid(), topic: d.topic, group: d.group, offset: d.offset, token: d.token });
  }

  release(topic: string, group: string, consumer: string): DriverOutput {
    return this.run({ t: 'release', rid: this.rid(), topic, group, consumer });
  }

  /** Moves entry time to `atMs` with a time tick entry and returns its events. */
  tick(atMs: number): DriverOutput {
    this.nowMs = atMs;
    return this.entry('tick', new EntryBuilder().build(atMs));
  }

  /** The replicated state (session table and queue) as snapshot bytes. */
  snapshot(): Uint8Array {
    return imageBytes(this.applier.snapshot());
  }

  /** Replaces the replicated state with `other`'s, as a member installing its snapshot would. */
  restoreFrom(other: QueueDriver): void {
    this.applier.restore(other.snapshot(), other.appliedIndex);
    this.nowMs = other.nowMs;
    this.ridSeq = other.ridSeq;
    for (const [rid, seq] of other.seqs) this.seqs.set(rid, seq);
  }
}

export function valueOf<T>(result: ApplyResult): T {
  if (!result.ok) throw new Error(`expected ok, got ${result.code}: ${result.message}`);
  return result.value as T;
}

/** Hex of bytes: snapshots compare by content whatever their Buffer/Uint8Array class. */
export function hex(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.length).toString('hex');
}

/** Payload texts of messages, for compact assertions. */
export function texts(messages: readonly { payload: Uint8Array }[]): string[] {
  return messages.map((m) => text(m.payload));
}

/**
 * The queue state of a queue snapshot without its dedup table, as comparable text: a rejected
 * command changes nothing in the queue.
 */
export function queueState(data: Uint8Array): string {
  const { header, body } = snapshotParts(data);
  const { dedup: _dedup, ...rest } = header;
  return JSON.stringify(rest, (_k, v: unknown) => (v instanceof Uint8Array ? hex(v) : v)) + hex(body);
}

/** A queue snapshot's msgpack header and the bytes after it (message columns and payloads). */
export function snapshotParts(data: Uint8Array): { header: Record<string, unknown>; body: Uint8Array } {
  const headerBytes = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(4, true);
  const header = new Unpackr(QUEUE_PACKR_OPTIONS).unpack(data.subarray(8, 8 + headerBytes)) as Record<string, unknown>;
  return { header, body: data.subarray((8 + headerBytes + 7) & ~7) };
}

/** A queue snapshot with its header replaced (the body kept as is). */
export function withSnapshotHeader(data: Uint8Array, header: Record<string, unknown>, version = data[0] as number): Uint8Array {
  const packed = new Packr(QUEUE_PACKR_OPTIONS).pack(header);
  const prefix = new Uint8Array((8 + packed.length + 7) & ~7);
  prefix[0] = version;
  new DataView(prefix.buffer).setUint32(4, packed.length, true);
  prefix.set(packed, 8);
  const { body } = snapshotParts(data);
  const out = new Uint8Array(prefix.length + body.length);
  out.set(prefix);
  out.set(body, prefix.length);
  return out;
}
