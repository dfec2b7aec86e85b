/**
 * The process harness (lib/cli/process-harness.ts) that the demo, the tests, the chaos runs, the
 * benchmarks and the examples share: ports, readiness, signals, restarts, and a cleanup that runs
 * once and kills only what the harness started.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ProcessHarness, freePorts, waitUntil } from '../lib/cli/process-harness.js';

/** A child that reports on stdout, answers IPC pings, and ignores SIGTERM when told to. */
const CHILD = `
process.stdout.write('starting ' + process.argv.slice(2).join(' ') + '\\n');
if (process.argv.includes('--stubborn')) process.on('SIGTERM', () => process.stderr.write('SIGTERM ignored\\n'));
else process.on('SIGTERM', () => process.exit(0));
process.on('message', (m) => process.send({ pong: m }));
process.on('disconnect', () => process.exit(0));
setTimeout(() => process.stdout.write('ready\\n'), 20);
setInterval(() => undefined, 1000);
`;

function harnessWithScript(t: import('ava').ExecutionContext): { harness: ProcessHarness; script: string } {
  const harness = new ProcessHarness();
  t.teardown(() => harness.cleanup());
  const script = join(harness.tempDir('raftqueue-harness-test-'), 'child.cjs');
  writeFileSync(script, CHILD);
  return { harness, script };
}

/** Whether a process with this pid exists (signal 0 only checks). */
function alive(pid: number): boolean {
  try {
    return process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

test('process harness: freePorts gives distinct loopback ports that can be bound', async (t) => {
  const ports = await freePorts(5);
  t.is(new Set(ports).size, 5);
  for (const port of ports) {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  }
  t.pass();
});

test('process harness: a readiness line, captured output, and a graceful stop', async (t) => {
  const { harness, script } = harnessWithScript(t);
  const seen: string[] = [];
  const child = harness.spawn({ name: 'child', script, args: ['a', 'b'], stdout: 'capture', onLine: (line, stream) => seen.push(`${stream}: ${line}`) });
  t.is(await child.waitForLine((l) => l === 'ready', 5_000), 'ready');
  t.deepEqual(child.tail('stdout', 5), ['starting a b', 'ready']);
  t.deepEqual(seen, ['stdout: starting a b', 'stdout: ready']);
  t.is(await child.waitForLine((l) => l.startsWith('starting'), 10), 'starting a b', 'a line already printed counts');
  t.deepEqual(await child.stop(5_000), { code: 0, signal: null });
  t.true(child.hasExited);
});

test('process harness: SIGKILL after the grace period when SIGTERM is ignored; respawn is the next incarnation', async (t) => {
  const { harness, script } = harnessWithScript(t);
  const first = harness.spawn({ name: 'stubborn', script, args: ['--stubborn'], stdout: 'capture' });
  await first.waitForLine((l) => l === 'ready', 5_000);
  t.deepEqual(await first.stop(200), { code: null, signal: 'SIGKILL' });
  t.regex(first.stderr, /SIGTERM ignored/);
  const second = harness.respawn(first);
  t.is(second.incarnation, 2);
  t.not(second.pid, first.pid);
  t.is(await second.waitForLine((l) => l.startsWith('starting'), 5_000), 'starting --stubborn', 'same script and arguments');
  t.throws(() => harness.respawn(second), { message: /still runs/ });
});

test('process harness: IPC readiness, and a wait that fails when the child ends first', async (t) => {
  const { harness, script } = harnessWithScript(t);
  const child = harness.spawn({ name: 'ipc', script, ipc: true });
  const pong = child.waitForMessage((m) => typeof m === 'object' && m !== null && 'pong' in m, 5_000);
  child.send('ping');
  t.deepEqual(await pong, { pong: 'ping' });
  const never = child.waitForMessage(() => false, 5_000);
  child.kill();
  await t.throwsAsync(never, { message: /ipc exited \(SIGKILL\) before it was ready/ });
  await t.throwsAsync(harness.spawn({ name: 'silent', script }).waitForLine(() => false, 100), { message: 'silent was not ready within 100 ms' });
});

test('process harness: SIGSTOP and SIGCONT', async (t) => {
  const { harness, script } = harnessWithScript(t);
  const child = harness.spawn({ name: 'paused', script, stdout: 'capture' });
  await child.waitForLine((l) => l === 'ready', 5_000);
  const state = (): string | undefined => (existsSync(`/proc/${child.pid}/stat`) ? readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]?.[0] : undefined);
  child.pause();
  if (state() === undefined) return t.pass('no /proc here');
  await waitUntil('the child to stop', () => state() === 'T', 2_000);
  child.resume();
  await waitUntil('the child to continue', () => state() !== 'T', 2_000);
  t.pass();
});

test('process harness: cleanup runs once, kills only its own children by pid and removes its directories', async (t) => {
  const harness = new ProcessHarness();
  const dir = harness.tempDir('raftqueue-harness-test-');
  const script = join(dir, 'child.cjs');
  writeFileSync(script, CHILD);
  const ours = [harness.spawn({ name: 'a', script }), harness.spawn({ name: 'b', script, args: ['--stubborn'] })];
  const stranger = spawn(process.execPath, [script], { stdio: 'ignore' });
  t.teardown(() => stranger.kill('SIGKILL'));
  const cleaning = harness.cleanup();
  t.is(harness.cleanup(), cleaning, 'the same cleanup');
  await cleaning;
  t.deepEqual(
    ours.map((c) => alive(c.pid)),
    [false, false],
  );
  t.true(alive(stranger.pid as number), 'a process the harness did not start is left alone');
  t.false(existsSync(dir));
  t.throws(() => harness.spawn({ name: 'late', script }), { message: /cleaned up/ });
});

test('process harness: a detached program is stopped with its whole process group', async (t) => {
  const harness = new ProcessHarness();
  t.teardown(() => harness.cleanup());
  // A wrapper script that starts a child of its own, as a broker's start script does.
  const wrapper = harness.spawn({ name: 'wrapper', command: 'sh', args: ['-c', 'sleep 30 & echo $!; wait'], detached: true, stdout: 'capture' });
  const grandchild = Number(await wrapper.waitForLine((l) => /^\d+$/.test(l), 5_000));
  t.true(alive(grandchild));
  t.deepEqual(await wrapper.stop(0), { code: null, signal: 'SIGKILL' });
  await waitUntil('the wrapper\'s own child to be gone', () => !alive(grandchild), 2_000);
  t.pass();
});
