/**
 * The course design's cluster file for `raftqueue serve`:
 * `{"addresses": [{"ip": "127.0.0.1", "port": 8001, "internal_port": 9001}, ...]}`.
 *
 * `ip` may carry an `http://` scheme. Member `i` (0-based) gets the id `n<i>`, serves HTTP on
 * `port` and Raft on `internal_port`, or on `port + PEER_PORT_OFFSET` when that is missing.
 * An optional top-level `"forward": true` makes every member's gateway serve the queue routes
 * when it is not the leader, forwarding through its RaftQueue (the course design: only the
 * leader serves them, which is the default).
 */
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { addressKey } from './args.js';

/** Without `internal_port`, Raft listens on the HTTP port plus this. */
export const PEER_PORT_OFFSET = 1_000;

const port = z.number().int().min(1).max(65_535);

/** The file's schema; unknown fields are ignored so course files with extras still load. */
export const serveConfigSchema = z.object({
  addresses: z
    .array(z.object({ ip: z.string().min(1), port, internal_port: port.optional() }))
    .min(1, 'at least one address')
    .max(7, 'at most 7 members'),
  forward: z.boolean().optional(),
});

/** One member as `serve` runs it. */
export interface ServeMember {
  readonly id: string;
  readonly host: string;
  readonly httpPort: number;
  readonly peerPort: number;
  /** 'host:peerPort' as RaftQueue `peers` wants it. */
  readonly peerAddress: string;
  /** 'http://host:httpPort', the leader hint other members give. */
  readonly httpUrl: string;
}

/** The whole cluster file: its members and whether their gateways forward. */
export interface ServeFile {
  readonly members: ServeMember[];
  readonly forward: boolean;
}

/** Parses and checks the cluster file's JSON; throws an Error whose message names the problem. */
export function parseServeConfig(json: unknown): ServeMember[] {
  return parseServeFile(json).members;
}

/** As parseServeConfig, with the file's other settings. */
export function parseServeFile(json: unknown): ServeFile {
  const parsed = serveConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`invalid config ${issue?.path.join('.') || '(file)'}: ${issue?.message ?? 'invalid'}`);
  }
  const members = parsed.data.addresses.map((a, i): ServeMember => {
    const host = stripScheme(a.ip, i);
    const peerPort = a.internal_port ?? a.port + PEER_PORT_OFFSET;
    if (peerPort > 65_535) throw new Error(`invalid config addresses.${i}: port ${a.port} + ${PEER_PORT_OFFSET} is over 65535; give internal_port`);
    const bracketed = host.includes(':') ? `[${host}]` : host;
    return { id: `n${i}`, host, httpPort: a.port, peerPort, peerAddress: `${bracketed}:${peerPort}`, httpUrl: `http://${bracketed}:${a.port}` };
  });
  const seen = new Map<string, string>();
  for (const m of members) {
    for (const [what, p] of [['port', m.httpPort], ['internal_port', m.peerPort]] as const) {
      const key = addressKey(m.host, p);
      const other = seen.get(key);
      if (other !== undefined) throw new Error(`invalid config: ${key} is used twice (${other} and ${m.id} ${what})`);
      seen.set(key, `${m.id} ${what}`);
    }
  }
  return { members, forward: parsed.data.forward ?? false };
}

/** The bare host of `ip`: without an http:// scheme, a trailing slash or IPv6 brackets. */
function stripScheme(ip: string, index: number): string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*?)\/?$/.exec(ip.trim());
  if (!m) return ip.trim().replace(/^\[(.*)\]$/, '$1');
  if ((m[1] as string).toLowerCase() !== 'http') throw new Error(`invalid config addresses.${index}.ip: only http:// is served, got '${ip}'`);
  const host = (m[2] as string).replace(/^\[(.*)\]$/, '$1');
  if (host.length === 0 || /[/\s]/.test(host)) throw new Error(`invalid config addresses.${index}.ip: expected a host, got '${ip}'`);
  return host;
}

/**
 * The data directory used without --data-dir: under `$RAFTQUEUE_DATA_ROOT` (default
 * `<os tmpdir>/raftqueue`), named by a hash of the whole member list and the index. The same
 * file and index always give the same directory (a restart recovers); other addresses give
 * another one (a different cluster starts empty).
 */
export function derivedDataDir(members: readonly ServeMember[], index: number, env: NodeJS.ProcessEnv = process.env): string {
  const key = JSON.stringify(members.map((m) => [m.host, m.httpPort, m.peerPort]));
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 16);
  return join(env['RAFTQUEUE_DATA_ROOT'] ?? join(tmpdir(), 'raftqueue'), `serve-${hash}`, `n${index}`);
}
