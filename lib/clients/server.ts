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
 * `noCapacity`), results waiting to be sent, watched topics, registrations per connection; per
 * member: reads in progress and registrations per second. The bytes queued to a client are
 * bounded by the transport (a client that does not read is disconnected); results are sent in
 * frames of at most RESULTS_FRAME_BYTES and only while less than SEND_BUDGET_BYTES wait in the
 * client's queue, the rest on later turns, so a burst of large results never overflows it.
 */
import type { MemberInfo, QueueStatus } from '../api-types.js';
import type { ClientHandlers, ClientLink } from '../contracts/transport.js';
import { SESSION_EXPIRED } from '../node/applier.js';
import { RECORDS_PER_BLOCK_MAX, REGISTER_SESSION, checkBlock, forEachRecord } from '../node/envelope.js';
import type { BlockAnswer, ClientSink, NodeEvent, RaftNode } from '../node/raft-node.js';
import type { QueueEvent, QueueQuery } from '../queue/index.js';
import { CLIENT_WHO_PREFIX, ResultFlag, decodeToMember, encodeToClient } from './protocol.js';
import type { ToClient, ToMember } from './protocol.js';

export interface ClientServerHost {
  readonly node: RaftNode<QueueEvent>;
  readonly memberId: string;
  /** The member's status and members, as `RaftQueue.status()` / `members()` give them. */
  status(): QueueStatus;
  members(): MemberInfo[];
  /** Records relayed for one client and not yet answered; more are refused (noCapacity). */
  readonly requestsMax: number;
  /** The member's messageBytesMax (told to clients, which check their payloads against it). */
  readonly messageBytesMax: number;
  /** Largest record body relayed (a command: the payload and its envelope). */
  readonly bodyBytesMax: number;
  log(line: string): void;
}

/** Reads in progress for all clients of this member at once. */
const READS_MAX = 10_000;
/** A client's read waits at most this long here, whatever deadline it asked for. */
const READ_TIMEOUT_MS_MAX = 300_000;
/** Session registrations one connection may relay (a client needs one, and one per session lost). */
const REGISTRATIONS_PER_LINK_MAX = 16;
/** Registrations this member relays per second for all clients (each opens a replicated session). */
const REGISTRATIONS_PER_SECOND_MAX = 200;
/** A results frame holds about this many bytes (one larger result goes alone). */
const RESULTS_FRAME_BYTES = 1 << 20;
/** Results are sent while less than this waits in the client's queue (below the transport's bound). */
const SEND_BUDGET_BYTES = 4 << 20;
/** How long a block's `accepted` is held back (sent only if a call of it is still unanswered). */
const ACCEPTED_DELAY_MS = 5;
/** How soon a client's results waiting for its queue to drain are tried again. */
const DRAIN_RETRY_MS = 5;

type Row = [number, number, number, unknown];

interface Client {
  readonly link: ClientLink;
  session: number | undefined;
  /** Seqs relayed and not yet answered (insertion order is about seq order). */
  readonly outstanding: Set<number>;
  /** Registrations this link relayed, by nonce (until applied). */
  readonly registering: Set<number>;
  registrations: number;
  watched: Set<string>;
  deadLetters: boolean;
  /** Results not yet sent (of `session`), in the order applied. */
  rows: Row[];
  wakes: Set<string> | undefined;
  queued: boolean;
  /** `accepted` answers held back (see propose), sent by `acceptedTimer` if still of use. */
  accepted: { readonly reply: ToClient; readonly seqs: readonly number[] }[];
  acceptedTimer: NodeJS.Timeout | undefined;
}

export class ClientServer implements ClientHandlers, ClientSink {
  private readonly clients = new Map<ClientLink, Client>();
  private readonly bySession = new Map<number, Client>();
  /** Registrations in flight: nonce -> the link that relayed it and the registering id bytes. */
  private readonly byNonce = new Map<number, { readonly c: Client; readonly who: Uint8Array }>();
  private readonly watchers = new Map<string, Set<Client>>();
  private dirty: Client[] = [];
  private flushQueued = false;
  private drainTimer: NodeJS.Timeout | undefined;
  private lastView: ToClient | undefined;
  private reads = 0;
  private registrationWindow = { startMs: 0, count: 0 };
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
      watched: new Set(),
      deadLetters: false,
      rows: [],
      wakes: undefined,
      queued: false,
      accepted: [],
      acceptedTimer: undefined,
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
    c.rows = [];
    c.accepted = [];
    if (c.acceptedTimer !== undefined) clearTimeout(c.acceptedTimer);
    c.acceptedTimer = undefined;
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
        this.attachClaimed(c, body.session, body.who);
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

  /**
   * The client says its session is `session` and proves it with the registration's body `who`
   * (its id and a random token, kept in the replicated session table). A session this member does
   * not know (it is behind, or the session was forgotten) is taken on trust: its records then
   * apply only if the leader knows it, and a forgotten one comes back SESSION_EXPIRED.
   */
  private attachClaimed(c: Client, session: number, who: Uint8Array): void {
    if (!startsWith(who, CLIENT_WHO_PREFIX)) {
      this.refuse(c, 'an attach to a session that is not a client session');
      return;
    }
    const owner = this.host.node.sessionOwner(session);
    if (owner !== undefined && !sameBytes(owner, who)) {
      this.refuse(c, `an attach to session ${session}, which another client or member registered`);
      return;
    }
    this.attach(c, session);
  }

  private attach(c: Client, session: number): void {
    if (c.session === session) return;
    // Results of the session being left are of no use under the new one: the client re-sends.
    c.rows = [];
    c.outstanding.clear();
    if (c.session !== undefined && this.bySession.get(c.session) === c) this.bySession.delete(c.session);
    c.session = session;
    // The newest link of a session wins: an older one is a connection the client gave up on.
    this.bySession.set(session, c);
  }

  private propose(c: Client, b: number, recs: Uint8Array): void {
    const answer: BlockAnswer = (reply) => {
      if (c.link.closed) return;
      if (reply.k !== 'accepted') {
        c.link.send(encodeToClient(reply));
        return;
      }
      // The block is in the leader's log. The client only notes the term, so that it does not
      // re-send a call a current leader holds (after its retry interval, a second or so). So
      // it waits ACCEPTED_DELAY_MS here and goes only if some call of the block is still
      // unanswered: at low load the results come first and it never goes. Written at once, it
      // woke the client while the followers were writing, and a third busy process on 2 cores
      // delayed them by up to a few hundred µs.
      c.accepted.push({ reply, seqs: blockSeqs });
      if (c.acceptedTimer === undefined) {
        c.acceptedTimer = setTimeout(() => this.sendAccepted(c), ACCEPTED_DELAY_MS);
        c.acceptedTimer.unref();
      }
    };
    const count = checkBlock(recs, RECORDS_PER_BLOCK_MAX, this.host.bodyBytesMax);
    if (typeof count === 'string') {
      // A payload over this member's limit is the caller's mistake, not the client's: refuse
      // the block (the client says PAYLOAD_TOO_LARGE) and keep the connection.
      if (count.startsWith('a body of')) answer({ k: 'refused', b, reason: 'tooLarge', leaderId: null });
      else this.refuse(c, `a malformed block of records (${count})`);
      return;
    }
    // Every record must be the client's own: of its session, or one registration of its own.
    let problem: string | undefined;
    let registration: { nonce: number; who: Uint8Array } | undefined;
    let floor = 0;
    forEachRecord(recs, (session, seq, f, start, end) => {
      if (session === REGISTER_SESSION) {
        const who = recs.subarray(start, end);
        if (registration !== undefined) problem = 'two session registrations in one block';
        else if (!startsWith(who, CLIENT_WHO_PREFIX)) problem = 'a session registration that is not a client registration';
        else registration = { nonce: seq, who: who.slice() };
        return problem === undefined;
      }
      if (session !== c.session) {
        problem = c.session === undefined ? 'records before the session is attached' : `a record of session ${session}, not this client's ${c.session}`;
        return false;
      }
      if (f > floor) floor = f;
      return true;
    });
    if (problem === undefined && registration !== undefined && c.registrations >= REGISTRATIONS_PER_LINK_MAX) problem = `more than ${REGISTRATIONS_PER_LINK_MAX} session registrations on one connection`;
    if (problem !== undefined) {
      this.refuse(c, problem);
      return;
    }
    if (registration !== undefined && !this.registrationAllowed()) {
      answer({ k: 'refused', b, reason: 'noCapacity', leaderId: null });
      return;
    }
    // Answered requests below the client's floor are settled for it: forget them.
    for (const seq of c.outstanding) {
      if (seq >= floor) break;
      c.outstanding.delete(seq);
    }
    const seqs: number[] = [];
    const blockSeqs: number[] = [];
    forEachRecord(recs, (session, seq) => {
      if (session === REGISTER_SESSION) return true;
      blockSeqs.push(seq);
      if (!c.outstanding.has(seq)) seqs.push(seq);
      return true;
    });
    if (c.outstanding.size + seqs.length > this.host.requestsMax) {
      answer({ k: 'refused', b, reason: 'noCapacity', leaderId: null });
      return;
    }
    for (const seq of seqs) c.outstanding.add(seq);
    if (registration !== undefined) {
      c.registrations++;
      c.registering.add(registration.nonce);
      this.byNonce.set(registration.nonce, { c, who: registration.who });
    }
    const bad = this.host.node.relay(answer, b, recs);
    if (bad !== undefined) this.refuse(c, `a block the node refused (${bad})`);
  }

  /** The `accepted` answers held back, of blocks with a call still unanswered. */
  private sendAccepted(c: Client): void {
    c.acceptedTimer = undefined;
    const held = c.accepted;
    c.accepted = [];
    if (c.link.closed) return;
    for (const { reply, seqs } of held) {
      // A registration alone has no calls: its answer goes as it is.
      if (seqs.length === 0 || seqs.some((seq) => c.outstanding.has(seq))) c.link.send(encodeToClient(reply));
    }
  }

  /** At most REGISTRATIONS_PER_SECOND_MAX registrations a second for all clients together. */
  private registrationAllowed(): boolean {
    const now = Date.now();
    const w = this.registrationWindow;
    if (now - w.startMs >= 1_000) {
      w.startMs = now;
      w.count = 0;
    }
    if (w.count >= REGISTRATIONS_PER_SECOND_MAX) return false;
    w.count++;
    return true;
  }

  private read(c: Client, id: number, timeoutMs: number, query: QueueQuery): void {
    if (this.reads >= READS_MAX) {
      c.link.send(encodeToClient({ k: 'readErr', id, code: 'NO_CAPACITY', message: `${READS_MAX} reads are already in progress on member ${this.host.memberId}; retry later` }));
      return;
    }
    this.reads++;
    this.host.node.read(query, Math.min(timeoutMs, READ_TIMEOUT_MS_MAX), (error, value) => {
      this.reads--;
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
    if (c === undefined || result === undefined || c.link.closed) return; // Not a client's, stale, or gone.
    c.outstanding.delete(seq);
    // More results waiting than the client may have requests: it is not reading; it will ask again.
    if (c.rows.length >= this.host.requestsMax) return;
    if (result === SESSION_EXPIRED) c.rows.push([seq, index, ResultFlag.Expired | ResultFlag.Duplicate, null]);
    else c.rows.push([seq, index, duplicate ? ResultFlag.Duplicate : 0, result]);
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
    return { k: 'view', member: this.host.memberId, role, term: s.term, leaderId: s.leaderId, members, messageBytesMax: this.host.messageBytesMax };
  }

  private markDirty(c: Client): void {
    if (c.queued) return;
    c.queued = true;
    this.dirty.push(c);
    if (!this.flushQueued) {
      this.flushQueued = true;
      // Results of one apply run go out together, as soon as the task that applied them ends
      // (a microtask: a setImmediate here would cost the reply a whole event-loop turn).
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushQueued = false;
    const dirty = this.dirty;
    this.dirty = [];
    let waiting = false;
    for (const c of dirty) {
      c.queued = false;
      if (c.link.closed) continue;
      if (!this.sendRows(c)) {
        // The client's queue is full: the rest goes once it drains. Wakes wait too: a frame
        // queued ahead of a large result on every retry could hold it back for as long as
        // someone publishes (found in review), and the result answers the client's claim anyway.
        c.queued = true;
        this.dirty.push(c);
        waiting = true;
        continue;
      }
      if (c.wakes !== undefined) {
        c.link.send(encodeToClient({ k: 'wake', topics: [...c.wakes] }));
        c.wakes = undefined;
      }
    }
    if (waiting && this.drainTimer === undefined) {
      this.drainTimer = setTimeout(() => {
        this.drainTimer = undefined;
        this.flushQueued = true;
        this.flush();
      }, DRAIN_RETRY_MS);
      this.drainTimer.unref();
    }
  }

  /** Sends the client's waiting results in frames while its queue has room; true when all went. */
  private sendRows(c: Client): boolean {
    const session = c.session;
    if (session === undefined) {
      c.rows = [];
      return true;
    }
    while (c.rows.length > 0) {
      if (c.link.closed) {
        c.rows = [];
        return true;
      }
      if (c.link.bufferedBytes >= SEND_BUDGET_BYTES) return false;
      // Most results are small: one frame for all; halve until a frame fits (one row goes alone).
      let n = c.rows.length;
      let bytes = encodeToClient({ k: 'results', session, rs: n === c.rows.length ? c.rows : c.rows.slice(0, n) });
      while (bytes.length > RESULTS_FRAME_BYTES && n > 1) {
        n = Math.ceil(n / 2);
        bytes = encodeToClient({ k: 'results', session, rs: c.rows.slice(0, n) });
      }
      // Only a frame that fits the link's bound with what is queued already, or any one frame
      // into an empty queue: a claim's result may be a few MiB (it ends with the message that
      // reaches its byte bound), and on top of a nearly full budget it overflowed the bound, which
      // closes the link as a slow client. (Seen on a loaded machine: a 5 MB claim result sent with
      // 4 MB still queued.)
      const queued = c.link.bufferedBytes;
      if (queued > 0 && queued + bytes.length > (c.link.outboundBytesMax ?? Number.MAX_SAFE_INTEGER)) return false;
      c.rows = n === c.rows.length ? [] : c.rows.slice(n);
      c.link.send(bytes);
    }
    return true;
  }
}

function sameView(a: Extract<ToClient, { k: 'view' }>, b: ToClient): boolean {
  if (b.k !== 'view' || a.term !== b.term || a.leaderId !== b.leaderId || a.role !== b.role || a.members.length !== b.members.length) return false;
  return a.members.every((m, i) => m.id === b.members[i]?.id && m.address === b.members[i]?.address && m.role === b.members[i]?.role);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  return bytes.length >= prefix.length && prefix.every((x, i) => bytes[i] === x);
}
