import test from 'ava';
import fc from 'fast-check';
import { queuePackr } from '../../lib/queue/commands.js';
import {
  deadLetterTopicName,
  decodeCommand,
  encodeCommand,
  preDecoded,
  validateTopicName,
  validateTopicOrDeadLetterName,
  type Command,
} from '../../lib/queue/index.js';

const every: Command[] = [
  { t: 'createTopic', rid: 'r1', topic: 'orders' },
  { t: 'createTopic', rid: 'r2', topic: 'orders', opts: { maxMessages: 10, maxBytes: 100, overflow: 'dropOldest', messageBytesMax: 5 } },
  { t: 'deleteTopic', rid: 'r3', topic: 'orders' },
  { t: 'publish', rid: 'r4', topic: 'orders', payload: new Uint8Array([1, 2, 3]) },
  { t: 'publish', rid: 'r5', topic: 'orders', payload: new Uint8Array([]), publishId: 'p-1' },
  { t: 'consume', rid: 'r6', topic: 'orders' },
  { t: 'claim', rid: 'r7', topic: 'orders', group: 'billing', consumer: 'c1', max: 10, ackTimeoutMs: 5000, maxDeliveries: 3 },
  { t: 'ack', rid: 'r8', topic: 'orders', group: 'billing', offset: 4, token: 9 },
  { t: 'nack', rid: 'r9', topic: 'orders', group: 'billing', offset: 4, token: 9, delayMs: 100 },
  { t: 'extend', rid: 'r10', topic: 'orders', group: 'billing', offset: 4, token: 9 },
  { t: 'release', rid: 'r11', topic: 'orders', group: 'billing', consumer: 'c1' },
  { t: 'tick' },
];

/** Payloads decode as Buffer views; compare them as plain bytes. */
function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) return { bytes: [...value] };
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v)]));
}

test('queue: every command round-trips through encodeCommand/decodeCommand', (t) => {
  for (const command of every) {
    const decoded = decodeCommand(encodeCommand(command, 12_345));
    if ('error' in decoded) return t.fail(`${command.t}: ${decoded.error}`);
    t.is(decoded.atMs, 12_345);
    t.deepEqual(normalize(decoded.command), normalize(command), command.t);
  }
});

test('queue: decoded payloads are views into the entry data (no copy)', (t) => {
  const data = encodeCommand({ t: 'publish', rid: 'r', topic: 'a', payload: new Uint8Array([9, 8, 7]) }, 1);
  const decoded = decodeCommand(data);
  if ('error' in decoded || decoded.command.t !== 'publish') return t.fail('not a publish');
  t.is(decoded.command.payload.buffer, data.buffer);
  t.deepEqual([...decoded.command.payload], [9, 8, 7]);
});

test('queue: decodeCommand rejects wrong types and out-of-range fields with an error and the rid', (t) => {
  const bad: unknown[] = [
    { c: { t: 'publish', rid: 'r', topic: 'a', payload: 'not bytes' }, at: 1 },
    { c: { t: 'publish', rid: 'r', topic: 'a', payload: new Uint8Array(1), publishId: '' }, at: 1 },
    { c: { t: 'claim', rid: 'r', topic: 'a', group: 'g', consumer: 'c', max: -1, ackTimeoutMs: 1, maxDeliveries: 1 }, at: 1 },
    { c: { t: 'claim', rid: 'r', topic: 'a', group: 'g', consumer: 'c', max: 1, ackTimeoutMs: 0, maxDeliveries: 1 }, at: 1 },
    { c: { t: 'ack', rid: 'r', topic: 'a', group: 'g', offset: 1.5, token: 1 }, at: 1 },
    { c: { t: 'nack', rid: 'r', topic: 'a', group: 'g', offset: 1, token: 1 }, at: 1 },
    { c: { t: 'createTopic', rid: 'r', topic: 'a', opts: { overflow: 'explode' } }, at: 1 },
    { c: { t: 'explode', rid: 'r' }, at: 1 },
    { c: { t: 'consume', rid: 'r', topic: 'a' }, at: -5 },
    { c: { t: 'consume', rid: 'r', topic: 'a' } },
  ];
  for (const value of bad) {
    const decoded = decodeCommand(queuePackr.pack(value));
    t.true('error' in decoded, JSON.stringify(value));
    if ('error' in decoded) t.is(decoded.rid, 'r');
  }
  const noRid = decodeCommand(queuePackr.pack({ c: { t: 'consume', topic: 'a' }, at: 1 }));
  t.true('error' in noRid && noRid.rid === undefined);
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
  const shaped = fc.record({ c: fc.oneof(value, fc.record({ t: fc.constantFrom('publish', 'claim', 'ack', 'tick'), rid: value, topic: value, payload: value })), at: value });
  fc.assert(
    fc.property(fc.oneof(value, shaped), (v) => {
      let data: Uint8Array;
      try {
        data = queuePackr.pack(v);
      } catch (error) {
        // Some generated values (e.g. BigInt with the extension off) are not encodable at all.
        return error instanceof Error;
      }
      const decoded = decodeCommand(data);
      return 'error' in decoded || typeof decoded.atMs === 'number';
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

test('queue: preDecoded is exactly what decoding the encoded publish gives, or undefined (fast-check)', (t) => {
  const str = fc.oneof(fc.string({ minLength: 0, maxLength: 260 }), fc.string({ unit: 'binary', maxLength: 8 }), fc.constant('a\ud800b'));
  fc.assert(
    fc.property(str, str, fc.uint8Array({ maxLength: 64 }), fc.option(str, { nil: undefined }), fc.oneof(fc.nat(), fc.constant(-1), fc.constant(1.5)), (rid, topic, payload, publishId, at) => {
      const command: Command = { t: 'publish', rid, topic, payload, ...(publishId !== undefined ? { publishId } : {}) };
      const fast = preDecoded(command, at);
      if (fast === undefined) return;
      const slow = decodeCommand(encodeCommand(command, at));
      if ('error' in fast || 'error' in slow || fast.command.t !== 'publish' || slow.command.t !== 'publish') {
        t.fail(`decoding refused what preDecoded accepted: ${JSON.stringify(slow)}`);
        return;
      }
      const norm = (c: typeof fast.command & { t: 'publish' }) => ({ ...c, payload: Buffer.from(c.payload) });
      t.deepEqual({ atMs: fast.atMs, command: norm(fast.command) }, { atMs: slow.atMs, command: norm(slow.command) });
    }),
    { numRuns: 2000 },
  );
  t.is(preDecoded({ t: 'publish', rid: 'r', topic: 't', payload: new Uint8Array(1), publishId: 'x\udc00' }, 1), undefined);
  t.is(preDecoded({ t: 'consume', rid: 'r', topic: 't' }, 1), undefined);
  t.truthy(preDecoded({ t: 'publish', rid: 'r', topic: 't', payload: new Uint8Array(1) }, 1));
});
