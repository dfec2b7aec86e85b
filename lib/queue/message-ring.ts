/**
 * MessageRing: the retained messages of one topic, as parallel arrays in pages indexed by offset.
 *
 * Why parallel arrays: a waiting message costs ~30 bytes here (a reference to the ArrayBuffer
 * holding its bytes, their byte offset and length, the publish time and a done-count) instead of
 * a ~100-byte object per message. The payload bytes are never copied: they stay where the command
 * decoder found them, inside the entry. Only the Uint8Array view object is not kept (V8 spends
 * ~200 bytes on one), so payloadAt() makes a fresh view onto the same bytes when one is handed out.
 *
 * Why pages: a snapshot must capture the state in a few microseconds however deep the backlog,
 * and then copy it out over many event-loop turns while messages keep arriving and leaving. A
 * capture takes references to the pages' arrays and starts a new epoch; the first write to a page
 * of an older epoch copies that page's arrays first (copy-on-write, at most PAGE_SLOTS slots), so
 * the capture keeps seeing the state it took. Pages hold the offsets [n*PAGE_SLOTS, (n+1)*PAGE_SLOTS);
 * the last page's arrays grow as it fills, so a small topic costs a few hundred bytes. Message
 * options (MessageMeta) live in the pages too, in a sparse per-page array (absent from a page
 * none of whose messages has any), so a capture holds them as they were, and a meta is never
 * changed in place (a changed copy is set instead).
 *
 * Offsets [headOffset, tailOffset) are held; inside that window a slot whose buffer is undefined
 * is a hole: a message every group finished out of order. The head is always a live message (or
 * the ring is empty), so holes exist only behind a live one. A page whose messages are all
 * finished is dropped even in the middle of the window.
 */
import { assert } from '../core/assert.js';

/** Slots per page (a power of two). */
export const PAGE_SLOTS = 1024;
/** Slots of a new last page; it doubles up to PAGE_SLOTS as it fills. */
const PAGE_SLOTS_MIN = 16;

/** Where a dead-lettered message came from, kept with the message in the dead-letter topic. */
export interface DeadLetterHeader {
  topic: string;
  offset: number;
  /** 'maxDeliveries': its attempts ran out; 'expired': its time to live passed. */
  reason: 'maxDeliveries' | 'expired';
  attempts: number;
  group: string;
}

/**
 * What a message published with options carries beyond its payload (sparse: a plain message has
 * none). One shape for every such message (monomorphic); 0 means "none" for the times.
 */
export interface MessageMeta {
  /** Entry time it becomes deliverable; 0: at once. */
  readonly dueMs: number;
  readonly key: string | undefined;
  /** 0 to 9 (PRIORITY_DEFAULT when not given). */
  readonly priority: number;
  /** Entry time it expires; 0: never. */
  readonly expiresAtMs: number;
  readonly headers: Readonly<Record<string, string>> | undefined;
  /**
   * Expired, and one group already made its dead letter: every other group finishes it without
   * a copy (one dead letter per message). Kept in snapshots. A meta is never changed in place
   * (a snapshot capture may share it): set a changed copy with ring.meta.set.
   */
  readonly expiredDeadLettered: boolean;
}

/**
 * Bytes of a meta's record in a snapshot (see lib/queue/snapshot.ts): offset, due and expiry
 * times f64, priority u8, flags u8, then the key (u32 length, UTF-8) and the headers (u32 count,
 * then per header u32 length + UTF-8 name, u32 length + UTF-8 value) when present.
 */
export function metaRecordBytes(m: MessageMeta): number {
  let n = META_RECORD_FIXED_BYTES;
  if (m.key !== undefined) n += 4 + Buffer.byteLength(m.key, 'utf8');
  if (m.headers !== undefined) {
    n += 4;
    for (const name in m.headers) n += 8 + Buffer.byteLength(name, 'utf8') + Buffer.byteLength(m.headers[name] as string, 'utf8');
  }
  return n;
}

/** The fixed part of a meta record: offset, due, expiry (f64 each), priority, flags (u8 each). */
export const META_RECORD_FIXED_BYTES = 26;

/** The arrays of one page: slot i holds offset base + i. */
export interface PageArrays {
  readonly base: number;
  /** Backing buffer of each payload; undefined marks a hole (or a slot not yet written). */
  readonly buffers: (ArrayBufferLike | undefined)[];
  readonly byteOffsets: Float64Array;
  readonly lengths: Uint32Array;
  readonly publishedAt: Float64Array;
  readonly doneCounts: Uint16Array;
  /** Message options by slot; undefined when no message of the page has any (the usual case). */
  readonly metas: readonly (MessageMeta | undefined)[] | undefined;
}

interface Page extends PageArrays {
  metas: (MessageMeta | undefined)[] | undefined;
  /** Slots of `metas` holding one (metas is undefined when 0). */
  metaCount: number;
  /** The ring epoch these arrays belong to: an older one is shared with a snapshot capture. */
  epoch: number;
  /** Live messages in the page. */
  live: number;
}

/**
 * The live messages of a ring as of one moment, oldest first: what a snapshot holds. It shares
 * the ring's page arrays (the ring copies a page before changing it), so taking one costs a copy
 * of the page list; reading it walks the window [headOffset, tailOffset).
 */
export interface RingCapture {
  readonly count: number;
  /** Sum of the payload lengths. */
  readonly bytes: number;
  readonly headOffset: number;
  readonly tailOffset: number;
  /** Pages by page number minus firstPage; undefined where every message was finished. */
  readonly pages: readonly (PageArrays | undefined)[];
  readonly firstPage: number;
  /** Messages with options among them, and the bytes of their snapshot records (metaRecordBytes). */
  readonly metaCount: number;
  readonly metaBytes: number;
}

/**
 * Visits the live messages of a capture at offsets from `from` on, oldest first, until `visit`
 * returns false (after handling that message). Returns the offset to resume from: the capture's
 * tailOffset once every message was visited.
 */
export function walkCapture(c: RingCapture, from: number, visit: (page: PageArrays, slot: number, offset: number) => boolean): number {
  return walkCaptureRuns(c, from, (page, start, end) => {
    for (let slot = start; slot < end; slot++) if (!visit(page, slot, page.base + slot)) return slot + 1 - start;
    return end - start;
  });
}

/**
 * Visits the live messages of a capture from offset `from` on as runs of consecutive live slots
 * of one page, [start, end). `visit` returns how many slots of the run it handled; fewer than
 * the run stops the walk. Returns the offset to resume from (tailOffset once every run was
 * handled whole).
 */
export function walkCaptureRuns(c: RingCapture, from: number, visit: (page: PageArrays, start: number, end: number) => number): number {
  let offset = Math.max(from, c.headOffset);
  while (offset < c.tailOffset) {
    const pageNumber = Math.floor(offset / PAGE_SLOTS);
    const page = c.pages[pageNumber - c.firstPage];
    const pageEnd = Math.min((pageNumber + 1) * PAGE_SLOTS, c.tailOffset);
    if (page === undefined) {
      offset = pageEnd;
      continue;
    }
    const buffers = page.buffers;
    const end = Math.min(pageEnd - page.base, buffers.length);
    let slot = offset - page.base;
    while (slot < end) {
      if (buffers[slot] === undefined) {
        slot++;
        continue;
      }
      let runEnd = slot + 1;
      while (runEnd < end && buffers[runEnd] !== undefined) runEnd++;
      const handled = visit(page, slot, runEnd);
      if (handled < runEnd - slot) return page.base + slot + handled;
      slot = runEnd;
    }
    offset = pageEnd;
  }
  return c.tailOffset;
}

/** Restored payloads are copied into buffers of about this size, so one message left waiting
 * never keeps a whole snapshot's bytes alive. */
const RESTORE_SLAB_BYTES = 1 << 20;

function newPage(base: number, slots: number, epoch: number): Page {
  return {
    base,
    buffers: new Array<ArrayBufferLike | undefined>(slots).fill(undefined),
    byteOffsets: new Float64Array(slots),
    lengths: new Uint32Array(slots),
    publishedAt: new Float64Array(slots),
    doneCounts: new Uint16Array(slots),
    metas: undefined,
    metaCount: 0,
    epoch,
    live: 0,
  };
}

/** A copy of `page` with room for `slots` slots, in `epoch`. */
function copyPage(page: Page, slots: number, epoch: number): Page {
  const copy = newPage(page.base, slots, epoch);
  const n = Math.min(slots, page.buffers.length);
  for (let i = 0; i < n; i++) copy.buffers[i] = page.buffers[i];
  copy.byteOffsets.set(page.byteOffsets.subarray(0, n));
  copy.lengths.set(page.lengths.subarray(0, n));
  copy.publishedAt.set(page.publishedAt.subarray(0, n));
  copy.doneCounts.set(page.doneCounts.subarray(0, n));
  copy.live = page.live;
  if (page.metas !== undefined) copy.metas = page.metas.slice(0, n);
  copy.metaCount = page.metaCount;
  return copy;
}

export class MessageRing {
  /** Offset of the oldest held slot (a live message unless the ring is empty). */
  headOffset = 0;
  /** The offset the next message gets. */
  tailOffset = 0;
  /** Live messages (holes excluded) and their payload bytes. */
  liveCount = 0;
  liveBytes = 0;

  /** Pages from page number firstPage on; undefined for a dropped (all finished) page. */
  private pages: (Page | undefined)[] = [];
  private firstPage = 0;
  /** Bumped by every capture: pages of older epochs are shared and copied before a write. */
  private epoch = 0;
  /** Dead-letter headers by offset: sparse, only messages in a dead-letter topic have one. */
  readonly headers = new Map<number, DeadLetterHeader>();
  /**
   * Message options by offset: sparse, only messages published with options have them. Held in
   * the pages (copied on write with them), so a capture sees the options as they were.
   */
  readonly meta = new MetaStore(this);
  /** Messages with options, and the bytes of their snapshot records. */
  metaCount = 0;
  metaBytes = 0;

  /** Held slots, holes included. */
  get span(): number {
    return this.tailOffset - this.headOffset;
  }

  /** Appends a message and returns its offset. O(1) amortized. */
  push(payload: Uint8Array, publishedAtMs: number, header?: DeadLetterHeader): number {
    return this.pushRange(payload.buffer, payload.byteOffset, payload.length, publishedAtMs, header);
  }

  /** Appends the message whose bytes are `length` bytes of `buffer` at `byteOffset`. */
  pushRange(buffer: ArrayBufferLike, byteOffset: number, length: number, publishedAtMs: number, header?: DeadLetterHeader): number {
    assert(length <= 0xffff_ffff, 'a payload fits a uint32 length');
    const offset = this.tailOffset++;
    if (this.liveCount === 0) {
      // An empty ring restarts at the tail: every older page is gone.
      this.headOffset = offset;
      this.pages = [];
      this.firstPage = Math.floor(offset / PAGE_SLOTS);
    }
    const page = this.writablePage(offset, true);
    const slot = offset - page.base;
    page.buffers[slot] = buffer;
    page.byteOffsets[slot] = byteOffset;
    page.lengths[slot] = length;
    page.publishedAt[slot] = publishedAtMs;
    page.doneCounts[slot] = 0;
    page.live++;
    if (header !== undefined) this.headers.set(offset, header);
    this.liveCount++;
    this.liveBytes += length;
    return offset;
  }

  /**
   * The page of `offset`, ready to be written: created (when `create`), grown to hold the slot,
   * and copied first if a capture shares it.
   */
  private writablePage(offset: number, create: boolean): Page {
    const index = Math.floor(offset / PAGE_SLOTS) - this.firstPage;
    let page = this.pages[index];
    if (page === undefined) {
      assert(create, 'only a push creates a page');
      // A ring reaching a second page is a deep one: later pages start full size.
      page = newPage(Math.floor(offset / PAGE_SLOTS) * PAGE_SLOTS, this.pages.length > 0 ? PAGE_SLOTS : PAGE_SLOTS_MIN, this.epoch);
      while (this.pages.length < index) this.pages.push(undefined);
      this.pages[index] = page;
    }
    const slot = offset - page.base;
    const size = page.buffers.length;
    if (slot >= size || page.epoch !== this.epoch) {
      let slots = size;
      while (slots <= slot) slots *= 2;
      page = copyPage(page, Math.min(slots, PAGE_SLOTS), this.epoch);
      this.pages[index] = page;
    }
    return page;
  }

  /** The page holding a live message at `offset`, or undefined. */
  private livePage(offset: number): Page | undefined {
    if (offset < this.headOffset || offset >= this.tailOffset) return undefined;
    const page = this.pages[Math.floor(offset / PAGE_SLOTS) - this.firstPage];
    if (page === undefined) return undefined;
    const slot = offset - page.base;
    return slot < page.buffers.length && page.buffers[slot] !== undefined ? page : undefined;
  }

  /**
   * The live messages now, for a snapshot (see RingCapture): O(pages), no slot or payload copy.
   * Later changes to the ring do not show in it.
   */
  capture(): RingCapture {
    const capture: RingCapture = {
      count: this.liveCount,
      bytes: this.liveBytes,
      headOffset: this.headOffset,
      tailOffset: this.tailOffset,
      pages: this.pages.slice(),
      firstPage: this.firstPage,
      metaCount: this.metaCount,
      metaBytes: this.metaBytes,
    };
    this.epoch++;
    return capture;
  }

  /**
   * Fills an empty ring from snapshot columns: offsets strictly ascending and below `tail`,
   * `payloads` the messages' bytes back to back (copied into slabs here). The caller validated
   * the columns.
   */
  restoreColumns(tail: number, offsets: Float64Array, publishedAt: Float64Array, lengths: Uint32Array, done: Uint16Array, payloads: Uint8Array): void {
    assert(this.liveCount === 0 && this.tailOffset === 0, 'columns restore an empty ring');
    const count = offsets.length;
    let slab: ArrayBufferLike | undefined;
    let slabStart = 0;
    let slabEnd = 0;
    let at = 0;
    for (let i = 0; i < count; i++) {
      const length = lengths[i] as number;
      if (slab === undefined || at + length > slabEnd) {
        // The next slab: whole messages from here, about RESTORE_SLAB_BYTES (one larger message alone).
        let end = at + length;
        for (let j = i + 1; j < count && end + (lengths[j] as number) - at <= RESTORE_SLAB_BYTES; j++) end += lengths[j] as number;
        // A copy of its own (Buffer#slice would share the caller's memory: with a Buffer from a
        // file, `.buffer` is the whole file and the offsets below would point into its head).
        slab = new Uint8Array(payloads.subarray(at, end)).buffer;
        slabStart = at;
        slabEnd = end;
      }
      // Holes before this message: the window moves on as if they were finished.
      this.tailOffset = offsets[i] as number;
      this.pushRange(slab, at - slabStart, length, publishedAt[i] as number);
      const offset = offsets[i] as number;
      const page = this.writablePage(offset, false);
      page.doneCounts[offset - page.base] = done[i] as number;
      at += length;
    }
    this.tailOffset = tail;
    if (this.liveCount === 0) this.headOffset = tail;
  }

  /**
   * Removes every message at once (purge): the ring is empty from the tail on. A capture taken
   * before keeps the pages it shares.
   */
  clear(): void {
    this.liveCount = 0;
    this.liveBytes = 0;
    this.headOffset = this.tailOffset;
    this.pages = [];
    this.firstPage = Math.floor(this.tailOffset / PAGE_SLOTS);
    this.headers.clear();
    this.metaCount = 0;
    this.metaBytes = 0;
  }

  /** Whether `offset` holds a live message (not a hole, not outside the window). */
  isLive(offset: number): boolean {
    return this.livePage(offset) !== undefined;
  }

  /** A fresh view onto the payload bytes at `offset`, or undefined when it is not live. */
  payloadAt(offset: number): Uint8Array | undefined {
    const page = this.livePage(offset);
    if (page === undefined) return undefined;
    const slot = offset - page.base;
    return new Uint8Array(page.buffers[slot] as ArrayBufferLike, page.byteOffsets[slot] as number, page.lengths[slot] as number);
  }

  publishedAtOf(offset: number): number {
    const page = this.livePage(offset);
    assert(page !== undefined, 'publishedAtOf a live message');
    return page.publishedAt[offset - page.base] as number;
  }

  doneCountOf(offset: number): number {
    const page = this.livePage(offset);
    assert(page !== undefined, 'doneCountOf a live message');
    return page.doneCounts[offset - page.base] as number;
  }

  /**
   * Records that one more group finished `offset`; removes the message when `groupCount` have.
   * Returns true when it was removed.
   */
  markDone(offset: number, groupCount: number): boolean {
    assert(this.livePage(offset) !== undefined, 'a group finishes only a live message');
    const page = this.writablePage(offset, false);
    const slot = offset - page.base;
    const done = (page.doneCounts[slot] as number) + 1;
    if (done < groupCount) {
      page.doneCounts[slot] = done;
      return false;
    }
    this.remove(offset);
    return true;
  }

  /** Removes the live message at `offset` (finished by all groups, or dropped by retention). */
  remove(offset: number): void {
    assert(this.livePage(offset) !== undefined, 'only a live message is removed');
    const page = this.writablePage(offset, false);
    const slot = offset - page.base;
    page.buffers[slot] = undefined;
    page.live--;
    this.liveCount--;
    this.liveBytes -= page.lengths[slot] as number;
    if (this.headers.size > 0) this.headers.delete(offset);
    if (page.metas !== undefined) this.dropMeta(page, slot);
    if (page.live === 0) {
      // Every message of the page is finished: drop it (the last page stays, for the next push).
      const index = Math.floor(offset / PAGE_SLOTS) - this.firstPage;
      if (index < this.pages.length - 1) this.pages[index] = undefined;
    }
    if (offset === this.headOffset) this.advanceHead();
  }

  /** The options of the live message at `offset`, if it has any. */
  metaOf(offset: number): MessageMeta | undefined {
    if (this.metaCount === 0) return undefined;
    const page = this.livePage(offset);
    return page?.metas?.[offset - page.base];
  }

  /** Sets the options of the live message at `offset` (copying its page if a capture shares it). */
  setMeta(offset: number, m: MessageMeta): void {
    assert(this.livePage(offset) !== undefined, 'options belong to a live message');
    const page = this.writablePage(offset, false);
    const slot = offset - page.base;
    if (page.metas?.[slot] !== undefined) this.dropMeta(page, slot);
    const metas = (page.metas ??= new Array<MessageMeta | undefined>(page.buffers.length).fill(undefined));
    while (metas.length <= slot) metas.push(undefined);
    metas[slot] = m;
    page.metaCount++;
    this.metaCount++;
    this.metaBytes += metaRecordBytes(m);
  }

  /** Removes the options of the live message at `offset`; whether it had any. */
  deleteMeta(offset: number): boolean {
    if (this.metaOf(offset) === undefined) return false;
    const page = this.writablePage(offset, false);
    this.dropMeta(page, offset - page.base);
    return true;
  }

  /** Clears a slot's options in a writable page. */
  private dropMeta(page: Page, slot: number): void {
    const m = page.metas?.[slot];
    if (m === undefined) return;
    this.metaCount--;
    this.metaBytes -= metaRecordBytes(m);
    if (--page.metaCount === 0) page.metas = undefined;
    else (page.metas as (MessageMeta | undefined)[])[slot] = undefined;
  }

  /** The messages with options, oldest first (pages without any are skipped whole). */
  *metaEntries(): Generator<[number, MessageMeta]> {
    if (this.metaCount === 0) return;
    for (const page of this.pages) {
      if (page?.metas === undefined) continue;
      const { base, metas } = page;
      for (let slot = 0; slot < metas.length; slot++) {
        const m = metas[slot];
        if (m !== undefined) yield [base + slot, m];
      }
    }
  }

  /** Moves the head past holes and dropped pages to a live message or the tail; drops pages behind it. */
  private advanceHead(): void {
    if (this.liveCount === 0) {
      this.headOffset = this.tailOffset;
      this.pages = [];
      this.firstPage = Math.floor(this.tailOffset / PAGE_SLOTS);
      return;
    }
    let offset = this.headOffset;
    for (;;) {
      const page = this.pages[Math.floor(offset / PAGE_SLOTS) - this.firstPage];
      if (page === undefined || page.live === 0) {
        offset = (Math.floor(offset / PAGE_SLOTS) + 1) * PAGE_SLOTS;
        continue;
      }
      const slot = offset - page.base;
      if (slot < page.buffers.length && page.buffers[slot] !== undefined) break;
      offset++;
    }
    this.headOffset = offset;
    const drop = Math.floor(offset / PAGE_SLOTS) - this.firstPage;
    if (drop > 0) {
      this.pages.splice(0, drop);
      this.firstPage += drop;
    }
  }
}

/**
 * The options of a ring's messages by offset, with the part of Map's interface the queue uses;
 * stored in the ring's pages (see MessageRing.meta).
 */
export class MetaStore {
  constructor(private readonly ring: MessageRing) {}

  get size(): number {
    return this.ring.metaCount;
  }

  get(offset: number): MessageMeta | undefined {
    return this.ring.metaOf(offset);
  }

  has(offset: number): boolean {
    return this.ring.metaOf(offset) !== undefined;
  }

  set(offset: number, m: MessageMeta): this {
    this.ring.setMeta(offset, m);
    return this;
  }

  delete(offset: number): boolean {
    return this.ring.deleteMeta(offset);
  }

  [Symbol.iterator](): Generator<[number, MessageMeta]> {
    return this.ring.metaEntries();
  }
}
