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

/** The facade and composition: what nothing below the facade may import. */
const FACADE = /^lib\/(raft-queue|index|compose|api-types|subscriptions|metrics|options|events|call-options|payload|diagnosis|identity)(\.js)?$|^lib\/cli\//;

test('tidy: dependencies point inward (docs/architecture.md, "Layers")', (t) => {
  const rules: { dir: string; allowed?: RegExp; banned: RegExp; why: string }[] = [
    { dir: 'lib/contracts', banned: /^(?!lib\/contracts\/|lib\/core\/|msgpackr$)/, why: 'contracts are the ground floor: they import only core types and msgpackr' },
    { dir: 'lib/storage', banned: /^(transports\/|lib\/queue\/|lib\/node\/)/, why: 'storage knows no transports, queue or node' },
    { dir: 'lib/queue', banned: /^(node:|lib\/storage\/|lib\/node\/|transports\/)/, why: 'the state machine does no I/O and knows no node' },
    { dir: 'lib/node', banned: /^(node:|transports\/|lib\/queue\/|eventemitter3$)/, why: 'the node layer knows only contracts, core and storage (the simulator runs it)' },
    { dir: 'transports', banned: /^(lib\/node\/|lib\/queue\/|lib\/storage\/)/, why: 'transports do not reach up' },
    { dir: 'test/sim', banned: /^(node:net|node:timers|node:dgram|transports\/tcp)/, why: 'the simulator uses no real network or timers' },
  ];
  const below = ['lib/core', 'lib/contracts', 'lib/storage', 'lib/queue', 'lib/node', 'transports'];
  const bad: string[] = [];
  for (const rule of rules) {
    for (const f of sources(rule.dir)) {
      for (const i of imports(f)) if (rule.banned.test(i)) bad.push(`${f} imports ${i} (${rule.why})`);
    }
  }
  for (const dir of below) {
    for (const f of sources(dir)) {
      for (const i of imports(f)) if (FACADE.test(i.replace(/\.js$/, ''))) bad.push(`${f} imports ${i} (nothing below the facade imports the facade)`);
    }
  }
  // The facade reaches the node layer through plain data: it never builds storage or transports
  // itself (lib/compose.ts and lib/index.ts do).
  for (const f of ['lib/raft-queue.ts', 'lib/subscriptions.ts', 'lib/api-types.ts', 'lib/events.ts']) {
    for (const i of imports(f)) if (/^(lib\/storage\/|transports\/)/.test(i)) bad.push(`${f} imports ${i} (the facade does not compose)`);
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

test('tidy: browser globals only in the dashboard script, which never parses HTML or evaluates code', (t) => {
  // The dashboard script's `/// <reference lib="dom" />` puts DOM types in the whole program's
  // scope: this scan, not the compiler, keeps them out of server code.
  const script = 'lib/http/ui/app.ts';
  const browser = /\b(?:document|window|sessionStorage|localStorage|EventSource|HTMLElement)\b/;
  const bad = ['lib', 'transports'].flatMap((d) => sources(d)).filter((f) => f !== script && browser.test(code(f)));
  t.deepEqual(bad, [], 'browser globals outside the dashboard script');
  const text = code(script);
  const unsafe = [/\.innerHTML\b/, /\.outerHTML\b/, /\binsertAdjacentHTML\b/, /\bdocument\.write\b/, /\beval\s*\(/, /\bnew Function\b/].filter((re) => re.test(text)).map(String);
  // Attributes that run code or load things are never set (strings kept for this one).
  if (/setAttribute\(\s*['"](?:on\w+|style|href|src|srcdoc|action|formaction)['"]/i.test(readFileSync(join(root, script), 'utf8'))) unsafe.push('setAttribute of an event handler, style or URL');
  t.deepEqual(unsafe, [], 'the dashboard renders with textContent and DOM calls only');
  t.regex(readFileSync(join(root, script), 'utf8'), /^\/\/\/ <reference lib="dom" \/>/);
});
