/**
 * Where a client's publish waits, seen from the client process (`npm run bench:compare`, the
 * client system at 1 in flight): a connector for RaftQueueClient that opens the same TCP
 * connection the package entry does and notes when each `propose` body leaves and when the
 * member's `accepted` (the leader put the block in its log) and `results` (the member applied
 * it) arrive. With one request in flight at a time, propose -> accepted is the hop plus the
 * leader taking the block in, and accepted -> results is replication, fsync and apply.
 *
 * Only bodies are inspected, never changed: one msgpack unpack per frame (a few µs for these
 * small bodies; no schema check, the client does that), and none unless `enabled`.
 */
import { Unpackr } from 'msgpackr';
import type { ClientConnector } from '../lib/clients/client.js';
import { MSGPACK_OPTIONS } from '../lib/contracts/msgpack-options.js';
import { connectClient } from '../transports/tcp/client-connection.js';
import { summarize, type LatencySummary } from './cluster-shared.js';

const unpackr = new Unpackr({ ...MSGPACK_OPTIONS });

/** The fields the trace reads of a body (protocol.ts has the full shapes). */
interface BodyHead {
  readonly k?: unknown;
  readonly b?: unknown;
}

function head(bytes: Uint8Array): BodyHead {
  try {
    const v: unknown = unpackr.unpack(bytes);
    return typeof v === 'object' && v !== null ? (v as BodyHead) : {};
  } catch (error) {
    // Not ours to judge: the client validates every body and reports what it cannot read.
    return { k: `undecodable (${error instanceof Error ? error.message : String(error)})` };
  }
}

/** Bound on the samples kept (one per traced publish). */
const TRACE_SAMPLES_MAX = 100_000;

export interface TraceSummary {
  /** propose sent -> accepted received. */
  readonly accepted: LatencySummary;
  /** propose sent -> results received. */
  readonly results: LatencySummary;
}

export class FrameTrace {
  enabled = false;
  private proposedAtMs = Number.NaN;
  private proposedBatch: unknown;
  private accepted: number[] = [];
  private results: number[] = [];

  /** A connector that behaves as the package entry's TCP connector, with the trace around it. */
  readonly connect: ClientConnector = async (p, handlers) => {
    const conn = await connectClient(
      {
        address: p.address,
        clusterId: p.clusterId,
        clusterSecret: p.clusterSecret,
        clientId: p.clientId,
        handshakeTimeoutMs: p.handshakeTimeoutMs,
        ...(p.tls ? { tls: { ...p.tls } } : {}),
      },
      {
        onFrame: (body) => {
          if (this.enabled) this.received(body);
          handlers.onFrame(body);
        },
        onClose: (reason, error) => handlers.onClose(reason, error),
      },
    );
    return {
      get memberId() {
        return conn.memberId;
      },
      get closed() {
        return conn.closed;
      },
      send: (body) => {
        if (this.enabled) this.sent(body);
        return conn.send(body);
      },
      close: () => conn.close(),
    };
  };

  /** Starts a fresh set of samples. */
  start(): void {
    this.accepted = [];
    this.results = [];
    this.proposedAtMs = Number.NaN;
    this.enabled = true;
  }

  /** Stops tracing and summarizes what was seen since `start()`. */
  stop(): TraceSummary {
    this.enabled = false;
    return { accepted: summarize(this.accepted), results: summarize(this.results) };
  }

  private sent(bytes: Uint8Array): void {
    const body = head(bytes);
    if (body.k !== 'propose') return;
    this.proposedAtMs = performance.now();
    this.proposedBatch = body.b;
  }

  private received(bytes: Uint8Array): void {
    if (Number.isNaN(this.proposedAtMs) || this.results.length >= TRACE_SAMPLES_MAX) return;
    const body = head(bytes);
    const ms = performance.now() - this.proposedAtMs;
    if (body.k === 'accepted' && body.b === this.proposedBatch) this.accepted.push(ms);
    else if (body.k === 'results') {
      this.results.push(ms);
      this.proposedAtMs = Number.NaN;
    }
  }
}
