import { Unpackr } from 'msgpackr';
import { QUEUE_PACKR_OPTIONS } from '../../lib/queue/index.js';
/**
 * A small driver for queue state machine tests: encodes commands as entries with consecutive
 * indexes and an explicit entry time, and unwraps results.
 */
import { EntryType } from '../../lib/core/types.js';
import {
  QueueStateMachine,
  encodeCommand,
  type ApplyOutput,
  type ApplyResult,
  type Command,
  type Delivery,
  type QueueStateMachineOptions,
  type StoredMessage,
  type TopicOptions,
} from '../../lib/queue/index.js';

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
export const text = (payload: Uint8Array): string => new TextDecoder().decode(payload);

export interface ClaimOptions {
  max?: number;
  ackTimeoutMs?: number;
  maxDeliveries?: number;
}

export class QueueDriver {
  readonly sm: QueueStateMachine;
  /** Entry time of the next command (tests move it explicitly). */
  nowMs = 1_000;
  /** Counter behind rid(); copy it to make another driver issue the same request ids. */
  ridSeq = 0;

  constructor(options: QueueStateMachineOptions = {}) {
    this.sm = new QueueStateMachine(options);
  }

  /** Applies one command at `atMs` (default nowMs) as the next entry. */
  run(command: Command, atMs: number = this.nowMs): ApplyOutput {
    return this.sm.apply({ index: this.sm.appliedIndex + 1, term: 1, type: EntryType.Normal, data: encodeCommand(command, atMs) });
  }

  /** Applies raw entry data. */
  raw(data: Uint8Array, type: EntryType = EntryType.Normal): ApplyOutput {
    return this.sm.apply({ index: this.sm.appliedIndex + 1, term: 1, type, data });
  }

  rid(): string {
    return `rid-${++this.ridSeq}`;
  }

  /** The value of a successful result; throws with the error otherwise. */
  value<T>(output: ApplyOutput): T {
    return valueOf<T>(output.result);
  }

  createTopic(topic: string, opts?: TopicOptions): boolean {
    return this.value(this.run(opts === undefined ? { t: 'createTopic', rid: this.rid(), topic } : { t: 'createTopic', rid: this.rid(), topic, opts }));
  }

  publish(topic: string, payload: string, publishId?: string): ApplyOutput {
    const command: Command =
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

  claimOutput(topic: string, group: string, consumer: string, options: ClaimOptions = {}): ApplyOutput {
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

  ack(d: Delivery, token: number = d.token): ApplyOutput {
    return this.run({ t: 'ack', rid: this.rid(), topic: d.topic, group: d.group, offset: d.offset, token });
  }

  nack(d: Delivery, delayMs = 0): ApplyOutput {
    return this.run({ t: 'nack', rid: this.rid(), topic: d.topic, group: d.group, offset: d.offset, token: d.token, delayMs });
  }

  extend(d: Delivery): ApplyOutput {
    return this.run({ t: 'extend', rid: this.rid(), topic: d.topic, group: d.group, offset: d.offset, token: d.token });
  }

  release(topic: string, group: string, consumer: string): ApplyOutput {
    return this.run({ t: 'release', rid: this.rid(), topic, group, consumer });
  }

  /** Moves entry time to `atMs` with a tick and returns its events. */
  tick(atMs: number): ApplyOutput {
    this.nowMs = atMs;
    return this.run({ t: 'tick' });
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
 * The queue state of a snapshot without its dedup table, as comparable text: a rejected
 * command changes nothing in the queue, though its request id is remembered (for retries).
 */
export function queueState(data: Uint8Array): string {
  const { dedup: _dedup, ...rest } = new Unpackr(QUEUE_PACKR_OPTIONS).unpack(data) as Record<string, unknown>;
  return JSON.stringify(rest, (_k, v: unknown) => (v instanceof Uint8Array ? hex(v) : v));
}
