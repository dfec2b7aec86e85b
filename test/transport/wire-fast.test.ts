/**
 * The hand-checked answers and heartbeats (`validateWireMessage`'s fast path for appendResponse,
 * heartbeat and heartbeatResponse) accept exactly what the zod wire schema accepts, with the
 * same value: valid messages and mutations of them (a field missing, extra, mistyped, out of
 * range; a bad sender id) are validated both ways and compared.
 */
import test from 'ava';
import { createRandom } from '../../lib/core/random.js';
import { codecSchemas, resolveCodecLimits, validateWireMessage } from '../../transports/index.js';

const limits = resolveCodecLimits({ frameBytesMax: 1 << 20, entriesPerMessageMax: 12, entryBytesMax: 64, nodeIdLengthMax: 16 });
const schemas = codecSchemas(limits);
type Rnd = ReturnType<typeof createRandom>;

const ODD: readonly unknown[] = [-1, -0, 0.5, 2 ** 53, Number.NaN, Infinity, '1', null, true, false, [], {}, new Uint8Array(1)];
const IDS: readonly unknown[] = ['n1', 'a.b-c_d', '', 'x'.repeat(17), 'x'.repeat(16), '-n', 'n 1', 'é', 7];

function uint(r: Rnd): number {
  return r.int(3) === 0 ? r.int(2 ** 26) * 2 ** 26 + r.int(2 ** 26) : r.int(100);
}

function valid(r: Rnd): Record<string, unknown> {
  const head = { from: r.int(4) === 0 ? IDS[r.int(IDS.length)] : 'n2', term: uint(r) };
  switch (r.int(3)) {
    case 0:
      return { type: 'appendResponse', ...head, success: r.int(2) === 0, matchIndex: uint(r), rejectedIndex: uint(r), conflictIndex: uint(r), conflictTerm: uint(r), logLost: r.int(2) === 0 };
    case 1:
      return { type: 'heartbeat', ...head, commit: uint(r), readSeq: uint(r), lastIndex: uint(r) };
    default:
      return { type: 'heartbeatResponse', ...head, readSeq: uint(r) };
  }
}

function mutate(r: Rnd, m: Record<string, unknown>): unknown {
  const keys = Object.keys(m);
  const key = keys[r.int(keys.length)] as string;
  switch (r.int(6)) {
    case 0: return m;
    case 1: {
      const { [key]: _gone, ...rest } = m;
      return rest;
    }
    case 2: return { ...m, to: 'n1' };
    case 3: return { ...m, [key]: ODD[r.int(ODD.length)] };
    case 4: return { ...m, [key]: undefined };
    default: return { ...m, type: ['append', 'heartbeat', 'heartbeatResponse', 'appendResponse', 'vote'][r.int(5)] };
  }
}

test('the hand-checked answers and heartbeats agree with the wire schema', (t) => {
  const r = createRandom(0xbea7);
  let ok = 0;
  let refused = 0;
  for (let i = 0; i < 20_000; i++) {
    const value = mutate(r, valid(r));
    const got = validateWireMessage(structuredClone(value), 'n1', schemas);
    const parsed = schemas.wireMessage.safeParse(structuredClone(value));
    if (!parsed.success) {
      refused++;
      if (got.ok) t.fail(`accepted what the schema refuses: ${JSON.stringify(value)}`);
      continue;
    }
    ok++;
    if (!got.ok) {
      t.fail(`refused what the schema accepts: ${JSON.stringify(value)}`);
      continue;
    }
    t.deepEqual(got.value, { ...(parsed.data as object), to: 'n1' });
  }
  t.true(ok > 3_000, `${ok} valid`);
  t.true(refused > 3_000, `${refused} refused`);
});
