/**
 * Reconnect delays: capped exponential backoff with jitter.
 */

/**
 * The delay before reconnect attempt `attempt` (0 for the first retry): the exponential step
 * `min * 2^attempt`, capped at `max`, then "equal jitter": half fixed, half uniform random, so
 * peers that lost each other at once do not retry in lockstep yet never retry at once.
 */
export function reconnectDelayMs(attempt: number, minMs: number, maxMs: number, random: () => number): number {
  const step = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return step / 2 + random() * (step / 2);
}
