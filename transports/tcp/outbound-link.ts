/**
 * OutboundLink: this node's connection to one peer. Messages to the peer go only over the
 * connection this node dialed; it redials with backoff whenever that connection is lost.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { PeerLinkState } from '../../lib/contracts/transport.js';
import { framedRuns } from '../codec/append-writer.js';
import { concatFrames } from '../codec/codec.js';
import { FRAME_HEADER_BYTES } from '../codec/protocol.js';
import { reconnectDelayMs } from './backoff.js';
import { OutboundConnection, type CloseReason, type ConnectionContext } from './connection.js';
import { parseAddress } from './options.js';

/** Most slab regions a flush writes without copying; beyond, copying into one buffer is cheaper. */
const FLUSH_RUNS_MAX = 8;

/** The link's life cycle. Messages are queued while `connecting` or `open`, dropped otherwise. */
export type LinkState = 'idle' | 'connecting' | 'open' | 'backoff' | 'closed';

/** What a link stores of its PeerLinkState; `address` and `lastHeardMs` are added when read. */
type LinkStatus = Omit<PeerLinkState, 'lastHeardMs' | 'address'>;

/** Why a dial that never authenticated failed, in words, when no socket error says it. */
function dialFailure(reason: CloseReason, address: string, handshakeTimeoutMs: number): string {
  switch (reason) {
    case 'handshakeTimeout':
      return `no handshake with ${address} within ${handshakeTimeoutMs} ms`;
    case 'peerClosed':
      return `${address} closed the connection during the handshake (an older raftqueue refusing us, or not a raftqueue node)`;
    case 'protocol':
      return `${address} answered with an invalid handshake frame (not a raftqueue node?)`;
    default:
      return `the connection to ${address} closed during the handshake (${reason})`;
  }
}

/** What a link tells its transport. */
export interface LinkEvents {
  onState(peer: string, connected: boolean): void;
  /** The link has frames to write and can write them: flush in this turn's batch. */
  requestFlush(): void;
}

/**
 * One peer's outbound queue and connection.
 *
 * The queue holds encoded bodies, bounded by `outboundQueueBytesMax` (bodies + headers): when a
 * new message would exceed it, the oldest are dropped and counted. Drop instead of waiting:
 * Raft retransmits, and a slow peer must not stall the leader.
 */
export class OutboundLink {
  state: LinkState = 'idle';
  private connection: OutboundConnection | null = null;
  private queue: Buffer[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private awaitingDrain = false;
  private attempt = 0;
  private dialed = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private status: LinkStatus = { state: 'connecting', sinceMs: Date.now() };
  /** Last heard on a connection of this link that has since closed. */
  private heardMs: number | undefined = undefined;

  constructor(
    readonly peer: string,
    private address: string,
    private readonly ctx: ConnectionContext,
    private readonly events: LinkEvents,
  ) {}

  /** Frames waiting to be written. */
  get queuedFrames(): number {
    return this.queue.length - this.queueHead;
  }

  /** True when a flush would write something now. */
  get writable(): boolean {
    return this.state === 'open' && !this.awaitingDrain && this.queuedFrames > 0;
  }

  /** The live connection's socket, for tests. */
  get socket(): net.Socket | undefined {
    return this.connection?.socket;
  }

  /**
   * The link's state for `peerStates()`. A failed link keeps its failure (and its reason) while
   * it redials, until a dial fails otherwise or succeeds: retrying is not news.
   */
  peerState(): PeerLinkState {
    const heard = this.connection?.lastHeardMs ?? this.heardMs;
    return { ...this.status, address: this.address, ...(heard === undefined ? {} : { lastHeardMs: heard }) };
  }

  /** Queues a body; returns false (the caller counts a drop) when the link cannot take it. */
  enqueue(body: Buffer): boolean {
    if (this.state !== 'open' && this.state !== 'connecting') return false;
    const bytes = body.byteLength + FRAME_HEADER_BYTES;
    if (bytes > this.ctx.options.outboundQueueBytesMax) return false;
    while (this.queuedBytes + bytes > this.ctx.options.outboundQueueBytesMax) this.dropOldest();
    this.queue.push(body);
    this.queuedBytes += bytes;
    if (this.writable) this.events.requestFlush();
    return true;
  }

  /** Writes every queued frame in one buffer: one write per peer per turn. */
  flush(): void {
    if (!this.writable) return;
    const connection = this.connection as OutboundConnection;
    const bodies = this.queueHead === 0 ? this.queue : this.queue.slice(this.queueHead);
    const bodyBytes = this.queuedBytes - FRAME_HEADER_BYTES * bodies.length;
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
    // Appends queued in one turn are usually consecutive frames of the writer's slab: written
    // as they are (a few views, one writev). Anything else is copied into one batch buffer.
    const runs = framedRuns(bodies, FLUSH_RUNS_MAX);
    const writable =
      runs === undefined ? connection.write(concatFrames(bodies, bodyBytes), bodies.length) : connection.writeRuns(runs, bodies.length);
    if (!writable) {
      // Kernel and Node buffers are full: hold further frames in our bounded queue until drain.
      this.awaitingDrain = true;
    }
  }

  /** Starts dialing (first connection). */
  start(): void {
    if (this.state === 'idle') this.dial();
  }

  /** Changes the peer's address; a link waiting to retry dials the new address at once. */
  setAddress(address: string): void {
    this.address = address;
    if (this.state === 'backoff') {
      this.clearRetry();
      this.dial();
    }
  }

  /**
   * The peer just proved itself on a connection it dialed to us, so it is up: a link waiting to
   * retry dials now instead of after its backoff (a restarted member hears from the leader in
   * a round trip, not after up to reconnectDelayMsMax).
   */
  peerIsUp(): void {
    if (this.state === 'backoff') {
      this.clearRetry();
      this.dial();
    }
  }

  /** Closes for good, dropping (and counting) whatever is queued. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.clearRetry();
    this.dropAll();
    this.connection?.close('transportClosed');
    this.connection = null;
  }

  private dial(): void {
    if (this.dialed) this.ctx.counters.reconnects++;
    this.dialed = true;
    this.state = 'connecting';
    const target = parseAddress(this.address);
    if (target === undefined || target.port === 0) {
      // No usable address yet (e.g. a test fills it in later): retry with backoff.
      this.onConnectionClosed(undefined);
      return;
    }
    const tlsOptions = this.ctx.options.tls;
    const socket =
      tlsOptions === undefined
        ? net.connect({ host: target.host, port: target.port })
        : tls.connect({
            host: target.host,
            port: target.port,
            key: tlsOptions.key,
            cert: tlsOptions.cert,
            ca: tlsOptions.ca,
            rejectUnauthorized: true,
          });
    if (tlsOptions !== undefined) {
      socket.on('error', (error: NodeJS.ErrnoException) => {
        // A TLS failure (bad or missing certificate) shows up as an error before any frame.
        if (error.code !== undefined && /CERT|TLS|SSL|ALERT/i.test(error.code)) this.ctx.counters.closed('tls');
      });
    }
    const connection = new OutboundConnection(socket, this.ctx, this.peer, this.address, () => this.onOpen());
    this.connection = connection;
    connection.onClosed(() => {
      if (connection.lastHeardMs !== undefined) this.heardMs = connection.lastHeardMs;
      if (this.connection === connection) this.onConnectionClosed(connection);
    });
  }

  private onOpen(): void {
    this.state = 'open';
    this.attempt = 0;
    this.awaitingDrain = false;
    const socket = (this.connection as OutboundConnection).socket;
    socket.on('drain', () => {
      this.awaitingDrain = false;
      if (this.writable) this.events.requestFlush();
    });
    this.setStatus({ state: 'connected' });
    this.events.onState(this.peer, true);
    if (this.writable) this.events.requestFlush();
  }

  /** Records a state; `sinceMs` moves only when the state or the reason changes. */
  private setStatus(next: Omit<LinkStatus, 'sinceMs'>): void {
    const same = next.state === this.status.state && next.reason === this.status.reason;
    this.status = { ...next, sinceMs: same ? this.status.sinceMs : Date.now() };
  }

  /** What the end of `connection` (undefined: no address to dial) says about the peer. */
  private recordClose(connection: OutboundConnection | undefined, wasOpen: boolean): void {
    if (wasOpen) {
      // Lost after it worked: redialing, with nothing known to be wrong yet.
      this.setStatus({ state: 'connecting' });
    } else if (connection === undefined) {
      this.setStatus({ state: 'unreachable', detail: `no address to dial for ${this.peer} ('${this.address}')` });
    } else if (connection.refusal !== null) {
      this.setStatus({ state: 'refused', reason: connection.refusal.reason, detail: connection.refusal.line });
    } else {
      const reason = connection.closedBy ?? 'error';
      const detail = connection.closeError?.message ?? dialFailure(reason, this.address, this.ctx.options.handshakeTimeoutMs);
      this.setStatus({ state: 'unreachable', detail });
    }
  }

  private onConnectionClosed(connection: OutboundConnection | undefined): void {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this.recordClose(connection, wasOpen);
    this.connection = null;
    this.awaitingDrain = false;
    this.state = 'backoff';
    // The peer is unreachable: what was queued for it is stale by the time it returns.
    this.dropAll();
    if (wasOpen) this.events.onState(this.peer, false);
    const delayMs = reconnectDelayMs(
      this.attempt,
      this.ctx.options.reconnectDelayMsMin,
      this.ctx.options.reconnectDelayMsMax,
      this.ctx.options.random,
    );
    this.attempt++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.state === 'backoff') this.dial();
    }, delayMs);
    this.retryTimer.unref();
  }

  private dropOldest(): void {
    const body = this.queue[this.queueHead] as Buffer;
    this.queue[this.queueHead] = undefined as unknown as Buffer;
    this.queueHead++;
    this.queuedBytes -= body.byteLength + FRAME_HEADER_BYTES;
    this.ctx.counters.messagesDropped++;
    // Compact once the dead prefix dominates, keeping push/shift amortized O(1).
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  private dropAll(): void {
    this.ctx.counters.messagesDropped += this.queuedFrames;
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }
}
