/**
 * HTTP calls of the chaos clients, classified by what they prove: a reply, a connection refused
 * (the request never reached the node: it certainly did not happen), or lost (sent, perhaps
 * processed, no reply: unknown).
 */
import { Agent } from 'node:http';
import { httpJson } from '../../lib/cli/http-client.js';

export type Answer =
  | { readonly kind: 'reply'; readonly status: number; readonly body: Record<string, unknown>; readonly role: string | undefined; readonly text: string }
  | { readonly kind: 'refused'; readonly error: string }
  | { readonly kind: 'lost'; readonly error: string };

/** Keep-alive agents, one per base URL. */
export class Agents {
  private readonly agents = new Map<string, Agent>();

  get(url: string): Agent {
    let a = this.agents.get(url);
    if (a === undefined) {
      a = new Agent({ keepAlive: true, maxSockets: 64 });
      this.agents.set(url, a);
    }
    return a;
  }

  destroy(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}

export async function call(agents: Agents | undefined, base: string, method: string, path: string, body: unknown, timeoutMs: number): Promise<Answer> {
  try {
    const r = await httpJson(method, `${base}${path}`, body, { timeoutMs, ...(agents ? { agent: agents.get(base) } : {}) });
    const parsed = typeof r.body === 'object' && r.body !== null && !Array.isArray(r.body) ? (r.body as Record<string, unknown>) : {};
    const role = r.headers['x-raftqueue-role'];
    return { kind: 'reply', status: r.status, body: parsed, role: typeof role === 'string' ? role : undefined, text: r.text.slice(0, 300) };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const text = error instanceof Error ? error.message : String(error);
    if (code === 'ECONNREFUSED') return { kind: 'refused', error: text };
    return { kind: 'lost', error: code ? `${code}: ${text}` : text };
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
