/**
 * Smoke runs of every example, each bounded by its own flag and a timeout.
 */
import test from 'ava';
import { join } from 'node:path';
import { CliProcesses, repoRoot } from './helpers/cli-process.js';

const examples: [name: string, args: string[], expect: RegExp][] = [
  ['work-queue', ['--jobs', '12'], /all 12 jobs done/],
  ['pubsub', ['--events', '5'], /both groups received all 5 events/],
  ['leader-watch', ['--rounds', '1'], /1 leader change\(s\) watched/],
  ['embedded-http', ['--self-test', '5'], /self-test passed: 5 jobs/],
];

for (const [name, args, expect] of examples) {
  test(`examples: ${name} runs to completion (${args.join(' ')})`, async (t) => {
    const procs = new CliProcesses(t);
    const r = await procs.run(args, { script: join(repoRoot, 'dist', 'examples', name, 'main.js'), timeoutMs: 90_000 });
    t.is(r.code, 0, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    t.regex(r.stdout, expect);
  });
}

test('examples: every example has a README and an npm script', async (t) => {
  const { readFileSync, existsSync } = await import('node:fs');
  const scripts = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  for (const [name] of examples) {
    t.true(existsSync(join(repoRoot, 'examples', name, 'README.md')), name);
    t.is(scripts[`example:${name}`], `npm run build --silent && node dist/examples/${name}/main.js`);
  }
});
