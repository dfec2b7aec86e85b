/**
 * Expected failures of a running member print one line (and a hint) instead of a stack trace,
 * with a documented exit code: a data dir held by another process, a Raft or HTTP port in use,
 * and the error codes that mean "fix the configuration" (exit 2). Loopback only; every child
 * is killed by pid and every directory removed in teardown.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { EXIT_FAILED, EXIT_REMOVED, EXIT_USAGE } from '../../lib/cli/args.js';
import { NODE_HELP, SERVE_HELP } from '../../lib/cli/commands.js';
import { failureReport } from '../../lib/cli/member.js';
import { RaftQueueError } from '../../lib/contracts/errors.js';
import type { ErrorCode } from '../../lib/contracts/errors.js';
import { CliProcesses, freePorts } from '../helpers/cli-process.js';

/** A port held by a listening server of this test (closed in teardown). */
async function holdPort(t: ExecutionContext): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** The lines the command printed as `raftqueue node: ...` and `hint: ...`, checked for stacks. */
function reportLines(t: ExecutionContext, stderr: string): string[] {
  t.false(/^\s+at /m.test(stderr), `no stack trace in:\n${stderr}`);
  return stderr.split('\n').filter((line) => line.startsWith('raftqueue ') || line.startsWith('hint:'));
}

test('cli: a second node on a locked data dir exits 1 with one line and a hint, no stack', async (t) => {
  const procs = new CliProcesses(t);
  const dir = procs.tempDir();
  const [p1, p2] = await freePorts(2);
  const first = procs.spawn(['node', '--id', 'n1', '--peers', `n1=127.0.0.1:${p1 as number}`, '--data-dir', dir]);
  await first.waitForLine((line) => line.includes('raft listening'), 15_000);
  const second = await procs.run(['node', '--id', 'n1', '--peers', `n1=127.0.0.1:${p2 as number}`, '--data-dir', dir]);
  t.is(second.code, EXIT_FAILED, second.stderr);
  const lines = reportLines(t, second.stderr);
  t.is(lines.length, 2, second.stderr);
  t.regex(lines[0] ?? '', new RegExp(`^raftqueue node: ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by process ${first.pid}.*\\(STORAGE_LOCKED\\)$`));
  t.is(lines[1], 'hint: another process holds this data dir; stop it or choose another --data-dir');
  t.false(first.hasExited, 'the first node runs on');
});

test('cli: a Raft port in use exits 1 with one line naming the port, no stack', async (t) => {
  const procs = new CliProcesses(t);
  const dir = procs.tempDir();
  const port = await holdPort(t);
  const r = await procs.run(['node', '--id', 'n1', '--peers', `n1=127.0.0.1:${port}`, '--data-dir', dir]);
  t.is(r.code, EXIT_FAILED, r.stderr);
  const lines = reportLines(t, r.stderr);
  t.is(lines.length, 2, r.stderr);
  t.regex(lines[0] ?? '', new RegExp(`^raftqueue node: cannot listen on 127\\.0\\.0\\.1:${port}: .*\\(TRANSPORT_FAILED\\)$`));
  t.is(lines[1], `hint: port ${port} is in use: stop the process holding it or choose another port`);
});

test('cli: an HTTP port in use exits 1 with one line naming the port, no stack', async (t) => {
  const procs = new CliProcesses(t);
  const dir = procs.tempDir();
  const httpPort = await holdPort(t);
  const [raftPort] = await freePorts(1);
  const r = await procs.run(['node', '--id', 'n1', '--peers', `n1=127.0.0.1:${raftPort as number}`, '--http', `127.0.0.1:${httpPort}`, '--data-dir', dir]);
  t.is(r.code, EXIT_FAILED, r.stderr);
  const lines = reportLines(t, r.stderr);
  t.is(lines.length, 2, r.stderr);
  t.regex(lines[0] ?? '', new RegExp(`^raftqueue node: the HTTP gateway cannot listen on 127\\.0\\.0\\.1:${httpPort}: address already in use.*\\(EADDRINUSE\\)$`));
  t.is(lines[1], `hint: port ${httpPort} is in use: stop the process holding it or choose another port`);
});

test('cli: failure reports: configuration refusals exit 2, other RaftQueueErrors 1, bugs keep their stack', (t) => {
  const identity = new RaftQueueError('IDENTITY_MISMATCH' as ErrorCode, 'the data dir belongs to member n2 of another cluster');
  t.deepEqual(failureReport('node', identity)?.exitCode, EXIT_USAGE);
  t.regex(failureReport('node', identity)?.lines[0] ?? '', /^raftqueue node: the data dir belongs to member n2 of another cluster \(IDENTITY_MISMATCH\)$/);
  t.regex(failureReport('node', identity)?.lines[1] ?? '', /^hint: .*--data-dir/);
  const invalid = new RaftQueueError('INVALID_OPTIONS', "invalid TcpTransport options: ✖ expected 'host:port'\n  → at peers.n1");
  t.deepEqual(failureReport('serve', invalid), { lines: ["raftqueue serve: invalid TcpTransport options: ✖ expected 'host:port' → at peers.n1 (INVALID_OPTIONS)"], exitCode: EXIT_USAGE });
  t.is(failureReport('node', new RaftQueueError('NEEDS_REPAIR', 'x'))?.exitCode, EXIT_FAILED);
  const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
  const storage = new RaftQueueError('STORAGE_FAILED', 'storage write failed (ENOSPC)', { cause: full });
  t.deepEqual(failureReport('node', storage), {
    lines: ['raftqueue node: storage write failed (ENOSPC) (STORAGE_FAILED)', 'hint: the disk holding the data dir is full: free space or choose another --data-dir'],
    exitCode: EXIT_FAILED,
  });
  t.is(failureReport('node', new TypeError('x is undefined')), undefined, 'a bug is not expected');
  t.is(failureReport('node', Object.assign(new Error('odd'), { code: 'ERR_SOMETHING' })), undefined);
});

test('cli: node and serve --help document the exit codes', (t) => {
  for (const help of [NODE_HELP, SERVE_HELP]) {
    const section = help.slice(help.indexOf('exit codes:'));
    t.true(help.includes('exit codes:'));
    for (const code of [0, EXIT_FAILED, EXIT_USAGE, EXIT_REMOVED]) t.regex(section, new RegExp(`^  ${code}  \\S`, 'm'), `code ${code}`);
    t.regex(section, /removed from the cluster/);
  }
});

test('cli: a data dir started under another id, or with conflicting --peers, exits 2 with one line and changes nothing', async (t) => {
  const procs = new CliProcesses(t);
  const dir = procs.tempDir();
  const [p1, p2] = await freePorts(2);
  const first = procs.spawn(['node', '--id', 'a', '--peers', `a=127.0.0.1:${p1 as number}`, '--data-dir', dir]);
  await first.waitForLine((line) => line.includes('leader a'), 15_000);
  process.kill(first.pid, 'SIGTERM');
  await first.exited;
  const other = await procs.run(['node', '--id', 'zz', '--peers', `zz=127.0.0.1:${p1 as number}`, '--data-dir', dir]);
  t.is(other.code, EXIT_USAGE, other.stderr);
  const lines = reportLines(t, other.stderr);
  t.regex(lines[0] ?? '', /^raftqueue node: this data dir belongs to member 'a' of cluster 'raftqueue'.*opened as member 'zz'.*\(IDENTITY_MISMATCH\)$/);
  const moved = await procs.run(['node', '--id', 'a', '--peers', `a=127.0.0.1:${p1 as number},b=127.0.0.1:${p2 as number}`, '--data-dir', dir]);
  t.is(moved.code, EXIT_USAGE, moved.stderr);
  t.regex(reportLines(t, moved.stderr)[0] ?? '', /conflict with the configuration in this data dir.*\(IDENTITY_MISMATCH\)$/);
  // The data dir is untouched: started right, the member leads again.
  const again = procs.spawn(['node', '--id', 'a', '--peers', `a=127.0.0.1:${p1 as number}`, '--data-dir', dir]);
  await again.waitForLine((line) => line.includes('leader a'), 15_000);
  t.pass();
});
