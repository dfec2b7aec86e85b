/**
 * The `raftqueue` command line: usage errors exit 2 with a clear message, --help documents every
 * flag, and the course config file is parsed as documented (scheme, missing internal_port,
 * derived data directory).
 */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEMO_HELP } from '../lib/cli/demo.js';
import { NODE_FLAGS, NODE_HELP, SERVE_FLAGS, SERVE_HELP, parseNodeCommand, parseServeCommand } from '../lib/cli/commands.js';
import { UsageError } from '../lib/cli/args.js';
import { PEER_PORT_OFFSET, derivedDataDir, parseServeConfig, parseServeFile } from '../lib/cli/serve-config.js';
import { CliProcesses } from './helpers/cli-process.js';

const PEERS = 'n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003';

test('cli: usage errors exit 2 and name the problem', async (t) => {
  const procs = new CliProcesses(t);
  const dir = procs.tempDir();
  const notJson = join(dir, 'bad.json');
  writeFileSync(notJson, '{"addresses": [');
  const remote = join(dir, 'remote.json');
  writeFileSync(remote, JSON.stringify({ addresses: [{ ip: '10.1.2.3', port: 8001 }] }));
  const cases: [string[], RegExp][] = [
    [[], /no command given/],
    [['bogus'], /unknown command 'bogus'/],
    [['node', '--bogus'], /Unknown option '--bogus'/],
    [['node', '--peers', PEERS, '--data-dir', dir], /missing required flag --id/],
    [['node', '--id', 'n1', '--data-dir', dir], /give --peers, or --join with --listen/],
    [['node', '--id', 'n4', '--join', '127.0.0.1:7001', '--data-dir', dir], /give --peers, or --join with --listen/],
    [['node', '--id', 'n4', '--join', 'nowhere', '--listen', '127.0.0.1:7004', '--data-dir', dir], /--join: expected host:port/],
    [['members'], /missing required flag --http/],
    [['members', 'list'], /missing required flag --http/],
    [['members', 'frob', '--http', '127.0.0.1:1'], /unknown action 'frob'/],
    [['members', 'add', 'n4', '--http', '127.0.0.1:1'], /usage: raftqueue members add ID ADDRESS/],
    [['members', 'add', 'n4', 'nowhere', '--http', '127.0.0.1:1'], /ADDRESS: expected host:port/],
    [['node', '--id', 'n9', '--peers', PEERS, '--data-dir', dir], /must include this node's id 'n9'/],
    [['node', '--id', 'n1', '--peers', 'n1:7001', '--data-dir', dir], /expected id=host:port, got 'n1:7001'/],
    [['node', '--id', 'n1', '--peers', PEERS, '--data-dir', dir, '--http', 'nope'], /--http: expected host:port/],
    [['node', '--id', 'n1', '--peers', PEERS, '--data-dir', dir, '--cluster-secret-file', join(dir, 'missing')], /cannot read/],
    [['node', '--id', 'n1', '--peers', PEERS, '--data-dir', dir, 'extra'], /Unexpected argument 'extra'/],
    [['serve', '--index', '0'], /missing required flag --config/],
    [['serve', '--config', join(dir, 'missing.json'), '--index', '0'], /cannot read .*ENOENT/],
    [['serve', '--config', notJson, '--index', '0'], /is not JSON/],
    [['serve', '--config', remote, '--index', '0'], /--cluster-secret-file is required: 10\.1\.2\.3 is not a loopback address/],
    [['serve', '--config', remote, '--index', '3'], /--index must be between 0 and 0/],
    [['demo', '--messages', 'many'], /--messages must be an integer/],
  ];
  const results = await Promise.all(cases.map(([args]) => procs.run(args, { timeoutMs: 30_000 })));
  cases.forEach(([args, message], i) => {
    const r = results[i] as { code: number | null; stderr: string };
    t.is(r.code, 2, `raftqueue ${args.join(' ')} exits 2 (stderr: ${r.stderr})`);
    t.regex(r.stderr, message, `raftqueue ${args.join(' ')}`);
    t.regex(r.stderr, /--help/, 'points at --help');
  });
});

test('cli: --help of every command exits 0 and documents every flag', async (t) => {
  const procs = new CliProcesses(t);
  const [top, node, serve, demo] = await Promise.all([['--help'], ['node', '--help'], ['serve', '--help'], ['demo', '--help']].map((a) => procs.run(a)));
  t.is(top?.code, 0);
  t.regex(top?.stdout ?? '', /node[\s\S]*serve[\s\S]*demo/);
  t.is(node?.stdout, NODE_HELP);
  t.is(serve?.stdout, SERVE_HELP);
  t.is(demo?.stdout, DEMO_HELP);
  for (const r of [node, serve, demo]) t.is(r?.code, 0);
  for (const flag of Object.keys(NODE_FLAGS)) t.true(NODE_HELP.includes(`--${flag}`), flag);
  for (const flag of Object.keys(SERVE_FLAGS)) t.true(SERVE_HELP.includes(`--${flag}`), flag);
  for (const flag of ['messages', 'verbose', 'help']) t.true(DEMO_HELP.includes(`--${flag}`), flag);
  t.true(SERVE_HELP.includes(`port + ${PEER_PORT_OFFSET}`), 'the help states the default peer port');
});

test('serve config: ip may carry http://; internal_port defaults to port + 1000; ids are n<index>', (t) => {
  const members = parseServeConfig({
    addresses: [
      { ip: 'http://127.0.0.1', port: 8001, internal_port: 9101 },
      { ip: '127.0.0.1', port: 8002 },
      { ip: 'http://[::1]/', port: 8003, extra: 'ignored' },
    ],
  });
  t.deepEqual(
    members.map((m) => [m.id, m.host, m.httpPort, m.peerPort, m.peerAddress, m.httpUrl]),
    [
      ['n0', '127.0.0.1', 8001, 9101, '127.0.0.1:9101', 'http://127.0.0.1:8001'],
      ['n1', '127.0.0.1', 8002, 9002, '127.0.0.1:9002', 'http://127.0.0.1:8002'],
      ['n2', '::1', 8003, 9003, '[::1]:9003', 'http://[::1]:8003'],
    ],
  );
});

test('serve config: bad files are refused with the field named', (t) => {
  t.throws(() => parseServeConfig({}), { message: /addresses/ });
  t.throws(() => parseServeConfig({ addresses: [] }), { message: /at least one address/ });
  t.throws(() => parseServeConfig({ addresses: [{ ip: '127.0.0.1', port: 'x' }] }), { message: /addresses\.0\.port/ });
  t.throws(() => parseServeConfig({ addresses: [{ ip: 'https://127.0.0.1', port: 8001 }] }), { message: /only http:\/\// });
  t.throws(() => parseServeConfig({ addresses: [{ ip: '127.0.0.1', port: 65000 }] }), { message: /give internal_port/ });
  t.throws(
    () => parseServeConfig({ addresses: [{ ip: '127.0.0.1', port: 8001 }, { ip: '127.0.0.1', port: 9001 }] }),
    { message: /127\.0\.0\.1:9001 is used twice/ },
  );
});

test('serve config: the derived data dir is stable for the same list and index, distinct otherwise', (t) => {
  const env = { RAFTQUEUE_DATA_ROOT: '/data/root' };
  const a = parseServeConfig({ addresses: [{ ip: '127.0.0.1', port: 8001 }, { ip: '127.0.0.1', port: 8002 }] });
  const same = parseServeConfig({ addresses: [{ ip: 'http://127.0.0.1', port: 8001, internal_port: 9001 }, { ip: '127.0.0.1', port: 8002 }] });
  const other = parseServeConfig({ addresses: [{ ip: '127.0.0.1', port: 8001 }, { ip: '127.0.0.1', port: 8003 }] });
  t.is(derivedDataDir(a, 0, env), derivedDataDir(same, 0, env), 'same addresses (written differently), same index');
  t.regex(derivedDataDir(a, 1, env), /^\/data\/root\/serve-[0-9a-f]{16}\/n1$/);
  t.not(derivedDataDir(a, 0, env), derivedDataDir(a, 1, env));
  t.not(derivedDataDir(a, 0, env), derivedDataDir(other, 0, env));
});

test('cli: node and serve command lines become member configurations', async (t) => {
  const procs = new CliProcesses(t);
  const dir = procs.tempDir();
  const node = await parseNodeCommand(['--id', 'n2', '--peers', PEERS, '--data-dir', dir, '--http', '127.0.0.1:8002', '--http-peers', 'n1=127.0.0.1:8001']);
  t.true('member' in node);
  if (!('member' in node)) return;
  t.deepEqual(node.member.httpAddresses, { n1: 'http://127.0.0.1:8001', n2: 'http://127.0.0.1:8002' });
  t.deepEqual(node.member.http, { host: '127.0.0.1', port: 8002 });
  const secret = join(dir, 'secret');
  writeFileSync(secret, 'a-long-enough-cluster-secret\n');
  const config = join(dir, 'cluster.json');
  writeFileSync(config, JSON.stringify({ addresses: [{ ip: '10.0.0.1', port: 8001 }, { ip: '10.0.0.2', port: 8001 }] }));
  const serve = await parseServeCommand(['--config', config, '--index', '1', '--cluster-secret-file', secret], { RAFTQUEUE_DATA_ROOT: dir });
  if (!('member' in serve)) return t.fail('expected a member');
  t.is(serve.member.id, 'n1');
  t.is(serve.member.clusterSecret, 'a-long-enough-cluster-secret');
  t.deepEqual(serve.member.peers, { n0: '10.0.0.1:9001', n1: '10.0.0.2:9001' });
  t.true(serve.member.dataDir.startsWith(dir));
  const short = join(dir, 'short');
  writeFileSync(short, 'short');
  await t.throwsAsync(() => parseServeCommand(['--config', config, '--index', '0', '--cluster-secret-file', short]), { instanceOf: UsageError, message: /shorter than 16/ });
});

test('cli: node --join with --listen needs no peer list', async (t) => {
  const parsed = await parseNodeCommand(['--id', 'n4', '--join', '127.0.0.1:7001', '--listen', '127.0.0.1:7004', '--data-dir', '/tmp/x']);
  t.true('member' in parsed);
  if (!('member' in parsed)) return;
  t.is(parsed.member.join, '127.0.0.1:7001');
  t.deepEqual(parsed.member.peers, { n4: '127.0.0.1:7004' });
  await t.throwsAsync(parseNodeCommand(['--id', 'n4', '--join', '127.0.0.1:7001', '--listen', '127.0.0.1:7004', '--peers', 'n4=127.0.0.1:7005', '--data-dir', '/tmp/x']), {
    instanceOf: UsageError,
    message: /differs from this node's entry/,
  });
});

test('cli: --forward (node, serve) and "forward": true (serve config) make the gateway forward; off by default', async (t) => {
  const procs = new CliProcesses(t);
  const dir = procs.tempDir();
  const member = async (parsed: Promise<unknown>) => {
    const p = (await parsed) as { member?: { forward?: boolean } };
    if (p.member === undefined) throw new Error('expected a member');
    return p.member;
  };
  const node = ['--id', 'n1', '--peers', PEERS, '--data-dir', dir, '--http', '127.0.0.1:8001'];
  t.is((await member(parseNodeCommand([...node, '--forward']))).forward, true);
  t.is((await member(parseNodeCommand(node))).forward, undefined, 'off without the flag');
  await t.throwsAsync(parseNodeCommand(['--id', 'n1', '--peers', PEERS, '--data-dir', dir, '--forward']), { instanceOf: UsageError, message: /--forward changes how the HTTP gateway answers: give --http too/ });
  const addresses = [{ ip: '127.0.0.1', port: 8001 }, { ip: '127.0.0.1', port: 8002 }];
  const file = (name: string, json: unknown): string => {
    const path = join(dir, name);
    writeFileSync(path, JSON.stringify(json));
    return path;
  };
  const plain = file('plain.json', { addresses });
  const forwarding = file('forward.json', { addresses, forward: true });
  t.is((await member(parseServeCommand(['--config', forwarding, '--index', '1'], { RAFTQUEUE_DATA_ROOT: dir }))).forward, true, 'from the config file');
  t.is((await member(parseServeCommand(['--config', plain, '--index', '1', '--forward'], { RAFTQUEUE_DATA_ROOT: dir }))).forward, true, 'from the flag');
  t.is((await member(parseServeCommand(['--config', plain, '--index', '1'], { RAFTQUEUE_DATA_ROOT: dir }))).forward, undefined, 'off by default');
  t.is((await member(parseServeCommand(['--config', file('off.json', { addresses, forward: false }), '--index', '0'], { RAFTQUEUE_DATA_ROOT: dir }))).forward, undefined);
  t.is(parseServeFile({ addresses, forward: true }).forward, true);
  t.throws(() => parseServeConfig({ addresses, forward: 'yes' }), { message: /invalid config forward/ });
});
