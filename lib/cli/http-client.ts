/**
 * A minimal JSON-over-HTTP client (node:http) for the demo, the examples and the tests.
 */
import { Agent, request } from 'node:http';

export interface HttpReply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Parsed JSON, or the raw text when the body is not JSON. */
  readonly body: unknown;
  readonly text: string;
}

/** Sends one request; rejects on a network error or after `timeoutMs`. */
export function httpJson(
  method: string,
  url: string,
  body?: unknown,
  options: { timeoutMs?: number; agent?: Agent; rawBody?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<HttpReply> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const payload = options.rawBody ?? (body === undefined ? undefined : JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method,
      agent: options.agent ?? false,
      headers: { ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }), ...options.headers },
      timeout: timeoutMs,
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch (error) {
          // Not JSON (e.g. /metrics): hand back the text as the body.
          if (!(error instanceof SyntaxError)) throw error;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed, text });
      });
    });
    req.end(payload);
  });
}
