/**
 * Every code block in README.md works: `ts` blocks type-check against the package's own types
 * (written to a temp directory inside the repository, where `import ... from 'raftqueue'` resolves
 * to this package), `sh` blocks name only commands, npm scripts, flags and routes that exist, and
 * `json` blocks parse (a `serve` config must pass its schema).
 */
import test from 'ava';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { ProcessHarness, freePorts, waitUntil } from '../lib/cli/process-harness.js';
import { httpJson } from '../lib/cli/http-client.js';
import { NODE_FLAGS, SERVE_FLAGS } from '../lib/cli/commands.js';
import { MEMBERS_FLAGS } from '../lib/cli/members-command.js';
import { DLQ_FLAGS } from '../lib/cli/dlq-command.js';
import { parseServeConfig } from '../lib/cli/serve-config.js';
import { repoRoot } from './helpers/cli-process.js';

interface Block {
  readonly lang: string;
  readonly code: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
}

const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
const blocks: Block[] = [...readme.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({
  lang: m[1] as string,
  code: m[2] as string,
  line: readme.slice(0, m.index).split('\n').length,
}));

test('readme: every code block is ts, sh or json', (t) => {
  t.true(blocks.length >= 8, `found ${blocks.length} blocks`);
  t.deepEqual(blocks.filter((b) => !['ts', 'sh', 'json'].includes(b.lang)).map((b) => `line ${b.line}: '${b.lang}'`), []);
});

test('readme: ts blocks type-check against the package types', (t) => {
  const dir = join(repoRoot, '.tmp', `readme-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const files = blocks
    .filter((b) => b.lang === 'ts')
    .map((b) => {
      // A block that uses `queue` without creating one continues the quick start.
      const prelude = /\bconst queue\b/.test(b.code) ? '' : "import type { RaftQueue } from 'raftqueue';\ndeclare const queue: RaftQueue;\n";
      const file = join(dir, `readme-line-${b.line}.ts`);
      writeFileSync(file, `${prelude}${b.code}\nexport {};\n`);
      return file;
    });
  t.true(files.length >= 2);
  const program = ts.createProgram(files, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts'],
    types: ['node'],
    strict: true,
    noUncheckedIndexedAccess: true,
    exactOptionalPropertyTypes: true,
    skipLibCheck: true,
    noEmit: true,
  });
  const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? `${d.file.fileName.replace(dir, '.tmp')}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}` : '';
    return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
  t.deepEqual(diagnostics, []);
});

const scripts = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
const ROUTES = [/^\/$/, /^\/topic$/, /^\/message$/, /^\/message\/[^/]+$/, /^\/status$/, /^\/metrics$/, /^\/members$/, /^\/members\/[^/]+$/, /^\/leader$/, /^\/groups\/[^/]+\/[^/]+\/(fetch|ack|nack)$/, /^\/dlq\/[^/]+(\/redrive)?$/, /^\/peek\/[^/]+$/];
const FLAGS: Record<string, readonly string[]> = {
  node: Object.keys(NODE_FLAGS),
  serve: Object.keys(SERVE_FLAGS),
  demo: ['messages', 'verbose'],
  members: Object.keys(MEMBERS_FLAGS),
  dlq: Object.keys(DLQ_FLAGS),
};

/** Problems with one shell command (no pipes or redirections beyond what is checked here). */
function checkCommand(command: string): string[] {
  const words = command.split(/\s+/).filter((w) => w.length > 0);
  const [head, ...args] = words;
  switch (head) {
    case 'npm': {
      if (args[0] === 'install' || args[0] === 'test' || args[0] === 'ci') return [];
      if (args[0] === 'run') return scripts[args[1] ?? ''] !== undefined ? [] : [`no npm script '${args[1] ?? ''}'`];
      return [`unexpected npm command '${args.join(' ')}'`];
    }
    case 'npx':
      return args[0] === 'raftqueue' ? checkRaftqueue(args.slice(1)) : [`npx of something else than raftqueue: ${args[0] ?? ''}`];
    case 'node':
      if (args[0] === 'dist/lib/cli/main.js') return checkRaftqueue(args.slice(1));
      return existsSync(join(repoRoot, args[0] ?? '')) ? [] : [`no file ${args[0] ?? ''}`];
    case 'curl': {
      const url = args.find((a) => /^(https?:\/\/)?localhost:\d+/.test(a));
      if (url === undefined) return ['curl without a localhost URL'];
      const path = new URL(url.startsWith('http') ? url : `http://${url}`).pathname;
      const problems = ROUTES.some((r) => r.test(path)) ? [] : [`no gateway route ${path}`];
      const body = /-d '([^']*)'/.exec(command)?.[1];
      if (body !== undefined) {
        try {
          JSON.parse(body);
        } catch (error) {
          problems.push(`curl body is not JSON: ${String(error)}`);
        }
      }
      return problems;
    }
    case 'kill':
    case 'tar':
      return [];
    default:
      return [`unknown command '${head ?? ''}'`];
  }
}

function checkRaftqueue(args: readonly string[]): string[] {
  const [sub, ...rest] = args;
  const known = FLAGS[sub ?? ''];
  if (known === undefined) return [`no raftqueue command '${sub ?? ''}'`];
  return rest.filter((a) => a.startsWith('--') && !known.includes(a.slice(2)) && a !== '--help').map((a) => `raftqueue ${sub ?? ''} has no flag ${a}`);
}

test('readme: sh blocks name commands, scripts, flags and routes that exist', (t) => {
  const problems: string[] = [];
  const sh = blocks.filter((b) => b.lang === 'sh');
  t.true(sh.length >= 4);
  for (const b of sh) {
    for (const line of b.code.split('\n')) {
      const command = line.replace(/\s+#.*$/, '').trim();
      if (command.length === 0 || command.startsWith('#')) continue;
      for (const part of command.split('&&')) problems.push(...checkCommand(part.trim()).map((p) => `line ${b.line}: ${p}`));
    }
  }
  t.deepEqual(problems, []);
});

test('readme: json blocks parse, and a serve config passes its schema', (t) => {
  const json = blocks.filter((b) => b.lang === 'json');
  t.true(json.length >= 1);
  for (const b of json) {
    const value = JSON.parse(b.code) as unknown;
    if (typeof value === 'object' && value !== null && 'addresses' in value) {
      const members = parseServeConfig(value);
      t.true(members.length > 0, `line ${b.line}`);
    }
  }
});

test('readme: the documented defaults match the code', (t) => {
  t.regex(readme, /without\s+`internal_port` Raft uses `port \+ 1000`/);
  for (const flag of [...Object.keys(NODE_FLAGS), ...Object.keys(SERVE_FLAGS)]) t.true(readme.includes(`--${flag}`), `README documents --${flag}`);
});

test('readme: the embedding snippet runs as written (three members in one process)', async (t) => {
  const block = blocks.find((b) => b.lang === 'ts' && b.code.includes('const members = Object.keys(peers)'));
  if (block === undefined) return t.fail('the embedding snippet is missing');
  const dir = join(repoRoot, '.tmp', `readme-run-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // Only the ports (free ones, so parallel tests do not collide) and the data dirs (a temp dir)
  // change; the code runs as the README shows it, importing 'raftqueue' (this package).
  const ports = await freePorts(3);
  let code = block.code.replace(/127\.0\.0\.1:700([123])/g, (_, n: string) => `127.0.0.1:${ports[Number(n) - 1] as number}`);
  code = code.replace('`./data/${id}`', `\`${join(dir, 'data').replace(/\\/g, '/')}/\${id}\``);
  const js = ts.transpileModule(code, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } }).outputText;
  const file = join(dir, 'cluster.mjs');
  writeFileSync(file, js);
  const { stdout } = await promisify(execFile)(process.execPath, [file], { cwd: dir, timeout: 60_000 });
  t.is(stdout.trim(), '0 25');
});

test('readme: the raftqueue/http snippet runs as written: the app serves its page, the gateway under /queue and the metrics', async (t) => {
  const block = blocks.find((b) => b.lang === 'ts' && b.code.includes("from 'raftqueue/http'"));
  if (block === undefined) return t.fail('the raftqueue/http snippet is missing');
  const dir = join(repoRoot, '.tmp', `readme-http-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const harness = new ProcessHarness();
  t.teardown(async () => {
    await harness.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  // Only the ports and the data dir change; the code runs as the README shows it.
  const [raftPort, httpPort] = await freePorts(2);
  const code = block.code
    .replace('127.0.0.1:7001', `127.0.0.1:${raftPort as number}`)
    .replace('server.listen(8080', `server.listen(${httpPort as number}`)
    .replace("'./data/n1'", JSON.stringify(join(dir, 'data').replace(/\\/g, '/')));
  const js = ts.transpileModule(code, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } }).outputText;
  const file = join(dir, 'app.mjs');
  writeFileSync(file, js);
  const app = harness.spawn({ name: 'readme http app', script: file, args: [], cwd: dir, stderr: 'capture', capturedCharsMax: 100_000 });
  const base = `http://127.0.0.1:${httpPort as number}`;
  await waitUntil(`the README's app serving on ${base}\n${app.stderr}`, async () => (await httpJson('GET', `${base}/queue/status`, undefined, { timeoutMs: 500 }).catch(() => undefined))?.status === 200, 20_000, 50);
  t.is((await httpJson('GET', `${base}/`)).text, 'the app');
  const page = await httpJson('GET', `${base}/queue/ui`);
  t.is(page.status, 200);
  t.regex(page.text, /raftqueue dashboard/);
  t.regex((await httpJson('GET', `${base}/app-metrics`)).text, /^raftqueue_role\{role="(leader|follower|candidate)"\} 1$/m);
});
