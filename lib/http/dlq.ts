/**
 * Dead letters and inspection over the HTTP gateway, served by any member (the library forwards
 * to the leader):
 *
 * - `GET /dlq/<topic>?limit=N` -> `{"success": true, "topic": "<topic>.dlq", "messages": [...]}`:
 *   the dead letters of `<topic>` waiting in `<topic>.dlq`, oldest first, without taking them
 *   (`limit` 1 to 1,000, default 100);
 * - `POST /dlq/<topic>/redrive` `{"to"?: "other", "max"?: N}` -> `{"success": true, "moved",
 *   "remaining", "stopped"?}`: moves them back (to the topic each came from, or `to`), each once;
 * - `DELETE /dlq/<topic>` -> `{"success": true, "purged": N}`: drops every dead letter of `<topic>`;
 * - `GET /peek/<topic>?group=G&limit=N` -> `{"success": true, "topic", "messages": [...]}`: the
 *   messages waiting for group G (default 'default') of any topic, without claiming them.
 *
 * A message is `{"offset", "message", "encoding"?: "base64", "publishedAt", "deliveryCount",
 * "key"?, "priority"?, "headers"?, "deliverAt"?, "deadLetter"?: {"topic", "offset", "reason",
 * "attempts", "group"}}` (`message` as in `GET /message/<topic>`: JSON, or base64 bytes).
 *
 * Redrive and purge change the queue: like the membership routes they need the admin token
 * (`Authorization: Bearer <token>`) when the member has one, and a loopback client otherwise.
 * A missing topic is 404 `TOPIC_NOT_FOUND`.
 */
import type { PeekedMessage } from '../events.js';
import { BadRequest } from './body.js';
import type { Json } from './body.js';
import { jsonMessage } from './messages.js';
import type { GatewayQueue } from './queue-kind.js';

export interface DlqReply {
  readonly status: number;
  readonly body: Json;
}

/** The dead-letter topic of `topic` (as the queue names it). */
const dlqOf = (topic: string): string => `${topic}.dlq`;

/**
 * Routes `/dlq/...` and `/peek/...`; undefined for any other path. `query` is the URL's search
 * string (after '?'); `refusal` says why a changing request is not allowed, if it is not.
 */
export function routeDlq(
  queue: GatewayQueue | undefined,
  method: string,
  path: string,
  query: string,
  readBody: () => Promise<Json>,
  refusal: () => DlqReply | undefined,
): Promise<DlqReply> | undefined {
  const peekRoute = path.startsWith('/peek/');
  if (!peekRoute && !path.startsWith('/dlq/')) return undefined;
  if (queue === undefined) return Promise.resolve({ status: 503, body: { success: false, error: 'NO_LEADER: the member is still starting' } });
  const params = new URLSearchParams(query);
  try {
    if (peekRoute) {
      if (method !== 'GET') return Promise.resolve(notAllowed('GET'));
      const topic = pathTopic(path.slice('/peek/'.length));
      const group = params.get('group') ?? undefined;
      return peek(queue, topic, { ...(group !== undefined ? { group } : {}), ...limit(params) });
    }
    const rest = path.slice('/dlq/'.length);
    if (rest.endsWith('/redrive')) {
      if (method !== 'POST') return Promise.resolve(notAllowed('POST'));
      const refused = refusal();
      if (refused !== undefined) return Promise.resolve(refused);
      const topic = pathTopic(rest.slice(0, -'/redrive'.length));
      return readBody().then((body) => redrive(queue, topic, body));
    }
    const topic = pathTopic(rest);
    if (method === 'GET') return peek(queue, dlqOf(topic), limit(params));
    if (method === 'DELETE') {
      const refused = refusal();
      if (refused !== undefined) return Promise.resolve(refused);
      return queue.purge(dlqOf(topic)).then((purged) => ({ status: 200, body: { success: true, topic: dlqOf(topic), purged } }), notFound);
    }
    return Promise.resolve(notAllowed('GET, DELETE'));
  } catch (error) {
    return Promise.reject(error);
  }
}

async function peek(queue: GatewayQueue, topic: string, options: { group?: string; limit?: number }): Promise<DlqReply> {
  try {
    const messages = await queue.peek(topic, options);
    return { status: 200, body: { success: true, topic, messages: messages.map(messageJson) } };
  } catch (error) {
    return notFound(error);
  }
}

async function redrive(queue: GatewayQueue, topic: string, body: Json): Promise<DlqReply> {
  const to = body['to'];
  if (to !== undefined && typeof to !== 'string') throw new BadRequest('field "to" must be a string');
  const max = body['max'];
  if (max !== undefined && (typeof max !== 'number' || !Number.isInteger(max))) throw new BadRequest('field "max" must be an integer');
  try {
    const r = await queue.redrive(dlqOf(topic), { ...(to !== undefined ? { to } : {}), ...(max !== undefined ? { max } : {}) });
    return { status: 200, body: { success: true, topic: dlqOf(topic), ...r } };
  } catch (error) {
    return notFound(error);
  }
}

/** A message as the routes list it (JSON). */
export function messageJson(m: PeekedMessage): Json {
  const out: Json = { offset: m.offset, ...jsonMessage(m.payload), publishedAt: m.publishedAt, deliveryCount: m.deliveryCount };
  if (m.key !== undefined) out['key'] = m.key;
  if (m.priority !== undefined) out['priority'] = m.priority;
  if (m.headers !== undefined) out['headers'] = m.headers;
  if (m.deliverAt !== undefined) out['deliverAt'] = m.deliverAt;
  if (m.deadLetter !== undefined) out['deadLetter'] = { ...m.deadLetter };
  return out;
}

/** A TOPIC_NOT_FOUND is a 404 here; anything else goes to the gateway's error mapping. */
function notFound(error: unknown): DlqReply {
  if (typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'TOPIC_NOT_FOUND') {
    return { status: 404, body: { success: false, error: `TOPIC_NOT_FOUND: ${(error as Error).message}` } };
  }
  throw error;
}

function limit(params: URLSearchParams): { limit?: number } {
  const raw = params.get('limit');
  if (raw === null) return {};
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n)) throw new BadRequest('query "limit" must be an integer');
  return { limit: n };
}

function pathTopic(raw: string): string {
  let topic: string;
  try {
    topic = decodeURIComponent(raw);
  } catch (error) {
    throw new BadRequest(`malformed topic in path: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (topic.length === 0 || topic.includes('/')) throw new BadRequest('missing or malformed topic in path');
  return topic;
}

function notAllowed(allow: string): DlqReply {
  return { status: 405, body: { success: false, error: `method not allowed (allowed: ${allow})` } };
}
