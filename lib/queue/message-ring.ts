/**
 * MessageRing: the retained messages of one topic, as parallel ring buffers indexed by offset.
 *
 * Why parallel arrays: a waiting message costs ~30 bytes here (a reference to the ArrayBuffer
 * holding its bytes, their byte offset and length, the publish time and a done-count) instead of
 * a ~100-byte object per message. The payload bytes are never copied: they stay where the command
 * decoder found them, inside the entry. Only the Uint8Array view object is not kept (V8 spends
 * ~200 bytes on one), so payloadAt() makes a fresh view onto the same bytes when one is handed out.
 *
 * Offsets [headOffset, tailOffset) are held; inside that window a slot whose payload is undefined
 * is a hole: a message every group finished out of order. The head is always a live message (or
 * the ring is empty), so holes exist only behind a live one.
 */
import { assert } from '../core/assert.js';

/** Smallest ring capacity; capacities are powers of two so that a mask maps positions to slots. */
const RING_SLOTS_MIN = 16;

/** Where a dead-lettered message came from, kept with the message in the dead-letter topic. */
export interface DeadLetterHeader {
  topic: string;
  offset: number;
  reason: 'maxDeliveries';
  attempts: number;
  group: string;
}

export class MessageRing {
  /** Offset of the oldest held slot (a live message unless the ring is empty). */
  headOffset = 0;
  /** The offset the next message gets. */
  tailOffset = 0;
  /** Live messages (holes excluded) and their payload bytes. */
  liveCount = 0;
  liveBytes = 0;

  private slots = RING_SLOTS_MIN;
  private mask = RING_SLOTS_MIN - 1;
  /** Slot of headOffset. */
  private headSlot = 0;
  /** Backing buffer of each payload; undefined marks a hole. */
  private buffers: (ArrayBufferLike | undefined)[] = new Array<ArrayBufferLike | undefined>(RING_SLOTS_MIN).fill(undefined);
  private byteOffsets = new Float64Array(RING_SLOTS_MIN);
  private lengths = new Uint32Array(RING_SLOTS_MIN);
  private publishedAt = new Float64Array(RING_SLOTS_MIN);
  private doneCounts = new Uint16Array(RING_SLOTS_MIN);
  /** Dead-letter headers by offset: sparse, only messages in a dead-letter topic have one. */
  readonly headers = new Map<number, DeadLetterHeader>();

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
    if (this.span === this.slots) this.resize(this.slots * 2);
    const offset = this.tailOffset++;
    const slot = (this.headSlot + (offset - this.headOffset)) & this.mask;
    assert(length <= 0xffff_ffff, 'a payload fits a uint32 length');
    this.buffers[slot] = buffer;
    this.byteOffsets[slot] = byteOffset;
    this.lengths[slot] = length;
    this.publishedAt[slot] = publishedAtMs;
    this.doneCounts[slot] = 0;
    if (header !== undefined) this.headers.set(offset, header);
    this.liveCount++;
    this.liveBytes += length;
    return offset;
  }

  /** Appends a hole-free run restored from a snapshot: offsets must ascend and start at or after the tail. */
  restore(offset: number, payload: Uint8Array, publishedAtMs: number, doneCount: number): void {
    assert(offset >= this.tailOffset, 'restored offsets ascend');
    if (this.liveCount === 0) {
      this.headOffset = offset;
      this.tailOffset = offset;
    }
    this.restoreTail(offset);
    this.push(payload, publishedAtMs);
    this.doneCounts[this.slotOf(offset)] = doneCount;
  }

  /** Extends the window with holes up to `tailOffset` (snapshot restore: finished messages at the end). */
  restoreTail(tailOffset: number): void {
    assert(tailOffset >= this.tailOffset, 'the restored tail does not move back');
    if (this.liveCount === 0) {
      this.headOffset = tailOffset;
      this.tailOffset = tailOffset;
      return;
    }
    while (this.tailOffset < tailOffset) {
      if (this.span === this.slots) this.resize(this.slots * 2);
      this.buffers[this.slotOf(this.tailOffset)] = undefined;
      this.tailOffset++;
    }
  }

  /** Calls `visit` for each live message, oldest first (snapshots). */
  forEachLive(visit: (offset: number, payload: Uint8Array, publishedAtMs: number, doneCount: number) => void): void {
    for (let offset = this.headOffset; offset < this.tailOffset; offset++) {
      const slot = this.slotOf(offset);
      const buffer = this.buffers[slot];
      if (buffer === undefined) continue;
      const payload = new Uint8Array(buffer, this.byteOffsets[slot] as number, this.lengths[slot] as number);
      visit(offset, payload, this.publishedAt[slot] as number, this.doneCounts[slot] as number);
    }
  }

  /** Whether `offset` holds a live message (not a hole, not outside the window). */
  isLive(offset: number): boolean {
    return offset >= this.headOffset && offset < this.tailOffset && this.buffers[this.slotOf(offset)] !== undefined;
  }

  /** A fresh view onto the payload bytes at `offset`, or undefined when it is not live. */
  payloadAt(offset: number): Uint8Array | undefined {
    if (offset < this.headOffset || offset >= this.tailOffset) return undefined;
    const slot = this.slotOf(offset);
    const buffer = this.buffers[slot];
    return buffer === undefined ? undefined : new Uint8Array(buffer, this.byteOffsets[slot] as number, this.lengths[slot] as number);
  }

  publishedAtOf(offset: number): number {
    return this.publishedAt[this.slotOf(offset)] as number;
  }

  doneCountOf(offset: number): number {
    return this.doneCounts[this.slotOf(offset)] as number;
  }

  /**
   * Records that one more group finished `offset`; removes the message when `groupCount` have.
   * Returns true when it was removed.
   */
  markDone(offset: number, groupCount: number): boolean {
    const slot = this.slotOf(offset);
    assert(this.buffers[slot] !== undefined, 'a group finishes only a live message');
    const done = (this.doneCounts[slot] as number) + 1;
    if (done < groupCount) {
      this.doneCounts[slot] = done;
      return false;
    }
    this.remove(offset);
    return true;
  }

  /** Removes the live message at `offset` (finished by all groups, or dropped by retention). */
  remove(offset: number): void {
    const slot = this.slotOf(offset);
    assert(this.buffers[slot] !== undefined, 'only a live message is removed');
    this.buffers[slot] = undefined;
    this.liveCount--;
    this.liveBytes -= this.lengths[slot] as number;
    if (this.headers.size > 0) this.headers.delete(offset);
    if (offset === this.headOffset) this.advanceHead();
  }

  /** Moves the head past holes, so it rests on a live message or the tail; shrinks a mostly empty ring. */
  private advanceHead(): void {
    while (this.headOffset < this.tailOffset && this.buffers[this.headSlot] === undefined) {
      this.headOffset++;
      this.headSlot = (this.headSlot + 1) & this.mask;
    }
    if (this.slots > RING_SLOTS_MIN && this.span * 4 < this.slots) this.resize(this.slots / 2);
  }

  private slotOf(offset: number): number {
    return (this.headSlot + (offset - this.headOffset)) & this.mask;
  }

  private resize(slots: number): void {
    const buffers = new Array<ArrayBufferLike | undefined>(slots).fill(undefined);
    const byteOffsets = new Float64Array(slots);
    const lengths = new Uint32Array(slots);
    const publishedAt = new Float64Array(slots);
    const doneCounts = new Uint16Array(slots);
    const span = this.span;
    for (let i = 0; i < span; i++) {
      const from = (this.headSlot + i) & this.mask;
      buffers[i] = this.buffers[from];
      byteOffsets[i] = this.byteOffsets[from] as number;
      lengths[i] = this.lengths[from] as number;
      publishedAt[i] = this.publishedAt[from] as number;
      doneCounts[i] = this.doneCounts[from] as number;
    }
    this.buffers = buffers;
    this.byteOffsets = byteOffsets;
    this.lengths = lengths;
    this.publishedAt = publishedAt;
    this.doneCounts = doneCounts;
    this.slots = slots;
    this.mask = slots - 1;
    this.headSlot = 0;
  }
}
