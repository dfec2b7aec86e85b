/**
 * What the HTTP routes serve: a member (`RaftQueue`) or a client process (`RaftQueueClient`).
 * Both have the queue calls; only a member has its own metrics, and only a member can change
 * the cluster's membership or hand over leadership.
 */
import type { RaftQueueClient } from '../clients/client.js';
import type { RaftQueue } from '../raft-queue.js';
import type { Json } from './body.js';

/** The queue a gateway serves: a member, or a client process connected to one. */
export type GatewayQueue = RaftQueue | RaftQueueClient;

/** True for a member (it has local metrics; a client has none). */
export function isMember(queue: GatewayQueue): queue is RaftQueue {
  return typeof (queue as Partial<RaftQueue>).metrics === 'function';
}

/** The code of the answer to a route that only a member can serve. */
export const NOT_A_MEMBER = 'NOT_A_MEMBER';

/** 501 for a route that needs a member, when the gateway serves a RaftQueueClient. */
export function notAMember(what: string): { status: number; body: Json } {
  return {
    status: 501,
    body: { success: false, code: NOT_A_MEMBER, error: `${NOT_A_MEMBER}: ${what} needs a member (a RaftQueue); this gateway serves a RaftQueueClient` },
  };
}
