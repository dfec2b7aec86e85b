/**
 * The deterministic simulator: many seeds with every fault, hand-written scenarios, and replay.
 */
import test from 'ava';
import { createRandom } from '../lib/core/random.js';
import type { NodeId } from '../lib/core/types.js';
import { Cluster } from './sim/cluster.js';
import type { ClusterOptions } from './sim/cluster.js';
import { queueReplayCommand, runQueueSeed } from './sim/queue-run.js';
import { formatSeed, heal, replayCommand, runSeed } from './sim/run-seed.js';

/** Seeds in `npm test`; `npm run sim -- --seeds 20000` runs long batches. */
const SEED_COUNT = Number(process.env['SIM_SEEDS'] ?? 400);
const SEED_START = 0x5eed0000;
const SHARDS = 8;

for (let shard = 0; shard < SHARDS; shard++) {
  test(`sim: seeds ${formatSeed(SEED_START + shard)} + ${SHARDS}k (shard ${shard + 1}/${SHARDS})`, async (t) => {
    const failures: string[] = [];
    let runs = 0;
    for (let i = shard; i < SEED_COUNT; i += SHARDS) {
      await Promise.resolve(); // Lets each finished run's leftover microtasks go (see test/sim/cli.ts).
      const r = runSeed(SEED_START + i);
      runs++;
      if (!r.ok) failures.push(`seed ${formatSeed(r.seed)} (${r.description}): ${r.failure}\n  replay: ${replayCommand(r.seed)}`);
    }
    t.true(runs > 0);
    t.deepEqual(failures, []);
  });
}

/** Queue-level seeds in `npm test`: the real state machine under every fault. */
const QUEUE_SEED_COUNT = Number(process.env['SIM_QUEUE_SEEDS'] ?? 100);
const QUEUE_SHARDS = 4;
for (let shard = 0; shard < QUEUE_SHARDS; shard++) {
  test(`sim queue: seeds ${formatSeed(SEED_START + shard)} + ${QUEUE_SHARDS}k (shard ${shard + 1}/${QUEUE_SHARDS}): no acked publish lost, pops exactly once in order, groups complete`, async (t) => {
    const failures: string[] = [];
    let runs = 0;
    for (let i = shard; i < QUEUE_SEED_COUNT; i += QUEUE_SHARDS) {
      await Promise.resolve();
      const r = runQueueSeed(SEED_START + i);
      runs++;
      if (!r.ok) failures.push(`seed ${formatSeed(r.seed)} (${r.description}): ${r.failure}\n  replay: ${queueReplayCommand(r.seed)}`);
    }
    t.true(runs > 0);
    t.deepEqual(failures, []);
  });
}

test('sim queue: one seed run twice gives the same trace hash', (t) => {
  const a = runQueueSeed(0x5eed0011);
  const b = runQueueSeed(0x5eed0011);
  t.true(a.ok, a.failure);
  t.is(a.traceHash, b.traceHash);
});

test('sim: one seed run twice gives the same trace hash', (t) => {
  const seed = 0x5eed0042;
  const a = runSeed(seed);
  const b = runSeed(seed);
  t.true(a.ok, a.failure);
  t.is(a.traceHash, b.traceHash);
  t.is(a.events, b.events);
  t.not(runSeed(seed + 1).traceHash, a.traceHash, 'another seed, another run');
});

test('sim: a failing seed names the command that replays it', (t) => {
  t.is(replayCommand(0x5eed0007), 'npm run sim -- --seed 0x5eed0007 --trace');
});

// ---------------------------------------------------------------------------------------------
// Hand-written scenarios on a fault-free network

function scenario(size: number, overrides: Partial<ClusterOptions> = {}): Cluster {
  return new Cluster({
    size,
    random: createRandom(0x5ce7a210 + size),
    tickMs: 10,
    electionTimeoutTicks: 10,
    heartbeatIntervalTicks: 1,
    diskDelayMsMax: 0.5,
    tornWriteRate: 0.5,
    compactEveryEntries: 50,
    inflightAppendsMax: 16,
    entriesPerAppendMax: 16,
    preVote: true,
    checkQuorum: true,
    faults: { delayMs: 0.5, jitterMs: 0.5, lossRate: 0, duplicateRate: 0 },
    trace: false,
    ...overrides,
  });
}

function waitLeader(c: Cluster, withinMs = 2_000, exclude: readonly NodeId[] = []): NodeId {
  let leader: NodeId | undefined;
  c.runUntil(c.nowMs + withinMs, () => {
    leader = c.leaders().find((id) => !exclude.includes(id));
    return leader !== undefined;
  });
  if (leader === undefined) throw new Error('no leader elected');
  return leader;
}

/** `n` requests on `leader`, each in its own event-loop turn (so each is its own entry). */
function load(c: Cluster, leader: NodeId, n: number): void {
  for (let i = 0; i < n; i++) {
    c.propose(leader);
    c.runUntil(c.nowMs + 1);
  }
  c.runUntil(c.nowMs + 200);
}

test('scenario: an isolated leader is replaced and the cluster converges after healing', (t) => {
  const c = scenario(5);
  const old = waitLeader(c);
  load(c, old, 50);
  const term = c.core(old)?.softState().term ?? 0;
  c.isolate(old);
  const fresh = waitLeader(c, 3_000, [old]);
  t.not(fresh, old);
  t.true((c.core(fresh)?.softState().term ?? 0) > term);
  load(c, fresh, 50);
  heal(c);
  t.true(c.acked.size >= 100);
  t.is(c.leaders().length, 1);
});

test('scenario: check-quorum demotes a partitioned leader within two election timeouts (diss. §6.2)', (t) => {
  const c = scenario(3);
  const leader = waitLeader(c);
  c.isolate(leader);
  const start = c.nowMs;
  c.runUntil(start + 1_000, () => c.core(leader)?.softState().role !== 'leader');
  t.not(c.core(leader)?.softState().role, 'leader');
  t.true(c.nowMs - start <= 2 * 10 * 10 + 20, `stepped down after ${c.nowMs - start} ms`);
  heal(c);
});

test('scenario: a one-way partition (follower cannot hear the leader) does not disrupt the leader', (t) => {
  const c = scenario(3);
  const leader = waitLeader(c);
  load(c, leader, 10);
  const term = c.core(leader)?.softState().term;
  const victim = c.ids.find((id) => id !== leader) as NodeId;
  c.block(leader, victim);
  c.runUntil(c.nowMs + 3_000);
  // Pre-vote plus leases: the victim's campaigns fail without touching anyone's term.
  t.deepEqual(c.leaders(), [leader]);
  t.is(c.core(leader)?.softState().term, term);
  t.is(c.core(victim)?.softState().term, term);
  c.unblock(leader, victim);
  heal(c);
  t.deepEqual(c.leaders(), [leader]);
});

test('scenario: pre-vote keeps a rejoining node from bumping the term (diss. §9.6)', (t) => {
  const c = scenario(5);
  const leader = waitLeader(c);
  const term = c.core(leader)?.softState().term;
  const victim = c.ids.find((id) => id !== leader) as NodeId;
  c.isolate(victim);
  c.runUntil(c.nowMs + 5_000);
  t.is(c.core(victim)?.softState().term, term, 'no term inflation while partitioned');
  c.healNetwork();
  c.runUntil(c.nowMs + 1_000);
  t.deepEqual(c.leaders(), [leader]);
  t.is(c.core(leader)?.softState().term, term);
});

test('scenario: a follower crashing mid-append loses only unacknowledged writes and catches up', (t) => {
  const c = scenario(3, { diskDelayMsMax: 5 });
  const leader = waitLeader(c);
  const follower = c.ids.find((id) => id !== leader) as NodeId;
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 20; i++) {
      c.propose(leader);
      c.runUntil(c.nowMs + 0.05);
    }
    // Crash while the follower's write of this batch is (most likely) in flight.
    c.runUntil(c.nowMs + 1.5);
    c.crash(follower);
    c.runUntil(c.nowMs + 50);
    c.restart(follower);
    c.runUntil(c.nowMs + 100);
  }
  heal(c);
  t.true(c.acked.size >= 50);
  t.is(c.appliedIndex(follower), c.appliedIndex(leader));
});

test('scenario: a crashed leader right after acknowledging loses nothing it acknowledged', (t) => {
  const c = scenario(5);
  for (let round = 0; round < 4; round++) {
    const leader = waitLeader(c, 3_000);
    const before = c.acked.size;
    c.propose(leader);
    c.runUntil(c.nowMs + 500, () => c.acked.size > before);
    c.crash(leader);
    waitLeader(c, 3_000, [leader]);
    c.restart(leader);
  }
  heal(c);
  t.true(c.acked.size >= 4);
});

test('scenario: leadership transfer hands over without an election timeout (diss. §3.10)', (t) => {
  const c = scenario(3);
  const leader = waitLeader(c);
  load(c, leader, 20);
  const target = c.ids.find((id) => id !== leader) as NodeId;
  c.transferLeadership(leader, target);
  const start = c.nowMs;
  c.runUntil(start + 1_000, () => c.leaders().includes(target));
  t.deepEqual(c.leaders(), [target]);
  t.true(c.nowMs - start < 50, `took ${c.nowMs - start} ms, well under an election timeout`);
  heal(c);
});

test('scenario: a follower behind a compacted log is caught up by snapshot (§7)', (t) => {
  const c = scenario(3, { compactEveryEntries: 20 });
  const leader = waitLeader(c);
  const lagging = c.ids.find((id) => id !== leader) as NodeId;
  c.isolate(lagging);
  c.runUntil(c.nowMs + 50);
  load(c, leader, 300);
  c.healNetwork();
  heal(c);
  t.true(c.stats.snapshotsInstalled >= 1, 'the follower installed a snapshot (streamed in chunks)');
  t.is(c.appliedIndex(lagging), c.appliedIndex(leader));
});

// ---------------------------------------------------------------------------------------------
// The node layer's request path, by hand

test('scenario: a request forwarded by a follower and retried across a leader change is applied once', (t) => {
  const c = scenario(3, { retryIntervalMs: 100 });
  const old = waitLeader(c);
  const follower = c.ids.find((id) => id !== old) as NodeId;
  // The follower forwards; the leader appends it, and then loses every link before it commits.
  c.runUntil(c.nowMs + 50);
  const key = c.propose(follower) as string;
  c.runUntil(c.nowMs + 1.2);
  c.isolate(old);
  const fresh = waitLeader(c, 3_000, [old]);
  t.not(fresh, old);
  // The follower hands it to the new leader (same session and sequence number); the session
  // table applies it once even if the old leader's copy also commits after healing.
  c.runUntil(c.nowMs + 1_000, () => c.acked.has(key));
  t.true(c.acked.has(key), 'acknowledged after the leader change');
  heal(c);
  t.true(c.stats.forwardedAcked >= 1);
});

test('scenario: a read on a follower sees every write acknowledged before it (§6.4)', (t) => {
  const c = scenario(5);
  const leader = waitLeader(c);
  load(c, leader, 20);
  const follower = c.ids.find((id) => id !== leader) as NodeId;
  const before = c.stats.reads;
  c.read(follower);
  c.runUntil(c.nowMs + 500, () => c.stats.reads > before);
  t.is(c.stats.reads, before + 1);
  heal(c);
});

// Seeds that once failed outside the default range, replayed on every run.
const REGRESSION_SEEDS: readonly [number, string][] = [
  [0x5eed3a26, 'a joined member took a snapshot before it knew the configuration in force'],
  [0x5eed2947, 'a reordered acknowledgement rewound a snapshot stream into a storm of chunks that never finished'],
];
for (const [seed, what] of REGRESSION_SEEDS) {
  test(`sim: regression seed ${formatSeed(seed)} (${what})`, (t) => {
    const r = runSeed(seed);
    t.true(r.ok, `${r.failure ?? ''} (${replayCommand(seed)})`);
    t.true(r.events < 3_000_000, `${r.events} events`);
  });
}
