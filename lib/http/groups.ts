/**
 * Subscriber groups over the HTTP gateway: `POST /groups/<group>/<topic>/fetch`, `.../ack` and
 * `.../nack`, built on the public `queue.messages()` iterator.
 *
 * For each (group, topic, consumer options) the gateway keeps one library consumer (an async
 * iterator, which claims up to `maxInFlight` deliveries ahead) and hands its deliveries to HTTP
 * clients under gateway-made ids; an ack or nack names those ids and must go to the member that
 * handed them out. Deliveries claimed but not yet fetched are kept alive with `extend()`; handed
 * out ones that are not settled within `ackTimeoutMs` are forgotten (the queue redelivers them);
 * a consumer nobody fetched from for 2 x `ackTimeoutMs` (at least 1 s) is closed, which returns
 * its unfetched deliveries to the group without counting a failed attempt.
 *
 * Fetch is answered by the leader only (like the course's queue routes: a follower refuses with
 * `{"success": false, "leader": ...}`), or by any member whose gateway forwards; ack and nack by
 * the member that holds the ids.
 */
import { randomUUID } from 'node:crypto';
import { RaftQueueError } from '../contracts/errors.js';
import type { Delivery } from '../events.js';
import { jsonMessage } from './messages.js';
import { isMember } from './queue-kind.js';
import type { GatewayQueue } from './queue-kind.js';

type Json = Record<string, unknown>;

/** A gateway answer (the same shape gateway.ts sends). */
export interface GroupReply {
  readonly status: number;
  readonly body: Json | string;
}

/** What the gateway lends the group routes. */
export interface GroupRoutesContext {
  /** The queue when this member leads; otherwise the refusal (with a leader hint when known). */
  leaderQueue(): GatewayQueue | GroupReply;
}

/** Bounds of the fetch body's fields. */
export const GROUP_LIMITS = {
  maxMax: 1_000,
  waitMsMax: 30_000,
  idsMax: 1_000,
  consumersMax: 64,
  tombstonesMax: 100_000,
} as const;

const FETCH_DEFAULTS = { max: 10, waitMs: 0, ackTimeoutMs: 30_000, maxInFlight: 16, maxDeliveries: 5 } as const;

/** How often deliveries are kept alive, expired and idle consumers closed. */
const SWEEP_MS = 100;
/** Extra time after ackTimeoutMs before a handed-out delivery is forgotten. */
const EXPIRY_GRACE_MS = 1_000;

interface ConsumerOptions {
  readonly ackTimeoutMs: number;
  readonly maxInFlight: number;
  readonly maxDeliveries: number;
}

/** A delivery claimed by a consumer, waiting to be fetched. */
interface Held {
  readonly delivery: Delivery;
  /** Local time from which its ack deadline (ackTimeoutMs) runs: when received or last extended. */
  validFrom: number;
  extending: boolean;
}

/** A delivery handed to an HTTP client under `id`. */
interface Outstanding {
  readonly delivery: Delivery;
  readonly consumer: GroupConsumer;
  readonly expiresAt: number;
}

class GroupConsumer {
  readonly ready: Held[] = [];
  private readonly iterator: AsyncIterableIterator<Delivery>;
  private waiters: (() => void)[] = [];
  outstanding = 0;
  activeFetches = 0;
  lastUsed = Date.now();
  ended = false;

  constructor(
    readonly key: string,
    queue: GatewayQueue,
    readonly topic: string,
    readonly group: string,
    readonly options: ConsumerOptions,
  ) {
    this.iterator = queue.messages(topic, { group, ...options });
    void this.pump();
  }

  private async pump(): Promise<void> {
    for (;;) {
      let r: IteratorResult<Delivery>;
      try {
        r = await this.iterator.next();
      } catch (error) {
        // The iterator never rejects today; if it did, end this consumer (a new one replaces it).
        void error;
        r = { done: true, value: undefined };
      }
      if (r.done) {
        this.end();
        return;
      }
      // Closed meanwhile: the iterator's `return()` releases every delivery this consumer holds.
      if (this.ended) return;
      this.ready.push({ delivery: r.value, validFrom: Date.now(), extending: false });
      this.wake();
    }
  }

  wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when something may have changed, or after `ms`. */
  waitChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.waiters.push(done);
    });
  }

  /** Takes up to `max` deliveries with at least half their ack time left. */
  take(max: number, now: number): Held[] {
    const out: Held[] = [];
    for (let i = 0; i < this.ready.length && out.length < max; ) {
      const h = this.ready[i] as Held;
      if (!h.extending && now - h.validFrom < this.options.ackTimeoutMs / 2) {
        this.ready.splice(i, 1);
        out.push(h);
      } else i++;
    }
    return out;
  }

  /** Keeps unfetched deliveries alive; drops (and releases) those that expired. */
  refresh(now: number): void {
    const ack = this.options.ackTimeoutMs;
    for (const h of [...this.ready]) {
      if (h.extending) continue;
      const age = now - h.validFrom;
      if (age >= ack) {
        this.drop(h);
        continue;
      }
      if (age < ack / 3) continue;
      h.extending = true;
      const issued = Date.now();
      h.delivery.extend().then(
        () => {
          h.extending = false;
          h.validFrom = issued;
          this.wake();
        },
        (error: unknown) => {
          h.extending = false;
          if (error instanceof RaftQueueError && error.code === 'STALE_DELIVERY') this.drop(h);
          // Otherwise (TIMEOUT, NO_LEADER): the next sweep tries again, or drops it once expired.
        },
      );
    }
  }

  /** Forgets a held delivery; nack releases its credit (usually rejected: it already expired). */
  private drop(h: Held): void {
    const i = this.ready.indexOf(h);
    if (i >= 0) this.ready.splice(i, 1);
    h.delivery.nack().catch(ignore);
  }

  /** Stops claiming; unfetched deliveries return to the group (not counted as failed attempts). */
  close(): void {
    if (this.ended) return;
    this.end();
    this.ready.length = 0;
    this.iterator.return?.().catch(ignore);
  }

  private end(): void {
    this.ended = true;
    this.wake();
  }
}

/** The `/groups/...` routes of one gateway. */
export class GatewayGroups {
  private readonly consumers = new Map<string, GroupConsumer>();
  private readonly outstanding = new Map<string, Outstanding>();
  /** Ids settled or expired recently: settling them again is a per-id failure, not a 400. */
  private readonly tombstones = new Map<string, string>();
  private readonly idPrefix = randomUUID().slice(0, 8);
  private idSeq = 0;
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly ctx: GroupRoutesContext) {}

  /**
   * Answers `method path` when `path` is under `/groups/`; `undefined` otherwise. `readBody`
   * reads the JSON object body (rejecting with the gateway's 400/413 errors).
   */
  route(method: string, path: string, readBody: () => Promise<Json>): Promise<GroupReply> | undefined {
    if (!path.startsWith('/groups/')) return undefined;
    return this.dispatch(method, path, readBody);
  }

  /** Stops every consumer (their unfetched deliveries go back to the group) and the sweeper. */
  close(): void {
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const c of this.consumers.values()) c.close();
    this.consumers.clear();
  }

  private async dispatch(method: string, path: string, readBody: () => Promise<Json>): Promise<GroupReply> {
    const parts = path.slice('/groups/'.length).split('/');
    if (parts.length !== 3 || !['fetch', 'ack', 'nack'].includes(parts[2] as string)) {
      return { status: 404, body: { success: false, error: `no route ${method} ${path} (expected /groups/<group>/<topic>/fetch|ack|nack)` } };
    }
    if (method !== 'POST') return { status: 405, body: { success: false, error: 'method not allowed (allowed: POST)' } };
    const group = decodePart(parts[0] as string, 'group');
    const topic = decodePart(parts[1] as string, 'topic');
    if (typeof group !== 'string') return group;
    if (typeof topic !== 'string') return topic;
    const body = await readBody();
    const { validateTopicName } = await import('../queue/index.js');
    const badGroup = validateTopicName(group);
    if (badGroup !== undefined) return badRequest(`invalid group ${JSON.stringify(group)}: ${badGroup.replace('topic name', 'group name')}`);
    const badTopic = validateTopicName(topic);
    if (badTopic !== undefined) return badRequest(`invalid topic ${JSON.stringify(topic)}: ${badTopic}`);
    if (parts[2] === 'fetch') return this.fetch(group, topic, body);
    return this.settle(parts[2] as 'ack' | 'nack', group, topic, body);
  }

  private async fetch(group: string, topic: string, body: Json): Promise<GroupReply> {
    const unknown = Object.keys(body).filter((k) => !(k in FETCH_DEFAULTS));
    if (unknown.length > 0) return badRequest(`unknown field "${unknown[0] as string}" (fields: ${Object.keys(FETCH_DEFAULTS).join(', ')})`);
    const fields = {
      max: intField(body, 'max', FETCH_DEFAULTS.max, 1, GROUP_LIMITS.maxMax),
      waitMs: intField(body, 'waitMs', FETCH_DEFAULTS.waitMs, 0, GROUP_LIMITS.waitMsMax),
      ackTimeoutMs: intField(body, 'ackTimeoutMs', FETCH_DEFAULTS.ackTimeoutMs, 10, 86_400_000),
      maxInFlight: intField(body, 'maxInFlight', FETCH_DEFAULTS.maxInFlight, 1, 10_000),
      maxDeliveries: intField(body, 'maxDeliveries', FETCH_DEFAULTS.maxDeliveries, 1, 1_000),
    };
    for (const v of Object.values(fields)) if (typeof v === 'string') return badRequest(v);
    const { max, waitMs, ackTimeoutMs, maxInFlight, maxDeliveries } = fields as Record<keyof typeof fields, number>;
    const queue = this.ctx.leaderQueue();
    if (!('messages' in queue)) return queue;
    if (this.closed) return { status: 503, body: { success: false, error: 'CLOSED: the gateway is closing' } };
    const exists = isMember(queue) ? queue.metrics().topics.some((t) => t.topic === topic) : (await queue.topics()).includes(topic);
    if (!exists) return { status: 200, body: { success: false, error: `TOPIC_NOT_FOUND: no topic ${JSON.stringify(topic)}` } };
    const options: ConsumerOptions = { ackTimeoutMs, maxInFlight, maxDeliveries };
    const key = JSON.stringify([group, topic, ackTimeoutMs, maxInFlight, maxDeliveries]);
    let consumer = this.consumers.get(key);
    if (consumer === undefined || consumer.ended) {
      if (consumer === undefined && this.consumers.size >= GROUP_LIMITS.consumersMax) {
        return { status: 503, body: { success: false, error: `too many open consumers on this member (${GROUP_LIMITS.consumersMax}); retry later` } };
      }
      consumer = new GroupConsumer(key, queue, topic, group, options);
      this.consumers.set(key, consumer);
      this.startSweeper();
    }
    const taken = await this.collect(consumer, max, waitMs);
    const messages = taken.map((h) => {
      const id = `${this.idPrefix}-${++this.idSeq}`;
      this.outstanding.set(id, { delivery: h.delivery, consumer: consumer as GroupConsumer, expiresAt: h.validFrom + ackTimeoutMs + EXPIRY_GRACE_MS });
      (consumer as GroupConsumer).outstanding++;
      return { id, offset: h.delivery.offset, ...jsonMessage(h.delivery.payload), attempt: h.delivery.deliveryCount };
    });
    return { status: 200, body: { success: true, messages } };
  }

  /** Waits up to `waitMs` for at least one delivery; returns at most `max`. */
  private async collect(c: GroupConsumer, max: number, waitMs: number): Promise<Held[]> {
    c.activeFetches++;
    try {
      const deadline = Date.now() + waitMs;
      for (;;) {
        c.lastUsed = Date.now();
        const taken = c.take(max, Date.now());
        const left = deadline - Date.now();
        if (taken.length > 0 || left <= 0 || c.ended || this.closed) return taken;
        // Re-check at least every SWEEP_MS: a held delivery may become fetchable after an extend.
        await c.waitChange(Math.min(left, SWEEP_MS));
        // One claim's deliveries arrive one by one within a turn: let the whole batch in.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      c.activeFetches--;
      c.lastUsed = Date.now();
    }
  }

  private async settle(kind: 'ack' | 'nack', group: string, topic: string, body: Json): Promise<GroupReply> {
    const allowed = kind === 'ack' ? ['ids'] : ['ids', 'delayMs'];
    const extra = Object.keys(body).filter((k) => !allowed.includes(k));
    if (extra.length > 0) return badRequest(`unknown field "${extra[0] as string}" (fields: ${allowed.join(', ')})`);
    const ids = body['ids'];
    if (ids === undefined) return badRequest('missing field "ids"');
    if (!Array.isArray(ids) || ids.length === 0 || ids.length > GROUP_LIMITS.idsMax || !ids.every((id) => typeof id === 'string')) {
      return badRequest(`field "ids" must be an array of 1 to ${GROUP_LIMITS.idsMax} strings`);
    }
    if (new Set(ids).size !== ids.length) return badRequest('field "ids" names an id twice');
    const delayMs = kind === 'nack' ? intField(body, 'delayMs', 0, 0, 86_400_000) : 0;
    if (typeof delayMs === 'string') return badRequest(delayMs);
    for (const id of ids as string[]) {
      const o = this.outstanding.get(id);
      if (o === undefined && !this.tombstones.has(id)) return badRequest(`unknown id ${JSON.stringify(id)} (ids are valid on the member that handed them out)`);
      if (o !== undefined && (o.consumer.group !== group || o.consumer.topic !== topic)) {
        return badRequest(`id ${JSON.stringify(id)} is a delivery of ${o.consumer.group}/${o.consumer.topic}, not ${group}/${topic}`);
      }
    }
    const results = await Promise.all(
      (ids as string[]).map(async (id): Promise<{ id: string; error?: string }> => {
        const o = this.outstanding.get(id);
        if (o === undefined) return { id, error: `STALE_DELIVERY: ${this.tombstones.get(id) ?? 'already settled'}` };
        this.forget(id, o, 'already settled');
        try {
          await (kind === 'ack' ? o.delivery.ack() : o.delivery.nack({ delayMs }));
          return { id };
        } catch (error) {
          if (error instanceof RaftQueueError) return { id, error: `${error.code}: ${error.message}` };
          return { id, error: error instanceof Error ? error.message : String(error) };
        }
      }),
    );
    const failed = results.filter((r) => r.error !== undefined).map((r) => ({ id: r.id, error: r.error as string }));
    return { status: 200, body: { success: failed.length === 0, settled: results.filter((r) => r.error === undefined).map((r) => r.id), failed } };
  }

  /** Removes a handed-out delivery from the table, remembering its id. */
  private forget(id: string, o: Outstanding, why: string): void {
    this.outstanding.delete(id);
    o.consumer.outstanding--;
    this.tombstones.set(id, why);
    if (this.tombstones.size > GROUP_LIMITS.tombstonesMax) {
      const oldest = this.tombstones.keys().next();
      if (!oldest.done) this.tombstones.delete(oldest.value);
    }
  }

  private startSweeper(): void {
    if (this.sweeper !== undefined) return;
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, o] of this.outstanding) {
      if (now < o.expiresAt) continue;
      this.forget(id, o, 'expired (not settled within ackTimeoutMs)');
      // The queue redelivers it; nack only releases the consumer's credit (it is usually stale).
      o.delivery.nack().catch(ignore);
    }
    for (const [key, c] of this.consumers) {
      if (c.ended) {
        if (c.outstanding === 0) this.consumers.delete(key);
        continue;
      }
      c.refresh(now);
      const idleMs = Math.max(1_000, 2 * c.options.ackTimeoutMs);
      if (c.activeFetches === 0 && c.outstanding === 0 && now - c.lastUsed > idleMs) {
        c.close();
        this.consumers.delete(key);
      }
    }
    if (this.consumers.size === 0 && this.outstanding.size === 0 && this.sweeper !== undefined) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  /** For tests: open consumers and handed-out deliveries. */
  get stats(): { consumers: number; outstanding: number } {
    return { consumers: this.consumers.size, outstanding: this.outstanding.size };
  }
}

function ignore(): void {
  // Settling a delivery that already expired rejects with STALE_DELIVERY: nothing to do.
}

function badRequest(error: string): GroupReply {
  return { status: 400, body: { success: false, error } };
}

function decodePart(raw: string, what: string): string | GroupReply {
  let v: string;
  try {
    v = decodeURIComponent(raw);
  } catch (error) {
    return badRequest(`malformed ${what} in path: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (v.length === 0) return badRequest(`missing ${what} in path`);
  return v;
}

/** An optional integer field within [min, max]: its value, the default, or an error message. */
function intField(body: Json, name: string, dflt: number, min: number, max: number): number | string {
  const v = body[name];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) return `field "${name}" must be an integer from ${min} to ${max}`;
  return v;
}
