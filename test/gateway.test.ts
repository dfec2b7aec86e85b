/**
 * The HTTP gateway in-process: the course routes with their exact JSON bodies on the leader,
 * 400/404/405/413 handling, followers' refusals with a leader hint, and GET /metrics.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { Gateway } from '../lib/cli/gateway.js';
import { RaftQueue as TcpRaftQueue } from '../lib/index.js';
import { RaftQueue } from '../lib/raft-queue.js';
import { MemoryNetwork } from '../transports/memory/index.js';
import { freePorts, httpJson, waitFor } from './helpers/cli-process.js';

async function singleNode(t: ExecutionContext, bodyBytesMax?: number): Promise<{ queue: RaftQueue; url: string }> {
  const queue = new TcpRaftQueue({ id: 'n1', peers: { n1: '127.0.0.1:0' }, storage: 'memory' });
  const gateway = new Gateway(queue, bodyBytesMax === undefined ? {} : { bodyBytesMax });
  t.teardown(async () => {
    await gateway.close(0);
    await queue.stop();
  });
  await queue.start();
  await queue.waitForLeader({ timeoutMs: 5_000 });
  const bound = await gateway.listen('127.0.0.1', 0);
  return { queue, url: `http://127.0.0.1:${bound.port}` };
}

const call = async (method: string, url: string, body?: unknown): Promise<[number, unknown]> => {
  const r = await httpJson(method, url, body);
  return [r.status, r.body];
};

test('gateway: the course routes answer with exactly the course bodies on the leader', async (t) => {
  const { url } = await singleNode(t);
  t.deepEqual(await call('GET', `${url}/status`), [200, { role: 'Leader', term: (await httpJson('GET', `${url}/status`)).body && ((await httpJson('GET', `${url}/status`)).body as { term: number }).term }]);
  t.deepEqual(await call('GET', `${url}/topic`), [200, { success: true, topics: [] }]);
  t.deepEqual(await call('PUT', `${url}/topic`, { topic: 'b-topic' }), [200, { success: true }]);
  t.deepEqual(await call('PUT', `${url}/topic`, { topic: 'b-topic' }), [200, { success: false }]);
  t.deepEqual(await call('PUT', `${url}/topic`, { topic: 'a-topic' }), [200, { success: true }]);
  t.deepEqual(await call('GET', `${url}/topic`), [200, { success: true, topics: ['b-topic', 'a-topic'] }], 'creation order');
  t.deepEqual(await call('PUT', `${url}/message`, { topic: 'missing', message: 'm' }), [200, { success: false }]);
  t.deepEqual(await call('PUT', `${url}/message`, { topic: 'b-topic', message: 'first' }), [200, { success: true }]);
  t.deepEqual(await call('PUT', `${url}/message`, { topic: 'b-topic', message: 'second' }), [200, { success: true }]);
  t.deepEqual(await call('GET', `${url}/message/b-topic`), [200, { success: true, message: 'first' }]);
  t.deepEqual(await call('GET', `${url}/message/b-topic`), [200, { success: true, message: 'second' }]);
  t.deepEqual(await call('GET', `${url}/message/b-topic`), [200, { success: false }], 'empty');
  t.deepEqual(await call('GET', `${url}/message/missing`), [200, { success: false }], 'missing topic');
  t.deepEqual(await call('GET', `${url}/message/no%20such%20name!`), [200, { success: false }], 'a name no topic can have');
  const [code, index] = await call('GET', `${url}/`);
  t.is(code, 200);
  t.like(index as object, { name: 'raftqueue', id: 'n1', role: 'leader', leaderId: 'n1' });
});

test('gateway: malformed bodies get 400 with an error and change nothing; 404, 405', async (t) => {
  const { queue, url } = await singleNode(t);
  await queue.createTopic('t');
  const bad: [string, string, string | undefined, RegExp][] = [
    ['PUT', '/topic', '{"topic": ', /malformed JSON/],
    ['PUT', '/topic', '{}', /missing field "topic"/],
    ['PUT', '/topic', '{"topic": 7}', /field "topic" must be a string/],
    ['PUT', '/topic', '["t"]', /JSON object/],
    ['PUT', '/topic', 'null', /JSON object/],
    ['PUT', '/topic', '{"topic": "bad name!"}', /invalid topic/],
    ['PUT', '/topic', '', /malformed JSON/],
    ['PUT', '/message', '{"topic": "t"}', /missing field "message"/],
    ['PUT', '/message', '{"message": "m"}', /missing field "topic"/],
    ['PUT', '/message', '{"topic": ["t"], "message": "m"}', /field "topic" must be a string/],
    ['PUT', '/message', '{"topic": "t", "message": 5}', /field "message" must be a string/],
    ['GET', '/message/%E0%A4%A', /malformed topic/],
    ['GET', '/message/', /missing topic/],
  ].map(([m, p, b, r]) => (r === undefined ? [m as string, p as string, undefined, b as unknown as RegExp] : [m as string, p as string, b as string, r as RegExp]));
  for (const [method, path, raw, message] of bad) {
    const r = await httpJson(method, `${url}${path}`, undefined, raw === undefined ? {} : { rawBody: raw });
    t.is(r.status, 400, `${method} ${path} ${raw ?? ''}`);
    t.is((r.body as { success: unknown }).success, false);
    t.regex(String((r.body as { error: unknown }).error), message);
  }
  t.deepEqual(await queue.topics(), ['t'], 'nothing changed');
  t.is(await queue.consume('t'), undefined, 'nothing was published');
  t.is((await httpJson('GET', `${url}/nowhere`)).status, 404);
  t.is((await httpJson('DELETE', `${url}/topic`)).status, 405);
  t.is((await httpJson('POST', `${url}/status`)).status, 405);
});

test('gateway: a body over the bound gets 413 and changes nothing', async (t) => {
  const { queue, url } = await singleNode(t, 1024);
  await queue.createTopic('t');
  const big = await httpJson('PUT', `${url}/message`, { topic: 't', message: 'x'.repeat(2048) });
  t.is(big.status, 413);
  t.is((big.body as { success: unknown }).success, false);
  t.deepEqual(await call('PUT', `${url}/message`, { topic: 't', message: 'small' }), [200, { success: true }]);
  t.deepEqual(await call('GET', `${url}/message/t`), [200, { success: true, message: 'small' }]);
});

test('gateway: followers refuse the queue routes with a leader hint; /status and / answer everywhere', async (t) => {
  const net = new MemoryNetwork();
  const ids = ['n1', 'n2', 'n3'];
  const peers = Object.fromEntries(ids.map((id, i) => [id, `127.0.0.1:${7001 + i}`]));
  const queues = ids.map((id) => new RaftQueue({ id, peers, storage: 'memory', transport: net.transport(id) }));
  const ports = await freePorts(3);
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const httpAddresses = Object.fromEntries(ids.map((id, i) => [id, urls[i] as string]));
  const gateways = queues.map((q) => new Gateway(q, { httpAddresses }));
  t.teardown(async () => {
    // RaftNode's handover poll timer is unref'd and the memory transport holds no sockets: keep
    // the process alive until every stop() resolves.
    const keepAlive = setInterval(() => undefined, 50);
    await Promise.all(gateways.map((g) => g.close(0)));
    await Promise.all(queues.map((q) => q.stop()));
    clearInterval(keepAlive);
  });
  await Promise.all(gateways.map((g, i) => g.listen('127.0.0.1', ports[i] as number)));
  await Promise.all(queues.map((q) => q.start()));
  const leaderId = await (queues[0] as RaftQueue).waitForLeader({ timeoutMs: 5_000 });
  await waitFor('every member to know the leader', () => queues.every((q) => q.status().leaderId === leaderId), 5_000);
  for (const [i, id] of ids.entries()) {
    const url = urls[i] as string;
    const status = (await httpJson('GET', `${url}/status`)).body as { role: string; term: number };
    t.deepEqual(Object.keys(status), ['role', 'term']);
    t.is(status.role, id === leaderId ? 'Leader' : 'Follower');
    t.is((await httpJson('GET', `${url}/`)).status, 200);
    if (id === leaderId) continue;
    const hint = { success: false, leader: httpAddresses[leaderId] };
    t.deepEqual(await call('PUT', `${url}/topic`, { topic: 't' }), [200, hint]);
    t.deepEqual(await call('GET', `${url}/topic`), [200, hint]);
    t.deepEqual(await call('PUT', `${url}/message`, { topic: 't', message: 'm' }), [200, hint]);
    t.deepEqual(await call('GET', `${url}/message/t`), [200, hint]);
    t.is((await httpJson('GET', `${url}/topic`)).headers['x-raftqueue-role'], 'follower');
  }
  t.deepEqual(await queues[0]?.topics(), [], 'no follower created anything');
});

test('gateway: a gateway without a queue yet answers /status as a follower in term 0', async (t) => {
  const gateway = new Gateway(undefined);
  t.teardown(() => gateway.close(0));
  const { port } = await gateway.listen('127.0.0.1', 0);
  t.deepEqual(await call('GET', `http://127.0.0.1:${port}/status`), [200, { role: 'Follower', term: 0 }]);
  t.deepEqual(await call('GET', `http://127.0.0.1:${port}/topic`), [200, { success: false }]);
  t.is((await httpJson('GET', `http://127.0.0.1:${port}/metrics`)).status, 200);
});
