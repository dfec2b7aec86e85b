/**
 * Subscriptions: pull-based, credit-bounded delivery of a consumer group's messages to a
 * handler or an async iterator, and the batching of acknowledgements.
 *
 * A subscriber claims up to its free credit (`maxInFlight`) with one `claim` command, runs the
 * handler for each delivery, and acks or nacks. When a claim comes back empty it waits for a
 * local `published`/`available` event (every member applies every entry, so every member knows
 * when a topic has new messages), with a 1 s poll as a safety net.
 */
import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import type { MessagesOptions, NackOptions, SubscribeOptions, Subscription } from './api-types.js';
import { messagesOptionsSchema, nackOptionsSchema, parseOptions, subscribeOptionsSchema } from './call-options.js';
import { RaftQueueError } from './contracts/errors.js';
import type { Delivery, QueueMessage } from './events.js';
import { decodePayload } from './payload.js';
import type { Command, Delivery as StoredDelivery, StoredMessage } from './queue/index.js';

export { payloadPackr } from './payload.js';

/** What subscriptions need from the facade. */
export interface SubscriptionHost {
  /** The member id (consumer ids start with it). */
  readonly id: string;
  readonly running: boolean;
  /** Submits a command; resolves with its value or rejects with its error code. */
  run(command: Command, timeoutMs?: number): Promise<unknown>;
  removeSubscription(sub: SubscriptionImpl): void;
  log(line: string): void;
  /** Payload bytes one claim may return (a client's connection bounds its frames); none: any. */
  readonly claimBytesMax?: number;
  /** How often an idle subscription claims again without a wake-up (default 1 s). */
  readonly idlePollMs?: number;
}

export interface ResolvedSubscribe {
  readonly group: string;
  readonly maxInFlight: number;
  readonly ackTimeoutMs: number;
  readonly maxDeliveries: number;
  readonly nackDelayMs: number;
}

/**
 * The options of `subscribe` or `messages` (which has no nackDelayMs), defaults filled in;
 * throws RaftQueueError('INVALID_OPTIONS') naming an unknown or bad option.
 */
export function resolveSubscribe(options: SubscribeOptions | MessagesOptions | undefined, call: 'subscribe' | 'messages'): ResolvedSubscribe {
  const o: z.output<typeof subscribeOptionsSchema> = call === 'subscribe' ? parseOptions(subscribeOptionsSchema, options, call) : parseOptions(messagesOptionsSchema, options, call);
  return {
    group: o.group ?? 'default',
    maxInFlight: o.maxInFlight ?? 16,
    ackTimeoutMs: o.ackTimeoutMs ?? 30_000,
    maxDeliveries: o.maxDeliveries ?? 5,
    nackDelayMs: o.nackDelayMs ?? 0,
  };
}

export interface SubscriptionHooks {
  onDelivery(delivery: StoredDelivery): void;
  onClose?(): void;
}

/** How often an idle subscription asks again even without a wake-up (a safety net). */
const IDLE_POLL_MS = 1_000;

export class SubscriptionImpl implements Subscription {
  readonly group: string;
  private readonly consumer: string;
  private inFlight = 0;
  /** Acks and nacks submitted and not yet committed (or failed). */
  private settling = 0;
  private claiming = false;
  /** Credit was freed this turn and a claim waits for the acks to be sent (AckBatcher.flush). */
  private pullAfterAcks = false;
  private again = false;
  private closed = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly drained: (() => void)[] = [];

  constructor(
    private readonly host: SubscriptionHost,
    readonly topic: string,
    readonly options: ResolvedSubscribe,
    private readonly hooks: SubscriptionHooks,
  ) {
    this.group = options.group;
    this.consumer = `${host.id}.${randomUUID()}`;
  }

  start(): void {
    this.pull();
  }

  /** Claims with the credit free now (after a turn's acks were sent). */
  pullNow(): void {
    this.pullAfterAcks = false;
    this.pull();
  }

  /** New messages may be claimable. */
  wake(topic: string): void {
    if (topic === this.topic) this.pull();
  }

  /**
   * The handler is done with a delivery and its ack or nack is submitted: its credit is free
   * again at once, so the next claim travels with that ack (often in the same log entry)
   * instead of one round trip after it. `settled` ends the settlement; `close` waits for both.
   * (Credit freed only once the ack committed cost every subscriber two round trips per batch
   * of `maxInFlight` deliveries.)
   */
  release(scheduler: SettleScheduler): () => void {
    this.inFlight--;
    this.settling++;
    // Claims once every delivery settled in this turn is counted, right after this turn's acks
    // are sent (one claim for all the freed credit, not a claim of 1 first; the acks and that
    // claim are proposed in one task, so they share a log entry).
    this.pullAfterAcks = true;
    scheduler.pullAfterAcks(this);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.settling--;
      this.checkDrained();
    };
  }

  private checkDrained(): void {
    if (this.inFlight === 0 && this.settling === 0) for (const d of this.drained.splice(0)) d();
  }

  private pull(): void {
    if (this.closed || !this.host.running) return;
    if (this.claiming) {
      this.again = true;
      return;
    }
    const credit = this.options.maxInFlight - this.inFlight;
    if (credit <= 0) return;
    this.claiming = true;
    this.again = false;
    const cmd: Command = {
      t: 'claim',
      topic: this.topic,
      group: this.group,
      consumer: this.consumer,
      max: credit,
      ackTimeoutMs: this.options.ackTimeoutMs,
      maxDeliveries: this.options.maxDeliveries,
      ...(this.host.claimBytesMax !== undefined ? { maxBytes: this.host.claimBytesMax } : {}),
    };
    this.host.run(cmd).then(
      (value) => {
        this.claiming = false;
        const deliveries = value as StoredDelivery[];
        if (this.closed) {
          // Claimed while closing: give them straight back.
          if (deliveries.length > 0) void this.releaseAll();
          return;
        }
        for (const d of deliveries) {
          this.inFlight++;
          this.hooks.onDelivery(d);
        }
        // Credit freed by handlers that settled at once is claimed with their acks, after the
        // turn (pullAfterAcks), so that the acks and the claim share a log entry.
        if (this.pullAfterAcks) return;
        if (deliveries.length > 0 || this.again) this.pull();
        else this.idle();
      },
      (error: unknown) => {
        this.claiming = false;
        if (this.closed) return;
        // TOPIC_NOT_FOUND, NO_LEADER, TIMEOUT...: keep trying at a gentle pace.
        this.idle(error instanceof RaftQueueError && error.code === 'TOPIC_NOT_FOUND' ? (this.host.idlePollMs ?? IDLE_POLL_MS) : 100);
      },
    );
  }

  private idle(delayMs = this.host.idlePollMs ?? IDLE_POLL_MS): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      this.pull();
    }, delayMs);
    this.idleTimer.unref();
  }

  /** Subscription.unsubscribe: running handlers get up to 5 s to finish. */
  unsubscribe(): Promise<void> {
    return this.close(5_000);
  }

  /** Stops pulling, waits up to `drainMs` for running handlers, and returns unsettled deliveries. */
  async close(drainMs: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.hooks.onClose?.();
    if (this.inFlight > 0 || this.settling > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, drainMs);
        this.drained.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    await this.releaseAll();
    this.host.removeSubscription(this);
  }

  /** The node stopped: no more pulls, nothing to release (deliveries expire on the leader). */
  abort(): void {
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.hooks.onClose?.();
  }

  private async releaseAll(): Promise<void> {
    if (!this.host.running) return;
    try {
      await this.host.run({ t: 'release', topic: this.topic, group: this.group, consumer: this.consumer }, 2_000);
    } catch (error) {
      // Unsettled deliveries still return after ackTimeoutMs; nothing is lost.
      if (!(error instanceof RaftQueueError)) throw error;
    }
  }
}

// -----------------------------------------------------------------------------------------------
// Acknowledgements: every ack of one topic and group made in one event-loop turn is one entry

/** Most acks sent in one `ackMany` command (the rest go in the next). */
const ACK_BATCH_MAX = 1_000;

interface AckBatch {
  /** topic NUL group: the batches' key. */
  readonly key: string;
  readonly topic: string;
  readonly group: string;
  readonly refs: number[];
  readonly waiters: ((outcome: true | RaftQueueError) => void)[];
}

/** Where a subscription whose credit was freed asks to claim again: after the turn's acks. */
export interface SettleScheduler {
  pullAfterAcks(sub: SubscriptionImpl): void;
}

export class AckBatcher implements SettleScheduler {
  private readonly batches = new Map<string, AckBatch>();
  /** The batch the last ack went to (checked against `batches` before reuse). */
  private last: AckBatch | undefined;
  /** Subscriptions to claim again once this turn's acks are sent. */
  private readonly pulls = new Set<SubscriptionImpl>();
  private flushScheduled = false;

  pullAfterAcks(sub: SubscriptionImpl): void {
    this.pulls.add(sub);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flush);
  }

  /**
   * At the end of the turn: every ack of a topic and group made in it becomes one command, and
   * the subscriptions whose credit they freed claim right after, in the same task, so the acks
   * and the claims are proposed together and share a log entry. (Handlers that finish in
   * different I/O callbacks of one turn still share one ackMany.)
   */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    const batches = [...this.batches.values()];
    this.batches.clear();
    for (const b of batches) this.send(b);
    if (this.pulls.size === 0) return;
    const subs = [...this.pulls];
    this.pulls.clear();
    for (const sub of subs) sub.pullNow();
  };

  constructor(private readonly host: Pick<SubscriptionHost, 'run'>) {}

  /**
   * Acknowledges `d` together with every other ack of its topic and group made in this
   * event-loop turn: one `ackMany` log entry instead of one entry each. Rejects with
   * STALE_DELIVERY when the delivery had expired, like a single ack.
   */
  ack(d: StoredDelivery): Promise<void> {
    return new Promise((resolve, reject) => this.ackThen(d, (outcome) => (outcome === true ? resolve() : reject(outcome))));
  }

  /** `ack` with a callback instead of a promise (a subscription's handler path: one per message). */
  ackThen(d: StoredDelivery, cb: (outcome: true | RaftQueueError) => void): void {
    // Consecutive acks are mostly of one topic and group: no key string built and hashed each.
    let batch = this.last;
    if (batch === undefined || batch.topic !== d.topic || batch.group !== d.group || this.batches.get(batch.key) !== batch) {
      const key = `${d.topic}\u0000${d.group}`;
      batch = this.batches.get(key);
      if (batch === undefined) {
        batch = { key, topic: d.topic, group: d.group, refs: [], waiters: [] };
        this.batches.set(key, batch);
      }
      this.last = batch;
    }
    batch.refs.push(d.offset, d.token);
    batch.waiters.push(cb);
    if (batch.waiters.length >= ACK_BATCH_MAX) {
      this.batches.delete(batch.key);
      this.send(batch);
    } else {
      this.scheduleFlush();
    }
  }

  private send(b: AckBatch): void {
    const stale = (i: number): RaftQueueError =>
      new RaftQueueError('STALE_DELIVERY', `no delivery of ${b.topic}/${b.group}@${b.refs[2 * i]} with token ${b.refs[2 * i + 1]} is pending`);
    if (b.waiters.length === 1) {
      const [offset, token] = b.refs as [number, number];
      this.host.run({ t: 'ack', topic: b.topic, group: b.group, offset, token }).then(
        () => b.waiters[0]?.(true),
        (error: unknown) => b.waiters[0]?.(error instanceof RaftQueueError ? error : stale(0)),
      );
      return;
    }
    this.host.run({ t: 'ackMany', topic: b.topic, group: b.group, refs: b.refs }).then(
      (value) => {
        const settled = value as boolean[];
        b.waiters.forEach((w, i) => w(settled[i] === true ? true : stale(i)));
      },
      (error: unknown) => {
        const e = error instanceof RaftQueueError ? error : new RaftQueueError('CLOSED', String(error));
        for (const w of b.waiters) w(e);
      },
    );
  }
}

// -----------------------------------------------------------------------------------------------
// Messages as applications see them

export function toMessage<T>(m: StoredMessage, group: string): QueueMessage<T> {
  const message: { -readonly [K in keyof QueueMessage<T>]: QueueMessage<T>[K] } = {
    topic: m.topic,
    offset: m.offset,
    payload: decodePayload(m.payload) as T,
    publishedAt: m.publishedAt,
    deliveryCount: m.deliveryCount,
    group,
  };
  // Only messages published with options (or dead letters) carry these. Copies: on a member the
  // stored message shares these objects with the replicated state, which the app must not reach.
  if (m.headers !== undefined) message.headers = { ...m.headers };
  if (m.key !== undefined) message.key = m.key;
  if (m.priority !== undefined) message.priority = m.priority;
  if (m.deadLetter !== undefined) message.deadLetter = { ...m.deadLetter };
  return message;
}

/** A delivery for `messages()`: settle it once with ack, nack or extend. */
export function toDelivery<T>(host: SubscriptionHost, acks: AckBatcher, sub: SubscriptionImpl, d: StoredDelivery): Delivery<T> {
  const base = toMessage<T>(d, d.group);
  let settled = false;
  const staleError = (): RaftQueueError => new RaftQueueError('STALE_DELIVERY', `delivery of ${d.topic}@${d.offset} was already settled`);
  const settle = async (cmd: Command): Promise<void> => {
    if (settled) throw staleError();
    settled = cmd.t !== 'extend' ? true : settled;
    const done = cmd.t !== 'extend' ? sub.release(acks) : undefined;
    try {
      await host.run(cmd);
    } finally {
      done?.();
    }
  };
  return {
    ...base,
    ack: async () => {
      if (settled) throw staleError();
      settled = true;
      const pending = acks.ack(d);
      const done = sub.release(acks);
      try {
        await pending;
      } finally {
        done();
      }
    },
    nack: async (options?: NackOptions) => {
      // Checked before anything is settled: a bad delay leaves the delivery held, to settle again.
      const o = parseOptions(nackOptionsSchema, options, 'nack');
      await settle({ t: 'nack', topic: d.topic, group: d.group, offset: d.offset, token: d.token, delayMs: o.delayMs ?? 0 });
    },
    extend: async () => {
      if (settled) throw staleError();
      await host.run({ t: 'extend', topic: d.topic, group: d.group, offset: d.offset, token: d.token });
    },
  };
}

/** Runs a `subscribe` handler on a delivery: resolved acks (batched), thrown nacks. */
export function runHandler<T>(host: SubscriptionHost, acks: AckBatcher, sub: SubscriptionImpl, handler: (m: QueueMessage<T>) => unknown, d: StoredDelivery): void {
  let result: unknown;
  try {
    // Inside the try: a payload that does not decode (stored before publishes were checked) is
    // nacked like a failed handler, and ends in the dead-letter topic, instead of escaping.
    result = handler(toMessage<T>(d, d.group));
  } catch (error) {
    settleDelivery(host, acks, sub, d, error);
    return;
  }
  // A handler that returns no promise is settled at once: no promise or microtask per message.
  if (result !== null && (typeof result === 'object' || typeof result === 'function') && typeof (result as PromiseLike<unknown>).then === 'function') {
    Promise.resolve(result as PromiseLike<unknown>).then(
      () => settleDelivery(host, acks, sub, d, undefined),
      (error: unknown) => settleDelivery(host, acks, sub, d, error ?? new Error(String(error))),
    );
    return;
  }
  settleDelivery(host, acks, sub, d, undefined);
}

/** Acks `d` (handler done; `error` undefined) or nacks it, and frees its credit. */
function settleDelivery(host: SubscriptionHost, acks: AckBatcher, sub: SubscriptionImpl, d: StoredDelivery, error: unknown): void {
  let done: () => void = () => undefined;
  const settled = (failure: unknown): void => {
    // The delivery expired (STALE_DELIVERY) or the node stopped: the queue redelivers it.
    if (failure !== undefined) host.log(`settling ${d.topic}@${d.offset}: ${failure instanceof Error ? failure.message : String(failure)}`);
    done();
  };
  if (error === undefined) {
    acks.ackThen(d, (outcome) => settled(outcome === true ? undefined : outcome));
  } else {
    host.log(`handler for ${d.topic}@${d.offset} (group ${d.group}) failed: ${error instanceof Error ? error.message : String(error)}`);
    host.run({ t: 'nack', topic: d.topic, group: d.group, offset: d.offset, token: d.token, delayMs: sub.options.nackDelayMs }).then(
      () => settled(undefined),
      (failure: unknown) => settled(failure),
    );
  }
  done = sub.release(acks);
}
