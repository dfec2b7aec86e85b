import test from 'ava';
import { createRandom, type Random } from '../../lib/core/random.js';
import { EntryType, type Entry } from '../../lib/core/types.js';
import { isRaftQueueError } from '../../lib/contracts/errors.js';
import { EntryBuilder } from '../../lib/node/envelope.js';
import { imageBytes, type SnapshotImage } from '../../lib/contracts/state-machine.js';
import { QUEUE_STATE_VERSION, QueueStateMachine, encodeCommand, type Command, type Delivery } from '../../lib/queue/index.js';
import { entryData, hex, QueueDriver, registrationEntry, snapshotParts, text, withSnapshotHeader, type DriverCommand, type DriverOutput } from './queue-driver.js';

/** A stable text form of apply outputs (bytes as hex) for comparing machines. */
function canon(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v instanceof Uint8Array) return `0x${Buffer.from(v.buffer, v.byteOffset, v.length).toString('hex')}`;
    if (v !== null && typeof v === 'object' && 'type' in v && (v as { type: unknown }).type === 'Buffer' && 'data' in v) {
      return `0x${Buffer.from((v as { data: number[] }).data).toString('hex')}`;
    }
    return v;
  });
}

/**
 * A random but valid-ish workload, driven by what the reference machine returns: publishes
 * (with repeated publish ids and retried rids), consumes, claims in two groups by three
 * consumers, acks/nacks/extends with current and stale tokens, releases, ticks, topic churn,
 * garbage entries and Noops; time mostly moves forward, sometimes back.
 */
class Workload {
  private readonly rng: Random;
  private readonly deliveries: Delivery[] = [];
  private readonly recent: DriverCommand[] = [];
  private nowMs = 1_000;
  private seq = 0;
  /** Request name -> sequence number in the one session (a retry reuses both). */
  private readonly seqs = new Map<string, number>();
  index = 0;

  constructor(seed: number) {
    this.rng = createRandom(seed);
  }

  /** The next entry to apply. */
  next(): Entry {
    const r = this.rng;
    if (this.index === 0) return { index: ++this.index, term: 1, type: EntryType.Normal, data: registrationEntry() };
    this.nowMs += r.chance(0.05) ? -r.int(50) : r.int(40);
    const index = ++this.index;
    if (r.chance(0.01)) return { index, term: 1, type: EntryType.Noop, data: new Uint8Array() };
    if (r.chance(0.01)) return { index, term: 1, type: EntryType.Normal, data: entryData(this.seqOf(`g${index}`), new Uint8Array([r.int(256), r.int(256)]), this.nowMs) };
    if (r.chance(0.07)) return { index, term: 1, type: EntryType.Normal, data: new EntryBuilder().build(this.nowMs) };
    const retry = this.recent.length > 0 && r.chance(0.05) ? this.recent[r.int(this.recent.length)] : undefined;
    const command = retry ?? this.command();
    this.recent.push(command);
    if (this.recent.length > 50) this.recent.shift();
    const { rid, ...body } = command;
    return { index, term: 1, type: EntryType.Normal, data: entryData(this.seqOf(rid), encodeCommand(body as Command), this.nowMs) };
  }

  private seqOf(rid: string): number {
    let seq = this.seqs.get(rid);
    if (seq === undefined) this.seqs.set(rid, (seq = this.seqs.size + 1));
    return seq;
  }

  /** Feeds the reference machine's output back (so acks can use real tokens). */
  observe(output: DriverOutput): void {
    if (output.result.ok && Array.isArray(output.result.value)) this.deliveries.push(...(output.result.value as Delivery[]));
    if (this.deliveries.length > 200) this.deliveries.splice(0, 100);
  }

  private command(): DriverCommand {
    const r = this.rng;
    const rid = `r${++this.seq}`;
    const topic = ['a', 'b', 'a.dlq'][r.int(3)] as string;
    const group = ['default', 'g1', 'g2'][r.int(3)] as string;
    const roll = r.int(100);
    if (roll < 3) {
      return r.chance(0.5)
        ? { t: 'createTopic', rid, topic, opts: { maxMessages: 1 + r.int(30), overflow: r.chance(0.5) ? 'dropOldest' : 'reject', messageBytesMax: 8 } }
        : { t: 'createTopic', rid, topic };
    }
    if (roll < 4) return { t: 'deleteTopic', rid, topic };
    if (roll < 40) {
      const payload = new Uint8Array(r.int(12)).map(() => r.int(256));
      const cmd: DriverCommand = r.chance(0.3) ? { t: 'publish', rid, topic, payload, publishId: `p${r.int(40)}` } : { t: 'publish', rid, topic, payload };
      if (r.chance(0.4)) {
        // Message options: delays, keys, priorities, expiry, headers.
        const opts: Record<string, unknown> = {};
        if (r.chance(0.4)) opts['delayMs'] = r.int(300);
        if (r.chance(0.4)) opts['key'] = `k${r.int(3)}`;
        if (r.chance(0.3)) opts['priority'] = r.int(10);
        if (r.chance(0.3)) opts['ttlMs'] = 1 + r.int(400);
        if (r.chance(0.2)) opts['headers'] = { traceparent: `00-${rid}` };
        (cmd as { opts?: unknown }).opts = opts;
      }
      return cmd;
    }
    if (roll < 41) return { t: 'purge', rid, topic };
    if (roll < 42) return { t: 'redrive', rid, topic: 'a.dlq', max: 1 + r.int(3) };
    if (roll < 50) return { t: 'consume', rid, topic };
    if (roll < 65) {
      return { t: 'claim', rid, topic, group, consumer: `c${r.int(3)}`, max: r.int(4), ackTimeoutMs: 20 + r.int(300), maxDeliveries: 1 + r.int(3) };
    }
    if (roll < 90 && this.deliveries.length > 0) {
      const d = this.deliveries[r.int(this.deliveries.length)] as Delivery;
      const base = { rid, topic: d.topic, group: d.group, offset: d.offset, token: r.chance(0.1) ? d.token + 1 : d.token };
      const kind = r.int(3);
      if (kind === 0) return { t: 'ack', ...base };
      if (kind === 1) return { t: 'nack', ...base, delayMs: r.chance(0.5) ? 0 : r.int(200) };
      return { t: 'extend', ...base };
    }
    return { t: 'release', rid, topic, group, consumer: `c${r.int(3)}` };
  }
}

/** Runs `steps` entries of seed's workload into `machines`, asserting equal outputs; returns the entries. */
/** A replica of the replicated state (session table and queue) as the node layer holds it. */
function replica(): QueueDriver {
  return new QueueDriver({ dedupWindowMax: 64, dedupWindowMs: 2_000 }, undefined, false);
}

function applyTo(q: QueueDriver, entry: Entry): DriverOutput {
  return q.entry('w', entry.data, entry.type);
}

function runWorkload(seed: number, steps: number, onStep?: (entry: Entry, output: DriverOutput) => void): { entries: Entry[]; outputs: string[] } {
  const w = new Workload(seed);
  const sm = replica();
  const entries: Entry[] = [];
  const outputs: string[] = [];
  for (let i = 0; i < steps; i++) {
    const entry = w.next();
    const output = applyTo(sm, entry);
    w.observe(output);
    entries.push(entry);
    outputs.push(canon(output));
    onStep?.(entry, output);
  }
  return { entries, outputs };
}

test('queue: two machines fed the same random stream agree on every result and snapshot (seeds 1-8)', (t) => {
  for (let seed = 1; seed <= 8; seed++) {
    const { entries, outputs } = runWorkload(seed, 3_000);
    const a = replica();
    const b = replica();
    let mismatch = -1;
    for (let i = 0; i < entries.length; i++) {
      const oa = canon(applyTo(a, entries[i]!));
      const ob = canon(applyTo(b, entries[i]!));
      if (mismatch < 0 && (oa !== ob || oa !== outputs[i])) mismatch = i;
    }
    t.is(mismatch, -1, `seed ${seed}: first differing entry`);
    t.is(hex(a.snapshot()), hex(b.snapshot()), `seed ${seed}`);
    const kinds = new Set(outputs.map((o) => (JSON.parse(o) as { result: { code?: string } }).result.code ?? 'ok'));
    t.true(kinds.has('ok') && kinds.has('STALE_DELIVERY') && kinds.has('TOPIC_NOT_FOUND'), `seed ${seed} exercised errors: ${[...kinds].join(',')}`);
  }
});

test('queue: a machine restored mid-stream continues exactly like the original (seeds 11-16)', (t) => {
  for (let seed = 11; seed <= 16; seed++) {
    const { entries, outputs } = runWorkload(seed, 2_500);
    for (const cut of [1, 700, 1_900]) {
      const original = replica();
      for (let i = 0; i < cut; i++) applyTo(original, entries[i]!);
      const restored = replica();
      restored.applier.restore(original.snapshot(), cut);
      t.is(hex(restored.snapshot()), hex(original.snapshot()), `seed ${seed} cut ${cut}: snapshot round trip`);
      t.is(restored.appliedIndex, cut);
      let mismatch = -1;
      for (let i = cut; i < entries.length; i++) {
        if (canon(applyTo(restored, entries[i]!)) !== outputs[i] && mismatch < 0) mismatch = i;
      }
      t.is(mismatch, -1, `seed ${seed} cut ${cut}: first differing entry`);
      t.deepEqual(restored.sm.stats(), JSON.parse(JSON.stringify(statsAfter(entries))), `seed ${seed} cut ${cut}`);
    }
  }
});

function statsAfter(entries: Entry[]) {
  const q = replica();
  for (const e of entries) applyTo(q, e);
  return q.sm.stats();
}

test('queue: snapshot/restore mid-flight keeps pending deliveries, nack delays, dead letters, dedup and time', (t) => {
  const build = () => {
    const q = new QueueDriver();
    q.createTopic('a', { maxMessages: 10, overflow: 'dropOldest' });
    for (let i = 0; i < 6; i++) q.publish('a', `m${i}`, `id${i}`);
    q.nowMs = 2_000;
    const [d0] = q.claim('a', 'g', 'c1', { ackTimeoutMs: 500, maxDeliveries: 1 });
    const [d1, d2] = q.claim('a', 'g', 'c1', { max: 2, ackTimeoutMs: 500, maxDeliveries: 3 });
    q.nack(d1!, 300); // delayed until 2300
    q.ack(d2!);
    q.consume('a');
    q.nowMs = 2_100;
    return { q, d0: d0! };
  };
  const { q: original, d0 } = build();
  const copy = new QueueDriver();
  copy.restoreFrom(original);
  t.is(copy.sm.timeMs, 2_000);
  t.deepEqual(copy.sm.topics(), ['a']);
  t.deepEqual(copy.sm.stats(), original.sm.stats());
  const script = (q: QueueDriver) => [
    q.publish('a', 'again', 'id1'), // dedup survives
    q.tick(2_300), // the nack delay ends
    q.claimOutput('a', 'g', 'c2', { max: 5 }),
    q.tick(2_500), // d0 expires at 2500 with maxDeliveries 1: dead-lettered
    q.ack(d0), // stale now
    q.run({ t: 'consume', rid: 'k', topic: 'a.dlq' }),
  ];
  const a = script(original).map(canon);
  const b = script(copy).map(canon);
  t.deepEqual(b, a);
  t.true(a[0]!.includes('"duplicate":true'));
  t.true(a[3]!.includes('deadLettered'));
  t.is(hex(copy.snapshot()), hex(original.snapshot()));
});

test('queue: a snapshot image is the state when it was taken, however the state changes while it is copied out in slices (seeds 21-26, and a deep topic)', (t) => {
  const written = (image: SnapshotImage, slice: number, between: () => void): Uint8Array => {
    const out = new Uint8Array(image.byteLength);
    for (let at = 0; at < out.length; ) {
      const n = image.writeNext(out, at, slice);
      t.true(n > 0, 'progress before the end');
      at += n;
      between();
    }
    return out;
  };
  for (let seed = 21; seed <= 26; seed++) {
    const w = new Workload(seed);
    const q = replica();
    for (let i = 0; i < 600; i++) w.observe(applyTo(q, w.next()));
    const reference = imageBytes(q.applier.snapshot());
    const image = q.applier.snapshot();
    const out = written(image, 13, () => w.observe(applyTo(q, w.next())));
    t.is(hex(out), hex(reference), `seed ${seed}`);
  }
  // Several pages: publishes, pops from the head, acks in the middle, whole pages finished.
  const q = new QueueDriver();
  q.createTopic('deep');
  for (let i = 0; i < 5_000; i++) q.pub('deep', `m${i}`);
  const deliveries = q.claim('deep', 'g', 'c', { max: 2_000 });
  const reference = imageBytes(q.applier.snapshot());
  const image = q.applier.snapshot();
  let step = 0;
  const out = written(image, 4_096, () => {
    for (let k = 0; k < 50; k++, step++) {
      if (step % 3 === 0) q.pub('deep', `late${step}`);
      else if (step % 3 === 1) q.consume('deep');
      else if (deliveries.length > 0) q.ack(deliveries.pop() as Delivery);
    }
  });
  t.true(step > 1_000, `${step} changes while copying`);
  t.is(hex(out), hex(reference));
  // And it restores to the state it was taken in.
  const restored = new QueueDriver();
  restored.applier.restore(out, 1);
  t.is(restored.sm.depth('deep'), 5_000);
  t.is(restored.sm.depth('deep', 'g'), 3_000);
});

test('queue: restore copies payloads into slabs of about 1 MiB (no copy per payload; one waiting message never pins a whole snapshot)', (t) => {
  const q = new QueueDriver();
  q.createTopic('a');
  const big = 'x'.repeat(3_000);
  for (let i = 0; i < 1_000; i++) q.pub('a', `message-${i}-${big}`);
  const data = q.sm.snapshotBytes();
  t.true(data.length > 2_900_000);
  const copy = new QueueStateMachine();
  copy.restore(data);
  const pop = (): Uint8Array => {
    const out = copy.applyCommandBytes(encodeCommand({ t: 'consume', topic: 'a' }), { index: q.appliedIndex + 1, atMs: 5_000 });
    return (out.result.ok ? (out.result.value as { payload: Uint8Array }) : undefined)!.payload;
  };
  const first = pop();
  const second = pop();
  t.is(text(first), `message-0-${big}`);
  t.is(text(second), `message-1-${big}`);
  t.not(first.buffer, data.buffer);
  t.is(first.buffer, second.buffer, 'neighbours share a slab');
  t.true(first.buffer.byteLength <= 1 << 20, `slab of ${first.buffer.byteLength} bytes`);
});

test('queue: restore from a Buffer inside a larger one (a snapshot read from its file) keeps every payload intact', (t) => {
  const q = new QueueDriver();
  q.createTopic('a');
  for (let i = 0; i < 3_000; i++) q.pub('a', `message-${i}-${'y'.repeat(i % 300)}`);
  const data = q.sm.snapshotBytes();
  // As storage hands it over: a Buffer view after a file head, sharing the file's memory.
  const file = Buffer.alloc(1_000 + data.length, 0x7b);
  file.set(data, 1_000);
  const copy = new QueueStateMachine();
  copy.restore(file.subarray(1_000));
  file.fill(0); // The file buffer is the storage's to reuse: the state must not depend on it.
  for (let i = 0; i < 3_000; i++) {
    const out = copy.applyCommandBytes(encodeCommand({ t: 'consume', topic: 'a' }), { index: q.appliedIndex + 1 + i, atMs: 5_000 });
    const payload = (out.result.ok ? (out.result.value as { payload: Uint8Array } | undefined) : undefined)?.payload;
    if (payload === undefined || text(payload) !== `message-${i}-${'y'.repeat(i % 300)}`) {
      t.fail(`message ${i}: ${payload === undefined ? 'missing' : text(payload).slice(0, 40)}`);
      return;
    }
  }
  t.pass();
});

test('queue: restore refuses another version or corrupt data with STORAGE_FAILED and keeps the state', (t) => {
  const q = new QueueDriver();
  q.createTopic('keep');
  q.pub('keep', 'x');
  q.pub('keep', 'yy');
  const before = q.sm.snapshotBytes();
  const good = snapshotParts(before).header;
  const topic = (good.topics as Record<string, unknown>[])[0] as Record<string, unknown>;
  const bad: Uint8Array[] = [
    new Uint8Array([0xc1]),
    new Uint8Array(),
    withSnapshotHeader(before, good, QUEUE_STATE_VERSION + 1),
    withSnapshotHeader(before, { ...good, v: QUEUE_STATE_VERSION + 1 }),
    withSnapshotHeader(before, { ...good, topics: 'nope' }),
    withSnapshotHeader(before, { ...good, nextTopicId: 0 }), // topic ids must be below it
    withSnapshotHeader(before, { ...good, dedup: [['k', 1, 'publish', { offset: -1 }]] }),
    withSnapshotHeader(before, { ...good, topics: [{ ...topic, count: 3 }] }), // columns overrun
    withSnapshotHeader(before, { ...good, topics: [{ ...topic, bytes: 2 }] }), // lengths do not add up
    withSnapshotHeader(before, { ...good, topics: [{ ...topic, tail: 1 }] }), // a message past the tail
    before.subarray(0, before.length - 1), // truncated
    Buffer.concat([before, Buffer.from([0])]), // a stray byte
  ];
  for (const data of bad) {
    const error = t.throws(() => q.sm.restore(data));
    t.true(isRaftQueueError(error, 'STORAGE_FAILED'), String(error));
    const whole = t.throws(() => q.applier.restore(data, 99));
    t.true(isRaftQueueError(whole, 'STORAGE_FAILED') || isRaftQueueError(whole, 'STORAGE_VERSION'), String(whole));
  }
  t.is(hex(q.sm.snapshotBytes()), hex(before));
  t.is(q.appliedIndex, 4);
});
