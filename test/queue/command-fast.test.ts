/**
 * The hand checks of `consume`, `claim`, `ack` and `ackMany` (lib/queue/command-fast.ts) accept
 * exactly what the command schema accepts and give back the same command: valid commands and
 * mutations of them (a field missing, extra, of another type, out of range) are decoded both ways
 * and compared, errors included.
 */
import test from 'ava';
import { CLAIM_MESSAGES_MAX, CONSUMER_ID_CHARS_MAX, DEAD_LETTER_NAME_CHARS_MAX } from '../../lib/contracts/limits.js';
import { createRandom } from '../../lib/core/random.js';
import { decodeCommand, decodeCommandBySchema, queuePackr } from '../../lib/queue/commands.js';

type Rnd = ReturnType<typeof createRandom>;

const ODD_VALUES: readonly unknown[] = [-1, -0, 0, 1, 0.5, 2 ** 53, 2 ** 53 - 1, Number.NaN, Infinity, '1', '', null, true, [], {}, new Uint8Array(2), 'x'.repeat(DEAD_LETTER_NAME_CHARS_MAX + 1), CLAIM_MESSAGES_MAX + 1];

function odd(r: Rnd): unknown {
  return ODD_VALUES[r.int(ODD_VALUES.length)];
}

function uint(r: Rnd): number {
  return r.int(3) === 0 ? r.int(2 ** 26) * 2 ** 26 + r.int(2 ** 26) : r.int(1000);
}

function name(r: Rnd): string {
  switch (r.int(4)) {
    case 0: return 'orders';
    case 1: return 'x'.repeat(DEAD_LETTER_NAME_CHARS_MAX);
    case 2: return 'ü.dlq';
    default: return `t${r.int(100)}`;
  }
}

function validCommand(r: Rnd): Record<string, unknown> {
  switch (r.int(5)) {
    case 0: return { t: 'consume', topic: name(r) };
    case 1: return { t: 'ack', topic: name(r), group: name(r), offset: uint(r), token: uint(r) };
    case 2: return { t: 'ackMany', topic: name(r), group: name(r), refs: Array.from({ length: 2 * (1 + r.int(5)) }, () => uint(r)) };
    case 3: {
      const claim: Record<string, unknown> = {
        t: 'claim',
        topic: name(r),
        group: name(r),
        consumer: r.int(5) === 0 ? 'c'.repeat(CONSUMER_ID_CHARS_MAX) : `n1-${r.int(1000)}`,
        max: r.int(CLAIM_MESSAGES_MAX + 1),
        ackTimeoutMs: 1 + uint(r),
        maxDeliveries: 1 + r.int(10),
      };
      if (r.int(2) === 0) claim.maxBytes = 1 + uint(r);
      return claim;
    }
    default: return { t: 'release', topic: name(r), group: name(r), consumer: 'n1-1' };
  }
}

/** One change to a valid command, or none. */
function mutate(r: Rnd, cmd: Record<string, unknown>): unknown {
  const keys = Object.keys(cmd).filter((k) => k !== 't');
  const key = keys[r.int(keys.length)] as string;
  switch (r.int(9)) {
    case 0: return cmd;
    case 1: {
      const { [key]: _gone, ...rest } = cmd;
      return rest;
    }
    case 2: return { ...cmd, extra: 1 };
    case 3: return { ...cmd, [key]: odd(r) };
    case 4: return { ...cmd, t: r.int(2) === 0 ? 'publish' : 'Consume' };
    case 5: return [cmd.t, cmd[key]];
    case 6: {
      if (!Array.isArray(cmd.refs)) return { ...cmd, maxBytes: odd(r) };
      const refs = [...(cmd.refs as unknown[])];
      const what = r.int(3);
      if (what === 0) refs.push(1);
      else if (what === 1) refs.length = 0;
      else refs[r.int(refs.length)] = odd(r);
      return { ...cmd, refs };
    }
    case 7: return { ...cmd, [key]: undefined };
    default: return cmd.t === 'claim' ? { ...cmd, maxBytes: undefined } : cmd;
  }
}

function body(value: unknown): Uint8Array {
  const packed = queuePackr.pack(value);
  const out = new Uint8Array(1 + packed.length);
  out.set(packed, 1);
  return out;
}

test('the hand checks of consume, claim, ack and ackMany agree with the command schema', (t) => {
  const r = createRandom(0xc0de);
  let valid = 0;
  let invalid = 0;
  for (let i = 0; i < 20_000; i++) {
    const bytes = body(mutate(r, validCommand(r)));
    const fast = decodeCommand(bytes);
    const slow = decodeCommandBySchema(bytes);
    if ('error' in slow) invalid++;
    else valid++;
    t.deepEqual(fast, slow);
  }
  // Both sides of the comparison were exercised.
  t.true(valid > 5_000, `${valid} valid`);
  t.true(invalid > 5_000, `${invalid} invalid`);
});

test('an ackMany of 20,000 refs is checked by hand and one bad ref refuses it', (t) => {
  const refs = Array.from({ length: 2 * CLAIM_MESSAGES_MAX }, (_, i) => i);
  const ok = decodeCommand(body({ t: 'ackMany', topic: 'orders', group: 'g', refs }));
  t.deepEqual(ok, { command: { t: 'ackMany', topic: 'orders', group: 'g', refs } });
  refs[7] = -1;
  const bad = decodeCommand(body({ t: 'ackMany', topic: 'orders', group: 'g', refs }));
  t.true('error' in bad && /refs/.test(bad.error));
});
