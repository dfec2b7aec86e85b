/**
 * The hand-written checks of the publish bodies (`propose`, `accepted`, `results`) accept exactly
 * what the zod schemas accept, and give back the same value: valid bodies and every mutation of
 * them (a field missing, extra, of another type, out of range) are decoded both ways and compared.
 */
import test from 'ava';
import { Packr } from 'msgpackr';
import { MSGPACK_OPTIONS } from '../../lib/contracts/msgpack-options.js';
import { createRandom } from '../../lib/core/random.js';
import { decodeBySchema, decodeToClient, decodeToMember } from '../../lib/clients/protocol.js';

const packr = new Packr({ ...MSGPACK_OPTIONS });
type Rnd = ReturnType<typeof createRandom>;

const ODD_VALUES: readonly unknown[] = [-1, -0, 0.5, 2 ** 53, 2 ** 53 - 1, Number.NaN, Infinity, '1', null, true, [], {}, new Uint8Array(2), 'x'];

function odd(r: Rnd): unknown {
  return ODD_VALUES[r.int(ODD_VALUES.length)];
}

function uint(r: Rnd): number {
  return r.int(3) === 0 ? r.int(2 ** 26) * 2 ** 26 + r.int(2 ** 26) : r.int(1000);
}

function resultValue(r: Rnd): unknown {
  switch (r.int(5)) {
    case 0: return null;
    case 1: return { ok: true, index: uint(r) };
    case 2: return [uint(r), 'a'];
    case 3: return 'text';
    default: return uint(r);
  }
}

function validBody(r: Rnd): Record<string, unknown> {
  switch (r.int(3)) {
    case 0: return { k: 'propose', b: uint(r), recs: new Uint8Array(r.int(40)) };
    case 1: return { k: 'accepted', b: uint(r), term: uint(r) };
    default: {
      const rs = Array.from({ length: r.int(4) }, () => [uint(r), uint(r), r.int(4), resultValue(r)]);
      return { k: 'results', session: uint(r), rs };
    }
  }
}

/** One change to a valid body, or none. */
function mutate(r: Rnd, body: Record<string, unknown>): unknown {
  const keys = Object.keys(body).filter((k) => k !== 'k');
  const key = keys[r.int(keys.length)] as string;
  switch (r.int(8)) {
    case 0: return body;
    case 1: {
      const { [key]: _gone, ...rest } = body;
      return rest;
    }
    case 2: return { ...body, extra: 1 };
    case 3: return { ...body, [key]: odd(r) };
    case 4: return { ...body, k: r.int(2) === 0 ? 'view' : 'Propose' };
    case 5: return [body.k, body[key]];
    case 6: {
      if (!Array.isArray(body.rs) || body.rs.length === 0) return { ...body, [key]: odd(r) };
      const rs = (body.rs as unknown[][]).map((row) => [...row]);
      const row = rs[r.int(rs.length)] as unknown[];
      const what = r.int(3);
      if (what === 0) row.push(1);
      else if (what === 1) row.pop();
      else row[r.int(3)] = odd(r);
      return { ...body, rs };
    }
    default: return { ...body, [key]: undefined };
  }
}

test('the fast checks of propose, accepted and results agree with the schemas', (t) => {
  const r = createRandom(0x70c0);
  let fastValid = 0;
  let invalid = 0;
  for (let i = 0; i < 20_000; i++) {
    const body = mutate(r, validBody(r));
    const bytes = packr.pack(body);
    for (const [fast, slow] of [
      [decodeToMember, decodeBySchema.toMember],
      [decodeToClient, decodeBySchema.toClient],
    ] as const) {
      const a = fast(bytes);
      const b = slow(bytes);
      if (typeof b === 'string') {
        invalid++;
        if (typeof a !== 'string') t.fail(`accepted what the schema refuses: ${JSON.stringify(body, (_k, v: unknown) => (v instanceof Uint8Array ? `bytes(${v.length})` : v))} (${b})`);
      } else {
        fastValid++;
        t.deepEqual(a, b);
      }
    }
  }
  // Both sides of the comparison were exercised.
  t.true(fastValid > 2_000, `${fastValid} valid`);
  t.true(invalid > 5_000, `${invalid} invalid`);
});

test('a malformed publish body is refused with the schema\'s words', (t) => {
  const refused = decodeToClient(packr.pack({ k: 'accepted', b: -1, term: 1 }));
  t.is(typeof refused, 'string');
  t.regex(refused as string, /^invalid: .* at b$/);
  t.regex(decodeToMember(packr.pack({ k: 'propose', b: 1, recs: 'x' })) as string, /^invalid: .* at recs$/);
  t.regex(decodeToMember(new Uint8Array([0x93, 0x01])) as string, /^not msgpack/);
});
