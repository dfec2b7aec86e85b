/**
 * Request-body helpers shared by the gateway's route modules: bounded reads of a raw or JSON
 * body, and field checks.
 */
import type { IncomingMessage } from 'node:http';

/** A JSON object body. */
export type Json = Record<string, unknown>;

/** A problem the client caused: answered with `status` (400 unless said) and `{"success": false, "error"}`. */
export class BadRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

/** The string field `name` of `body`; a BadRequest when it is missing or not a string. */
export function stringField(body: Json, name: string): string {
  const v = body[name];
  if (v === undefined) throw new BadRequest(`missing field "${name}"`);
  if (typeof v !== 'string') throw new BadRequest(`field "${name}" must be a string`);
  return v;
}

/**
 * The whole body of `req`, at most `bytesMax` bytes; a 413 BadRequest saying `tooLarge` when it
 * is longer. A body over the bound is drained, not kept: the gateway's memory per request stays
 * under `bytesMax` whatever the client sends.
 */
export function readBytes(req: IncomingMessage, bytesMax: number, tooLarge = `request body over ${bytesMax} bytes`): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > bytesMax) {
    req.resume();
    return Promise.reject(new BadRequest(tooLarge, 413));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > bytesMax) over = true;
      else chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => (over ? reject(new BadRequest(tooLarge, 413)) : resolve(Buffer.concat(chunks))));
  });
}

/** Reads and parses a JSON object body of at most `bytesMax` bytes. */
export async function readJson(req: IncomingMessage, bytesMax: number): Promise<Json> {
  const bytes = await readBytes(req, bytesMax);
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new BadRequest(`malformed JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BadRequest('the body must be a JSON object');
  return value as Json;
}
