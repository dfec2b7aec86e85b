/**
 * The chaos harness (test/chaos): the history checker on hand-made histories that must fail (and
 * some that must pass), the nemesis schedule's determinism, the fault proxy, and one seeded
 * 3-node run of real `raftqueue node` processes under the nemesis (about 20-25 s).
 * `npm run chaos -- --seed S --seconds T --nodes 5` runs longer ones.
 */
import test from 'ava';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { checkHistory } from './chaos/checker.js';
import type { CheckOptions, Property } from './chaos/checker.js';
import type { AckOp, FetchOp, Op, Outcome, PopOp, PublishOp } from './chaos/history.js';
import { describeEpisode, makeSchedule, partitionCuts } from './chaos/nemesis.js';
import { LinkProxy } from './chaos/proxy.js';
import { formatSeed, runChaos } from './chaos/run.js';

// ---- hand-made histories --------------------------------------------------------------------

class H {
  readonly ops: Op[] = [];

  private add<T extends Op>(op: Omit<T, 'index'>): T {
    const full = { ...op, index: this.ops.length } as T;
    this.ops.push(full);
    return full;
  }

  publish(message: string, invokeMs: number, completeMs: number, outcome: Outcome = 'ok', topic = 't'): this {
    this.add<PublishOp>({ kind: 'publish', client: 'pub', node: 'n1', topic, message, invokeMs, completeMs, outcome });
    return this;
  }

  pop(message: string | undefined, invokeMs: number, completeMs: number, outcome: Outcome = 'ok', extra: Partial<PopOp> = {}, topic = 't'): this {
    this.add<PopOp>({ kind: 'pop', client: 'pop', node: 'n1', topic, invokeMs, completeMs, outcome, ...(message !== undefined ? { message } : {}), ...extra });
    return this;
  }

  fetch(group: string, deliveries: [string, number][], invokeMs: number, completeMs: number, topic = 't'): this {
    this.add<FetchOp>({ kind: 'fetch', client: group, node: 'n1', topic, group, invokeMs, completeMs, outcome: 'ok', deliveries: deliveries.map(([message, attempt], i) => ({ message, attempt, offset: i })) });
    return this;
  }

  ack(group: string, messages: string[], invokeMs: number, completeMs: number, topic = 't'): this {
    this.add<AckOp>({ kind: 'ack', client: group, node: 'n1', topic, group, messages, confirmed: messages, invokeMs, completeMs, outcome: 'ok' });
    return this;
  }
}

const noGroups: CheckOptions = { groups: { t: [] } };
const properties = (ops: readonly Op[], options: CheckOptions = noGroups): Property[] => checkHistory(ops, options).violations.map((v) => v.property);

test('checker: a clean history passes', (t) => {
  const h = new H()
    .publish('a', 0, 10)
    .publish('b', 11, 20)
    .publish('u', 21, Infinity, 'unknown')
    .publish('f', 22, 30, 'fail')
    .pop('a', 25, 35)
    .pop(undefined, 26, 36, 'ok', { executed: false })
    .pop('b', 40, 50)
    .pop('u', 51, 60)
    .pop(undefined, 61, 70, 'ok', { executed: true })
    .fetch('g', [
      ['a', 1],
      ['b', 1],
    ], 30, 40)
    .ack('g', ['a'], 41, 45)
    .fetch('g', [['b', 2]], 50, 55);
  const r = checkHistory(h.ops, { groups: { t: ['g'] } });
  t.deepEqual(r.violations, []);
  t.true(r.ok);
  t.deepEqual(r.stats.publishes, { ok: 2, fail: 1, unknown: 1 });
  t.like(r.stats, { groupDeliveries: 3, redeliveries: 1 });
});

test('checker: an acknowledged publish that nobody popped is lost', (t) => {
  t.deepEqual(properties(new H().publish('a', 0, 10).publish('b', 11, 20).pop('b', 30, 40).ops), ['lost']);
  const r = checkHistory(new H().publish('a', 0, 10).ops, noGroups);
  t.regex(r.violations[0]?.message ?? '', /"a"/);
  t.is(r.violations[0]?.ops[0]?.kind, 'publish', 'the report shows the publish');
});

test('checker: a pop with an unknown outcome may have taken one missing message, not two', (t) => {
  const one = new H().publish('a', 0, 10).pop(undefined, 20, Infinity, 'unknown');
  t.deepEqual(properties(one.ops), []);
  t.is(checkHistory(one.ops, noGroups).stats.excusedMissing, 1);
  t.deepEqual(properties(new H().publish('a', 0, 10).publish('b', 11, 12).pop(undefined, 20, Infinity, 'unknown').ops), ['lost']);
  t.deepEqual(properties(new H().publish('a', 0, 10).pop(undefined, 20, 30, 'fail').ops), ['lost'], 'a failed pop excuses nothing');
});

test('checker: a message popped twice is a duplicate', (t) => {
  t.deepEqual(properties(new H().publish('a', 0, 10).pop('a', 20, 30).pop('a', 40, 50).ops), ['duplicate-pop']);
  t.deepEqual(properties(new H().publish('a', 0, Infinity, 'unknown').pop('a', 20, 30).pop('a', 25, 35).ops), ['duplicate-pop'], 'concurrent pops too');
});

test('checker: a pop of a message never sent, certainly not sent, or not sent yet is unsent', (t) => {
  t.deepEqual(properties(new H().pop('ghost', 20, 30).ops), ['unsent']);
  t.deepEqual(properties(new H().publish('a', 0, 10, 'fail').pop('a', 20, 30).ops), ['unsent']);
  t.deepEqual(properties(new H().pop('a', 0, 10).publish('a', 20, 30).ops), ['unsent', 'lost'], 'a pop before the publish does not count');
  t.deepEqual(properties(new H().publish('a', 0, 10, 'ok', 'other').pop('a', 20, 30).ops, { groups: { t: [], other: [] } }), ['wrong-topic', 'lost']);
});

test('checker: pops out of publish order are caught, concurrent ones are not', (t) => {
  // a was acknowledged before b was published; b's pop completed before a's pop began.
  t.deepEqual(properties(new H().publish('a', 0, 10).publish('b', 20, 30).pop('b', 40, 50).pop('a', 60, 70).ops), ['order']);
  // Overlapping pops: no real-time order between them.
  t.deepEqual(properties(new H().publish('a', 0, 10).publish('b', 20, 30).pop('b', 40, 65).pop('a', 60, 70).ops), []);
  // Overlapping publishes: either order is fine.
  t.deepEqual(properties(new H().publish('a', 0, 25).publish('b', 20, 30).pop('b', 40, 50).pop('a', 60, 70).ops), []);
  // An unknown publish orders nothing.
  t.deepEqual(properties(new H().publish('a', 0, Infinity, 'unknown').publish('b', 20, 30).pop('b', 40, 50).pop('a', 60, 70).ops), []);
});

test('checker: an empty answer by the leader while an acknowledged message waited is caught', (t) => {
  t.deepEqual(properties(new H().publish('a', 0, 10).pop(undefined, 20, 30, 'ok', { executed: true }).pop('a', 40, 50).ops), ['empty-pop']);
  t.deepEqual(properties(new H().publish('a', 0, 10).pop(undefined, 20, 30, 'ok', { executed: false }).pop('a', 40, 50).ops), [], 'maybe a refusal');
  t.deepEqual(properties(new H().publish('a', 0, 10).pop('a', 15, 25).pop(undefined, 20, 30, 'ok', { executed: true }).ops), [], 'a concurrent pop took it');
});

test('checker: a group that never got an acknowledged message fails', (t) => {
  const groups = { groups: { t: ['g', 'h'] } };
  const h = new H().publish('a', 0, 10).publish('b', 11, 20).pop('a', 30, 40).pop('b', 41, 50).fetch('g', [['a', 1]], 30, 40).fetch('h', [
    ['a', 1],
    ['b', 1],
  ], 30, 40);
  const r = checkHistory(h.ops, groups);
  t.deepEqual(
    r.violations.map((v) => v.property),
    ['group-missing'],
  );
  t.regex(r.violations[0]?.message ?? '', /group g never got 1 .*"b"/);
  t.deepEqual(properties(new H().publish('u', 0, Infinity, 'unknown').ops, groups), [], 'an unknown publish need not be delivered');
});

test('checker: a group duplicate must be a counted redelivery, and a message is acked once', (t) => {
  const groups = { groups: { t: ['g'] } };
  const base = (): H => new H().publish('a', 0, 10).pop('a', 11, 12);
  t.deepEqual(properties(base().fetch('g', [['a', 1]], 20, 30).fetch('g', [['a', 1]], 40, 50).ops, groups), ['group-duplicate']);
  t.deepEqual(properties(base().fetch('g', [['a', 1]], 20, 30).fetch('g', [['a', 2]], 40, 50).ops, groups), []);
  t.deepEqual(properties(base().fetch('g', [['a', 3]], 20, 30).fetch('g', [['a', 2]], 40, 50).ops, groups), [], 'a stale delivery may be seen late');
  t.deepEqual(properties(base().fetch('g', [['a', 1]], 20, 30).ack('g', ['a'], 31, 35).fetch('g', [['a', 2]], 40, 50).ops, groups), [], 'seen again after its ack: stale');
  t.deepEqual(properties(base().fetch('g', [['a', 1]], 20, 30).ack('g', ['a'], 31, 35).fetch('g', [['a', 2]], 40, 50).ack('g', ['a'], 51, 55).ops, groups), ['group-double-ack']);
  t.deepEqual(properties(base().fetch('g', [['ghost', 1]], 20, 30).fetch('g', [['a', 1]], 20, 30).ops, groups), ['unsent']);
});

// ---- the nemesis schedule and the proxy ----------------------------------------------------

test('nemesis: the schedule is a function of the seed', (t) => {
  const a = makeSchedule(42, 5, 60);
  t.deepEqual(makeSchedule(42, 5, 60), a);
  t.notDeepEqual(makeSchedule(43, 5, 60), a);
  t.true(a.length > 10);
  t.true(a.every((e) => e.atMs >= 0 && e.atMs < 60_000 && e.durationMs > 0));
  const kinds = new Set(a.map((e) => (e.fault.kind === 'partition' ? e.fault.shape : e.fault.kind)));
  t.true(kinds.size >= 6, [...kinds].join(' '));
  for (const e of a) t.true(describeEpisode(e, ['n1', 'n2', 'n3', 'n4', 'n5']).length > 10);
  const bridge = { kind: 'partition', shape: 'bridge', mode: 'refuse', target: 0, order: [4, 3, 2, 1, 0], split: 2 } as const;
  const cuts = partitionCuts(bridge, 5, undefined).map(([x, y]) => `${x}${y}`);
  t.true(cuts.includes('41') && cuts.includes('14') && cuts.includes('30'));
  t.false(cuts.some((c) => c.includes('2')), 'the bridge node keeps every link');
  t.deepEqual(partitionCuts({ ...bridge, shape: 'out-of-leader' }, 3, 2), [
    [2, 0],
    [2, 1],
  ]);
});

test('proxy: pass, refuse, blackhole and stall', async (t) => {
  const echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const proxy = new LinkProxy('a', 'b', (echo.address() as AddressInfo).port);
  const port = await proxy.listen(0);
  t.teardown(async () => {
    await proxy.close();
    await new Promise((r) => echo.close(r));
  });
  const open = (): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(s));
      s.on('error', reject);
    });
  const roundTrip = (s: Socket, text: string, withinMs: number): Promise<string | undefined> =>
    new Promise((resolve) => {
      let got = '';
      const onData = (d: Buffer): void => {
        got += d.toString();
        if (got.length >= text.length) done(got);
      };
      const timer = setTimeout(() => done(undefined), withinMs);
      function done(v: string | undefined): void {
        clearTimeout(timer);
        s.off('data', onData);
        resolve(v);
      }
      s.on('data', onData);
      s.write(text);
    });
  const s1 = await open();
  t.is(await roundTrip(s1, 'hello', 2_000), 'hello');
  proxy.setMode('stall');
  t.is(await roundTrip(s1, 'held', 200), undefined, 'stalled');
  proxy.setMode('pass');
  t.is(await new Promise<string>((r) => s1.once('data', (d: Buffer) => r(d.toString()))), 'held', 'nothing lost by a stall');
  proxy.setMode('blackhole');
  t.is(await roundTrip(s1, 'gone', 200), undefined, 'blackholed');
  const closed = new Promise<void>((r) => s1.once('close', () => r()));
  proxy.setMode('pass');
  await closed;
  t.pass('a connection that lost bytes is closed when the link heals');
  proxy.setMode('refuse');
  const s2 = await open().catch(() => undefined);
  if (s2) await new Promise<void>((r) => s2.once('close', () => r()));
  proxy.setMode('pass');
  const s3 = await open();
  t.is(await roundTrip(s3, 'again', 2_000), 'again');
  s3.destroy();
  t.true(proxy.stats.refused >= 1);
});

// ---- one seeded run of real processes ------------------------------------------------------

test('chaos: 3 raftqueue node processes under a seeded nemesis keep every property', async (t) => {
  t.timeout(120_000);
  const envSeed = process.env['RAFTQUEUE_CHAOS_SEED'];
  const seed = envSeed !== undefined ? Number(envSeed) : 0x5eed;
  const report = await runChaos({ seed, seconds: 14, nodes: 3 });
  t.log(report.verdict);
  if (!report.ok) for (const line of report.details) t.log(line);
  t.true(report.ok, `${report.verdict} (replay: npm run chaos -- --seed ${formatSeed(seed)} --seconds 14 --nodes 3)`);
});
