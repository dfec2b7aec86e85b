/**
 * The gateway as a library (`raftqueue/http`): createGateway mounted in an app's own server
 * under a basePath, over a RaftQueue and over a RaftQueueClient; the dashboard's JSON routes,
 * its guard and its answers to bad input; RaftQueue.topicStats, which feeds the page.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'node:http';
import { Gateway } from '../lib/cli/gateway.js';
import { RaftQueue, RaftQueueClient } from '../lib/index.js';
import { CliProcesses, freePorts, httpJson } from './helpers/cli-process.js';
import { eventually } from './helpers/queue-cluster.js';

async function member(t: ExecutionContext, port = 0): Promise<RaftQueue> {
  const queue = new RaftQueue({ id: 'n1', peers: { n1: `127.0.0.1:${port}` }, storage: 'memory' });
  t.teardown(() => queue.stop());
  await queue.start();
  await queue.waitForLeader({ timeoutMs: 5_000 });
  return queue;
}

/** One request with any headers (httpJson sets its own Content-Type); the parsed JSON or text. */
function raw(method: string, url: string, headers: Record<string, string>, body?: string): Promise<{ status: number; body: Record<string, unknown>; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }), ...headers }, agent: false, timeout: 5_000 });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('no answer')));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>, headers: res.headers }));
    });
    req.end(body);
  });
}

test('raftqueue/http: createGateway serves the routes, the metrics and the page under a basePath in an app\'s own server', async (t) => {
  // The package's own name resolves to this package (self-reference through "exports").
  const http = await import('raftqueue/http');
  const queue = await member(t);
  const gateway = http.createGateway(queue, { basePath: '/queue' });
  const server = createServer((req, res) => {
    if (req.url === '/health') return void res.end('ok');
    if (req.url?.startsWith('/queue/') === true || req.url === '/queue') return gateway(req, res);
    res.statusCode = 404;
    res.end('the app has no such page');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    gateway.close();
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.deepEqual((await httpJson('PUT', `${base}/queue/topic`, { topic: 'orders' })).body, { success: true });
  t.deepEqual((await httpJson('PUT', `${base}/queue/message`, { topic: 'orders', message: 'hi' })).body, { success: true });
  t.deepEqual((await httpJson('GET', `${base}/queue/status`)).body, { role: 'Leader', term: queue.status().term });
  const metrics = await httpJson('GET', `${base}/queue/metrics`);
  t.regex(metrics.text, /^raftqueue_topic_depth\{topic="orders"\} 1$/m);
  t.regex(http.formatMetrics(queue), /^raftqueue_topic_depth\{topic="orders"\} 1$/m, 'formatMetrics(queue)');
  t.regex(http.formatMetrics(queue.status(), queue.metrics()), /^raftqueue_role\{role="leader"\} 1$/m, 'formatMetrics(status, metrics)');
  const page = await httpJson('GET', `${base}/queue/ui`);
  t.is(page.status, 200);
  t.regex(String(page.headers['content-type']), /^text\/html/);
  t.is(page.headers['content-security-policy'], http.UI_CSP);
  t.regex(page.text, /<script type="module" src="ui\/app\.js"><\/script>/, 'relative links: the page works under the basePath');
  const script = await httpJson('GET', `${base}/queue/ui/app.js`);
  t.regex(String(script.headers['content-type']), /^text\/javascript/);
  t.regex(script.text, /new EventSource\('ui\/events'\)/);
  t.notRegex(script.text, /sourceMappingURL/);
  t.is((await httpJson('GET', `${base}/queue/ui/style.css`)).status, 200);
  const state = (await httpJson('GET', `${base}/queue/ui/state`)).body as { kind: string; topics: { topic: string; depth: number }[]; members: { id: string }[] };
  t.is(state.kind, 'member');
  t.deepEqual(state.topics.map((x) => [x.topic, x.depth]), [['orders', 1]]);
  t.deepEqual(state.members.map((m) => m.id), ['n1']);
  t.is((await httpJson('GET', `${base}/health`)).text, 'ok', 'the app keeps its own routes');
  t.is((await httpJson('GET', `${base}/status`)).status, 404);
  t.throws(() => http.createGateway(queue, { basePath: 'queue/' }), { message: /basePath/ });
});

test('dashboard: the event stream sends the state at once; /ui/ redirects; unknown /ui routes are JSON 404s', async (t) => {
  const queue = await member(t);
  const gateway = new Gateway(queue);
  t.teardown(() => gateway.close(0));
  const { port } = await gateway.listen('127.0.0.1', 0);
  const base = `http://127.0.0.1:${port}`;
  const first = await new Promise<string>((resolve, reject) => {
    const req = request(`${base}/ui/events`, { agent: false }, (res) => {
      t.regex(String(res.headers['content-type']), /^text\/event-stream/);
      let text = '';
      res.on('data', (c: Buffer) => {
        text += c.toString('utf8');
        if (/\n\n.*event: state\ndata: .*\n\n/s.test(text)) {
          req.destroy();
          resolve(text);
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
  const data = JSON.parse(/data: (.*)\n/.exec(first)?.[1] ?? '{}') as { self: { id: string; role: string } };
  t.deepEqual([data.self.id, data.self.role], ['n1', 'leader']);
  const slash = await httpJson('GET', `${base}/ui/`);
  t.is(slash.status, 308);
  t.is(slash.headers['location'], '../ui');
  const missing = await httpJson('GET', `${base}/ui/nothing`);
  t.is(missing.status, 404);
  t.is((missing.body as { code: string }).code, 'NO_ROUTE');
  t.is((await httpJson('DELETE', `${base}/ui`)).status, 405);
});

test('dashboard actions: loopback clients may act without a token; bad input gets a JSON error with a code and changes nothing', async (t) => {
  const queue = await member(t);
  const gateway = new Gateway(queue);
  t.teardown(() => gateway.close(0));
  const { port } = await gateway.listen('127.0.0.1', 0);
  const base = `http://127.0.0.1:${port}`;
  const json = { 'content-type': 'application/json' };
  t.deepEqual((await httpJson('GET', `${base}/ui/session`)).body, { success: true, admin: true, member: true });
  const created = await raw('POST', `${base}/ui/actions/createTopic`, json, JSON.stringify({ topic: 'jobs' }));
  t.deepEqual([created.status, created.body], [200, { success: true, action: 'createTopic', created: true }]);
  const published = await raw('POST', `${base}/ui/actions/publish`, json, JSON.stringify({ topic: 'jobs', message: 'test' }));
  t.deepEqual([published.status, published.body], [200, { success: true, action: 'publish', offset: 0 }]);
  const bad: [string, Record<string, string>, string | undefined, number, string][] = [
    ['createTopic', json, '{"topic": ', 400, 'BAD_REQUEST'],
    ['createTopic', json, '[]', 400, 'BAD_REQUEST'],
    ['createTopic', json, '{}', 400, 'BAD_REQUEST'],
    ['createTopic', json, '{"topic": 7}', 400, 'BAD_REQUEST'],
    ['createTopic', json, '{"topic": "a", "extra": 1}', 400, 'BAD_REQUEST'],
    ['createTopic', json, JSON.stringify({ topic: '<img src=x onerror=alert(1)>' }), 400, 'INVALID_TOPIC'],
    ['createTopic', { 'content-type': 'text/plain' }, '{"topic": "b"}', 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['createTopic', { ...json, origin: 'http://evil.example' }, '{"topic": "b"}', 403, 'FORBIDDEN'],
    ['createTopic', { ...json, origin: 'null' }, '{"topic": "b"}', 403, 'FORBIDDEN'],
    ['createTopic', { ...json, host: 'rebound.example' }, '{"topic": "b"}', 403, 'FORBIDDEN'],
    ['createTopic', { ...json, host: 'rebound.example', authorization: 'Bearer anything-at-all-000000' }, '{"topic": "b"}', 403, 'FORBIDDEN'],
    ['publish', json, '{"topic": "nope", "message": "m"}', 404, 'TOPIC_NOT_FOUND'],
    ['deleteTopics', json, '{}', 404, 'UNKNOWN_ACTION'],
    ['%E0%A4%A', json, '{}', 400, 'BAD_REQUEST'],
    ['__proto__', json, '{}', 404, 'UNKNOWN_ACTION'],
  ];
  for (const [name, headers, body, status, code] of bad) {
    const r = await raw('POST', `${base}/ui/actions/${name}`, headers, body);
    t.is(r.status, status, `${name} ${body ?? ''} ${JSON.stringify(headers)}`);
    t.is(r.body['success'], false);
    t.is(r.body['code'], code, `${name} ${body ?? ''}`);
    t.is(typeof r.body['error'], 'string');
  }
  const big = await raw('POST', `${base}/ui/actions/createTopic`, json, JSON.stringify({ topic: 'x'.repeat(2 << 20) }));
  t.deepEqual([big.status, big.body['code']], [413, 'PAYLOAD_TOO_LARGE']);
  t.is((await httpJson('GET', `${base}/ui/actions/createTopic`)).status, 405);
  t.deepEqual(await queue.topics(), ['jobs'], 'nothing else was created');
  t.deepEqual((await httpJson('GET', `${base}/status`)).body, { role: 'Leader', term: queue.status().term }, 'the member still serves');
});

test('dashboard actions: with an admin token they need it, loopback or not; the session says so', async (t) => {
  const queue = await member(t);
  const gateway = new Gateway(queue, { adminToken: 'ui-admin-token-0123456789' });
  t.teardown(() => gateway.close(0));
  const { port } = await gateway.listen('127.0.0.1', 0);
  const base = `http://127.0.0.1:${port}`;
  const session = (await httpJson('GET', `${base}/ui/session`)).body as { admin: boolean; why: string };
  t.false(session.admin);
  t.regex(session.why, /Authorization: Bearer/);
  const refused = await raw('POST', `${base}/ui/actions/createTopic`, { 'content-type': 'application/json' }, '{"topic": "a"}');
  t.deepEqual([refused.status, refused.body['code']], [401, 'UNAUTHORIZED']);
  const wrong = await raw('POST', `${base}/ui/actions/createTopic`, { 'content-type': 'application/json', authorization: 'Bearer not-the-token-at-all-xx' }, '{"topic": "a"}');
  t.is(wrong.status, 401);
  t.deepEqual(await queue.topics(), []);
  const auth = { authorization: 'Bearer ui-admin-token-0123456789' };
  t.is(((await httpJson('GET', `${base}/ui/session`, undefined, { headers: auth })).body as { admin: boolean }).admin, true);
  // With the token, the Host need not be loopback (a proxy's name).
  const ok = await raw('POST', `${base}/ui/actions/createTopic`, { 'content-type': 'application/json', host: 'queue.internal.example', ...auth }, '{"topic": "a"}');
  t.deepEqual([ok.status, ok.body['created']], [200, true]);
  const moved = await raw('POST', `${base}/ui/actions/transferLeadership`, { 'content-type': 'application/json', ...auth }, '{"to": "n9"}');
  t.is(moved.body['success'], false, 'no such member to hand over to');
  t.is(typeof moved.body['code'], 'string');
});

test('raftqueue/http over a RaftQueueClient: queue routes and the page work; member-only routes answer 501 NOT_A_MEMBER', async (t) => {
  const [port] = await freePorts(1);
  const queue = await member(t, port);
  const client = new RaftQueueClient({ members: [`127.0.0.1:${port as number}`] });
  t.teardown(() => client.close());
  await client.connect();
  const { createGateway, NOT_A_MEMBER } = await import('raftqueue/http');
  const handler = createGateway(client);
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    handler.close();
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.deepEqual((await httpJson('PUT', `${base}/topic`, { topic: 'orders' })).body, { success: true });
  t.deepEqual((await httpJson('PUT', `${base}/message`, { topic: 'orders', message: 'via a client' })).body, { success: true });
  t.deepEqual((await httpJson('GET', `${base}/message/orders`)).body, { success: true, message: 'via a client' });
  t.deepEqual((await httpJson('GET', `${base}/topic`)).body, { success: true, topics: ['orders'] });
  const fetched = await httpJson('POST', `${base}/groups/g/missing/fetch`, {});
  t.deepEqual(fetched.body, { success: false, error: 'TOPIC_NOT_FOUND: no topic "missing"' });
  const members = (await httpJson('GET', `${base}/members`)).body as { success: boolean; members: { id: string }[] };
  t.deepEqual(members.members.map((m) => m.id), ['n1']);
  for (const [method, path, body] of [['GET', '/metrics', undefined], ['POST', '/members', { id: 'n2', address: '127.0.0.1:1' }], ['DELETE', '/members/n1', undefined], ['POST', '/leader', {}]] as const) {
    const r = await httpJson(method, `${base}${path}`, body);
    t.is(r.status, 501, `${method} ${path}`);
    t.is((r.body as { code: string }).code, NOT_A_MEMBER);
  }
  const state = (await httpJson('GET', `${base}/ui/state`)).body as { kind: string; actions: { name: string }[] };
  t.is(state.kind, 'client');
  t.deepEqual(state.actions.map((a) => a.name), ['createTopic', 'publish', 'peek', 'redrive', 'deleteTopic'], 'member actions are not offered');
  const act = await raw('POST', `${base}/ui/actions/addMember`, { 'content-type': 'application/json' }, '{"id": "n2", "address": "127.0.0.1:1"}');
  t.deepEqual([act.status, act.body['code']], [501, NOT_A_MEMBER]);
  t.deepEqual(queue.members().map((m) => m.id), ['n1'], 'nothing changed');
});

test('RaftQueue.topicStats: size, published count, dead-letter source and per-group backlog', async (t) => {
  const dir = new CliProcesses(t).tempDir();
  const queue = new RaftQueue({ id: 'n1', peers: { n1: '127.0.0.1:0' }, dataDir: dir });
  t.teardown(() => queue.stop());
  t.deepEqual(queue.topicStats(), [], 'safe before start');
  await queue.start();
  await queue.waitForLeader({ timeoutMs: 5_000 });
  await queue.createTopic('orders');
  const before = Date.now();
  for (let i = 0; i < 3; i++) await queue.publish('orders', `m${i}`);
  await queue.consume('orders');
  const it = queue.messages('orders', { group: 'audit', maxInFlight: 1, maxDeliveries: 1 });
  const first = await it.next();
  t.false(first.done);
  t.true(await eventually(() => queue.topicStats()[0]?.groups.find((g) => g.group === 'audit')?.inFlight === 1));
  const [orders] = queue.topicStats();
  t.is(orders?.topic, 'orders');
  t.is(orders?.published, 3);
  t.is(orders?.messages, 2, 'the pop removed m0 (audit did not exist yet: it starts at m1)');
  t.true((orders?.bytes ?? 0) >= 6);
  t.is(orders?.deadLetterOf, null);
  const def = orders?.groups.find((g) => g.group === 'default');
  t.deepEqual([def?.waiting, def?.inFlight, def?.redeliveries], [2, 0, 0]);
  t.true((def?.oldestWaitingPublishedAt ?? 0) >= before - 1_000);
  const audit = orders?.groups.find((g) => g.group === 'audit');
  t.deepEqual([audit?.waiting, audit?.inFlight], [1, 1]);
  // One attempt allowed: a nack moves the message to the dead-letter topic.
  if (first.done !== true) await first.value.nack();
  await it.return?.();
  t.true(await eventually(() => queue.topicStats().some((x) => x.deadLetterOf === 'orders')));
  t.is(queue.topicStats().find((x) => x.deadLetterOf === 'orders')?.topic, 'orders.dlq');
});

test('dashboard: event streams are bounded (STREAMS_MAX, then 503 NO_CAPACITY) and do not hold a closing gateway', async (t) => {
  const queue = await member(t);
  const gateway = new Gateway(queue);
  const { port } = await gateway.listen('127.0.0.1', 0);
  const { STREAMS_MAX } = await import('../lib/http/dashboard.js');
  const open = async (): Promise<{ status: number; closed: Promise<void> }> =>
    new Promise((resolve, reject) => {
      const req = request(`http://127.0.0.1:${port}/ui/events`, { agent: false }, (res) => {
        const closed = new Promise<void>((done) => res.on('close', () => done()));
        res.resume();
        resolve({ status: res.statusCode ?? 0, closed });
      });
      req.on('error', reject);
      req.end();
    });
  const streams = [];
  for (let i = 0; i < STREAMS_MAX; i++) streams.push(await open());
  t.true(streams.every((s) => s.status === 200));
  const refused = await open();
  t.is(refused.status, 503);
  const started = Date.now();
  await gateway.close(5_000);
  await Promise.all(streams.map((s) => s.closed));
  t.true(Date.now() - started < 2_500, `closed after ${Date.now() - started} ms: the streams were ended, not waited for`);
});

test('guarded routes refuse another site and DNS rebinding: POST /members, POST /leader, dlq changes', async (t) => {
  // Found in review: only the dashboard's own actions had these checks, while a page of any
  // site could POST to the membership routes of a member without a token (a loopback client).
  const queue = await member(t);
  const gateway = new Gateway(queue);
  t.teardown(() => gateway.close(0));
  const { port } = await gateway.listen('127.0.0.1', 0);
  const base = `http://127.0.0.1:${port}`;
  await queue.createTopic('jobs');
  const simple = { 'content-type': 'text/plain' };
  const cases: [string, string, Record<string, string>, string | undefined][] = [
    ['POST', '/members', { ...simple, origin: 'http://evil.example' }, JSON.stringify({ id: 'n9', address: '127.0.0.1:1' })],
    ['POST', '/members', { ...simple, host: 'evil.example' }, JSON.stringify({ id: 'n9', address: '127.0.0.1:1' })],
    ['POST', '/members', { ...simple, origin: 'null' }, JSON.stringify({ id: 'n9', address: '127.0.0.1:1' })],
    ['POST', '/leader', { ...simple, origin: 'http://evil.example' }, '{}'],
    ['DELETE', '/dlq/jobs', { host: 'evil.example' }, undefined],
    ['POST', '/dlq/jobs/redrive', { ...simple, origin: 'http://evil.example' }, '{}'],
  ];
  for (const [method, path, headers, body] of cases) {
    const r = await raw(method, `${base}${path}`, headers, body);
    t.is(r.status, 403, `${method} ${path} ${JSON.stringify(headers)}`);
    t.is(r.body['code'], 'FORBIDDEN');
  }
  t.deepEqual((await queue.members()).map((m) => m.id), ['n1'], 'no member was added');
  // A command-line client (no Origin, a loopback Host) still may: past the guard, the missing
  // dead-letter topic is the answer.
  const ok = await raw('DELETE', `${base}/dlq/jobs`, {});
  t.deepEqual([ok.status, String(ok.body['error']).split(':')[0]], [404, 'TOPIC_NOT_FOUND']);
});
