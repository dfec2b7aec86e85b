/**
 * Client processes against member processes (issue 16's acceptance test): three `raftqueue node`
 * members, eight client processes (four producers, two poppers, two subscribers) publishing and
 * consuming while the leader is SIGKILLed and restarted. Every acknowledged publish must be
 * consumed exactly once per topic, and no client may see an error other than the ones the README
 * says to retry (which the producers do, with the same publishId).
 */
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { ProcessHarness } from '../../lib/cli/process-harness.js';
import type { ManagedProcess } from '../../lib/cli/process-harness.js';
import { httpJson, sleep } from '../helpers/cli-process.js';
import { ProcessCluster } from '../helpers/member-processes.js';

const clientScript = fileURLToPath(new URL('./client-proc.js', import.meta.url));

interface Ev {
  readonly ev: string;
  readonly id?: string;
  readonly code?: string;
  readonly message?: string;
}

test('client processes: 8 clients, the leader killed and restarted, every acked publish consumed exactly once', async (t) => {
  t.timeout(120_000);
  const cluster = new ProcessCluster();
  const harness = new ProcessHarness();
  t.teardown(async () => {
    await harness.cleanup();
    await cluster.cleanup();
  });
  const ids = ['n1', 'n2', 'n3'];
  await cluster.define(ids);
  for (const id of ids) cluster.start(id, { peers: ids });
  const leader = await cluster.waitLeader(15_000);
  for (const topic of ['jobs', 'events']) {
    const r = await httpJson('PUT', `${cluster.node(leader).url}/topic`, { topic });
    t.deepEqual(r.body, { success: true });
  }
  const members = ids.map((id) => cluster.node(id).raft);
  const events = new Map<string, Ev[]>();
  const spawn = (config: Record<string, unknown>): ManagedProcess => {
    const name = config['name'] as string;
    events.set(name, []);
    return harness.spawn({
      name,
      script: clientScript,
      args: [JSON.stringify({ members, ...config })],
      ipc: true,
      stderr: 'capture',
      onMessage: (m) => events.get(name)?.push(m as Ev),
    });
  };
  const producers = [0, 1, 2, 3].map((i) => spawn({ role: 'producer', name: `prod${i}`, topic: i % 2 === 0 ? 'jobs' : 'events', count: 400, inFlight: 16 }));
  const consumers = [
    spawn({ role: 'popper', name: 'pop0', topic: 'jobs' }),
    spawn({ role: 'popper', name: 'pop1', topic: 'jobs' }),
    spawn({ role: 'subscriber', name: 'sub0', topic: 'events', group: 'workers' }),
    spawn({ role: 'subscriber', name: 'sub1', topic: 'events', group: 'workers' }),
  ];
  const all = [...producers, ...consumers];
  const count = (name: string, ev: string): number => (events.get(name) ?? []).filter((e) => e.ev === ev).length;
  const acked = (): number => [...events.keys()].filter((n) => n.startsWith('prod')).reduce((s, n) => s + count(n, 'acked'), 0);

  // Kill the leader once a quarter of the publishes are acknowledged, then bring it back.
  const killAt = Date.now() + 60_000;
  while (acked() < 400 && Date.now() < killAt) await sleep(10);
  t.true(acked() >= 400, `publishes acked before the kill: ${acked()}`);
  await cluster.kill(leader);
  await sleep(1_500);
  cluster.start(leader, { peers: ids });

  const doneBy = Date.now() + 60_000;
  while (producers.some((p) => count(p.name, 'done') === 0) && Date.now() < doneBy) await sleep(50);
  t.true(producers.every((p) => count(p.name, 'done') === 1), 'every producer finished');

  const ackedIds = (topicIndex: number): string[] => [0, 1, 2, 3].filter((i) => i % 2 === topicIndex).flatMap((i) => (events.get(`prod${i}`) ?? []).filter((e) => e.ev === 'acked').map((e) => e.id as string));
  const gotIds = (names: string[]): string[] => names.flatMap((n) => (events.get(n) ?? []).filter((e) => e.ev === 'got').map((e) => e.id as string));
  const drainBy = Date.now() + 30_000;
  while ((gotIds(['pop0', 'pop1']).length < ackedIds(0).length || gotIds(['sub0', 'sub1']).length < ackedIds(1).length) && Date.now() < drainBy) await sleep(50);
  // A moment more: a duplicate delivery would show up now.
  await sleep(500);
  for (const p of all) p.send({ cmd: 'stop' });

  for (const [topicIndex, names] of [[0, ['pop0', 'pop1']], [1, ['sub0', 'sub1']]] as const) {
    const want = ackedIds(topicIndex).sort();
    const got = gotIds([...names]);
    t.is(want.length, 800, `acked publishes of topic ${topicIndex}`);
    t.is(new Set(got).size, got.length, `no message consumed twice (topic ${topicIndex})`);
    t.deepEqual([...new Set(got)].filter((id) => !want.includes(id)), [], 'nothing consumed that was not published');
    t.deepEqual(want.filter((id) => !got.includes(id)), [], `every acked publish consumed (topic ${topicIndex})`);
  }
  const errors = [...events].flatMap(([name, evs]) => evs.filter((e) => e.ev === 'error').map((e) => `${name}: ${e.code} ${e.message}`));
  t.deepEqual(errors, []);
  // The clients did lose a member and reconnect (the kill reached them).
  const disconnects = [...events.values()].flat().filter((e) => e.ev === 'disconnected').length;
  t.true(disconnects >= 1, `disconnects seen: ${disconnects}`);
  t.log(`acked ${acked()}, retries ${[...events.values()].flat().filter((e) => e.ev === 'retry').length}, disconnects ${disconnects}`);
});
