/**
 * The deployment examples in examples/deploy/ are checked without systemd or Docker: every
 * member's command line (the unit's ExecStart filled in from each env file, each compose
 * service's command) is parsed by the command's own parser, the members agree on who the
 * members are, each has its own data dir, restarts spare the exit codes where restarting cannot
 * help, and no secret is written in any of the files.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { parseNodeCommand } from '../lib/cli/commands.js';
import { Gateway } from '../lib/cli/gateway.js';
import { STOP_DEADLINE_MS } from '../lib/cli/member.js';
import type { MemberConfig } from '../lib/cli/member.js';
import { CliProcesses, freePorts, repoRoot } from './helpers/cli-process.js';

const deployDir = join(repoRoot, 'examples', 'deploy');
const read = (name: string): string => readFileSync(join(deployDir, name), 'utf8');
/** What the tests put in the secret files the examples point at (16+ characters). */
const TEST_SECRET = 'deploy-test-secret-0123456789';

/** Runs a parsed command line; fails the test with the parser's message if it is refused. */
async function memberOf(t: ExecutionContext, what: string, argv: readonly string[]): Promise<MemberConfig> {
  t.is(argv[0], 'node', `${what}: the subcommand is 'node'`);
  const parsed = await parseNodeCommand(argv.slice(1)).catch((error: unknown) => {
    throw new Error(`${what}: raftqueue ${argv.join(' ')}\nis refused: ${error instanceof Error ? error.message : String(error)}`);
  });
  if (!('member' in parsed)) throw new Error(`${what}: the command line asks for --help`);
  return parsed.member;
}

/** Host and port of 'host:port'. */
function hostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  return { host: address.slice(0, colon), port: Number(address.slice(colon + 1)) };
}

/** The sorted entries of a member list, to compare lists across members. */
const sorted = (record: Readonly<Record<string, string>>): [string, string][] => Object.entries(record).sort(([a], [b]) => a.localeCompare(b));

// ---- systemd ------------------------------------------------------------------------------------

/** A unit file's settings: section -> key -> every value in order (an empty one resets a list). */
type Unit = Map<string, Map<string, string[]>>;

/** Parses the subset of systemd.syntax(7) the examples use: sections, comments, `\` continuations. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  for (const line of text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim())) {
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      section = new Map();
      unit.set(header[1] as string, section);
      continue;
    }
    const eq = line.indexOf('=');
    if (section === undefined || eq <= 0) throw new Error(`not a unit file line: ${line}`);
    const key = line.slice(0, eq);
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1)]);
  }
  return unit;
}

/** The one value of a setting (the last one, as systemd uses for single-valued settings). */
function setting(unit: Unit, section: string, key: string): string | undefined {
  return unit.get(section)?.get(key)?.at(-1);
}

/** An EnvironmentFile: KEY=VALUE lines and comments (the examples use no quoting). */
function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n').map((l) => l.trim())) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=([^'"\\\s]*)$/.exec(line);
    if (!m) throw new Error(`not a plain KEY=VALUE line: ${line}`);
    env[m[1] as string] = m[2] as string;
  }
  return env;
}

/**
 * Expands an ExecStart= line as systemd does for the forms the examples use: words split on
 * whitespace, `%i` the instance, `%%` a percent sign, `${NAME}` substituted within its word.
 * Quotes, bare `$NAME` (which splits), other specifiers and unknown names are refused, so the
 * test cannot pass on a line systemd would expand differently.
 */
function expandExecStart(line: string, instance: string, env: Readonly<Record<string, string>>): string[] {
  if (/["'\\]/.test(line)) throw new Error(`ExecStart uses quoting, which this check does not model: ${line}`);
  return line.split(/\s+/).filter((w) => w !== '').map((word) => {
    if (/\$(?!\{)/.test(word)) throw new Error(`bare $ in '${word}': use \${NAME}, which does not split`);
    const withVars = word.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const value = env[name];
      if (value === undefined) throw new Error(`ExecStart uses \${${name}}, which nothing sets`);
      return value;
    });
    return withVars.replace(/%(.)/g, (_, c: string) => {
      if (c === 'i') return instance;
      if (c === '%') return '%';
      throw new Error(`ExecStart uses the specifier %${c}, which this check does not model`);
    });
  });
}

/**
 * The credentials a unit loads (id -> source path). Each is written to `dir` with the test
 * secret, as systemd would copy it into the unit's credentials directory.
 */
function writeCredentials(unit: Unit, dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const value of unit.get('Service')?.get('LoadCredential') ?? []) {
    const [id, source] = value.split(':');
    if (id === undefined || source === undefined) throw new Error(`LoadCredential=${value}: expected ID:PATH`);
    out[id] = source;
    writeFileSync(join(dir, id), `${TEST_SECRET}\n`);
  }
  return out;
}

/** Parses the ExecStart of `unit` for `instance`, filled in from `envFile` and the credentials. */
async function unitMember(t: ExecutionContext, unit: Unit, instance: string, envFile: string, credentialsDir: string): Promise<MemberConfig> {
  const execStart = (unit.get('Service')?.get('ExecStart') ?? []).filter((v) => v !== '');
  t.is(execStart.length, 1, 'exactly one ExecStart= after resets');
  const env = { ...parseEnvFile(read(envFile)), CREDENTIALS_DIRECTORY: credentialsDir };
  const [binary, ...argv] = expandExecStart(execStart[0] as string, instance, env);
  t.regex(binary as string, /^\/\S*\/raftqueue$/, 'ExecStart runs the raftqueue command by absolute path');
  return memberOf(t, `raftqueue@${instance} with ${envFile}`, argv);
}

/** A unit with a drop-in applied: later values append, an empty value resets (systemd.unit(5)). */
function withDropIn(unit: Unit, dropIn: Unit): Unit {
  const merged: Unit = new Map([...unit].map(([name, settings]) => [name, new Map(settings)]));
  for (const [name, settings] of dropIn) {
    const target = merged.get(name) ?? new Map<string, string[]>();
    merged.set(name, target);
    for (const [key, values] of settings) {
      let list = target.get(key) ?? [];
      for (const value of values) list = value === '' ? [] : [...list, value];
      target.set(key, list);
    }
  }
  return merged;
}

test('deploy: the systemd unit runs each example member with a command line the command accepts', async (t) => {
  const procs = new CliProcesses(t);
  const unit = parseUnit(read('raftqueue@.service'));
  const creds = procs.tempDir('raftqueue-deploy-creds-');
  t.deepEqual(Object.keys(writeCredentials(unit, creds)).sort(), ['admin-token', 'cluster-secret']);
  const members = new Map<string, MemberConfig>();
  for (const id of ['n1', 'n2', 'n3']) members.set(id, await unitMember(t, unit, id, `${id}.env`, creds));
  const founders = sorted((members.get('n1') as MemberConfig).peers);
  t.deepEqual(founders.map(([id]) => id), ['n1', 'n2', 'n3']);
  const gateways = new Set<string>();
  for (const [id, m] of members) {
    t.is(m.id, id);
    t.deepEqual(sorted(m.peers), founders, `${id} lists the same members and addresses`);
    t.is(m.dataDir, `/var/lib/raftqueue/${id}`);
    t.is(m.clusterSecret, TEST_SECRET, `${id} reads the cluster secret from its credential`);
    t.is(m.adminToken, TEST_SECRET, `${id} reads the admin token from its credential`);
    // The gateway and the Raft listener are on this member's own host.
    t.is(m.http?.host, hostPort(m.peers[id] as string).host, `${id}: --http is on the host of its --peers entry`);
    t.deepEqual(Object.keys(m.httpAddresses ?? {}).sort(), ['n1', 'n2', 'n3'], `${id} knows every gateway for leader hints`);
    t.is(m.httpAddresses?.[id], `http://${m.http?.host}:${m.http?.port}`, `${id}'s own entry in HTTP_PEERS is its --http`);
    gateways.add(JSON.stringify(sorted(m.httpAddresses ?? {})));
  }
  t.is(gateways.size, 1, 'every member lists the same gateways');
  // The data dir is the one systemd creates for the instance.
  t.is(setting(unit, 'Service', 'StateDirectory'), 'raftqueue/%i');
});

test('deploy: the join drop-in runs a fourth member that joins through a founding member', async (t) => {
  const procs = new CliProcesses(t);
  const unit = parseUnit(read('raftqueue@.service'));
  const creds = procs.tempDir('raftqueue-deploy-creds-');
  writeCredentials(unit, creds);
  const joined = withDropIn(unit, parseUnit(read('join.conf')));
  const m = await unitMember(t, joined, 'n4', 'n4.env', creds);
  const founders = parseEnvFile(read('n1.env'))['PEERS'] ?? '';
  t.is(m.id, 'n4');
  t.true(m.join !== undefined && founders.split(',').some((entry) => entry.endsWith(`=${m.join}`)), `--join ${m.join} is a founding member's Raft address (${founders})`);
  t.deepEqual(Object.keys(m.peers), ['n4'], 'the member list comes from the cluster, not the command line');
  t.false(founders.includes(m.peers['n4'] as string), 'n4 has an address of its own');
  t.is(m.dataDir, '/var/lib/raftqueue/n4');
  t.is(m.clusterSecret, TEST_SECRET);
});

test('deploy: the systemd unit restarts on failure but not on exit 2 or 3, and stops gracefully', (t) => {
  const unit = parseUnit(read('raftqueue@.service'));
  const service = (key: string): string | undefined => setting(unit, 'Service', key);
  t.is(service('Restart'), 'on-failure');
  const prevented = (service('RestartPreventExitStatus') ?? '').split(/\s+/);
  t.true(prevented.includes('2'), 'exit 2 (configuration refused) is not restarted');
  t.true(prevented.includes('3'), 'exit 3 (removed from the cluster) is not restarted');
  t.is(service('KillSignal') ?? 'SIGTERM', 'SIGTERM');
  const stopS = /^(\d+)s$/.exec(service('TimeoutStopSec') ?? '');
  t.truthy(stopS, 'TimeoutStopSec is given in seconds');
  t.true(Number(stopS?.[1]) * 1000 > STOP_DEADLINE_MS, `TimeoutStopSec outlasts the command's own stop deadline (${STOP_DEADLINE_MS} ms)`);
  t.notRegex(service('User') ?? 'root', /^(root|0)$/, 'a dedicated user, not root');
  for (const [key, value] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['PrivateTmp', 'yes'], ['ProtectHome', 'yes']] as const) {
    t.is(service(key), value, `${key}=${value}`);
  }
});

test('deploy: no secret is written in the unit, the drop-in or the env files', (t) => {
  const unit = withDropIn(parseUnit(read('raftqueue@.service')), parseUnit(read('join.conf')));
  const service = unit.get('Service') ?? new Map<string, string[]>();
  for (const key of ['Environment', 'SetCredential', 'SetCredentialEncrypted']) t.is(service.get(key), undefined, `no ${key}=`);
  for (const value of service.get('LoadCredential') ?? []) t.regex(value, /^[\w-]+:\/etc\/raftqueue\/[\w-]+$/, 'credentials come from root-owned files');
  for (const line of service.get('ExecStart') ?? []) {
    for (const m of line.matchAll(/--(cluster-secret-file|admin-token-file) (\S+)/g)) t.regex(m[2] as string, /^\$\{CREDENTIALS_DIRECTORY\}\//, `--${m[1]} reads a credential`);
  }
  for (const file of ['n1.env', 'n2.env', 'n3.env', 'n4.env']) {
    for (const key of Object.keys(parseEnvFile(read(file)))) t.notRegex(key, /SECRET|TOKEN|PASSWORD|KEY/i, `${file}: ${key}`);
  }
});

// ---- Docker Compose -----------------------------------------------------------------------------

interface ComposeService {
  readonly command?: string | string[];
  readonly ports?: string[];
  readonly volumes?: string[];
  readonly secrets?: string[];
  readonly environment?: Record<string, string> | string[];
  readonly restart?: string;
  readonly stop_signal?: string;
  readonly stop_grace_period?: string;
  readonly healthcheck?: { readonly test?: string[] };
}

interface Compose {
  readonly services: Record<string, ComposeService>;
  readonly volumes?: Record<string, unknown>;
  readonly secrets?: Record<string, Record<string, unknown>>;
}

const compose = parseYaml(read('compose.yaml'), { merge: true }) as Compose;

/**
 * A service's command as argv. Compose splits a string command shell-style; the check allows
 * only characters for which that is a plain split on whitespace (no quotes, no `$`
 * interpolation).
 */
function commandArgv(name: string, command: string | string[] | undefined): string[] {
  if (Array.isArray(command)) return command;
  if (typeof command !== 'string') throw new Error(`service ${name} has no command`);
  if (!/^[\w\s=:,./@-]+$/.test(command)) throw new Error(`service ${name}: the command has characters compose would treat specially: ${command}`);
  return command.split(/\s+/).filter((w) => w !== '');
}

/** A compose secret mounted at /run/secrets/<name>, read from the test's secret file instead. */
function composeMemberArgv(name: string, service: ComposeService, secretsDir: string): string[] {
  return commandArgv(name, service.command).map((arg) => {
    const m = /^\/run\/secrets\/([\w-]+)$/.exec(arg);
    if (!m) return arg;
    if (!(service.secrets ?? []).includes(m[1] as string)) throw new Error(`service ${name} reads secret ${m[1]} without mounting it`);
    return join(secretsDir, m[1] as string);
  });
}

async function composeMembers(t: ExecutionContext): Promise<Map<string, MemberConfig>> {
  const procs = new CliProcesses(t);
  const secretsDir = procs.tempDir('raftqueue-deploy-secrets-');
  for (const name of Object.keys(compose.secrets ?? {})) writeFileSync(join(secretsDir, name), `${TEST_SECRET}\n`);
  const members = new Map<string, MemberConfig>();
  for (const [name, service] of Object.entries(compose.services)) {
    members.set(name, await memberOf(t, `compose service ${name}`, composeMemberArgv(name, service, secretsDir)));
  }
  return members;
}

test('deploy: compose runs three members whose command lines the command accepts and agree', async (t) => {
  const members = await composeMembers(t);
  t.deepEqual([...members.keys()].sort(), ['n1', 'n2', 'n3']);
  const founders = sorted((members.get('n1') as MemberConfig).peers);
  for (const [name, m] of members) {
    t.is(m.id, name, `service ${name} runs the member of the same id`);
    t.deepEqual(sorted(m.peers), founders, `${name} lists the same members and addresses`);
    t.is(m.clusterSecret, TEST_SECRET, `${name} reads the shared secret`);
  }
  // Every Raft address names a service of this file, so it resolves on the compose network and
  // each member binds its own.
  for (const [id, address] of founders) t.is(hostPort(address).host, id, `${id}'s Raft address is its service name`);
});

test('deploy: compose gives each member its own data volume, gateway port and a /status healthcheck', async (t) => {
  const members = await composeMembers(t);
  const hostPorts = new Set<string>();
  const volumes = new Set<string>();
  for (const [name, m] of members) {
    const service = compose.services[name] as ComposeService;
    const mappings = (service.ports ?? []).map((p) => /^(?:([\d.]+):)?(\d+):(\d+)$/.exec(p));
    t.is(mappings.length, 1, `${name} publishes its gateway`);
    const [, bindHost, hostSide, containerPort] = mappings[0] ?? [];
    t.is(bindHost, '127.0.0.1', `${name}'s gateway is published on loopback only`);
    t.is(Number(containerPort), m.http?.port as number, `${name} publishes the port its gateway listens on`);
    t.false(hostPorts.has(hostSide as string), `host port ${hostSide} is published once`);
    hostPorts.add(hostSide as string);
    // Followers' leader hints name the published addresses, which clients on the host reach.
    for (const other of members.values()) t.is(other.httpAddresses?.[name], `http://127.0.0.1:${hostSide}`, `${other.id}'s hint for ${name}`);
    const mounts = (service.volumes ?? []).map((v) => v.split(':'));
    const data = mounts.find(([, target]) => target === m.dataDir);
    t.truthy(data, `${name} mounts a volume at its --data-dir ${m.dataDir}`);
    const source = data?.[0] as string;
    t.true(source in (compose.volumes ?? {}), `${name}'s data is the named volume ${source}`);
    t.false(volumes.has(source), `volume ${source} belongs to one member`);
    volumes.add(source);
    t.deepEqual(service.healthcheck?.test?.slice(0, 3), ['CMD', 'node', '-e']);
    t.true(service.healthcheck?.test?.[3]?.includes(`'http://127.0.0.1:${m.http?.port}/status'`), `${name}'s healthcheck asks its own gateway's /status`);
  }
});

test('deploy: compose restarts on failure, stops gracefully, and keeps the secret out of the file', (t) => {
  for (const [name, service] of Object.entries(compose.services)) {
    t.regex(service.restart ?? '', /^on-failure(:\d+)?$/, `${name} restarts on failure only`);
    t.is(service.stop_signal ?? 'SIGTERM', 'SIGTERM');
    const grace = /^(\d+)s$/.exec(service.stop_grace_period ?? '');
    t.true(grace !== null && Number(grace[1]) * 1000 > STOP_DEADLINE_MS, `${name}'s stop_grace_period outlasts the command's stop deadline`);
    const environment = Array.isArray(service.environment) ? service.environment.map((e) => e.split('=')[0] as string) : Object.keys(service.environment ?? {});
    for (const key of environment) t.notRegex(key, /SECRET|TOKEN|PASSWORD|KEY/i, `${name}: environment ${key}`);
  }
  const secrets = Object.entries(compose.secrets ?? {});
  t.true(secrets.length > 0);
  const ignored = read('.gitignore').split('\n');
  const dockerIgnored = read('Dockerfile.dockerignore').split('\n');
  for (const [name, source] of secrets) {
    t.deepEqual(Object.keys(source), ['file'], `secret ${name} comes from a file (not inline content or the environment)`);
    const file = String(source['file']).replace(/^\.\//, '');
    t.true(ignored.includes(file), `${file} is in examples/deploy/.gitignore`);
    t.true(dockerIgnored.includes(`examples/deploy/${file}`) || dockerIgnored.includes('examples/deploy/*.txt'), `${file} stays out of the build context`);
  }
});

test('deploy: the compose healthcheck passes against a gateway and fails without one', async (t) => {
  const script = (compose.services['n1'] as ComposeService).healthcheck?.test?.[3] ?? '';
  const gateway = new Gateway(undefined);
  t.teardown(() => gateway.close());
  const { port } = await gateway.listen('127.0.0.1', 0);
  const [closedPort] = await freePorts(1);
  const run = promisify(execFile);
  const check = (p: number): Promise<number> =>
    run(process.execPath, ['-e', script.replace('127.0.0.1:8080', `127.0.0.1:${p}`)], { timeout: 20_000 }).then(
      () => 0,
      (error: { code?: number }) => error.code ?? -1,
    );
  t.true(script.includes('127.0.0.1:8080'));
  t.is(await check(port), 0, 'healthy when /status answers');
  t.is(await check(closedPort as number), 1, 'unhealthy when nothing listens');
});

test('deploy: the image builds the package as a non-root user with the command as entrypoint', (t) => {
  const dockerfile = read('Dockerfile');
  const bin = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin['raftqueue'] as string;
  t.regex(dockerfile, /^FROM node:20-slim\b/m);
  t.regex(dockerfile, /^RUN npm ci\b/m);
  t.regex(dockerfile, /^RUN npm run build$/m);
  t.regex(dockerfile, new RegExp(`ln -s /app/${bin.replace(/^\.\//, '').replace(/\./g, '\\.')} /usr/local/bin/raftqueue`), 'the entrypoint is the package bin');
  t.regex(dockerfile, /^ENTRYPOINT \["raftqueue"\]$/m);
  const users = [...dockerfile.matchAll(/^USER (\S+)$/gm)].map((m) => m[1]);
  t.true(users.length > 0 && !/^(root|0)$/.test(users.at(-1) as string), 'the final stage runs as a non-root user');
});
