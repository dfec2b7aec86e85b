/**
 * The hand-written append reader against the reference path (msgpackr + the zod wire schema).
 *
 * Contract (append-reader.ts): for any body, `decodeAppendBody` returns either exactly what the
 * reference returns, or undefined (the reference then decides). It never throws, and it decides
 * every append the writer produces within the limits.
 */
import test from 'ava';
import fc from 'fast-check';
import type { PeerMessage } from '../../lib/contracts/transport.js';
import {
  codecSchemas,
  decodeAppendBody,
  decodeMessageBody,
  encodeMessageBody,
  packr,
  resolveCodecLimits,
  toWire,
  unpackBody,
  validateWireMessage,
  type CodecLimits,
  type DecodeResult,
} from '../../transports/index.js';

const limits = resolveCodecLimits({ frameBytesMax: 1 << 20, entriesPerMessageMax: 12, entryBytesMax: 64, nodeIdLengthMax: 16 });

/** The reference: msgpackr, then the zod wire schema, then `to` filled in. */
function reference(body: Uint8Array, l: CodecLimits = limits): DecodeResult<PeerMessage> {
  const raw = unpackBody(body);
  if (!raw.ok) return raw;
  return validateWireMessage(raw.value, 'b', codecSchemas(l));
}

/** Checks the contract for one body; returns whether the fast path decided it. */
function agrees(t: { deepEqual(a: unknown, b: unknown, m?: string): void; fail(m?: string): void }, body: Uint8Array, l: CodecLimits = limits): boolean {
  let fast: ReturnType<typeof decodeAppendBody>;
  try {
    fast = decodeAppendBody(body, 'b', l);
  } catch (error) {
    t.fail(`threw ${String(error)}`);
    return false;
  }
  if (fast === undefined) return false;
  const ref = reference(body, l);
  if (!ref.ok) {
    t.fail(`fast path accepted what the reference refuses (${ref.reason}): ${Buffer.from(body).toString('hex')}`);
    return true;
  }
  t.deepEqual(normalize(fast), normalize(ref.value));
  return true;
}

const uintArb = fc.oneof(fc.nat(200), fc.nat(70_000), fc.nat(), fc.maxSafeNat(), fc.constantFrom(0, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1));
const idArb = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,15}$/);
const entryArb = fc.record({
  index: uintArb,
  term: uintArb,
  type: fc.constantFrom(0 as const, 1 as const, 2 as const),
  data: fc.uint8Array({ maxLength: 64 }),
});
const appendArb = fc.record({
  from: idArb,
  term: uintArb,
  prevLogIndex: uintArb,
  prevLogTerm: uintArb,
  commit: uintArb,
  entries: fc.array(entryArb, { maxLength: 12 }),
});

test('append reader: decides every valid append the writer produces, equal to the reference (seed 0xa99e0001)', (t) => {
  fc.assert(
    fc.property(appendArb, (fields) => {
      const message: PeerMessage = { type: 'append', to: 'b', ...fields };
      const body = encodeMessageBody(message);
      t.true(agrees(t, body), 'the fast path decides writer output within the limits');
      // And through the public entry point, which the memory transport uses.
      const decoded = decodeMessageBody(body, 'b', codecSchemas(limits));
      t.true(decoded.ok);
      if (decoded.ok) t.deepEqual(normalize(decoded.value), normalize(message));
    }),
    { seed: 0xa99e0001, numRuns: 500 },
  );
});

test('append reader: also decides msgpackr encodings of the same value (seed 0xa99e0002)', (t) => {
  fc.assert(
    fc.property(appendArb, (fields) => {
      const message: PeerMessage = { type: 'append', to: 'b', ...fields };
      // msgpackr writes map16 headers and float64 for integers above 2^32: decided all the same.
      t.true(agrees(t, packr.pack(toWire(message))));
    }),
    { seed: 0xa99e0002, numRuns: 500 },
  );
});

/** Wire values near the valid shape: wrong types, bounds just over, odd keys, extra fields. */
const nearValue = fc.oneof(
  uintArb,
  fc.integer({ min: -5, max: 5 }),
  fc.double(),
  fc.constantFrom(2 ** 53, 2 ** 60, -1, 0.5, null, true, '', 'a', 'append', 'heartbeat'),
  idArb,
  fc.string({ maxLength: 20 }),
  fc.uint8Array({ maxLength: 70 }),
);
const nearEntry = fc.oneof(
  fc.tuple(uintArb, uintArb, fc.constantFrom(0, 1, 2), fc.uint8Array({ maxLength: 64 })),
  fc.tuple(nearValue, nearValue, fc.oneof(fc.constantFrom(0, 1, 2, 3, 255, -1), nearValue), nearValue),
  fc.array(nearValue, { maxLength: 5 }),
  fc.record({ index: uintArb, term: uintArb, type: fc.constant(0), data: fc.uint8Array({ maxLength: 4 }) }),
);
/** Mostly `valid`, sometimes `near`: most values then differ from a valid append in one or two places. */
function mostly<T>(valid: fc.Arbitrary<T>, near: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.oneof({ arbitrary: valid, weight: 12 }, { arbitrary: near, weight: 1 });
}
const WIRE_KEYS = ['type', 'from', 'term', 'prevLogIndex', 'prevLogTerm', 'entries', 'commit'];
const nearAppend = fc
  .record({
    type: mostly(fc.constant('append'), nearValue),
    from: mostly(idArb, fc.oneof(nearValue, fc.constantFrom('a'.repeat(16), 'a'.repeat(17), '.a', 'a b', 'é', 'a\n'))),
    term: mostly(uintArb, nearValue),
    prevLogIndex: mostly(uintArb, nearValue),
    prevLogTerm: mostly(uintArb, nearValue),
    entries: mostly(fc.array(mostly(entryArb.map((e) => [e.index, e.term, e.type, e.data]), nearEntry), { maxLength: 14 }), nearValue),
    commit: mostly(uintArb, nearValue),
    extra: nearValue,
    to: idArb,
  })
  .chain((value) =>
    fc
      .oneof(
        // The seven wire keys in a random order (what a valid append has)...
        fc.shuffledSubarray(WIRE_KEYS, { minLength: 7 }),
        // ...or any subset of all nine, in a random order.
        fc.shuffledSubarray(Object.keys(value), { minLength: 5 }),
      )
      .map((keys) => {
        const out: Record<string, unknown> = {};
        for (const key of keys) out[key] = (value as Record<string, unknown>)[key];
        return out;
      }),
  );

test('append reader: near-valid wire values agree with the reference (seed 0xa99e0003)', (t) => {
  let decided = 0;
  fc.assert(
    fc.property(nearAppend, (value) => {
      if (agrees(t, packr.pack(value))) decided++;
    }),
    { seed: 0xa99e0003, numRuns: 3000 },
  );
  // Enough values are decided (accepted) by the fast path for the comparison to mean something.
  t.true(decided > 300, `only ${decided} near-valid values were decided by the fast path`);
});

test('append reader: mutated and truncated append bodies never throw and never disagree (seed 0xa99e0004)', (t) => {
  fc.assert(
    fc.property(
      appendArb,
      fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 4 }),
      fc.nat(),
      (fields, flips, cut) => {
        const body = Buffer.from(encodeMessageBody({ type: 'append', to: 'b', ...fields }));
        const mutated = Buffer.from(body);
        for (const [at, byte] of flips) mutated[at % mutated.length] = byte;
        agrees(t, mutated);
        agrees(t, body.subarray(0, cut % body.length));
        agrees(t, Buffer.concat([body, Buffer.from([cut & 0xff])]));
      },
    ),
    { seed: 0xa99e0004, numRuns: 1000 },
  );
});

test('append reader: random bytes never throw and never disagree (seed 0xa99e0005)', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      agrees(t, bytes);
      // Random bytes behind a plausible start.
      agrees(t, Buffer.concat([Buffer.from([0x87, 0xa4, ...Buffer.from('type'), 0xa6, ...Buffer.from('append')]), bytes]));
    }),
    { seed: 0xa99e0005, numRuns: 2000 },
  );
  t.pass('no throw, no disagreement');
});

test('append reader: bounds are enforced exactly at the limits', (t) => {
  const base = { type: 'append' as const, from: 'a', to: 'b', term: 1, prevLogIndex: 0, prevLogTerm: 0, commit: 0 };
  const entry = (bytes: number) => ({ index: 1, term: 1, type: 0 as const, data: new Uint8Array(bytes) });
  const cases: [string, PeerMessage, boolean][] = [
    ['entries at the bound', { ...base, entries: Array.from({ length: 12 }, () => entry(1)) }, true],
    ['entries over the bound', { ...base, entries: Array.from({ length: 13 }, () => entry(1)) }, false],
    ['data at the bound', { ...base, entries: [entry(64)] }, true],
    ['data over the bound', { ...base, entries: [entry(65)] }, false],
    ['node id at the bound', { ...base, from: 'a'.repeat(16), entries: [] }, true],
    ['node id over the bound', { ...base, from: 'a'.repeat(17), entries: [] }, false],
    ['largest safe integer', { ...base, term: 2 ** 53 - 1, entries: [] }, true],
  ];
  for (const [what, message, ok] of cases) {
    const body = encodeMessageBody(message);
    t.is(decodeAppendBody(body, 'b', limits) !== undefined, ok, what);
    t.is(decodeMessageBody(body, 'b', codecSchemas(limits)).ok, ok, what);
  }
  // uint64 2^53 (not safe): written by hand, the writers never produce it.
  const body = Buffer.from(encodeMessageBody({ ...base, commit: 2 ** 40, entries: [] }));
  const at = body.lastIndexOf(0xcf);
  body.writeUInt32BE(0x20_0000, at + 1);
  body.writeUInt32BE(0, at + 5);
  t.is(decodeAppendBody(body, 'b', limits), undefined);
  t.false(decodeMessageBody(body, 'b', codecSchemas(limits)).ok);
});

test('append reader: entry data are plain Uint8Array views into the body', (t) => {
  const message: PeerMessage = {
    type: 'append',
    from: 'a',
    to: 'b',
    term: 1,
    prevLogIndex: 0,
    prevLogTerm: 0,
    commit: 0,
    entries: [{ index: 1, term: 1, type: 0, data: Buffer.from('hello') }],
  };
  const body = encodeMessageBody(message);
  const decoded = decodeAppendBody(body, 'b', limits);
  if (decoded === undefined) return t.fail();
  const data = (decoded.entries[0] as { data: Uint8Array }).data;
  t.is(Object.getPrototypeOf(data), Uint8Array.prototype);
  t.is(data.buffer, body.buffer);
  t.is(Buffer.from(data).toString(), 'hello');
});

/** Buffers compare by content: turn them into plain arrays, drop undefined keys. */
function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) return { bytes: [...value] };
  if (Array.isArray(value)) return value.map(normalize);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = normalize((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}
