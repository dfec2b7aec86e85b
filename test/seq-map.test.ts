/**
 * SeqMap (a node's waiting requests) and SeqResults (a session's remembered results) replaced
 * Maps on the hot path: both are checked here against a Map doing the same thing, under random
 * operations, including the out-of-order and far-gap cases the fast path does not take.
 */
import test from 'ava';
import fc from 'fast-check';
import { SeqMap } from '../lib/node/seq-map.js';
import { SeqResults, SessionTable, Verdict } from '../lib/node/sessions.js';

type MapOp = { k: 'add'; gap: number } | { k: 'del'; pick: number } | { k: 'iterDel'; every: number };

test('SeqMap answers like a Map of increasing keys, with removals in any order and during iteration', (t) => {
  const op: fc.Arbitrary<MapOp> = fc.oneof(
    { arbitrary: fc.record({ k: fc.constant('add' as const), gap: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 3000 })) }), weight: 5 },
    { arbitrary: fc.record({ k: fc.constant('del' as const), pick: fc.nat() }), weight: 4 },
    { arbitrary: fc.record({ k: fc.constant('iterDel' as const), every: fc.integer({ min: 1, max: 4 }) }), weight: 1 },
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 3000 }), fc.integer({ min: 0, max: 1e9 }), (ops, start) => {
      const m = new SeqMap<string>();
      const ref = new Map<number, string>();
      let next = start;
      for (const o of ops) {
        if (o.k === 'add') {
          next += o.gap;
          m.set(next, `v${next}`);
          ref.set(next, `v${next}`);
          next++;
        } else if (o.k === 'del') {
          const keys = [...ref.keys()];
          // Mostly the oldest (requests settle in order), sometimes any.
          // Mostly the oldest but one (the oldest often waits: stragglers), sometimes any.
          const key = keys.length === 0 ? next + 5 : (keys[o.pick % 3 === 0 ? o.pick % keys.length : Math.min(1, keys.length - 1)] as number);
          if (m.delete(key) !== ref.delete(key)) return false;
        } else {
          let i = 0;
          const seen: string[] = [];
          for (const v of m.values()) {
            seen.push(v);
            if (i++ % o.every === 0) m.delete(Number(v.slice(1)));
          }
          if (seen.join() !== [...ref.values()].join()) return false;
          i = 0;
          for (const k of [...ref.keys()]) if (i++ % o.every === 0) ref.delete(k);
        }
        if (m.size !== ref.size) return false;
        if (m.firstKey() !== (ref.size === 0 ? undefined : ([...ref.keys()][0] as number))) return false;
        if (m.keys().join() !== [...ref.keys()].join()) return false;
        for (const k of [...ref.keys()].slice(0, 5)) if (m.get(k) !== ref.get(k) || !m.has(k)) return false;
        if (m.has(next) || m.get(start - 1) !== undefined) return false;
      }
      return true;
    }),
    { numRuns: 200 },
  );
  const m = new SeqMap<number>();
  m.set(5, 5);
  t.throws(() => m.set(5, 6), { instanceOf: RangeError });
  t.throws(() => m.set(3, 3), { instanceOf: RangeError });
});

test('SeqMap: a straggler does not keep a window as long as the traffic behind it', (t) => {
  const m = new SeqMap<number>();
  m.set(0, 0); // waits long
  for (let k = 1; k <= 200_000; k++) {
    m.set(k, k);
    if (k > 64) m.delete(k - 64); // 64 in flight behind it
  }
  t.is(m.size, 65);
  t.true(m.windowSlots <= 8 * 65 + 4096, `window of ${m.windowSlots} slots for 65 values`);
  t.is(m.firstKey(), 0);
  t.is(m.get(0), 0);
  t.deepEqual(m.keys().slice(0, 3), [0, 200_000 - 63, 200_000 - 62]);
  t.deepEqual([...m.values()].length, 65);
  t.true(m.delete(0));
  t.false(m.has(0));
  t.is(m.firstKey(), 200_000 - 63);
  t.is(m.size, 64);
});

type ResultOp = { k: 'set'; ahead: number } | { k: 'floor'; by: number };

test('SeqResults keeps what a Map at or above the floor would, in any order and across far gaps', (t) => {
  const op: fc.Arbitrary<ResultOp> = fc.oneof(
    { arbitrary: fc.record({ k: fc.constant('set' as const), ahead: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 4000, max: 20000 })) }), weight: 6 },
    { arbitrary: fc.record({ k: fc.constant('floor' as const), by: fc.oneof(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 25000 })) }), weight: 2 },
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 1500 }), (ops) => {
      const r = new SeqResults();
      const ref = new Map<number, string>();
      let floor = 1;
      for (const o of ops) {
        if (o.k === 'set') {
          const seq = floor + o.ahead;
          if (ref.has(seq)) continue; // The table records a seq once (check said New).
          r.set(seq, `r${seq}`);
          ref.set(seq, `r${seq}`);
        } else {
          floor += o.by;
          r.raiseFloor(floor);
          for (const k of [...ref.keys()]) if (k < floor) ref.delete(k);
        }
        if (r.size !== ref.size) return false;
        const sorted = [...ref.keys()].sort((a, b) => a - b);
        if (r.lowest() !== sorted[0]) return false;
        const [seqs, results] = r.entries();
        if (seqs.join() !== sorted.join() || results.join() !== sorted.map((k) => `r${k}`).join()) return false;
        for (const k of sorted.slice(-3)) if (!r.has(k) || r.get(k) !== ref.get(k)) return false;
        if (r.has(floor - 1) || r.has(floor + 30000)) return false;
      }
      return true;
    }),
    { numRuns: 200 },
  );
  t.throws(() => new SeqResults().set(0, 'x'));
});

test('a session table judges duplicates, stale copies and evictions as before, and its encoding restores', (t) => {
  const table = new SessionTable({ idleMs: 60_000, sessionsMax: 10, resultsMax: 3 });
  table.register(7, 0);
  t.is(table.check(7, 1, 1, 0), Verdict.New);
  table.record(1, 'a');
  t.is(table.check(7, 3, 1, 0), Verdict.New); // applied out of order
  table.record(3, 'c');
  t.is(table.check(7, 2, 1, 0), Verdict.New);
  table.record(2, 'b');
  t.is(table.check(7, 3, 1, 0), Verdict.Duplicate);
  t.is(table.duplicateResult, 'c');
  // A fourth result evicts the lowest: its late copy is stale, never applied again.
  t.is(table.check(7, 4, 1, 0), Verdict.New);
  table.record(4, 'd');
  t.is(table.check(7, 1, 1, 0), Verdict.Stale);
  t.deepEqual(table.lookup(7, 2), { kind: 'result', value: 'b' });
  // The floor sent with a record drops everything below it.
  t.is(table.check(7, 5, 4, 0), Verdict.New);
  table.record(5, 'e');
  t.deepEqual(table.lookup(7, 3), { kind: 'stale' });
  t.is(table.resultCount(), 2);
  const copy = new SessionTable({ idleMs: 60_000, sessionsMax: 10, resultsMax: 3 });
  copy.restore(table.encode());
  t.deepEqual(copy.lookup(7, 4), { kind: 'result', value: 'd' });
  t.deepEqual(copy.lookup(7, 5), { kind: 'result', value: 'e' });
  t.deepEqual(copy.lookup(7, 6), { kind: 'unknown' });
  t.deepEqual(copy.lookup(8, 1), { kind: 'expired' });
  t.deepEqual(Buffer.from(copy.encode()), Buffer.from(table.encode()));
});

test('a snapshot keeps a publish receipt in the form earlier versions replay; this version replays both', async (t) => {
  const { Applier } = await import('../lib/node/applier.js');
  const { EntryBuilder, REGISTER_SESSION } = await import('../lib/node/envelope.js');
  const { QueueStateMachine } = await import('../lib/queue/state-machine.js');
  const { encodeCommand, encodePublishBytes } = await import('../lib/queue/index.js');
  const sm = new QueueStateMachine({});
  const applier = new Applier(sm, undefined, () => undefined, () => undefined, () => undefined);
  const b = new EntryBuilder();
  let index = 0;
  const apply = (): void => applier.apply({ index: ++index, term: 1, type: 0, data: b.build(1000) });
  b.addRecord(REGISTER_SESSION, 7, 0, new Uint8Array([1]));
  apply();
  const session = 2 ** 20;
  b.addRecord(session, 1, 1, encodeCommand({ t: 'createTopic', topic: 'x' }));
  apply();
  b.addRecord(session, 2, 1, encodePublishBytes('x', new Uint8Array([5])));
  apply();
  // In memory the receipt is its offset; the snapshot holds the receipt object.
  const image = applier.snapshot();
  const bytes = new Uint8Array(image.byteLength);
  for (let at = 0; at < bytes.length; ) at += image.writeNext(bytes, at, 1 << 20);
  const tableBytes = new DataView(bytes.buffer).getUint32(9);
  const table = new SessionTable();
  table.restore(bytes.subarray(13, 13 + tableBytes));
  t.deepEqual(table.lookup(session, 2), { kind: 'result', value: { ok: true, value: { offset: 0 }, duplicate: false } });
  // This version replays the kept offset and the object alike.
  t.deepEqual(applier.lookup(session, 2), { kind: 'result', value: { ok: true, value: { offset: 0 }, duplicate: true } });
  const restored = new Applier(new QueueStateMachine({}), undefined, () => undefined, () => undefined, () => undefined);
  restored.restore(bytes, index);
  t.deepEqual(restored.lookup(session, 2), { kind: 'result', value: { ok: true, value: { offset: 0 }, duplicate: true } });
  t.is(restored.sessionsDigest(), applier.sessionsDigest());
});

test('redrive resolves with a copy, not the object a member keeps for retries', async (t) => {
  const { QueueCalls } = await import('../lib/queue-calls.js');
  const kept = { moved: 1, remaining: 0 };
  const calls = new QueueCalls({
    id: 'n1',
    requestTimeoutMs: 1000,
    messageBytesMax: 1 << 20,
    port: () => ({
      submit: (_body: Uint8Array, _timeoutMs: number, cb: (o: { ok: true; result: unknown; duplicate: boolean; index: number }) => void) =>
        cb({ ok: true, result: { ok: true, value: kept, duplicate: false }, duplicate: false, index: 1 }),
      read: () => undefined,
    }),
    explain: (e) => e,
    log: () => undefined,
  });
  const got = await calls.redrive('x.dlq');
  t.deepEqual(got, kept);
  t.not(got, kept);
});
