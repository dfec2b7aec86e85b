/**
 * One chaos run: start the cluster, set up topics and groups, run the workload (HTTP clients and
 * client processes) under the nemesis for `seconds`, heal everything, require a leader within
 * 2 s, drain, require convergence, check the history. Everything it starts is killed and removed
 * before it returns.
 */
import { createRandom } from '../../lib/core/random.js';
import { checkHistory, opsAround } from './checker.js';
import type { CheckResult, Violation } from './checker.js';
import { ClientFleet } from './clients.js';
import { ChaosCluster } from './cluster.js';
import { History, formatOp } from './history.js';
import type { Op, PublishOp } from './history.js';
import { Agents, call, sleep } from './http.js';
import { Monitor } from './monitor.js';
import { Nemesis, describeEpisode, makeSchedule } from './nemesis.js';
import { GROUP_CONSUMER, Router, Workload, drainGroup, drainPops, fetchOnce, popOnce, publishOnce } from './workload.js';
import type { WorkloadConfig, WorkloadEnv } from './workload.js';

export interface ChaosOptions {
  readonly seed: number;
  /** Length of the nemesis phase. */
  readonly seconds: number;
  readonly nodes: number;
  readonly verbose?: boolean;
  /** Progress lines (default: nothing). */
  readonly log?: (line: string) => void;
  /** Bound on the leader after healing (default 2000 ms). */
  readonly leaderWithinMs?: number;
  /** Client processes (RaftQueueClient, each behind its own proxies) in the workload; default 2. */
  readonly clients?: number;
}

/** What each client process runs: 1 publisher, 1 popper, a consumer per client group. */
const CLIENT_PUBLISHERS = 1;
const CLIENT_POPPERS = 1;
/** A publish and up to 3 retries under its publishId. */
const CLIENT_PUBLISH_ATTEMPTS_MAX = 4;
/** Most faults last longer: many publishes time out and are retried while the first may land. */
const CLIENT_PUBLISH_TIMEOUT_MS = 1_500;

export interface ChaosReport {
  readonly ok: boolean;
  /** The one-line verdict. */
  readonly verdict: string;
  /** On failure: the violations and the operations around them; node logs. */
  readonly details: readonly string[];
  readonly check: CheckResult | undefined;
  readonly leaderAfterHealMs: number | undefined;
  readonly durationMs: number;
  /** Every operation and nemesis action, in invocation order. */
  readonly history: readonly Op[];
}

/** A property outside the history: liveness after healing, crashed nodes, setup. */
interface RunViolation {
  readonly property: string;
  readonly message: string;
  readonly details?: readonly string[];
}

export function formatSeed(seed: number): string {
  return `0x${(seed >>> 0).toString(16)}`;
}

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const started = performance.now();
  const log = o.log ?? (() => undefined);
  const leaderWithinMs = o.leaderWithinMs ?? 2_000;
  const seedText = formatSeed(o.seed);
  const history = new History();
  const rng = createRandom(o.seed).fork('workload');
  const clients = o.clients ?? 2;
  const schedule = makeSchedule(o.seed, o.nodes, o.seconds, clients);
  const config: WorkloadConfig =
    o.nodes >= 5
      ? { topics: ['t0', 't1', 't2'], groups: { t0: ['ga', 'gb'], t1: ['ga'], t2: [] }, clientGroups: { t0: ['ga'], t2: ['gc'] }, publishers: 4, poppers: 3, consumersPerGroup: 1 }
      : { topics: ['t0', 't1'], groups: { t0: ['ga', 'gb'], t1: ['ga'] }, clientGroups: { t0: ['ga'], t1: ['gc'] }, publishers: 3, poppers: 2, consumersPerGroup: 1 };
  // Every group that exists: set up before the first publish, drained, checked.
  const groups = clients > 0 ? unionGroups(config.groups, config.clientGroups) : config.groups;
  const runViolations: RunViolation[] = [];
  const agents = new Agents();
  const cluster = await ChaosCluster.create(o.nodes, { verbose: o.verbose === true, now: () => history.now() });
  let fleet: ClientFleet | undefined;
  const monitor = new Monitor(
    cluster.nodes.map((n) => n.url),
    cluster.ids,
    agents,
  );
  const env: WorkloadEnv = { urls: cluster.nodes.map((n) => n.url), ids: cluster.ids, history, monitor, agents };
  const workload = new Workload(env, config, rng);
  const record = (action: string): void => {
    history.nemesis(action);
    if (o.verbose) log(`  ${(history.now() / 1000).toFixed(3)}s nemesis: ${action}`);
  };
  let killArmed: ((node: number) => void) | undefined;
  workload.onPublishAck = (node) => {
    const kill = killArmed;
    if (kill === undefined) return;
    killArmed = undefined;
    kill(node);
  };
  const nemesis = new Nemesis(schedule, {
    ids: cluster.ids,
    leader: () => monitor.leader(),
    kill: (i) => cluster.kill(i),
    restart: (i) => cluster.restart(i),
    pause: (i) => cluster.pause(i),
    resume: (i) => cluster.resume(i),
    setLink: (a, b, mode) => cluster.setLink(a, b, mode),
    killClient: (k) => fleet?.kill(k),
    restartClient: async (k) => fleet?.restart(k),
    setClientLink: (k, node, mode) => fleet?.setLink(k, node, mode),
    record,
    killAfterNextAck: (withinMs) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => {
          killArmed = undefined;
          resolve(undefined);
        }, withinMs);
        killArmed = (node) => {
          cluster.kill(node);
          clearTimeout(timer);
          record(`SIGKILL ${cluster.ids[node] as string}: it just acknowledged a publish`);
          resolve(node);
        };
      }),
  });
  let leaderAfterHealMs: number | undefined;
  let membersUpMs: number | undefined;
  let check: CheckResult | undefined;
  try {
    log(`chaos: seed ${seedText}, ${o.nodes} nodes, ${clients} client processes, ${o.seconds} s; ${schedule.length} faults scheduled`);
    if (o.verbose) for (const e of schedule) log(`  ${describeEpisode(e, cluster.ids)}`);
    if (clients > 0) fleet = await createFleet(o.seed, clients, cluster, config, history, o.verbose === true);
    cluster.startAll();
    monitor.start();
    // The client processes load the library meanwhile.
    const launching = fleet?.launchAll();
    await setup(env, config.topics, groups, runViolations, log);
    await launching;
    if (runViolations.length === 0) {
      log(`chaos: workload and nemesis for ${o.seconds} s`);
      fleet?.begin();
      workload.start();
      record(`nemesis phase starts (schedule times are counted from here)`);
      nemesis.start();
      await sleep(o.seconds * 1_000);
      await nemesis.stop();

      // Heal: links pass, paused nodes continue, killed ones restart. Healing is complete when
      // every process serves its member again (a restarted one has loaded the library and
      // recovered its storage); from then a leader must be there within 2 s.
      record('heal everything');
      const healStarted = performance.now();
      await Promise.all([cluster.healAll(), fleet?.healAll()]);
      const upAt = await waitForMembersUp(env, 15_000);
      if (upAt === undefined) runViolations.push({ property: 'restart', message: 'a restarted node did not serve its member within 15 s', details: nodeViews(env) });
      const healedAt = upAt ?? performance.now();
      membersUpMs = Math.round(healedAt - healStarted);
      record(`healed: every member up ${membersUpMs} ms after the heal began`);
      const leader = await waitForLeader(env, Math.max(leaderWithinMs, 10_000));
      leaderAfterHealMs = leader === undefined ? undefined : Math.max(0, Math.round(leader.at - healedAt));
      record(leader === undefined ? 'no leader after healing' : `leader ${cluster.ids[leader.node] as string} (term ${leader.term}) ${leaderAfterHealMs} ms after healing`);
      if (leaderAfterHealMs === undefined || leaderAfterHealMs > leaderWithinMs) {
        runViolations.push({
          property: 'leader-after-heal',
          message: leaderAfterHealMs === undefined ? 'no leader within 10 s after healing' : `the leader came ${leaderAfterHealMs} ms after healing (bound ${leaderWithinMs} ms)`,
          details: nodeViews(env),
        });
      }
      log(`chaos: healed; ${leaderAfterHealMs === undefined ? 'no leader' : `leader after ${leaderAfterHealMs} ms`}; stopping clients`);
      const stopStarted = performance.now();
      await Promise.all([workload.stop(), fleet?.stop()]);
      log(`chaos: clients stopped in ${Math.round(performance.now() - stopStarted)} ms; draining`);

      // Drain every topic and every group through the leader.
      const drainStarted = performance.now();
      const drainDeadline = drainStarted + 30_000;
      for (const topic of config.topics) {
        if (!(await drainPops(env, rng.fork(`drain ${topic}`), topic, drainDeadline))) {
          runViolations.push({ property: 'drain', message: `the pops of ${topic} never reached "empty" on a leader within 30 s after healing` });
        }
      }
      for (const topic of config.topics) {
        for (const group of groups[topic] ?? []) {
          const missing = (): number => missingForGroup(history.ops, topic, group);
          if (!(await drainGroup(env, rng.fork(`drain ${group} ${topic}`), topic, group, missing, drainDeadline))) {
            log(`chaos: group ${group} of ${topic} still misses ${missing()} message(s) at the drain deadline`);
          }
        }
      }
      log(`chaos: drained in ${Math.round(performance.now() - drainStarted)} ms`);
      const converged = await waitForConvergence(env, config.topics, 10_000);
      if (converged !== undefined) runViolations.push({ property: 'convergence', message: converged, details: nodeViews(env) });
    }
    for (const e of cluster.unexpectedExits) {
      runViolations.push({ property: 'crash', message: `node ${e.node.id} exited on its own at ${(e.atMs / 1000).toFixed(3)} s (code ${e.code ?? '-'}, signal ${e.signal ?? '-'})`, details: e.logTail });
    }
    for (const p of fleet?.problems ?? []) runViolations.push({ property: 'client-process', message: p.message, details: p.details });
    check = checkHistory(history.ops, { groups });
    if (check.stats.publishes.ok === 0) runViolations.push({ property: 'progress', message: 'no publish was acknowledged during the whole run' });
    else if (fleet !== undefined && check.stats.client.publishes.ok === 0) runViolations.push({ property: 'progress', message: 'no publish of a client process was acknowledged during the whole run' });
  } finally {
    await nemesis.stop();
    await workload.stop();
    await fleet?.shutdown();
    await monitor.stop();
    agents.destroy();
    await cluster.shutdown();
  }

  const durationMs = Math.round(performance.now() - started);
  const ok = check !== undefined && check.ok && runViolations.length === 0;
  const s = check?.stats;
  const nc = nemesis.counts;
  const faults = `faults: ${nc.kills} kills, ${nc.pauses} pauses, ${nc.partitions} partitions${clients > 0 ? `, ${nc.clientKills} client kills, ${nc.clientCuts} client link cuts` : ''}`;
  const c = s?.client;
  const clientNumbers =
    c !== undefined && fleet !== undefined
      ? `; of which ${clients} client processes (${fleet.incarnations} started): publishes ${c.publishes.ok} ok / ${c.publishes.unknown} unknown / ${c.publishes.fail} failed (${c.retries} retries under the same publishId), pops ${c.pops.messages} (${c.pops.unknown} unknown), group deliveries ${c.groupDeliveries}`
      : '';
  const numbers = s
    ? `publishes ${s.publishes.ok} ok / ${s.publishes.unknown} unknown / ${s.publishes.fail} failed, pops ${s.pops.messages} (${s.pops.unknown} unknown${s.excusedMissing > 0 ? `, ${s.excusedMissing} acknowledged message(s) unseen, possibly taken by those` : ''}), group deliveries ${s.groupDeliveries} (redeliveries ${s.redeliveries})${clientNumbers}`
    : 'no history';
  const leaderText = `${leaderAfterHealMs === undefined ? 'no leader after heal' : `leader after heal ${leaderAfterHealMs} ms`}${membersUpMs === undefined ? '' : ` (restarts took ${membersUpMs} ms)`}`;
  if (ok) {
    return { ok, verdict: `chaos: seed ${seedText} nodes ${o.nodes} ${o.seconds} s: PASS ${numbers}, ${faults}; ${leaderText}; ${monitor.leaderChanges} leaders seen; total ${(durationMs / 1000).toFixed(1)} s`, details: [], check, leaderAfterHealMs, durationMs, history: history.ops };
  }
  const first: Violation | RunViolation | undefined = check?.violations[0] ?? runViolations[0];
  const details: string[] = [];
  details.push(`nodes ${o.nodes}, ${o.seconds} s: ${numbers}, ${faults}; ${leaderText}`);
  details.push('The seed reproduces the nemesis schedule (faults, targets, timings); the timing of real processes does not repeat exactly.');
  for (const v of check?.violations ?? []) {
    details.push('', `violation (${v.property}): ${v.message}`, 'operations around it:');
    for (const op of opsAround(history.ops, v)) details.push(`  ${v.ops.includes(op) ? '>' : ' '} ${formatOp(op)}`);
  }
  for (const v of runViolations) {
    details.push('', `violation (${v.property}): ${v.message}`);
    for (const line of v.details ?? []) details.push(`    ${line}`);
  }
  if (runViolations.length > 0 || o.verbose) {
    details.push('', 'last nemesis actions:');
    for (const op of history.ops.filter((x) => x.kind === 'nemesis').slice(-12)) details.push(`  ${formatOp(op)}`);
    details.push('', 'node logs (last lines):');
    for (const n of cluster.nodes) for (const line of n.log.slice(-12)) details.push(`  ${line}`);
    if (fleet !== undefined) {
      details.push('', 'client process logs (last lines):');
      for (const line of fleet.logTail(12)) details.push(`  ${line}`);
    }
  }
  return { ok: false, verdict: `chaos: FAIL seed ${seedText} : ${first?.message ?? 'no verdict'}`, details, check, leaderAfterHealMs, durationMs, history: history.ops };
}

/** The client processes, each behind a proxy of its own to every member (not started yet). */
function createFleet(seed: number, count: number, cluster: ChaosCluster, config: WorkloadConfig, history: History, verbose: boolean): Promise<ClientFleet> {
  const clientGroups = Object.entries(config.clientGroups).flatMap(([topic, gs]) => gs.map((group) => ({ topic, group })));
  return ClientFleet.create({
    count,
    seed,
    nodeIds: cluster.ids,
    raftPorts: cluster.nodes.map((n) => n.raftPort),
    aliases: cluster.nodes.map((n) => cluster.peerAddressesOf(n.index)),
    plan: {
      topics: [...config.topics],
      // Both ways of consuming a group: settling each delivery, and a handler.
      groups: clientGroups.map((g, i) => ({ ...g, style: i % 2 === 0 ? ('messages' as const) : ('subscribe' as const) })),
      publishers: CLIENT_PUBLISHERS,
      poppers: CLIENT_POPPERS,
      publishAttemptsMax: CLIENT_PUBLISH_ATTEMPTS_MAX,
      publishTimeoutMs: CLIENT_PUBLISH_TIMEOUT_MS,
      consumer: { ...GROUP_CONSUMER },
    },
    history,
    verbose,
  });
}

function unionGroups(a: Readonly<Record<string, readonly string[]>>, b: Readonly<Record<string, readonly string[]>>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [topic, gs] of [...Object.entries(a), ...Object.entries(b)]) out[topic] = [...new Set([...(out[topic] ?? []), ...gs])];
  return out;
}

/** Topics, groups, and a first message through each group, so every group exists before the workload. */
async function setup(env: WorkloadEnv, topics: readonly string[], allGroups: Readonly<Record<string, readonly string[]>>, violations: RunViolation[], log: (line: string) => void): Promise<void> {
  const deadline = performance.now() + 30_000;
  const rng = createRandom(1).fork('setup');
  const r = new Router(env, rng);
  const leader = await waitForLeader(env, 30_000);
  if (leader === undefined) {
    violations.push({ property: 'setup', message: 'no leader within 30 s of starting the cluster', details: nodeViews(env) });
    return;
  }
  r.node = leader.node;
  for (const topic of topics) {
    for (;;) {
      if (performance.now() > deadline) {
        violations.push({ property: 'setup', message: `could not create topic ${topic} within 30 s` });
        return;
      }
      const a = await call(env.agents, r.url, 'PUT', '/topic', { topic }, 6_000);
      if (a.kind === 'reply' && a.status === 200 && (a.body['success'] === true || a.role === 'leader')) break;
      r.move(a.kind === 'reply' ? a.body['leader'] : undefined);
      await sleep(50);
    }
  }
  for (const topic of topics) {
    const groups = allGroups[topic] ?? [];
    // The group exists once a fetch of it delivered the sentinel: everything later reaches it.
    const sentinel = `setup-${topic}`;
    while ((await publishOnce(env, 'setup', r, topic, `${sentinel}-${env.history.ops.length}`)) !== 'ok') {
      if (performance.now() > deadline) {
        violations.push({ property: 'setup', message: `could not publish to ${topic} within 30 s` });
        return;
      }
      await sleep(50);
    }
    for (const group of groups) {
      const seen = (): boolean => env.history.ops.some((op) => op.kind === 'fetch' && op.group === group && op.topic === topic && (op.deliveries?.length ?? 0) > 0);
      while (!seen()) {
        if (performance.now() > deadline) {
          violations.push({ property: 'setup', message: `group ${group} of ${topic} delivered nothing within 30 s` });
          return;
        }
        await fetchOnce(env, 'setup', r, topic, group, { max: 10, waitMs: 300 }, () => 'ack');
      }
    }
    while ((await popOnce(env, 'setup', r, topic)) !== 'ok') {
      if (performance.now() > deadline) {
        violations.push({ property: 'setup', message: `could not pop from ${topic} within 30 s` });
        return;
      }
      await sleep(50);
    }
  }
  log(`chaos: cluster up (leader ${env.ids[leader.node] as string}), topics ${topics.join(' ')} and groups ready`);
}

/** Acknowledged publishes of `topic` that `group` was never seen to get. */
function missingForGroup(ops: readonly Op[], topic: string, group: string): number {
  const delivered = new Set<string>();
  for (const op of ops) if (op.kind === 'fetch' && op.topic === topic && op.group === group && op.deliveries) for (const d of op.deliveries) delivered.add(d.message);
  let n = 0;
  for (const op of ops) if (op.kind === 'publish' && op.topic === topic && op.outcome === 'ok' && !delivered.has((op as PublishOp).message)) n++;
  return n;
}

/** Polls `GET /` of every node until each serves its started member; when, or undefined. */
async function waitForMembersUp(env: WorkloadEnv, withinMs: number): Promise<number | undefined> {
  const until = performance.now() + withinMs;
  while (performance.now() < until) {
    const answers = await Promise.all(env.urls.map((url) => call(undefined, url, 'GET', '/', undefined, 250)));
    // A member that recovered its storage reports its persisted term (every node voted in setup).
    if (answers.every((a) => a.kind === 'reply' && a.status === 200 && typeof a.body['id'] === 'string' && a.body['id'] !== '' && Number(a.body['term']) > 0)) return performance.now();
    await sleep(10);
  }
  return undefined;
}

/**
 * Polls `GET /status` of every node until one says Leader and a majority of the nodes report its
 * term; resolves with it and when it was seen, or undefined after `withinMs`.
 */
async function waitForLeader(env: WorkloadEnv, withinMs: number): Promise<{ node: number; term: number; at: number } | undefined> {
  const until = performance.now() + withinMs;
  const majority = Math.floor(env.urls.length / 2) + 1;
  while (performance.now() < until) {
    const answers = await Promise.all(env.urls.map((url) => call(undefined, url, 'GET', '/status', undefined, 250)));
    const at = performance.now();
    const statuses = answers.map((a) => (a.kind === 'reply' && a.status === 200 ? { role: String(a.body['role']), term: Number(a.body['term']) } : undefined));
    for (const [i, s] of statuses.entries()) {
      if (s?.role !== 'Leader') continue;
      if (statuses.filter((x) => x?.term === s.term).length >= majority) return { node: i, term: s.term, at };
    }
    await sleep(20);
  }
  return undefined;
}

/**
 * Every node follows the same leader in the same term, has applied at least what the leader had
 * committed when the check began, and reports the same topic depths. Undefined when it holds
 * within `withinMs`, else what is wrong.
 */
async function waitForConvergence(env: WorkloadEnv, topics: readonly string[], withinMs: number): Promise<string | undefined> {
  const until = performance.now() + withinMs;
  let target: number | undefined;
  let problem = 'no answers';
  while (performance.now() < until) {
    const index = await Promise.all(env.urls.map((url) => call(undefined, url, 'GET', '/', undefined, 500)));
    const metrics = await Promise.all(env.urls.map((url) => call(undefined, url, 'GET', '/metrics', undefined, 500)));
    const views = index.map((a) => (a.kind === 'reply' && a.status === 200 ? a.body : undefined));
    const leaderView = views.find((v) => v?.['role'] === 'leader');
    if (target === undefined && leaderView !== undefined) target = Number(leaderView['commitIndex']);
    const depths = metrics.map((a) => (a.kind === 'reply' && a.status === 200 ? topics.map((t) => depthOf(a.text, t)).join(',') : undefined));
    const first = views[0];
    if (views.some((v) => v === undefined) || depths.some((d) => d === undefined)) problem = 'a node does not answer';
    else if (target === undefined) problem = 'no node reports being the leader';
    else if (!views.every((v) => v?.['leaderId'] === first?.['leaderId'] && v?.['term'] === first?.['term'])) problem = `nodes disagree on the leader: ${views.map((v) => `${String(v?.['id'])}:${String(v?.['leaderId'])}@${String(v?.['term'])}`).join(' ')}`;
    else if (!views.every((v) => Number(v?.['appliedIndex']) >= (target as number))) problem = `applied indexes ${views.map((v) => String(v?.['appliedIndex'])).join(' ')} below the leader's commit index ${target}`;
    else if (!depths.every((d) => d === depths[0])) problem = `topic depths differ: ${depths.join(' | ')}`;
    else return undefined;
    await sleep(50);
  }
  return `the nodes did not converge within ${withinMs} ms: ${problem}`;
}

/** A topic's depth from a /metrics text; the text is fetched without the gateway's topic escaping concerns (plain names). */
function depthOf(metrics: string, topic: string): string {
  const m = new RegExp(`^raftqueue_topic_depth\\{topic="${topic.replace(/[.]/g, '\\.')}"\\} (\\d+)$`, 'm').exec(metrics);
  return m ? (m[1] as string) : '-';
}

function nodeViews(env: WorkloadEnv): string[] {
  return env.monitor.views.map((v, i) => `${env.ids[i] as string}: ${v === undefined ? 'no answer' : `${v.role} term ${v.term} leader ${v.leaderId ?? '-'} commit ${v.commitIndex} applied ${v.appliedIndex}`}`);
}
