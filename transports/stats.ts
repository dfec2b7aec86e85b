/**
 * TransportCounters: the mutable counters behind `Transport.stats()`, shared by every transport.
 */
import type { NodeId } from '../lib/core/types.js';
import type { TransportStats } from '../lib/contracts/transport.js';

/** Stats of the transports in this package: the interface's fields plus connection closures. */
export interface TransportStatsDetail extends TransportStats {
  /** Connections closed, by reason (e.g. 'handshakeTimeout', 'idleTimeout', 'invalidFrames'). */
  connectionsClosed: Record<string, number>;
  /** Append bodies reused for a second follower instead of encoded again. */
  appendBodiesReused: number;
  /** Commit notices not sent because an append to the same peer in the same turn carried the commit. */
  noticesCoalesced?: number;
  /**
   * Client links open now (a gauge, not cumulative). Their frames and bytes count in
   * framesIn/framesOut/bytesIn/bytesOut, their closes in connectionsClosed.
   */
  clientsConnected: number;
}

/** Cumulative counters; `snapshot` copies them so callers never hold live maps. */
export class TransportCounters {
  framesIn = 0;
  framesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  messagesDropped = 0;
  messagesOversize = 0;
  reconnects = 0;
  appendBodiesReused = 0;
  /** A gauge: client links open now. */
  clientsConnected = 0;
  readonly framesRejected = new Map<string, number>();
  readonly connectionsClosed = new Map<string, number>();

  reject(reason: string): void {
    this.framesRejected.set(reason, (this.framesRejected.get(reason) ?? 0) + 1);
  }

  closed(reason: string): void {
    this.connectionsClosed.set(reason, (this.connectionsClosed.get(reason) ?? 0) + 1);
  }

  snapshot(connectedPeers: readonly NodeId[]): TransportStatsDetail {
    return {
      framesIn: this.framesIn,
      framesOut: this.framesOut,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      framesRejected: sortedRecord(this.framesRejected),
      messagesDropped: this.messagesDropped,
      messagesOversize: this.messagesOversize,
      reconnects: this.reconnects,
      connectedPeers: [...connectedPeers].sort(),
      connectionsClosed: sortedRecord(this.connectionsClosed),
      appendBodiesReused: this.appendBodiesReused,
      clientsConnected: this.clientsConnected,
    };
  }
}

/** A plain record with keys in sorted order (deterministic output, habit 9). */
function sortedRecord(map: ReadonlyMap<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key of [...map.keys()].sort()) out[key] = map.get(key) as number;
  return out;
}
