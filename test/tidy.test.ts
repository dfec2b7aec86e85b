/**
 * House rules checked by a plain scan of the sources, so they hold without a linter:
 * - lib/core imports only lib/core and uses no clock, timer, ambient randomness, process or async;
 * - the dependency directions of ARCHITECTURE.md section 2;
 * - no focused or skipped tests, no empty catch blocks.
 */
import test from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function sources(dir: string): string[] {
  const abs = join(root, dir);
  let names: string[];
  try {
    names = readdirSync(abs);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const out: string[] = [];
  for (const name of names) {
    const path = join(abs, name);
    if (statSync(path).isDirectory()) out.push(...sources(relative(root, path)));
    else if (name.endsWith('.ts')) out.push(relative(root, path));
  }
  return out.sort();
}

/** Import specifiers of a file, resolved to repository paths when relative. */
function imports(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const specs = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]/g)].map((m) => m[1] as string);
  specs.push(...[...text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1] as string));
  return specs.map((s) => (s.startsWith('.') ? relative(root, resolve(dirname(join(root, file)), s)) : s));
}

/** The source text without comments and string contents, so prose cannot trip the scans. */
function code(file: string): string {
  return readFileSync(join(root, file), 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '')
    .replace(/'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`/g, "''");
}

test('tidy: lib/core imports nothing outside lib/core', (t) => {
  const files = sources('lib/core');
  t.true(files.length > 5);
  const bad = files.flatMap((f) => imports(f).filter((i) => !i.startsWith('lib/core/')).map((i) => `${f} imports ${i}`));
  t.deepEqual(bad, []);
});

test('tidy: lib/core has no clock, timers, ambient randomness, process or async', (t) => {
  const banned: [RegExp, string][] = [
    [/\bDate\b/, 'Date'],
    [/\bMath\.random\b/, 'Math.random'],
    [/\bset(?:Timeout|Interval|Immediate)\b/, 'timers'],
    [/\bprocess\b/, 'process'],
    [/\basync\b/, 'async'],
    [/\bawait\b/, 'await'],
    [/\bPromise\b/, 'Promise'],
    [/\bperformance\b/, 'performance'],
  ];
  const bad: string[] = [];
  for (const f of sources('lib/core')) {
    const text = code(f);
    for (const [re, what] of banned) if (re.test(text)) bad.push(`${f} uses ${what}`);
  }
  t.deepEqual(bad, []);
});

test('tidy: dependencies point inward (ARCHITECTURE.md section 2)', (t) => {
  const rules: { dir: string; banned: RegExp; why: string }[] = [
    { dir: 'lib/storage', banned: /^(transports\/|lib\/queue\/|lib\/node\/|lib\/raft-queue)/, why: 'storage knows no transports or queue' },
    { dir: 'lib/queue', banned: /^(node:|lib\/storage\/|transports\/)/, why: 'the state machine does no I/O' },
    { dir: 'lib/node', banned: /^(transports\/|eventemitter3$)/, why: 'the node layer knows only the Transport interface' },
    { dir: 'transports', banned: /^(lib\/node\/|lib\/raft-queue)/, why: 'transports do not reach up' },
    { dir: 'test/sim', banned: /^(node:net|node:timers|node:dgram)/, why: 'the simulator uses no real network or timers' },
  ];
  const bad: string[] = [];
  for (const rule of rules) {
    for (const f of sources(rule.dir)) {
      for (const i of imports(f)) if (rule.banned.test(i)) bad.push(`${f} imports ${i} (${rule.why})`);
    }
  }
  t.deepEqual(bad, []);
});

test('tidy: the simulator uses no real timers, Date or Math.random', (t) => {
  const bad: string[] = [];
  for (const f of sources('test/sim')) {
    const text = code(f);
    if (/\bMath\.random\b|\bDate\b|\bset(?:Timeout|Interval|Immediate)\b/.test(text) && !f.endsWith('cli.ts')) bad.push(f);
  }
  t.deepEqual(bad, []);
});

test('tidy: no focused or skipped tests', (t) => {
  const bad = sources('test').filter((f) => /\b(?:test|it|describe)\.(?:only|skip)\s*\(/.test(code(f)));
  t.deepEqual(bad, []);
});

test('tidy: no empty catch blocks anywhere', (t) => {
  const files = ['lib', 'transports', 'test', 'bench', 'examples'].flatMap((d) => sources(d));
  const bad = files.filter((f) => /catch\s*(?:\([^)]*\))?\s*\{\s*\}/.test(code(f)));
  t.deepEqual(bad, []);
});
