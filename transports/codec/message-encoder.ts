/**
 * MessageEncoder: encodes peer messages, reusing the body of an identical append sent to another
 * follower in the same event-loop turn.
 *
 * A leader sends one append per follower, each a separate object (they differ by `to`). The wire
 * body omits `to`, so when two appends agree on every other field and carry the very same entry
 * objects, their bodies are byte-identical: the second send reuses the first body instead of
 * encoding again. Entries are immutable once proposed (types.ts: encoded once, never re-encoded),
 * so identity of every entry object implies identical bytes.
 */
import type { AppendRequest } from '../../lib/core/messages.js';
import type { PeerMessage } from '../../lib/contracts/transport.js';
import { encodeMessageBody } from './codec.js';

/**
 * Appends remembered per turn. Three followers of a five-node leader need four lookups at most;
 * beyond this the oldest is forgotten (the cost is only a second encode, never a wrong frame).
 */
export const APPEND_CACHE_ENTRIES_MAX = 8;

interface CachedAppend {
  readonly message: AppendRequest;
  readonly body: Buffer;
}

function sameAppend(a: AppendRequest, b: AppendRequest): boolean {
  if (
    a.from !== b.from ||
    a.term !== b.term ||
    a.prevLogIndex !== b.prevLogIndex ||
    a.prevLogTerm !== b.prevLogTerm ||
    a.commit !== b.commit
  ) {
    return false;
  }
  if (a.entries === b.entries) return true;
  if (a.entries.length !== b.entries.length) return false;
  for (let i = 0; i < a.entries.length; i++) {
    if (a.entries[i] !== b.entries[i]) return false;
  }
  return true;
}

/** Encodes message bodies; call {@link MessageEncoder.endTurn} once per event-loop turn. */
export class MessageEncoder {
  private cache: CachedAppend[] = [];
  /** Appends whose body was reused rather than encoded (for tests and the benchmark). */
  reusedBodies = 0;

  /** The frame body of `message`. Throws only on a malformed message. */
  encode(message: PeerMessage): Buffer {
    if (message.type !== 'append' || message.entries.length === 0) return encodeMessageBody(message);
    for (const cached of this.cache) {
      if (sameAppend(cached.message, message)) {
        this.reusedBodies++;
        return cached.body;
      }
    }
    const body = encodeMessageBody(message);
    if (this.cache.length >= APPEND_CACHE_ENTRIES_MAX) this.cache.shift();
    this.cache.push({ message, body });
    return body;
  }

  /**
   * Forgets the cached bodies. Called when a turn's frames are flushed, so the cache never pins
   * memory beyond one turn and never compares against a message the core may since have rebuilt.
   */
  endTurn(): void {
    if (this.cache.length > 0) this.cache = [];
  }
}
