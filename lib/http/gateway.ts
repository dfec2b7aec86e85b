/**
 * The HTTP gateway's request handling: the course design's REST routes over a RaftQueue member
 * (or a RaftQueueClient), as one `node:http` request handler. `raftqueue node --http` and
 * `raftqueue serve` mount it on their own server (lib/cli/gateway.ts); an app mounts it on its
 * own with `createGateway` (the `raftqueue/http` entry).
 *
 * Queue routes are served only by the leader, with exactly the course's JSON bodies; a member
 * that is not the leader answers them with `{"success": false}` plus a `leader` hint (the
 * leader's HTTP address) when it knows one, unless it runs with `forward`: then it serves them
 * through its RaftQueue, which forwards to the leader. A RaftQueueClient always serves them (it
 * follows the leader itself). `GET /status`, `GET /` and `GET /metrics` are served from local
 * state on every member, never through Raft, so they answer during elections too. `PUT
 * /message` also takes a publishId and binary payloads (messages.ts). `GET /ui` is the live
 * dashboard (dashboard.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RaftQueueError } from '../contracts/errors.js';
import type { ErrorCode } from '../contracts/errors.js';
import type { QueueMetrics, QueueStatus } from '../raft-queue.js';
import { GatewayGroups } from './groups.js';
import { BadRequest, readJson, stringField } from './body.js';
import type { Json } from './body.js';
import { Dashboard } from './dashboard.js';
import { crossSiteRefusal } from './cross-site.js';
import { routeDlq } from './dlq.js';
import { routeMembers } from './members.js';
import { popReply, publishReply, readPublish } from './messages.js';
import type { PublishRequest, Reply } from './messages.js';
import { formatMetrics } from './metrics.js';
import { isMember, notAMember } from './queue-kind.js';
import type { GatewayQueue } from './queue-kind.js';

/** Largest request body accepted (bytes); a larger one is answered with 413. */
export const GATEWAY_BODY_BYTES_MAX = 1 << 20;

export interface GatewayOptions {
  /** Member id -> the base URL of its gateway ('http://host:port'), for leader hints. */
  readonly httpAddresses?: Readonly<Record<string, string>>;
  /** Largest request body in bytes (default GATEWAY_BODY_BYTES_MAX); over it: 413. */
  readonly bodyBytesMax?: number;
  /**
   * Guards the membership routes (`/members`, `/leader`) and the dashboard's actions: with a
   * token, a request must carry `Authorization: Bearer <token>`; without one, only loopback
   * clients may use them.
   */
  readonly adminToken?: string;
  /** Deadline of each queue call the gateway makes (default the queue's requestTimeoutMs). */
  readonly requestTimeoutMs?: number;
  /**
   * Serve the queue and group routes on every member, through the RaftQueue (which forwards to
   * the leader), instead of answering with the leader hint. Default false: the course design,
   * where only the leader serves them. (A RaftQueueClient always serves them.)
   */
  readonly forward?: boolean;
  /**
   * A path prefix the routes are mounted under in an app's own server, e.g. '/queue': then
   * `GET /queue/ui` is the dashboard and `PUT /queue/topic` creates a topic. Default: none.
   */
  readonly basePath?: string;
  /** Serve the dashboard under `/ui` (default true). */
  readonly ui?: boolean;
}

/**
 * A `node:http` request handler serving the gateway's routes for one queue: pass it to
 * `http.createServer`, or call it from an app's own handler for the paths it should answer.
 */
export interface GatewayHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  /** Serves `queue` from now on (once: a gateway serves one queue). Until then, `/status` says follower, term 0. */
  attach(queue: GatewayQueue): void;
  /** Stops the group consumers and the dashboard's streams and sampler; the server is the caller's. */
  close(): void;
}

/**
 * The gateway's routes for `queue` (a member or a client process) as one request handler. The
 * queue may be given later with `attach`; until then `/status` answers follower in term 0.
 */
export function createGateway(queue?: GatewayQueue, options: GatewayOptions = {}): GatewayHandler {
  const routes = new GatewayRoutes(queue, options);
  return Object.assign((req: IncomingMessage, res: ServerResponse): void => routes.handle(req, res), {
    attach: (q: GatewayQueue): void => routes.attach(q),
    close: (): void => routes.close(),
  });
}

/** Library errors that mean "unavailable, try again" rather than "you asked wrongly". */
const UNAVAILABLE: ReadonlySet<ErrorCode> = new Set(['NO_LEADER', 'TIMEOUT', 'NO_CAPACITY', 'CLOSED', 'STORAGE_FAILED', 'NEEDS_REPAIR', 'TRANSPORT_FAILED']);

/** The routes of one gateway. */
class GatewayRoutes {
  private readonly bodyBytesMax: number;
  private readonly basePath: string;
  private queue: GatewayQueue | undefined;
  /** The subscriber-group routes under /groups/ (groups.ts). */
  private readonly groups = new GatewayGroups({ leaderQueue: () => this.leaderQueue() });
  /** The dashboard under /ui (dashboard.ts); undefined when turned off. */
  private readonly dashboard: Dashboard | undefined;

  constructor(
    queue: GatewayQueue | undefined,
    private readonly options: GatewayOptions,
  ) {
    this.queue = queue;
    this.bodyBytesMax = options.bodyBytesMax ?? GATEWAY_BODY_BYTES_MAX;
    this.basePath = checkBasePath(options.basePath);
    this.dashboard =
      options.ui === false
        ? undefined
        : new Dashboard({
            queue: () => this.queue,
            adminRefusal: (req) => this.adminRefusal(req),
            hasAdminToken: () => this.options.adminToken !== undefined,
            readJson: (req) => readJson(req, this.bodyBytesMax),
            callOptions: () => this.callOptions(),
            errorReply: (error) => this.errorReply(error),
          });
    if (queue !== undefined) this.dashboard?.attach(queue);
  }

  attach(queue: GatewayQueue): void {
    if (this.queue !== undefined && this.queue !== queue) throw new Error('the gateway already serves a queue');
    this.queue = queue;
    this.dashboard?.attach(queue);
  }

  close(): void {
    this.groups.close();
    this.dashboard?.close();
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const full = (req.url ?? '/').split('?')[0] as string;
    const path = this.stripBase(full);
    if (path !== undefined && this.dashboard?.stream(req, res, path) === true) return;
    const routed = path === undefined ? Promise.resolve(noRoute(req.method ?? 'GET', full)) : this.route(req, path);
    routed.then(
      (reply) => send(res, reply, this.localStatus()),
      (error: unknown) => send(res, this.errorReply(error), this.localStatus()),
    );
  }

  /** The path below basePath; undefined when the request is outside it. */
  private stripBase(path: string): string | undefined {
    if (this.basePath === '') return path;
    if (path === this.basePath) return '/';
    return path.startsWith(`${this.basePath}/`) ? path.slice(this.basePath.length) : undefined;
  }

  private async route(req: IncomingMessage, path: string): Promise<Reply> {
    const method = req.method ?? 'GET';
    if (path === '/status') return method === 'GET' ? this.status() : notAllowed('GET');
    if (path === '/') return method === 'GET' ? this.index() : notAllowed('GET');
    if (path === '/metrics') return method === 'GET' ? this.metrics() : notAllowed('GET');
    if (path === '/topic') {
      if (method === 'PUT') return this.createTopic(await readJson(req, this.bodyBytesMax));
      if (method === 'GET') return this.listTopics();
      return notAllowed('GET, PUT');
    }
    if (path === '/message') return method === 'PUT' ? this.publish(await readPublish(req, { bodyBytesMax: this.bodyBytesMax, messageBytesMax: this.messageBytesMax() })) : notAllowed('PUT');
    if (path.startsWith('/message/')) return method === 'GET' ? this.pop(req, decodeTopic(path.slice('/message/'.length))) : notAllowed('GET');
    const admin = (): { status: number; body: Json } | undefined => this.adminRefusal(req) ?? crossSiteRefusal(req, this.options.adminToken !== undefined);
    const membersReply = routeMembers(this.queue, method, path, () => readJson(req, this.bodyBytesMax), admin);
    if (membersReply !== undefined) return membersReply;
    const dlqReply = routeDlq(this.queue, method, path, (req.url ?? '').split('?')[1] ?? '', () => readJson(req, this.bodyBytesMax), admin);
    if (dlqReply !== undefined) return dlqReply;
    const groupReply = this.groups.route(method, path, () => readJson(req, this.bodyBytesMax));
    if (groupReply !== undefined) return groupReply;
    const uiReply = this.dashboard?.route(req, method, path);
    if (uiReply !== undefined) return uiReply;
    return noRoute(method, path);
  }

  // ---- routes ----------------------------------------------------------------------------------

  private status(): Reply {
    const s = this.localStatus();
    const role = s.role === 'leader' ? 'Leader' : s.role === 'candidate' ? 'Candidate' : 'Follower';
    return { status: 200, body: { role, term: s.term } };
  }

  private index(): Reply {
    const s = this.localStatus();
    return {
      status: 200,
      body: {
        name: 'raftqueue',
        id: s.id,
        role: s.role,
        term: s.term,
        leaderId: s.leaderId ?? null,
        leader: this.leaderUrl(s.leaderId) ?? null,
        commitIndex: s.commitIndex,
        appliedIndex: s.appliedIndex,
        forward: this.options.forward === true,
        routes: ['PUT /topic', 'GET /topic', 'PUT /message', 'GET /message/<topic>', 'GET /status', 'GET /metrics', 'GET /', 'GET /members', 'POST /members', 'DELETE /members/<id>', 'POST /leader', ...(this.dashboard === undefined ? [] : ['GET /ui'])],
      },
    };
  }

  private async createTopic(body: Json): Promise<Reply> {
    const topic = stringField(body, 'topic');
    const queue = this.leaderQueue();
    if (!('createTopic' in queue)) return queue;
    const created = await queue.createTopic(topic, this.callOptions());
    return { status: 200, body: { success: created } };
  }

  private async listTopics(): Promise<Reply> {
    const queue = this.leaderQueue();
    if (!('topics' in queue)) return queue;
    return { status: 200, body: { success: true, topics: await queue.topics(this.callOptions()) } };
  }

  private async publish(request: PublishRequest): Promise<Reply> {
    const queue = this.leaderQueue();
    if (!('publish' in queue)) return queue;
    const options = request.publishId === undefined ? this.callOptions() : { ...this.callOptions(), publishId: request.publishId };
    try {
      return publishReply(await queue.publish(request.topic, request.payload, options));
    } catch (error) {
      if (error instanceof RaftQueueError && error.code === 'TOPIC_NOT_FOUND') return { status: 200, body: { success: false } };
      throw error;
    }
  }

  private async pop(req: IncomingMessage, topic: string): Promise<Reply> {
    const queue = this.leaderQueue();
    if (!('consume' in queue)) return queue;
    try {
      return popReply(req, await queue.consume(topic, this.callOptions()));
    } catch (error) {
      // A name the library refuses cannot name an existing topic: the course's "missing" answer.
      if (error instanceof RaftQueueError && (error.code === 'TOPIC_NOT_FOUND' || error.code === 'INVALID_TOPIC')) return { status: 200, body: { success: false } };
      throw error;
    }
  }

  // ---- helpers ---------------------------------------------------------------------------------

  private metrics(): Reply {
    if (this.queue !== undefined && !isMember(this.queue)) return notAMember('GET /metrics (a member\'s own counters)');
    return { status: 200, body: formatMetrics(this.localStatus(), this.localMetrics()) };
  }

  /** Why a membership request is refused (401/403), or undefined when it may proceed. */
  private adminRefusal(req: IncomingMessage): { status: number; body: Json } | undefined {
    const token = this.options.adminToken;
    if (token !== undefined) {
      const given = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      // Digests of equal length: the comparison takes the same time whatever the token's length.
      const a = createHash('sha256').update(given ?? '').digest();
      const b = createHash('sha256').update(token).digest();
      if (given === undefined || !timingSafeEqual(a, b)) {
        return { status: 401, body: { success: false, error: 'membership routes need Authorization: Bearer <the admin token>' } };
      }
      return undefined;
    }
    const remote = req.socket.remoteAddress ?? '';
    if (remote === '127.0.0.1' || remote === '::1' || remote === '::ffff:127.0.0.1' || remote.startsWith('127.')) return undefined;
    return { status: 403, body: { success: false, error: 'membership routes are served to loopback clients only unless the member runs with --admin-token-file' } };
  }

  /**
   * The queue when this member leads (or forwards, or is a client, which follows the leader
   * itself); otherwise the course's refusal with a leader hint when known.
   */
  private leaderQueue(): GatewayQueue | { status: number; body: Json } {
    const s = this.localStatus();
    if (this.queue !== undefined && (s.role === 'leader' || this.options.forward === true || !isMember(this.queue))) return this.queue;
    const leader = this.leaderUrl(s.leaderId);
    return { status: 200, body: leader === undefined ? { success: false } : { success: false, leader } };
  }

  /** The member's local view; a follower in term 0 until a queue is attached. */
  private localStatus(): QueueStatus {
    if (this.queue !== undefined) return this.queue.status();
    return { id: '', role: 'follower', term: 0, leaderId: undefined, commitIndex: 0, appliedIndex: 0, needsRepair: false, peers: [] };
  }

  private localMetrics(): QueueMetrics {
    if (this.queue !== undefined && isMember(this.queue)) return this.queue.metrics();
    return { elections: 0, leaderChanges: 0, publishes: 0, consumes: 0, topics: [], persist: { count: 0, secondsSum: 0, buckets: [] }, commit: { count: 0, secondsSum: 0, buckets: [] }, snapshotsTaken: 0, transport: undefined, snapshotTransfer: { offersSent: 0, chunksSent: 0, resumed: 0, chunksReceived: 0, chunksRejected: 0, delivered: 0, receivedToFile: 0 }, clients: { connected: 0, refused: 0 } };
  }

  /** The queue's messageBytesMax (a member's option; a client checks its own on publish). */
  private messageBytesMax(): number | undefined {
    return this.queue !== undefined && isMember(this.queue) ? this.queue.options.messageBytesMax : undefined;
  }

  private leaderUrl(leaderId: string | undefined): string | undefined {
    return leaderId === undefined ? undefined : this.options.httpAddresses?.[leaderId];
  }

  private callOptions(): { timeoutMs?: number } {
    return this.options.requestTimeoutMs === undefined ? {} : { timeoutMs: this.options.requestTimeoutMs };
  }

  private errorReply(error: unknown): Reply {
    // Every 413 names the library's code, whether the gateway or the queue refused the size.
    if (error instanceof BadRequest) return { status: error.status, body: { success: false, error: error.status === 413 ? `PAYLOAD_TOO_LARGE: ${error.message}` : error.message } };
    if (error instanceof RaftQueueError) {
      if (error.code === 'INVALID_TOPIC' || error.code === 'INVALID_OPTIONS') return { status: 400, body: { success: false, error: error.message } };
      if (error.code === 'PAYLOAD_TOO_LARGE') return { status: 413, body: { success: false, error: `${error.code}: ${error.message}` } };
      if (error.code === 'TOPIC_FULL') return { status: 200, body: { success: false, error: error.message } };
      if (error.code === 'INVALID_MEMBERSHIP') return { status: 409, body: { success: false, error: `${error.code}: ${error.message}` } };
      if (UNAVAILABLE.has(error.code)) return { status: 503, body: { success: false, error: `${error.code}: ${error.message}` } };
    }
    return { status: 500, body: { success: false, error: error instanceof Error ? error.message : String(error) } };
  }
}

function send(res: ServerResponse, reply: Reply, s: QueueStatus): void {
  const body = reply.body;
  const bytes = body instanceof Uint8Array ? body : undefined;
  const text = bytes !== undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  res.statusCode = reply.status;
  res.setHeader('Content-Type', reply.contentType ?? (bytes !== undefined ? 'application/octet-stream' : typeof body === 'string' ? 'text/plain; version=0.0.4; charset=utf-8' : 'application/json'));
  res.setHeader('Content-Length', bytes !== undefined ? bytes.byteLength : Buffer.byteLength(text));
  for (const [name, value] of Object.entries(reply.headers ?? {})) res.setHeader(name, value);
  // For clients that must tell "not the leader" from "empty topic" without reading the body.
  res.setHeader('X-Raftqueue-Role', s.role);
  if (s.leaderId !== undefined) res.setHeader('X-Raftqueue-Leader', s.leaderId);
  if (reply.status === 413) res.setHeader('Connection', 'close');
  res.end(bytes ?? text);
}

function notAllowed(allow: string): Reply {
  return { status: 405, body: { success: false, error: `method not allowed (allowed: ${allow})` } };
}

function decodeTopic(raw: string): string {
  let topic: string;
  try {
    topic = decodeURIComponent(raw);
  } catch (error) {
    throw new BadRequest(`malformed topic in path: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (topic.length === 0) throw new BadRequest('missing topic in path');
  return topic;
}

function noRoute(method: string, path: string): Reply {
  return { status: 404, body: { success: false, error: `no route ${method} ${path}` } };
}

/** '' or a '/'-led prefix without a trailing '/'; anything else is a programming error. */
function checkBasePath(basePath: string | undefined): string {
  if (basePath === undefined || basePath === '' || basePath === '/') return '';
  if (!/^(\/[A-Za-z0-9._~-]+)+$/.test(basePath)) {
    throw new RaftQueueError('INVALID_OPTIONS', `invalid option basePath: expected '' or a path like '/queue' (segments of letters, digits, '.', '_', '~', '-'; no trailing '/'), got ${JSON.stringify(basePath)}`);
  }
  return basePath;
}
