/**
 * QueueStateMachine: the deterministic topic queue every node applies committed entries to.
 *
 * Contract: apply() is a pure function of the entries applied so far. Time is the leader-stamped
 * `at` of each entry, made monotonic; nothing reads a clock or a random source, and iteration
 * never depends on the order of a Map whose order could differ between nodes. apply() never
 * throws on bad input (a rejected command changes nothing); it throws RaftInvariantError only
 * when the state itself is broken, so that the node fail-stops.
 */
import { assert, RaftInvariantError, unreachable } from '../core/assert.js';
import { imageBytes, type ApplyContext, type SnapshotImage, type StateMachine } from '../contracts/state-machine.js';
import { checkMsgpack } from './msgpack-check.js';
import { PEEK_MESSAGES_MAX, PRIORITY_DEFAULT } from '../contracts/limits.js';
import {
  DEAD_LETTER_SUFFIX,
  deadLetterTopicName,
  decodeCommand,
  decodeMessageOptions,
  readPublish,
  type MessageOptions,
  type PublishFields,
  validateTopicName,
  validateTopicOrDeadLetterName,
  type Command,
  type TopicOptions,
} from './commands.js';
import { DedupTable, DEDUP_WINDOW_MAX_DEFAULT, DEDUP_WINDOW_MS_DEFAULT, type DedupRecord } from './dedup.js';
import { MessageTimeHeap, ReadyQueue, TimerHeap, TimerKind } from './heaps.js';
import type { DeadLetterHeader, MessageMeta } from './message-ring.js';
import { decodeSnapshot, snapshotImage, type RestoredState } from './snapshot.js';
import {
  DEFAULT_GROUP,
  GROUPS_PER_TOPIC_MAX,
  MESSAGE_BYTES_MAX_DEFAULT,
  TOPIC_MAX_BYTES_DEFAULT,
  TOPIC_MAX_MESSAGES_DEFAULT,
  TopicState,
  type ApplyErrorCode,
  type ApplyResult,
  type Delivery,
  type GroupState,
  type PendingDelivery,
  type QueueEvent,
  type QueueTimer,
  type StoredMessage,
} from './state.js';

/** Options of a state machine. Every node of a cluster must use the same values. */
export interface QueueStateMachineOptions {
  /** Most remembered request results (default 100,000). */
  dedupWindowMax?: number;
  /** How long a request result is remembered, in entry time (default 10 minutes). */
  dedupWindowMs?: number;
  /** Largest payload for topics that set no limit of their own (default 1 MiB). */
  messageBytesMax?: number;
}

/** A command's result and the events it caused (for tests and tools that apply by hand). */
export interface ApplyOutput {
  readonly result: ApplyResult;
  readonly events: QueueEvent[];
}

/** Read-only questions the node layer passes to `query` (plain data both ways). */
export type QueueQuery =
  | { q: 'topics' }
  | { q: 'depth'; topic: string; group?: string }
  /** Every topic in creation order with its default group's depth. */
  | { q: 'depths' }
  | { q: 'stats' }
  /** Every topic in creation order with its size and each group's backlog (TopicStats). */
  | { q: 'topicStats' }
  /**
   * Up to `limit` messages waiting for `group` (default 'default'), oldest first, without
   * claiming them: not delivered yet, returned, or delayed (not in flight, not finished). Scans
   * at most PEEK_SCAN_SLOTS_MAX offsets from the group's oldest possibly waiting one, so it can
   * list fewer than are waiting when that many finished or in-flight ones lie between.
   */
  | { q: 'peek'; topic: string; group?: string; limit?: number };

/** One group of a topic as `topicStats` reports it. */
export interface GroupStats {
  readonly group: string;
  /** Messages waiting for the group (what a claim could take now or after a nack delay). */
  readonly waiting: number;
  /** Deliveries claimed and not yet settled. */
  readonly inFlight: number;
  /** Messages returned to the group (nack, expiry, release) that wait for another attempt. */
  readonly redeliveries: number;
  /**
   * Entry time (ms) at which the oldest waiting message was published; null when none waits or
   * it lies beyond the first OLDEST_SCAN_SLOTS_MAX slots (holes) after the group's cursor.
   */
  readonly oldestWaitingPublishedAt: number | null;
}

/** One topic as `topicStats` reports it. */
export interface TopicStats {
  readonly topic: string;
  /** Retained messages and their payload bytes. */
  readonly messages: number;
  readonly bytes: number;
  /** Messages ever published to this topic (its next offset). */
  readonly published: number;
  /** For a dead-letter topic (`<name>.dlq` of an existing topic): that topic. */
  readonly deadLetterOf: string | null;
  readonly groups: readonly GroupStats[];
}

/** Slots past a group's cursor that `topicStats` looks at for the oldest waiting message. */
const OLDEST_SCAN_SLOTS_MAX = 1024;

/** Most ring slots one peek looks at (finished, in flight or holes included): bounds its cost. */
export const PEEK_SCAN_SLOTS_MAX = 100_000;

/** A message as `peek` lists it: a stored message, and when it becomes deliverable if delayed. */
export interface PeekedMessage extends StoredMessage {
  /** Present while the message is delayed: the entry time it becomes deliverable. */
  deliverAt?: number;
}

/** Dedup value of a claim: which deliveries it made, re-read on a repeat. */
interface ClaimRecord {
  topicId: number;
  group: string;
  /** Flat (offset, token) pairs. */
  refs: number[];
}

/** Rebuild the timer heap without stale timers once it is this large and twice its last live size. */
const TIMER_COMPACT_MIN = 4096;

/** The priority of the message at `offset` (PRIORITY_DEFAULT for a plain one). */
function priorityOf(t: TopicState, offset: number): number {
  return t.ring.meta.size > 0 ? (t.ring.meta.get(offset)?.priority ?? PRIORITY_DEFAULT) : PRIORITY_DEFAULT;
}

/** Copies a message's options that its receiver sees (headers, key, a non-default priority) onto it. */
function addMetaFields(m: StoredMessage, meta: MessageMeta | undefined): void {
  if (meta === undefined) return;
  if (meta.headers !== undefined) m.headers = meta.headers;
  if (meta.key !== undefined) m.key = meta.key;
  if (meta.priority !== PRIORITY_DEFAULT) m.priority = meta.priority;
}

function ok(value: unknown): ApplyResult {
  return { ok: true, value, duplicate: false };
}

function fail(code: ApplyErrorCode, message: string): ApplyResult {
  return { ok: false, code, message };
}

/** A message's columns in a snapshot: offset and publish time (f64), length (u32), done count (u16). */
const MESSAGE_COLUMN_BYTES = 8 + 8 + 4 + 2;

export class QueueStateMachine implements StateMachine<ApplyResult, QueueEvent, QueueQuery> {
  /** Index of the entry being (or last) applied: marks events once per entry. */
  private entryIndex = 0;

  private readonly messageBytesMax: number;
  private dedup: DedupTable;
  private nowMs = 0;
  private nextToken = 1;
  private nextTopicId = 1;
  private topicsByName = new Map<string, TopicState>();
  private timers = new TimerHeap<GroupState>();
  private timerCompactAt = TIMER_COMPACT_MIN;
  /** Delayed messages by due time (stale entries, of removed messages, skipped and compacted in bulk). */
  private due = new MessageTimeHeap<TopicState>();
  private dueCompactAt = TIMER_COMPACT_MIN;
  /** Messages with a time to live by expiry time (stale entries skipped, compacted in bulk). */
  private expiries = new MessageTimeHeap<TopicState>();
  private expiryCompactAt = TIMER_COMPACT_MIN;
  /** Events of the entry being applied. */
  private events: QueueEvent[] = [];
  /** Attempts already made of the offset takeNext() returned last (avoids a result object). */
  private takenAttempts = 0;
  /** Where readPublish puts a publish's fields (one object for all publishes). */
  private readonly publishFields: PublishFields = { topic: '', publishId: undefined, payloadStart: 0, optionsStart: -1 };

  constructor(options: QueueStateMachineOptions = {}) {
    this.messageBytesMax = options.messageBytesMax ?? MESSAGE_BYTES_MAX_DEFAULT;
    this.dedup = new DedupTable(options.dedupWindowMax ?? DEDUP_WINDOW_MAX_DEFAULT, options.dedupWindowMs ?? DEDUP_WINDOW_MS_DEFAULT);
    assert(this.messageBytesMax >= 1 && this.dedup.entriesMax >= 0 && this.dedup.windowMs >= 0, 'queue options are positive');
  }

  /**
   * Applies the command `data[start, end)` at the entry time of `ctx`, pushing its events onto
   * `events`. Deterministic; an invalid command is a rejection (ok: false) that changes nothing.
   * Expired deliveries and ended nack delays are processed first, at the entry's time. A publish
   * is read in place (no object per publish) and its payload is kept as a range of `data`.
   */
  apply(data: Uint8Array, start: number, end: number, ctx: ApplyContext, events: QueueEvent[]): ApplyResult {
    this.events = events;
    this.advanceTo(ctx);
    try {
      if (data[start] === 1) {
        const p = this.publishFields;
        const error = readPublish(data, start, end, p);
        if (error !== undefined) return fail('INVALID_COMMAND', error);
        const malformed = checkMsgpack(data, p.payloadStart, end);
        if (malformed !== undefined) return fail('INVALID_COMMAND', `publish: the payload is not one msgpack value (${malformed})`);
        return this.publishBytes(p.topic, data, p.payloadStart, end, p.publishId, undefined);
      }
      if (data[start] === 2) {
        // A publish with message options (delay, key, priority, ttl, headers).
        const p = this.publishFields;
        const error = readPublish(data, start, end, p);
        if (error !== undefined) return fail('INVALID_COMMAND', error);
        const opts = decodeMessageOptions(data, p.optionsStart, p.payloadStart);
        if (typeof opts === 'string') return fail('INVALID_COMMAND', opts);
        const malformed = checkMsgpack(data, p.payloadStart, end);
        if (malformed !== undefined) return fail('INVALID_COMMAND', `publish: the payload is not one msgpack value (${malformed})`);
        return this.publishBytes(p.topic, data, p.payloadStart, end, p.publishId, opts);
      }
      const decoded = decodeCommand(data.subarray(start, end));
      if ('error' in decoded) return fail('INVALID_COMMAND', decoded.error);
      return this.applyCommand(decoded.command);
    } catch (error) {
      if (error instanceof RaftInvariantError) throw error;
      // A bug, not bad input: the state may be half-changed, so the node must stop.
      throw new RaftInvariantError(`queue apply failed at index ${ctx.index}: ${error instanceof Error ? error.stack : String(error)}`);
    }
  }

  /** Applies one command body (tests and tools): `apply` over the whole of `body`. */
  applyCommandBytes(body: Uint8Array, ctx: ApplyContext): ApplyOutput {
    const events: QueueEvent[] = [];
    return { result: this.apply(body, 0, body.length, ctx, events), events };
  }

  /** Time moves to the entry's time with no command: expiries and ended delays fire. */
  tick(ctx: ApplyContext, events: QueueEvent[]): void {
    this.events = events;
    this.advanceTo(ctx);
  }

  /** While any delivery waits for a deadline or delay, or a message for its due or expiry time, time must keep moving. */
  wantsTime(): boolean {
    return this.timers.size > 0 || this.due.size > 0 || this.expiries.size > 0;
  }

  query(query: QueueQuery): unknown {
    switch (query.q) {
      case 'topics':
        return this.topics();
      case 'depth':
        return this.depth(query.topic, query.group);
      case 'depths':
        return this.topics().map((topic) => ({ topic, depth: this.depth(topic) }));
      case 'stats':
        return this.stats();
      case 'topicStats':
        return this.topicStats();
      case 'peek':
        // null: no such topic (the facade says TOPIC_NOT_FOUND).
        return this.topicsByName.has(query.topic) ? this.peek(query.topic, query.group ?? DEFAULT_GROUP, query.limit ?? 100) : null;
      default:
        return unreachable(query);
    }
  }

  /**
   * What the node's session table keeps of a result for a retried request: a claim keeps only
   * its (offset, token) references, re-read on a repeat (so a repeat never hands out a delivery
   * that was settled since); everything else keeps the result.
   */
  remember(data: Uint8Array, start: number, end: number, result: ApplyResult): unknown {
    // A publish's receipt is kept as its offset alone: a number is the only result remembered
    // bare, so replay knows it (no object per publish outlives the request in the table).
    if (result.ok && (data[start] === 1 || data[start] === 2)) return (result.value as { offset: number }).offset;
    if (!result.ok || data[start] !== 0 || !Array.isArray(result.value)) return result;
    const decoded = decodeCommand(data.subarray(start, end));
    if ('error' in decoded || decoded.command.t !== 'claim') return result;
    const t = this.topicsByName.get(decoded.command.topic);
    if (t === undefined) return result;
    const refs: number[] = [];
    for (const d of result.value as Delivery[]) refs.push(d.offset, d.token);
    const record: ClaimRecord = { topicId: t.id, group: decoded.command.group, refs };
    return { claim: record };
  }

  /**
   * A publish's receipt, kept as its offset, goes into snapshots as the receipt it stands for,
   * the form earlier versions kept: a member not yet upgraded installs these snapshots, and it
   * replays only that form.
   */
  rememberedForSnapshot(remembered: unknown): unknown {
    return typeof remembered === 'number' ? { ok: true, value: { offset: remembered }, duplicate: false } : remembered;
  }

  /** The remembered result of a repeated request, marked duplicate (claims re-read). */
  replay(remembered: unknown): ApplyResult {
    if (typeof remembered === 'number') return { ok: true, value: { offset: remembered }, duplicate: true };
    const claim = (remembered as { claim?: ClaimRecord }).claim;
    if (claim === undefined) {
      const r = remembered as ApplyResult;
      return r.ok ? { ok: true, value: r.value, duplicate: true } : r;
    }
    const out: Delivery[] = [];
    for (const t of this.topicsByName.values()) {
      if (t.id !== claim.topicId) continue;
      const g = t.groups.get(claim.group);
      if (g === undefined) break;
      for (let i = 0; i < claim.refs.length; i += 2) {
        const offset = claim.refs[i] as number;
        const p = g.pending.get(offset);
        if (p !== undefined && p.token === claim.refs[i + 1]) out.push(this.delivery(g, offset, p));
      }
      break;
    }
    return { ok: true, value: out, duplicate: true };
  }

  private advanceTo(ctx: ApplyContext): void {
    this.entryIndex = ctx.index;
    if (ctx.atMs > this.nowMs) this.nowMs = ctx.atMs;
    // Due messages first: whatever runs after (a key passed on by an expiry or dead letter) then
    // sees every message due by now as promoted, exactly as a restored machine does.
    if (this.due.nextAtMs <= this.nowMs) this.promoteDue();
    if (this.timers.nextAtMs <= this.nowMs) this.fireTimers();
    if (this.expiries.nextAtMs <= this.nowMs) this.expireDue();
    this.dedup.evictExpired(this.nowMs);
  }

  // ---- read-only queries -------------------------------------------------------------------

  /** Topic names in creation order. */
  topics(): string[] {
    return [...this.topicsByName.keys()];
  }

  hasTopic(topic: string): boolean {
    return this.topicsByName.has(topic);
  }

  /** Messages waiting for `group` (not in flight): never delivered, or returned and not yet re-claimed. */
  depth(topic: string, group: string = DEFAULT_GROUP): number {
    const t = this.topicsByName.get(topic);
    if (t === undefined) return 0;
    const g = t.groups.get(group);
    if (g === undefined) return t.ring.liveCount;
    return t.ring.tailOffset - g.next - g.holesAhead - g.skipAhead.size + g.redeliver.size + g.parked.size + g.delayedPassed;
  }

  /** The live message at `offset` of `topic` (tools, checkers), or undefined. Changes nothing. */
  messageAt(topic: string, offset: number): StoredMessage | undefined {
    const t = this.topicsByName.get(topic);
    return t === undefined || !t.ring.isLive(offset) ? undefined : this.message(t, offset, 0);
  }

  /** See QueueQuery 'peek'. */
  peek(topic: string, group: string, limit: number): PeekedMessage[] {
    const t = this.topicsByName.get(topic);
    const out: PeekedMessage[] = [];
    if (t === undefined) return out;
    const n = Math.max(0, Math.min(limit, PEEK_MESSAGES_MAX));
    const g = t.groups.get(group);
    const ring = t.ring;
    const start = this.peekStart(g, ring.headOffset);
    const end = Math.min(ring.tailOffset, start + PEEK_SCAN_SLOTS_MAX);
    for (let offset = start; offset < end && out.length < n; offset++) {
      if (!ring.isLive(offset)) continue;
      const m = ring.meta.size > 0 ? ring.meta.get(offset) : undefined;
      let attempts = 0;
      if (g !== undefined) {
        if (offset >= g.next) {
          if (g.skipAhead.has(offset)) continue;
        } else {
          const r = g.redeliver.get(offset);
          if (r !== undefined) attempts = r.attempts;
          else if (!g.parked.has(offset) && !(m !== undefined && m.dueMs > this.nowMs)) continue;
        }
      }
      const message: PeekedMessage = this.message(t, offset, attempts);
      if (m !== undefined && m.dueMs > this.nowMs) message.deliverAt = m.dueMs;
      out.push(message);
    }
    return out;
  }

  /**
   * The lowest offset that can be waiting for `g`: its cursor, or a returned, parked or passed
   * delayed message below it (not the ring's head, past everything a lagging group keeps alive).
   */
  private peekStart(g: GroupState | undefined, head: number): number {
    if (g === undefined) return head;
    let start = g.next;
    for (const o of g.redeliver.keys()) if (o < start) start = o;
    for (const o of g.parked) if (o < start) start = o;
    if (g.delayedPassed > 0) {
      // Passed delayed messages are only counted: find them among the messages with options.
      for (const [o, m] of g.topic.ring.meta) if (o < start && m.dueMs > this.nowMs) start = o;
    }
    return Math.max(start, head);
  }

  /** Totals over all topics. `messages`/`bytes`: retained payloads; `inFlight`: pending deliveries. */
  stats(): { topics: number; messages: number; bytes: number; groups: number; inFlight: number; dedupEntries: number } {
    let messages = 0;
    let bytes = 0;
    let groups = 0;
    let inFlight = 0;
    for (const t of this.topicsByName.values()) {
      messages += t.ring.liveCount;
      bytes += t.ring.liveBytes;
      groups += t.groups.size;
      for (const g of t.groups.values()) inFlight += g.pending.size;
    }
    return { topics: this.topicsByName.size, messages, bytes, groups, inFlight, dedupEntries: this.dedup.size };
  }

  /** Every topic in creation order: size, and per group its backlog (for dashboards). */
  topicStats(): TopicStats[] {
    const out: TopicStats[] = [];
    for (const t of this.topicsByName.values()) {
      const source = t.name.endsWith(DEAD_LETTER_SUFFIX) ? t.name.slice(0, -DEAD_LETTER_SUFFIX.length) : undefined;
      const groups: GroupStats[] = [];
      for (const g of t.groups.values()) {
        groups.push({
          group: g.name,
          waiting: this.depth(t.name, g.name),
          inFlight: g.pending.size,
          redeliveries: g.redeliver.size,
          oldestWaitingPublishedAt: this.oldestWaiting(t, g),
        });
      }
      out.push({
        topic: t.name,
        messages: t.ring.liveCount,
        bytes: t.ring.liveBytes,
        published: t.ring.tailOffset,
        deadLetterOf: source !== undefined && this.topicsByName.has(source) ? source : null,
        groups,
      });
    }
    return out;
  }

  /** Entry time of the oldest message waiting for `g`: a ready redelivery or the next new one. */
  private oldestWaiting(t: TopicState, g: GroupState): number | null {
    let best: number | null = null;
    const r = g.ready.peek();
    if (r !== undefined && t.ring.isLive(r)) best = t.ring.publishedAtOf(r);
    const end = Math.min(t.ring.tailOffset, g.next + OLDEST_SCAN_SLOTS_MAX);
    for (let offset = Math.max(g.next, t.ring.headOffset); offset < end; offset++) {
      if (!t.ring.isLive(offset)) continue;
      const at = t.ring.publishedAtOf(offset);
      if (best === null || at < best) best = at;
      break;
    }
    return best;
  }

  /** The current entry time (monotonic max of applied `at`). */
  get timeMs(): number {
    return this.nowMs;
  }

  // ---- snapshots ---------------------------------------------------------------------------

  /**
   * The whole state (versioned): topics, messages, groups, dedup, time, counters. An image whose
   * bytes are copied out in slices; later applies do not change it (see snapshot.ts).
   */
  snapshot(): SnapshotImage {
    return snapshotImage({
      nowMs: this.nowMs,
      nextToken: this.nextToken,
      nextTopicId: this.nextTopicId,
      topics: [...this.topicsByName.values()],
      dedup: this.dedup.records(),
    });
  }

  /**
   * About the bytes of a snapshot now, without taking one: each topic's payloads, its messages'
   * columns and option records. Groups, timers and the dedup table are left out (they are small
   * beside a backlog, and the node only compares this with its value at the last snapshot).
   */
  snapshotSizeHint(): number {
    let bytes = 0;
    for (const t of this.topicsByName.values()) bytes += t.ring.liveBytes + t.ring.liveCount * MESSAGE_COLUMN_BYTES + t.ring.metaBytes;
    return bytes;
  }

  /** The whole state as snapshot bytes at once (tests, small states). */
  snapshotBytes(): Uint8Array {
    return imageBytes(this.snapshot());
  }

  /**
   * Replaces the whole state with a snapshot's. Throws RaftQueueError STORAGE_FAILED on a
   * version mismatch or corrupt data, leaving the current state untouched.
   */
  restore(data: Uint8Array): void {
    const state: RestoredState = decodeSnapshot(data);
    const dedup = new DedupTable(this.dedup.entriesMax, this.dedup.windowMs);
    for (const record of state.dedup) dedup.add(record);
    const timers = new TimerHeap<GroupState>();
    const due = new MessageTimeHeap<TopicState>();
    const expiries = new MessageTimeHeap<TopicState>();
    this.topicsByName = new Map();
    for (const t of state.topics) {
      this.topicsByName.set(t.name, t);
      for (const [offset, m] of t.ring.meta) {
        if (m.dueMs > state.nowMs) due.push(m.dueMs, t, offset);
        if (m.expiresAtMs > state.nowMs) expiries.push(m.expiresAtMs, t, offset);
      }
      for (const g of t.groups.values()) {
        for (const [offset, p] of g.pending) timers.push({ atMs: p.deadlineMs, token: p.token, kind: TimerKind.AckDeadline, group: g, offset });
        for (const [offset, r] of g.redeliver) {
          if (!r.ready) timers.push({ atMs: r.notBeforeMs, token: r.token, kind: TimerKind.NackDelay, group: g, offset });
        }
        // The ready queue: ready redeliveries (decodeSnapshot pushed them) and parked messages
        // not waiting behind their key. Heaps pop in a total order, so the push order is free.
        if (g.parked.size > 0) {
          const waiting = new Set<number>();
          for (const ks of g.keys.values()) for (let i = ks.w; i < ks.waiting.length; i++) waiting.add(ks.waiting[i] as number);
          for (const offset of g.parked) {
            if (!waiting.has(offset)) g.ready.push(offset, t.ring.meta.get(offset)?.priority ?? PRIORITY_DEFAULT);
          }
        }
      }
    }
    this.dedup = dedup;
    this.timers = timers;
    this.due = due;
    this.expiries = expiries;
    this.expiryCompactAt = Math.max(TIMER_COMPACT_MIN, expiries.size * 2);
    this.dueCompactAt = Math.max(TIMER_COMPACT_MIN, due.size * 2);
    this.timerCompactAt = Math.max(TIMER_COMPACT_MIN, timers.size * 2);
    this.nowMs = state.nowMs;
    this.nextToken = state.nextToken;
    this.nextTopicId = state.nextTopicId;
  }

  // ---- apply -------------------------------------------------------------------------------

  private applyCommand(command: Command): ApplyResult {
    if (command.t === 'publish') {
      const p = command.payload;
      return this.publishBytes(command.topic, p, 0, p.length, command.publishId, command.opts);
    }
    return this.execute(command);
  }

  /**
   * A publish of the payload `data[from, to)` (kept in place, not copied). A publishId seen on
   * this topic (incarnation) returns the first receipt, marked duplicate, and appends nothing.
   */
  private publishBytes(topic: string, data: Uint8Array, from: number, to: number, publishId: string | undefined, opts: MessageOptions | undefined): ApplyResult {
    const key = publishId === undefined ? undefined : this.publishKey(topic, publishId);
    if (key !== undefined) {
      const record = this.dedup.get(key);
      if (record !== undefined) return { ok: true, value: record.value, duplicate: true };
    }
    const result = this.publish(topic, data, from, to, opts);
    if (result.ok && key !== undefined) this.dedup.add({ key, atMs: this.nowMs, kind: 'publish', value: result.value });
    return result;
  }

  /** The dedup key of a publishId: namespaced by topic incarnation (none on a missing topic). */
  private publishKey(topic: string, publishId: string): string | undefined {
    const t = this.topicsByName.get(topic);
    return t === undefined ? undefined : `p${t.id}:${publishId}`;
  }

  private execute(command: Command): ApplyResult {
    switch (command.t) {
      case 'createTopic':
        return this.createTopic(command.topic, command.opts);
      case 'deleteTopic':
        return this.deleteTopic(command.topic);
      case 'publish':
        return this.publishBytes(command.topic, command.payload, 0, command.payload.length, command.publishId, command.opts);
      case 'consume':
        return this.consume(command.topic);
      case 'claim':
        return this.claim(command);
      case 'ack':
      case 'nack':
      case 'extend':
        return this.settle(command);
      case 'ackMany':
        return this.ackMany(command);
      case 'release':
        return this.release(command.topic, command.group, command.consumer);
      case 'purge':
        return this.purge(command.topic);
      case 'redrive':
        return this.redrive(command.topic, command.to, command.max);
      default:
        return unreachable(command);
    }
  }

  private topicOrFail(name: string): TopicState | ApplyResult {
    const t = this.topicsByName.get(name);
    if (t !== undefined) return t;
    const invalid = validateTopicOrDeadLetterName(name);
    return invalid === undefined ? fail('TOPIC_NOT_FOUND', `topic "${name}" does not exist`) : fail('INVALID_TOPIC', invalid);
  }

  private createTopic(name: string, opts: TopicOptions | undefined): ApplyResult {
    const invalid = validateTopicOrDeadLetterName(name);
    if (invalid !== undefined) return fail('INVALID_TOPIC', invalid);
    if (this.topicsByName.has(name)) return ok(false);
    this.addTopic(name, opts);
    return ok(true);
  }

  private addTopic(name: string, opts: TopicOptions | undefined): TopicState {
    const t = new TopicState(this.nextTopicId++, name, {
      maxMessages: opts?.maxMessages ?? TOPIC_MAX_MESSAGES_DEFAULT,
      maxBytes: opts?.maxBytes ?? TOPIC_MAX_BYTES_DEFAULT,
      overflow: opts?.overflow ?? 'reject',
      messageBytesMax: opts?.messageBytesMax ?? this.messageBytesMax,
      ttlMs: opts?.ttlMs ?? 0,
      onExpire: opts?.onExpire ?? 'deadLetter',
      expireUnacked: opts?.expireUnacked ?? false,
    });
    t.addGroup(DEFAULT_GROUP);
    this.topicsByName.set(name, t);
    return t;
  }

  private deleteTopic(name: string): ApplyResult {
    const t = this.topicsByName.get(name);
    if (t === undefined) {
      const invalid = validateTopicOrDeadLetterName(name);
      return invalid === undefined ? ok(false) : fail('INVALID_TOPIC', invalid);
    }
    // Timers still reference the topic's groups; `deleted` makes them stale.
    t.deleted = true;
    this.topicsByName.delete(name);
    // Its heap entries would keep the deleted topic (its payloads) alive until they came due, up
    // to a year: drop them now (one pass over each heap; deleting a topic is rare).
    this.compactDue();
    this.compactExpiries();
    this.events.push({ type: 'topicDeleted', topic: name });
    return ok(true);
  }

  private publish(topic: string, data: Uint8Array, from: number, to: number, opts: MessageOptions | undefined): ApplyResult {
    const t = this.topicOrFail(topic);
    if (!(t instanceof TopicState)) return t;
    const size = to - from;
    if (size > t.options.messageBytesMax) {
      return fail('PAYLOAD_TOO_LARGE', `payload of ${size} bytes is over the topic's ${t.options.messageBytesMax}`);
    }
    const ttlMs = opts?.ttlMs ?? t.options.ttlMs;
    if (ttlMs > 0) {
      // The expiry counts from the due time (as addMeta computes it) and must stay a safe integer,
      // or no snapshot holding the message would restore.
      const fromMs = opts?.delayMs !== undefined ? this.nowMs + opts.delayMs : Math.max(opts?.deliverAt ?? 0, this.nowMs);
      if (fromMs + ttlMs > Number.MAX_SAFE_INTEGER) {
        return fail('INVALID_COMMAND', `publish: invalid options: the message would expire at ${fromMs} + ${ttlMs} ms, past ${Number.MAX_SAFE_INTEGER}`);
      }
    }
    const offset = this.appendRange(t, data, from, size, undefined);
    if (offset < 0) return fail('TOPIC_FULL', `topic "${topic}" is full (${t.ring.liveCount} messages, ${t.ring.liveBytes} bytes)`);
    // A plain publish to a topic without a default time to live stores nothing more.
    const meta = opts !== undefined || t.options.ttlMs > 0 ? this.addMeta(t, offset, opts ?? {}, undefined) : undefined;
    // A delayed message is announced when it falls due.
    if (meta === undefined || meta.dueMs === 0) this.markPublished(t, offset);
    return ok({ offset });
  }

  /** One 'published' event per topic per entry (a batch entry may hold thousands of publishes). */
  private markPublished(t: TopicState, offset: number): void {
    if (t.publishedMark !== this.entryIndex) {
      t.publishedMark = this.entryIndex;
      this.events.push({ type: 'published', topic: t.name, offset });
    }
  }

  /**
   * Records the options of the message at `offset` (nothing when they are all defaults) and
   * schedules its due and expiry times. `copied`: a dead letter's or a redriven message's kept
   * key, priority and headers (no delay, no time to live of its own).
   */
  private addMeta(t: TopicState, offset: number, o: MessageOptions, copied: MessageMeta | undefined): MessageMeta | undefined {
    const now = this.nowMs;
    let dueMs = 0;
    if (o.delayMs !== undefined) dueMs = o.delayMs > 0 ? now + o.delayMs : 0;
    else if (o.deliverAt !== undefined && o.deliverAt > now) dueMs = o.deliverAt;
    const key = copied?.key ?? o.key;
    const priority = copied?.priority ?? o.priority ?? PRIORITY_DEFAULT;
    const headers = copied?.headers ?? o.headers;
    const ttlMs = o.ttlMs ?? t.options.ttlMs;
    // The time to live counts from when the message can first be delivered.
    // Capped so that a snapshot restores (publish refuses such a message; a dead letter's or a
    // redriven copy's expiry counts from the entry time and can only reach it at absurd times).
    const expiresAtMs = ttlMs > 0 ? Math.min((dueMs > 0 ? dueMs : now) + ttlMs, Number.MAX_SAFE_INTEGER) : 0;
    if (dueMs === 0 && key === undefined && priority === PRIORITY_DEFAULT && expiresAtMs === 0 && headers === undefined) return undefined;
    const meta: MessageMeta = { dueMs, key, priority, expiresAtMs, headers, expiredDeadLettered: false };
    t.ring.meta.set(offset, meta);
    if (priority !== PRIORITY_DEFAULT) t.priorityMode = true;
    if (dueMs > 0) {
      this.due.push(dueMs, t, offset);
      // Messages removed before they are due (dropped, purged) leave their entries behind.
      if (this.due.size > this.dueCompactAt) this.compactDue();
    }
    if (expiresAtMs > 0) {
      this.expiries.push(expiresAtMs, t, offset);
      // Messages finished before they expire leave their entries behind: drop them in bulk.
      if (this.expiries.size > this.expiryCompactAt) this.compactExpiries();
    }
    return meta;
  }

  /** Drops the due-heap entries of removed messages and deleted topics (they would be skipped). */
  private compactDue(): void {
    this.due.filter((at, topic, o) => !topic.deleted && topic.ring.meta.get(o)?.dueMs === at);
    this.dueCompactAt = Math.max(TIMER_COMPACT_MIN, this.due.size * 2);
  }

  /** Drops the expiry-heap entries of finished messages and deleted topics (they would be skipped). */
  private compactExpiries(): void {
    this.expiries.filter((_at, topic, o) => !topic.deleted && topic.ring.meta.has(o));
    this.expiryCompactAt = Math.max(TIMER_COMPACT_MIN, this.expiries.size * 2);
  }

  /**
   * Appends under the topic's retention: returns the new offset, or -1 when the policy refuses
   * (then nothing changed). 'dropOldest' removes the oldest messages from every group first.
   */
  private append(t: TopicState, payload: Uint8Array, header: DeadLetterHeader | undefined): number {
    return this.appendRange(t, payload, 0, payload.length, header);
  }

  private appendRange(t: TopicState, data: Uint8Array, from: number, size: number, header: DeadLetterHeader | undefined): number {
    const ring = t.ring;
    const { maxMessages, maxBytes } = t.options;
    if (size > maxBytes) return -1;
    if (ring.liveCount + 1 > maxMessages || ring.liveBytes + size > maxBytes) {
      if (t.options.overflow === 'reject') return -1;
      while (ring.liveCount + 1 > maxMessages || ring.liveBytes + size > maxBytes) this.dropOldest(t);
    }
    return ring.pushRange(data.buffer, data.byteOffset + from, size, this.nowMs, header);
  }

  /** Drops the oldest message: every group that had not finished it moves past it. */
  private dropOldest(t: TopicState): void {
    const ring = t.ring;
    assert(ring.liveCount > 0, 'dropOldest on an empty topic');
    const h = ring.headOffset;
    for (const g of t.groups.values()) {
      // A pending or returned delivery just disappears: a later ack is STALE_DELIVERY.
      this.forget(g, h);
      if (g.next <= h) {
        // Offsets in [next, h) are below the oldest live message: holes this group counted.
        g.holesAhead -= h - g.next;
        g.next = h + 1;
      }
    }
    ring.remove(h);
  }

  /**
   * `g` stops holding `offset`, which it has not finished (the message is being removed, or has
   * expired for it): whatever delivery, return or place in line it had goes, and its key passes
   * on. Nothing happens when `g` had finished it.
   */
  private forget(g: GroupState, offset: number): void {
    const t = g.topic;
    if (g.next <= offset) {
      if (t.skipAheadCount > 0 && g.skipAhead.delete(offset)) t.skipAheadCount--;
      return;
    }
    const m = t.ring.meta.size > 0 ? t.ring.meta.get(offset) : undefined;
    if (g.pending.delete(offset) || g.redeliver.delete(offset) || g.parked.delete(offset)) {
      // A stale entry in `ready` is skipped when popped.
    } else if (m !== undefined && m.dueMs > this.nowMs) {
      g.delayedPassed--;
    } else {
      return;
    }
    if (m?.key !== undefined) this.releaseKey(g, m.key, offset);
  }

  /** `offset` no longer holds `key` in `g` (finished or forgotten): the key's next message gets its turn. */
  private releaseKey(g: GroupState, key: string, offset: number): void {
    const ks = g.keys.get(key);
    // A waiting message that goes is skipped later (it is no longer parked).
    if (ks === undefined || ks.head !== offset) return;
    while (ks.w < ks.waiting.length) {
      const next = ks.waiting[ks.w++] as number;
      if (!g.parked.has(next)) continue;
      if (ks.w >= 64 && ks.w * 2 >= ks.waiting.length) {
        ks.waiting.splice(0, ks.w);
        ks.w = 0;
      }
      ks.head = next;
      const m = g.topic.ring.meta.get(next) as MessageMeta;
      if (m.dueMs > this.nowMs) {
        // Its delay has not ended: it is promoted when it does (as its key's head).
        g.parked.delete(next);
        g.delayedPassed++;
      } else {
        g.ready.push(next, m.priority);
        this.markAvailable(g);
      }
      return;
    }
    g.keys.delete(key);
  }

  /**
   * The cursor of `g` passes `offset`, a message with options: true when `g` may take it now;
   * otherwise it is parked (behind its key), counted as delayed, or expired for `g`.
   */
  private admit(g: GroupState, offset: number, m: MessageMeta): boolean {
    if (m.expiresAtMs !== 0 && m.expiresAtMs <= this.nowMs) {
      // Expired before this group (created since) reached it.
      this.expired(g, offset, 0);
      return false;
    }
    if (m.key !== undefined) {
      const ks = g.keys.get(m.key);
      if (ks !== undefined) {
        ks.waiting.push(offset);
        g.parked.add(offset);
        return false;
      }
      g.keys.set(m.key, { head: offset, waiting: [], w: 0 });
    }
    if (m.dueMs > this.nowMs) {
      g.delayedPassed++;
      return false;
    }
    return true;
  }

  /**
   * The offset `g` should take now: the best ready one (priority, then age), else the next
   * never-delivered one its cursor can take. A priority topic's cursor parks every message first,
   * so all of them are ordered by priority. Returns -1 when there is none; sets takenAttempts.
   */
  private takeNext(g: GroupState): number {
    const t = g.topic;
    const ring = t.ring;
    if (t.priorityMode) {
      while (g.next < ring.tailOffset) {
        const offset = this.cursorStep(g);
        if (offset >= 0) {
          g.parked.add(offset);
          g.ready.push(offset, priorityOf(t, offset));
        }
      }
    }
    while (g.ready.size > 0) {
      const offset = g.ready.pop() as number;
      const r = g.redeliver.get(offset);
      if (r !== undefined) {
        if (!r.ready) continue;
        g.redeliver.delete(offset);
        this.takenAttempts = r.attempts;
        return offset;
      }
      if (g.parked.size > 0 && g.parked.delete(offset)) {
        this.takenAttempts = 0;
        return offset;
      }
    }
    while (g.next < ring.tailOffset) {
      const offset = this.cursorStep(g);
      if (offset >= 0) {
        this.takenAttempts = 0;
        return offset;
      }
    }
    return -1;
  }

  /** Moves the cursor of `g` one offset: that offset when `g` may take it, else -1. */
  private cursorStep(g: GroupState): number {
    const t = g.topic;
    const ring = t.ring;
    const offset = g.next++;
    if (!ring.isLive(offset)) {
      g.holesAhead--;
      assert(g.holesAhead >= 0, 'a group skips only holes it counted');
      return -1;
    }
    if (t.skipAheadCount > 0 && g.skipAhead.delete(offset)) {
      t.skipAheadCount--;
      return -1;
    }
    if (ring.meta.size > 0) {
      const m = ring.meta.get(offset);
      if (m !== undefined && !this.admit(g, offset, m)) return -1;
    }
    return offset;
  }

  /** The group finished `offset` (ack, consume, dead-letter, expiry); the message goes once all groups have. */
  private finish(g: GroupState, offset: number): void {
    const t = g.topic;
    const ring = t.ring;
    if (ring.meta.size > 0) {
      const key = ring.meta.get(offset)?.key;
      if (key !== undefined) this.releaseKey(g, key, offset);
    }
    if (ring.markDone(offset, t.groups.size) && t.skipAheadCount > 0) this.removedAhead(t, offset);
  }

  /** A removed message some groups had finished before reaching it: for them it is a hole now. */
  private removedAhead(t: TopicState, offset: number): void {
    for (const g of t.groups.values()) {
      if (g.skipAhead.delete(offset)) {
        t.skipAheadCount--;
        g.holesAhead++;
      }
    }
  }

  private message(t: TopicState, offset: number, deliveryCount: number): StoredMessage {
    const ring = t.ring;
    const payload = ring.payloadAt(offset);
    assert(payload !== undefined, 'a delivered offset is live');
    const m: StoredMessage = { topic: t.name, offset, payload, publishedAt: ring.publishedAtOf(offset), deliveryCount };
    const header = ring.headers.size > 0 ? ring.headers.get(offset) : undefined;
    if (header !== undefined) m.deadLetter = header;
    if (ring.meta.size > 0) addMetaFields(m, ring.meta.get(offset));
    return m;
  }

  private delivery(g: GroupState, offset: number, p: PendingDelivery): Delivery {
    // Built in one literal (not a spread of message()): claims make one per message on every node.
    const t = g.topic;
    const ring = t.ring;
    const payload = ring.payloadAt(offset);
    assert(payload !== undefined, 'a delivered offset is live');
    const d: Delivery = {
      topic: t.name,
      offset,
      payload,
      publishedAt: ring.publishedAtOf(offset),
      deliveryCount: p.attempt,
      group: g.name,
      token: p.token,
      attempt: p.attempt,
      ackDeadline: p.deadlineMs,
    };
    const header = ring.headers.size > 0 ? ring.headers.get(offset) : undefined;
    if (header !== undefined) d.deadLetter = header;
    if (ring.meta.size > 0) addMetaFields(d, ring.meta.get(offset));
    return d;
  }

  private consume(topic: string): ApplyResult {
    const t = this.topicOrFail(topic);
    if (!(t instanceof TopicState)) return t;
    const g = t.groups.get(DEFAULT_GROUP);
    assert(g !== undefined, 'every topic has the default group');
    const offset = this.takeNext(g);
    if (offset < 0) return ok(null);
    const m = this.message(t, offset, this.takenAttempts + 1);
    this.finish(g, offset);
    return ok(m);
  }

  private claim(c: Extract<Command, { t: 'claim' }>): ApplyResult {
    const t = this.topicOrFail(c.topic);
    if (!(t instanceof TopicState)) return t;
    let g = t.groups.get(c.group);
    if (g === undefined) {
      const invalid = validateTopicName(c.group);
      if (invalid !== undefined) return fail('INVALID_COMMAND', `group name: ${invalid.replace('topic name', 'name')}`);
      if (t.groups.size >= GROUPS_PER_TOPIC_MAX) return fail('INVALID_COMMAND', `topic "${c.topic}" already has ${GROUPS_PER_TOPIC_MAX} groups`);
      g = t.addGroup(c.group);
    }
    const out: Delivery[] = [];
    let bytes = 0;
    while (out.length < c.max && (c.maxBytes === undefined || bytes < c.maxBytes)) {
      const offset = this.takeNext(g);
      if (offset < 0) break;
      const p: PendingDelivery = {
        consumer: c.consumer,
        token: this.nextToken++,
        attempt: this.takenAttempts + 1,
        deadlineMs: this.nowMs + c.ackTimeoutMs,
        ackTimeoutMs: c.ackTimeoutMs,
        maxDeliveries: c.maxDeliveries,
      };
      g.pending.set(offset, p);
      this.pushTimer(TimerKind.AckDeadline, p.deadlineMs, p.token, g, offset);
      const d = this.delivery(g, offset, p);
      bytes += d.payload.length;
      out.push(d);
    }
    return ok(out);
  }

  /** ack, nack and extend: each needs the delivery's current token. */
  private settle(c: Extract<Command, { t: 'ack' | 'nack' | 'extend' }>): ApplyResult {
    const t = this.topicOrFail(c.topic);
    if (!(t instanceof TopicState)) return t;
    const g = t.groups.get(c.group);
    const p = g?.pending.get(c.offset);
    if (g === undefined || p === undefined || p.token !== c.token) {
      return fail('STALE_DELIVERY', `no delivery of ${c.topic}/${c.group}@${c.offset} with token ${c.token} is pending`);
    }
    switch (c.t) {
      case 'ack':
        g.pending.delete(c.offset);
        this.finish(g, c.offset);
        break;
      case 'nack':
        g.pending.delete(c.offset);
        this.returnOrDeadLetter(g, c.offset, p, c.delayMs);
        break;
      case 'extend':
        p.deadlineMs = this.nowMs + p.ackTimeoutMs;
        this.pushTimer(TimerKind.AckDeadline, p.deadlineMs, p.token, g, c.offset);
        break;
      default:
        return unreachable(c);
    }
    return ok(true);
  }

  /**
   * ackMany: acks each (offset, token) pair that names a pending delivery; the value says, pair
   * by pair, which were settled (false: stale, nothing changed for that one).
   */
  private ackMany(c: Extract<Command, { t: 'ackMany' }>): ApplyResult {
    const t = this.topicOrFail(c.topic);
    if (!(t instanceof TopicState)) return t;
    const g = t.groups.get(c.group);
    const settled: boolean[] = [];
    for (let i = 0; i + 1 < c.refs.length; i += 2) {
      const offset = c.refs[i] as number;
      const p = g?.pending.get(offset);
      if (g === undefined || p === undefined || p.token !== c.refs[i + 1]) {
        settled.push(false);
        continue;
      }
      g.pending.delete(offset);
      this.finish(g, offset);
      settled.push(true);
    }
    return ok(settled);
  }

  /** release: every pending delivery of `consumer` in the group is claimable again now. */
  private release(topic: string, group: string, consumer: string): ApplyResult {
    const t = this.topicOrFail(topic);
    if (!(t instanceof TopicState)) return t;
    const g = t.groups.get(group);
    if (g === undefined) return ok(true);
    const offsets: number[] = [];
    for (const [offset, p] of g.pending) if (p.consumer === consumer) offsets.push(offset);
    offsets.sort((a, b) => a - b);
    for (const offset of offsets) {
      const p = g.pending.get(offset) as PendingDelivery;
      g.pending.delete(offset);
      // Not a failed attempt: a released delivery is never dead-lettered here.
      this.redeliver(g, offset, p.attempt, p.token, 0);
    }
    return ok(true);
  }

  /** A failed attempt (nack or expiry): dead-letter it when attempts are used up, else return it. */
  private returnOrDeadLetter(g: GroupState, offset: number, p: PendingDelivery, delayMs: number): void {
    if (p.attempt >= p.maxDeliveries && this.deadLetter(g, offset, p.attempt, 'maxDeliveries')) return;
    this.redeliver(g, offset, p.attempt, p.token, delayMs);
  }

  private redeliver(g: GroupState, offset: number, attempts: number, token: number, delayMs: number): void {
    if (delayMs <= 0) {
      g.redeliver.set(offset, { attempts, notBeforeMs: this.nowMs, token, ready: true });
      g.ready.push(offset, priorityOf(g.topic, offset));
      this.markAvailable(g);
      return;
    }
    const notBeforeMs = this.nowMs + delayMs;
    g.redeliver.set(offset, { attempts, notBeforeMs, token, ready: false });
    this.pushTimer(TimerKind.NackDelay, notBeforeMs, token, g, offset);
  }

  /**
   * Moves `offset` of `g` to the dead-letter topic (created with defaults when missing) in this
   * same entry, and finishes it for `g`. Returns false, changing nothing in the source, when the
   * dead-letter topic refuses it (full under 'reject', payload over its limit, name too long):
   * the message then stays redeliverable rather than being lost.
   */
  private deadLetter(g: GroupState, offset: number, attempts: number, reason: DeadLetterHeader['reason']): boolean {
    const src = g.topic;
    const dlqName = deadLetterTopicName(src.name);
    if (validateTopicOrDeadLetterName(dlqName) !== undefined) return false;
    const payload = src.ring.payloadAt(offset);
    assert(payload !== undefined, 'a dead-lettered offset is live');
    const dlq = this.topicsByName.get(dlqName) ?? this.addTopic(dlqName, undefined);
    if (payload.length > dlq.options.messageBytesMax) return false;
    const header: DeadLetterHeader = { topic: src.name, offset, reason, attempts, group: g.name };
    const dlqOffset = this.append(dlq, payload, header);
    if (dlqOffset < 0) return false;
    // The dead letter keeps its key, priority and headers (a redrive restores them).
    const meta = src.ring.meta.size > 0 ? src.ring.meta.get(offset) : undefined;
    if (meta !== undefined) this.addMeta(dlq, dlqOffset, {}, meta);
    this.finish(g, offset);
    this.markPublished(dlq, dlqOffset);
    this.events.push({
      type: 'deadLettered',
      topic: src.name,
      offset,
      deadLetterTopic: dlqName,
      deadLetterOffset: dlqOffset,
      reason,
      attempts,
      group: g.name,
    });
    return true;
  }

  /**
   * `offset` expired in `g` (which held it, or had not reached it): a dead letter with reason
   * 'expired', or dropped when its topic says so or its dead-letter topic refuses it; then
   * finished for `g`. One dead letter per message: the first group it expires in (groups in
   * creation order) makes it; in every other group it is finished silently. The caller removed
   * any hold `g` had on it but its key.
   */
  private expired(g: GroupState, offset: number, attempts: number): void {
    const t = g.topic;
    if (t.options.onExpire === 'deadLetter') {
      const m = t.ring.meta.get(offset);
      assert(m !== undefined, 'an expired message has options');
      if (m.expiredDeadLettered) {
        this.finish(g, offset);
        return;
      }
      if (this.deadLetter(g, offset, attempts, 'expired')) {
        // A changed copy, not a change in place: a snapshot being copied out may share the meta.
        // (Gone already when `g` was the last group holding it.)
        if (t.ring.isLive(offset)) t.ring.meta.set(offset, { ...m, expiredDeadLettered: true });
        return;
      }
    }
    this.events.push({ type: 'expired', topic: t.name, offset, group: g.name });
    this.finish(g, offset);
  }

  /** Delayed messages whose time came: each group that passed it may take it now (its key permitting). */
  private promoteDue(): void {
    const due = this.due;
    while (due.nextAtMs <= this.nowMs) {
      const t = due.topOwner;
      const offset = due.topOffset;
      due.pop();
      if (t.deleted) continue;
      const m = t.ring.meta.get(offset);
      // Removed meanwhile (purged, dropped by retention, a topic re-created).
      if (m === undefined || m.dueMs === 0 || m.dueMs > this.nowMs) continue;
      for (const g of t.groups.values()) {
        if (g.next <= offset) continue;
        // A later message of a busy key stays parked behind it.
        if (m.key !== undefined && g.keys.get(m.key)?.head !== offset) continue;
        g.delayedPassed--;
        g.parked.add(offset);
        g.ready.push(offset, m.priority);
        this.markAvailable(g);
      }
      this.markPublished(t, offset);
    }
  }

  /** Messages whose time to live ended: expired in every group that has not finished it (see TopicOptions.expireUnacked), one dead letter in all. */
  private expireDue(): void {
    const expiries = this.expiries;
    while (expiries.nextAtMs <= this.nowMs) {
      const t = expiries.topOwner;
      const offset = expiries.topOffset;
      expiries.pop();
      if (t.deleted) continue;
      const m = t.ring.meta.get(offset);
      if (m === undefined || m.expiresAtMs === 0 || m.expiresAtMs > this.nowMs) continue;
      for (const g of [...t.groups.values()]) {
        if (!t.ring.isLive(offset)) break;
        this.expireIn(g, offset);
      }
    }
  }

  private expireIn(g: GroupState, offset: number): void {
    const t = g.topic;
    let attempts = 0;
    if (g.next <= offset) {
      // Not reached yet: finished now, skipped when the cursor gets there (a hole once removed).
      if (g.skipAhead.has(offset)) return;
      g.skipAhead.add(offset);
      t.skipAheadCount++;
    } else {
      const p = g.pending.get(offset);
      const r = p === undefined ? g.redeliver.get(offset) : undefined;
      if (p !== undefined || r !== undefined) {
        // Delivered: it expires only when unacknowledged ones do; its delivery becomes stale.
        if (!t.options.expireUnacked) return;
        attempts = p !== undefined ? p.attempt : (r as { attempts: number }).attempts;
        g.pending.delete(offset);
        g.redeliver.delete(offset);
      } else if (!g.parked.delete(offset)) {
        return;
      }
    }
    this.expired(g, offset, attempts);
  }

  /** purge: every message of the topic goes (pending deliveries become stale); the value is how many. */
  private purge(topic: string): ApplyResult {
    const t = this.topicOrFail(topic);
    if (!(t instanceof TopicState)) return t;
    const ring = t.ring;
    const removed = ring.liveCount;
    ring.clear();
    for (const g of t.groups.values()) {
      g.pending.clear();
      g.redeliver.clear();
      g.parked.clear();
      g.keys.clear();
      g.skipAhead.clear();
      g.ready = new ReadyQueue();
      g.delayedPassed = 0;
      g.next = ring.tailOffset;
      g.holesAhead = 0;
    }
    t.skipAheadCount = 0;
    // The purged messages' heap entries go too (one pass over each heap, as for deleteTopic).
    this.compactDue();
    this.compactExpiries();
    return ok(removed);
  }

  /**
   * redrive: moves up to `max` dead letters from the dead-letter topic `topic` (taken as its
   * default group takes them, so each moves once) to `to` or the topic each came from, with its
   * key, priority and headers. Stops early, leaving the message in place, at one whose target is
   * missing or refuses it.
   */
  private redrive(topic: string, to: string | undefined, max: number): ApplyResult {
    const t = this.topicOrFail(topic);
    if (!(t instanceof TopicState)) return t;
    if (to !== undefined) {
      // Into itself each message would come back behind the cursor and move again, up to max times.
      if (to === topic) return fail('INVALID_COMMAND', `redrive: the target is the topic "${topic}" itself`);
      const target = this.topicOrFail(to);
      if (!(target instanceof TopicState)) return target;
    }
    const g = t.groups.get(DEFAULT_GROUP) as GroupState;
    let moved = 0;
    let stopped: string | undefined;
    while (moved < max) {
      const offset = this.takeNext(g);
      if (offset < 0) break;
      const attempts = this.takenAttempts;
      const header = t.ring.headers.get(offset);
      const targetName = to ?? header?.topic;
      const target = targetName === undefined ? undefined : this.topicsByName.get(targetName);
      const payload = t.ring.payloadAt(offset) as Uint8Array;
      const newOffset = target === undefined || payload.length > target.options.messageBytesMax ? -1 : this.append(target, payload, undefined);
      if (target === undefined || newOffset < 0) {
        stopped = target === undefined ? `no target topic for ${topic}@${offset}` : `topic "${target.name}" refused ${topic}@${offset}`;
        // Back in line, first again: nothing was moved.
        this.redeliver(g, offset, attempts, 0, 0);
        break;
      }
      const meta = t.ring.meta.size > 0 ? t.ring.meta.get(offset) : undefined;
      const newMeta = meta === undefined && target.options.ttlMs === 0 ? undefined : this.addMeta(target, newOffset, {}, meta);
      if (newMeta === undefined || newMeta.dueMs === 0) this.markPublished(target, newOffset);
      this.finish(g, offset);
      moved++;
    }
    return ok(stopped === undefined ? { moved, remaining: this.depth(topic) } : { moved, remaining: this.depth(topic), stopped });
  }

  private markAvailable(g: GroupState): void {
    if (g.availableMark === this.entryIndex) return;
    g.availableMark = this.entryIndex;
    this.events.push({ type: 'available', topic: g.topic.name, group: g.name });
  }

  // ---- timers ------------------------------------------------------------------------------

  private pushTimer(kind: TimerKind, atMs: number, token: number, group: GroupState, offset: number): void {
    this.timers.push({ atMs, token, kind, group, offset });
    if (this.timers.size > this.timerCompactAt) {
      // Extends and acks leave stale timers behind; drop them in bulk so the heap stays bounded.
      this.timers.filter((timer) => this.timerLive(timer));
      this.timerCompactAt = Math.max(TIMER_COMPACT_MIN, this.timers.size * 2);
    }
  }

  /** Whether a timer still matches the state (stale ones are skipped when they fire). */
  private timerLive(timer: QueueTimer): boolean {
    const g = timer.group;
    if (g.topic.deleted) return false;
    if (timer.kind === TimerKind.AckDeadline) {
      const p = g.pending.get(timer.offset);
      return p !== undefined && p.token === timer.token && p.deadlineMs === timer.atMs;
    }
    const r = g.redeliver.get(timer.offset);
    return r !== undefined && !r.ready && r.token === timer.token && r.notBeforeMs === timer.atMs;
  }

  /** Fires every timer due at nowMs, in (atMs, token) order: expiries and ended nack delays. */
  private fireTimers(): void {
    while (this.timers.nextAtMs <= this.nowMs) {
      const timer = this.timers.pop() as QueueTimer;
      if (!this.timerLive(timer)) continue;
      const g = timer.group;
      if (timer.kind === TimerKind.AckDeadline) {
        const p = g.pending.get(timer.offset) as PendingDelivery;
        g.pending.delete(timer.offset);
        this.returnOrDeadLetter(g, timer.offset, p, 0);
      } else {
        const r = g.redeliver.get(timer.offset);
        assert(r !== undefined, 'a live delay timer has its redelivery');
        r.ready = true;
        g.ready.push(timer.offset, priorityOf(g.topic, timer.offset));
        this.markAvailable(g);
      }
    }
  }
}
