/**
 * Payloads (lib/payload.ts): what publish accepts comes back from msgpack as it went in; what
 * would not is refused with INVALID_OPTIONS naming the path of the offending value.
 */
import { inspect } from 'node:util';
import test from 'ava';
import fc from 'fast-check';
import { RaftQueueError } from '../lib/contracts/errors.js';
import { PAYLOAD_DEPTH_MAX, encodePayload, payloadPackr } from '../lib/payload.js';

const LIMIT = 1 << 20;

/** The payload as a consumer receives it, or the error publish refuses it with. */
function roundTrip(value: unknown, limit = LIMIT): { value: unknown } | { error: RaftQueueError } {
  try {
    return { value: payloadPackr.unpack(Buffer.from(encodePayload(value, limit))) as unknown };
  } catch (error) {
    if (error instanceof RaftQueueError) return { error };
    throw error;
  }
}

/**
 * Equal as a consumer sees it: bytes by content (a Uint8Array comes back as a Buffer), Dates by
 * time, -0 as 0 and objects by own keys whatever their prototype (both documented).
 */
function same(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a === b || (Number.isNaN(a) && Number.isNaN(b));
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return a === b;
  if (a instanceof Uint8Array) return b instanceof Uint8Array && Buffer.from(a).equals(Buffer.from(b));
  if (a instanceof Date) return b instanceof Date && Object.is(a.getTime(), b.getTime());
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((_, i) => same(a[i], b[i]));
  if (Array.isArray(b) || b instanceof Uint8Array || b instanceof Date) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

test('payload: accepted values come back as they went in', (t) => {
  const values: unknown[] = [
    'text',
    'héllo 😀',
    0,
    -1.5,
    2 ** 53,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    true,
    null,
    [],
    [1, 'a', null, [2, [3]]],
    [1, undefined, 3],
    { a: 1, b: { c: [1, 2] }, d: undefined },
    Object.assign(Object.create(null) as object, { x: 1 }),
    new Date(1_700_000_000_123),
    new Date(-1),
    new Date(Number.NaN),
    new Uint8Array([1, 2, 3]),
    Buffer.from('bytes'),
    { when: new Date(5), raw: Buffer.from([0, 255]), list: [new Uint8Array([7])] },
  ];
  for (const value of values) {
    const out = roundTrip(value);
    if ('error' in out) t.fail(`${inspect(value)} refused: ${out.error.message}`);
    else t.true(same(value, out.value), `${inspect(value)} came back as ${inspect(out.value)}`);
  }
});

test('payload: what msgpack would not carry back is refused with INVALID_OPTIONS naming its path', (t) => {
  const cyclic: Record<string, unknown> = { name: 'a', child: { list: [1] } };
  ((cyclic['child'] as Record<string, unknown>)['list'] as unknown[]).push(cyclic);
  class Order {
    id = 1;
  }
  const cases: [unknown, RegExp][] = [
    [undefined, /undefined/],
    [() => 1, /the payload is a function/],
    [{ a: { cb: () => 1 } }, /payload\.a\.cb is a function/],
    [[0, [1, Symbol('s')]], /payload\[1\]\[1\] is a symbol/],
    [10n, /bigint/],
    [{ id: 2n ** 70n }, /payload\.id is a bigint/],
    [new Map([['a', 1]]), /is a Map/],
    [{ s: new Set([1]) }, /payload\.s is a Set/],
    [new Float32Array(2), /Float32Array/],
    [new ArrayBuffer(2), /ArrayBuffer/],
    [new Order(), /instance of Order/],
    [{ e: new Error('x') }, /payload\.e is an instance of Error/],
    [/re/, /instance of RegExp/],
    [cyclic, /payload\.child\.list\[1\] refers back .* \(a cycle\)/],
    ['bad \ud800 text', /lone surrogate/],
    [{ 'a key': { ['\udc00']: 1 } }, /payload\["a key"\]\["\\udc00"\] is a string with a lone surrogate/],
    [JSON.parse('{"__proto__": {"x": 1}}') as unknown, /__proto__/],
  ];
  for (const [value, message] of cases) {
    const out = roundTrip(value);
    if (!('error' in out)) {
      t.fail(`${String(message)}: accepted`);
      continue;
    }
    t.is(out.error.code, 'INVALID_OPTIONS');
    t.regex(out.error.message, message);
  }
});

test('payload: nesting, width and size are bounded before msgpack sees them', (t) => {
  const nest = (levels: number): unknown => {
    let v: unknown = 1;
    for (let i = 0; i < levels; i++) v = [v];
    return v;
  };
  t.false('error' in roundTrip(nest(PAYLOAD_DEPTH_MAX)));
  // Deeper than msgpackr's recursion can go: refused, not a stack overflow.
  for (const levels of [PAYLOAD_DEPTH_MAX + 1, 20_000]) {
    const out = roundTrip(nest(levels));
    t.true('error' in out && out.error.code === 'INVALID_OPTIONS' && /nested deeper than 512/.test(out.error.message));
  }
  const wide: Record<string, number> = {};
  for (let i = 0; i < 65_536; i++) wide[`k${i}`] = i;
  const out = roundTrip(wide);
  t.true('error' in out && /more than 65535 keys/.test(out.error.message));
  // Each value encodes to a byte at least: more values than the limit is too large, found early.
  const many = roundTrip(new Array(2_000).fill(0), 1_000);
  t.true('error' in many && many.error.code === 'PAYLOAD_TOO_LARGE');
});

test('payload: any value is either refused with INVALID_OPTIONS or comes back as it went in (fast-check)', (t) => {
  const anything = fc.anything({
    withBigInt: true,
    withBoxedValues: true,
    withDate: true,
    withMap: true,
    withSet: true,
    withNullPrototype: true,
    withObjectString: true,
    withSparseArray: true,
    withTypedArray: true,
    withUnicodeString: true,
  });
  const value = fc.oneof(anything, fc.string({ unit: 'binary' }), fc.dictionary(fc.string({ unit: 'binary' }), anything), fc.func(fc.integer()));
  fc.assert(
    fc.property(value, (v) => {
      const out = roundTrip(v);
      if ('error' in out) return out.error.code === 'INVALID_OPTIONS';
      return same(v, out.value);
    }),
    { numRuns: 2_000 },
  );
  t.pass();
});
