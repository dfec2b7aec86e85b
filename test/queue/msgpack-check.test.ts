import test from 'ava';
import { Packr } from 'msgpackr';
import { MSGPACK_OPTIONS } from '../../lib/contracts/msgpack-options.js';
import { checkMsgpack } from '../../lib/queue/msgpack-check.js';
import { createRandom } from '../../lib/core/random.js';
import { QueueStateMachine, encodeCommand, encodePublish } from '../../lib/queue/index.js';

const packr = new Packr({ ...MSGPACK_OPTIONS });

function value(r: ReturnType<typeof createRandom>, depth: number): unknown {
  const k = r.int(depth > 3 ? 8 : 11);
  switch (k) {
    case 0: return null;
    case 1: return r.int(2) === 0;
    case 2: return r.int(2 ** 31) - 2 ** 30;
    case 3: return (r.int(2 ** 26) * 2 ** 26 + r.int(2 ** 26)) * (r.int(2) === 0 ? 1 : -1);
    case 4: return r.int(1000) / 7;
    case 5: return 'x'.repeat(r.int(300)) + 'é';
    case 6: return new Uint8Array(r.int(70_000));
    case 7: return new Date(r.int(2 ** 40));
    case 8: return Array.from({ length: r.int(20) }, () => value(r, depth + 1));
    case 9: return Object.fromEntries(Array.from({ length: r.int(20) }, (_, i) => [`k${i}`, value(r, depth + 1)]));
    default: return Array.from({ length: r.int(3) }, () => value(r, depth + 1));
  }
}

test('msgpack check: every value msgpackr encodes is one well-formed value', (t) => {
  const r = createRandom(7);
  for (let i = 0; i < 2_000; i++) {
    const bytes = packr.pack(value(r, 0));
    t.is(checkMsgpack(bytes, 0, bytes.length), undefined);
    // Inside a larger buffer too (payloads are checked in place in an entry).
    const framed = new Uint8Array(bytes.length + 7);
    framed.set(bytes, 3);
    t.is(checkMsgpack(framed, 3, 3 + bytes.length), undefined);
  }
});

test('msgpack check: truncated values, trailing bytes and bytes that start no value are refused', (t) => {
  const r = createRandom(8);
  for (let i = 0; i < 500; i++) {
    const bytes = packr.pack([value(r, 1), 'tail']);
    const cut = 1 + r.int(bytes.length - 1);
    t.not(checkMsgpack(bytes, 0, cut), undefined, `cut at ${cut} of ${bytes.length}`);
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    t.regex(checkMsgpack(longer, 0, longer.length) ?? '', /after the value/);
  }
  t.not(checkMsgpack(Uint8Array.of(0x92, 0x01), 0, 2), undefined);
  t.regex(checkMsgpack(Uint8Array.of(0xc1), 0, 1) ?? '', /0xc1/);
  t.not(checkMsgpack(Uint8Array.of(), 0, 0), undefined);
  // An array claiming 2^32-1 items in 5 bytes is refused without looping over them.
  t.not(checkMsgpack(Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff), 0, 5), undefined);
  // Nesting deeper than msgpackr decodes.
  const deep = new Uint8Array(600).fill(0x91);
  t.regex(checkMsgpack(Uint8Array.of(...deep, 0xc0), 0, 601) ?? '', /deeper/);
});

test('queue: a publish whose payload is not one msgpack value is refused on apply and stores nothing', (t) => {
  const sm = new QueueStateMachine({});
  let index = 0;
  const apply = (body: Uint8Array) => sm.applyCommandBytes(body, { index: ++index, atMs: 1 }).result;
  t.true(apply(encodeCommand({ t: 'createTopic', topic: 't' })).ok);
  const bad = apply(encodePublish('t', Uint8Array.of(0x92, 0x01)));
  t.false(bad.ok);
  t.regex(bad.ok ? '' : bad.message, /not one msgpack value/);
  t.true(apply(encodePublish('t', packr.pack({ fine: true }))).ok);
  const popped = apply(encodeCommand({ t: 'consume', topic: 't' }));
  t.true(popped.ok && popped.value !== null);
  t.is(apply(encodeCommand({ t: 'consume', topic: 't' })).ok && (apply(encodeCommand({ t: 'consume', topic: 't' })) as { value: unknown }).value, null);
});
