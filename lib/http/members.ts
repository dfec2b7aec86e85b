/**
 * Membership over the HTTP gateway, served by any member (the library forwards to the leader):
 *
 * - `GET /members` -> `{"success": true, "leaderId", "members": [{"id", "address", "role",
 *   "isLeader", "match"?, "lag"?}]}` (progress is known when asked of the leader);
 * - `POST /members` `{"id": "n4", "address": "127.0.0.1:7004"}` -> adds the member (learner,
 *   caught up, promoted) and answers once the promotion is committed, with the new list;
 * - `DELETE /members/<id>` -> removes it (the leader included) and answers once committed;
 * - `POST /leader` `{"to": "n2"}` (or `{}`: the most caught-up voter) -> `{"success": true,
 *   "leaderId"}` once leadership moved.
 *
 * Guarded by the gateway: with an admin token every request needs `Authorization: Bearer
 * <token>` (401 otherwise); without one only loopback clients are served (403 otherwise).
 *
 * Over a RaftQueueClient (an app's embedded gateway), `GET /members` asks the connected member;
 * the changes answer 501 `NOT_A_MEMBER` (a client cannot change the membership).
 *
 * Optional `"timeoutMs"` in a POST body bounds the wait (default: the library's, 60 s for
 * membership changes). Errors: 400 for a malformed request, 409 when the change cannot apply
 * (`INVALID_MEMBERSHIP`: already a member elsewhere, not a voter, the last voter), 503 when no
 * leader answered in time; every body is `{"success": false, "error": "CODE: message"}`.
 */
import type { RaftQueue } from '../raft-queue.js';
import { isMember, notAMember } from './queue-kind.js';
import type { GatewayQueue } from './queue-kind.js';
import { BadRequest, stringField } from './body.js';
import type { Json } from './body.js';

export interface MembersReply {
  readonly status: number;
  readonly body: Json;
}


/** Routes `/members`, `/members/<id>` and `/leader`; undefined for any other path. */
export function routeMembers(
  queue: GatewayQueue | undefined,
  method: string,
  path: string,
  readBody: () => Promise<Json>,
  refusal: () => MembersReply | undefined = () => undefined,
): Promise<MembersReply> | undefined {
  if (path !== '/members' && path !== '/leader' && !path.startsWith('/members/')) return undefined;
  const refused = refusal();
  if (refused !== undefined) return Promise.resolve(refused);
  if (queue === undefined) return Promise.resolve({ status: 503, body: { success: false, error: 'NO_LEADER: the member is still starting' } });
  if (!isMember(queue)) {
    if (path === '/members' && method === 'GET') return queue.fetchMembers().then((members) => ({ status: 200, body: { success: true, leaderId: queue.status().leaderId ?? null, members } }));
    return Promise.resolve(notAMember(`${method} ${path}`));
  }
  if (path === '/members') {
    if (method === 'GET') return Promise.resolve(list(queue));
    if (method === 'POST') return readBody().then((body) => add(queue, body));
    return Promise.resolve(notAllowed('GET, POST'));
  }
  if (path === '/leader') {
    if (method === 'POST') return readBody().then((body) => transfer(queue, body));
    return Promise.resolve(notAllowed('POST'));
  }
  if (method !== 'DELETE') return Promise.resolve(notAllowed('DELETE'));
  let id: string;
  try {
    id = decodeURIComponent(path.slice('/members/'.length));
  } catch {
    return Promise.reject(new BadRequest('malformed member id in path'));
  }
  if (id.length === 0) return Promise.reject(new BadRequest('missing member id in path'));
  return queue.removePeer(id, {}).then(() => list(queue));
}

function list(queue: RaftQueue): MembersReply {
  return { status: 200, body: { success: true, leaderId: queue.status().leaderId ?? null, members: queue.members() } };
}

async function add(queue: RaftQueue, body: Json): Promise<MembersReply> {
  const id = stringField(body, 'id');
  const address = stringField(body, 'address');
  await queue.addPeer(id, address, timeout(body));
  return list(queue);
}

async function transfer(queue: RaftQueue, body: Json): Promise<MembersReply> {
  const to = body['to'];
  if (to !== undefined && to !== null && typeof to !== 'string') throw new BadRequest('field "to" must be a string');
  const leaderId = await queue.transferLeadership(typeof to === 'string' ? to : undefined, timeout(body));
  return { status: 200, body: { success: true, leaderId } };
}

function timeout(body: Json): { timeoutMs?: number } {
  const t = body['timeoutMs'];
  if (t === undefined) return {};
  if (typeof t !== 'number' || !Number.isInteger(t) || t <= 0 || t > 3_600_000) throw new BadRequest('field "timeoutMs" must be a positive integer (at most 3600000)');
  return { timeoutMs: t };
}


function notAllowed(allow: string): MembersReply {
  return { status: 405, body: { success: false, error: `method not allowed (allowed: ${allow})` } };
}
