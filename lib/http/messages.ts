/**
 * What `PUT /message` and `GET /message/<topic>` carry beyond the course's strings: a
 * `publishId` (body field or `Idempotency-Key` header) that makes a publish safe to retry, and
 * binary payloads.
 *
 * In: `Content-Type: application/octet-stream` with the topic in the query
 * (`PUT /message?topic=t`) publishes the raw body as a Uint8Array; a JSON body
 * `{"topic", "message": "<base64>", "encoding": "base64"}` publishes the decoded bytes. Every
 * other request is the course's JSON `{"topic", "message"}`, whatever its Content-Type (curl
 * -d sends a form type).
 *
 * Out: a binary payload is popped as `{"success": true, "message": "<base64>", "encoding":
 * "base64"}`, or as the raw bytes when the request accepts `application/octet-stream`. Other
 * payloads keep the course body exactly, whatever the Accept header: a pop cannot be undone,
 * so the message is always answered in some form.
 */
import type { IncomingMessage } from 'node:http';
import { PUBLISH_ID_CHARS_MAX } from '../contracts/limits.js';
import type { QueueMessage } from '../events.js';
import { BadRequest, readBytes, readJson, stringField } from './body.js';
import type { Json } from './body.js';

/** A gateway answer: a JSON object, text, or raw bytes, with extra response headers. */
export interface Reply {
  readonly status: number;
  readonly body: Json | string | Uint8Array;
  readonly headers?: Readonly<Record<string, string>>;
  /** Content-Type when not the default of the body's kind (JSON, Prometheus text, bytes). */
  readonly contentType?: string;
}

/** A checked `PUT /message`. */
export interface PublishRequest {
  readonly topic: string;
  readonly payload: string | Uint8Array;
  readonly publishId: string | undefined;
}

/** The bounds a publish body is read under. */
export interface PublishLimits {
  /** The gateway's bound on any request body. */
  readonly bodyBytesMax: number;
  /** The queue's messageBytesMax, when a queue is attached. */
  readonly messageBytesMax: number | undefined;
}

const OCTET_STREAM = 'application/octet-stream';

/**
 * Standard base64 (RFC 4648 section 4), padding optional. Buffer.from(s, 'base64') would decode
 * anything, skipping what it does not know: a typo would publish other bytes than meant.
 */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

/** Reads and checks a `PUT /message` request: JSON (string or base64 message) or raw bytes. */
export async function readPublish(req: IncomingMessage, limits: PublishLimits): Promise<PublishRequest> {
  const headerId = idempotencyKey(req);
  if (mediaType(req.headers['content-type']) === OCTET_STREAM) {
    const topic = queryTopic(req.url ?? '/');
    const bytesMax = Math.min(limits.bodyBytesMax, limits.messageBytesMax ?? limits.bodyBytesMax);
    const payload = await readBytes(req, bytesMax, `payload over ${bytesMax} bytes (the queue's messageBytesMax, or the gateway's body limit if lower)`);
    return { topic, payload, publishId: headerId };
  }
  const body = await readJson(req, limits.bodyBytesMax);
  const topic = stringField(body, 'topic');
  const message = stringField(body, 'message');
  const bodyId = publishIdField(body);
  if (bodyId !== undefined && headerId !== undefined && bodyId !== headerId) {
    throw new BadRequest(`field "publishId" (${JSON.stringify(bodyId)}) and the Idempotency-Key header (${JSON.stringify(headerId)}) differ: give one of them, or the same id in both`);
  }
  return { topic, payload: decodeMessage(message, body['encoding']), publishId: bodyId ?? headerId };
}

/** The answer to a publish: the course's `{"success": true}`, with `"duplicate": true` on a repeat. */
export function publishReply(receipt: { readonly offset: number; readonly duplicate: boolean }): Reply {
  // The course body stays exact for every publish that stored a message; only a repeat of a
  // publishId (which course clients never send) gets a field more.
  return { status: 200, body: receipt.duplicate ? { success: true, duplicate: true } : { success: true }, headers: { 'X-Raftqueue-Offset': String(receipt.offset) } };
}

/** The answer to a pop that returned `m`; raw bytes when `req` accepts them and the payload is binary. */
export function popReply(req: IncomingMessage, m: QueueMessage | undefined): Reply {
  if (m === undefined) return { status: 200, body: { success: false } };
  const headers = { 'X-Raftqueue-Topic': m.topic, 'X-Raftqueue-Offset': String(m.offset) };
  if (m.payload instanceof Uint8Array && acceptsBytes(req.headers.accept)) return { status: 200, body: m.payload, headers };
  return { status: 200, body: { success: true, ...jsonMessage(m.payload) }, headers };
}

/**
 * A payload as JSON fields: `{"message": payload}`, or for bytes `{"message": "<base64>",
 * "encoding": "base64"}` (JSON.stringify would write a Uint8Array as an object of indexes).
 */
export function jsonMessage(payload: unknown): { message: unknown; encoding?: 'base64' } {
  if (!(payload instanceof Uint8Array)) return { message: payload };
  return { message: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('base64'), encoding: 'base64' };
}

/** The `Idempotency-Key` header, checked as publish checks a publishId; undefined when absent. */
function idempotencyKey(req: IncomingMessage): string | undefined {
  const v = req.headers['idempotency-key'];
  if (v === undefined) return undefined;
  // Node joins repeated headers with ', ': two keys on one request are refused, not merged.
  if (Array.isArray(v) || req.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'idempotency-key').length > 1) {
    throw new BadRequest('the Idempotency-Key header is given more than once: give one key per request');
  }
  if (v.length === 0 || v.length > PUBLISH_ID_CHARS_MAX) throw new BadRequest(`the Idempotency-Key header must be 1 to ${PUBLISH_ID_CHARS_MAX} characters, got ${v.length}`);
  return v;
}

function publishIdField(body: Json): string | undefined {
  const v = body['publishId'];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length === 0 || v.length > PUBLISH_ID_CHARS_MAX) {
    throw new BadRequest(`field "publishId" must be a string of 1 to ${PUBLISH_ID_CHARS_MAX} characters (the same id on a retry makes it store the message once)`);
  }
  return v;
}

function decodeMessage(message: string, encoding: unknown): string | Uint8Array {
  if (encoding === undefined) return message;
  if (encoding !== 'base64') throw new BadRequest(`field "encoding" must be "base64" (the message is bytes in base64) or absent (the message is the text itself), got ${JSON.stringify(encoding)}`);
  if (!BASE64.test(message)) throw new BadRequest('field "message" is not valid base64 (A-Z, a-z, 0-9, "+", "/", optional "=" padding; no whitespace or URL-safe "-" and "_")');
  return Buffer.from(message, 'base64');
}

/** The `topic` query parameter of a raw-bytes publish. */
function queryTopic(url: string): string {
  const q = url.indexOf('?');
  const topic = q < 0 ? null : new URLSearchParams(url.slice(q + 1)).get('topic');
  if (topic === null || topic.length === 0) throw new BadRequest('an application/octet-stream publish names its topic in the query: PUT /message?topic=<name>');
  return topic;
}

/** The media type of a Content-Type header, lower-cased, without parameters. */
function mediaType(header: string | undefined): string | undefined {
  return header?.split(';')[0]?.trim().toLowerCase();
}

/** True when an Accept header lists application/octet-stream (with a non-zero q). */
function acceptsBytes(header: string | undefined): boolean {
  if (header === undefined) return false;
  return header.split(',').some((range) => {
    const [type, ...params] = range.split(';').map((s) => s.trim().toLowerCase());
    return type === OCTET_STREAM && !params.some((p) => /^q=0(?:\.0*)?$/.test(p));
  });
}
