/**
 * `raftqueue members list|add|remove|transfer`: membership of a running cluster, through the
 * HTTP gateway of any member (`raftqueue node --http ...`); the member forwards to the leader.
 */
import type { FlagSpecs } from './args.js';
import { UsageError, helpText, intFlag, parseFlags, parseHostPort } from './args.js';
import { tokenFrom } from './commands.js';
import { httpJson } from './http-client.js';

export const MEMBERS_FLAGS: FlagSpecs = {
  http: { type: 'string', value: 'HOST:PORT', help: "the HTTP gateway of any running member (its --http)", required: true },
  'timeout-ms': { type: 'string', value: 'N', help: 'how long add/remove/transfer may take (default 60000)' },
  json: { type: 'boolean', help: 'print the JSON reply instead of a table' },
  'admin-token-file': { type: 'string', value: 'FILE', help: "the member's admin token (its --admin-token-file), sent as a Bearer token" },
};

export const MEMBERS_HELP = helpText(
  'members',
  'list|add ID ADDRESS|remove ID|transfer [ID] --http HOST:PORT [--timeout-ms N] [--json]\n       [--admin-token-file FILE]',
  [
    'Lists or changes the members of a running cluster, through any member\'s HTTP gateway:',
    '  list              voters and learners (with replication progress when asked of the leader)',
    '  add ID ADDRESS    add a member whose node runs with Raft on ADDRESS (host:port): it joins',
    '                    as a learner and is promoted to voter once caught up',
    '  remove ID         remove a member (the leader too: it hands over first)',
    '  transfer [ID]     hand leadership to ID (default: the most caught-up voter)',
    'Exit status: 0 done, 1 refused or failed (the reason is printed), 2 bad command line.',
  ].join('\n'),
  MEMBERS_FLAGS,
);

interface MemberRow {
  readonly id: string;
  readonly address?: string | null;
  readonly role: string;
  readonly isLeader: boolean;
  readonly match?: number;
  readonly lag?: number;
}

/** Runs the command; returns the exit code. Output goes to `out`, errors to `err`. */
export async function runMembers(argv: readonly string[], out: (s: string) => void = (s) => process.stdout.write(s), err: (s: string) => void = (s) => process.stderr.write(s)): Promise<number> {
  const positional: string[] = [];
  let i = 0;
  while (i < argv.length && !(argv[i] as string).startsWith('-')) positional.push(argv[i++] as string);
  const flags = parseFlags('members', argv.slice(i), MEMBERS_FLAGS);
  if (flags['help'] === true) {
    out(MEMBERS_HELP);
    return 0;
  }
  const [action, ...args] = positional;
  const http = parseHostPort('members', 'http', flags['http'] as string);
  const base = `http://${http.host.includes(':') ? `[${http.host}]` : http.host}:${http.port}`;
  const timeoutMs = typeof flags['timeout-ms'] === 'string' ? intFlag('members', 'timeout-ms', flags['timeout-ms'], 1, 3_600_000) : 60_000;
  const want = (n: number, usage: string): void => {
    if (args.length !== n) throw new UsageError(`usage: raftqueue members ${usage}`, 'members');
  };
  let method: string;
  let path: string;
  let body: Record<string, unknown> | undefined;
  switch (action) {
    case 'list':
      want(0, 'list --http HOST:PORT');
      method = 'GET';
      path = '/members';
      break;
    case 'add':
      want(2, 'add ID ADDRESS --http HOST:PORT');
      parseHostPort('members', 'ADDRESS', args[1] as string);
      method = 'POST';
      path = '/members';
      body = { id: args[0], address: args[1], timeoutMs };
      break;
    case 'remove':
      want(1, 'remove ID --http HOST:PORT');
      method = 'DELETE';
      path = `/members/${encodeURIComponent(args[0] as string)}`;
      break;
    case 'transfer':
      if (args.length > 1) throw new UsageError('usage: raftqueue members transfer [ID] --http HOST:PORT', 'members');
      method = 'POST';
      path = '/leader';
      body = { ...(args[0] !== undefined ? { to: args[0] } : {}), timeoutMs };
      break;
    case undefined:
      throw new UsageError('say list, add, remove or transfer', 'members');
    default:
      throw new UsageError(`unknown action '${action}' (list, add, remove, transfer)`, 'members');
  }
  const token = await tokenFrom('members', flags['admin-token-file']);
  let reply;
  try {
    reply = await httpJson(method, `${base}${path}`, body, { timeoutMs: timeoutMs + 5_000, ...(token !== undefined ? { headers: { authorization: `Bearer ${token}` } } : {}) });
  } catch (error) {
    err(`raftqueue members: cannot reach ${base}: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  const json = reply.body as { success?: boolean; error?: string; members?: MemberRow[]; leaderId?: string | null };
  if (reply.status !== 200 || json.success !== true) {
    err(`raftqueue members ${action}: ${json.error ?? `HTTP ${reply.status}`}\n`);
    return 1;
  }
  if (flags['json'] === true) {
    out(`${JSON.stringify(json)}\n`);
    return 0;
  }
  if (action === 'transfer') {
    out(`leader: ${json.leaderId ?? '?'}\n`);
    return 0;
  }
  out(formatMembers(json.members ?? []));
  return 0;
}

/** A fixed-width table: id, role, address, leader mark and progress when known. */
export function formatMembers(members: readonly MemberRow[]): string {
  const rows = [['ID', 'ROLE', 'ADDRESS', 'LEADER', 'MATCH', 'LAG']];
  for (const m of members) {
    rows.push([m.id, m.role, m.address ?? '?', m.isLeader ? 'yes' : '', m.match === undefined ? '' : String(m.match), m.lag === undefined ? '' : String(m.lag)]);
  }
  const widths = (rows[0] as string[]).map((_, c) => Math.max(...rows.map((r) => (r[c] as string).length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c] as number)).join('  ').trimEnd()).join('\n') + '\n';
}
