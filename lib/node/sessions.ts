/**
 * SessionTable: the replicated record of which requests were applied, so that a request retried
 * by its node (after a lost forward, a lost reply or a leader change) takes effect once.
 *
 * Raft dissertation §6.3: a node first *registers* a session; the id is assigned by the log (the
 * registering record's position: entry index × 2^20 + position in the entry), so an id is never
 * issued twice. The node numbers its requests (`seq` from 1); the table remembers, per session,
 * the result of every request at or above the session's `floor` (the lowest request the node
 * still waits for, sent with every record). A request below the floor is settled for its node and
 * is ignored (`stale`); one at or above it whose result is remembered is a duplicate and returns
 * that result. A record of a session the table does not know (never registered, or forgotten) is
 * `expired`: it is never applied, and since ids are never reissued, no copy of it ever can be.
 *
 * Part of the replicated state: every member applies the same entries to it in the same order and
 * it travels in snapshots. Time is entry time. Bounded: sessions idle for `idleMs` are forgotten,
 * at most `sessionsMax` are kept (least recently active forgotten first), and a session keeps at
 * most `resultsMax` results (the oldest is forgotten and the floor raised past it, so a late copy
 * of that request is stale rather than applied twice). A forgotten session costs its node the
 * outcome of what it was waiting for, never a request applied twice.
 */
import { Packr } from 'msgpackr';
import { MSGPACK_OPTIONS } from '../contracts/msgpack-options.js';

interface Session {
  floor: number;
  lastAtMs: number;
  /** The registering record's body (a member's id; a client's id and random token). */
  readonly who: Uint8Array;
  /** seq -> result, for applied requests at or above `floor`. */
  readonly results: SeqResults;
}

/** Marks a seq of the window that has no result (not applied, or not yet). */
const HOLE: unknown = Symbol('hole');
/** A seq further than this past the window's end is kept aside instead of widening the window. */
const WINDOW_GAP_MAX = 4096;

/**
 * The results of one session by seq, for seqs at or above its floor. A node numbers its requests
 * in order and they are mostly applied in order, so results live in a window: an array whose
 * first slot is the floor's seq, with a HOLE for a seq not applied (yet). Recording the next seq
 * is a push and raising the floor drops slots from the front, with no hashing and no per-result
 * allocation (a Map's table was rebuilt every few thousand requests and its entries outlived the
 * young generation). A seq more than WINDOW_GAP_MAX past the window's end (a node whose earlier
 * requests never reached the log) goes to a side map, so the window stays proportional to what
 * is held.
 */
export class SeqResults {
  /** The seq of slots[head]; always the session's floor. */
  private base = 1;
  private slots: unknown[] = [];
  private head = 0;
  private aside: Map<number, unknown> | undefined;
  /** Results held. */
  size = 0;

  has(seq: number): boolean {
    const i = seq - this.base;
    if (i >= 0 && i < this.slots.length - this.head && this.slots[this.head + i] !== HOLE) return true;
    return this.aside !== undefined && this.aside.has(seq);
  }

  /** The result of `seq` (undefined when none: use `has` first). */
  get(seq: number): unknown {
    const i = seq - this.base;
    if (i >= 0 && i < this.slots.length - this.head) {
      const v = this.slots[this.head + i];
      if (v !== HOLE) return v;
    }
    return this.aside?.get(seq);
  }

  /** Keeps `value` for `seq` (at or above the floor; not held yet). */
  set(seq: number, value: unknown): void {
    const i = seq - this.base;
    if (i < 0) throw new Error(`seq ${seq} is below the floor ${this.base}`);
    const held = this.slots.length - this.head;
    if (i < held) {
      if (this.slots[this.head + i] === HOLE && this.aside?.has(seq) !== true) this.size++;
      this.slots[this.head + i] = value;
      this.aside?.delete(seq);
      return;
    }
    if (i - held > WINDOW_GAP_MAX) {
      this.aside ??= new Map();
      if (!this.aside.has(seq)) this.size++;
      this.aside.set(seq, value);
      return;
    }
    for (let k = held; k < i; k++) this.slots.push(this.aside?.has(this.base + k) === true ? this.takeAside(this.base + k) : HOLE);
    if (this.aside?.has(seq) !== true) this.size++;
    this.aside?.delete(seq);
    this.slots.push(value);
  }

  private takeAside(seq: number): unknown {
    const v = (this.aside as Map<number, unknown>).get(seq);
    (this.aside as Map<number, unknown>).delete(seq);
    return v;
  }

  /** The lowest seq held, or undefined. */
  lowest(): number | undefined {
    for (let k = this.head; k < this.slots.length; k++) if (this.slots[k] !== HOLE) return this.base + (k - this.head);
    let low: number | undefined;
    if (this.aside !== undefined) for (const seq of this.aside.keys()) if (low === undefined || seq < low) low = seq;
    return low;
  }

  /** Forgets every result below `floor` (a floor never goes down). */
  raiseFloor(floor: number): void {
    if (floor <= this.base) return;
    const held = this.slots.length - this.head;
    const drop = Math.min(floor - this.base, held);
    for (let k = this.head; k < this.head + drop; k++) {
      if (this.slots[k] !== HOLE) this.size--;
      this.slots[k] = undefined;
    }
    this.head += drop;
    this.base = floor;
    if (this.head === this.slots.length) {
      this.slots = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.slots.length) {
      this.slots = this.slots.slice(this.head);
      this.head = 0;
    }
    if (this.aside !== undefined) {
      for (const seq of [...this.aside.keys()]) {
        if (seq < floor) {
          this.aside.delete(seq);
          this.size--;
        }
      }
      if (this.aside.size === 0) this.aside = undefined;
    }
  }

  /** [seqs, results], in seq order. */
  entries(): [number[], unknown[]] {
    const pairs: [number, unknown][] = [];
    for (let k = this.head; k < this.slots.length; k++) if (this.slots[k] !== HOLE) pairs.push([this.base + (k - this.head), this.slots[k]]);
    if (this.aside !== undefined) {
      for (const [seq, v] of this.aside) pairs.push([seq, v]);
      pairs.sort((a, b) => a[0] - b[0]);
    }
    return [pairs.map((p) => p[0]), pairs.map((p) => p[1])];
  }
}

/** What the table says of a record about to be applied. */
export const Verdict = { New: 0, Duplicate: 1, Stale: 2, Expired: 3 } as const;

/** Session ids: entry index × 2^20 + the record's position in the entry. */
export const SESSION_POSITIONS = 2 ** 20;

export function sessionIdAt(index: number, position: number): number {
  return index * SESSION_POSITIONS + position;
}
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

export interface SessionLimits {
  /** Forget a session after this long without a request (entry time). */
  readonly idleMs: number;
  readonly sessionsMax: number;
  readonly resultsMax: number;
}

export const SESSION_LIMITS_DEFAULT: SessionLimits = Object.freeze({ idleMs: 10 * 60 * 1000, sessionsMax: 100_000, resultsMax: 1_000_000 });

const packr = new Packr({ ...MSGPACK_OPTIONS });

/**
 * Snapshot row: [session, floor, lastAtMs, seqs, results, who]. Rows of snapshots written before
 * `who` was kept have five fields (no owner known).
 */
type SessionRow = [number, number, number, number[], unknown[], Uint8Array];

const NO_OWNER = new Uint8Array(0);

export class SessionTable {
  /** Insertion order is recency order: the first session is the least recently active. */
  private sessions = new Map<number, Session>();
  private current: Session | undefined;
  /** The result of the last `check` that returned Duplicate. */
  duplicateResult: unknown = undefined;

  constructor(private readonly limits: SessionLimits = SESSION_LIMITS_DEFAULT) {}

  get size(): number {
    return this.sessions.size;
  }

  has(session: number): boolean {
    return this.sessions.has(session);
  }

  /**
   * What the table knows of request (session, seq), without changing anything: its remembered
   * result, `stale` (settled below the floor), `expired` (no such session) or `unknown` (not
   * applied).
   */
  lookup(session: number, seq: number): { readonly kind: 'result'; readonly value: unknown } | { readonly kind: 'stale' | 'expired' | 'unknown' } {
    const s = this.sessions.get(session);
    if (s === undefined) return { kind: 'expired' };
    if (seq < s.floor) return { kind: 'stale' };
    return s.results.has(seq) ? { kind: 'result', value: s.results.get(seq) } : { kind: 'unknown' };
  }

  /** Results held, over every session (for metrics and tests). */
  resultCount(): number {
    let n = 0;
    for (const s of this.sessions.values()) n += s.results.size;
    return n;
  }

  /** Forgets sessions idle since before `atMs - idleMs`. Call once per entry. */
  expire(atMs: number): void {
    for (const [id, s] of this.sessions) {
      if (atMs - s.lastAtMs < this.limits.idleMs) return;
      this.sessions.delete(id);
    }
  }

  /** Who registered `session` (empty when unknown: a snapshot from before owners were kept). */
  owner(session: number): Uint8Array | undefined {
    return this.sessions.get(session)?.who;
  }

  /** Opens session `id` (assigned by the log: see sessionIdAt) at entry time `atMs`, for `who`. */
  register(id: number, atMs: number, who: Uint8Array = NO_OWNER): void {
    this.sessions.set(id, { floor: 1, lastAtMs: atMs, results: new SeqResults(), who });
    if (this.sessions.size > this.limits.sessionsMax) {
      const oldest = this.sessions.keys().next().value as number;
      this.sessions.delete(oldest);
    }
  }

  /**
   * Judges record (session, seq, floor) at entry time `atMs` and moves the session's floor. On
   * New, call `record` with the result once applied; on Duplicate, `duplicateResult` holds it.
   */
  check(session: number, seq: number, floor: number, atMs: number): Verdict {
    const s = this.sessions.get(session);
    if (s === undefined) return Verdict.Expired;
    if (s.lastAtMs !== atMs) {
      // Most recently active goes last (Map order), so expiry and eviction take the front.
      s.lastAtMs = atMs;
      this.sessions.delete(session);
      this.sessions.set(session, s);
    }
    if (floor > s.floor) this.raiseFloor(s, floor);
    this.current = s;
    if (seq < s.floor) return Verdict.Stale;
    if (s.results.has(seq)) {
      this.duplicateResult = s.results.get(seq);
      return Verdict.Duplicate;
    }
    return Verdict.New;
  }

  /** Remembers the result of the record `check` just judged New. */
  record(seq: number, result: unknown): void {
    const s = this.current as Session;
    s.results.set(seq, result);
    if (s.results.size > this.limits.resultsMax) {
      const oldest = s.results.lowest() as number;
      this.raiseFloor(s, oldest + 1);
    }
  }

  private raiseFloor(s: Session, floor: number): void {
    s.floor = floor;
    s.results.raiseFloor(floor);
  }

  /** The table as msgpack bytes; `forSnapshot` maps each kept result to what is written. */
  encode(forSnapshot?: (result: unknown) => unknown): Uint8Array {
    const rows: SessionRow[] = [];
    for (const [id, s] of this.sessions) {
      const [seqs, results] = s.results.entries();
      rows.push([id, s.floor, s.lastAtMs, seqs, forSnapshot === undefined ? results : results.map(forSnapshot), s.who]);
    }
    return packr.pack(rows);
  }

  /** Replaces the table with one `encode` produced. Throws on malformed bytes. */
  restore(bytes: Uint8Array): void {
    const rows = packr.unpack(bytes) as unknown;
    if (!Array.isArray(rows)) throw new Error('session table: not an array');
    const sessions = new Map<number, Session>();
    for (const row of rows as unknown[]) {
      if (!Array.isArray(row) || (row.length !== 5 && row.length !== 6)) throw new Error('session table: malformed row');
      const [id, floor, lastAtMs, seqs, results, who = NO_OWNER] = row as SessionRow;
      if (!(who instanceof Uint8Array)) throw new Error('session table: malformed row');
      if (![id, floor, lastAtMs].every((x) => typeof x === 'number') || !Array.isArray(seqs) || !Array.isArray(results) || seqs.length !== results.length) {
        throw new Error('session table: malformed row');
      }
      if (!seqs.every((seq) => Number.isSafeInteger(seq))) throw new Error('session table: malformed row');
      const held = new SeqResults();
      held.raiseFloor(floor);
      // A snapshot of an earlier version may hold results below the floor: they were never read.
      seqs.forEach((seq, i) => {
        if (seq >= floor && !held.has(seq)) held.set(seq, results[i]);
      });
      sessions.set(id, { floor, lastAtMs, results: held, who: who.slice() });
    }
    this.sessions = sessions;
    this.current = undefined;
  }
}
