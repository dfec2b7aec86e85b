/**
 * The gateway's live dashboard under `/ui`: one page (ui/page.ts, ui/app.ts) fed by server-sent
 * events of the member's state, and the actions it offers operators.
 *
 * - `GET /ui`: the page; `GET /ui/app.js`, `GET /ui/style.css`: its script and style. Every /ui
 *   answer carries a strict Content-Security-Policy (UI_CSP): scripts and styles from this
 *   origin only, no inline code, no eval, no other origin to connect to.
 * - `GET /ui/state`: the state as JSON once; `GET /ui/events`: the same as an event stream,
 *   `event: state` every STREAM_INTERVAL_MS and at once on a leader or role change.
 * - `GET /ui/session`: whether this request may act (`{"admin": true}`) and why not.
 * - `POST /ui/actions/<name>` with a JSON body: one of DASHBOARD_ACTIONS. Guarded like the
 *   membership routes (the admin token, or a loopback client without one), and against other
 *   sites: the body must be `application/json` (a cross-site form cannot send it), an `Origin`
 *   must be this host, and a loopback client's `Host` must be a loopback name (no DNS rebinding).
 *
 * The state is local, like `GET /metrics`: this member's view, answered during elections too.
 * Rates and the commit latency are sampled every SAMPLE_INTERVAL_MS into a bounded history.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RaftQueueError } from '../contracts/errors.js';
import type { QueueStatus, RaftQueue } from '../raft-queue.js';
import type { TopicStats } from '../queue/index.js';
import { BadRequest, stringField } from './body.js';
import type { Json } from './body.js';
import { crossSiteRefusal } from './cross-site.js';
import { messageJson } from './dlq.js';
import type { Reply } from './messages.js';
import { isMember, notAMember } from './queue-kind.js';
import type { GatewayQueue } from './queue-kind.js';
import { UI_CSS, UI_HTML } from './ui/page.js';

/** The Content-Security-Policy of every /ui answer. */
export const UI_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** How often the history is sampled, and how many samples it keeps (5 minutes). */
export const SAMPLE_INTERVAL_MS = 1_000;
export const HISTORY_SAMPLES_MAX = 300;
/** How often a stream gets the state (and at once on a leader or role change). */
export const STREAM_INTERVAL_MS = 500;
/** Event streams open at once per gateway; one more is answered 503. */
export const STREAMS_MAX = 32;
/** A stream with more than this unsent skips pushes until it catches up... */
const STREAM_SKIP_BYTES = 1 << 20;
/** ...and is ended with more than this (a viewer that stopped reading). */
const STREAM_BEHIND_BYTES_MAX = 4 << 20;
/** Leader changes kept for the page. */
export const LEADER_EVENTS_MAX = 20;

/** What the gateway lends the dashboard. */
export interface DashboardHost {
  queue(): GatewayQueue | undefined;
  /** Why a request may not act (401/403), or undefined when it may. */
  adminRefusal(req: IncomingMessage): { status: number; body: Json } | undefined;
  /** True when requests are admitted by the admin token; false: by a loopback address. */
  hasAdminToken(): boolean;
  readJson(req: IncomingMessage): Promise<Json>;
  callOptions(): { timeoutMs?: number };
  errorReply(error: unknown): Reply;
}

/** One field of an action's form. */
interface ActionField {
  readonly name: string;
  readonly label: string;
  readonly required: boolean;
  /** What the page offers to pick from: the topics or the member ids it shows. */
  readonly choices?: 'topics' | 'members';
}

/** An operator action: its form, and what it does. */
interface ActionSpec {
  readonly label: string;
  readonly section: 'topics' | 'members';
  readonly fields: readonly ActionField[];
  /** The page asks for confirmation first. */
  readonly confirm?: boolean;
  /** Only a member can do it (not a RaftQueueClient). */
  readonly memberOnly?: boolean;
  run(queue: GatewayQueue, body: Json, call: { timeoutMs?: number }): Promise<Json>;
}

/** Messages one peek from the page lists, and characters of each one's payload it shows. */
const PEEK_LIMIT = 20;
const PEEK_PREVIEW_CHARS = 500;

function previewOf(m: Json): Json {
  const text = typeof m['message'] === 'string' ? m['message'] : JSON.stringify(m['message']);
  const cut = text.length > PEEK_PREVIEW_CHARS;
  return { ...m, message: cut ? `${text.slice(0, PEEK_PREVIEW_CHARS)}…` : m['message'], ...(cut ? { truncated: true } : {}) };
}

/**
 * The actions the page offers, in order: the page renders a form per entry and knows none of
 * them by name, so a new action is one entry here.
 */
const DASHBOARD_ACTIONS: Readonly<Record<string, ActionSpec>> = {
  createTopic: {
    label: 'Create topic',
    section: 'topics',
    fields: [{ name: 'topic', label: 'topic', required: true }],
    run: async (q, body, call) => ({ created: await q.createTopic(stringField(body, 'topic'), call) }),
  },
  publish: {
    label: 'Publish a test message',
    section: 'topics',
    fields: [
      { name: 'topic', label: 'topic', required: true, choices: 'topics' },
      { name: 'message', label: 'message (text)', required: true },
    ],
    run: async (q, body, call) => {
      const r = await q.publish(stringField(body, 'topic'), stringField(body, 'message'), call);
      return { offset: r.offset };
    },
  },
  peek: {
    label: 'Peek (read without claiming)',
    section: 'topics',
    fields: [
      { name: 'topic', label: 'topic', required: true, choices: 'topics' },
      { name: 'group', label: 'group (empty: default)', required: false },
    ],
    run: async (q, body, call) => {
      const group = optionalString(body, 'group');
      const messages = await q.peek(stringField(body, 'topic'), { ...call, ...(group !== undefined && group !== '' ? { group } : {}), limit: PEEK_LIMIT });
      // Payloads are user data: shown as text by the page, and cut to a preview here.
      return { messages: messages.map((m) => previewOf(messageJson(m))) };
    },
  },
  redrive: {
    label: 'Redrive dead letters',
    section: 'topics',
    fields: [{ name: 'topic', label: 'dead-letter topic (<topic>.dlq)', required: true, choices: 'topics' }],
    confirm: true,
    run: async (q, body, call) => ({ ...(await q.redrive(stringField(body, 'topic'), call)) }),
  },
  deleteTopic: {
    label: 'Delete topic',
    section: 'topics',
    fields: [{ name: 'topic', label: 'topic', required: true, choices: 'topics' }],
    confirm: true,
    run: async (q, body, call) => ({ deleted: await q.deleteTopic(stringField(body, 'topic'), call) }),
  },
  transferLeadership: {
    label: 'Transfer leadership',
    section: 'members',
    fields: [{ name: 'to', label: 'to (empty: the most caught-up voter)', required: false, choices: 'members' }],
    memberOnly: true,
    run: async (q, body, call) => {
      const to = optionalString(body, 'to');
      return { leaderId: await (q as RaftQueue).transferLeadership(to, call) };
    },
  },
  addMember: {
    label: 'Add member',
    section: 'members',
    fields: [
      { name: 'id', label: 'id', required: true },
      { name: 'address', label: 'raft address host:port', required: true },
    ],
    memberOnly: true,
    run: async (q, body) => {
      await (q as RaftQueue).addPeer(stringField(body, 'id'), stringField(body, 'address'));
      return {};
    },
  },
  removeMember: {
    label: 'Remove member',
    section: 'members',
    fields: [{ name: 'id', label: 'id', required: true, choices: 'members' }],
    confirm: true,
    memberOnly: true,
    run: async (q, body) => {
      await (q as RaftQueue).removePeer(stringField(body, 'id'));
      return {};
    },
  },
};

/** One point of the charts. */
interface Sample {
  readonly atMs: number;
  /** Messages published and finished (acked, popped, dead-lettered) per second, all topics. */
  readonly publishRate: number;
  readonly consumeRate: number;
  /** Mean commit latency over the interval (metrics().commit: the leader's proposal of an entry to this member applying it); null without entries. */
  readonly commitMs: number | null;
}

/** What a sample remembers to compute the next one's rates. */
interface Counters {
  readonly atMs: number;
  readonly published: ReadonlyMap<string, number>;
  /** topic -> group -> deliveries finished (published - waiting - in flight). */
  readonly finished: ReadonlyMap<string, ReadonlyMap<string, number>>;
  readonly commitCount: number;
  readonly commitSeconds: number;
}

/** The dashboard of one gateway. */
export class Dashboard {
  private readonly history: Sample[] = [];
  private readonly leaderEvents: { atMs: number; leaderId: string | null; term: number }[] = [];
  /** Per-topic rates of the last sample. */
  private rates = new Map<string, { publish: number; consume: number }>();
  private last: Counters | undefined;
  private readonly streams = new Set<ServerResponse>();
  private sampler: NodeJS.Timeout | undefined;
  private pusher: NodeJS.Timeout | undefined;
  private detach: (() => void) | undefined;
  private script: Promise<Buffer> | undefined;
  private closed = false;

  constructor(private readonly host: DashboardHost) {}

  /** Starts sampling `queue` and listening for its leader changes. */
  attach(queue: GatewayQueue): void {
    if (this.closed || this.detach !== undefined) return;
    const onLeader = (change: { leaderId: string | undefined; term: number }): void => {
      this.leaderEvents.unshift({ atMs: Date.now(), leaderId: change.leaderId ?? null, term: change.term });
      this.leaderEvents.length = Math.min(this.leaderEvents.length, LEADER_EVENTS_MAX);
      this.pushSoon();
    };
    const onRole = (): void => this.pushSoon();
    // Both classes emit these events with these payloads; the union's overloads do not unify.
    const emitter = queue as unknown as { on(event: string, fn: (arg: never) => void): void; off(event: string, fn: (arg: never) => void): void };
    // The leader it knows already (a gateway attached after the first election).
    const s = queue.status();
    if (s.leaderId !== undefined) onLeader({ leaderId: s.leaderId, term: s.term });
    emitter.on('leaderChanged', onLeader);
    emitter.on('roleChanged', onRole);
    this.detach = () => {
      emitter.off('leaderChanged', onLeader);
      emitter.off('roleChanged', onRole);
    };
    this.sampler = setInterval(() => this.sample(), SAMPLE_INTERVAL_MS);
    this.sampler.unref();
  }

  /** Ends every stream and stops sampling. */
  close(): void {
    this.closed = true;
    this.detach?.();
    if (this.sampler) clearInterval(this.sampler);
    if (this.pusher) clearInterval(this.pusher);
    this.sampler = undefined;
    this.pusher = undefined;
    for (const res of this.streams) res.end();
    this.streams.clear();
  }

  /** Serves `GET /ui/events` (true) or leaves the request to `route` (false). */
  stream(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    if (path !== '/ui/events' || req.method !== 'GET') return false;
    if (this.closed || this.streams.size >= STREAMS_MAX) {
      const body = JSON.stringify({ success: false, code: 'NO_CAPACITY', error: `NO_CAPACITY: ${STREAMS_MAX} dashboard streams are open on this member; retry later` });
      res.writeHead(503, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Retry-After': '5', ...securityHeaders() });
      res.end(body);
      return true;
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no', ...securityHeaders() });
    // The browser reconnects 1 s after a cut (a member restarting, a proxy timeout).
    res.write('retry: 1000\n\n');
    this.streams.add(res);
    res.on('close', () => {
      this.streams.delete(res);
      if (this.streams.size === 0 && this.pusher) {
        clearInterval(this.pusher);
        this.pusher = undefined;
      }
    });
    this.write(res, this.state());
    if (this.pusher === undefined) {
      this.pusher = setInterval(() => this.push(), STREAM_INTERVAL_MS);
      this.pusher.unref();
    }
    return true;
  }

  /** Answers the other /ui routes; undefined for a path outside /ui. */
  route(req: IncomingMessage, method: string, path: string): Promise<Reply> | undefined {
    if (path !== '/ui' && !path.startsWith('/ui/')) return undefined;
    return this.dispatch(req, method, path).then(withSecurityHeaders, (error: unknown) => withSecurityHeaders(this.actionError(error)));
  }

  private async dispatch(req: IncomingMessage, method: string, path: string): Promise<Reply> {
    if (path.startsWith('/ui/actions/')) {
      if (method !== 'POST') return uiError(405, 'METHOD_NOT_ALLOWED', 'method not allowed (allowed: POST)');
      return this.act(req, path.slice('/ui/actions/'.length));
    }
    if (method !== 'GET') return uiError(405, 'METHOD_NOT_ALLOWED', 'method not allowed (allowed: GET)');
    switch (path) {
      case '/ui':
        return { status: 200, body: UI_HTML, contentType: 'text/html; charset=utf-8', headers: { 'Cache-Control': 'no-cache' } };
      case '/ui/':
        // The page's links are relative to '/ui' (so a basePath works): one canonical address.
        return { status: 308, body: { success: false, error: 'the dashboard is at /ui' }, headers: { Location: '../ui' } };
      case '/ui/app.js':
        return { status: 200, body: await this.appScript(), contentType: 'text/javascript; charset=utf-8', headers: { 'Cache-Control': 'no-cache' } };
      case '/ui/style.css':
        return { status: 200, body: UI_CSS, contentType: 'text/css; charset=utf-8', headers: { 'Cache-Control': 'no-cache' } };
      case '/ui/state':
        return { status: 200, body: this.state(), headers: { 'Cache-Control': 'no-store' } };
      case '/ui/session':
        return { status: 200, body: this.session(req), headers: { 'Cache-Control': 'no-store' } };
      default:
        return uiError(404, 'NO_ROUTE', `no route GET ${path} (the dashboard is GET /ui)`);
    }
  }

  /** The page's script: compiled from ui/app.ts next to this module, read once. */
  private appScript(): Promise<Buffer> {
    this.script ??= readFile(new URL('./ui/app.js', import.meta.url)).then((js) =>
      // The source map is not served: drop its reference.
      Buffer.from(js.toString('utf8').replace(/\n\/\/# sourceMappingURL=.*\s*$/, '\n')),
    );
    return this.script;
  }

  private session(req: IncomingMessage): Json {
    const refused = this.refusal(req);
    const queue = this.host.queue();
    return {
      success: true,
      admin: refused === undefined,
      ...(refused === undefined ? {} : { why: refused.body['error'] ?? null }),
      member: queue === undefined || isMember(queue),
    };
  }

  /** Why `req` may not act (the gateway's guard, then the cross-site checks); undefined if it may. */
  private refusal(req: IncomingMessage): { status: number; body: Json } | undefined {
    const refused = this.host.adminRefusal(req);
    if (refused !== undefined) {
      const text = String(refused.body['error'] ?? '').replace(/^membership routes/, 'dashboard actions and membership routes');
      return { status: refused.status, body: { success: false, code: refused.status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN', error: text } };
    }
    const crossSite = crossSiteRefusal(req, this.host.hasAdminToken());
    if (crossSite !== undefined) return { status: crossSite.status, body: { ...crossSite.body, error: String(crossSite.body['error']).replace('changes need', 'actions need') } };
    return undefined;
  }

  private async act(req: IncomingMessage, rawName: string): Promise<Reply> {
    const refused = this.refusal(req);
    if (refused !== undefined) {
      req.resume();
      return refused;
    }
    let name: string;
    try {
      name = decodeURIComponent(rawName);
    } catch (error) {
      void error;
      req.resume();
      return uiError(400, 'BAD_REQUEST', 'malformed action name in path');
    }
    const spec = Object.hasOwn(DASHBOARD_ACTIONS, name) ? DASHBOARD_ACTIONS[name] : undefined;
    if (spec === undefined) {
      req.resume();
      return uiError(404, 'UNKNOWN_ACTION', `no dashboard action ${JSON.stringify(name)} (actions: ${Object.keys(DASHBOARD_ACTIONS).join(', ')})`);
    }
    const type = req.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json') {
      req.resume();
      return uiError(415, 'UNSUPPORTED_MEDIA_TYPE', 'dashboard actions take a JSON body with Content-Type: application/json');
    }
    const body = await this.host.readJson(req);
    const allowed = spec.fields.map((f) => f.name);
    const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
    if (unknown.length > 0) return uiError(400, 'BAD_REQUEST', `unknown field "${unknown[0] as string}" (fields: ${allowed.join(', ') || 'none'})`);
    const queue = this.host.queue();
    if (queue === undefined) return uiError(503, 'NO_LEADER', 'NO_LEADER: the member is still starting');
    if (spec.memberOnly === true && !isMember(queue)) return notAMember(`the ${name} action`);
    const result = await spec.run(queue, body, this.host.callOptions());
    this.pushSoon();
    return { status: 200, body: { success: true, action: name, ...result } };
  }

  /** The gateway's error answer, with a `code` the page can show. */
  private actionError(error: unknown): Reply {
    const reply = this.host.errorReply(error);
    if (typeof reply.body !== 'object' || reply.body instanceof Uint8Array) return reply;
    const code = error instanceof RaftQueueError ? error.code : error instanceof BadRequest ? (error.status === 413 ? 'PAYLOAD_TOO_LARGE' : 'BAD_REQUEST') : 'INTERNAL';
    // The course routes answer a missing topic and TOPIC_FULL with 200 and success false, or
    // let them through as 500: an action failed, and says how.
    const status = code === 'TOPIC_NOT_FOUND' ? 404 : reply.status === 200 ? 409 : reply.status;
    return { ...reply, status, body: { ...reply.body, success: false, code } };
  }

  // ---- state -----------------------------------------------------------------------------------

  /** The state the page shows (local to this member; see the file comment). */
  state(): Json {
    const queue = this.host.queue();
    const actions = Object.entries(DASHBOARD_ACTIONS)
      .filter(([, spec]) => queue === undefined || spec.memberOnly !== true || isMember(queue))
      .map(([name, spec]) => ({ name, label: spec.label, section: spec.section, fields: spec.fields, confirm: spec.confirm === true }));
    const base = { success: true, atMs: Date.now(), actions, history: this.history, recentLeaders: this.leaderEvents };
    if (queue === undefined) return { ...base, kind: 'starting', self: selfOf(undefined), members: [], topics: [], elections: null, leaderChanges: null };
    const s = queue.status();
    if (!isMember(queue)) {
      const members = queue.members().map((m) => ({ id: m.id, address: m.address ?? null, role: m.role, isLeader: m.isLeader, self: m.id === s.id, reachable: null, why: null, match: null, lag: null, needsRepair: null }));
      return { ...base, kind: 'client', self: selfOf(s), members, topics: [], elections: null, leaderChanges: null };
    }
    const m = queue.metrics();
    return { ...base, kind: 'member', self: selfOf(s), members: membersOf(queue, s), topics: this.topicsOf(queue), elections: m.elections, leaderChanges: m.leaderChanges };
  }

  private topicsOf(queue: RaftQueue): Json[] {
    const now = Date.now();
    const stats = queue.topicStats();
    const dlqOf = new Map(stats.filter((t) => t.deadLetterOf !== null).map((t) => [t.deadLetterOf as string, t.topic]));
    return stats.map((t) => {
      const d = t.groups.find((g) => g.group === 'default');
      const r = this.rates.get(t.topic);
      return {
        topic: t.topic,
        depth: d?.waiting ?? t.messages,
        messages: t.messages,
        bytes: t.bytes,
        published: t.published,
        publishRate: r?.publish ?? 0,
        consumeRate: r?.consume ?? 0,
        deadLetterOf: t.deadLetterOf,
        deadLetterTopic: dlqOf.get(t.topic) ?? null,
        groups: t.groups.map((g) => ({
          group: g.group,
          waiting: g.waiting,
          inFlight: g.inFlight,
          redeliveries: g.redeliveries,
          oldestWaitingAgeMs: g.oldestWaitingPublishedAt === null ? null : Math.max(0, now - g.oldestWaitingPublishedAt),
        })),
      };
    });
  }

  /** Records one history point and the per-topic rates. */
  private sample(): void {
    const queue = this.host.queue();
    if (queue === undefined || !isMember(queue)) return;
    const now = Date.now();
    const stats = queue.topicStats();
    const commit = queue.metrics().commit;
    const counters = countersOf(now, stats, commit.count, commit.secondsSum);
    const prev = this.last;
    this.last = counters;
    if (prev === undefined) return;
    const seconds = Math.max(0.001, (now - prev.atMs) / 1000);
    const rates = new Map<string, { publish: number; consume: number }>();
    let publishTotal = 0;
    let consumeTotal = 0;
    for (const [topic, published] of counters.published) {
      // A topic deleted and created again starts over: no negative rates.
      const p = Math.max(0, published - (prev.published.get(topic) ?? published));
      let c = 0;
      const before = prev.finished.get(topic);
      for (const [group, finished] of counters.finished.get(topic) ?? []) {
        const was = before?.get(group);
        if (was !== undefined) c += Math.max(0, finished - was);
      }
      rates.set(topic, { publish: round(p / seconds), consume: round(c / seconds) });
      publishTotal += p;
      consumeTotal += c;
    }
    this.rates = rates;
    const n = counters.commitCount - prev.commitCount;
    const commitMs = n > 0 ? round(((counters.commitSeconds - prev.commitSeconds) / n) * 1000) : null;
    this.history.push({ atMs: now, publishRate: round(publishTotal / seconds), consumeRate: round(consumeTotal / seconds), commitMs });
    if (this.history.length > HISTORY_SAMPLES_MAX) this.history.splice(0, this.history.length - HISTORY_SAMPLES_MAX);
  }

  private push(): void {
    if (this.streams.size === 0) return;
    const data = `event: state\ndata: ${JSON.stringify(this.state())}\n\n`;
    for (const res of this.streams) {
      // A viewer that does not read: skip its pushes while a few are still unsent (each is the
      // whole state; the next one replaces them), and end its stream once far behind, so a
      // stalled client cannot grow the member's memory. (Found in review: 7 MB after 10 s.)
      const behind = res.writableLength;
      if (behind > STREAM_BEHIND_BYTES_MAX) {
        res.destroy();
        continue;
      }
      if (behind > STREAM_SKIP_BYTES) continue;
      res.write(data);
    }
  }

  /** A push on the next turn (a leader change often comes with a role change: one push). */
  private pushSoon(): void {
    if (this.streams.size === 0) return;
    setImmediate(() => this.push());
  }

  private write(res: ServerResponse, state: Json): void {
    res.write(`event: state\ndata: ${JSON.stringify(state)}\n\n`);
  }
}

function countersOf(atMs: number, stats: readonly TopicStats[], commitCount: number, commitSeconds: number): Counters {
  const published = new Map<string, number>();
  const finished = new Map<string, Map<string, number>>();
  for (const t of stats) {
    published.set(t.topic, t.published);
    finished.set(t.topic, new Map(t.groups.map((g) => [g.group, t.published - g.waiting - g.inFlight])));
  }
  return { atMs, published, finished, commitCount, commitSeconds };
}

function selfOf(s: QueueStatus | undefined): Json {
  return {
    id: s?.id ?? '',
    role: s?.role ?? 'follower',
    term: s?.term ?? 0,
    leaderId: s?.leaderId ?? null,
    commitIndex: s?.commitIndex ?? 0,
    appliedIndex: s?.appliedIndex ?? 0,
    needsRepair: s?.needsRepair ?? false,
  };
}

/** Members with their reachability from this member (its transport's view) and progress. */
function membersOf(queue: RaftQueue, s: QueueStatus): Json[] {
  const links = new Map(s.peers.map((p) => [p.id, p.link]));
  return queue.members().map((m) => {
    const self = m.id === s.id;
    const link = links.get(m.id);
    const reachable = self ? true : link === undefined || link.state === 'connecting' ? null : link.state === 'connected';
    const why = self || link === undefined || link.state === 'connected' ? null : [link.state, link.reason, link.detail].filter((x) => x !== undefined).join(': ');
    return {
      id: m.id,
      address: m.address ?? null,
      role: m.role,
      isLeader: m.isLeader,
      self,
      reachable,
      why,
      lastHeardAgoMs: link?.lastHeardAgoMs ?? null,
      match: m.match ?? null,
      lag: m.lag ?? null,
      // Known for this member only: another member's log health is not reported to it.
      needsRepair: self ? s.needsRepair : null,
    };
  });
}

function optionalString(body: Json, name: string): string | undefined {
  const v = body[name];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new BadRequest(`field "${name}" must be a string`);
  return v;
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

function uiError(status: number, code: string, error: string): Reply {
  return { status, body: { success: false, code, error } };
}

function securityHeaders(): Record<string, string> {
  return { 'Content-Security-Policy': UI_CSP, 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer', 'X-Frame-Options': 'DENY' };
}

function withSecurityHeaders(reply: Reply): Reply {
  return { ...reply, headers: { ...securityHeaders(), ...reply.headers } };
}
