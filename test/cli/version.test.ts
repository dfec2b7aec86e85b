/**
 * `raftqueue --version`: the version in the package's own package.json, found from the compiled
 * file, so it is right from the repository, from an installed copy and through npm's bin link.
 */
import test from 'ava';
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliProcesses, repoRoot } from '../helpers/cli-process.js';

const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

test('cli: --version, -v and node --version print the package version and exit 0', async (t) => {
  const procs = new CliProcesses(t);
  const forms = [['--version'], ['-v'], ['node', '--version'], ['serve', '--version'], ['members', '--version']];
  const results = await Promise.all(forms.map((args) => procs.run(args)));
  forms.forEach((args, i) => {
    const r = results[i];
    t.is(r?.code, 0, `raftqueue ${args.join(' ')} (stderr: ${r?.stderr ?? ''})`);
    t.is(r?.stdout, `${version}\n`, `raftqueue ${args.join(' ')}`);
    t.is(r?.stderr, '', `raftqueue ${args.join(' ')}`);
  });
  const usage = await procs.run(['--help']);
  t.regex(usage.stdout, /raftqueue --version/, 'the top-level usage mentions --version');
});

test('cli: an installed copy reports its own package.json, run directly or through the bin link', async (t) => {
  const procs = new CliProcesses(t);
  const dir = procs.tempDir();
  // An installed package as npm lays it out: its own package.json beside dist/, the command
  // linked from node_modules/.bin. A version no repository ever had, to tell the two apart.
  const pkg = join(dir, 'node_modules', 'raftqueue');
  mkdirSync(join(pkg, 'dist'), { recursive: true });
  cpSync(join(repoRoot, 'dist', 'lib'), join(pkg, 'dist', 'lib'), { recursive: true });
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'raftqueue', version: '9.8.7-installed', type: 'module' }));
  mkdirSync(join(dir, 'node_modules', '.bin'));
  const bin = join(dir, 'node_modules', '.bin', 'raftqueue');
  symlinkSync(join('..', 'raftqueue', 'dist', 'lib', 'cli', 'main.js'), bin);
  for (const script of [join(pkg, 'dist', 'lib', 'cli', 'main.js'), bin]) {
    const r = await procs.run(['--version'], { script });
    t.is(r.code, 0, `${script} (stderr: ${r.stderr})`);
    t.is(r.stdout, '9.8.7-installed\n', script);
  }
});
