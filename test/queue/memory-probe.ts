/**
 * Measures the queue state machine's publish path: apply throughput and resident memory per
 * waiting message. Not a test (tests never assert on speed or memory); run it by hand:
 *
 *   npx tsc -p tsconfig.json; node --expose-gc dist/test/queue/memory-probe.js [count] [payloadBytes] [dedupWindowMax]
 *
 * Commands are encoded one by one with encodeCommand and applied as the node layer would, so
 * each stored payload is a view into its own command's bytes.
 */
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
const apply = (data: Uint8Array, atMs = 0) => sm.applyCommandBytes(data, { index: ++index, atMs });
apply(encodeCommand({ t: 'createTopic', topic: 'bench' }));

const payload = new Uint8Array(payloadBytes).fill(7);
const before = settle();
const started = process.hrtime.bigint();
let applyNs = 0n;
for (let i = 0; i < count; i++) {
  const data = encodeCommand({ t: 'publish', topic: 'bench', payload });
  const t0 = process.hrtime.bigint();
  const out = apply(data, 1_000 + i);
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
