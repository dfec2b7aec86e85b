/**
 * RaftQueueClient: the queue from a process that is not a member.
 *
 * It connects to any one member's Raft port in the client role (authenticated with the cluster
 * secret; it never sends Raft messages and never counts as a member), learns the members and the
 * leader from it, and moves to the leader when it can (one hop less). Its calls are those of
 * RaftQueue (lib/queue-calls.ts, shared), over a port that sends commands to the member.
 *
 * Exactly once across failover: the client keeps a session in the replicated session table and
 * numbers its requests, exactly as a member does for its own callers (it runs the same
 * lib/node/requests.ts, with its member standing in for the leader). Whatever is waiting when a
 * connection or a leader is lost is sent again under the same numbers through whichever member
 * it reaches next, and the session table applies each request once, answering a copy with the
 * remembered result: a publish is stored once, a pop hands out its message once.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { inspect } from 'node:util';
import { EventEmitter } from 'eventemitter3';
import { z } from 'zod';
import type {
  CallOptions,
  CreateTopicOptions,
  MemberInfo,
  MessagesOptions,
  PeekOptions,
  PeerStatus,
  PublishOptions,
  PublishReceipt,
  QueueStatus,
  RedriveOptions,
  RedriveResult,
  SubscribeOptions,
  Subscription,
} from '../api-types.js';
import { callOptionsSchema, parseOptions } from '../call-options.js';
import { createRandom } from '../core/random.js';
import { RaftQueueError } from '../contracts/errors.js';
import { ADDRESS_PATTERN, CLUSTER_ID_PATTERN, MEMBER_ID_PATTERN, MESSAGE_BYTES_MAX_DEFAULT, MESSAGE_BYTES_MAX_LIMIT } from '../contracts/limits.js';
import type { DeadLettered, Delivery, LeaderChange, PeekedMessage, PublicRole, QueueMessage } from '../events.js';
import { SESSION_EXPIRED } from '../node/applier.js';
import { systemClock } from '../node/clock.js';
import type { TimerHandle } from '../node/clock.js';
import { Requests } from '../node/requests.js';
import { LOOPBACK_DEFAULT_SECRET, isLoopbackAddress } from '../options.js';
import type { QueueQuery } from '../queue/index.js';
import { QueueCalls } from '../queue-calls.js';
import type { QueuePort } from '../queue-calls.js';
import { ResultFlag, WATCHED_TOPICS_MAX, decodeToClient, encodeToMember } from './protocol.js';
import type { ToClient, ToMember } from './protocol.js';

// -----------------------------------------------------------------------------------------------
// Options

const pem = z.union([z.string(), z.instanceof(Uint8Array)]);
const ms = z.number().int().min(1).max(86_400_000);

const clientOptionsSchema = z
  .strictObject({
    /** Members' Raft addresses ('host:port', as in their `peers`); any one reachable is enough. */
    members: z.array(z.string().regex(ADDRESS_PATTERN, "expected 'host:port'")).min(1).max(64),
    /** The cluster's secret (at least 16 characters); required unless every member is on loopback. */
    clusterSecret: z.string().min(16, 'clusterSecret must be at least 16 characters').optional(),
    clusterId: z.string().regex(CLUSTER_ID_PATTERN).max(64).optional(),
    /** Names this client in members' logs (1-64 of A-Z a-z 0-9 . _ -); default client-<random>. */
    clientId: z.string().regex(MEMBER_ID_PATTERN).max(64).optional(),
    /** Mutual TLS, as the members use it. */
    tls: z.strictObject({ key: pem, cert: pem, ca: pem }).optional(),
    /** Default deadline of every call; default 5000. */
    requestTimeoutMs: ms.optional(),
    /** `connect()` gives up after this long without reaching a member; default 10000. */
    connectTimeoutMs: ms.optional(),
    /** A request without an answer is sent again after this long (applied once); default 1000. */
    retryIntervalMs: ms.optional(),
    /** Largest encoded payload publish accepts (as the members' option); default 1 MiB. */
    messageBytesMax: z.number().int().positive().max(MESSAGE_BYTES_MAX_LIMIT).optional(),
    /** Requests waiting at once in this client; more are refused with NO_CAPACITY. Default 100,000. */
    requestsPendingMax: z.number().int().positive().max(10_000_000).optional(),
    /** Move to the leader once known (one hop less); default true. */
    preferLeader: z.boolean().optional(),
    logger: z.custom<(line: string) => void>((f) => typeof f === 'function').optional(),
  })
  .superRefine((o, ctx) => {
    if (o.clusterSecret === undefined && o.members.some((a) => !isLoopbackAddress(a))) {
      ctx.addIssue({ code: 'custom', path: ['clusterSecret'], message: 'clusterSecret is required when a member address is not loopback' });
    }
  });

export type RaftQueueClientOptions = z.input<typeof clientOptionsSchema>;

interface ResolvedClientOptions {
  readonly members: readonly string[];
  readonly clusterSecret: string;
  readonly clusterId: string;
  readonly clientId: string;
  readonly tls: { readonly key: string | Uint8Array; readonly cert: string | Uint8Array; readonly ca: string | Uint8Array } | undefined;
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly retryIntervalMs: number;
  readonly messageBytesMax: number;
  readonly requestsPendingMax: number;
  readonly preferLeader: boolean;
  readonly logger: ((line: string) => void) | undefined;
}

function resolveClientOptions(options: RaftQueueClientOptions): ResolvedClientOptions {
  const parsed = clientOptionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.join('.') ?? '';
    throw new RaftQueueError('INVALID_OPTIONS', `invalid option ${path === '' ? '(options)' : path}: ${issue?.message ?? 'invalid'}`);
  }
  const o = parsed.data;
  return {
    members: [...new Set(o.members)],
    clusterSecret: o.clusterSecret ?? LOOPBACK_DEFAULT_SECRET,
    clusterId: o.clusterId ?? 'raftqueue',
    clientId: o.clientId ?? `client-${randomBytes(4).toString('hex')}`,
    tls: o.tls,
    requestTimeoutMs: o.requestTimeoutMs ?? 5_000,
    connectTimeoutMs: o.connectTimeoutMs ?? 10_000,
    retryIntervalMs: o.retryIntervalMs ?? 1_000,
    messageBytesMax: o.messageBytesMax ?? MESSAGE_BYTES_MAX_DEFAULT,
    requestsPendingMax: o.requestsPendingMax ?? 100_000,
    preferLeader: o.preferLeader ?? true,
    logger: o.logger,
  };
}

// -----------------------------------------------------------------------------------------------
// The connection the package entry provides (transports/tcp/client-connection.ts)

/** One authenticated connection to a member, in the client role. */
export interface ClientConnectionLike {
  readonly memberId: string;
  readonly closed: boolean;
  send(body: Uint8Array): boolean;
  close(): void;
}

export interface ClientConnectParams {
  readonly address: string;
  readonly clusterId: string;
  readonly clusterSecret: string;
  readonly clientId: string;
  readonly tls?: { readonly key: string | Uint8Array; readonly cert: string | Uint8Array; readonly ca: string | Uint8Array };
  readonly handshakeTimeoutMs: number;
}

export type ClientConnector = (
  params: ClientConnectParams,
  handlers: { onFrame(body: Uint8Array): void; onClose(reason: string, error?: Error): void },
) => Promise<ClientConnectionLike>;

export interface RaftQueueClientDependencies {
  /** Opens a connection to a member (the package entry passes TCP). */
  readonly connect?: ClientConnector;
}

// -----------------------------------------------------------------------------------------------
// Events

/** The client reached a member (first connection, or again after losing one). */
export interface ClientConnected {
  readonly memberId: string;
  readonly address: string;
}

/** The client lost its member; it is reconnecting (calls wait, up to their deadlines). */
export interface ClientDisconnected {
  readonly memberId: string;
  readonly address: string;
  readonly reason: string;
}

export interface RaftQueueClientEvents {
  leaderChanged: (change: LeaderChange) => void;
  deadLettered: (event: DeadLettered) => void;
  connected: (event: ClientConnected) => void;
  disconnected: (event: ClientDisconnected) => void;
}

type State = 'new' | 'connecting' | 'running' | 'closing' | 'closed';
type View = Extract<ToClient, { k: 'view' }>;

interface PendingRead {
  readonly body: ToMember;
  readonly cb: (error: RaftQueueError | undefined, value: unknown) => void;
  readonly timer: NodeJS.Timeout;
  sent: boolean;
}

/** Reconnect backoff bounds: the first retry is quick, then it doubles up to the max. */
const BACKOFF_MS_MIN = 50;
const BACKOFF_MS_MAX = 1_000;
/**
 * How long one reconnect attempt waits for a member's handshake: a member that does not answer
 * (stopped, blackholed) must not hold up trying the next one for long.
 */
const RECONNECT_DIAL_MS = 2_000;
/** A move to the leader is tried at most this often. */
const LEADER_MOVE_INTERVAL_MS = 1_000;
/**
 * Payload bytes one subscription claim may return: results travel in the member's frames and
 * its queue to this client, which are bounded.
 */
const CLAIM_BYTES_MAX = 4 << 20;
/** A client's idle subscriptions claim again this often without a wake-up from the member. */
const IDLE_POLL_MS = 5_000;
/** A member that has known no leader for this long is left for another. */
const LEADERLESS_MOVE_MS = 2_000;

/**
 * A client of a raftqueue cluster from a process that is not a member: the same calls, results
 * and errors as RaftQueue.
 */
export class RaftQueueClient extends EventEmitter<RaftQueueClientEvents> {
  readonly #o: ResolvedClientOptions;
  readonly #connect: ClientConnector;
  readonly #calls: QueueCalls;
  readonly #requests: Requests;
  readonly #idBytes: Uint8Array;
  #state: State = 'new';
  #link: ClientConnectionLike | undefined;
  #linkAddress = '';
  #view: View | undefined;
  /** member id -> address, from the options and every view. */
  readonly #addresses = new Map<string, string>();
  #nextAddress = 0;
  #lastLeader: { id: string | null; term: number } = { id: null, term: 0 };
  #lastFailure = '';
  #pumpQueued = false;
  #retrier: TimerHandle | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #moving = false;
  #leaderlessTimer: NodeJS.Timeout | undefined;
  #moveTimer: NodeJS.Timeout | undefined;
  #lastMoveMs = 0;
  #nextReadId = 1;
  readonly #reads = new Map<number, PendingRead>();
  #watchSent = '';

  /** Validates `options` (throws RaftQueueError INVALID_OPTIONS naming the field). */
  constructor(options: RaftQueueClientOptions, deps: RaftQueueClientDependencies = {}) {
    super();
    this.#o = resolveClientOptions(options);
    if (deps.connect === undefined) throw new RaftQueueError('INVALID_OPTIONS', 'no connector: import RaftQueueClient from the package entry');
    this.#connect = deps.connect;
    // The registration's body: unique per client object, so two clients never take each other's session.
    this.#idBytes = new TextEncoder().encode(`client:${this.#o.clientId}/${randomBytes(12).toString('hex')}`);
    const client = this;
    this.#requests = new Requests({
      core: {
        // The member stands in for the leader while it knows one (requests wait while it does not).
        softState: () => ({ role: 'follower', term: client.#view?.term ?? 0, leaderId: client.#link !== undefined && !client.#link.closed && client.#view?.leaderId != null ? client.#link.memberId : null }),
        propose: () => ({ ok: false, reason: 'notLeader', leaderId: null }),
      },
      clock: systemClock,
      random: createRandom(randomInt(2 ** 31)),
      idBytes: this.#idBytes,
      retryIntervalMs: this.#o.retryIntervalMs,
      entryBytesMax: 256 * 1024,
      bodyBytesMax: this.#o.messageBytesMax + 4096,
      pendingMax: this.#o.requestsPendingMax,
      seesEveryResult: false,
      sendForward: (_to, body) => {
        // Not sent (the connection's queue is full): the request is re-sent at the next retry.
        if (body.k === 'propose' && !this.#send({ k: 'propose', b: body.b, recs: body.recs })) this.#log('a request batch could not be queued; it goes again at the next retry');
      },
      schedulePump: () => this.#schedulePump(),
      guard: (fn) => fn(),
      log: (line) => this.#log(line),
    });
    const port: QueuePort = {
      submit: (body, timeoutMs, cb) => {
        this.#armRetrier();
        this.#requests.submit(body, timeoutMs, cb);
      },
      read: (query, timeoutMs, cb) => this.#read(query, timeoutMs, cb),
    };
    this.#calls = new QueueCalls({
      id: this.#o.clientId,
      requestTimeoutMs: this.#o.requestTimeoutMs,
      // The smaller of this client's limit and its member's: a larger payload is refused here.
      get messageBytesMax() {
        return Math.min(client.#o.messageBytesMax, client.#view?.messageBytesMax ?? Number.MAX_SAFE_INTEGER);
      },
      claimBytesMax: CLAIM_BYTES_MAX,
      idlePollMs: IDLE_POLL_MS,
      port: () => (this.#state === 'running' ? port : this.#notRunning()),
      explain: (error) => this.#explain(error),
      log: (line) => this.#log(line),
      onSubscriptionsChanged: () => this.#sendWatch(),
    });
    for (const a of this.#o.members) this.#addresses.set(`?${a}`, a);
    this.#nextAddress = randomInt(this.#o.members.length);
  }

  /** The id this client goes by in members' logs. */
  get clientId(): string {
    return this.#o.clientId;
  }

  /** The member this client is connected to now, if any. */
  get connectedTo(): ClientConnected | undefined {
    const link = this.#link;
    return link !== undefined && !link.closed ? { memberId: link.memberId, address: this.#linkAddress } : undefined;
  }

  /**
   * Connects to one of `members` (trying each in turn) and resolves once one answers. Rejects
   * with TRANSPORT_FAILED, naming each member's failure, after `connectTimeoutMs`; the client is
   * then closed. Once connected, a lost connection is re-established by itself.
   */
  async connect(): Promise<void> {
    if (this.#state !== 'new') throw new RaftQueueError('CLOSED', `connect() called twice (state ${this.#state})`);
    this.#state = 'connecting';
    this.#armRetrier();
    const deadline = Date.now() + this.#o.connectTimeoutMs;
    const failures = new Map<string, string>();
    let backoff = BACKOFF_MS_MIN;
    while (this.#state === 'connecting') {
      const addresses = this.#addressList();
      for (let i = 0; i < addresses.length && this.#state === 'connecting'; i++) {
        const address = addresses[(this.#nextAddress + i) % addresses.length] as string;
        const budget = deadline - Date.now();
        if (budget < 50) break;
        const error = await this.#dial(address, Math.min(5_000, budget));
        if (error === undefined) {
          this.#state = 'running';
          return;
        }
        // The most telling failure per member: a refusal says more than a later timeout.
        if (!failures.has(address) || !/within \d+ ms/.test(error)) failures.set(address, error);
        if (Date.now() >= deadline) break;
      }
      if (this.#state !== 'connecting') break;
      if (deadline - Date.now() < 50) {
        const detail = [...failures].map(([a, e]) => `${a}: ${e}`).join('; ');
        await this.close();
        throw new RaftQueueError('TRANSPORT_FAILED', `no member reachable within ${this.#o.connectTimeoutMs} ms (${detail})`);
      }
      await sleep(Math.min(backoff, Math.max(1, deadline - Date.now())));
      backoff = Math.min(BACKOFF_MS_MAX, backoff * 2);
    }
    throw this.#notRunning();
  }

  // ---------------------------------------------------------------------------------------------
  // The queue's calls (the same as RaftQueue's)

  /** Creates `topic`; true if created, false if it already existed. */
  createTopic(topic: string, options?: CreateTopicOptions): Promise<boolean> {
    return this.#calls.createTopic(topic, options);
  }

  /** Deletes `topic` and everything in it; true if it existed. */
  deleteTopic(topic: string, options?: CallOptions): Promise<boolean> {
    return this.#calls.deleteTopic(topic, options);
  }

  /** Topic names in creation order (a linearizable read). */
  topics(options?: CallOptions): Promise<string[]> {
    return this.#calls.topics(options);
  }

  /** Appends `payload` to `topic`, resolving once committed (see RaftQueue.publish). */
  publish<T = unknown>(topic: string, payload: T, options?: PublishOptions): Promise<PublishReceipt> {
    return this.#calls.publish(topic, payload, options);
  }

  /** Removes and returns the oldest message of `topic` (group 'default'); undefined if empty. */
  consume<T = unknown>(topic: string, options?: CallOptions): Promise<QueueMessage<T> | undefined> {
    return this.#calls.consume<T>(topic, options);
  }

  /** Messages waiting for a group, without claiming them (see RaftQueue.peek). */
  peek<T = unknown>(topic: string, options?: PeekOptions): Promise<PeekedMessage<T>[]> {
    return this.#calls.peek<T>(topic, options);
  }

  /** Removes every message of `topic` (see RaftQueue.purge). */
  purge(topic: string, options?: CallOptions): Promise<number> {
    return this.#calls.purge(topic, options);
  }

  /** Moves dead letters back (see RaftQueue.redrive). */
  redrive(dlqTopic: string, options?: RedriveOptions): Promise<RedriveResult> {
    return this.#calls.redrive(dlqTopic, options);
  }

  /** Delivers messages of `topic` to `handler` (see RaftQueue.subscribe). */
  subscribe<T = unknown>(topic: string, handler: (message: QueueMessage<T>) => unknown, options?: SubscribeOptions): Subscription {
    return this.#calls.subscribe<T>(topic, handler, options);
  }

  /** Deliveries of `topic` as an async iterator; settle each with ack/nack. */
  messages<T = unknown>(topic: string, options?: MessagesOptions): AsyncIterableIterator<Delivery<T>> {
    return this.#calls.messages<T>(topic, options);
  }

  // ---------------------------------------------------------------------------------------------
  // The cluster as the connected member sees it

  /**
   * The connected member's view as it last told this client (it tells on every change of leader,
   * term or members): its id, role and term, the leader and the members. Indexes and replication
   * progress are not pushed: `fetchStatus()` asks the member for them.
   */
  status(): QueueStatus {
    const v = this.#view;
    const peers: PeerStatus[] = (v?.members ?? []).filter((m) => m.role === 'voter').map((m) => ({ id: m.id, address: m.address }));
    return {
      id: v?.member ?? '',
      role: (v?.role ?? 'follower') as PublicRole,
      term: v?.term ?? 0,
      leaderId: v?.leaderId ?? undefined,
      commitIndex: 0,
      appliedIndex: 0,
      needsRepair: false,
      peers,
    };
  }

  /** The members as the connected member last told this client. */
  members(): MemberInfo[] {
    const v = this.#view;
    if (v === undefined) return [];
    return v.members.map((m) => ({ id: m.id, address: m.address, role: m.role, isLeader: m.id === v.leaderId }));
  }

  /** The connected member's `status()`, asked now (indexes, replication progress, links). */
  async fetchStatus(options?: CallOptions): Promise<QueueStatus> {
    return (await this.#info(options)).status as unknown as QueueStatus;
  }

  /** The connected member's `members()`, asked now (on the leader: each one's progress). */
  async fetchMembers(options?: CallOptions): Promise<MemberInfo[]> {
    return (await this.#info(options)).members as unknown as MemberInfo[];
  }

  /**
   * Closes the client: subscriptions stop (deliveries in progress get up to 250 ms to settle),
   * calls still waiting reject with CLOSED, the connection closes.
   */
  async close(): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'closing') return;
    const wasRunning = this.#state === 'running';
    this.#state = wasRunning ? 'running' : 'closing';
    if (wasRunning) await this.#calls.closeAll(250);
    this.#state = 'closing';
    this.#calls.abortAll();
    const closed = new RaftQueueError('CLOSED', 'the client is closed');
    this.#requests.close(closed);
    for (const [id, r] of this.#reads) {
      clearTimeout(r.timer);
      this.#reads.delete(id);
      r.cb(closed, undefined);
    }
    this.#retrier?.cancel();
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    if (this.#leaderlessTimer !== undefined) clearTimeout(this.#leaderlessTimer);
    if (this.#moveTimer !== undefined) clearTimeout(this.#moveTimer);
    const link = this.#link;
    this.#link = undefined;
    link?.close();
    this.#state = 'closed';
  }

  /** @internal What console.log and util.inspect show (the secret never). */
  [inspect.custom](depth: number, options: object, inspectFn: typeof inspect): string {
    if (depth < 0) return `[RaftQueueClient ${this.#o.clientId}]`;
    return `RaftQueueClient ${inspectFn(this.toJSON(), { ...options, depth })}`;
  }

  /** @internal What JSON.stringify shows. */
  toJSON(): Record<string, unknown> {
    return { clientId: this.#o.clientId, state: this.#state, connectedTo: this.connectedTo, leaderId: this.#view?.leaderId ?? undefined, members: [...this.#o.members] };
  }

  /**
   * The retry sweep runs only while something waits (a request, or the session's registration):
   * an idle client must not wake four times a second for nothing.
   */
  #armRetrier(): void {
    if (this.#retrier !== undefined || this.#state === 'closing' || this.#state === 'closed') return;
    this.#retrier = systemClock.every(Math.max(10, Math.floor(this.#o.retryIntervalMs / 4)), () => {
      this.#requests.retryStale();
      if (this.#requests.pending === 0 && this.#requests.currentSession !== undefined) {
        this.#retrier?.cancel();
        this.#retrier = undefined;
      }
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Connections

  #addressList(): string[] {
    return [...new Set(this.#addresses.values())];
  }

  /**
   * Opens a connection to `address` and, once the member has told its view (it does at once),
   * makes it the current one; the failure in words otherwise.
   */
  async #dial(address: string, timeoutMs: number): Promise<string | undefined> {
    let conn: ClientConnectionLike | undefined;
    let first: ((v: View | string) => void) | undefined;
    const firstView = new Promise<View | string>((resolve) => (first = resolve));
    // Ref'd, like the socket being dialled: a process awaiting connect() must not exit under it.
    const timer = setTimeout(() => first?.(`no answer within ${timeoutMs} ms`), timeoutMs);
    try {
      conn = await this.#connect(
        {
          address,
          clusterId: this.#o.clusterId,
          clusterSecret: this.#o.clusterSecret,
          clientId: this.#o.clientId,
          ...(this.#o.tls ? { tls: this.#o.tls } : {}),
          handshakeTimeoutMs: timeoutMs,
        },
        {
          onFrame: (body) => {
            if (conn !== undefined && conn === this.#link) {
              this.#onFrame(body);
              return;
            }
            const v = decodeToClient(body);
            if (typeof v !== 'string' && v.k === 'view') first?.(v);
          },
          onClose: (reason, error) => {
            if (conn !== undefined && conn === this.#link) this.#onLinkLost(reason, error);
            else first?.(`closed (${error !== undefined ? `${reason}: ${error.message}` : reason})`);
          },
        },
      );
    } catch (error) {
      clearTimeout(timer);
      this.#lastFailure = error instanceof Error ? error.message : String(error);
      return this.#lastFailure;
    }
    const view = await firstView;
    clearTimeout(timer);
    first = undefined;
    if (typeof view === 'string') {
      conn.close();
      this.#lastFailure = `${address}: ${view}`;
      return view;
    }
    if (this.#state === 'closing' || this.#state === 'closed' || conn.closed) {
      conn.close();
      return 'closed';
    }
    const previous = this.#link;
    this.#link = conn;
    this.#linkAddress = address;
    this.#view = view;
    previous?.close();
    // The member learns who we are first, then what to wake us for, then what we wait for.
    const session = this.#requests.currentSession;
    if (session !== undefined) this.#send({ k: 'attach', session, who: this.#idBytes });
    this.#watchSent = '';
    this.#sendWatch();
    this.#requests.onLeaderChange();
    // Messages published while this client was between members woke nobody: look now.
    for (const topic of this.#calls.subscribedTopics()) this.#calls.wake(topic);
    for (const [, r] of this.#reads) {
      r.sent = true;
      this.#send(r.body);
    }
    this.#log(`connected to ${conn.memberId} at ${address}`);
    this.emit('connected', { memberId: conn.memberId, address });
    this.#onView(view);
    return undefined;
  }

  #onLinkLost(reason: string, error: Error | undefined): void {
    const link = this.#link;
    this.#link = undefined;
    this.#view = undefined;
    if (link === undefined || this.#state === 'closing' || this.#state === 'closed') return;
    const why = error !== undefined ? `${reason}: ${error.message}` : reason;
    this.#lastFailure = `lost ${link.memberId} at ${this.#linkAddress} (${why})`;
    this.#log(this.#lastFailure);
    this.emit('disconnected', { memberId: link.memberId, address: this.#linkAddress, reason: why });
    for (const r of this.#reads.values()) r.sent = false;
    this.#reconnect(BACKOFF_MS_MIN, this.#linkAddress);
  }

  /** Tries every known member, starting after the one just lost, until one answers. */
  #reconnect(backoff: number, lost: string): void {
    if (this.#state !== 'running' || this.#reconnectTimer !== undefined) return;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      void (async () => {
        const addresses = this.#addressList();
        const start = Math.max(0, addresses.indexOf(lost) + 1);
        for (let i = 0; i < addresses.length; i++) {
          if (this.#state !== 'running' || this.#link !== undefined) return;
          const address = addresses[(start + i) % addresses.length] as string;
          if (address === lost && addresses.length > 1 && i === 0) continue;
          if ((await this.#dial(address, RECONNECT_DIAL_MS)) === undefined) return;
        }
        this.#reconnect(Math.min(BACKOFF_MS_MAX, backoff * 2), '');
      })();
    }, backoff);
  }

  /**
   * A member that knows no leader for LEADERLESS_MOVE_MS (cut off from the others, say) cannot
   * serve: try the next member, and again every LEADERLESS_MOVE_MS while that lasts.
   */
  #watchLeaderless(v: View): void {
    if (v.leaderId !== null) {
      if (this.#leaderlessTimer !== undefined) clearTimeout(this.#leaderlessTimer);
      this.#leaderlessTimer = undefined;
      return;
    }
    if (this.#leaderlessTimer !== undefined) return;
    this.#leaderlessTimer = setTimeout(() => {
      this.#leaderlessTimer = undefined;
      const link = this.#link;
      if (this.#state !== 'running' || link === undefined || this.#view?.leaderId !== null) return;
      if (this.#moving) {
        // A move is being dialled: look again after it.
        this.#watchLeaderless(this.#view);
        return;
      }
      const addresses = this.#addressList().filter((a) => a !== this.#linkAddress);
      const next = addresses[this.#nextAddress++ % Math.max(1, addresses.length)];
      if (next === undefined) return;
      this.#moving = true;
      void this.#dial(next, 5_000).then((error) => {
        this.#moving = false;
        if (error !== undefined) this.#log(`${link.memberId} knows no leader; could not move to ${next}: ${error}`);
        // Still leaderless (the move failed, or the new member knows none either): go on trying.
        if (this.#view !== undefined) this.#watchLeaderless(this.#view);
      });
    }, LEADERLESS_MOVE_MS);
    this.#leaderlessTimer.unref();
  }

  /** Moves to the leader when the member we are on is not it (one hop less per request). */
  #maybeMoveToLeader(v: View): void {
    if (!this.#o.preferLeader || this.#moving || v.leaderId === null || v.leaderId === v.member) return;
    const now = Date.now();
    if (now - this.#lastMoveMs < LEADER_MOVE_INTERVAL_MS) {
      // Moved a moment ago: look again once the interval has passed (the leader may have moved on).
      this.#moveTimer ??= setTimeout(() => {
        this.#moveTimer = undefined;
        if (this.#state === 'running' && this.#view !== undefined) this.#maybeMoveToLeader(this.#view);
      }, LEADER_MOVE_INTERVAL_MS - (now - this.#lastMoveMs)).unref();
      return;
    }
    const address = v.members.find((m) => m.id === v.leaderId)?.address;
    if (address === undefined || address === '') return;
    this.#moving = true;
    this.#lastMoveMs = now;
    void this.#dial(address, 5_000).then((error) => {
      this.#moving = false;
      if (error !== undefined) this.#log(`could not move to the leader ${v.leaderId ?? ''} at ${address}: ${error}`);
      if (this.#view !== undefined) this.#watchLeaderless(this.#view);
    });
  }

  #send(body: ToMember): boolean {
    const link = this.#link;
    if (link === undefined || link.closed) return false;
    return link.send(encodeToMember(body));
  }

  #sendWatch(): void {
    // The member watches at most WATCHED_TOPICS_MAX topics for one client; subscriptions past
    // that find their messages by polling.
    const topics = [...this.#calls.subscribedTopics()].sort().slice(0, WATCHED_TOPICS_MAX);
    const key = topics.join('\n');
    if (key === this.#watchSent) return;
    this.#watchSent = key;
    this.#send({ k: 'watch', topics, deadLetters: true });
  }

  #schedulePump(): void {
    if (this.#pumpQueued) return;
    this.#pumpQueued = true;
    systemClock.afterTask(() => {
      this.#pumpQueued = false;
      this.#requests.flush();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // What the member says

  #onFrame(bytes: Uint8Array): void {
    const body = decodeToClient(bytes);
    if (typeof body === 'string') {
      this.#log(`a malformed frame from the member (${body}); ignored`);
      return;
    }
    switch (body.k) {
      case 'view':
        this.#onView(body);
        return;
      case 'accepted':
        this.#requests.onAccepted(body.b, body.term);
        return;
      case 'refused':
        this.#requests.onRefused(body.b, body.reason, body.leaderId);
        return;
      case 'registered':
        if (this.#requests.currentSession !== undefined) return; // A second copy of the registration.
        this.#requests.onRegistered(body.nonce, this.#idBytes, body.session);
        if (this.#requests.currentSession === body.session) this.#send({ k: 'attach', session: body.session, who: this.#idBytes });
        return;
      case 'results':
        for (const [seq, index, flags, result] of body.rs) {
          const expired = (flags & ResultFlag.Expired) !== 0;
          this.#requests.onApplied(body.session, seq, index, expired ? SESSION_EXPIRED : result, (flags & ResultFlag.Duplicate) !== 0);
        }
        return;
      case 'resend':
        this.#requests.onLeaderChange();
        return;
      case 'readOk':
      case 'readErr':
      case 'info': {
        const r = this.#reads.get(body.id);
        if (r === undefined) return;
        this.#reads.delete(body.id);
        clearTimeout(r.timer);
        if (body.k === 'readErr') r.cb(new RaftQueueError(errorCode(body.code), body.message), undefined);
        else r.cb(undefined, body.k === 'readOk' ? body.value : { status: body.status, members: body.members });
        return;
      }
      case 'wake':
        for (const t of body.topics) this.#calls.wake(t);
        return;
      case 'deadLettered':
        this.emit('deadLettered', body.e as unknown as DeadLettered);
        return;
      case 'error':
        this.#log(`member ${this.#link?.memberId ?? '?'}: ${body.message} (${body.code})`);
        return;
    }
  }

  #onView(v: View): void {
    this.#view = v;
    for (const m of v.members) if (m.address !== '') this.#addresses.set(m.id, m.address);
    if (v.leaderId !== this.#lastLeader.id || (v.leaderId !== null && v.term !== this.#lastLeader.term)) {
      const changed = v.leaderId !== null || this.#lastLeader.id !== null;
      this.#lastLeader = { id: v.leaderId, term: v.term };
      // What the member relayed to the old leader may be lost with it: send it again now, as a
      // member does for its own callers when its leader changes.
      if (v.leaderId !== null) this.#requests.onLeaderChange();
      if (changed) this.emit('leaderChanged', { leaderId: v.leaderId ?? undefined, term: v.term });
    }
    this.#maybeMoveToLeader(v);
    this.#watchLeaderless(v);
  }

  // ---------------------------------------------------------------------------------------------
  // Reads

  #read(query: QueueQuery, timeoutMs: number, cb: (error: RaftQueueError | undefined, value: unknown) => void): void {
    this.#ask({ k: 'read', id: this.#nextReadId++, t: timeoutMs, q: query } as Extract<ToMember, { k: 'read' }>, timeoutMs, 'read', cb);
  }

  #info(options: CallOptions | undefined): Promise<{ status: Record<string, unknown>; members: Record<string, unknown>[] }> {
    const o = parseOptions(callOptionsSchema, options, 'fetchStatus');
    if (this.#state !== 'running') return Promise.reject(this.#notRunning());
    const timeoutMs = o.timeoutMs ?? this.#o.requestTimeoutMs;
    return new Promise((resolve, reject) => {
      this.#ask({ k: 'info', id: this.#nextReadId++ }, timeoutMs, 'fetchStatus', (error, value) => (error ? reject(this.#explain(error)) : resolve(value as { status: Record<string, unknown>; members: Record<string, unknown>[] })));
    });
  }

  /** Sends a question now (or when connected) and again after every reconnect, until answered. */
  #ask(body: ToMember & { id: number }, timeoutMs: number, what: string, cb: (error: RaftQueueError | undefined, value: unknown) => void): void {
    const id = body.id;
    const timer = setTimeout(() => {
      const r = this.#reads.get(id);
      if (r === undefined) return;
      this.#reads.delete(id);
      r.cb(r.sent ? new RaftQueueError('TIMEOUT', `${what}: no answer within ${timeoutMs} ms`) : new RaftQueueError('NO_LEADER', `${what}: no member reachable within ${timeoutMs} ms`), undefined);
    }, timeoutMs);
    const connected = this.#link !== undefined && !this.#link.closed;
    this.#reads.set(id, { body, cb, timer, sent: connected });
    if (connected) this.#send(body);
  }

  // ---------------------------------------------------------------------------------------------

  /** NO_LEADER and TIMEOUT say what the client could see. */
  #explain(error: RaftQueueError): RaftQueueError {
    if (error.code !== 'NO_LEADER' && error.code !== 'TIMEOUT') return error;
    const link = this.#link;
    const v = this.#view;
    const where =
      link !== undefined && !link.closed
        ? `connected to ${link.memberId} at ${this.#linkAddress}${v ? `, which is ${v.role} in term ${v.term} and ${v.leaderId !== null ? `follows ${v.leaderId}` : 'knows no leader'}` : ''}`
        : `not connected to any member${this.#lastFailure !== '' ? ` (last: ${this.#lastFailure})` : ''}`;
    return new RaftQueueError(error.code, `${error.message} [client ${this.#o.clientId} ${where}]`, { cause: error });
  }

  #notRunning(): RaftQueueError {
    return new RaftQueueError('CLOSED', this.#state === 'new' ? 'call connect() first' : `the client is ${this.#state === 'connecting' ? 'still connecting' : 'closed'}`);
  }

  #log(line: string): void {
    this.#o.logger?.(`[raftqueue client ${this.#o.clientId}] ${line}`);
  }
}

/** Ref'd: connect() is awaited, and the process must stay up until it settles. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function errorCode(code: string): RaftQueueError['code'] {
  const known = ['INVALID_OPTIONS', 'INVALID_TOPIC', 'TOPIC_NOT_FOUND', 'PAYLOAD_TOO_LARGE', 'TOPIC_FULL', 'NO_LEADER', 'NO_CAPACITY', 'TIMEOUT', 'STALE_DELIVERY', 'CLOSED', 'STORAGE_FAILED', 'NEEDS_REPAIR'];
  return (known.includes(code) ? code : 'TRANSPORT_FAILED') as RaftQueueError['code'];
}

