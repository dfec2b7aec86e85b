/**
 * `raftqueue dlq list|redrive|purge TOPIC`: the dead letters of a topic (in `TOPIC.dlq`) in a
 * running cluster, through the HTTP gateway of any member (`raftqueue node --http ...`); the
 * member forwards to the leader. See lib/http/dlq.ts for the routes.
 */
import type { FlagSpecs } from './args.js';
import { UsageError, helpText, intFlag, parseFlags, parseHostPort } from './args.js';
import { tokenFrom } from './commands.js';
import { httpJson } from './http-client.js';

export const DLQ_FLAGS: FlagSpecs = {
  http: { type: 'string', value: 'HOST:PORT', help: 'the HTTP gateway of any running member (its --http)', required: true },
  limit: { type: 'string', value: 'N', help: 'list: most dead letters shown, 1 to 1000 (default 100)' },
  to: { type: 'string', value: 'TOPIC', help: 'redrive: move them to TOPIC (default: the topic each came from)' },
  max: { type: 'string', value: 'N', help: 'redrive: most dead letters moved, 1 to 10000 (default all, up to 10000)' },
  json: { type: 'boolean', help: 'print the JSON reply instead of a table' },
  'admin-token-file': { type: 'string', value: 'FILE', help: "the member's admin token (its --admin-token-file), sent as a Bearer token (redrive, purge)" },
};

export const DLQ_HELP = helpText(
  'dlq',
  'list|redrive|purge TOPIC --http HOST:PORT [--limit N] [--to TOPIC] [--max N] [--json]\n       [--admin-token-file FILE]',
  [
    "The dead letters of TOPIC (kept in TOPIC.dlq), through any member's HTTP gateway:",
    '  list TOPIC      the dead letters, oldest first, without taking them: offset, where each',
    '                  came from, why (maxDeliveries or expired), attempts, key, payload',
    '  redrive TOPIC   move them back to the topic each came from (or --to), each once, with its',
    '                  key, priority and headers',
    '  purge TOPIC     drop every dead letter of TOPIC',
    'Exit status: 0 done, 1 refused or failed (the reason is printed), 2 bad command line.',
  ].join('\n'),
  DLQ_FLAGS,
);

interface DeadLetterRow {
  readonly offset: number;
  readonly message: unknown;
  readonly encoding?: string;
  readonly key?: string;
  readonly deadLetter?: { readonly topic: string; readonly offset: number; readonly reason: string; readonly attempts: number; readonly group: string };
}

/** Runs the command; returns the exit code. Output goes to `out`, errors to `err`. */
export async function runDlq(argv: readonly string[], out: (s: string) => void = (s) => process.stdout.write(s), err: (s: string) => void = (s) => process.stderr.write(s)): Promise<number> {
  const positional: string[] = [];
  let i = 0;
  while (i < argv.length && !(argv[i] as string).startsWith('-')) positional.push(argv[i++] as string);
  const flags = parseFlags('dlq', argv.slice(i), DLQ_FLAGS);
  if (flags['help'] === true) {
    out(DLQ_HELP);
    return 0;
  }
  const [action, topic, ...extra] = positional;
  if (action === undefined) throw new UsageError('say list, redrive or purge', 'dlq');
  if (!['list', 'redrive', 'purge'].includes(action)) throw new UsageError(`unknown action '${action}' (list, redrive, purge)`, 'dlq');
  if (topic === undefined || extra.length > 0) throw new UsageError(`usage: raftqueue dlq ${action} TOPIC --http HOST:PORT`, 'dlq');
  const http = parseHostPort('dlq', 'http', flags['http'] as string);
  const base = `http://${http.host.includes(':') ? `[${http.host}]` : http.host}:${http.port}`;
  const path = `/dlq/${encodeURIComponent(topic)}`;
  let method: string;
  let url: string;
  let body: Record<string, unknown> | undefined;
  if (action === 'list') {
    const limit = typeof flags['limit'] === 'string' ? intFlag('dlq', 'limit', flags['limit'], 1, 1_000) : undefined;
    method = 'GET';
    url = `${base}${path}${limit === undefined ? '' : `?limit=${limit}`}`;
  } else if (action === 'redrive') {
    const max = typeof flags['max'] === 'string' ? intFlag('dlq', 'max', flags['max'], 1, 10_000) : undefined;
    method = 'POST';
    url = `${base}${path}/redrive`;
    body = { ...(typeof flags['to'] === 'string' ? { to: flags['to'] } : {}), ...(max !== undefined ? { max } : {}) };
  } else {
    method = 'DELETE';
    url = `${base}${path}`;
  }
  const token = action === 'list' ? undefined : await tokenFrom('dlq', flags['admin-token-file']);
  let reply;
  try {
    reply = await httpJson(method, url, body, { timeoutMs: 30_000, ...(token !== undefined ? { headers: { authorization: `Bearer ${token}` } } : {}) });
  } catch (error) {
    err(`raftqueue dlq: cannot reach ${base}: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  const json = reply.body as { success?: boolean; error?: string; messages?: DeadLetterRow[]; moved?: number; remaining?: number; stopped?: string; purged?: number };
  if (reply.status !== 200 || json.success !== true) {
    err(`raftqueue dlq ${action}: ${json.error ?? `HTTP ${reply.status}`}\n`);
    return 1;
  }
  if (flags['json'] === true) {
    out(`${JSON.stringify(json)}\n`);
    return 0;
  }
  if (action === 'list') out(formatDeadLetters(json.messages ?? []));
  else if (action === 'redrive') out(`moved ${json.moved ?? 0}, ${json.remaining ?? 0} left${json.stopped !== undefined ? ` (stopped: ${json.stopped})` : ''}\n`);
  else out(`purged ${json.purged ?? 0}\n`);
  return 0;
}

/** A fixed-width table of dead letters; the payload as JSON, cut at 60 characters. */
export function formatDeadLetters(rows: readonly DeadLetterRow[]): string {
  const table = [['OFFSET', 'FROM', 'REASON', 'ATTEMPTS', 'GROUP', 'KEY', 'PAYLOAD']];
  for (const r of rows) {
    const d = r.deadLetter;
    const payload = r.encoding === 'base64' ? `base64:${String(r.message)}` : JSON.stringify(r.message);
    table.push([String(r.offset), d === undefined ? '?' : `${d.topic}@${d.offset}`, d?.reason ?? '?', d === undefined ? '' : String(d.attempts), d?.group ?? '', r.key ?? '', payload.length > 60 ? `${payload.slice(0, 57)}...` : payload]);
  }
  const widths = (table[0] as string[]).map((_, c) => Math.max(...table.map((r) => (r[c] as string).length)));
  return table.map((r) => r.map((cell, c) => cell.padEnd(widths[c] as number)).join('  ').trimEnd()).join('\n') + '\n';
}
