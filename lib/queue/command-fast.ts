/**
 * Hand-written checks of the commands every member decodes most often (`consume`, `claim`, `ack`,
 * `ackMany`), standing in for the zod schema in lib/queue/commands.ts on their common, exact
 * shape. They accept only what the schema accepts and give back what it would (the same keys and
 * values); anything else, unusual or wrong, returns undefined and goes to the schema, which then
 * also words the error. test/queue/command-fast.test.ts compares the two on mutated commands.
 *
 * Why: on a subscriber's claims and acks the schema's parse was the largest single cost of
 * applying them on every member (zod walks each of an ackMany's up to 20,000 numbers).
 */
import { CLAIM_MESSAGES_MAX, CONSUMER_ID_CHARS_MAX, DEAD_LETTER_NAME_CHARS_MAX } from '../contracts/limits.js';
import { isUint, ownKeyCount } from '../contracts/shape-checks.js';
import type { Command } from './commands.js';

function isName(v: unknown): v is string {
  return typeof v === 'string' && v.length <= DEAD_LETTER_NAME_CHARS_MAX;
}

function isIntIn(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
}

function has(o: object, key: string): boolean {
  return Object.hasOwn(o, key);
}

/** The command, if `raw` is one of the four in exactly its schema's shape; otherwise undefined. */
export function fastCommand(raw: unknown): Command | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const o = raw as Record<string, unknown>;
  switch (o.t) {
    case 'consume':
      return ownKeyCount(o) === 2 && has(o, 'topic') && isName(o.topic) ? { t: 'consume', topic: o.topic } : undefined;
    case 'ack':
      if (ownKeyCount(o) !== 5 || !has(o, 'topic') || !has(o, 'group') || !has(o, 'offset') || !has(o, 'token')) return undefined;
      if (!isName(o.topic) || !isName(o.group) || !isUint(o.offset) || !isUint(o.token)) return undefined;
      return { t: 'ack', topic: o.topic, group: o.group, offset: o.offset, token: o.token };
    case 'ackMany': {
      if (ownKeyCount(o) !== 4 || !has(o, 'topic') || !has(o, 'group') || !has(o, 'refs')) return undefined;
      const refs = o.refs;
      if (!isName(o.topic) || !isName(o.group) || !Array.isArray(refs)) return undefined;
      if (refs.length < 2 || refs.length > 2 * CLAIM_MESSAGES_MAX || refs.length % 2 !== 0) return undefined;
      for (let i = 0; i < refs.length; i++) if (!isUint(refs[i])) return undefined;
      return { t: 'ackMany', topic: o.topic, group: o.group, refs: refs as number[] };
    }
    case 'claim': {
      const withBytes = has(o, 'maxBytes');
      if (ownKeyCount(o) !== (withBytes ? 8 : 7)) return undefined;
      for (const k of ['topic', 'group', 'consumer', 'max', 'ackTimeoutMs', 'maxDeliveries'] as const) if (!has(o, k)) return undefined;
      if (!isName(o.topic) || !isName(o.group)) return undefined;
      const consumer = o.consumer;
      if (typeof consumer !== 'string' || consumer.length < 1 || consumer.length > CONSUMER_ID_CHARS_MAX) return undefined;
      if (!isIntIn(o.max, 0, CLAIM_MESSAGES_MAX) || !isIntIn(o.ackTimeoutMs, 1, Number.MAX_SAFE_INTEGER) || !isIntIn(o.maxDeliveries, 1, Number.MAX_SAFE_INTEGER)) return undefined;
      const claim = { t: 'claim', topic: o.topic, group: o.group, consumer, max: o.max, ackTimeoutMs: o.ackTimeoutMs, maxDeliveries: o.maxDeliveries } as const;
      if (!withBytes) return claim;
      return isIntIn(o.maxBytes, 1, Number.MAX_SAFE_INTEGER) ? { ...claim, maxBytes: o.maxBytes } : undefined;
    }
    default:
      return undefined;
  }
}
