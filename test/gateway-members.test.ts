/**
 * The gateway's membership routes in-process (lib/http/members.ts): GET/POST /members,
 * DELETE /members/<id>, POST /leader, with bad requests answered 400/405/409 and nothing changed.
 */
import test from 'ava';
import { Gateway } from '../lib/cli/gateway.js';
import { httpJson } from './helpers/cli-process.js';
import { eventually, startCluster } from './helpers/queue-cluster.js';

test('gateway members: list, add (joining node), remove, transfer, and refusals', async (t) => {
  const c = await startCluster(t, { size: 3 });
  const follower = (await c.followers())[0];
  if (!follower) throw new Error('no follower');
  const gateway = new Gateway(follower);
  t.teardown(() => gateway.close(0));
  const url = `http://127.0.0.1:${(await gateway.listen('127.0.0.1', 0)).port}`;

  await eventually(() => follower.status().leaderId !== undefined);
  const list = await httpJson('GET', `${url}/members`);
  t.is(list.status, 200);
  const body = list.body as { success: boolean; leaderId: string; members: { id: string; role: string }[] };
  t.true(body.success);
  t.is(body.leaderId, (await c.leader()).status().id);
  t.deepEqual(body.members.map((m) => `${m.id}:${m.role}`), ['n1:voter', 'n2:voter', 'n3:voter']);

  // Add a node that is running (it joins through n1 on the memory network): answered once a voter.
  await c.spawn('n4', 'n1');
  const add = await httpJson('POST', `${url}/members`, { id: 'n4', address: c.address('n4'), timeoutMs: 20_000 }, { timeoutMs: 25_000 });
  t.is(add.status, 200, JSON.stringify(add.body));
  t.true((add.body as { members: { id: string; role: string }[] }).members.some((m) => m.id === 'n4' && m.role === 'voter'));

  // Refusals: malformed (400), wrong method (405), cannot apply (409); nothing changes.
  const bad: [string, string, unknown, number, RegExp][] = [
    ['POST', '/members', { id: 'n5' }, 400, /missing field "address"/],
    ['POST', '/members', { id: 5, address: '127.0.0.1:1' }, 400, /field "id" must be a string/],
    ['POST', '/members', { id: 'n5', address: 'nowhere' }, 400, /host:port/],
    ['POST', '/members', { id: 'n5', address: '127.0.0.1:1', timeoutMs: -1 }, 400, /timeoutMs/],
    ['POST', '/members', { id: 'n4', address: '127.0.0.1:1' }, 409, /INVALID_MEMBERSHIP: n4 is already a member/],
    ['PUT', '/members', {}, 405, /allowed: GET, POST/],
    ['GET', '/leader', undefined, 405, /allowed: POST/],
    ['POST', '/leader', { to: 7 }, 400, /field "to" must be a string/],
    ['POST', '/leader', { to: 'n9' }, 409, /not a voter/],
  ];
  for (const [method, path, reqBody, status, error] of bad) {
    const r = await httpJson(method, `${url}${path}`, reqBody);
    t.is(r.status, status, `${method} ${path} ${JSON.stringify(reqBody)}`);
    t.regex((r.body as { error: string }).error, error);
  }
  t.is(follower.members().length, 4);

  // Transfer to a named voter, then remove the old leader's peer n4 and a non-member (no-op).
  const target = follower.status().id;
  const moved = await httpJson('POST', `${url}/leader`, { to: target });
  t.deepEqual(moved.body, { success: true, leaderId: target });
  const removed = await httpJson('DELETE', `${url}/members/n4`);
  t.is(removed.status, 200);
  t.deepEqual((removed.body as { members: { id: string }[] }).members.map((m) => m.id), ['n1', 'n2', 'n3']);
  t.is((await httpJson('DELETE', `${url}/members/nobody`)).status, 200);
});

test('gateway members: with an admin token the membership routes need it (401 otherwise); queue routes do not', async (t) => {
  const c = await startCluster(t, { size: 1 });
  const q = c.q('n1');
  await c.leader();
  const gateway = new Gateway(q, { adminToken: 'secret-token-0123456789' });
  t.teardown(() => gateway.close(0));
  const url = `http://127.0.0.1:${(await gateway.listen('127.0.0.1', 0)).port}`;
  const none = await httpJson('GET', `${url}/members`);
  t.is(none.status, 401);
  t.regex((none.body as { error: string }).error, /Authorization: Bearer/);
  t.is((await httpJson('GET', `${url}/members`, undefined, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status, 401);
  t.is((await httpJson('DELETE', `${url}/members/n1`, undefined, { headers: { authorization: 'Bearer nope' } })).status, 401);
  const ok = await httpJson('GET', `${url}/members`, undefined, { headers: { authorization: 'Bearer secret-token-0123456789' } });
  t.is(ok.status, 200);
  t.is((await httpJson('GET', `${url}/status`)).status, 200);
  t.deepEqual(q.members().map((m) => m.id), ['n1']);
});
