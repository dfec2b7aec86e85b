/**
 * Real processes: five `raftqueue serve` members from one config file, every gateway route,
 * SIGKILL of the leader (the new leader still has the topic and pops the message published
 * before the kill), a graceful SIGTERM of a leader, and a single member restarted with SIGTERM
 * that leads again with its topics. Loopback only; every child is killed in teardown.
 */
import test from 'ava';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { derivedDataDir, parseServeConfig } from '../lib/cli/serve-config.js';
import type { Spawned } from './helpers/cli-process.js';
import { CliProcesses, freePorts, httpJson, portFree, sleep, statusOf, waitFor } from './helpers/cli-process.js';

interface Member {
  readonly index: number;
  readonly url: string;
  proc: Spawned;
}

/** The leader among `members` (by GET /status), with its term. */
async function leaderOf(members: readonly Member[], aboveTerm = 0): Promise<{ member: Member; term: number } | undefined> {
  const replies = await Promise.all(members.map(async (m) => ({ m, s: m.proc.hasExited ? undefined : await statusOf(m.url, 300) })));
  const leaders = replies.filter((r) => r.s?.role === 'Leader' && r.s.term > aboveTerm);
  leaders.sort((a, b) => (b.s?.term ?? 0) - (a.s?.term ?? 0));
  const top = leaders[0];
  return top === undefined ? undefined : { member: top.m, term: top.s?.term ?? 0 };
}

const body = async (method: string, url: string, payload?: unknown): Promise<unknown> => (await httpJson(method, url, payload)).body;

test('serve: five processes from a config file; every route; the leader SIGKILLed; a leader SIGTERMed', async (t) => {
  const procs = new CliProcesses(t);
  const dir = procs.tempDir();
  // Members 0-3 name their internal_port (0 and 2 with an http:// scheme); member 4 relies on
  // the default port + 1000, so pick an HTTP port whose +1000 is free too.
  const ports = await freePorts(9);
  let p4 = 0;
  for (const candidate of await freePorts(20)) {
    if (candidate + 1000 <= 65_535 && !ports.includes(candidate + 1000) && (await portFree(candidate + 1000))) {
      p4 = candidate;
      break;
    }
  }
  t.not(p4, 0, 'found a port pair');
  const addresses = [0, 1, 2, 3].map((i) => ({ ip: i % 2 === 0 ? 'http://127.0.0.1' : '127.0.0.1', port: ports[i] as number, internal_port: ports[i + 4] as number }));
  const config = { addresses: [...addresses, { ip: '127.0.0.1', port: p4 }] };
  const file = join(dir, 'cluster.json');
  writeFileSync(file, JSON.stringify(config));
  const env = { RAFTQUEUE_DATA_ROOT: join(dir, 'data') };
  const members: Member[] = config.addresses.map((a, index) => ({
    index,
    url: `http://127.0.0.1:${a.port}`,
    proc: procs.spawn(['serve', '--config', file, '--index', String(index)], { env }),
  }));

  // Every member answers /status (and /) as soon as it listens.
  await waitFor('every member to listen', async () => (await Promise.all(members.map((m) => statusOf(m.url)))).every((s) => s !== undefined), 10_000);
  const lastListening = Date.now();
  let first = await waitFor('a leader', () => leaderOf(members), 10_000);
  // The route checks below need one leader throughout: on a loaded machine (ava runs other
  // files alongside) a fresh cluster may still change leader once, so wait until the same
  // leader answers twice, 500 ms apart.
  for (let i = 0; i < 20; i++) {
    await sleep(500);
    const again = await waitFor('a leader', () => leaderOf(members), 10_000);
    if (again.member === first.member && again.term === first.term) break;
    first = again;
  }
  t.log(`leader n${first.member.index} (term ${first.term}) ${Date.now() - lastListening} ms after the last member listened`);
  // The targets (2 s here, 2 s failover, 1 s for one node, 100 ms /status) are logged, and
  // asserted with slack: tests never assert on speed, and ava runs other files alongside.
  t.true(Date.now() - lastListening < 5_000, 'a 5-node cluster has a leader soon after the last node starts');
  for (const m of members) {
    const index = (await httpJson('GET', `${m.url}/`)).body as { id: string; routes: unknown[] };
    t.is(index.id, `n${m.index}`);
    t.true(existsSync(derivedDataDir(parseServeConfig(config), m.index, env)), 'data lives in the derived directory');
  }

  // The leader's routes, with the course bodies.
  const L = first.member.url;
  t.deepEqual(await body('PUT', `${L}/topic`, { topic: 'orders' }), { success: true });
  t.deepEqual(await body('PUT', `${L}/topic`, { topic: 'orders' }), { success: false });
  t.deepEqual(await body('PUT', `${L}/topic`, { topic: 'audit' }), { success: true });
  t.deepEqual(await body('GET', `${L}/topic`), { success: true, topics: ['orders', 'audit'] });
  t.deepEqual(await body('PUT', `${L}/message`, { topic: 'nope', message: 'm' }), { success: false });
  t.deepEqual(await body('PUT', `${L}/message`, { topic: 'audit', message: 'a1' }), { success: true });
  t.deepEqual(await body('GET', `${L}/message/audit`), { success: true, message: 'a1' });
  t.deepEqual(await body('GET', `${L}/message/audit`), { success: false });
  t.deepEqual(await body('GET', `${L}/message/nope`), { success: false });
  const bad = await httpJson('PUT', `${L}/message`, undefined, { rawBody: '{"topic": 1, "message": "m"}' });
  t.is(bad.status, 400);
  t.like(bad.body as object, { success: false });
  const metrics = (await httpJson('GET', `${L}/metrics`)).text;
  t.regex(metrics, /^raftqueue_role\{role="leader"\} 1$/m);
  t.regex(metrics, /^raftqueue_topic_depth\{topic="orders"\} 0$/m);
  t.deepEqual(await body('PUT', `${L}/message`, { topic: 'orders', message: 'before the kill' }), { success: true });

  // Followers refuse the queue routes and point at the leader's HTTP address.
  const hint = { success: false, leader: L };
  for (const m of members.filter((x) => x !== first.member)) {
    // A follower that missed heartbeats on a loaded machine may be a pre-candidate for a moment
    // (pre-vote changes no term); the refusals below need it to know the leader again.
    await waitFor(`${m.url} to follow`, async () => {
      const s = (await statusOf(m.url)) as { role: string; term: number } | undefined;
      return s?.role === 'Follower' && s.term === first.term;
    }, 5_000);
    t.deepEqual(await body('GET', `${m.url}/status`), { role: 'Follower', term: first.term });
    t.deepEqual(await body('GET', `${m.url}/topic`), hint);
    t.deepEqual(await body('PUT', `${m.url}/topic`, { topic: 'x' }), hint);
    t.deepEqual(await body('PUT', `${m.url}/message`, { topic: 'orders', message: 'x' }), hint);
    t.deepEqual(await body('GET', `${m.url}/message/orders`), hint);
  }

  // SIGKILL the leader: /status keeps answering fast during the election, a new leader appears.
  process.kill(first.member.proc.pid, 'SIGKILL');
  const killedAt = Date.now();
  const survivors = members.filter((m) => m !== first.member);
  const latencies: number[] = [];
  const second = await waitFor(
    'a new leader',
    async () => {
      for (const m of survivors) {
        const started = Date.now();
        if ((await statusOf(m.url, 1_000)) !== undefined) latencies.push(Date.now() - started);
      }
      return leaderOf(survivors, first.term);
    },
    10_000,
  );
  const failoverMs = Date.now() - killedAt;
  latencies.sort((a, b) => a - b);
  t.log(`new leader n${second.member.index} (term ${second.term}) ${failoverMs} ms after the kill; /status latency median ${latencies[latencies.length >> 1]} ms, max ${latencies[latencies.length - 1]} ms`);
  t.true(failoverMs < 5_000, 'a new leader soon after the leader dies');
  t.true((latencies[latencies.length >> 1] ?? 0) < 250, '/status answers fast during the election');
  const L2 = second.member.url;
  t.deepEqual(await body('GET', `${L2}/topic`), { success: true, topics: ['orders', 'audit'] });
  t.deepEqual(await body('GET', `${L2}/message/orders`), { success: true, message: 'before the kill' });
  t.deepEqual(await body('GET', `${L2}/message/orders`), { success: false });

  // SIGTERM the new leader: it hands leadership over and exits 0 within 2 s.
  const termAt = Date.now();
  process.kill(second.member.proc.pid, 'SIGTERM');
  const exit = await second.member.proc.exited;
  t.log(`SIGTERM to exit: ${Date.now() - termAt} ms`);
  t.deepEqual(exit, { code: 0, signal: null });
  t.true(Date.now() - termAt < 2_000, 'graceful stop within 2 s');
  t.regex(second.member.proc.stderr, /SIGTERM: stopping/);
  t.regex(second.member.proc.stderr, /role leader \(term \d+\)/, 'role changes are logged on stderr');
  const rest = survivors.filter((m) => m !== second.member);
  const third = await waitFor('a leader after the handover', () => leaderOf(rest, second.term - 1), 5_000);
  t.deepEqual(await body('GET', `${third.member.url}/topic`), { success: true, topics: ['orders', 'audit'] });
});

test('serve: a single member elects itself; restarted after SIGTERM it leads again with its topics', async (t) => {
  const procs = new CliProcesses(t);
  const dir = procs.tempDir();
  const [port, peerPort] = await freePorts(2);
  const file = join(dir, 'one.json');
  writeFileSync(file, JSON.stringify({ addresses: [{ ip: 'http://127.0.0.1', port, internal_port: peerPort }] }));
  const env = { RAFTQUEUE_DATA_ROOT: join(dir, 'data') };
  const url = `http://127.0.0.1:${port as number}`;
  const start = async (): Promise<Spawned> => {
    const proc = procs.spawn(['serve', '--config', file, '--index', '0'], { env });
    await waitFor('listening', () => statusOf(url), 10_000);
    const listening = Date.now();
    await waitFor('leadership', async () => (await statusOf(url))?.role === 'Leader', 5_000);
    t.log(`leader ${Date.now() - listening} ms after listening`);
    t.true(Date.now() - listening < 5_000, 'a single node elects itself');
    return proc;
  };
  const first = await start();
  t.deepEqual(await body('PUT', `${url}/topic`, { topic: 'kept' }), { success: true });
  t.deepEqual(await body('PUT', `${url}/message`, { topic: 'kept', message: 'survives a restart' }), { success: true });
  process.kill(first.pid, 'SIGTERM');
  t.deepEqual(await first.exited, { code: 0, signal: null });
  t.regex(first.stderr, /stopped/);

  await start();
  t.deepEqual(await body('GET', `${url}/topic`), { success: true, topics: ['kept'] });
  t.deepEqual(await body('GET', `${url}/message/kept`), { success: true, message: 'survives a restart' });
  const config = parseServeConfig(JSON.parse(`{"addresses": [{"ip": "127.0.0.1", "port": ${port as number}, "internal_port": ${peerPort as number}}]}`));
  t.true(existsSync(derivedDataDir(config, 0, env)));
});
