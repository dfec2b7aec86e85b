/**
 * ClientServer: the member's side of client processes (lib/clients/protocol.ts).
 *
 * The member is a relay with bookkeeping: it checks that a client's records are of the client's
 * own session, hands them to its node (which puts them in the leader's next entry, or passes them
 * to the leader), and sends the client the results of its records as this member applies them.
 * It keeps no request of its own for a client: what is lost (a link, a leader, a snapshot
 * installed) the client re-sends, and the replicated session table answers a copy with the
 * remembered result.
 *
 * Bounded per client: records relayed and not yet answered (`requestsMax`; more are refused with
 * `noCapacity`), reads in progress, watched topics, registrations per link; the bytes queued to a
 * client are bounded by the transport (a client that does not read is disconnected).
 */
import type { MemberInfo, QueueStatus } from '../api-types.js';
import type { ClientHandlers, ClientLink } from '../contracts/transport.js';
import { SESSION_EXPIRED } from '../node/applier.js';
import { RECORDS_PER_BLOCK_MAX, REGISTER_SESSION, checkBlock, forEachRecord } from '../node/envelope.js';
import type { BlockAnswer, ClientSink, NodeEvent, RaftNode } from '../node/raft-node.js';
import type { QueueEvent, QueueQuery } from '../queue/index.js';
import { ResultFlag, decodeToMember, encodeToClient } from './protocol.js';
import type { ToClient, ToMember } from './protocol.js';

export interface ClientServerHost {
  readonly node: RaftNode<QueueEvent>;
  readonly memberId: string;
  /** The member's status and members, as `RaftQueue.status()` / `members()` give them. */
  status(): QueueStatus;
  members(): MemberInfo[];
  /** Records relayed for one client and not yet answered; more are refused (noCapacity). */
  readonly requestsMax: number;
  readonly bodyBytesMax: number;
  log(line: string): void;
}

/** Reads one client may have in progress at once. */
const READS_MAX = 1024;
/** Sessions one link may register: a client needs one, and one more when the cluster forgot it. */
const REGISTRATIONS_PER_LINK_MAX = 16;

interface Client {
  readonly link: ClientLink;
  session: number | undefined;
  /** Seqs relayed and not yet answered (insertion order is about seq order). */
  readonly outstanding: Set<number>;
  /** Registrations this link relayed, by nonce (until applied). */
  readonly registering: Set<number>;
  registrations: number;
  reads: number;
  watched: Set<string>;
  deadLetters: boolean;
  /** Results and wake-ups gathered in this turn, sent together at its end. */
  results: [number, number, number, unknown][];
  wakes: Set<string> | undefined;
  queued: boolean;
}

export class ClientServer implements ClientHandlers, ClientSink {
  private readonly clients = new Map<ClientLink, Client>();
  private readonly bySession = new Map<number, Client>();
  /** Registrations in flight: nonce -> the link that relayed it and the registering id bytes. */
  private readonly byNonce = new Map<number, { readonly c: Client; readonly who: Uint8Array }>();
  private readonly watchers = new Map<string, Set<Client>>();
  private dirty: Client[] = [];
  private flushQueued = false;
  private lastView: ToClient | undefined;
  /** Client bodies refused (malformed, or records of another session). */
  rejected = 0;

  constructor(private readonly host: ClientServerHost) {}

  get connected(): number {
    return this.clients.size;
  }

  // ---------------------------------------------------------------------------------------------
  // Links (ClientHandlers)

  onOpen(link: ClientLink): void {
    const c: Client = {
      link,
      session: undefined,
      outstanding: new Set(),
      registering: new Set(),
      registrations: 0,
      reads: 0,
      watched: new Set(),
      deadLetters: false,
      results: [],
      wakes: undefined,
      queued: false,
    };
    this.clients.set(link, c);
    link.send(encodeToClient(this.view()));
  }

  onClose(link: ClientLink): void {
    const c = this.clients.get(link);
    if (c === undefined) return;
    this.clients.delete(link);
    if (c.session !== undefined && this.bySession.get(c.session) === c) this.bySession.delete(c.session);
    for (const nonce of c.registering) if (this.byNonce.get(nonce)?.c === c) this.byNonce.delete(nonce);
    this.unwatch(c);
  }

  onFrame(link: ClientLink, bytes: Uint8Array): void {
    const c = this.clients.get(link);
    if (c === undefined) return;
    const body = decodeToMember(bytes);
    if (typeof body === 'string') {
      this.refuse(c, `a malformed request (${body})`);
      return;
    }
    this.handle(c, body);
  }

  private handle(c: Client, body: ToMember): void {
    switch (body.k) {
      case 'attach':
        this.attach(c, body.session);
        return;
      case 'propose':
        this.propose(c, body.b, body.recs);
        return;
      case 'read':
        this.read(c, body.id, body.t, body.q as QueueQuery);
        return;
      case 'info':
        c.link.send(encodeToClient({ k: 'info', id: body.id, status: { ...this.host.status() }, members: this.host.members().map((m) => ({ ...m })) }));
        return;
      case 'watch':
        this.unwatch(c);
        c.watched = new Set(body.topics);
        c.deadLetters = body.deadLetters;
        for (const t of c.watched) {
          let set = this.watchers.get(t);
          if (set === undefined) this.watchers.set(t, (set = new Set()));
          set.add(c);
        }
        return;
    }
  }

  private attach(c: Client, session: number): void {
    if (c.session !== undefined && this.bySession.get(c.session) === c) this.bySession.delete(c.session);
    // Results of the session being left go out under its id first.
    if (c.results.length > 0 && c.session !== undefined && !c.link.closed) c.link.send(encodeToClient({ k: 'results', session: c.session, rs: c.results }));
    c.results = [];
    c.session = session;
    c.outstanding.clear();
    // The newest link of a session wins: an older one is a connection the client gave up on.
    this.bySession.set(session, c);
  }

  private propose(c: Client, b: number, recs: Uint8Array): void {
    const count = checkBlock(recs, RECORDS_PER_BLOCK_MAX, this.host.bodyBytesMax);
    if (typeof count === 'string') {
      this.refuse(c, `a malformed block of records (${count})`);
      return;
    }
    // Every record must be the client's own: of its session, or a registration (bounded).
    let problem: string | undefined;
    const nonces: { nonce: number; who: Uint8Array }[] = [];
    let floor = 0;
    forEachRecord(recs, (session, seq, f, start, end) => {
      if (session === REGISTER_SESSION) {
        nonces.push({ nonce: seq, who: recs.slice(start, end) });
        return true;
      }
      if (session !== c.session) {
        problem = c.session === undefined ? 'records before the session is attached' : `a record of session ${session}, not this client's ${c.session}`;
        return false;
      }
      if (f > floor) floor = f;
      return true;
    });
    // A registration re-sent under the same nonce is the same one; only new nonces count.
    const fresh = nonces.filter((r) => !c.registering.has(r.nonce));
    if (problem === undefined && c.registrations + fresh.length > REGISTRATIONS_PER_LINK_MAX) problem = `more than ${REGISTRATIONS_PER_LINK_MAX} session registrations on one connection`;
    if (problem !== undefined) {
      this.refuse(c, problem);
      return;
    }
    // Answered requests below the client's floor are settled for it: forget them.
    for (const seq of c.outstanding) {
      if (seq >= floor) break;
      c.outstanding.delete(seq);
    }
    const seqs: number[] = [];
    forEachRecord(recs, (session, seq) => {
      if (session !== REGISTER_SESSION && !c.outstanding.has(seq)) seqs.push(seq);
      return true;
    });
    const answer: BlockAnswer = (reply) => {
      if (!c.link.closed) c.link.send(encodeToClient(reply));
    };
    if (c.outstanding.size + seqs.length > this.host.requestsMax) {
      answer({ k: 'refused', b, reason: 'noCapacity', leaderId: null });
      return;
    }
    for (const seq of seqs) c.outstanding.add(seq);
    for (const r of fresh) {
      c.registrations++;
      c.registering.add(r.nonce);
      this.byNonce.set(r.nonce, { c, who: r.who });
    }
    const bad = this.host.node.relay(answer, b, recs);
    if (bad !== undefined) this.refuse(c, `a block the node refused (${bad})`);
  }

  private read(c: Client, id: number, timeoutMs: number, query: QueueQuery): void {
    if (c.reads >= READS_MAX) {
      c.link.send(encodeToClient({ k: 'readErr', id, code: 'NO_CAPACITY', message: `${READS_MAX} reads are already in progress for this client; retry later` }));
      return;
    }
    c.reads++;
    this.host.node.read(query, timeoutMs, (error, value) => {
      c.reads--;
      if (c.link.closed) return;
      const reply: ToClient = error ? { k: 'readErr', id, code: error.code, message: error.message } : { k: 'readOk', id, value };
      c.link.send(encodeToClient(reply));
    });
  }

  /** Tells the client why and closes its link (it reconnects; nothing of it was applied). */
  private refuse(c: Client, why: string): void {
    this.rejected++;
    this.host.log(`client ${c.link.clientId} at ${c.link.remoteAddress}: ${why}; closing its connection`);
    c.link.send(encodeToClient({ k: 'error', code: 'INVALID_OPTIONS', message: `member ${this.host.memberId} refused ${why}` }));
    c.link.close('protocol');
  }

  private unwatch(c: Client): void {
    for (const t of c.watched) {
      const set = this.watchers.get(t);
      set?.delete(c);
      if (set?.size === 0) this.watchers.delete(t);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // What the node applied (ClientSink)

  onRecord(session: number, seq: number, index: number, result: unknown, duplicate: boolean): void {
    const c = this.bySession.get(session);
    if (c === undefined || result === undefined) return; // Not a client's, or stale (settled).
    c.outstanding.delete(seq);
    if (result === SESSION_EXPIRED) c.results.push([seq, index, ResultFlag.Expired | ResultFlag.Duplicate, null]);
    else c.results.push([seq, index, duplicate ? ResultFlag.Duplicate : 0, result]);
    this.markDirty(c);
  }

  onRegistered(nonce: number, who: Uint8Array, session: number): void {
    const r = this.byNonce.get(nonce);
    if (r === undefined || !sameBytes(r.who, who)) return;
    const c = r.c;
    this.byNonce.delete(nonce);
    c.registering.delete(nonce);
    if (c.link.closed) return;
    // A registration re-sent before its answer came may be applied twice: the client keeps the
    // first (as the member does here), and says so with `attach` in any case.
    if (c.session === undefined) this.attach(c, session);
    c.link.send(encodeToClient({ k: 'registered', nonce, session }));
  }

  afterRestore(): void {
    for (const c of this.clients.values()) {
      c.outstanding.clear();
      c.link.send(encodeToClient({ k: 'resend' }));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Events of the member (from the facade)

  onNodeEvent(e: NodeEvent<QueueEvent>): void {
    if (e.type === 'softState' || e.type === 'config') {
      const view = this.view();
      if (this.lastView !== undefined && sameView(view, this.lastView)) return;
      this.lastView = view;
      const bytes = encodeToClient(view);
      for (const c of this.clients.values()) c.link.send(bytes);
      return;
    }
    if (e.type !== 'machine') return;
    const q = e.event;
    if (q.type === 'published' || q.type === 'available') {
      const set = this.watchers.get(q.topic);
      if (set === undefined) return;
      for (const c of set) {
        (c.wakes ??= new Set()).add(q.topic);
        this.markDirty(c);
      }
      return;
    }
    if (q.type === 'deadLettered') {
      const { type: _type, ...event } = q;
      let bytes: Uint8Array | undefined;
      for (const c of this.clients.values()) {
        if (!c.deadLetters) continue;
        bytes ??= encodeToClient({ k: 'deadLettered', e: event });
        c.link.send(bytes);
      }
    }
  }

  private view(): Extract<ToClient, { k: 'view' }> {
    const s = this.host.node.status();
    const conf = s.config.conf;
    const members = [
      ...conf.voters.map((id) => ({ id, address: conf.addresses?.[id] ?? '', role: 'voter' as const })),
      ...conf.learners.map((id) => ({ id, address: conf.addresses?.[id] ?? '', role: 'learner' as const })),
    ];
    const role = s.role === 'leader' || s.role === 'follower' ? s.role : 'candidate';
    return { k: 'view', member: this.host.memberId, role, term: s.term, leaderId: s.leaderId, members };
  }

  private markDirty(c: Client): void {
    if (c.queued) return;
    c.queued = true;
    this.dirty.push(c);
    if (!this.flushQueued) {
      this.flushQueued = true;
      // Results of one apply run go out together, once the node's turn is done.
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushQueued = false;
    const dirty = this.dirty;
    this.dirty = [];
    for (const c of dirty) {
      c.queued = false;
      if (c.link.closed) continue;
      if (c.results.length > 0 && c.session !== undefined) {
        c.link.send(encodeToClient({ k: 'results', session: c.session, rs: c.results }));
      }
      c.results = [];
      if (c.wakes !== undefined) {
        c.link.send(encodeToClient({ k: 'wake', topics: [...c.wakes] }));
        c.wakes = undefined;
      }
    }
  }
}

function sameView(a: Extract<ToClient, { k: 'view' }>, b: ToClient): boolean {
  if (b.k !== 'view' || a.term !== b.term || a.leaderId !== b.leaderId || a.role !== b.role || a.members.length !== b.members.length) return false;
  return a.members.every((m, i) => m.id === b.members[i]?.id && m.address === b.members[i]?.address && m.role === b.members[i]?.role);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
