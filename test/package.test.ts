/**
 * What `npm pack` ships: the compiled library and command with their types, the LICENSE and the
 * docs, and nothing of the tests, benchmarks or examples; and `prepack` builds, so a pack from a
 * fresh clone is never empty. The file list comes from `npm pack --dry-run --json
 * --ignore-scripts` (no rebuild: the suite runs after a build).
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { repoRoot } from './helpers/cli-process.js';

interface PackageJson {
  readonly license: string;
  readonly main: string;
  readonly types: string;
  readonly bin: Record<string, string>;
  readonly exports: Record<string, string | Record<string, string>>;
  readonly scripts: Record<string, string>;
}

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as PackageJson;

/** The packed file paths, computed once for all tests of this file. */
const packed: Promise<Set<string>> = promisify(execFile)('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
  cwd: repoRoot,
  timeout: 60_000,
  maxBuffer: 64 << 20,
}).then(({ stdout }) => {
  const [result] = JSON.parse(stdout) as { files: { path: string }[] }[];
  return new Set((result?.files ?? []).map((f) => f.path));
});

test('package: npm pack ships the library, the command, their types, LICENSE and the docs', async (t) => {
  const files = await packed;
  for (const f of ['LICENSE', 'README.md', 'CHANGELOG.md', 'package.json', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/cli/main.js', 'dist/transports/index.js', 'dist/lib/http/index.js', 'dist/lib/http/index.d.ts', 'dist/lib/http/ui/app.js']) {
    t.true(files.has(f), `${f} is in the package`);
  }
  // Every entry point package.json names must be in the tarball, or an install is broken.
  const entries = [pkg.main, pkg.types, ...Object.values(pkg.bin), ...Object.values(pkg.exports).flatMap((e) => (typeof e === 'string' ? [e] : Object.values(e)))];
  for (const entry of entries) t.true(files.has(normalize(entry)), `entry point ${entry} is in the package`);
});

test('package: npm pack ships nothing of the tests, benchmarks or examples, and no sources', async (t) => {
  const files = [...(await packed)];
  t.true(files.length > 50, `${files.length} files`);
  t.deepEqual(files.filter((f) => /^(dist\/)?(test|bench|examples)\//.test(f)), []);
  t.deepEqual(files.filter((f) => /\.ts$/.test(f) && !f.endsWith('.d.ts')), [], 'TypeScript sources are not shipped');
  t.deepEqual(files.filter((f) => f.endsWith('.tsbuildinfo')), []);
});

test('package: every shipped JavaScript file has its source and its relative imports are shipped', async (t) => {
  const files = await packed;
  const stale: string[] = [];
  const unresolved: string[] = [];
  for (const f of files) {
    if (!f.endsWith('.js')) continue;
    // A compiled file whose source is gone (renamed, deleted) would still be packed from an old
    // dist/; `rm -rf dist && npm run build` fixes the checkout.
    if (!existsSync(join(repoRoot, f.replace(/^dist\//, '').replace(/\.js$/, '.ts')))) stale.push(f);
    const code = readFileSync(join(repoRoot, f), 'utf8');
    for (const m of code.matchAll(/(?:from\s+|import\s*\(\s*)'(\.{1,2}\/[^']+)'/g)) {
      const target = normalize(join(dirname(f), m[1] as string));
      if (!files.has(target)) unresolved.push(`${f} -> ${m[1]}`);
    }
  }
  t.deepEqual(stale, [], 'stale compiled files in dist/');
  t.deepEqual(unresolved, [], 'imports of files the package does not ship');
});

test('package: LICENSE is the MIT license package.json declares', (t) => {
  const license = readFileSync(join(repoRoot, 'LICENSE'), 'utf8');
  t.is(pkg.license, 'MIT');
  t.regex(license, /^MIT License\n\nCopyright \(c\) 2026 The raftqueue authors\n/);
  t.regex(license, /Permission is hereby granted, free of charge/);
  t.regex(license, /THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND/);
});

test('package: prepack builds, so npm pack on a fresh clone ships dist/', (t) => {
  t.regex(pkg.scripts['prepack'] ?? '', /(^|&&\s*)npm run build(\s*&&|$)/);
  t.regex(pkg.scripts['build'] ?? '', /^tsc -p tsconfig\.json$/);
});

test('package: from the packed tarball, raftqueue/http resolves with its types and serves the page and its script', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'raftqueue-pack-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const run = promisify(execFile);
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: repoRoot, timeout: 60_000, maxBuffer: 64 << 20 });
  const [packed] = JSON.parse(stdout) as { filename: string }[];
  const installed = join(dir, 'app', 'node_modules', 'raftqueue');
  mkdirSync(installed, { recursive: true });
  await run('tar', ['-xzf', join(dir, packed?.filename ?? ''), '-C', installed, '--strip-components=1'], { timeout: 60_000 });
  // The package's dependencies, as an install would place them next to it.
  for (const dep of ['eventemitter3', 'msgpackr', 'zod']) symlinkSync(join(repoRoot, 'node_modules', dep), join(dir, 'app', 'node_modules', dep), 'dir');
  const check = [
    "import { createServer } from 'node:http';",
    "import { createGateway, formatMetrics, UI_CSP } from 'raftqueue/http';",
    "const server = createServer(createGateway(undefined));",
    "await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));",
    'const base = `http://127.0.0.1:${server.address().port}`;',
    "const page = await fetch(`${base}/ui`);",
    "const script = await fetch(`${base}/ui/app.js`);",
    "const out = { page: page.status, csp: page.headers.get('content-security-policy') === UI_CSP, script: script.status, js: /EventSource/.test(await script.text()), status: await (await fetch(`${base}/status`)).json(), metrics: typeof formatMetrics };",
    'server.close();',
    'console.log(JSON.stringify(out));',
  ].join('\n');
  writeFileSync(join(dir, 'app', 'check.mjs'), check);
  const result = await run(process.execPath, ['check.mjs'], { cwd: join(dir, 'app'), timeout: 30_000 });
  t.deepEqual(JSON.parse(result.stdout) as unknown, { page: 200, csp: true, script: 200, js: true, status: { role: 'Follower', term: 0 }, metrics: 'function' });
  // The types resolve too, through the export's "types".
  mkdirSync(join(dir, 'app', 'node_modules', '@types'));
  symlinkSync(join(repoRoot, 'node_modules', '@types', 'node'), join(dir, 'app', 'node_modules', '@types', 'node'), 'dir');
  writeFileSync(join(dir, 'app', 'package.json'), '{"type": "module"}');
  const file = join(dir, 'app', 'typed.ts');
  writeFileSync(file, "import type { RequestListener } from 'node:http';\nimport { createGateway } from 'raftqueue/http';\nimport type { GatewayHandler } from 'raftqueue/http';\nconst handler: GatewayHandler = createGateway(undefined, { basePath: '/queue' });\nexport const listener: RequestListener = handler;\n");
  const program = ts.createProgram([file], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, strict: true, noEmit: true, skipLibCheck: true, types: ['node'] });
  t.deepEqual(ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')), []);
});
