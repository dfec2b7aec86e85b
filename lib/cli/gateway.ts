/**
 * The HTTP gateway: the course design's REST routes over a RaftQueue member (node:http).
 *
 * Queue routes are served only by the leader, with exactly the course's JSON bodies; a member
 * that is not the leader answers them with `{"success": false}` plus a `leader` hint (the
 * leader's HTTP address) when it knows one, unless it runs with `forward`: then it serves them
 * through its RaftQueue, which forwards to the leader. `GET /status`, `GET /` and `GET /metrics`
 * are served from local state on every member, never through Raft, so they answer during
 * elections too. `PUT /message` also takes a publishId and binary payloads (gateway-messages.ts).
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RaftQueueError } from '../contracts/errors.js';
import type { ErrorCode } from '../contracts/errors.js';
import type { QueueMetrics, QueueStatus, RaftQueue } from '../raft-queue.js';
import { GatewayGroups } from './gateway-groups.js';
import { BadRequest, readJson, stringField } from './gateway-body.js';
import type { Json } from './gateway-body.js';
import { routeMembers } from './gateway-members.js';
import { routeDlq } from './gateway-dlq.js';
import { popReply, publishReply, readPublish } from './gateway-messages.js';
import type { PublishRequest, Reply } from './gateway-messages.js';
import { formatMetrics } from './metrics.js';

/** Largest request body accepted (bytes); a larger one is answered with 413. */
export const GATEWAY_BODY_BYTES_MAX = 1 << 20;

export interface GatewayOptions {
  /** Member id -> the base URL of its gateway ('http://host:port'), for leader hints. */
  readonly httpAddresses?: Readonly<Record<string, string>>;
  /** Largest request body in bytes (default GATEWAY_BODY_BYTES_MAX); over it: 413. */
  readonly bodyBytesMax?: number;
  /**
   * Guards the membership routes (`/members`, `/leader`): with a token, a request must carry
   * `Authorization: Bearer <token>`; without one, only loopback clients may use them.
   */
  readonly adminToken?: string;
  /** Deadline of each queue call the gateway makes (default the queue's requestTimeoutMs). */
  readonly requestTimeoutMs?: number;
  /**
   * Serve the queue and group routes on every member, through the RaftQueue (which forwards to
   * the leader), instead of answering with the leader hint. Default false: the course design,
   * where only the leader serves them.
   */
  readonly forward?: boolean;
}

/** Library errors that mean "unavailable, try again" rather than "you asked wrongly". */
const UNAVAILABLE: ReadonlySet<ErrorCode> = new Set(['NO_LEADER', 'TIMEOUT', 'NO_CAPACITY', 'CLOSED', 'STORAGE_FAILED', 'NEEDS_REPAIR', 'TRANSPORT_FAILED']);

/**
 * Serves the course REST routes, `/status`, `/` and `/metrics` for one RaftQueue member.
 *
 * The queue may be given later with `attach`: a command-line member listens at once (before
 * the library is even loaded) and answers `/status` as a follower in term 0 until then.
 */
export class Gateway {
  readonly server: Server;
  private readonly bodyBytesMax: number;
  private queue: RaftQueue | undefined;
  /** The subscriber-group routes under /groups/ (gateway-groups.ts). */
  private readonly groups = new GatewayGroups({ leaderQueue: () => this.leaderQueue() });

  constructor(queue: RaftQueue | undefined, private readonly options: GatewayOptions = {}) {
    this.queue = queue;
    this.bodyBytesMax = options.bodyBytesMax ?? GATEWAY_BODY_BYTES_MAX;
    this.server = createServer((req, res) => this.handle(req, res));
    // Keep-alive connections must not hold a stopping node for seconds.
    this.server.keepAliveTimeout = 2_000;
  }

  /** Serves `queue` from now on (once; a gateway serves one member). */
  attach(queue: RaftQueue): void {
    if (this.queue !== undefined && this.queue !== queue) throw new Error('the gateway already serves a queue');
    this.queue = queue;
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.server.once('error', onError);
      this.server.listen({ host, port, exclusive: true }, () => {
        this.server.off('error', onError);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Stops accepting, closes idle connections at once and busy ones after `graceMs`. */
  close(graceMs = 300): Promise<void> {
    this.groups.close();
    return new Promise((resolve) => {
      const force = setTimeout(() => this.server.closeAllConnections(), graceMs);
      this.server.close(() => {
        clearTimeout(force);
        resolve();
      });
      this.server.closeIdleConnections();
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.route(req).then(
      (reply) => send(res, reply, this.localStatus()),
      (error: unknown) => send(res, this.errorReply(error), this.localStatus()),
    );
  }

  private async route(req: IncomingMessage): Promise<Reply> {
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0] as string;
    if (path === '/status') return method === 'GET' ? this.status() : notAllowed('GET');
    if (path === '/') return method === 'GET' ? this.index() : notAllowed('GET');
    if (path === '/metrics') return method === 'GET' ? { status: 200, body: formatMetrics(this.localStatus(), this.localMetrics()) } : notAllowed('GET');
    if (path === '/topic') {
      if (method === 'PUT') return this.createTopic(await readJson(req, this.bodyBytesMax));
      if (method === 'GET') return this.listTopics();
      return notAllowed('GET, PUT');
    }
    if (path === '/message') return method === 'PUT' ? this.publish(await readPublish(req, { bodyBytesMax: this.bodyBytesMax, messageBytesMax: this.queue?.options.messageBytesMax })) : notAllowed('PUT');
    if (path.startsWith('/message/')) return method === 'GET' ? this.pop(req, decodeTopic(path.slice('/message/'.length))) : notAllowed('GET');
    const admin = (): { status: number; body: Json } | undefined => this.adminRefusal(req);
    const membersReply = routeMembers(this.queue, method, path, () => readJson(req, this.bodyBytesMax), admin);
    if (membersReply !== undefined) return membersReply;
    const dlqReply = routeDlq(this.queue, method, path, (req.url ?? '').split('?')[1] ?? '', () => readJson(req, this.bodyBytesMax), admin);
    if (dlqReply !== undefined) return dlqReply;
    const groupReply = this.groups.route(method, path, () => readJson(req, this.bodyBytesMax));
    if (groupReply !== undefined) return groupReply;
    return { status: 404, body: { success: false, error: `no route ${method} ${path}` } };
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
        routes: ['PUT /topic', 'GET /topic', 'PUT /message', 'GET /message/<topic>', 'GET /status', 'GET /metrics', 'GET /', 'GET /members', 'POST /members', 'DELETE /members/<id>', 'POST /leader', 'GET /dlq/<topic>', 'POST /dlq/<topic>/redrive', 'DELETE /dlq/<topic>', 'GET /peek/<topic>'],
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

  /** Why a membership request is refused (401/403), or undefined when it may proceed. */
  private adminRefusal(req: IncomingMessage): { status: number; body: Json } | undefined {
    const token = this.options.adminToken;
    if (token !== undefined) {
      const given = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const a = Buffer.from(given ?? '');
      const b = Buffer.from(token);
      if (given === undefined || a.length !== b.length || !timingSafeEqual(a, b)) {
        return { status: 401, body: { success: false, error: 'membership routes need Authorization: Bearer <the admin token>' } };
      }
      return undefined;
    }
    const remote = req.socket.remoteAddress ?? '';
    if (remote === '127.0.0.1' || remote === '::1' || remote === '::ffff:127.0.0.1' || remote.startsWith('127.')) return undefined;
    return { status: 403, body: { success: false, error: 'membership routes are served to loopback clients only unless the member runs with --admin-token-file' } };
  }

  /**
   * The queue when this member leads (or forwards); otherwise the course's refusal with a leader
   * hint when known.
   */
  private leaderQueue(): RaftQueue | { status: number; body: Json } {
    const s = this.localStatus();
    if (this.queue !== undefined && (s.role === 'leader' || this.options.forward === true)) return this.queue;
    const leader = this.leaderUrl(s.leaderId);
    return { status: 200, body: leader === undefined ? { success: false } : { success: false, leader } };
  }

  /** The member's local view; a follower in term 0 until a queue is attached. */
  private localStatus(): QueueStatus {
    if (this.queue !== undefined) return this.queue.status();
    return { id: '', role: 'follower', term: 0, leaderId: undefined, commitIndex: 0, appliedIndex: 0, needsRepair: false, peers: [] };
  }

  private localMetrics(): QueueMetrics {
    if (this.queue !== undefined) return this.queue.metrics();
    return { elections: 0, leaderChanges: 0, publishes: 0, consumes: 0, topics: [], persist: { count: 0, secondsSum: 0, buckets: [] }, snapshotsTaken: 0, transport: undefined, snapshotTransfer: { offersSent: 0, chunksSent: 0, resumed: 0, chunksReceived: 0, chunksRejected: 0, delivered: 0, receivedToFile: 0 }, clients: { connected: 0, refused: 0 } };
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
  res.setHeader('Content-Type', bytes !== undefined ? 'application/octet-stream' : typeof body === 'string' ? 'text/plain; version=0.0.4; charset=utf-8' : 'application/json');
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
