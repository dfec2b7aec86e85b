/**
 * Measures the queue state machine's publish path: apply throughput and resident memory per
 * waiting message. Not a test (tests never assert on speed or memory); run it by hand:
 *
 *   npx tsc -p tsconfig.json; node --expose-gc dist/test/queue/memory-probe.js [count] [payloadBytes] [dedupWindowMax]
 *
 * Entries are encoded one by one with encodeCommand, as the node layer would propose them, so
 * each stored payload is a view into its own entry's bytes (what a real node retains).
 */
import { EntryType } from '../../lib/core/types.js';
import { QueueStateMachine, encodeCommand } from '../../lib/queue/index.js';

const count = Number(process.argv[2] ?? 1_000_000);
const payloadBytes = Number(process.argv[3] ?? 100);
const dedupWindowMax = Number(process.argv[4] ?? 100_000);
const gc = (globalThis as { gc?: () => void }).gc;

function settle(): number {
  for (let i = 0; i < 3; i++) gc?.();
  return process.memoryUsage().rss;
}

const sm = new QueueStateMachine({ dedupWindowMax });
let index = 0;
const apply = (data: Uint8Array) => sm.apply({ index: ++index, term: 1, type: EntryType.Normal, data });
apply(encodeCommand({ t: 'createTopic', rid: 'create', topic: 'bench' }, 0));

const payload = new Uint8Array(payloadBytes).fill(7);
const before = settle();
const started = process.hrtime.bigint();
let applyNs = 0n;
for (let i = 0; i < count; i++) {
  const data = encodeCommand({ t: 'publish', rid: `r-${i}`, topic: 'bench', payload }, 1_000 + i);
  const t0 = process.hrtime.bigint();
  const out = apply(data);
  applyNs += process.hrtime.bigint() - t0;
  if (!out.result.ok) throw new Error(`publish ${i} failed: ${out.result.message}`);
}
const totalMs = Number(process.hrtime.bigint() - started) / 1e6;
const after = settle();
const stats = sm.stats();
console.log(
  JSON.stringify(
    {
      count,
      payloadBytes,
      dedupWindowMax,
      gcExposed: gc !== undefined,
      applyPerSec: Math.round(count / (Number(applyNs) / 1e9)),
      encodeAndApplyPerSec: Math.round(count / (totalMs / 1e3)),
      rssDeltaBytesPerMessage: Math.round((after - before) / count),
      messages: stats.messages,
      dedupEntries: stats.dedupEntries,
    },
    null,
    2,
  ),
);
