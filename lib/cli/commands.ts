/**
 * The `node` and `serve` subcommands: flag specs, --help texts, and turning flags into a
 * MemberConfig. Parsing is separate from running so tests (and the README test) can check a
 * command line without starting anything.
 */
import { readFile } from 'node:fs/promises';
import type { FlagSpecs, ParsedFlags } from './args.js';
import { EXIT_FAILED, EXIT_OK, EXIT_REMOVED, EXIT_USAGE, UsageError, addressKey, helpText, intFlag, parseFlags, parseHostPort, parsePeerList } from './args.js';
import type { MemberConfig } from './member.js';

/** Without `internal_port`, Raft listens on the HTTP port plus this (see serve-config.ts). */
const PEER_PORT_OFFSET = 1_000;

export const NODE_FLAGS: FlagSpecs = {
  id: { type: 'string', value: 'ID', help: "this member's id (letters, digits, '.', '_', '-')", required: true },
  peers: { type: 'string', value: 'LIST', help: "every member's Raft address, this one included:\nn1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003\n(required unless --join is given)" },
  join: { type: 'string', value: 'ADDRESS', help: "join a running cluster through any member's Raft address (host:port);\nthe member list comes from the cluster. Needs --listen (or --peers\nwith this node's entry). Ignored on restart once the data dir knows the cluster" },
  listen: { type: 'string', value: 'HOST:PORT', help: "this member's Raft address (with --join instead of --peers)" },
  'data-dir': { type: 'string', value: 'DIR', help: 'where the log, snapshots and hard state live (created if missing)', required: true },
  http: { type: 'string', value: 'HOST:PORT', help: 'serve the HTTP gateway here (default: no gateway)' },
  'http-peers': { type: 'string', value: 'LIST', help: "other members' gateways (n2=127.0.0.1:8002,...), for the leader hint\nnon-leaders give" },
  'cluster-secret-file': { type: 'string', value: 'FILE', help: 'file holding the shared cluster secret (16+ characters);\nrequired when a peer is not on loopback' },
  'admin-token-file': { type: 'string', value: 'FILE', help: 'file holding a token (16+ characters) that the gateway\'s membership\nroutes require; without it they serve loopback clients only' },
  forward: { type: 'boolean', help: 'when not the leader, serve the gateway\'s queue routes by forwarding\nthrough this member to the leader (default: answer with the leader hint);\nneeds --http' },
  'clients-max': { type: 'string', value: 'N', help: 'client processes (RaftQueueClient) served at once on the Raft port,\n0 to 1000000; 0 refuses every client (default 10000)' },
};

export const SERVE_FLAGS: FlagSpecs = {
  config: { type: 'string', value: 'FILE', help: '{"addresses": [{"ip": "127.0.0.1", "port": 8001, "internal_port": 9001}, ...]};\n`ip` may carry http://; without internal_port Raft uses port + ' + PEER_PORT_OFFSET, required: true },
  index: { type: 'string', value: 'N', help: 'which address is this node (0-based); its id is n<N>', required: true },
  'data-dir': { type: 'string', value: 'DIR', help: 'default: $RAFTQUEUE_DATA_ROOT (or <tmpdir>/raftqueue)/serve-<hash of the\naddress list>/n<N>, stable across restarts of the same cluster' },
  'cluster-secret-file': { type: 'string', value: 'FILE', help: 'file holding the shared cluster secret (16+ characters);\nrequired when an address is not loopback' },
  forward: { type: 'boolean', help: 'when not the leader, serve the gateway\'s queue routes by forwarding\nthrough this member to the leader (default: answer with the leader hint);\nalso set by "forward": true in the config file' },
};

/** The exit codes of a member (`node` and `serve`), as both --help texts state them. */
export const MEMBER_EXIT_CODES = [
  'exit codes:',
  `  ${EXIT_OK}  stopped cleanly (SIGTERM or SIGINT)`,
  `  ${EXIT_FAILED}  failed: the reason on one line, often with a 'hint:' line (data dir locked, port in use)`,
  `  ${EXIT_USAGE}  bad command line, or a configuration the member refuses (invalid options, a data dir`,
  '     of another member or cluster, a member list that conflicts with it): fix it, do not just restart',
  `  ${EXIT_REMOVED}  this member was removed from the cluster`,
  '',
].join('\n');

export const NODE_HELP = helpText(
  'node',
  '--id ID (--peers LIST | --join ADDRESS --listen HOST:PORT) --data-dir DIR [--http HOST:PORT]\n       [--http-peers LIST] [--cluster-secret-file FILE] [--forward] [--clients-max N]',
  'Runs one long-lived cluster member. Role and leader changes are logged on stderr.\nSIGTERM or SIGINT stops it gracefully (leadership handed over, storage closed) within 2 s.',
  NODE_FLAGS,
  MEMBER_EXIT_CODES,
);

export const SERVE_HELP = helpText(
  'serve',
  '--config FILE --index N [--data-dir DIR] [--cluster-secret-file FILE] [--forward]',
  "Runs member N of the cluster in FILE (the course design's launch form): the HTTP gateway on\n`port`, Raft on `internal_port`. Logging and stopping as for `raftqueue node`.",
  SERVE_FLAGS,
  MEMBER_EXIT_CODES,
);

/** A parsed command line: help to print, or a member to run. */
export type MemberCommand = { readonly help: string } | { readonly member: MemberConfig };

const LOOPBACK = /^(?:127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|::1|\[::1\])$/;

async function secretFrom(command: string, flags: ParsedFlags, hosts: readonly string[]): Promise<string | undefined> {
  const file = flags['cluster-secret-file'];
  if (typeof file !== 'string') {
    const remote = hosts.find((h) => !LOOPBACK.test(h));
    if (remote !== undefined) throw new UsageError(`--cluster-secret-file is required: ${remote} is not a loopback address`, command);
    return undefined;
  }
  let secret: string;
  try {
    secret = (await readFile(file, 'utf8')).trimEnd();
  } catch (error) {
    throw new UsageError(`--cluster-secret-file: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, command);
  }
  if (secret.length < 16) throw new UsageError(`--cluster-secret-file: the secret in ${file} is shorter than 16 characters`, command);
  return secret;
}

/** Reads a token file (trailing whitespace trimmed; 16+ characters). */
export async function tokenFrom(command: string, file: string | boolean | undefined, flag = 'admin-token-file'): Promise<string | undefined> {
  if (typeof file !== 'string') return undefined;
  let token: string;
  try {
    token = (await readFile(file, 'utf8')).trimEnd();
  } catch (error) {
    throw new UsageError(`--${flag}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, command);
  }
  if (token.length < 16) throw new UsageError(`--${flag}: the token in ${file} is shorter than 16 characters`, command);
  return token;
}

function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(':'));
}

/** The comparable form of an address already checked by parseHostPort or parsePeerList. */
function keyOf(address: string): string {
  const { host, port } = parseHostPort('node', 'address', address);
  return addressKey(host, port);
}

/** The member whose Raft address has this key, if any. */
function ownerOf(peers: Readonly<Record<string, string>>, key: string): string | undefined {
  return Object.keys(peers).find((peer) => keyOf(peers[peer] as string) === key);
}

const WILDCARD = new Set(['0.0.0.0', '::']);

/**
 * Refuses a gateway address that is a Raft address. This node's own two listeners also clash
 * on one port when either binds every interface (0.0.0.0 or ::), whatever the other's host.
 */
function checkOwnGateway(id: string, peers: Readonly<Record<string, string>>, http: { host: string; port: number }, httpFlag: string): void {
  const own = parseHostPort('node', 'peers', peers[id] as string);
  const wildcard = WILDCARD.has(own.host) || WILDCARD.has(http.host);
  if (own.port === http.port && (wildcard || addressKey(own.host, own.port) === addressKey(http.host, http.port))) {
    throw new UsageError(`--http ${httpFlag} takes the port of this node's Raft address (${id}=${peers[id] as string}); the gateway needs a port of its own`, 'node');
  }
  const owner = ownerOf(peers, addressKey(http.host, http.port));
  if (owner !== undefined) throw new UsageError(`--http ${httpFlag} is ${owner}'s Raft address in --peers; the gateway needs a port of its own`, 'node');
}

/** Parses `raftqueue node ...`; throws UsageError on a bad command line. */
export async function parseNodeCommand(argv: readonly string[]): Promise<MemberCommand> {
  const flags = parseFlags('node', argv, NODE_FLAGS);
  if (flags['help'] === true) return { help: NODE_HELP };
  const id = flags['id'] as string;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(id)) throw new UsageError(`--id: '${id}' is not letters, digits, '.', '_' or '-' (at most 64)`, 'node');
  const joinFlag = flags['join'];
  const listenFlag = flags['listen'];
  const join = typeof joinFlag === 'string' ? parseHostPort('node', 'join', joinFlag) : undefined;
  if (typeof listenFlag === 'string') parseHostPort('node', 'listen', listenFlag);
  if (flags['peers'] === undefined && (joinFlag === undefined || listenFlag === undefined)) {
    throw new UsageError('give --peers, or --join with --listen', 'node');
  }
  const peers = typeof flags['peers'] === 'string' ? parsePeerList('node', 'peers', flags['peers']) : {};
  if (typeof listenFlag === 'string') {
    if (peers[id] !== undefined && peers[id] !== listenFlag) throw new UsageError(`--listen ${listenFlag} differs from this node's entry in --peers (${peers[id]})`, 'node');
    const owner = ownerOf(peers, keyOf(listenFlag));
    if (owner !== undefined && owner !== id) throw new UsageError(`--listen ${listenFlag} is ${owner}'s address in --peers; each member needs its own`, 'node');
    peers[id] = listenFlag;
  }
  if (peers[id] === undefined) throw new UsageError(`--peers must include this node's id '${id}'`, 'node');
  if (Object.keys(peers).length > 7) throw new UsageError('--peers: at most 7 members', 'node');
  if (join !== undefined && ownerOf(peers, addressKey(join.host, join.port)) === id) {
    throw new UsageError(`--join ${joinFlag as string} is this node's own Raft address; give the address of a running member`, 'node');
  }
  const httpFlag = flags['http'];
  const http = typeof httpFlag === 'string' ? parseHostPort('node', 'http', httpFlag) : undefined;
  if (http) checkOwnGateway(id, peers, http, httpFlag as string);
  const forward = flags['forward'] === true;
  const clientsMax = typeof flags['clients-max'] === 'string' ? intFlag('node', 'clients-max', flags['clients-max'], 0, 1_000_000) : undefined;
  if (forward && !http) throw new UsageError('--forward changes how the HTTP gateway answers: give --http too', 'node');
  const httpPeersFlag = flags['http-peers'];
  const httpAddresses: Record<string, string> = {};
  if (typeof httpPeersFlag === 'string') {
    for (const [peer, address] of Object.entries(parsePeerList('node', 'http-peers', httpPeersFlag))) {
      if (peers[peer] === undefined) throw new UsageError(`--http-peers: '${peer}' is not in --peers`, 'node');
      const owner = ownerOf(peers, keyOf(address));
      if (owner !== undefined) throw new UsageError(`--http-peers: ${peer}=${address} is ${owner}'s Raft address in --peers; a gateway needs a port of its own`, 'node');
      if (peer !== id && http && keyOf(address) === addressKey(http.host, http.port)) {
        throw new UsageError(`--http-peers: ${peer}=${address} is this node's --http; each gateway needs its own address`, 'node');
      }
      httpAddresses[peer] = `http://${address}`;
    }
  }
  if (http && httpAddresses[id] === undefined) httpAddresses[id] = `http://${httpFlag as string}`;
  const clusterSecret = await secretFrom('node', flags, [...Object.values(peers), ...(typeof joinFlag === 'string' ? [joinFlag] : [])].map(hostOf));
  const adminToken = await tokenFrom('node', flags['admin-token-file']);
  return {
    member: {
      id,
      peers,
      ...(adminToken !== undefined ? { adminToken } : {}),
      ...(typeof joinFlag === 'string' ? { join: joinFlag } : {}),
      dataDir: flags['data-dir'] as string,
      ...(clusterSecret !== undefined ? { clusterSecret } : {}),
      ...(http ? { http } : {}),
      httpAddresses,
      ...(forward ? { forward } : {}),
      ...(clientsMax !== undefined ? { clientsMax } : {}),
    },
  };
}

/** Parses `raftqueue serve ...` (reads the config file); throws UsageError on a bad command line. */
export async function parseServeCommand(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<MemberCommand> {
  const flags = parseFlags('serve', argv, SERVE_FLAGS);
  if (flags['help'] === true) return { help: SERVE_HELP };
  const file = flags['config'] as string;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`--config: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, 'serve');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`--config: ${file} is not JSON: ${error instanceof Error ? error.message : String(error)}`, 'serve');
  }
  // Loaded here, not at the top: zod is needed only by `serve`, and `node` should start fast.
  const { derivedDataDir, parseServeFile } = await import('./serve-config.js');
  let members;
  let forward: boolean;
  try {
    ({ members, forward } = parseServeFile(json));
  } catch (error) {
    throw new UsageError(`--config: ${file}: ${error instanceof Error ? error.message : String(error)}`, 'serve');
  }
  const index = intFlag('serve', 'index', flags['index'] as string, 0, members.length - 1);
  const me = members[index] as (typeof members)[number];
  const dataDirFlag = flags['data-dir'];
  const clusterSecret = await secretFrom('serve', flags, members.map((m) => m.host));
  return {
    member: {
      id: me.id,
      peers: Object.fromEntries(members.map((m) => [m.id, m.peerAddress])),
      dataDir: typeof dataDirFlag === 'string' ? dataDirFlag : derivedDataDir(members, index, env),
      ...(clusterSecret !== undefined ? { clusterSecret } : {}),
      http: { host: me.host, port: me.httpPort },
      httpAddresses: Object.fromEntries(members.map((m) => [m.id, m.httpUrl])),
      ...(forward || flags['forward'] === true ? { forward: true } : {}),
    },
  };
}
