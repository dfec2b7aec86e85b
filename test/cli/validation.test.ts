/**
 * Parse-time checks of addresses: every host:port flag refuses ports outside 1..65535, two
 * members may not share an address, and a gateway may not take a Raft address. Each refusal is
 * one line on stderr naming the flag and the item, and exit code 2, before anything starts.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT_USAGE } from '../../lib/cli/args.js';
import { parseNodeCommand } from '../../lib/cli/commands.js';
import { parseServeConfig } from '../../lib/cli/serve-config.js';
import { CliProcesses } from '../helpers/cli-process.js';

/** Runs each command line; asserts exit 2 and one stderr line matching its pattern. */
async function refused(t: ExecutionContext, procs: CliProcesses, cases: readonly (readonly [readonly string[], RegExp])[]): Promise<void> {
  const results = await Promise.all(cases.map(([args]) => procs.run(args, { timeoutMs: 30_000 })));
  cases.forEach(([args, pattern], i) => {
    const r = results[i] as { code: number | null; stdout: string; stderr: string };
    const what = `raftqueue ${args.join(' ')}`;
    t.is(r.code, EXIT_USAGE, `${what} exits 2 (stderr: ${r.stderr})`);
    t.deepEqual(r.stderr.split('\n'), [r.stderr.trimEnd(), ''], `${what} prints one line`);
    t.regex(r.stderr, pattern, what);
    t.is(r.stdout, '', what);
  });
}

test('cli: a port outside 1..65535 in any host:port flag exits 2 naming the flag and the item', async (t) => {
  const procs = new CliProcesses(t);
  const dir = procs.tempDir();
  const base = ['node', '--id', 'n1', '--data-dir', dir];
  await refused(t, procs, [
    [[...base, '--peers', 'n1=127.0.0.1:99999'], /^raftqueue node: --peers: port 99999 in 'n1=127\.0\.0\.1:99999' is not between 1 and 65535/],
    [[...base, '--peers', 'n1=127.0.0.1:7001,n2=127.0.0.1:0'], /--peers: port 0 in 'n2=127\.0\.0\.1:0'/],
    [[...base, '--peers', 'n1=[::1]:123456'], /--peers: port 123456 in 'n1=\[::1\]:123456'/],
    [[...base, '--join', '127.0.0.1:7001', '--listen', '127.0.0.1:65536'], /--listen: port 65536 in '127\.0\.0\.1:65536'/],
    [[...base, '--join', '127.0.0.1:70001', '--listen', '127.0.0.1:7004'], /--join: port 70001 in '127\.0\.0\.1:70001'/],
    [[...base, '--peers', 'n1=127.0.0.1:7001', '--http', '127.0.0.1:80000'], /--http: port 80000 in '127\.0\.0\.1:80000'/],
    [[...base, '--peers', 'n1=127.0.0.1:7001,n2=127.0.0.1:7002', '--http-peers', 'n2=127.0.0.1:99999'], /--http-peers: port 99999 in 'n2=127\.0\.0\.1:99999'/],
    [['members', 'list', '--http', '127.0.0.1:0'], /^raftqueue members: --http: port 0 in '127\.0\.0\.1:0'/],
    [['members', 'add', 'n4', '127.0.0.1:99999', '--http', '127.0.0.1:8001'], /port 99999 in '127\.0\.0\.1:99999'/],
  ]);
});

test('cli: two members with one address exit 2 naming both ids; a gateway may not take a Raft address', async (t) => {
  const procs = new CliProcesses(t);
  const dir = procs.tempDir();
  const base = ['node', '--id', 'n1', '--data-dir', dir];
  await refused(t, procs, [
    [[...base, '--peers', 'n1=127.0.0.1:7001,n2=127.0.0.1:7001'], /^raftqueue node: --peers: 'n1' and 'n2' have the same address 127\.0\.0\.1:7001/],
    // Compared as written, modulo case, brackets and leading zeros.
    [[...base, '--peers', 'n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:07002'], /--peers: 'n2' and 'n3' have the same address/],
    [[...base, '--peers', 'n1=Example.test:7001,n2=example.TEST:7001'], /--peers: 'n1' and 'n2'/],
    [['node', '--id', 'n4', '--data-dir', dir, '--peers', 'n1=127.0.0.1:7001', '--join', '127.0.0.1:7001', '--listen', '127.0.0.1:7001'], /--listen 127\.0\.0\.1:7001 is n1's address in --peers/],
    [['node', '--id', 'n4', '--data-dir', dir, '--join', '127.0.0.1:7004', '--listen', '127.0.0.1:7004'], /--join 127\.0\.0\.1:7004 is this node's own Raft address/],
    [[...base, '--peers', 'n1=127.0.0.1:7001', '--http', '127.0.0.1:7001'], /--http 127\.0\.0\.1:7001 takes the port of this node's Raft address \(n1=127\.0\.0\.1:7001\)/],
    [[...base, '--peers', 'n1=127.0.0.1:7001', '--http', '0.0.0.0:7001'], /--http 0\.0\.0\.0:7001 takes the port of this node's Raft address/],
    [[...base, '--peers', 'n1=127.0.0.1:7001,n2=127.0.0.1:7002', '--http', '127.0.0.1:7002'], /--http 127\.0\.0\.1:7002 is n2's Raft address/],
    [[...base, '--peers', 'n1=127.0.0.1:7001,n2=127.0.0.1:7002', '--http', '127.0.0.1:8001', '--http-peers', 'n2=127.0.0.1:7001'], /--http-peers: n2=127\.0\.0\.1:7001 is n1's Raft address/],
    [[...base, '--peers', 'n1=127.0.0.1:7001,n2=127.0.0.1:7002', '--http', '127.0.0.1:8001', '--http-peers', 'n2=127.0.0.1:8001'], /--http-peers: n2=127\.0\.0\.1:8001 is this node's --http/],
    [[...base, '--peers', 'n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003', '--http-peers', 'n2=127.0.0.1:8002,n3=127.0.0.1:8002'], /--http-peers: 'n2' and 'n3' have the same address/],
  ]);
});

test('cli: a node on its own ports, a wildcard gateway on another port and distinct peers still parse', async (t) => {
  const parsed = await parseNodeCommand(['--id', 'n1', '--peers', 'n1=127.0.0.1:7001,n2=127.0.0.2:7001', '--http', '0.0.0.0:8001', '--http-peers', 'n2=127.0.0.2:8001', '--data-dir', '/tmp/x']);
  t.true('member' in parsed);
});

test('cli: serve refuses a config file with a port out of range or one address twice, in one line', async (t) => {
  const procs = new CliProcesses(t);
  const dir = procs.tempDir();
  const file = (name: string, addresses: unknown[]): string => {
    const path = join(dir, `${name}.json`);
    writeFileSync(path, JSON.stringify({ addresses }));
    return path;
  };
  const high = file('high', [{ ip: '127.0.0.1', port: 8001, internal_port: 70000 }]);
  const twice = file('twice', [{ ip: '127.0.0.1', port: 8001, internal_port: 9001 }, { ip: 'http://127.0.0.1', port: 8002, internal_port: 9001 }]);
  const cased = file('cased', [{ ip: 'localhost', port: 8001 }, { ip: 'http://LOCALHOST/', port: 8001 }]);
  await refused(t, procs, [
    [['serve', '--config', high, '--index', '0'], /^raftqueue serve: --config: .*high\.json: invalid config addresses\.0\.internal_port/],
    [['serve', '--config', twice, '--index', '0'], /127\.0\.0\.1:9001 is used twice \(n0 internal_port and n1 internal_port\)/],
    [['serve', '--config', cased, '--index', '0'], /localhost:8001 is used twice \(n0 port and n1 port\)/],
  ]);
});

test('serve config: bracketed IPv6 without a scheme is one host; hosts compare without case', (t) => {
  const [member] = parseServeConfig({ addresses: [{ ip: '[::1]', port: 8001, internal_port: 9001 }] });
  t.is(member?.peerAddress, '[::1]:9001');
  t.is(member?.httpUrl, 'http://[::1]:8001');
  t.throws(() => parseServeConfig({ addresses: [{ ip: '[::1]', port: 8001 }, { ip: 'http://[::1]', port: 8001 }] }), { message: /\[::1\]:8001 is used twice/ });
  t.throws(() => parseServeConfig({ addresses: [{ ip: 'Host.Example', port: 8001 }, { ip: 'host.example', port: 9001 }] }), { message: /host\.example:9001 is used twice/ });
});
