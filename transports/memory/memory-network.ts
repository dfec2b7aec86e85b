/**
 * MemoryNetwork and MemoryTransport: an in-process transport on the real event loop, with hooks
 * to drop, delay and partition links (one-way too). Used by facade tests and one-process
 * examples; the deterministic simulator (test/sim) has its own virtual-time network.
 */
import { MemoryClientPair } from './memory-clients.js';
import type { MemoryClientConnection, MemoryClientHandlers } from './memory-clients.js';
import type { NodeId } from '../../lib/core/types.js';
import { RaftQueueError } from '../../lib/contracts/errors.js';
import type { ClientHandlers, PeerLinkState, PeerMessage, Transport, TransportHandlers } from '../../lib/contracts/transport.js';
import { decodeMessageBody, encodeMessageBody } from '../codec/codec.js';
import { resolveCodecLimits, type CodecLimits, type CodecLimitsInput } from '../codec/limits.js';
import { FRAME_HEADER_BYTES } from '../codec/protocol.js';
import { codecSchemas, type CodecSchemas } from '../codec/schemas.js';
import { TransportCounters, type TransportStatsDetail } from '../stats.js';

/** How one direction of a link behaves. The default is a healthy link. */
export interface LinkPolicy {
  /** Drop everything on this link (a partition, one-way when set on one direction only). */
  readonly down?: boolean;
  /** Deliver this many ms later. Order on the link is kept even when the delay changes. */
  readonly delayMs?: number;
  /** Drop each message with this probability (0..1), drawn from the network's `random`. */
  readonly dropRate?: number;
}

/**
 * A hook that sees every message as it is sent; returning false drops it (counted). Runs inside
 * `send`, so it must not throw.
 */
export type SendInterceptor = (message: PeerMessage) => boolean;

/** Options of {@link MemoryNetwork}. */
export interface MemoryNetworkOptions {
  /**
   * `codec` (default): every message is encoded at send and decoded and validated at delivery,
   * exactly as over TCP, so the receiver never shares an object with the sender and a sender
   * that mutates a message after `send` cannot affect what was sent (tests catch such bugs).
   * `reference`: the same object is delivered (faster; for trusted, large in-process runs).
   */
  readonly mode?: 'codec' | 'reference';
  /** Bounds checked in `codec` mode (defaults: {@link resolveCodecLimits}). */
  readonly limits?: CodecLimitsInput;
  /** Source of randomness for `dropRate` (default: a fixed-seed PRNG, so runs repeat). */
  readonly random?: () => number;
}

interface Pending {
  readonly deliverAtMs: number;
  readonly to: NodeId;
  readonly message: PeerMessage | null;
  readonly body: Buffer | null;
}

interface LinkQueue {
  readonly from: NodeId;
  readonly items: Pending[];
  head: number;
  lastDeliverAtMs: number;
  timer: NodeJS.Timeout | NodeJS.Immediate | null;
}

/** mulberry32: a small seeded PRNG, so dropRate decisions repeat from run to run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A set of in-process nodes and the links between them. */
export class MemoryNetwork {
  readonly mode: 'codec' | 'reference';
  readonly limits: CodecLimits;
  private readonly schemas: CodecSchemas;
  private readonly random: () => number;
  private readonly nodes = new Map<NodeId, MemoryTransport>();
  private readonly policies = new Map<string, LinkPolicy>();
  private readonly queues = new Map<string, LinkQueue>();
  private interceptor: SendInterceptor | null = null;

  constructor(options: MemoryNetworkOptions = {}) {
    this.mode = options.mode ?? 'codec';
    this.limits = resolveCodecLimits(options.limits);
    this.schemas = codecSchemas(this.limits);
    this.random = options.random ?? seededRandom(0x5eed);
  }

  /** A new transport for node `id` on this network (registered when started). */
  transport(id: NodeId): MemoryTransport {
    return new MemoryTransport(this, id);
  }

  /** Sets (or with undefined, clears) the policy of the one-way link from -> to. */
  setLink(from: NodeId, to: NodeId, policy: LinkPolicy | undefined): void {
    const key = linkKey(from, to);
    if (policy === undefined) this.policies.delete(key);
    else this.policies.set(key, policy);
    this.notifyAll();
  }

  /** Cuts every link from `a` to `b` (and back, unless oneWay). */
  partition(a: readonly NodeId[], b: readonly NodeId[], options: { oneWay?: boolean } = {}): void {
    for (const x of a) {
      for (const y of b) {
        this.policies.set(linkKey(x, y), { ...this.policies.get(linkKey(x, y)), down: true });
        if (options.oneWay !== true) this.policies.set(linkKey(y, x), { ...this.policies.get(linkKey(y, x)), down: true });
      }
    }
    this.notifyAll();
  }

  /** Cuts `id` off from every other node, both ways. */
  isolate(id: NodeId): void {
    const others = [...this.nodes.keys()].filter((n) => n !== id);
    this.partition([id], others);
  }

  /** Restores every link to healthy (no drop, no delay, no partition). */
  heal(): void {
    this.policies.clear();
    this.notifyAll();
  }

  /** Installs (or with null, removes) a hook that may drop messages as they are sent. */
  intercept(interceptor: SendInterceptor | null): void {
    this.interceptor = interceptor;
  }

  /**
   * Connects a client process to the member `memberId` (its "address" on this network), as
   * transports/tcp's `connectClient` does over TCP. Rejects with TRANSPORT_FAILED when that member
   * is not running or does not accept clients.
   */
  async connectClient(memberId: string, clientId: string, handlers: MemoryClientHandlers): Promise<MemoryClientConnection> {
    const member = this.nodes.get(memberId);
    const accepting = member?.running === true ? member.clientHandlers : undefined;
    if (accepting === undefined) throw new RaftQueueError('TRANSPORT_FAILED', `member ${memberId} is not running on this network or does not accept clients`);
    return (member as MemoryTransport).openClient(clientId, handlers);
  }

  /** True when `from` would currently attempt delivery to `to`. */
  reachable(from: NodeId, to: NodeId): boolean {
    const target = this.nodes.get(to);
    return target !== undefined && target.running && this.policies.get(linkKey(from, to))?.down !== true;
  }

  /** @internal */
  register(node: MemoryTransport): void {
    const existing = this.nodes.get(node.id);
    if (existing !== undefined && existing !== node && existing.running) {
      throw new RaftQueueError('TRANSPORT_FAILED', `node ${node.id} is already running on this network`);
    }
    this.nodes.set(node.id, node);
    this.notifyAll();
  }

  /** @internal */
  unregister(node: MemoryTransport): void {
    if (this.nodes.get(node.id) === node) this.nodes.delete(node.id);
    this.notifyAll();
  }

  /** @internal Routes a message; never throws, never delivers synchronously. */
  route(sender: MemoryTransport, message: PeerMessage, counters: TransportCounters): void {
    if (!this.reachable(sender.id, message.to) || (this.interceptor !== null && !this.interceptor(message))) {
      counters.messagesDropped++;
      return;
    }
    const policy = this.policies.get(linkKey(sender.id, message.to));
    if (policy?.dropRate !== undefined && this.random() < policy.dropRate) {
      counters.messagesDropped++;
      return;
    }
    let body: Buffer | null = null;
    if (this.mode === 'codec') {
      try {
        body = encodeMessageBody(message);
      } catch (error) {
        counters.messagesDropped++;
        counters.reject('encode');
        sender.lastEncodeError = error;
        return;
      }
      if (body.byteLength > this.limits.frameBytesMax) {
        counters.messagesDropped++;
        counters.reject('tooLarge');
        return;
      }
      counters.bytesOut += body.byteLength + FRAME_HEADER_BYTES;
    }
    counters.framesOut++;
    this.enqueue(sender.id, message.to, {
      deliverAtMs: 0,
      to: message.to,
      message: body === null ? message : null,
      body,
    }, policy?.delayMs ?? 0);
  }

  private enqueue(from: NodeId, to: NodeId, item: Pending, delayMs: number): void {
    const key = linkKey(from, to);
    let queue = this.queues.get(key);
    if (queue === undefined) {
      queue = { from, items: [], head: 0, lastDeliverAtMs: 0, timer: null };
      this.queues.set(key, queue);
    }
    // Never before an earlier message on the same link: per-link FIFO holds whatever the delays.
    const deliverAtMs = Math.max(performance.now() + delayMs, queue.lastDeliverAtMs);
    queue.lastDeliverAtMs = deliverAtMs;
    queue.items.push({ ...item, deliverAtMs });
    this.arm(key, queue);
  }

  private arm(key: string, queue: LinkQueue): void {
    if (queue.timer !== null) return;
    const head = queue.items[queue.head];
    if (head === undefined) {
      this.queues.delete(key);
      return;
    }
    const waitMs = head.deliverAtMs - performance.now();
    if (waitMs <= 0) {
      queue.timer = setImmediate(() => this.pump(key, queue));
    } else {
      queue.timer = setTimeout(() => this.pump(key, queue), Math.ceil(waitMs));
      queue.timer.unref();
    }
  }

  private pump(key: string, queue: LinkQueue): void {
    queue.timer = null;
    const now = performance.now();
    let to: NodeId | undefined;
    for (;;) {
      const head = queue.items[queue.head];
      if (head === undefined || head.deliverAtMs > now) break;
      queue.items[queue.head] = undefined as unknown as Pending;
      queue.head++;
      if (this.deliver(head)) to = head.to;
    }
    // One clock read per pump, not per message.
    if (to !== undefined) this.nodes.get(to)?.heard(queue.from, Date.now());
    if (queue.head === queue.items.length) {
      queue.items.length = 0;
      queue.head = 0;
    }
    this.arm(key, queue);
  }

  /** Delivers one message; true when the receiver got it. */
  private deliver(item: Pending): boolean {
    const target = this.nodes.get(item.to);
    // A node that closed (or restarted as a new instance) misses what was in flight, as over TCP.
    if (target === undefined || !target.running) return false;
    if (item.body === null) {
      target.receive(item.message as PeerMessage, 0);
      return true;
    }
    const decoded = decodeMessageBody(item.body, item.to, this.schemas);
    if (!decoded.ok) {
      target.rejectIncoming(decoded.reason);
      return false;
    }
    target.receive(decoded.value, item.body.byteLength + FRAME_HEADER_BYTES);
    return true;
  }

  private notifyAll(): void {
    for (const node of this.nodes.values()) node.refreshPeers();
  }

  /** @internal Ids of every registered node. */
  nodeIds(): NodeId[] {
    return [...this.nodes.keys()].sort();
  }
}

function linkKey(from: NodeId, to: NodeId): string {
  return `${from}\u0000${to}`;
}

/**
 * A {@link Transport} on a {@link MemoryNetwork}. Delivery is asynchronous (setImmediate or a
 * timer), never inside `send`; order per link is kept.
 */
export class MemoryTransport implements Transport {
  /** The last message the codec refused to encode (a caller bug), for debugging. */
  lastEncodeError: unknown = undefined;
  private readonly counters = new TransportCounters();
  private handlers: TransportHandlers | null = null;
  private state: 'new' | 'running' | 'closed' = 'new';
  private connected = new Set<NodeId>();
  /** Every peer seen on the network since start, with its link state (see `peerStates`). */
  private readonly links = new Map<NodeId, PeerLinkState>();
  private readonly heardMs = new Map<NodeId, number>();
  /** @internal Set by acceptClients. */
  clientHandlers: ClientHandlers | undefined;
  private readonly clientPairs = new Set<MemoryClientPair>();

  constructor(
    readonly network: MemoryNetwork,
    readonly id: NodeId,
  ) {}

  /** True between `start` and `close`. */
  get running(): boolean {
    return this.state === 'running';
  }

  /** Joins the network. Rejects with TRANSPORT_FAILED if a running node already has this id. */
  async start(handlers: TransportHandlers): Promise<void> {
    if (this.state !== 'new') throw new RaftQueueError('TRANSPORT_FAILED', `transport ${this.id} already started`);
    this.handlers = handlers;
    this.state = 'running';
    try {
      this.network.register(this);
    } catch (error) {
      this.state = 'closed';
      throw error;
    }
  }

  /** Queues `message` for `message.to`. Never throws; drops and counts when it cannot deliver. */
  send(message: PeerMessage): void {
    if (this.state !== 'running' || message.to === this.id) {
      this.counters.messagesDropped++;
      return;
    }
    this.network.route(this, message, this.counters);
  }

  /** Serves client processes (see MemoryNetwork.connectClient). */
  acceptClients(handlers: ClientHandlers): void {
    this.clientHandlers = handlers;
  }

  /** @internal */
  openClient(clientId: string, handlers: MemoryClientHandlers): MemoryClientConnection {
    const member = this.clientHandlers as ClientHandlers;
    const pair = new MemoryClientPair(this.id, clientId, member, handlers, (p) => this.clientPairs.delete(p));
    this.clientPairs.add(pair);
    setImmediate(() => {
      if (!pair.clientEnd.closed) member.onOpen(pair.memberEnd);
    });
    return pair.clientEnd;
  }

  /** Leaves the network at once; the id can be started again immediately. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    for (const pair of [...this.clientPairs]) pair.end('transportClosed');
    this.state = 'closed';
    this.network.unregister(this);
    this.connected.clear();
  }

  stats(): TransportStatsDetail {
    return this.counters.snapshot([...this.connected]);
  }

  /**
   * Every peer that has run on the network since this node started, sorted by id: 'connected'
   * while this node can send to it, 'unreachable' while the link to it is down (a partition) or
   * it is not running. Nothing is ever refused here: there is no handshake.
   */
  peerStates(): Record<NodeId, PeerLinkState> {
    const out: Record<NodeId, PeerLinkState> = {};
    for (const peer of [...this.links.keys()].sort()) {
      const state = this.links.get(peer) as PeerLinkState;
      const heard = this.heardMs.get(peer);
      out[peer] = heard === undefined ? state : { ...state, lastHeardMs: heard };
    }
    return out;
  }

  /**
   * For `join`: on a memory network a member's address is its id (any 'host:port'-free string
   * works), so this answers the id when such a node is running.
   */
  async identify(address: string): Promise<NodeId | undefined> {
    return this.network.nodeIds().includes(address) ? address : undefined;
  }

  /** @internal */
  receive(message: PeerMessage, bytes: number): void {
    this.counters.framesIn++;
    this.counters.bytesIn += bytes;
    this.handlers?.onMessage(message);
  }

  /** @internal A message from `peer` was delivered at `atMs` (epoch ms). */
  heard(peer: NodeId, atMs: number): void {
    this.heardMs.set(peer, atMs);
  }

  /** @internal */
  rejectIncoming(reason: string): void {
    this.counters.reject(reason);
  }

  /** @internal Recomputes reachable peers and reports changes through onPeerState. */
  refreshPeers(): void {
    if (this.state !== 'running') return;
    const now = new Set(this.network.nodeIds().filter((peer) => peer !== this.id && this.network.reachable(this.id, peer)));
    const changes: [NodeId, boolean][] = [];
    for (const peer of now) if (!this.connected.has(peer)) changes.push([peer, true]);
    for (const peer of this.connected) if (!now.has(peer)) changes.push([peer, false]);
    this.connected = now;
    this.refreshLinks(now);
    changes.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    // Reported on a later turn: a handler must never run inside start/close/setLink.
    if (changes.length > 0) {
      setImmediate(() => {
        if (this.state !== 'running') return;
        for (const [peer, up] of changes) this.handlers?.onPeerState?.(peer, up);
      });
    }
  }

  /** Updates `links` from the reachable set; `sinceMs` moves only when a peer's state changes. */
  private refreshLinks(reachable: ReadonlySet<NodeId>): void {
    const running = new Set(this.network.nodeIds().filter((peer) => peer !== this.id));
    const nowMs = Date.now();
    for (const peer of new Set([...this.links.keys(), ...running])) {
      const previous = this.links.get(peer);
      const next: Omit<PeerLinkState, 'sinceMs'> = reachable.has(peer)
        ? { state: 'connected' }
        : running.has(peer)
          ? { state: 'unreachable', detail: `the link from ${this.id} to ${peer} is down (partitioned)` }
          : { state: 'unreachable', detail: `${peer} is not running on this network` };
      if (previous?.state !== next.state || previous.detail !== next.detail) this.links.set(peer, { ...next, sinceMs: nowMs });
    }
  }
}
