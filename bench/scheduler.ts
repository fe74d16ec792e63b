/**
 * npm run bench:scheduler -- --hypervisors 2000 --regions 10 --events 5000
 *
 * The same burst of create events, on the same seeded fleet (one fresh
 * database per run, same seed), placed by:
 *   v1              Scheduler V1 as deployed: one connection, polls every 1000 ms, 50 events a pass;
 *   v1_unthrottled  the same loop with a 1 ms poll interval: the most its single thread can do;
 *   v2_1, v2_3      Scheduler V2 with 1 and 3 active-active replicas, each its own process
 *                   (scheduler/main.ts; --v2-in-process runs them inside this process instead).
 *
 * Agents are simulated identically in every run (`--agent-tick-ms`): every
 * tick, each placed create is marked done, its droplet active, and its size
 * taken out of the host's servers row (what V1 reads) and the host's metrics
 * (what V2 scrapes), whose report timestamps advance as live agents' would.
 * Without this V1 could never finish: its busy rule allows one pending
 * create per host, and V2 keeps that rule.
 *
 * Timing starts when the burst is committed (schedulers already running and
 * idle, V2 replicas' heartbeats settled) and stops when no burst event is
 * waiting for a host. V1 runs inside this process (it is one loop on one
 * connection; its time goes to MySQL round trips, not to this CPU). Afterwards every
 * host's non-archived droplets are checked against its capacity (total minus
 * HOST_RESERVED): over-committed hosts, goal 0.
 *
 * Each run also says what it cost, read from the server and the kernel
 * (bench/server-watch.ts): the scheduler user's statements, commits and
 * server CPU per placement (USER_STATISTICS), SHOW GLOBAL STATUS deltas
 * (row lock waits, deadlocks), Threads_running, mariadbd's CPU, the
 * scheduler processes' CPU, and the machine's load; V2 replica processes
 * add their batches' time by phase (claim, scrape, busy, users, rank,
 * commit, reread, finish). `--repeat N` runs the list N times interleaved
 * and reports medians, and ratios as the median of each repetition's
 * ratio. `--v2-cpu-prof DIR` writes the replicas' V8 CPU profiles.
 * Prints one JSON object.
 *
 *   npm run bench:scheduler -- --runs v1_unthrottled,v2_1,v2_3 --repeat 3
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { HOST_RESERVED } from '../domain/catalog.ts';
import { generateSeed } from '../stack/seed/generate.ts';
import { insertSeed } from '../stack/seed/insert.ts';
import { createRandom } from '../stack/seed/prng.ts';
import { createSchedulerV1 } from '../legacy/scheduler-v1/create-scheduler-v1.ts';
import { formatMysqlUrl } from '../lib/db/config.ts';
import { dropDatabase, prepareDatabase, uniqueDatabaseName } from '../lib/db/database.ts';
import { createKnex } from '../lib/db/knex.ts';
import { provisionServer } from '../lib/db/provision.ts';
import { serviceDbConfig } from '../lib/db/service-users.ts';
import { checkInvariants } from '../lib/invariants.ts';
import { createLogger } from '../lib/logger.ts';
import { createSchedulerV2, type SchedulerV2 } from '../scheduler/create-scheduler-v2.ts';
import type { HostMetrics } from '../lib/metrics/host-metrics.ts';
import { parsePromText } from '../lib/metrics/prom-text.ts';
import { childEnv } from '../lib/process/child-env.ts';
import { startAgents, startFleetMetrics } from './scheduler-fleet.ts';
import { watchServer, type ServerFigures } from './server-watch.ts';
import { loadStackSecrets } from '../lib/secrets/stack-secrets.ts';

const { values } = parseArgs({
  options: {
    hypervisors: { type: 'string', default: '2000' },
    regions: { type: 'string', default: '10' },
    events: { type: 'string', default: '5000' },
    seed: { type: 'string', default: '1' },
    'agent-tick-ms': { type: 'string', default: '25' },
    'v2-batch': { type: 'string', default: '200' },
    'v2-wait-retry-ms': { type: 'string', default: '100' },
    policy: { type: 'string', default: 'v1-compatible' },
    runs: { type: 'string', default: 'v1,v1_unthrottled,v2_1,v2_3' },
    'v2-in-process': { type: 'boolean', default: false },
    'timeout-s': { type: 'string', default: '900' },
    repeat: { type: 'string', default: '1' },
    'v2-cpu-prof': { type: 'string' },
    'replica-sessions': { type: 'string', default: 'shared' },
  },
});
const settings = {
  hypervisors: Number(values.hypervisors),
  regions: Number(values.regions),
  events: Number(values.events),
  seed: Number(values.seed),
  agent_tick_ms: Number(values['agent-tick-ms']),
  v2_batch_size: Number(values['v2-batch']),
  v2_wait_retry_ms: Number(values['v2-wait-retry-ms']),
  v2_policy: values.policy as 'v1-compatible' | 'spread' | 'bin-pack',
  timeout_s: Number(values['timeout-s']),
  /** V2 replicas as separate processes (as deployed), unless --v2-in-process. */
  v2_processes: !values['v2-in-process'],
  /** Each run name this many times, interleaved (v1_unthrottled, v2_1, v2_3, v1_unthrottled, …); medians reported. */
  repeat: Number(values.repeat),
  /** Directory for V2 replica processes' V8 CPU profiles (node --cpu-prof), if given. */
  v2_cpu_prof_dir: values['v2-cpu-prof'],
  /**
   * shared: V2 replica processes stay in this process's session; own: each starts its own (setsid), as
   * separate hosts would be. Linux's autogroup scheduling shares CPU between sessions, not processes: in one
   * session, three replicas together get the CPU one would on a busy machine.
   */
  replica_sessions: values['replica-sessions'] as 'shared' | 'own',
};
if (settings.replica_sessions !== 'shared' && settings.replica_sessions !== 'own') {
  process.stderr.write('--replica-sessions must be shared or own\n');
  process.exit(2);
}
const runs = values.runs!.split(',').map((r) => r.trim()) as RunName[];
type RunName = 'v1' | 'v1_unthrottled' | 'v2_1' | 'v2_3';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'warn', destination: process.stderr });
const progress = (msg: string) => process.stderr.write(`[bench:scheduler] ${msg}\n`);
const secret = loadStackSecrets(process.env).secrets.db;

interface RunResult {
  scheduler: string;
  replicas: number;
  placed: number;
  failed: number;
  unplaced: number;
  seconds: number;
  placements_per_s: number;
  overcommitted_hosts: number;
  duplicate_placements: number;
  droplet_event_mismatches: number;
  conflicts?: Record<string, number>;
  /** V2 process replicas: their batches, from their debug log (count, events claimed, rounds, time by phase). */
  batches?: BatchSummary;
  /** What the run cost the server and the machine, read from the server and /proc. */
  server: ServerFigures & { per_placement: PerPlacement; bench_process_cpu: { seconds: number; cores: number } };
  notes: string;
}

interface PerPlacement {
  /** Statements the scheduler's MySQL user sent (USER_STATISTICS: SELECT + UPDATE/INSERT + other, BEGIN/COMMIT/SET included): round trips. */
  scheduler_statements: number | null;
  scheduler_commits: number | null;
  /** Server CPU spent on the scheduler user's statements. */
  scheduler_server_cpu_ms: number | null;
  /** All of mariadbd's CPU (agents' and the bench's statements too). */
  mysqld_cpu_ms: number | null;
  /** CPU of the scheduler's own processes (V2 replicas; for V1, the bench process that runs it and the agents). */
  scheduler_process_cpu_ms: number | null;
  innodb_row_lock_waits: number;
}

interface BatchSummary {
  batches: number;
  claimed: number;
  rounds: number;
  ms_by_phase: Record<string, number>;
  outcomes: Record<string, number>;
}

interface ReplicaProcess {
  url: string;
  pid: number;
  /** Its batches so far (from its debug log). */
  batches: BatchSummary;
  stop(): Promise<void>;
}

/** Adds one `batch` log line of a replica to its summary. */
function addBatch(into: BatchSummary, entry: { claimed?: number; rounds?: number; ms?: Record<string, number>; outcomes?: Record<string, number> }): void {
  Object.assign(into, combineBatches(into, { batches: 1, claimed: entry.claimed ?? 0, rounds: entry.rounds ?? 0, ms_by_phase: entry.ms ?? {}, outcomes: entry.outcomes ?? {} }, 1));
}

/** A Scheduler V2 replica in its own process (`node --import tsx scheduler/main.ts`), as deployed. */
async function startReplicaProcess(env: Record<string, string>): Promise<ReplicaProcess> {
  const prof = settings.v2_cpu_prof_dir ? ['--cpu-prof', `--cpu-prof-dir=${settings.v2_cpu_prof_dir}`] : [];
  const child = spawn(process.execPath, [...prof, '--import', 'tsx', 'scheduler/main.ts'], {
    cwd: ROOT,
    // debug: each batch logs its phases, summed into `batches`.
    env: childEnv({ ...env, PORT: '0', LOG_LEVEL: 'debug' }),
    // The IPC channel ends the replica when this process dies (runMain stops on disconnect), even in its own session.
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    detached: settings.replica_sessions === 'own',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const batches = emptyBatches();
  const url = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`replica ${env.SCHEDULER_V2_REPLICA_ID} did not start within 60 s`)), 60_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        try {
          const entry = JSON.parse(line) as { msg?: string; listening?: string; level?: number; claimed?: number; rounds?: number; ms?: Record<string, number>; outcomes?: Record<string, number> };
          if (entry.msg === 'batch') {
            addBatch(batches, entry);
          } else if (entry.msg === 'scheduler v2 ready' && entry.listening) {
            clearTimeout(timer);
            resolve(entry.listening);
          } else if ((entry.level ?? 0) >= 40) {
            process.stderr.write(line + '\n');
          }
        } catch {
          // not a log line
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`replica ${env.SCHEDULER_V2_REPLICA_ID} exited with ${code} before it was ready`)));
  });
  return {
    url,
    pid: child.pid!,
    batches,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

async function runOne(name: RunName, adminServer: { host: string; port: number; user: string; password: string }): Promise<RunResult> {
  const database = uniqueDatabaseName(`bench_sched_${name}`);
  const admin = await prepareDatabase(adminServer, database, secret);
  const db = createKnex(admin, { poolMax: 4 });
  const cleanup: Array<() => Promise<void>> = [];
  try {
    progress(`${name}: seeding ${settings.hypervisors} hypervisors in ${settings.regions} regions (seed ${settings.seed})…`);
    const seed = generateSeed({ hypervisors: settings.hypervisors, regions: settings.regions, seed: settings.seed });
    await insertSeed(db, seed);
    const regionSlug = new Map(seed.regions.map((r) => [r.id, r.slug]));
    const hosts = new Map<string, HostMetrics>();
    const names = new Map<number, string>();
    const now = Date.now();
    for (const s of seed.servers) {
      names.set(s.id, s.name);
      hosts.set(s.name, {
        hypervisor: s.name,
        region: regionSlug.get(s.region_id)!,
        memfree_mb: s.memfree,
        diskfree_gb: s.diskfree_actual,
        vmcount: s.vmcount,
        cpus: s.cpus,
        error_count: s.error_count,
        state: s.state,
        last_report_ms: now,
        memory_mb: s.memory,
        disk_gb: s.disk,
      });
    }
    const fleet = await startFleetMetrics(hosts);
    cleanup.push(() => fleet.close());
    const [maxEvent] = (await db('events').max('id as max')) as Array<{ max: number | null }>;
    const sinceEventId = Number(maxEvent?.max ?? 0);
    const agents = startAgents(db, hosts, names, sinceEventId, settings.agent_tick_ms);
    cleanup.push(() => agents.stop());

    // Schedulers first, idle, so the clock measures placing and not start-up.
    let conflicts: () => Promise<Record<string, number>> = async () => ({});
    let batchSummary: (() => BatchSummary) | undefined;
    // The processes whose CPU is the scheduler's: V2's replica processes, or this one (V1 and in-process V2 run here).
    let schedulerPids = [process.pid];
    let notes = '';
    let replicas = 1;
    if (name === 'v1' || name === 'v1_unthrottled') {
      const pollIntervalMs = name === 'v1' ? 1000 : 1;
      const v1 = createSchedulerV1({ db: serviceDbConfig(adminServer, database, 'scheduler_v1', secret), pollIntervalMs, batchSize: 50, logger });
      await v1.start();
      cleanup.unshift(() => v1.close());
      notes = name === 'v1' ? 'V1 as deployed: one connection, poll every 1000 ms, 50 events per pass' : 'V1 loop with a 1 ms pause between passes (its single-threaded ceiling)';
    } else if (settings.v2_processes) {
      replicas = name === 'v2_1' ? 1 : 3;
      const children: ReplicaProcess[] = [];
      for (let i = 0; i < replicas; i++) {
        const child = await startReplicaProcess({
          SCHEDULER_V2_MYSQL_URL: formatMysqlUrl(serviceDbConfig(adminServer, database, 'scheduler_v2', secret)),
          SCHEDULER_V2_METRICS_URLS: fleet.urls.map((u) => `${u.name}=${u.url}`).join(','),
          SCHEDULER_V2_REPLICA_ID: `bench-${name}-${i + 1}`,
          SCHEDULER_V2_POLICY: settings.v2_policy,
          SCHEDULER_V2_BATCH_SIZE: String(settings.v2_batch_size),
          SCHEDULER_V2_WAIT_RETRY_MS: String(settings.v2_wait_retry_ms),
          SCHEDULER_V2_POLL_MS: '50',
        });
        children.push(child);
        cleanup.unshift(() => child.stop());
      }
      schedulerPids = children.map((c) => c.pid);
      batchSummary = () => children.reduce((sum, c) => combineBatches(sum, c.batches, 1), emptyBatches());
      conflicts = async () => {
        const byKind: Record<string, number> = {};
        for (const c of children) {
          const text = await (await fetch(`${c.url}/metrics`)).text();
          for (const sample of parsePromText(text).samples) {
            if (sample.name === 'scheduler_v2_conflicts_total') byKind[sample.labels.kind!] = (byKind[sample.labels.kind!] ?? 0) + sample.value;
          }
        }
        return byKind;
      };
      await new Promise((r) => setTimeout(r, 2500));
      notes = `${replicas} replica process(es) (scheduler/main.ts), policy ${settings.v2_policy}, batch ${settings.v2_batch_size}, wait retry ${settings.v2_wait_retry_ms} ms, every V1 rule as a filter`;
    } else {
      replicas = name === 'v2_1' ? 1 : 3;
      const list: SchedulerV2[] = [];
      for (let i = 0; i < replicas; i++) {
        const v2 = createSchedulerV2({
          db: serviceDbConfig(adminServer, database, 'scheduler_v2', secret),
          metricsEndpoints: fleet.urls,
          replicaId: `bench-${name}-${i + 1}`,
          policy: settings.v2_policy,
          batchSize: settings.v2_batch_size,
          waitRetryMs: settings.v2_wait_retry_ms,
          pollIntervalMs: 50,
          registry: new Registry(),
          logger,
        });
        await v2.start();
        list.push(v2);
        cleanup.unshift(() => v2.close());
      }
      conflicts = async () => {
        const byKind: Record<string, number> = {};
        for (const r of list) {
          for (const v of (await r.registry.getSingleMetric('scheduler_v2_conflicts_total')!.get()).values) {
            byKind[String(v.labels.kind)] = (byKind[String(v.labels.kind)] ?? 0) + v.value;
          }
        }
        return byKind;
      };
      // Replicas run long before a burst: let the heartbeats settle so each knows its share of the regions.
      await new Promise((r) => setTimeout(r, 2500));
      notes = `${replicas} replica(s) in the bench process, policy ${settings.v2_policy}, batch ${settings.v2_batch_size}, wait retry ${settings.v2_wait_retry_ms} ms, every V1 rule as a filter`;
    }

    // The burst: customers, regions and sizes drawn from the seed, the same for every run.
    const rand = createRandom(settings.seed * 7919);
    const sizes = seed.sizes.filter((s) => s.memory <= 8192);
    const droplets = Array.from({ length: settings.events }, (_, i) => {
      const size = rand.pick(sizes);
      return {
        customer_id: rand.int(1, seed.customers.length),
        name: `burst-${i}`,
        region_id: rand.int(1, settings.regions),
        size_id: size.id,
        image_id: 1,
      };
    });
    let firstDroplet = 0;
    await db.transaction(async (trx) => {
      const [lastBefore] = (await trx('droplets').max('id as max')) as Array<{ max: number | null }>;
      firstDroplet = Number(lastBefore?.max ?? 0) + 1;
      for (let i = 0; i < droplets.length; i += 1000) await trx('droplets').insert(droplets.slice(i, i + 1000));
      const created = (await trx('droplets').where('id', '>=', firstDroplet).orderBy('id').select('id', 'customer_id', 'region_id')) as Array<{ id: number; customer_id: number; region_id: number }>;
      const events = created.map((d) => ({ type: 'create', status: 'pending', droplet_id: d.id, customer_id: d.customer_id, region_id: d.region_id }));
      for (let i = 0; i < events.length; i += 1000) await trx('events').insert(events.slice(i, i + 1000));
    });
    const user = name.startsWith('v1') ? 'scheduler_v1' : 'scheduler_v2';
    const watch = await watchServer(db, { users: [user] });
    watch.trackProcesses(schedulerPids);
    const batchesBefore = batchSummary?.();
    // This process: the simulated agents and metrics endpoints, the completion poll (and V1 or in-process V2).
    const benchCpuBefore = process.cpuUsage();
    const started = performance.now();
    progress(`${name}: burst of ${settings.events} create events committed; placing…`);
    const deadline = Date.now() + settings.timeout_s * 1000;
    let lastLog = Date.now();
    const unplaced = () => db('events').where('id', '>', sinceEventId).where({ status: 'pending' }).whereNull('server_id');
    for (;;) {
      // Is any burst event still unplaced? One index entry read (the server_id, status index ends in id), not a count
      // of all open events every 10 ms: the bench's own polling must not compete with the scheduler it measures.
      if ((await unplaced().first('id')) === undefined) break;
      const open = async () => Number(((await unplaced().count({ n: '*' }).first()) as { n: number }).n);
      if (Date.now() > deadline) {
        progress(`${name}: timed out with ${await open()} events unplaced`);
        break;
      }
      if (Date.now() - lastLog > 10_000) {
        progress(`${name}: ${await open()} events still waiting for a host (simulated agents finished ${agents.finished} creates)`);
        lastLog = Date.now();
      }
      await new Promise((r) => setTimeout(r, name === 'v1' ? 100 : 10));
    }
    const seconds = (performance.now() - started) / 1000;
    const figures = await watch.stop();
    const benchCpu = process.cpuUsage(benchCpuBefore);
    const benchCpuSeconds = (benchCpu.user + benchCpu.system) / 1e6;
    const batches = batchSummary && batchesBefore ? combineBatches(batchSummary(), batchesBefore, -1) : undefined;
    const conflictCount = await conflicts();
    for (const fn of cleanup.splice(0)) await fn();

    const counts = (await db('events').where('id', '>', sinceEventId).select(db.raw("SUM(server_id IS NOT NULL) AS placed, SUM(status = 'error' AND server_id IS NULL) AS failed, SUM(status = 'pending' AND server_id IS NULL) AS unplaced")).first()) as Record<string, number | string | null>;
    const invariants = await checkInvariants(db, { hostReserved: HOST_RESERVED });
    const [dups] = (await db.raw(
      "SELECT COUNT(*) AS n FROM (SELECT event_id FROM placement_decisions WHERE outcome = 'placed' GROUP BY event_id HAVING COUNT(*) > 1) x",
    )) as [[{ n: number }]];
    const [mismatch] = (await db.raw(
      'SELECT COUNT(*) AS n FROM events e JOIN droplets d ON d.id = e.droplet_id WHERE e.id > ? AND e.server_id IS NOT NULL AND NOT (d.server_id <=> e.server_id)',
      [sinceEventId],
    )) as [[{ n: number }]];
    const placed = Number(counts.placed ?? 0);
    const perPlacement = (v: number | undefined, scale = 1) => (v === undefined || placed === 0 ? null : Math.round(((v * scale) / placed) * 1000) / 1000);
    const mine = figures.by_user[user];
    const result: RunResult = {
      scheduler: name.startsWith('v1') ? 'v1' : 'v2',
      replicas,
      placed,
      failed: Number(counts.failed ?? 0),
      unplaced: Number(counts.unplaced ?? 0),
      seconds: Math.round(seconds * 1000) / 1000,
      placements_per_s: Math.round((placed / seconds) * 10) / 10,
      overcommitted_hosts: invariants.overcommitted_hosts,
      duplicate_placements: Number(dups[0]?.n ?? 0),
      droplet_event_mismatches: Number(mismatch[0]?.n ?? 0),
      ...(name.startsWith('v2') ? { conflicts: conflictCount } : {}),
      ...(batches ? { batches } : {}),
      server: {
        ...figures,
        bench_process_cpu: { seconds: Math.round(benchCpuSeconds * 100) / 100, cores: Math.round((benchCpuSeconds / seconds) * 100) / 100 },
        per_placement: {
          scheduler_statements: perPlacement(mine?.statements),
          scheduler_commits: perPlacement(mine?.commits),
          scheduler_server_cpu_ms: perPlacement(mine?.cpu_seconds, 1000),
          mysqld_cpu_ms: perPlacement(figures.mysqld_cpu?.seconds, 1000),
          scheduler_process_cpu_ms: perPlacement(figures.processes_cpu?.seconds, 1000),
          innodb_row_lock_waits: perPlacement(figures.global.Innodb_row_lock_waits) ?? 0,
        },
      },
      notes,
    };
    progress(`${name}: ${JSON.stringify({ ...result, server: result.server.per_placement })}`);
    return result;
  } finally {
    for (const fn of cleanup) await fn().catch(() => {});
    await db.destroy();
    await dropDatabase(adminServer, database).catch(() => {});
  }
}

function emptyBatches(): BatchSummary {
  return { batches: 0, claimed: 0, rounds: 0, ms_by_phase: {}, outcomes: {} };
}

/** a + sign × b, field by field. */
function combineBatches(a: BatchSummary, b: BatchSummary, sign: 1 | -1): BatchSummary {
  const merge = (x: Record<string, number>, y: Record<string, number>) => {
    const out: Record<string, number> = { ...x };
    for (const [k, v] of Object.entries(y)) out[k] = Math.round(((out[k] ?? 0) + sign * v) * 10) / 10;
    return out;
  };
  return {
    batches: a.batches + sign * b.batches,
    claimed: a.claimed + sign * b.claimed,
    rounds: a.rounds + sign * b.rounds,
    ms_by_phase: merge(a.ms_by_phase, b.ms_by_phase),
    outcomes: merge(a.outcomes, b.outcomes),
  };
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : Math.round(((sorted[mid - 1]! + sorted[mid]!) / 2) * 1000) / 1000;
}

const server = await provisionServer({ logger, needConnections: settings.hypervisors + 150 });
try {
  progress(`database: ${server.source} ${server.admin.host}:${server.admin.port} (${server.serverVersion})`);
  // Interleaved (a, b, c, a, b, c, …) so that a change in the machine's load falls on every run name alike.
  const results: Partial<Record<RunName, RunResult[]>> = {};
  for (let i = 0; i < settings.repeat; i++) {
    for (const name of runs) (results[name] ??= []).push(await runOne(name, server.admin));
  }
  const rates = (n: RunName) => (results[n] ?? []).map((r) => r.placements_per_s);
  /** The ratio within each repetition (same machine moment), then their median. */
  const ratio = (a: RunName, b: RunName) => {
    const x = rates(a);
    const y = rates(b);
    if (x.length === 0 || y.length === 0) return null;
    return median(x.map((v, i) => Math.round((v / y[i]!) * 100) / 100));
  };
  const medianOf = (pick: (r: RunResult) => number | null | undefined) =>
    Object.fromEntries(Object.entries(results).map(([k, list]) => [k, median(list!.map(pick).filter((v): v is number => typeof v === 'number'))]));
  const out = {
    bench: 'scheduler',
    settings: { ...settings, runs },
    database: { source: server.source, host: server.admin.host, port: server.admin.port, server_version: server.serverVersion },
    agents: `simulated: every ${settings.agent_tick_ms} ms each placed create is marked done, its droplet active, its size applied to the servers row and the host metrics`,
    runs: results,
    placements_per_s: Object.fromEntries(Object.keys(results).map((k) => [k, rates(k as RunName)])),
    median_placements_per_s: medianOf((r) => r.placements_per_s),
    median_per_placement: {
      scheduler_statements: medianOf((r) => r.server.per_placement.scheduler_statements),
      scheduler_server_cpu_ms: medianOf((r) => r.server.per_placement.scheduler_server_cpu_ms),
      mysqld_cpu_ms: medianOf((r) => r.server.per_placement.mysqld_cpu_ms),
      scheduler_process_cpu_ms: medianOf((r) => r.server.per_placement.scheduler_process_cpu_ms),
    },
    median_mysqld_cores: medianOf((r) => r.server.mysqld_cpu?.cores),
    median_machine_busy_share: medianOf((r) => r.server.machine.busy_share),
    ratio_v2_3_over_v1: ratio('v2_3', 'v1'),
    ratio_v2_3_over_v1_unthrottled: ratio('v2_3', 'v1_unthrottled'),
    ratio_v2_3_over_v2_1: ratio('v2_3', 'v2_1'),
    goal_ratio: 10,
    overcommitted_hosts: Object.values(results).reduce((s, list) => s + list!.reduce((n, r) => n + r.overcommitted_hosts, 0), 0),
  };
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
} finally {
  await server.release();
}
