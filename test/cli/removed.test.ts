/**
 * A member removed from its cluster ('removed' event) prints one line, stops its queue and exits
 * with EXIT_REMOVED (3), so a supervisor can tell it from a crash (1) and not restart it.
 */
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { EXIT_REMOVED } from '../../lib/cli/args.js';
import type { MemberConfig } from '../../lib/cli/member.js';
import { CliProcesses, freePorts } from '../helpers/cli-process.js';

const fixture = fileURLToPath(new URL('./removed-member.js', import.meta.url));

test('cli: a member removed from the cluster prints one line, stops and exits 3', async (t) => {
  const procs = new CliProcesses(t);
  const dir = procs.tempDir();
  const [raftPort, httpPort] = await freePorts(2);
  const config: MemberConfig = { id: 'n1', peers: { n1: `127.0.0.1:${raftPort as number}` }, dataDir: dir, http: { host: '127.0.0.1', port: httpPort as number } };
  const message = 'n1 was removed from the cluster by n2 (term 3)';
  const r = await procs.run([JSON.stringify(config), message], { script: fixture, timeoutMs: 20_000 });
  t.is(r.code, EXIT_REMOVED, r.stderr);
  t.deepEqual(r.stderr.split('\n').filter((line) => line.startsWith('raftqueue ')), [`raftqueue node: ${message}`], r.stderr);
  t.regex(r.stderr, /\[raftqueue n1\] removed from the cluster: stopping/);
  t.regex(r.stderr, /\[raftqueue n1\] stopped$/m, 'the queue was stopped before the exit');
  t.false(/^\s+at /m.test(r.stderr), 'no stack trace');
});
