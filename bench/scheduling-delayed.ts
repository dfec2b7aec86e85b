/**
 * The delayed-message figure of `npm run bench` (section `scheduling`), in a process of its own
 * (run with --expose-gc): the queue state machine holding N delayed messages.
 *
 *   node --expose-gc dist/bench/scheduling-delayed.js [count] [payloadBytes]
 *
 * Prints one JSON line: RSS per delayed message after GC (and per plain waiting message, the
 * same publishes without a delay, for comparison), the cost of an apply while nothing is due
 * (one time tick with N waiting), and the cost of promoting them when due (ticks that make all
 * of them due, in steps, per promoted message), then of taking them all (consume).
 */
import { QueueStateMachine, encodeCommand } from '../lib/queue/index.js';

const count = Number(process.argv[2] ?? 1_000_000);
const payloadBytes = Math.min(257, Math.max(2, Number(process.argv[3] ?? 100)));
const gc = (globalThis as { gc?: () => void }).gc;

function settle(): number {
  for (let i = 0; i < 3; i++) gc?.();
  return process.memoryUsage().rss;
}

const nowNs = (): bigint => process.hrtime.bigint();
const T0 = 1_700_000_000_000;
/** Delays spread over an hour after T0 (each message its own due time). */
const DELAY_SPREAD_MS = 3_600_000;

function fill(delayed: boolean): { sm: QueueStateMachine; index: number; rssPerMessage: number; publishNsPerMessage: number } {
  const sm = new QueueStateMachine({ dedupWindowMax: 1 });
  let index = 0;
  sm.applyCommandBytes(encodeCommand({ t: 'createTopic', topic: 'bench' }), { index: ++index, atMs: T0 });
  // One msgpack value (a bin of payloadBytes - 2 bytes), as members store payloads.
  const payload = new Uint8Array(payloadBytes).fill(7);
  payload[0] = 0xc4;
  payload[1] = payloadBytes - 2;
  const before = settle();
  let ns = 0n;
  for (let i = 0; i < count; i++) {
    const delayMs = 60_000 + Math.floor((i * DELAY_SPREAD_MS) / count);
    const body = encodeCommand(delayed ? { t: 'publish', topic: 'bench', payload, opts: { delayMs } } : { t: 'publish', topic: 'bench', payload });
    const t = nowNs();
    const out = sm.applyCommandBytes(body, { index: ++index, atMs: T0 });
    ns += nowNs() - t;
    if (!out.result.ok) throw new Error(`publish ${i}: ${out.result.message}`);
  }
  const after = settle();
  return { sm, index, rssPerMessage: (after - before) / count, publishNsPerMessage: Number(ns) / count };
}

const plain = fill(false);
const plainRss = plain.rssPerMessage;
const plainPublishNs = plain.publishNsPerMessage;
plain.sm.applyCommandBytes(encodeCommand({ t: 'deleteTopic', topic: 'bench' }), { index: plain.index + 1, atMs: T0 });

const { sm, index: filled, rssPerMessage, publishNsPerMessage } = fill(true);
let index = filled;
// An apply with nothing due: one comparison against the heap's top, whatever N is.
const IDLE_TICKS = 10_000;
let t = nowNs();
for (let i = 0; i < IDLE_TICKS; i++) sm.tick({ index: ++index, atMs: T0 + 1 + (i % 1000) }, []);
const idleTickNs = Number(nowNs() - t) / IDLE_TICKS;

// Promotion: time moves past every due time in 100 ticks.
const STEPS = 100;
t = nowNs();
let events = 0;
for (let s = 1; s <= STEPS; s++) {
  const out: unknown[] = [];
  sm.tick({ index: ++index, atMs: T0 + 60_000 + Math.ceil((s * DELAY_SPREAD_MS) / STEPS) + 1 }, out as never[]);
  events += out.length;
}
const promoteNs = Number(nowNs() - t);
// Taking them (each one is now in the default group's ready queue).
t = nowNs();
let taken = 0;
const consume = encodeCommand({ t: 'consume', topic: 'bench' });
for (;;) {
  const out = sm.applyCommandBytes(consume, { index: ++index, atMs: T0 + 60_000 + DELAY_SPREAD_MS + 10 });
  if (!out.result.ok || out.result.value === null) break;
  taken++;
}
const consumeNs = Number(nowNs() - t);
console.log(
  JSON.stringify({
    count,
    payloadBytes,
    gcExposed: gc !== undefined,
    rssBytesPerDelayedMessage: Math.round(rssPerMessage),
    rssBytesPerPlainMessage: Math.round(plainRss),
    publishApplyNsDelayed: Math.round(publishNsPerMessage),
    publishApplyNsPlain: Math.round(plainPublishNs),
    idleTickNs: Math.round(idleTickNs),
    promoteNsPerMessage: Math.round(promoteNs / count),
    promoteTicks: STEPS,
    promoteEvents: events,
    consumeNsPerMessage: Math.round(consumeNs / Math.max(1, taken)),
    taken,
  }),
);
