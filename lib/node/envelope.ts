/**
 * The node layer's entry format: what a Normal log entry's `data` holds.
 *
 *   entry   := header record*
 *   header  := u8 format (1) | u8 flags (0) | f64 atMs | u32 recordCount          (14 bytes)
 *   record  := f64 session | f64 seq | f64 floor | u32 bodyLength | body           (28 + n)
 *
 * An entry batches the requests queued between two pumps of the Ready loop: the leader's own and
 * those followers forwarded, each a record. `atMs` is the leader's wall clock, written once into
 * the fixed header when it proposes the entry (no decoding, no re-encoding). A record names its request by
 * (session, seq): `session` is the id the log gave the node's registration (a record of session
 * 0, see REGISTER_SESSION), `seq` counts that node's requests, and `floor` is the lowest seq the
 * node still waits for (every request below it is settled, so the replicated session table may
 * forget their results). `body` is the state
 * machine's command, exactly as submitted: the node never looks inside it.
 *
 * Followers forward record blocks (records without a header), so the leader copies a forwarded
 * batch into its entry with one memcpy. An entry with no records is a time tick.
 *
 * Numbers are float64 so that every safe integer fits and no BigInt is needed.
 */

export const ENTRY_FORMAT = 1;
export const ENTRY_HEADER_BYTES = 14;
export const RECORD_HEADER_BYTES = 28;
/** Most records in one forwarded block or entry (a bound on what a peer can make us parse). */
export const RECORDS_PER_BLOCK_MAX = 1 << 20;
/** Session ids are below this (exact in a float64). */
export const SESSION_ID_LIMIT = 2 ** 53;
/**
 * The session of a registration record: it opens a session (lib/node/sessions.ts) whose id the
 * log assigns; its `seq` is the registering node's nonce and its body the node's id.
 */
export const REGISTER_SESSION = 0;

/** One request as it is replicated. */
export interface RecordRef {
  readonly session: number;
  readonly seq: number;
  readonly floor: number;
  readonly body: Uint8Array;
}

/** A run of encoded records (a forwarded batch) and how many it holds. */
export interface RecordBlock {
  readonly bytes: Uint8Array;
  readonly count: number;
}

/** Writes one record at `offset` of `out`; returns the offset after it. */
function writeRecord(out: Uint8Array, view: DataView, offset: number, r: RecordRef): number {
  view.setFloat64(offset, r.session);
  view.setFloat64(offset + 8, r.seq);
  view.setFloat64(offset + 16, r.floor);
  view.setUint32(offset + 24, r.body.length);
  out.set(r.body, offset + RECORD_HEADER_BYTES);
  return offset + RECORD_HEADER_BYTES + r.body.length;
}

/** The bytes `r` takes in a block or entry. */
export function recordBytes(r: RecordRef): number {
  return RECORD_HEADER_BYTES + r.body.length;
}

/** Encodes records as a block (for forwarding to the leader). */
export function encodeBlock(records: readonly RecordRef[]): RecordBlock {
  let total = 0;
  for (const r of records) total += recordBytes(r);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const r of records) offset = writeRecord(out, view, offset, r);
  return { bytes: out, count: records.length };
}

/**
 * Checks that `bytes` is a well-formed block of at most `recordsMax` records, each body at most
 * `bodyBytesMax`: returns the record count, or a reason. Never throws (the bytes come from a peer).
 */
export function checkBlock(bytes: Uint8Array, recordsMax: number, bodyBytesMax: number): number | string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  let count = 0;
  while (offset < bytes.length) {
    if (offset + RECORD_HEADER_BYTES > bytes.length) return 'truncated record header';
    const session = view.getFloat64(offset);
    const seq = view.getFloat64(offset + 8);
    const floor = view.getFloat64(offset + 16);
    const length = view.getUint32(offset + 24);
    if (!validId(session) || session >= SESSION_ID_LIMIT || !validId(seq) || !validId(floor)) return 'bad session, seq or floor';
    if (length > bodyBytesMax) return `a body of ${length} bytes is over ${bodyBytesMax}`;
    offset += RECORD_HEADER_BYTES + length;
    if (offset > bytes.length) return 'truncated record body';
    if (++count > recordsMax) return `more than ${recordsMax} records`;
  }
  return count;
}

function validId(x: number): boolean {
  return Number.isSafeInteger(x) && x >= 0;
}

/**
 * Builds entry data from records and forwarded blocks, in the order they were added. Parts are
 * kept by reference until `build`, which copies each once into the entry. Records are kept in
 * parallel arrays (no object per record: a batch holds thousands).
 */
export class EntryBuilder {
  private sessions: number[] = [];
  private seqs: number[] = [];
  private floors: number[] = [];
  private bodies: Uint8Array[] = [];
  private blocks: RecordBlock[] = [];
  /** Part order: the index of the next block at each position, or -1 for the next record. */
  private order: number[] = [];
  private bytesTotal = 0;
  private countTotal = 0;

  get count(): number {
    return this.countTotal;
  }

  /** Bytes the entry would take. */
  get bytes(): number {
    return ENTRY_HEADER_BYTES + this.bytesTotal;
  }

  get empty(): boolean {
    return this.order.length === 0;
  }

  addRecord(session: number, seq: number, floor: number, body: Uint8Array): void {
    this.sessions.push(session);
    this.seqs.push(seq);
    this.floors.push(floor);
    this.bodies.push(body);
    this.order.push(-1);
    this.bytesTotal += RECORD_HEADER_BYTES + body.length;
    this.countTotal++;
  }

  addBlock(b: RecordBlock): void {
    this.order.push(this.blocks.length);
    this.blocks.push(b);
    this.bytesTotal += b.bytes.length;
    this.countTotal += b.count;
  }

  /** The entry data stamped with `atMs`; the builder is empty afterwards. */
  build(atMs: number): Uint8Array {
    const out = new Uint8Array(this.bytes);
    const view = new DataView(out.buffer);
    view.setUint8(0, ENTRY_FORMAT);
    view.setUint8(1, 0);
    view.setFloat64(2, atMs);
    view.setUint32(10, this.countTotal);
    let offset = ENTRY_HEADER_BYTES;
    let ri = 0;
    for (const part of this.order) {
      if (part >= 0) {
        const b = this.blocks[part] as RecordBlock;
        out.set(b.bytes, offset);
        offset += b.bytes.length;
        continue;
      }
      const body = this.bodies[ri] as Uint8Array;
      view.setFloat64(offset, this.sessions[ri] as number);
      view.setFloat64(offset + 8, this.seqs[ri] as number);
      view.setFloat64(offset + 16, this.floors[ri] as number);
      view.setUint32(offset + 24, body.length);
      out.set(body, offset + RECORD_HEADER_BYTES);
      offset += RECORD_HEADER_BYTES + body.length;
      ri++;
    }
    this.sessions = [];
    this.seqs = [];
    this.floors = [];
    this.bodies = [];
    this.blocks = [];
    this.order = [];
    this.bytesTotal = 0;
    this.countTotal = 0;
    return out;
  }
}

/** An entry with no records: time passes (deadlines in the state machine may fire). */
export function timeTickEntry(atMs: number): Uint8Array {
  return new EntryBuilder().build(atMs);
}

/** A decoded entry header: its time and where its records are. */
export interface EntryView {
  readonly atMs: number;
  readonly count: number;
}

/**
 * Reads entry data: checks the whole entry first, then calls `onRecord` for each record with
 * where its body is (`data[start, end)`; no view is made). Returns the header, or a reason when
 * the data is not in this format (an incompatible writer, or damage); `onRecord` is not called then.
 */
export function readEntry(
  data: Uint8Array,
  onRecord: (session: number, seq: number, floor: number, start: number, end: number) => void,
): EntryView | string {
  if (data.length < ENTRY_HEADER_BYTES) return `entry of ${data.length} bytes is shorter than its header`;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const format = view.getUint8(0);
  if (format !== ENTRY_FORMAT) return `entry format ${format} (this version reads format ${ENTRY_FORMAT})`;
  const atMs = view.getFloat64(2);
  const count = view.getUint32(10);
  if (!Number.isFinite(atMs) || atMs < 0) return 'entry time is not a non-negative number';
  let offset = ENTRY_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (offset + RECORD_HEADER_BYTES > data.length) return `record ${i} of ${count} is truncated`;
    offset += RECORD_HEADER_BYTES + view.getUint32(offset + 24);
    if (offset > data.length) return `record ${i} of ${count} is truncated`;
  }
  if (offset !== data.length) return `${data.length - offset} bytes after the last record`;
  offset = ENTRY_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const start = offset + RECORD_HEADER_BYTES;
    const end = start + view.getUint32(offset + 24);
    onRecord(view.getFloat64(offset), view.getFloat64(offset + 8), view.getFloat64(offset + 16), start, end);
    offset = end;
  }
  return { atMs, count };
}

/**
 * Calls `onRecord` for each record of a block `checkBlock` accepted (session, seq, floor and the
 * body's bounds in `bytes`). Stops early when `onRecord` returns false.
 */
export function forEachRecord(bytes: Uint8Array, onRecord: (session: number, seq: number, floor: number, start: number, end: number) => boolean): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  while (offset + RECORD_HEADER_BYTES <= bytes.length) {
    const start = offset + RECORD_HEADER_BYTES;
    const end = start + view.getUint32(offset + 24);
    if (end > bytes.length) return;
    if (!onRecord(view.getFloat64(offset), view.getFloat64(offset + 8), view.getFloat64(offset + 16), start, end)) return;
    offset = end;
  }
}

/**
 * The leader's stamp (`atMs`) of an entry that carries requests; undefined for a time tick, an
 * entry of another format or one too short (never throws: used for metrics only).
 */
export function entryStampMs(data: Uint8Array): number | undefined {
  if (data.length < ENTRY_HEADER_BYTES || data[0] !== ENTRY_FORMAT) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, ENTRY_HEADER_BYTES);
  if (view.getUint32(10) === 0) return undefined;
  return view.getFloat64(2);
}
