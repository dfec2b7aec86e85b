/**
 * Sample peer messages of every type, and a seeded PRNG for reproducible random inputs.
 */
import type { Entry } from '../../lib/core/types.js';
import type { PeerMessage } from '../../lib/contracts/transport.js';

/** mulberry32: seeded, so every "random" test input repeats from run to run. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** `count` random bytes from `random`. */
export function randomBytesFrom(random: () => number, count: number): Buffer {
  const out = Buffer.allocUnsafe(count);
  for (let i = 0; i < count; i++) out[i] = Math.floor(random() * 256);
  return out;
}

/** `count` entries of `bytes` bytes each, starting at `firstIndex`. */
export function makeEntries(firstIndex: number, count: number, bytes: number, term = 1): Entry[] {
  return Array.from({ length: count }, (_, i) => ({
    index: firstIndex + i,
    term,
    type: 0 as const,
    data: Buffer.alloc(bytes, (firstIndex + i) & 0xff),
  }));
}

/** A heartbeat carrying `readSeq` (handy as a sequence number in ordering tests). */
export function heartbeat(from: string, to: string, readSeq: number): PeerMessage {
  return { type: 'heartbeat', from, to, term: 1, commit: 0, readSeq, lastIndex: 0 };
}

/** One message of every PeerMessage type, from `from` to `to`. */
export function everyMessage(from: string, to: string): PeerMessage[] {
  return [
    { type: 'preVote', from, to, term: 4, lastLogIndex: 10, lastLogTerm: 3 },
    { type: 'preVoteResponse', from, to, term: 4, granted: true },
    { type: 'vote', from, to, term: 5, lastLogIndex: 10, lastLogTerm: 3, transfer: false },
    { type: 'voteResponse', from, to, term: 5, granted: false },
    { type: 'append', from, to, term: 5, prevLogIndex: 9, prevLogTerm: 3, entries: makeEntries(10, 3, 100, 5), commit: 8 },
    { type: 'append', from, to, term: 2 ** 40, prevLogIndex: 2 ** 53 - 2, prevLogTerm: 70_000, entries: [], commit: 300 },
    {
      type: 'appendResponse',
      from,
      to,
      term: 5,
      success: false,
      matchIndex: 0,
      rejectedIndex: 9,
      conflictIndex: 7,
      conflictTerm: 2,
      logLost: false,
    },
    { type: 'heartbeat', from, to, term: 5, commit: 8, readSeq: 42, lastIndex: 9 },
    { type: 'heartbeatResponse', from, to, term: 5, readSeq: 42 },
    {
      type: 'snapshot',
      from,
      to,
      term: 5,
      snapshot: { meta: { index: 100, term: 4, conf: { voters: ['a', 'b', 'c'], learners: [] } }, data: Buffer.from('state') },
    },
    { type: 'timeoutNow', from, to, term: 6 },
    { type: 'app', from, to, channel: 'forward', body: Buffer.from([1, 2, 3]) },
  ];
}
