/**
 * The gateway's forward option: a non-leader's gateway serves the queue and group routes through
 * its RaftQueue (which forwards to the leader) instead of answering with the leader hint, while
 * /status still reports its own role; without the option the hint stays exactly as before. In
 * process (two gateways on each member, one forwarding) and with `raftqueue node --forward`
 * processes.
 */
import test from 'ava';
import { request } from 'node:http';
import { Gateway } from '../lib/cli/gateway.js';
import { RaftQueue } from '../lib/raft-queue.js';
import { MemoryNetwork } from '../transports/memory/index.js';
import { CliProcesses, freePorts, httpJson, statusOf, waitFor } from './helpers/cli-process.js';

const BYTES = Buffer.from([0, 1, 2, 253, 254, 255]);

/** A pop answered as raw bytes (Accept: application/octet-stream). */
function popBytes(url: string): Promise<{ status: number; type: string | undefined; bytes: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: 5_000, headers: { accept: 'application/octet-stream' } });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within 5000 ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], bytes: Buffer.concat(chunks) }));
    });
    req.end();
  });
}

const octets = (url: string, topic: string) => httpJson('PUT', `${url}/message?topic=${topic}`, undefined, { rawBody: BYTES, headers: { 'content-type': 'application/octet-stream' } });

test('gateway forward: followers with forward serve every queue route through the leader; without it, the hint as before', async (t) => {
  const net = new MemoryNetwork();
  const ids = ['n1', 'n2', 'n3'];
  const peers = Object.fromEntries(ids.map((id, i) => [id, `127.0.0.1:${7001 + i}`]));
  const queues = ids.map((id) => new RaftQueue({ id, peers, storage: 'memory', transport: net.transport(id) }));
  const ports = await freePorts(6);
  // Each member has a hinting gateway (the hints name the other hinting gateways, as
  // `--http-peers` would) and a forwarding one.
  const httpAddresses = Object.fromEntries(ids.map((id, i) => [id, `http://127.0.0.1:${ports[i] as number}`]));
  const hinting = queues.map((q, i) => ({ id: ids[i] as string, url: httpAddresses[ids[i] as string] as string, gateway: new Gateway(q, { httpAddresses }) }));
  const forwarding = queues.map((q, i) => ({ id: ids[i] as string, url: `http://127.0.0.1:${ports[i + 3] as number}`, gateway: new Gateway(q, { forward: true }) }));
  const gateways = [...hinting, ...forwarding];
  t.teardown(async () => {
    // The memory transport holds no sockets: keep the process alive until every stop() resolves.
    const keepAlive = setInterval(() => undefined, 50);
    await Promise.all(gateways.map((g) => g.gateway.close(0)));
    await Promise.all(queues.map((q) => q.stop()));
    clearInterval(keepAlive);
  });
  await Promise.all(gateways.map((g, i) => g.gateway.listen('127.0.0.1', ports[i] as number)));
  await Promise.all(queues.map((q) => q.start()));
  const leaderId = await (queues[0] as RaftQueue).waitForLeader({ timeoutMs: 5_000 });
  await waitFor('every member to know the leader', () => queues.every((q) => q.status().leaderId === leaderId), 5_000);
  const [a, b] = forwarding.filter((f) => f.id !== leaderId) as [(typeof forwarding)[number], (typeof forwarding)[number]];
  const body = async (method: string, url: string, payload?: unknown): Promise<unknown> => (await httpJson(method, url, payload)).body;

  // Through follower a: the course bodies, a publishId, raw bytes; the member's own role in /status.
  t.deepEqual(await body('GET', `${a.url}/status`), { role: 'Follower', term: queues[0]?.status().term });
  t.deepEqual(await body('PUT', `${a.url}/topic`, { topic: 't' }), { success: true });
  t.deepEqual(await body('PUT', `${a.url}/topic`, { topic: 't' }), { success: false });
  t.deepEqual(await body('GET', `${a.url}/topic`), { success: true, topics: ['t'] });
  const put = await httpJson('PUT', `${a.url}/message`, { topic: 't', message: 'm1', publishId: 'p-1' });
  t.deepEqual(put.body, { success: true });
  t.is(put.headers['x-raftqueue-role'], 'follower', 'answered by a follower');
  t.deepEqual(await body('PUT', `${b.url}/message`, { topic: 't', message: 'm1', publishId: 'p-1' }), { success: true, duplicate: true }, 'a retry through another follower');
  t.deepEqual((await octets(a.url, 't')).body, { success: true });
  t.deepEqual(await body('PUT', `${a.url}/message`, { topic: 'missing', message: 'm' }), { success: false });
  t.like(await body('GET', `${a.url}/`), { role: 'follower', forward: true });

  // A group fetch and ack through follower a, before the default group pops everything.
  const fetched = (await body('POST', `${a.url}/groups/g/t/fetch`, { max: 10, waitMs: 3_000 })) as { messages: { id: string; message: unknown; encoding?: string }[] };
  t.deepEqual(
    fetched.messages.map((m) => [m.message, m.encoding]),
    [
      ['m1', undefined],
      [BYTES.toString('base64'), 'base64'],
    ],
  );
  t.like(await body('POST', `${a.url}/groups/g/t/ack`, { ids: fetched.messages.map((m) => m.id) }), { success: true, failed: [] });

  // Popped through follower b: each message once.
  t.deepEqual(await body('GET', `${b.url}/message/t`), { success: true, message: 'm1' });
  const popped = await popBytes(`${b.url}/message/t`);
  t.deepEqual([popped.status, popped.type, popped.bytes], [200, 'application/octet-stream', BYTES]);
  t.deepEqual(await body('GET', `${b.url}/message/t`), { success: false });
  t.deepEqual(await body('GET', `${b.url}/message/missing`), { success: false });

  // The hinting gateways of the same followers refuse exactly as the course design says.
  for (const h of hinting.filter((x) => x.id !== leaderId)) {
    const hint = { success: false, leader: httpAddresses[leaderId] };
    t.deepEqual(await body('PUT', `${h.url}/topic`, { topic: 'u' }), hint);
    t.deepEqual(await body('GET', `${h.url}/topic`), hint);
    t.deepEqual(await body('PUT', `${h.url}/message`, { topic: 't', message: 'x', publishId: 'p-2' }), hint);
    t.deepEqual((await octets(h.url, 't')).body, hint);
    t.deepEqual(await body('GET', `${h.url}/message/t`), hint);
    t.deepEqual(await body('POST', `${h.url}/groups/g/t/fetch`, {}), hint);
    t.like(await body('GET', `${h.url}/`), { forward: false });
  }
  t.deepEqual(await queues[0]?.topics(), ['t'], 'no hinting follower created anything');
  t.is(await queues[0]?.consume('t'), undefined, 'no hinting follower published anything');
});

test('gateway forward: `raftqueue node --forward` followers publish and consume', async (t) => {
  const procs = new CliProcesses(t);
  const dir = procs.tempDir();
  const ids = ['n1', 'n2', 'n3'];
  const ports = await freePorts(6);
  const peerList = ids.map((id, i) => `${id}=127.0.0.1:${ports[i] as number}`).join(',');
  const urls = ids.map((_, i) => `http://127.0.0.1:${ports[i + 3] as number}`);
  const members = ids.map((id, i) => procs.spawn(['node', '--id', id, '--peers', peerList, '--data-dir', `${dir}/${id}`, '--http', `127.0.0.1:${ports[i + 3] as number}`, '--forward']));
  const follower = await waitFor(
    'a leader and a follower that knows it',
    async () => {
      const states = await Promise.all(urls.map((u) => statusOf(u)));
      const leader = states.find((s) => s?.role === 'Leader');
      const i = states.findIndex((s) => s?.role === 'Follower' && s.term === leader?.term);
      return leader !== undefined && i >= 0 ? (urls[i] as string) : undefined;
    },
    15_000,
  ).catch((error: unknown) => {
    throw new Error(`${String(error)}\n${members.map((m) => m.stderr).join('\n---\n')}`);
  });
  t.like((await httpJson('GET', `${follower}/`)).body as object, { role: 'follower', forward: true });
  const body = async (method: string, url: string, payload?: unknown): Promise<unknown> => (await httpJson(method, url, payload, { timeoutMs: 10_000 })).body;
  t.deepEqual(await body('PUT', `${follower}/topic`, { topic: 'orders' }), { success: true });
  t.deepEqual(await body('PUT', `${follower}/message`, { topic: 'orders', message: 'hello', publishId: 'o-1' }), { success: true });
  t.deepEqual(await body('PUT', `${follower}/message`, { topic: 'orders', message: 'hello', publishId: 'o-1' }), { success: true, duplicate: true });
  t.deepEqual((await octets(follower, 'orders')).body, { success: true });
  t.deepEqual(await body('GET', `${follower}/message/orders`), { success: true, message: 'hello' });
  t.deepEqual(await body('GET', `${follower}/message/orders`), { success: true, message: BYTES.toString('base64'), encoding: 'base64' });
  t.deepEqual(await body('GET', `${follower}/message/orders`), { success: false });
});
