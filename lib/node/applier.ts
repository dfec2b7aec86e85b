/**
 * Applier: applies committed entries to the replicated state, which is the session table (which
 * requests were applied, lib/node/sessions.ts) plus the application's StateMachine.
 *
 * For each Normal entry it reads the records (lib/node/envelope.ts), lets the session table
 * judge each, applies the new ones to the state machine and reports every outcome to the node,
 * which resolves the requests it submitted itself. Noop and Config entries only move the applied
 * index. Entry time is made monotonic here, so the state machine never sees time go back.
 *
 * Snapshots hold both halves: `[u8 format][f64 atMs][u32 n][n bytes session table][machine]`.
 */
import { RaftInvariantError, assert } from '../core/assert.js';
import type { Entry } from '../core/types.js';
import { EntryType } from '../core/types.js';
import { RaftQueueError } from '../contracts/errors.js';
import { bytesImage, type ApplyContext, type SnapshotImage, type StateMachine } from '../contracts/state-machine.js';
import { REGISTER_SESSION, readEntry } from './envelope.js';
import { SessionTable, Verdict, sessionIdAt } from './sessions.js';
import type { SessionLimits } from './sessions.js';

export const NODE_SNAPSHOT_FORMAT = 1;
const SNAPSHOT_HEADER_BYTES = 13;

/**
 * How one record ended, for the node that submitted it: the result, or undefined when it was
 * stale (no result), or SESSION_EXPIRED when its session is unknown (it was not applied).
 */
export type RecordOutcome = (session: number, seq: number, index: number, result: unknown, duplicate: boolean) => void;

/** The outcome of a record whose session the table does not know: it was not applied. */
export const SESSION_EXPIRED: unknown = Object.freeze({ sessionExpired: true });

/** A registration was applied: `nonce` and `who` (the registering node's id bytes) got `session`. */
export type RegistrationOutcome = (nonce: number, who: Uint8Array, session: number) => void;

export class Applier<Event = unknown> {
  appliedIndex = 0;
  /** Events of the entry being applied (handed out, then replaced, when not empty). */
  private events: Event[] = [];
  /** Entry time: the largest leader stamp applied so far. */
  private atMs = 0;
  private sessions: SessionTable;

  constructor(
    private readonly sm: StateMachine<unknown, Event>,
    private readonly limits: SessionLimits | undefined,
    private readonly onRecord: RecordOutcome,
    private readonly onRegistered: RegistrationOutcome,
    private readonly onEvents: (events: readonly Event[]) => void,
    /** Called with every entry before it is applied (the simulator's checkers). */
    private readonly trace?: (entry: Entry) => void,
  ) {
    this.sessions = new SessionTable(limits);
  }

  get timeMs(): number {
    return this.atMs;
  }

  /** What the replicated state knows of request (session, seq); a result is replayed. */
  lookup(session: number, seq: number): { readonly kind: 'result'; readonly value: unknown } | { readonly kind: 'stale' | 'expired' | 'unknown' } {
    const found = this.sessions.lookup(session, seq);
    return found.kind === 'result' && this.sm.replay ? { kind: 'result', value: this.sm.replay(found.value) } : found;
  }

  /** Who registered `session` (its registration record's body); undefined: no such session. */
  sessionOwner(session: number): Uint8Array | undefined {
    return this.sessions.owner(session);
  }

  /** A digest of the session table (the simulator compares members' tables). */
  sessionsDigest(): number {
    const bytes = this.sessions.encode(this.sm.rememberedForSnapshot?.bind(this.sm));
    let h = 0x811c9dc5;
    for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ (bytes[i] as number), 0x01000193) >>> 0;
    return h;
  }

  /** Sessions and results held (for status). */
  sessionStats(): { sessions: number; results: number } {
    return { sessions: this.sessions.size, results: this.sessions.resultCount() };
  }

  /**
   * Applies the next committed entry. Throws RaftInvariantError (the node fail-stops) when the
   * entry is out of order or not in a format this version reads: a committed entry cannot be
   * skipped without the members' states diverging from what was acknowledged.
   */
  apply(entry: Entry): void {
    assert(entry.index === this.appliedIndex + 1, `entries are applied in order (got ${entry.index} after ${this.appliedIndex})`);
    this.trace?.(entry);
    this.appliedIndex = entry.index;
    if (entry.type !== EntryType.Normal) return;
    let ctx: ApplyContext | undefined;
    let position = 0;
    const sessions = this.sessions;
    const sm = this.sm;
    const events = this.events;
    const data = entry.data;
    const header = readEntry(data, (session, seq, floor, start, end) => {
      ctx ??= this.context(entry.index, data);
      const at = position++;
      if (session === REGISTER_SESSION) {
        const id = sessionIdAt(entry.index, at);
        // A copy: the entry's bytes may be a view into a larger buffer the table must not keep.
        const who = data.slice(start, end);
        sessions.register(id, ctx.atMs, who);
        this.onRegistered(seq, who, id);
        return;
      }
      const verdict = sessions.check(session, seq, floor, ctx.atMs);
      if (verdict === Verdict.New) {
        const result = sm.apply(data, start, end, ctx, events);
        sessions.record(seq, sm.remember ? sm.remember(data, start, end, result) : result);
        this.onRecord(session, seq, entry.index, result, false);
      } else if (verdict === Verdict.Duplicate) {
        const kept = sessions.duplicateResult;
        this.onRecord(session, seq, entry.index, sm.replay ? sm.replay(kept) : kept, true);
      } else if (verdict === Verdict.Expired) {
        this.onRecord(session, seq, entry.index, SESSION_EXPIRED, true);
      } else {
        this.onRecord(session, seq, entry.index, undefined, true);
      }
    });
    if (typeof header === 'string') {
      throw new RaftInvariantError(`entry ${entry.index} (term ${entry.term}) cannot be applied: ${header}`);
    }
    if (header.count === 0) {
      ctx ??= this.context(entry.index, data);
      sm.tick(ctx, events);
    }
    if (events.length > 0) {
      // A fresh array for the next entry: whoever receives these may keep them.
      this.events = [];
      this.onEvents(events);
    }
  }

  /** The entry's context: its index and its time, made monotonic. Expires idle sessions. */
  private context(index: number, data: Uint8Array): ApplyContext {
    const stamp = new DataView(data.buffer, data.byteOffset, data.byteLength).getFloat64(2);
    if (stamp > this.atMs) this.atMs = stamp;
    this.sessions.expire(this.atMs);
    return { index, atMs: this.atMs };
  }

  /** The state machine's cheap estimate of its snapshot's bytes, if it gives one. */
  snapshotSizeHint(): number | undefined {
    return this.sm.snapshotSizeHint?.();
  }

  /**
   * The replicated state as a snapshot image: a header, the session table (encoded now) and the
   * machine's image (copied out in slices by the caller while applying goes on).
   */
  snapshot(): SnapshotImage {
    const table = this.sessions.encode(this.sm.rememberedForSnapshot?.bind(this.sm));
    const taken = this.sm.snapshot();
    const machine = taken instanceof Uint8Array ? bytesImage(taken) : taken;
    const head = new Uint8Array(SNAPSHOT_HEADER_BYTES + table.length);
    const view = new DataView(head.buffer);
    view.setUint8(0, NODE_SNAPSHOT_FORMAT);
    view.setFloat64(1, this.atMs);
    view.setUint32(9, table.length);
    head.set(table, SNAPSHOT_HEADER_BYTES);
    return {
      byteLength: head.length + machine.byteLength,
      writeNext(out, at, budgetBytes) {
        if (at < head.length) {
          out.set(head.subarray(at), at);
          return head.length - at;
        }
        return machine.writeNext(out.subarray(head.length), at - head.length, budgetBytes);
      },
    };
  }

  /**
   * Replaces the replicated state with a snapshot taken at `index`. Throws RaftQueueError
   * STORAGE_VERSION / STORAGE_FAILED (state untouched) when the bytes are not a snapshot this
   * version reads.
   */
  restore(data: Uint8Array, index: number): void {
    if (data.length < SNAPSHOT_HEADER_BYTES) throw new RaftQueueError('STORAGE_FAILED', `snapshot at ${index} is ${data.length} bytes, shorter than its header`);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const format = view.getUint8(0);
    if (format !== NODE_SNAPSHOT_FORMAT) {
      throw new RaftQueueError('STORAGE_VERSION', `snapshot at ${index} has format ${format}; this version reads format ${NODE_SNAPSHOT_FORMAT}`);
    }
    const atMs = view.getFloat64(1);
    const tableBytes = view.getUint32(9);
    if (SNAPSHOT_HEADER_BYTES + tableBytes > data.length) throw new RaftQueueError('STORAGE_FAILED', `snapshot at ${index} is truncated`);
    const sessions = new SessionTable(this.limits);
    try {
      sessions.restore(data.subarray(SNAPSHOT_HEADER_BYTES, SNAPSHOT_HEADER_BYTES + tableBytes));
    } catch (error) {
      throw new RaftQueueError('STORAGE_FAILED', `snapshot at ${index}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    this.sm.restore(data.subarray(SNAPSHOT_HEADER_BYTES + tableBytes));
    this.sessions = sessions;
    this.atMs = atMs;
    this.appliedIndex = index;
  }
}
