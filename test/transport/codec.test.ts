import test from 'ava';
import fc from 'fast-check';
import { MESSAGE_TYPES } from '../../lib/core/messages.js';
import type { PeerMessage } from '../../lib/contracts/transport.js';
import {
  codecSchemas,
  concatFrames,
  decodeMessageBody,
  encodeMessageBody,
  framedRuns,
  isWireEntries,
  MessageEncoder,
  packr,
  PACKR_OPTIONS,
  resolveCodecLimits,
  toWire,
  wireEntrySchema,
} from '../../transports/index.js';
import { everyMessage, makeEntries } from '../helpers/transport-messages.js';

const limits = resolveCodecLimits({ frameBytesMax: 1 << 20, entriesPerMessageMax: 100, membersMax: 5 });
const schemas = codecSchemas(limits);

/** Encodes a raw wire value (bypassing toWire) and decodes it as node 'b'. */
function decodeRaw(value: unknown) {
  return decodeMessageBody(packr.pack(value), 'b', schemas);
}

test('codec: every message type round-trips', (t) => {
  const messages = everyMessage('a', 'b');
  t.deepEqual(new Set(messages.map((m) => m.type)), new Set([...MESSAGE_TYPES, 'app']));
  for (const message of messages) {
    const decoded = decodeMessageBody(encodeMessageBody(message), 'b', schemas);
    if (!decoded.ok) return t.fail(`${message.type}: ${String(decoded.error)}`);
    t.deepEqual(normalize(decoded.value), normalize(message), message.type);
    t.true(schemas.peerMessage.safeParse(decoded.value).success, `${message.type} is a valid PeerMessage`);
  }
});

test('codec: entry data round-trip as bytes without a copy of each entry', (t) => {
  const message = everyMessage('a', 'b').find((m) => m.type === 'append') as Extract<PeerMessage, { type: 'append' }>;
  const body = encodeMessageBody(message);
  const decoded = decodeMessageBody(body, 'b', schemas);
  if (!decoded.ok || decoded.value.type !== 'append') return t.fail();
  for (const entry of decoded.value.entries) {
    t.true(entry.data instanceof Uint8Array);
    // A view into the frame body, not a fresh copy.
    t.is(entry.data.buffer, body.buffer);
  }
});

test('codec: the append writer produces what msgpackr would', (t) => {
  fc.assert(
    fc.property(
      fc.record({
        term: fc.maxSafeNat(),
        prevLogIndex: fc.maxSafeNat(),
        prevLogTerm: fc.nat(),
        commit: fc.maxSafeNat(),
        from: fc.stringMatching(/^[a-z][a-z0-9-]{0,40}$/),
        entries: fc.array(
          fc.record({
            index: fc.maxSafeNat(),
            term: fc.nat(),
            type: fc.constantFrom(0 as const, 1 as const, 2 as const),
            data: fc.uint8Array({ maxLength: 300 }),
          }),
          { maxLength: 20 },
        ),
      }),
      (fields) => {
        const message: PeerMessage = { type: 'append', to: 'b', ...fields };
        const direct = packr.unpack(encodeMessageBody(message)) as unknown;
        const viaMsgpackr = packr.unpack(packr.pack(toWire(message))) as unknown;
        t.deepEqual(normalize(direct), normalize(viaMsgpackr));
      },
    ),
    { seed: 0xc0dec001, numRuns: 300 },
  );
});

test('codec: the fast entries check agrees with the zod reference schema (seed 0xc0dec002)', (t) => {
  const reference = wireEntrySchema(limits).array().max(limits.entriesPerMessageMax);
  const entry = fc.oneof(
    fc.tuple(fc.maxSafeNat(), fc.nat(), fc.constantFrom(0, 1, 2), fc.uint8Array({ maxLength: 8 })),
    fc.array(fc.oneof(fc.integer(), fc.double(), fc.string(), fc.uint8Array({ maxLength: 4 }), fc.constant(null)), {
      maxLength: 5,
    }),
    fc.anything(),
  );
  fc.assert(
    fc.property(fc.oneof(fc.array(entry, { maxLength: 6 }), fc.anything()), (value) => {
      t.is(isWireEntries(value, limits), reference.safeParse(value).success);
    }),
    { seed: 0xc0dec002, numRuns: 2000 },
  );
  t.false(isWireEntries(Array.from({ length: 101 }, () => [1, 1, 0, Buffer.alloc(0)]), limits));
  t.true(isWireEntries(Array.from({ length: 100 }, () => [1, 1, 0, Buffer.alloc(0)]), limits));
});

const rejects: [string, unknown][] = [
  ['unknown type', { type: 'bogus', from: 'a', term: 1 }],
  ['missing type', { from: 'a', term: 1 }],
  ['wrong field type', { type: 'heartbeat', from: 'a', term: '1', commit: 0, readSeq: 0, lastIndex: 0 }],
  ['negative number', { type: 'heartbeat', from: 'a', term: -1, commit: 0, readSeq: 0, lastIndex: 0 }],
  ['fractional number', { type: 'heartbeat', from: 'a', term: 1.5, commit: 0, readSeq: 0, lastIndex: 0 }],
  ['unsafe integer', { type: 'heartbeat', from: 'a', term: 2 ** 60, commit: 0, readSeq: 0, lastIndex: 0 }],
  ['extra field', { type: 'heartbeat', from: 'a', term: 1, commit: 0, readSeq: 0, lastIndex: 0, extra: 1 }],
  ['empty node id', { type: 'timeoutNow', from: '', term: 1 }],
  ['node id with bad characters', { type: 'timeoutNow', from: 'a b', term: 1 }],
  ['node id too long', { type: 'timeoutNow', from: 'a'.repeat(65), term: 1 }],
  ['oversized entries array', { type: 'append', from: 'a', term: 1, prevLogIndex: 0, prevLogTerm: 0, commit: 0, entries: Array.from({ length: 101 }, (_, i) => [i + 1, 1, 0, Buffer.alloc(1)]) }],
  ['entry with a bad type code', { type: 'append', from: 'a', term: 1, prevLogIndex: 0, prevLogTerm: 0, commit: 0, entries: [[1, 1, 3, Buffer.alloc(1)]] }],
  ['entry data not bytes', { type: 'append', from: 'a', term: 1, prevLogIndex: 0, prevLogTerm: 0, commit: 0, entries: [[1, 1, 0, 'text']] }],
  ['entry as an object on the wire', { type: 'append', from: 'a', term: 1, prevLogIndex: 0, prevLogTerm: 0, commit: 0, entries: [{ index: 1, term: 1, type: 0, data: Buffer.alloc(1) }] }],
  ['too many voters', { type: 'snapshot', from: 'a', term: 1, snapshot: { meta: { index: 1, term: 1, conf: { voters: ['a', 'b', 'c', 'd', 'e', 'f'], learners: [] } }, data: Buffer.alloc(0) } }],
  ['app channel too long', { type: 'app', from: 'a', channel: 'x'.repeat(65), body: Buffer.alloc(0) }],
  ['to on the wire', { type: 'timeoutNow', from: 'a', to: 'b', term: 1 }],
  ['not an object', [1, 2, 3]],
  ['null', null],
];

for (const [what, value] of rejects) {
  test(`codec: schema rejects ${what}`, (t) => {
    const decoded = decodeRaw(value);
    t.false(decoded.ok);
    if (!decoded.ok) t.is(decoded.reason, 'schema');
  });
}

test('codec: entry bytes over the bound are rejected', (t) => {
  const small = resolveCodecLimits({ frameBytesMax: 1 << 20, entryBytesMax: 10 });
  const message: PeerMessage = { type: 'append', from: 'a', to: 'b', term: 1, prevLogIndex: 0, prevLogTerm: 0, commit: 0, entries: makeEntries(1, 1, 11) };
  t.false(decodeMessageBody(encodeMessageBody(message), 'b', codecSchemas(small)).ok);
  t.true(decodeMessageBody(encodeMessageBody({ ...message, entries: makeEntries(1, 1, 10) }), 'b', codecSchemas(small)).ok);
});

test('codec: bodies that are not one msgpack value fail with decode', (t) => {
  for (const body of [Buffer.alloc(0), Buffer.from([0x92, 0x01]), Buffer.concat([packr.pack(1), Buffer.from([1])])]) {
    const decoded = decodeMessageBody(body, 'b', schemas);
    t.false(decoded.ok);
    if (!decoded.ok) t.is(decoded.reason, 'decode');
  }
});

test('codec: 64-bit integers decode as numbers and unsafe ones are rejected', (t) => {
  const body = Buffer.from(packr.pack({ type: 'timeoutNow', from: 'a', term: 0 }));
  // Rewrite `term: 0` as a uint64 2^63 by hand: msgpackr never produces it, a hostile peer may.
  const huge = Buffer.concat([body.subarray(0, body.length - 1), Buffer.from([0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0])]);
  t.is(typeof (packr.unpack(huge) as { term: unknown }).term, 'number');
  t.false(decodeMessageBody(huge, 'b', schemas).ok);
  t.is(PACKR_OPTIONS.int64AsType, 'number');
  t.false(PACKR_OPTIONS.useRecords);
});

test('codec: an append sent to two followers in one turn is encoded once', (t) => {
  const encoder = new MessageEncoder();
  const entries = makeEntries(1, 64, 100);
  const base = { type: 'append' as const, from: 'a', term: 1, prevLogIndex: 0, prevLogTerm: 0, commit: 0 };
  const toB = encoder.encode({ ...base, to: 'b', entries });
  const toC = encoder.encode({ ...base, to: 'c', entries: [...entries] });
  t.is(toB, toC);
  t.is(encoder.reusedBodies, 1);
  // A different commit (or different entry objects) is a different body.
  t.not(encoder.encode({ ...base, to: 'c', entries, commit: 1 }), toB);
  t.not(encoder.encode({ ...base, to: 'c', entries: makeEntries(1, 64, 100) }), toB);
  encoder.endTurn();
  t.not(encoder.encode({ ...base, to: 'c', entries }), toB);
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

test('codec: consecutive append bodies are written as slab views equal to the copied batch', (t) => {
  const base = { type: 'append' as const, from: 'a', to: 'b', term: 1, prevLogTerm: 1, commit: 0 };
  const bodies = Array.from({ length: 50 }, (_, i) => encodeMessageBody({ ...base, prevLogIndex: i, entries: makeEntries(i + 1, 8, 100) }));
  const runs = framedRuns(bodies, 8);
  if (runs === undefined) return t.fail('appends carved one after the other form runs');
  // 50 bodies of ~900 bytes cross at most one slab boundary.
  t.true(runs.length <= 2);
  t.deepEqual(Buffer.concat(runs), concatFrames(bodies));
  // The same body twice is two frames; a body not from the writer's slabs forces a copy.
  const twice = framedRuns([bodies[0] as Buffer, bodies[0] as Buffer], 8);
  t.deepEqual(twice === undefined ? undefined : Buffer.concat(twice), concatFrames([bodies[0] as Buffer, bodies[0] as Buffer]));
  t.is(framedRuns([bodies[0] as Buffer, encodeMessageBody(everyMessage('a', 'b')[0] as PeerMessage)], 8), undefined);
  t.is(framedRuns([bodies[0] as Buffer, bodies[2] as Buffer, bodies[4] as Buffer], 2), undefined, 'more runs than allowed');
});

test('codec: the append writer is exact whether a body fits the current slab or not', (t) => {
  const base = { type: 'append' as const, from: 'a', to: 'b', term: 1, prevLogIndex: 0, prevLogTerm: 1, commit: 0 };
  // Bodies of 30 KB: some fit the current slab, some start a new one; one of 300 KB gets its own.
  for (const [count, bytes] of [...Array.from({ length: 20 }, () => [3, 10_000]), [3, 100_000]] as [number, number][]) {
    const message: PeerMessage = { ...base, entries: makeEntries(1, count, bytes) };
    const body = encodeMessageBody(message);
    t.deepEqual(normalize(packr.unpack(body)), normalize(packr.unpack(packr.pack(toWire(message)))));
    t.is(Buffer.from(body.buffer, body.byteOffset - 4, 4).readUInt32BE(0), body.length, 'the frame header precedes the body');
  }
});
