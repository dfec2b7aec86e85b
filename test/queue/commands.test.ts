import test from 'ava';
import fc from 'fast-check';
import { decodeMessageOptions, messageOptionsSchema, queuePackr, validShortOptions } from '../../lib/queue/commands.js';
import { payloadPackr } from '../../lib/subscriptions.js';
import {
  deadLetterTopicName,
  decodeCommand,
  encodeCommand,
  encodePublish,
  encodePublishBytes,
  validateTopicName,
  validateTopicOrDeadLetterName,
  type Command,
} from '../../lib/queue/index.js';

const every: Command[] = [
  { t: 'createTopic', topic: 'orders' },
  { t: 'createTopic', topic: 'orders', opts: { maxMessages: 10, maxBytes: 100, overflow: 'dropOldest', messageBytesMax: 5 } },
  { t: 'deleteTopic', topic: 'orders' },
  { t: 'publish', topic: 'orders', payload: new Uint8Array([1, 2, 3]) },
  { t: 'publish', topic: 'orders', payload: new Uint8Array([]), publishId: 'p-1' },
  { t: 'consume', topic: 'orders' },
  { t: 'claim', topic: 'orders', group: 'billing', consumer: 'c1', max: 10, ackTimeoutMs: 5000, maxDeliveries: 3 },
  { t: 'ack', topic: 'orders', group: 'billing', offset: 4, token: 9 },
  { t: 'nack', topic: 'orders', group: 'billing', offset: 4, token: 9, delayMs: 100 },
  { t: 'extend', topic: 'orders', group: 'billing', offset: 4, token: 9 },
  { t: 'release', topic: 'orders', group: 'billing', consumer: 'c1' },
  { t: 'publish', topic: 'orders', payload: new Uint8Array([0xc0]), publishId: 'p-2', opts: { delayMs: 5, key: 'K', priority: 9, ttlMs: 100, headers: { traceparent: '00-x' } } },
  { t: 'publish', topic: 'orders', payload: new Uint8Array([0xc0]), opts: { deliverAt: 1_700_000_000_000 } },
  { t: 'purge', topic: 'orders' },
  { t: 'redrive', topic: 'orders.dlq', max: 10 },
  { t: 'redrive', topic: 'orders.dlq', to: 'retry', max: 1 },
];

/** Payloads decode as Buffer views; compare them as plain bytes. */
function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) return { bytes: [...value] };
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v)]));
}

test('queue: every command round-trips through encodeCommand/decodeCommand', (t) => {
  for (const command of every) {
    const decoded = decodeCommand(encodeCommand(command));
    if ('error' in decoded) return t.fail(`${command.t}: ${decoded.error}`);
    t.deepEqual(normalize(decoded.command), normalize(command), command.t);
  }
});

test('queue: decoded payloads are views into the entry data (no copy)', (t) => {
  const data = encodeCommand({ t: 'publish', topic: 'a', payload: new Uint8Array([9, 8, 7]) });
  const decoded = decodeCommand(data);
  if ('error' in decoded || decoded.command.t !== 'publish') return t.fail('not a publish');
  t.is(decoded.command.payload.buffer, data.buffer);
  t.deepEqual([...decoded.command.payload], [9, 8, 7]);
});

test('queue: decodeCommand rejects wrong types and out-of-range fields with an error', (t) => {
  const bad: unknown[] = [
    { t: 'publish', topic: 'a', payload: new Uint8Array(1) }, // publish has its own binary form
    { t: 'claim', topic: 'a', group: 'g', consumer: 'c', max: -1, ackTimeoutMs: 1, maxDeliveries: 1 },
    { t: 'claim', topic: 'a', group: 'g', consumer: 'c', max: 1, ackTimeoutMs: 0, maxDeliveries: 1 },
    { t: 'ack', topic: 'a', group: 'g', offset: 1.5, token: 1 },
    { t: 'nack', topic: 'a', group: 'g', offset: 1, token: 1 },
    { t: 'createTopic', topic: 'a', opts: { overflow: 'explode' } },
    { t: 'explode' },
    { t: 'consume', topic: 7 },
  ];
  for (const value of bad) {
    const decoded = decodeCommand(Uint8Array.from([0, ...queuePackr.pack(value)]));
    t.true('error' in decoded, JSON.stringify(value));
  }
  const publishes: number[][] = [
    [1], // truncated
    [1, 0, 5, 97], // topic longer than the body
    [1, 0, 1, 97, 0], // truncated publishId length
    [1, 0, 1, 97, 0, 0], // empty publishId
    [1, 0, 1, 97, 0, 9, 98], // publishId longer than the body
    [7, 1, 2], // unknown kind
    [], // empty
  ];
  for (const bytes of publishes) t.true('error' in decodeCommand(Uint8Array.from(bytes)), JSON.stringify(bytes));
});

test('queue: decodeCommand never throws on arbitrary bytes (fast-check)', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (data) => {
      const decoded = decodeCommand(data);
      return 'error' in decoded || typeof decoded.command.t === 'string';
    }),
    { numRuns: 3000, seed: 0x5eed0001 },
  );
  t.pass();
});

test('queue: decodeCommand never throws on arbitrary msgpack values (fast-check)', (t) => {
  const value = fc.anything({ withTypedArray: true, maxDepth: 3 });
  const shaped = fc.oneof(value, fc.record({ t: fc.constantFrom('publish', 'claim', 'ack', 'consume'), topic: value, payload: value, group: value }));
  fc.assert(
    fc.property(fc.oneof(value, shaped), (v) => {
      let data: Uint8Array;
      try {
        data = Uint8Array.from([0, ...queuePackr.pack(v)]);
      } catch (error) {
        // Some generated values (e.g. BigInt with the extension off) are not encodable at all.
        return error instanceof Error;
      }
      const decoded = decodeCommand(data);
      return 'error' in decoded || typeof decoded.command.t === 'string';
    }),
    { numRuns: 2000, seed: 0x5eed0002 },
  );
  t.pass();
});

test('queue: validateTopicName accepts 1-200 chars of [A-Za-z0-9._-] not starting with a dot', (t) => {
  for (const ok of ['a', 'orders', 'A-b_c.d', '0', '_x', '-x', 'x'.repeat(200)]) t.is(validateTopicName(ok), undefined, ok);
  for (const bad of ['', '.hidden', 'a b', 'a/b', 'é', 'x'.repeat(201), 'a\n']) t.is(typeof validateTopicName(bad), 'string', bad);
});

test('queue: dead-letter names are `${topic}.dlq` and stay valid for 200-char topics', (t) => {
  t.is(deadLetterTopicName('orders'), 'orders.dlq');
  const long = 'x'.repeat(200);
  t.is(validateTopicName(deadLetterTopicName(long)), 'topic name is longer than 200 characters');
  t.is(validateTopicOrDeadLetterName(deadLetterTopicName(long)), undefined);
  t.is(validateTopicOrDeadLetterName(deadLetterTopicName(deadLetterTopicName(long))), undefined);
  t.is(typeof validateTopicOrDeadLetterName('y'.repeat(204)), 'string');
  t.is(typeof validateTopicOrDeadLetterName(`${'x'.repeat(250)}.dlq`), 'string');
});

test('queue: a publish round-trips its topic, publishId and payload exactly, any strings (fast-check)', (t) => {
  const str = fc.oneof(fc.string({ minLength: 1, maxLength: 200 }), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }));
  fc.assert(
    fc.property(str, fc.uint8Array({ maxLength: 64 }), fc.option(str, { nil: undefined }), (topic, payload, publishId) => {
      const command: Command = { t: 'publish', topic, payload, ...(publishId !== undefined ? { publishId } : {}) };
      const decoded = decodeCommand(encodeCommand(command));
      if ('error' in decoded || decoded.command.t !== 'publish') return false;
      const c = decoded.command;
      return c.topic === topic && c.publishId === publishId && Buffer.from(c.payload).equals(Buffer.from(payload));
    }),
    { numRuns: 2000, seed: 0x5eed0003 },
  );
  t.pass();
});

test('queue: a bytes payload written directly is exactly its msgpack encoding (bin8/16/32 boundaries, fast-check)', (t) => {
  const sizes = [0, 1, 255, 256, 65_535, 65_536, 70_000];
  const same = (raw: Uint8Array, publishId?: string): boolean =>
    Buffer.from(encodePublishBytes('orders', raw, publishId)).equals(Buffer.from(encodePublish('orders', payloadPackr.pack(raw), publishId)));
  for (const n of sizes) {
    t.true(same(new Uint8Array(n).fill(7)), `Uint8Array of ${n}`);
    t.true(same(Buffer.alloc(n, 9), 'pid'), `Buffer of ${n}`);
  }
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), fc.option(fc.string({ minLength: 1, maxLength: 20 }), { nil: undefined }), (raw, pid) => same(raw, pid)), { numRuns: 500, seed: 0x5eed0004 });
});

test('queue: the hand check of publish options agrees with their schema (fast-check)', (t) => {
  const value = fc.oneof(fc.integer({ min: -2, max: 12 }), fc.constantFrom(0, 1, 9, 10, 31_536_000_000, 31_536_000_001, Number.MAX_SAFE_INTEGER, 1.5, -0, Number.NaN), fc.string({ maxLength: 3 }), fc.constant(null), fc.boolean());
  const headers = fc.oneof(
    fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(fc.string({ maxLength: 8 }), fc.integer()), { maxKeys: 40 }),
    fc.constant({ big: 'x'.repeat(2_040) }),
    fc.constant({ big: 'x'.repeat(2_050) }),
    fc.constant([]),
  );
  const options = fc.record(
    { d: value, a: value, k: fc.oneof(value, fc.string({ minLength: 250, maxLength: 260 })), p: value, t: value, h: headers, x: value },
    { requiredKeys: [] },
  );
  // Mostly valid options too, so that both directions are exercised often.
  const valid = fc.record(
    {
      d: fc.integer({ min: 0, max: 31_536_000_000 }),
      a: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
      k: fc.string({ minLength: 1, maxLength: 256 }),
      p: fc.integer({ min: 0, max: 9 }),
      t: fc.integer({ min: 1, max: 31_536_000_000 }),
      h: fc.dictionary(fc.string({ minLength: 1, maxLength: 4 }), fc.string({ maxLength: 8 }), { maxKeys: 5 }),
    },
    { requiredKeys: [] },
  );
  let accepted = 0;
  let refused = 0;
  fc.assert(
    fc.property(fc.oneof(options, valid), (o) => {
      const packed = queuePackr.pack(o);
      const raw = queuePackr.unpack(packed) as unknown;
      // The schema alone is the reference (decodeMessageOptions consults the hand check first,
      // so it cannot show the hand check accepting too much).
      const bySchema = messageOptionsSchema.safeParse(raw).success;
      if (bySchema) accepted++;
      else refused++;
      // Exact agreement, both directions: the hand check is the fast path.
      if (validShortOptions(raw) !== bySchema) return false;
      // And the decode refuses exactly what the schema refuses.
      return (typeof decodeMessageOptions(packed, 0, packed.length) !== 'string') === bySchema;
    }),
    { numRuns: 3_000, seed: 0x5eed0005 },
  );
  t.true(accepted > 300 && refused > 300, `both outcomes drawn (accepted ${accepted}, refused ${refused})`);
});

test('repeated pops and claims: encoded once per topic, decoded once per distinct bytes, always the right command', (t) => {
  const topics = ['a', 'b', 'a', 'a', 'c', 'b'];
  for (const topic of topics) {
    const bytes = encodeCommand({ t: 'consume', topic });
    t.deepEqual(decodeCommand(bytes), { command: { t: 'consume', topic } });
    // A fresh copy of the same bytes decodes alike; a claim in between does not disturb it.
    const claim = { t: 'claim', topic, group: 'g', consumer: 'c', max: 3, ackTimeoutMs: 1000, maxDeliveries: 5 } as const;
    t.deepEqual(decodeCommand(encodeCommand(claim)), { command: claim });
    t.deepEqual(decodeCommand(Uint8Array.from(bytes)), { command: { t: 'consume', topic } });
  }
  // The same claim with another credit is another command.
  const c1 = decodeCommand(encodeCommand({ t: 'claim', topic: 'a', group: 'g', consumer: 'c', max: 3, ackTimeoutMs: 1000, maxDeliveries: 5 }));
  const c2 = decodeCommand(encodeCommand({ t: 'claim', topic: 'a', group: 'g', consumer: 'c', max: 4, ackTimeoutMs: 1000, maxDeliveries: 5 }));
  t.is((c1 as { command: { max: number } }).command.max, 3);
  t.is((c2 as { command: { max: number } }).command.max, 4);
});
