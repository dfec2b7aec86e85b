/**
 * Dead letters and peek over the gateway (lib/http/dlq.ts) and the `raftqueue dlq`
 * command (lib/cli/dlq-command.ts) against it, in-process: list, redrive (each once), purge,
 * peek of any topic, 404 for a missing topic, 400/405 for bad requests.
 */
import test from 'ava';
import { Gateway } from '../lib/cli/gateway.js';
import { runDlq } from '../lib/cli/dlq-command.js';
import { httpJson } from './helpers/cli-process.js';
import { eventually, startCluster } from './helpers/queue-cluster.js';

test('gateway dlq: list, redrive, purge, peek; the dlq command prints them', async (t) => {
  const c = await startCluster(t, { size: 3 });
  const follower = (await c.followers())[0];
  if (!follower) throw new Error('no follower');
  const gateway = new Gateway(follower);
  t.teardown(() => gateway.close(0));
  const port = (await gateway.listen('127.0.0.1', 0)).port;
  const url = `http://127.0.0.1:${port}`;
  await eventually(() => follower.status().leaderId !== undefined);

  await follower.createTopic('orders', { ttlMs: 50 });
  await follower.publish('orders', { id: 1 }, { key: 'K', headers: { traceparent: '00-abc' } });
  await follower.publish('orders', new Uint8Array([1, 2]));
  t.true(await eventually(async () => (await follower.peek('orders.dlq').catch(() => [])).length === 2));

  const list = await httpJson('GET', `${url}/dlq/orders?limit=1`);
  t.is(list.status, 200);
  const body = list.body as { topic: string; messages: Record<string, unknown>[] };
  t.is(body.topic, 'orders.dlq');
  t.is(body.messages.length, 1);
  t.like(body.messages[0], { offset: 0, message: { id: 1 }, key: 'K', headers: { traceparent: '00-abc' }, deadLetter: { topic: 'orders', offset: 0, reason: 'expired', attempts: 0, group: 'default' } });

  const lines: string[] = [];
  const errors: string[] = [];
  const run = (argv: string[]): Promise<number> => runDlq(argv, (s) => lines.push(s), (s) => errors.push(s));
  t.is(await run(['list', 'orders', '--http', `127.0.0.1:${port}`]), 0, errors.join(''));
  t.regex(lines.join(''), /^OFFSET\s+FROM\s+REASON\s+ATTEMPTS\s+GROUP\s+KEY\s+PAYLOAD\n0\s+orders@0\s+expired\s+0\s+default\s+K\s+\{"id":1\}\n1\s+orders@1\s+expired .*base64:AQI=/);

  await follower.createTopic('retry');
  lines.length = 0;
  t.is(await run(['redrive', 'orders', '--to', 'retry', '--max', '1', '--http', `127.0.0.1:${port}`]), 0, errors.join(''));
  t.is(lines.join(''), 'moved 1, 1 left\n');
  t.like(await follower.consume('retry'), { payload: { id: 1 }, key: 'K' });

  const peek = await httpJson('GET', `${url}/peek/orders.dlq`);
  t.is((peek.body as { messages: unknown[] }).messages.length, 1);
  lines.length = 0;
  t.is(await run(['purge', 'orders', '--http', `127.0.0.1:${port}`]), 0, errors.join(''));
  t.is(lines.join(''), 'purged 1\n');
  t.deepEqual(await follower.peek('orders.dlq'), []);

  const bad: [string, string, unknown, number, RegExp][] = [
    ['GET', '/dlq/nope', undefined, 404, /TOPIC_NOT_FOUND/],
    ['GET', '/dlq/orders?limit=x', undefined, 400, /limit/],
    ['GET', '/dlq/orders?limit=0', undefined, 400, /limit/],
    ['PUT', '/dlq/orders', undefined, 405, /allowed: GET, DELETE/],
    ['POST', '/dlq/orders/redrive', { max: 'all' }, 400, /max/],
    ['POST', '/dlq/orders/redrive', { to: 'missing' }, 404, /TOPIC_NOT_FOUND/],
  ];
  for (const [method, path, reqBody, status, error] of bad) {
    const r = await httpJson(method, `${url}${path}`, reqBody);
    t.is(r.status, status, `${method} ${path} ${JSON.stringify(r.body)}`);
    t.regex((r.body as { error: string }).error, error);
  }
  errors.length = 0;
  t.is(await run(['list', 'nope', '--http', `127.0.0.1:${port}`]), 1);
  t.regex(errors.join(''), /TOPIC_NOT_FOUND/);
});
