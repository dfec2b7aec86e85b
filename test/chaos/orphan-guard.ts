/**
 * Loaded into every node process of a chaos run (`node --import .../orphan-guard.js main.js node
 * ...`): when the harness that started it dies without cleaning up (SIGKILL, a test runner's
 * timeout), the node notices that its parent changed, removes the run's temporary directory (the
 * parent of its `--data-dir`, only if named raftqueue-chaos-*) and kills itself, so nothing of a
 * run outlives it. Nothing else changes in the process under test (one unref'd timer).
 */
import { rmSync } from 'node:fs';
import { basename, dirname } from 'node:path';

const parent = process.ppid;
const dataDirAt = process.argv.indexOf('--data-dir');
const dataDir = dataDirAt > 0 ? process.argv[dataDirAt + 1] : undefined;

setInterval(() => {
  if (process.ppid === parent) return;
  const root = dataDir === undefined ? undefined : dirname(dataDir);
  if (root !== undefined && basename(root).startsWith('raftqueue-chaos-')) {
    try {
      rmSync(root, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    } catch (error) {
      process.stderr.write(`orphan guard: could not remove ${root}: ${String(error)}\n`);
    }
  }
  process.kill(process.pid, 'SIGKILL');
}, 500).unref();
