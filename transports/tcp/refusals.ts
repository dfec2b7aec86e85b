/**
 * Handshake refusals in words: who refused whom, where and why, and the rate limit that keeps a
 * peer redialing every few hundred ms from flooding the log.
 *
 * A wrong secret used to leave a node a candidate forever with nothing logged on either side.
 * Every refusal now yields one sentence naming both ends and the setting that differs; the same
 * sentence is the `detail` of the peer's state in `peerStates()`.
 */
import { PROTOCOL_VERSION, type RefusalReason } from '../codec/protocol.js';

/** What one end knows about a handshake refusal on one connection. */
export interface RefusalFacts {
  readonly reason: RefusalReason;
  /** 'us': this node refused; 'peer': the other end did (its `refused` frame). */
  readonly by: 'us' | 'peer';
  /** Which end of the connection this node is. */
  readonly side: 'listening' | 'dialing';
  /** Listening: the socket's remote address. Dialing: the address we dialed. */
  readonly address: string;
  /** Dialing: the peer we meant to reach. Listening: the id the other end claims, if it said. */
  readonly peer: string | undefined;
  /** For 'version': the other end's protocol version, when it told us. */
  readonly remoteVersion?: number | undefined;
  /** For 'cluster': the other end's cluster id. */
  readonly remoteClusterId?: string | undefined;
  /**
   * For 'wrongPeer': dialing, the id the node at the address answers as; listening, the id the
   * other end expected to reach at our address.
   */
  readonly otherId?: string | undefined;
  /** 'client' when the hello was in the client role (listening side only). */
  readonly role?: 'client' | undefined;
}

/** A refusal ready to log and record. */
export interface Refusal {
  readonly reason: RefusalReason;
  /** The rate-limit key: the direction, the remote id (or host when it gave none), who refused and why. */
  readonly key: string;
  /** One line in plain words. */
  readonly line: string;
}

/** Who this node is, for the sentences. */
export interface RefusalSelf {
  readonly id: string;
  readonly clusterId: string;
  /** For 'tooManyClients': the bound that was reached. */
  readonly clientsMax?: number;
}

/** The host part of 'host:port' / '[v6]:port' (so retries from new source ports share a key). */
function hostOf(address: string): string {
  const colon = address.lastIndexOf(':');
  return colon < 0 ? address : address.slice(0, colon);
}

function versionWhy(remoteVersion: number | undefined): string {
  const theirs = remoteVersion === undefined ? 'another protocol version' : `protocol version ${remoteVersion}`;
  return `it speaks ${theirs}, we speak ${PROTOCOL_VERSION} (run the same raftqueue version on every member)`;
}

/** Why, when the other end refused us (the same words on both sides of a link). */
function theirWhy(f: RefusalFacts, self: RefusalSelf, remote: string): string {
  switch (f.reason) {
    case 'auth':
      return `wrong cluster secret (clusterSecret differs between ${remote} and ${self.id})`;
    case 'cluster':
      return `it is in cluster '${f.remoteClusterId ?? '?'}', we are in '${self.clusterId}' (clusterId differs between ${remote} and ${self.id})`;
    case 'unknownNode':
      return `it does not know ${self.id} as a member (${self.id} is missing from its peers, or was removed from the cluster)`;
    case 'wrongPeer':
      return f.side === 'dialing'
        ? `it is ${f.otherId ?? 'another node'}, not ${remote} (our address for ${remote} points at another node)`
        : `it expected ${f.otherId ?? 'another node'} at our address, but we are ${self.id} (its address for ${f.otherId ?? 'that node'} is wrong)`;
    case 'version':
      return versionWhy(f.remoteVersion);
    // Sent only to clients; listed so that a member meeting one still says something true.
    case 'clientsDisabled':
      return 'it accepts no client connections';
    case 'tooManyClients':
      return 'it already holds as many client connections as it accepts';
  }
}

/** Why, when this node refused the other end. */
function ourWhy(f: RefusalFacts, self: RefusalSelf): string {
  switch (f.reason) {
    case 'auth':
      return 'its proof does not match our cluster secret (wrong clusterSecret on one side)';
    case 'cluster':
      return `it is in cluster '${f.remoteClusterId ?? '?'}', we are in '${self.clusterId}' (clusterId differs)`;
    case 'unknownNode':
      return f.peer === self.id
        ? `that is our own id (two nodes are configured as ${self.id})`
        : `${f.peer ?? 'it'} is not a member we know (missing from our peers, or removed from the cluster)`;
    case 'wrongPeer':
      return f.side === 'dialing'
        ? `the node there is ${f.otherId ?? 'another node'}, not ${f.peer ?? '?'} (our address for ${f.peer ?? 'it'} is wrong)`
        : `it meant to reach ${f.otherId ?? 'another node'}, but we are ${self.id} (its address for ${f.otherId ?? 'that node'} points at us)`;
    case 'version':
      return versionWhy(f.remoteVersion);
    case 'clientsDisabled':
      return 'this member accepts no clients (it was started without client handlers)';
    case 'tooManyClients':
      return `it already holds ${self.clientsMax ?? 'its maximum of'} client connections (clientsMax)`;
  }
}

/** The sentence and rate-limit key of a refusal. */
export function describeRefusal(f: RefusalFacts, self: RefusalSelf): Refusal {
  const claimed = f.peer === undefined ? '' : ` claiming to be ${f.peer}`;
  let line: string;
  if (f.role === 'client') {
    // Client ids are self-chosen and need not be unique: the key is the client's host, so many
    // clients failing the same way on one machine make one line a window, not one each.
    line =
      f.by === 'peer'
        ? `a client connecting from ${f.address}${claimed} refused our handshake: ${theirWhy(f, self, f.peer ?? 'it')}`
        : `refused a client connection from ${f.address}${claimed}: ${ourWhy(f, self)}`;
    return { reason: f.reason, key: `client ${hostOf(f.address)} ${f.by} ${f.reason}`, line };
  }
  if (f.side === 'dialing') {
    const peer = f.peer ?? 'the node';
    line = f.by === 'peer' ? `${peer} at ${f.address} refused our connection: ${theirWhy(f, self, peer)}` : `refused ${peer} at ${f.address}: ${ourWhy(f, self)}`;
  } else {
    line =
      f.by === 'peer'
        ? `a node connecting from ${f.address}${claimed} refused our handshake: ${theirWhy(f, self, f.peer ?? 'it')}`
        : `refused a connection from ${f.address}${claimed}: ${ourWhy(f, self)}`;
  }
  const who = f.side === 'dialing' ? `out ${f.peer ?? f.address}` : `in ${f.peer ?? hostOf(f.address)}`;
  return { reason: f.reason, key: `${who} ${f.by} ${f.reason}`, line };
}

/** The rate-limit window: at most one line per key in this many ms. */
export const REFUSAL_LOG_WINDOW_MS = 10_000;

/**
 * Keys tracked at once. Claimed ids come from unauthenticated peers, so the table is bounded:
 * when it is full (after dropping keys idle for a window), further keys share one slot, so a
 * flood of made-up ids still logs at most one line per window.
 */
export const REFUSAL_LOG_KEYS_MAX = 256;

const OVERFLOW_KEY = '\u0000overflow';

interface Slot {
  lastLineMs: number;
  suppressed: number;
}

/**
 * Rate-limited refusal lines: the first refusal of a key is logged; later ones within the window
 * are only counted, and the next line logged for that key says how many there were
 * ("... (3 more in the last 10 s)").
 */
export class RefusalLog {
  private readonly slots = new Map<string, Slot>();
  private lastPruneMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly log: ((line: string) => void) | undefined,
    private readonly now: () => number = Date.now,
    private readonly windowMs = REFUSAL_LOG_WINDOW_MS,
    private readonly keysMax = REFUSAL_LOG_KEYS_MAX,
  ) {}

  /** Keys currently tracked (for tests of the bound). */
  get size(): number {
    return this.slots.size;
  }

  /** Logs `refusal.line` unless its key already logged within the window. */
  report(refusal: Refusal): void {
    if (this.log === undefined) return;
    const nowMs = this.now();
    const slot = this.slotFor(refusal.key, nowMs);
    if (slot === undefined) {
      this.slots.set(refusal.key, { lastLineMs: nowMs, suppressed: 0 });
      this.log(refusal.line);
      return;
    }
    const elapsedMs = nowMs - slot.lastLineMs;
    if (elapsedMs < this.windowMs) {
      slot.suppressed++;
      return;
    }
    const more = slot.suppressed > 0 ? ` (${slot.suppressed} more in the last ${Math.round(elapsedMs / 1000)} s)` : '';
    slot.lastLineMs = nowMs;
    slot.suppressed = 0;
    this.log(refusal.line + more);
  }

  /** The key's slot; undefined when the key is new and has room. Falls back to the overflow slot. */
  private slotFor(key: string, nowMs: number): Slot | undefined {
    const slot = this.slots.get(key);
    if (slot !== undefined || this.slots.size < this.keysMax) return slot;
    // Full: drop keys quiet for a whole window, at most once a window so a flood cannot make
    // every refusal scan the table.
    if (nowMs - this.lastPruneMs >= this.windowMs) {
      this.lastPruneMs = nowMs;
      for (const [k, s] of this.slots) if (k !== OVERFLOW_KEY && nowMs - s.lastLineMs >= this.windowMs) this.slots.delete(k);
      if (this.slots.size < this.keysMax) return undefined;
    }
    let overflow = this.slots.get(OVERFLOW_KEY);
    if (overflow === undefined) {
      // Starts one window back so its first refusal is logged.
      overflow = { lastLineMs: nowMs - this.windowMs, suppressed: 0 };
      this.slots.set(OVERFLOW_KEY, overflow);
    }
    return overflow;
  }
}
