/**
 * The IPC messages between the chaos harness and its client processes (client-process.ts), and
 * the clock bracket that puts a child's times on the harness's clock.
 *
 * A child reports each operation twice: `invoke` before the call starts (and only once that
 * message is handed to the channel, so a SIGKILL cannot hide an operation that reached a member)
 * and `complete` when it ended. A group delivery is one `delivery` message, sent before it is
 * settled. An operation whose `complete` never came (the child was killed) stays unknown.
 */
import { z } from 'zod';

/** What a client process does: its name, the addresses it reaches members by, its share of the workload. */
export const clientPlanSchema = z.strictObject({
  name: z.string(),
  incarnation: z.number().int().positive(),
  seed: z.number().int().nonnegative(),
  /** This client's own proxy to each member, as host:port (index = node index). */
  members: z.array(z.string()).min(1),
  /**
   * Every address a member may name another by (its own port, the peer proxies) -> this
   * client's proxy to that member: views teach the client members' addresses as each member
   * sees them, and the client must reach every member only through its own proxies.
   */
  routes: z.record(z.string(), z.string()),
  topics: z.array(z.string()).min(1),
  /** Subscriber groups: `messages` settles each delivery itself, `subscribe` through a handler. */
  groups: z.array(z.strictObject({ topic: z.string(), group: z.string(), style: z.enum(['messages', 'subscribe']) })),
  publishers: z.number().int().nonnegative(),
  poppers: z.number().int().nonnegative(),
  /** Attempts of one publish (the first and its retries under the same publishId). */
  publishAttemptsMax: z.number().int().positive(),
  /**
   * Deadline of one publish attempt: shorter than a fault lasts, so that a publish runs out of
   * time (TIMEOUT) and is retried under its publishId while the first attempt may still land.
   */
  publishTimeoutMs: z.number().int().positive(),
  consumer: z.strictObject({ ackTimeoutMs: z.number().int().positive(), maxInFlight: z.number().int().positive(), maxDeliveries: z.number().int().positive() }),
});
export type ClientPlan = z.infer<typeof clientPlanSchema>;

export const toClientSchema = z.discriminatedUnion('k', [
  z.strictObject({ k: z.literal('ping'), id: z.number() }),
  z.strictObject({ k: z.literal('start'), plan: clientPlanSchema }),
  z.strictObject({ k: z.literal('stop') }),
]);
export type ToClient = z.infer<typeof toClientSchema>;

const outcome = z.enum(['ok', 'fail', 'unknown']);

export const fromClientSchema = z.discriminatedUnion('k', [
  /** The library is loaded: the harness syncs clocks, then sends `start`. */
  z.strictObject({ k: z.literal('ready') }),
  /** `t`: the child's performance.now() when it answered the ping. */
  z.strictObject({ k: z.literal('pong'), id: z.number(), t: z.number() }),
  z.strictObject({
    k: z.literal('invoke'),
    id: z.number(),
    t: z.number(),
    node: z.string(),
    op: z.discriminatedUnion('kind', [
      z.strictObject({ kind: z.literal('publish'), topic: z.string(), message: z.string(), publishId: z.string(), attempt: z.number().int().positive() }),
      z.strictObject({ kind: z.literal('pop'), topic: z.string() }),
      z.strictObject({ kind: z.enum(['ack', 'nack']), topic: z.string(), group: z.string(), messages: z.array(z.string()) }),
    ]),
  }),
  z.strictObject({
    k: z.literal('complete'),
    id: z.number(),
    t: z.number(),
    outcome,
    /** A pop's message (absent: empty). */
    message: z.string().optional(),
    /** An ack's or nack's messages the member confirmed. */
    confirmed: z.array(z.string()).optional(),
    note: z.string().optional(),
  }),
  z.strictObject({ k: z.literal('delivery'), t: z.number(), node: z.string(), topic: z.string(), group: z.string(), message: z.string(), attempt: z.number().int().positive(), offset: z.number().int().nonnegative() }),
  /** A line worth keeping for the report (connections lost, the workload's own failures). */
  z.strictObject({ k: z.literal('log'), line: z.string() }),
  /** The workload stopped, every operation completed, the client is closed. */
  z.strictObject({ k: z.literal('stopped') }),
]);
export type FromClient = z.infer<typeof fromClientSchema>;

/**
 * What the harness knows of a child's clock: child time minus harness time lies in
 * [offsetMin, offsetMax] (both monotonic clocks; a ping's answer was read between its sending
 * and its arrival).
 */
export interface ClockBracket {
  readonly offsetMin: number;
  readonly offsetMax: number;
}

/** Narrows a bracket by one ping: sent at harness time `sentMs`, answered `childMs`, back at `backMs`. */
export function narrowBracket(b: ClockBracket | undefined, sentMs: number, childMs: number, backMs: number): ClockBracket {
  const offsetMin = childMs - backMs;
  const offsetMax = childMs - sentMs;
  return b === undefined ? { offsetMin, offsetMax } : { offsetMin: Math.max(b.offsetMin, offsetMin), offsetMax: Math.min(b.offsetMax, offsetMax) };
}

/** The earliest harness time a child time can be (for an invocation). */
export function earliest(b: ClockBracket, childMs: number): number {
  return childMs - b.offsetMax;
}

/** The latest harness time a child time can be (for a completion). */
export function latest(b: ClockBracket, childMs: number): number {
  return childMs - b.offsetMin;
}
