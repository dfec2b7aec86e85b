/**
 * The recorded history of a chaos run: every client operation with its invocation and completion
 * time (ms since the run started) and outcome, plus the nemesis' actions for context.
 *
 * Outcomes: `ok` (the reply says it happened), `fail` (it certainly did not happen: refused by a
 * non-leader, connection refused, a bad request), `unknown` (no reply, a 503, a reset: it may or
 * may not have happened, at any time after its invocation).
 *
 * Operations of the client processes (`via: 'client'`, see clients.ts) are timed by the child's
 * clock and converted into this one conservatively: the recorded interval contains the real one.
 */

export type Outcome = 'ok' | 'fail' | 'unknown';

/** One delivery a group fetch returned. */
export interface GroupDelivery {
  readonly message: string;
  readonly attempt: number;
  readonly offset: number;
}

interface OpBase {
  /** Position in the history (invocation order). */
  readonly index: number;
  readonly client: string;
  /** The node the request went to (its id), or '-' for the nemesis. */
  readonly node: string;
  readonly invokeMs: number;
  /** When the reply (or the failure) came; for `unknown`, when the client gave up. */
  completeMs: number;
  outcome: Outcome;
  /** A note for the report (error text, status). */
  note?: string;
  /** 'client' for an operation of a client process (RaftQueueClient); absent for the HTTP workload. */
  readonly via?: 'client';
}

export interface PublishOp extends OpBase {
  readonly kind: 'publish';
  readonly topic: string;
  readonly message: string;
  /**
   * A client publish's idempotency key. The client retries a publish whose outcome it does not
   * know under the same key and body: every attempt is one op, and together they are one message.
   */
  readonly publishId?: string;
  /** 1 for the first attempt of a publishId, 2 for its first retry, ... */
  readonly attempt?: number;
}

export interface PopOp extends OpBase {
  readonly kind: 'pop';
  readonly topic: string;
  /** The popped message (ok only); undefined for an empty answer. */
  message?: string;
  /**
   * For an empty answer: true when the leader itself answered (so the pop really ran and found
   * the topic empty), false when it may have been a refusal.
   */
  executed?: boolean;
}

export interface FetchOp extends OpBase {
  readonly kind: 'fetch';
  readonly topic: string;
  readonly group: string;
  deliveries?: GroupDelivery[];
}

export interface AckOp extends OpBase {
  readonly kind: 'ack' | 'nack';
  readonly topic: string;
  readonly group: string;
  /** Messages whose settlement the reply confirmed. */
  readonly messages: readonly string[];
  confirmed?: string[];
}

export interface NemesisOp extends OpBase {
  readonly kind: 'nemesis';
  readonly action: string;
}

export type Op = PublishOp | PopOp | FetchOp | AckOp | NemesisOp;

type Invocation<T extends Op> = Omit<T, 'index' | 'invokeMs' | 'completeMs' | 'outcome'> & { invokeMs?: number };

/** Append-only recorder; times are ms since `t0` (performance.now()). */
export class History {
  readonly ops: Op[] = [];

  constructor(private readonly t0 = performance.now()) {}

  now(): number {
    return this.at(performance.now());
  }

  /** A performance.now() reading of this process as a history time. */
  at(perfMs: number): number {
    return Math.round((perfMs - this.t0) * 10) / 10;
  }

  /** Records an invocation; complete it with `complete`. Until then it counts as unknown. */
  invoke<T extends Op>(op: Invocation<T>): T {
    const t = this.now();
    const full = { ...op, index: this.ops.length, invokeMs: op.invokeMs ?? t, completeMs: Number.POSITIVE_INFINITY, outcome: 'unknown' } as unknown as T;
    this.ops.push(full);
    return full;
  }

  /** Completes `op` now, or at `fields.completeMs` when given (a client process's time). */
  complete<T extends Op>(op: T, outcome: Outcome, fields: Partial<T> = {}): T {
    Object.assign(op, fields);
    op.outcome = outcome;
    op.completeMs = fields.completeMs ?? this.now();
    return op;
  }

  /** A nemesis action, instantaneous. */
  nemesis(action: string): NemesisOp {
    const op = this.invoke<NemesisOp>({ kind: 'nemesis', client: 'nemesis', node: '-', action });
    return this.complete(op, 'ok');
  }
}

/** One line describing an operation, for reports. */
export function formatOp(op: Op): string {
  const t = `${(op.invokeMs / 1000).toFixed(3)}s`;
  const done = Number.isFinite(op.completeMs) ? `..${(op.completeMs / 1000).toFixed(3)}s` : '..?';
  const head = `#${op.index} ${t}${done} ${op.client}@${op.node}${op.via === 'client' ? ' (client)' : ''}`;
  const note = op.note ? ` (${op.note})` : '';
  switch (op.kind) {
    case 'publish':
      return `${head} publish ${op.topic} ${JSON.stringify(op.message)}${op.publishId !== undefined ? ` publishId ${op.publishId} attempt ${op.attempt ?? 1}` : ''} -> ${op.outcome}${note}`;
    case 'pop':
      return `${head} pop ${op.topic} -> ${op.outcome}${op.message !== undefined ? ` ${JSON.stringify(op.message)}` : op.outcome === 'ok' ? ` empty${op.executed ? '' : ' (maybe refused)'}` : ''}${note}`;
    case 'fetch':
      return `${head} fetch ${op.group}/${op.topic} -> ${op.outcome}${op.deliveries ? ` [${op.deliveries.map((d) => `${d.message}@${d.offset}#${d.attempt}`).join(' ')}]` : ''}${note}`;
    case 'ack':
    case 'nack':
      return `${head} ${op.kind} ${op.group}/${op.topic} [${op.messages.join(' ')}] -> ${op.outcome}${op.confirmed ? ` confirmed [${op.confirmed.join(' ')}]` : ''}${note}`;
    case 'nemesis':
      return `${head} NEMESIS ${op.action}`;
  }
}
