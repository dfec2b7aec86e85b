/**
 * The chaos harness (test/chaos): the history checker on hand-made histories that must fail (and
 * some that must pass), the nemesis schedule's determinism, the fault proxy, the client
 * processes' clock bracket and routing through their own proxies, and one seeded 3-node run of
 * real `raftqueue node` processes and 2 client processes under the nemesis (about 20-25 s).
 * `npm run chaos -- --seed S --seconds T --nodes 5` runs longer ones.
 */
import test from 'ava';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { checkHistory } from './chaos/checker.js';
import type { CheckOptions, Property } from './chaos/checker.js';
import type { AckOp, FetchOp, Op, Outcome, PopOp, PublishOp } from './chaos/history.js';
import { narrowBracket, earliest, latest } from './chaos/client-ipc.js';
import type { ClockBracket } from './chaos/client-ipc.js';
import { clientCutMembers, describeEpisode, makeSchedule, partitionCuts } from './chaos/nemesis.js';
import { ClientFleet } from './chaos/clients.js';
import { ChaosCluster } from './chaos/cluster.js';
import { History } from './chaos/history.js';
import { call, sleep } from './chaos/http.js';
import { LinkProxy } from './chaos/proxy.js';
import { GROUP_CONSUMER } from './chaos/workload.js';
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

  /** One attempt of a client process's publish (its retries share the publishId and body). */
  clientPublish(message: string, attempt: number, invokeMs: number, completeMs: number, outcome: Outcome = 'ok', extra: Partial<PublishOp> = {}): this {
    this.add<PublishOp>({ kind: 'publish', client: 'cl1#1', node: 'n1', via: 'client', topic: 't', message, publishId: message, attempt, invokeMs, completeMs, outcome, ...extra });
    return this;
  }

  pop(message: string | undefined, invokeMs: number, completeMs: number, outcome: Outcome = 'ok', extra: Partial<PopOp> = {}, topic = 't'): this {
    this.add<PopOp>({ kind: 'pop', client: 'pop', node: 'n1', topic, invokeMs, completeMs, outcome, ...(message !== undefined ? { message } : {}), ...extra });
    return this;
  }

  fetch(group: string, deliveries: [string, number][], invokeMs: number, completeMs: number, topic = 't', extra: Partial<FetchOp> = {}): this {
    this.add<FetchOp>({ kind: 'fetch', client: group, node: 'n1', topic, group, invokeMs, completeMs, outcome: 'ok', deliveries: deliveries.map(([message, attempt], i) => ({ message, attempt, offset: i })), ...extra });
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

test('checker: a client publish retried under its publishId is one message', (t) => {
  // Unknown, then acknowledged: one message, popped once.
  const retried = new H().clientPublish('a', 1, 0, Infinity, 'unknown').clientPublish('a', 2, 5, 10).pop('a', 20, 30);
  const r = checkHistory(retried.ops, noGroups);
  t.deepEqual(r.violations, []);
  t.deepEqual(r.stats.publishes, { ok: 1, fail: 0, unknown: 0 });
  t.like(r.stats.client, { retries: 1, publishes: { ok: 1, fail: 0, unknown: 0 } });
  // Stored by either attempt, it may be popped only once.
  t.deepEqual(properties(new H().clientPublish('a', 1, 0, Infinity, 'unknown').clientPublish('a', 2, 5, 10).pop('a', 20, 30).pop('a', 40, 50).ops), ['duplicate-pop']);
  // Acknowledged by a retry, it must be popped: an earlier attempt that reached no leader excuses nothing.
  t.deepEqual(properties(new H().clientPublish('a', 1, 0, 4, 'fail').clientPublish('a', 2, 5, 10).ops), ['lost']);
  t.deepEqual(properties(new H().clientPublish('a', 1, 0, Infinity, 'unknown').clientPublish('a', 2, 5, Infinity, 'unknown').ops), [], 'never acknowledged: need not arrive');
  // The first attempt may have stored it: a pop before the retry began is no pop of an unsent message.
  t.deepEqual(properties(new H().clientPublish('a', 1, 0, Infinity, 'unknown').pop('a', 2, 4).clientPublish('a', 2, 5, 10).ops), []);
  t.deepEqual(properties(new H().clientPublish('a', 1, 0, 1, 'fail').clientPublish('a', 2, 2, 3, 'fail').pop('a', 5, 6).ops), ['unsent'], 'every attempt certainly failed');
  // Acknowledged at its first acknowledgement: "a" precedes "b" in the log, so a pop of "b" before "a"'s is out of order.
  t.deepEqual(properties(new H().clientPublish('a', 1, 0, Infinity, 'unknown').clientPublish('a', 2, 5, 10).publish('b', 20, 30).pop('b', 40, 50).pop('a', 60, 70).ops), ['order']);
});

test('checker: a body repeated other than by a client retry under one publishId is a harness error', (t) => {
  t.deepEqual(properties(new H().publish('a', 0, 10).publish('a', 20, 30).pop('a', 40, 50).ops), ['harness']);
  t.deepEqual(properties(new H().clientPublish('a', 1, 0, 10).clientPublish('a', 2, 20, 30, 'ok', { publishId: 'other' }).pop('a', 40, 50).ops), ['harness']);
  t.deepEqual(properties(new H().clientPublish('a', 1, 0, 10).clientPublish('b', 1, 20, 30, 'ok', { publishId: 'a' }).pop('a', 40, 50).pop('b', 41, 51).ops), ['harness'], 'one publishId, two bodies');
  t.deepEqual(properties(new H().clientPublish('a', 1, 0, 10).clientPublish('a', 2, 20, 30, 'ok', { topic: 'u' }).pop('a', 40, 50).ops, { groups: { t: [], u: [] } }), ['harness']);
});

test('checker: client operations count apart in the stats', (t) => {
  const h = new H()
    .clientPublish('a', 1, 0, 10)
    .publish('b', 11, 20)
    .pop('a', 21, 30, 'ok', { via: 'client' })
    .pop('b', 31, 40)
    .pop(undefined, 41, 50, 'unknown', { via: 'client' })
    .fetch('g', [['a', 1]], 30, 40, 't', { via: 'client' })
    .fetch('g', [['b', 1]], 30, 40);
  const r = checkHistory(h.ops, { groups: { t: ['g'] } });
  t.deepEqual(r.violations, []);
  t.like(r.stats, { publishes: { ok: 2, fail: 0, unknown: 0 }, pops: { messages: 2, empty: 0, fail: 0, unknown: 1 }, groupDeliveries: 2 });
  t.deepEqual(r.stats.client, { publishes: { ok: 1, fail: 0, unknown: 0 }, retries: 0, pops: { messages: 1, empty: 0, fail: 0, unknown: 1 }, groupDeliveries: 1 });
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

test('nemesis: client processes add a lane of their own and leave the others as they were', (t) => {
  const withClients = makeSchedule(42, 5, 60, 2);
  t.deepEqual(withClients, makeSchedule(42, 5, 60, 2));
  t.deepEqual(
    withClients.filter((e) => e.lane !== 'clients'),
    makeSchedule(42, 5, 60),
  );
  const lane = withClients.filter((e) => e.lane === 'clients');
  t.true(lane.length > 8);
  t.is(lane[0]?.fault.kind, 'kill-client', 'every run kills a client');
  const kinds = new Set(lane.map((e) => (e.fault.kind === 'cut-client' ? `cut-${e.fault.scope}` : e.fault.kind)));
  t.deepEqual([...kinds].sort(), ['cut-all', 'cut-leader', 'cut-members', 'kill-client']);
  for (const e of lane) {
    const f = e.fault;
    t.true(f.kind === 'kill-client' || f.kind === 'cut-client');
    if (f.kind === 'kill-client' || f.kind === 'cut-client') t.true(f.client >= 0 && f.client < 2);
    if (f.kind === 'cut-client' && f.scope === 'members') t.true(f.members.length >= 1 && f.members.length <= 4, 'some, not all');
    t.regex(describeEpisode(e, ['n1', 'n2', 'n3', 'n4', 'n5']), / client cl[12]\b/);
  }
  const cut = { kind: 'cut-client', client: 0, scope: 'leader', members: [3], mode: 'refuse' } as const;
  t.deepEqual(clientCutMembers(cut, 5, 1), [1]);
  t.deepEqual(clientCutMembers(cut, 5, undefined), [3], 'the fallback when no leader is known');
  t.deepEqual(clientCutMembers({ ...cut, scope: 'all' }, 3, 1), [0, 1, 2]);
  t.deepEqual(makeSchedule(42, 5, 60, 0), makeSchedule(42, 5, 60));
});

test('clients: the clock bracket of a child contains its real offset, and converted intervals contain real ones', (t) => {
  // The child's clock runs 1000.25 ms ahead; each ping's answer is read somewhere in its round trip.
  const offset = 1000.25;
  const pings: [number, number, number][] = [
    [10, 13, 20],
    [30, 30.5, 31],
    [40, 44, 45],
  ];
  let b: ClockBracket | undefined;
  for (const [sent, answeredAt, back] of pings) b = narrowBracket(b, sent, answeredAt + offset, back);
  const bracket = b as ClockBracket;
  t.true(bracket.offsetMin <= offset && offset <= bracket.offsetMax);
  t.is(bracket.offsetMax - bracket.offsetMin, 1, 'as narrow as the quickest round trip');
  // An operation that really ran from 100 to 200 (harness time).
  t.true(earliest(bracket, 100 + offset) <= 100);
  t.true(latest(bracket, 200 + offset) >= 200);
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

// ---- client processes --------------------------------------------------------------------

/** Polls `condition` every 20 ms; fails the test after `withinMs`. */
async function until(what: string, condition: () => boolean, withinMs: number): Promise<void> {
  const deadline = performance.now() + withinMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${withinMs} ms`);
    await sleep(20);
  }
}

async function createTopicOverHttp(urls: readonly string[], topic: string, withinMs: number): Promise<void> {
  const deadline = performance.now() + withinMs;
  for (let i = 0; performance.now() < deadline; i++) {
    const a = await call(undefined, urls[i % urls.length] as string, 'PUT', '/topic', { topic }, 3_000);
    if (a.kind === 'reply' && a.status === 200 && (a.body['success'] === true || a.role === 'leader')) return;
    await sleep(100);
  }
  throw new Error(`could not create ${topic} within ${withinMs} ms`);
}

test.serial('clients: a client process reaches members only through its own proxies, and a SIGKILL leaves what it had in flight unknown', async (t) => {
  t.timeout(120_000);
  const history = new History();
  const cluster = await ChaosCluster.create(3, { verbose: false, now: () => history.now() });
  let fleet: ClientFleet | undefined;
  t.teardown(async () => {
    await fleet?.shutdown();
    await cluster.shutdown();
  });
  cluster.startAll();
  fleet = await ClientFleet.create({
    count: 1,
    seed: 1,
    nodeIds: cluster.ids,
    raftPorts: cluster.nodes.map((n) => n.raftPort),
    aliases: cluster.nodes.map((n) => cluster.peerAddressesOf(n.index)),
    plan: { topics: ['t0'], groups: [], publishers: 1, poppers: 1, publishAttemptsMax: 2, publishTimeoutMs: 1_500, consumer: { ...GROUP_CONSUMER } },
    history,
    verbose: false,
  });
  const launching = fleet.launchAll();
  await createTopicOverHttp(
    cluster.nodes.map((n) => n.url),
    't0',
    30_000,
  );
  await launching;
  fleet.begin();
  const client = fleet.clients[0] as (typeof fleet.clients)[number];
  const ok = (incarnation: number, afterMs: number): number =>
    history.ops.filter((op) => op.via === 'client' && op.client === `cl1#${incarnation}` && op.outcome === 'ok' && (op.kind === 'publish' || op.kind === 'pop') && op.completeMs > afterMs).length;
  await until('client operations', () => ok(1, 0) >= 10, 30_000);
  t.true(
    client.proxies.some((p) => p.stats.connections > 0),
    'it connected through its proxies',
  );

  // Every link of the client refused: nothing it asks can be answered.
  const cutAt = history.now();
  for (const j of cluster.nodes.keys()) fleet.setLink(0, j, 'refuse');
  await sleep(1_500);
  t.is(ok(1, cutAt + 200), 0, 'no operation succeeds while every link of the client is cut');
  t.true(
    client.proxies.some((p) => p.stats.refused > 0),
    'it kept dialing members through its own proxies',
  );

  // Killed while its calls wait: they stay unknown, and the next incarnation works.
  const first = client.current;
  fleet.kill(0);
  await first?.proc.exited;
  const orphaned = history.ops.filter((op) => op.client === 'cl1#1' && op.outcome === 'unknown' && !Number.isFinite(op.completeMs));
  t.true(orphaned.length >= 1, 'its calls were in flight when it died');
  t.true(orphaned.every((op) => /client process ended \(SIGKILL\)/.test(op.note ?? '')));
  for (const j of cluster.nodes.keys()) fleet.setLink(0, j, 'pass');
  await fleet.restart(0);
  await until('operations of the next incarnation', () => ok(2, 0) >= 5, 30_000);
  t.true(history.ops.some((op) => op.kind === 'publish' && op.client === 'cl1#2' && op.message.startsWith('cl1.2-')), 'new bodies');

  await fleet.stop();
  t.deepEqual((await client.current?.proc.exited)?.code, 0, 'it stopped by itself');
  t.deepEqual(fleet.problems, []);
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
