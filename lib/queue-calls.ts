/**
 * QueueCalls: the queue's calls (topics, publish, consume, subscribe, messages) over a port that
 * submits commands and reads. One implementation serves both facades: a member (RaftQueue, whose
 * port is its own node) and a client process (RaftQueueClient, whose port is a member reached
 * over TCP), so the two answer the same input with the same results and the same errors.
 *
 * Input is checked here, before anything is sent: every call's options strictly
 * (lib/call-options.ts) and every payload for a faithful msgpack round trip (lib/payload.ts).
 */
import type {
  CallOptions,
  CreateTopicOptions,
  MessagesOptions,
  PeekOptions,
  PublishOptions,
  PublishReceipt,
  RedriveOptions,
  RedriveResult,
  SubscribeOptions,
  Subscription,
} from './api-types.js';
import { callOptionsSchema, checkPublishOptions, createTopicOptionsSchema, parseOptions, peekOptionsSchema, redriveOptionsSchema } from './call-options.js';
import { REDRIVE_MESSAGES_MAX } from './contracts/limits.js';
import { RaftQueueError } from './contracts/errors.js';
import type { ErrorCode } from './contracts/errors.js';
import type { Delivery, PeekedMessage, QueueMessage } from './events.js';
import type { SubmitOutcome } from './node/requests.js';
import { encodePayload } from './payload.js';
import { binHeaderBytes, encodeCommand, encodePublish, encodePublishBytes, validateTopicName, validateTopicOrDeadLetterName } from './queue/index.js';
import type { ApplyResult, Command, Delivery as StoredDelivery, MessageOptions, QueueQuery, StoredMessage } from './queue/index.js';
import { AckBatcher, SubscriptionImpl, resolveSubscribe, runHandler, toDelivery, toMessage } from './subscriptions.js';
import type { SubscriptionHost } from './subscriptions.js';

/** Where the calls go: a member's node, or a member reached by a client. */
export interface QueuePort {
  /** Applies `body` (an encoded command) through the log; `cb` once, with the result or an error. */
  submit(body: Uint8Array, timeoutMs: number, cb: (outcome: SubmitOutcome) => void): void;
  /** A linearizable query. */
  read(query: QueueQuery, timeoutMs: number, cb: (error: RaftQueueError | undefined, value: unknown) => void): void;
}

export interface QueueCallsHost {
  /** Consumer ids start with it. */
  readonly id: string;
  readonly requestTimeoutMs: number;
  readonly messageBytesMax: number;
  /** The port while the facade runs; the error to throw (CLOSED) while it does not. */
  port(): QueuePort | RaftQueueError;
  /** Adds what the facade can see to NO_LEADER / TIMEOUT errors. */
  explain(error: RaftQueueError): RaftQueueError;
  log(line: string): void;
  /** A subscription started or ended (a client tells its member which topics to wake it for). */
  onSubscriptionsChanged?(): void;
  /** Payload bytes one subscription claim may return (a client); none: any. */
  readonly claimBytesMax?: number;
  /** How often an idle subscription claims again without a wake-up (default 1 s). */
  readonly idlePollMs?: number;
}

export class QueueCalls {
  readonly counters = { publishes: 0, consumes: 0 };
  private readonly subscriptions = new Set<SubscriptionImpl>();
  private readonly subHost: SubscriptionHost;
  private readonly acks: AckBatcher;

  constructor(private readonly host: QueueCallsHost) {
    const calls = this;
    this.subHost = {
      id: host.id,
      get running() {
        return !(calls.host.port() instanceof RaftQueueError);
      },
      run: (command, timeoutMs) => this.run(command, timeoutMs).then((r) => r.value),
      ...(host.claimBytesMax !== undefined ? { claimBytesMax: host.claimBytesMax } : {}),
      ...(host.idlePollMs !== undefined ? { idlePollMs: host.idlePollMs } : {}),
      removeSubscription: (sub) => {
        this.subscriptions.delete(sub);
        host.onSubscriptionsChanged?.();
      },
      log: (line) => host.log(line),
    };
    this.acks = new AckBatcher(this.subHost);
  }

  /** Topics some subscription of this facade reads. */
  subscribedTopics(): Set<string> {
    const topics = new Set<string>();
    for (const sub of this.subscriptions) topics.add(sub.topic);
    return topics;
  }

  /** New messages may be claimable in `topic`. */
  wake(topic: string): void {
    for (const sub of this.subscriptions) sub.wake(topic);
  }

  /** Every subscription stops at once (the facade stopped for good). */
  abortAll(): void {
    for (const sub of this.subscriptions) sub.abort();
  }

  /** Every subscription stops, giving handlers in progress up to `drainMs` to settle. */
  async closeAll(drainMs: number): Promise<void> {
    await Promise.allSettled([...this.subscriptions].map((s) => s.close(drainMs)));
  }

  async createTopic(topic: string, options?: CreateTopicOptions): Promise<boolean> {
    checkTopic(topic);
    const { timeoutMs, ...opts } = parseOptions(createTopicOptionsSchema, options, 'createTopic');
    const cmd: Command = { t: 'createTopic', topic, ...(Object.keys(opts).length > 0 ? { opts: definedOnly(opts) } : {}) };
    return (await this.run(cmd, timeoutMs)).value as boolean;
  }

  async deleteTopic(topic: string, options?: CallOptions): Promise<boolean> {
    checkTopic(topic);
    const o = parseOptions(callOptionsSchema, options, 'deleteTopic');
    return (await this.run({ t: 'deleteTopic', topic }, o.timeoutMs)).value as boolean;
  }

  async topics(options?: CallOptions): Promise<string[]> {
    const o = parseOptions(callOptionsSchema, options, 'topics');
    return (await this.read({ q: 'topics' }, o.timeoutMs)) as string[];
  }

  publish(topic: string, payload: unknown, options?: PublishOptions): Promise<PublishReceipt> {
    // The hot path: one Promise per publish, no async wrapper (bad input still rejects).
    let body: Uint8Array;
    let timeoutMs: number;
    let port: QueuePort;
    try {
      checkTopic(topic);
      const o = checkPublishOptions(options);
      timeoutMs = o.timeoutMs ?? this.host.requestTimeoutMs;
      const max = this.host.messageBytesMax;
      // Raw bytes are msgpack `bin`: written directly, without a msgpack encoder.
      const raw = payload instanceof Uint8Array ? payload : undefined;
      const bytes = raw === undefined ? encodePayload(payload, max) : undefined;
      const encodedBytes = raw !== undefined ? raw.length + binHeaderBytes(raw.length) : (bytes as Uint8Array).length;
      if (encodedBytes > max) throw new RaftQueueError('PAYLOAD_TOO_LARGE', `payload is ${encodedBytes} bytes; messageBytesMax is ${max}`);
      const p = this.host.port();
      if (p instanceof RaftQueueError) throw p;
      port = p;
      const mo = messageOptionsOf(o);
      body = raw !== undefined ? encodePublishBytes(topic, raw, o.publishId, mo) : encodePublish(topic, bytes as Uint8Array, o.publishId, mo);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      port.submit(body, timeoutMs, (outcome) => {
        if (!outcome.ok) {
          reject(this.host.explain(outcome.error));
          return;
        }
        const result = outcome.result as ApplyResult;
        if (!result.ok) {
          reject(resultError(result));
          return;
        }
        this.counters.publishes++;
        resolve({ topic, offset: (result.value as { offset: number }).offset, duplicate: result.duplicate || outcome.duplicate });
      });
    });
  }

  async consume<T>(topic: string, options?: CallOptions): Promise<QueueMessage<T> | undefined> {
    checkTopic(topic);
    const o = parseOptions(callOptionsSchema, options, 'consume');
    const value = (await this.run({ t: 'consume', topic }, o.timeoutMs)).value as StoredMessage | null;
    if (value === null) return undefined;
    this.counters.consumes++;
    return toMessage<T>(value, 'default');
  }

  async peek<T>(topic: string, options?: PeekOptions): Promise<PeekedMessage<T>[]> {
    checkTopicOrDeadLetter(topic);
    const o = parseOptions(peekOptionsSchema, options, 'peek');
    const group = o.group ?? 'default';
    const value = (await this.read({ q: 'peek', topic, group, limit: o.limit ?? 100 }, o.timeoutMs)) as (StoredMessage & { deliverAt?: number })[] | null;
    if (value === null) throw new RaftQueueError('TOPIC_NOT_FOUND', `topic "${topic}" does not exist`);
    return value.map((m) => {
      const message = toMessage<T>(m, group);
      return m.deliverAt === undefined ? message : { ...message, deliverAt: m.deliverAt };
    });
  }

  async purge(topic: string, options?: CallOptions): Promise<number> {
    checkTopicOrDeadLetter(topic);
    const o = parseOptions(callOptionsSchema, options, 'purge');
    return (await this.run({ t: 'purge', topic }, o.timeoutMs)).value as number;
  }

  async redrive(dlqTopic: string, options?: RedriveOptions): Promise<RedriveResult> {
    checkTopicOrDeadLetter(dlqTopic);
    const o = parseOptions(redriveOptionsSchema, options, 'redrive');
    if (o.to !== undefined) checkTopicOrDeadLetter(o.to);
    const cmd: Command = { t: 'redrive', topic: dlqTopic, max: o.max ?? REDRIVE_MESSAGES_MAX, ...(o.to !== undefined ? { to: o.to } : {}) };
    // A copy: on a member the value is the one its replicated session table keeps for retries.
    return { ...((await this.run(cmd, o.timeoutMs)).value as RedriveResult) };
  }

  subscribe<T>(topic: string, handler: (message: QueueMessage<T>) => unknown, options?: SubscribeOptions): Subscription {
    checkTopic(topic);
    if (typeof handler !== 'function') throw new RaftQueueError('INVALID_OPTIONS', `invalid handler: subscribe() takes a function (message) => ..., got ${typeof handler}`);
    const resolved = resolveSubscribe(options, 'subscribe');
    this.assertRunning();
    const sub: SubscriptionImpl = new SubscriptionImpl(this.subHost, topic, resolved, {
      onDelivery: (d) => void runHandler(this.subHost, this.acks, sub, handler, d),
    });
    this.subscriptions.add(sub);
    this.host.onSubscriptionsChanged?.();
    sub.start();
    return sub;
  }

  messages<T>(topic: string, options?: MessagesOptions): AsyncIterableIterator<Delivery<T>> {
    checkTopic(topic);
    const resolved = resolveSubscribe(options, 'messages');
    this.assertRunning();
    const buffer: Delivery<T>[] = [];
    const waiting: ((r: IteratorResult<Delivery<T>>) => void)[] = [];
    let done = false;
    const sub: SubscriptionImpl = new SubscriptionImpl(this.subHost, topic, resolved, {
      onDelivery: (d: StoredDelivery) => {
        const delivery = toDelivery<T>(this.subHost, this.acks, sub, d);
        const w = waiting.shift();
        if (w) w({ value: delivery, done: false });
        else buffer.push(delivery);
      },
      onClose: () => {
        done = true;
        for (const w of waiting.splice(0)) w({ value: undefined, done: true });
      },
    });
    this.subscriptions.add(sub);
    this.host.onSubscriptionsChanged?.();
    sub.start();
    const iterator: AsyncIterableIterator<Delivery<T>> = {
      next: () => {
        const d = buffer.shift();
        if (d) return Promise.resolve({ value: d, done: false });
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => waiting.push(resolve));
      },
      return: async () => {
        // Deliveries handed out but not settled go back now: the loop that held them is gone.
        await sub.close(0);
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** Submits `command`; resolves with its value, or rejects with its error code. */
  run(command: Command, timeoutMs?: number): Promise<{ value: unknown; duplicate: boolean }> {
    const port = this.host.port();
    if (port instanceof RaftQueueError) return Promise.reject(port);
    const body = encodeCommand(command);
    return new Promise((resolve, reject) => {
      port.submit(body, timeoutMs ?? this.host.requestTimeoutMs, (outcome) => {
        if (!outcome.ok) {
          reject(this.host.explain(outcome.error));
          return;
        }
        const result = outcome.result as ApplyResult;
        if (!result.ok) reject(resultError(result));
        else resolve({ value: result.value, duplicate: result.duplicate || outcome.duplicate });
      });
    });
  }

  /** A linearizable query of the queue state. */
  read(query: QueueQuery, timeoutMs: number | undefined): Promise<unknown> {
    const port = this.host.port();
    if (port instanceof RaftQueueError) return Promise.reject(port);
    return new Promise((resolve, reject) => {
      port.read(query, timeoutMs ?? this.host.requestTimeoutMs, (error, value) => (error ? reject(this.host.explain(error)) : resolve(value)));
    });
  }

  private assertRunning(): void {
    const port = this.host.port();
    if (port instanceof RaftQueueError) throw port;
  }
}

/** A topic name, a dead-letter topic's (nested `.dlq` suffixes) included. */
function checkTopicOrDeadLetter(topic: string): void {
  const problem = typeof topic === 'string' ? validateTopicOrDeadLetterName(topic) : 'a topic name is a string';
  if (problem) throw new RaftQueueError('INVALID_TOPIC', `invalid topic ${JSON.stringify(topic)}: ${problem}`);
}

/** The message options of publish's options, or undefined when it has none (the common case). */
function messageOptionsOf(o: PublishOptions): MessageOptions | undefined {
  if (o.delayMs === undefined && o.deliverAt === undefined && o.key === undefined && o.priority === undefined && o.ttlMs === undefined && o.headers === undefined) return undefined;
  const mo: MessageOptions = {};
  if (o.delayMs !== undefined) mo.delayMs = o.delayMs;
  if (o.deliverAt !== undefined) mo.deliverAt = o.deliverAt;
  if (o.key !== undefined) mo.key = o.key;
  if (o.priority !== undefined) mo.priority = o.priority;
  if (o.ttlMs !== undefined) mo.ttlMs = o.ttlMs;
  if (o.headers !== undefined) mo.headers = { ...o.headers };
  return mo;
}

/** The last topic name found valid (a publisher names the same topic call after call). */
let lastValidTopic = '';

export function checkTopic(topic: string): void {
  if (topic === lastValidTopic && topic !== '') return;
  const problem = typeof topic === 'string' ? validateTopicName(topic) : 'a topic name is a string';
  if (problem) throw new RaftQueueError('INVALID_TOPIC', `invalid topic ${JSON.stringify(topic)}: ${problem}`);
  lastValidTopic = topic;
}

/** `o` without its undefined values (the command type has absent keys, not undefined ones). */
function definedOnly<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}

function resultError(r: Extract<ApplyResult, { ok: false }>): RaftQueueError {
  const code: ErrorCode = r.code === 'INVALID_COMMAND' ? 'INVALID_OPTIONS' : r.code;
  return new RaftQueueError(code, r.message);
}
