/**
 * `npm run bench:harpoon`: two questions in one run, on one throwaway
 * database.
 *
 * 1. Ingest: events per second written as single-row INSERTs (autocommit)
 *    over C connections, against events per second written through Harpoon
 *    holding the same C connections (its pool). Harpoon is measured twice:
 *    clients sending one event per request (group commit aggregates them),
 *    and clients sending batches of B events per request (what an outbox
 *    drains with). Statements per event are read from the server
 *    (information_schema.USER_STATISTICS), rows from the table. A bare
 *    node:http server (bench/http-floor.ts) under the one-event load gives
 *    the floor: what Node's HTTP layer alone costs per request.
 * 2. Delivery: S stream subscribers spread over two Harpoon replica
 *    processes and R regions (each subscribes to one region), held by
 *    subscriber processes; events are written through both replicas at a
 *    steady rate; latency is from just before the POST to the subscriber
 *    reading the frame (same machine clock), for every delivery.
 *
 * Every server runs in its own process: MariaDB, two Harpoon replicas, the
 * subscriber processes, and this one (writers and orchestration). Prints
 * ONE JSON object.
 *
 *   npm run bench:harpoon
 *   npm run bench:harpoon -- --subscribers 15000 --connections 4 --seconds 10 --rate 20 --batch 100
 */
import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { formatMysqlUrl, type DbConfig } from '../lib/db/config.ts';
import { dropDatabase, prepareDatabase, uniqueDatabaseName } from '../lib/db/database.ts';
import { createKnex } from '../lib/db/knex.ts';
import { provisionServer } from '../lib/db/provision.ts';
import { serviceDbConfig } from '../lib/db/service-users.ts';
import { createLogger } from '../lib/logger.ts';
import { generateSeed } from '../stack/seed/generate.ts';
import { insertSeed } from '../stack/seed/insert.ts';
import { numberArg as arg, textArg } from './args.ts';
import { measureHttpFloor, measureIngest } from './harpoon-ingest.ts';
import { startHttpFloor } from './http-floor.ts';
import { schedDelta, schedStat } from './proc-stats.ts';
import { askChild, bucketQuantile, histogramBuckets, holdStream, quantile, waitForStreams, writeEventsPaced, type StreamCounts } from './stream-bench.ts';
import { childEnv } from '../lib/process/child-env.ts';
import { loadStackSecrets } from '../lib/secrets/stack-secrets.ts';

const SELF = fileURLToPath(import.meta.url);
const TOKEN = 'bench-harpoon-service-token-000001';
// The run's own database; the service users' passwords are the machine's (lib/secrets/stack-secrets.ts).
const secret = loadStackSecrets(process.env).secrets.db;

const progress = (msg: string) => process.stderr.write(`bench:harpoon ${msg}\n`);

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

// ---- child: subscribers ------------------------------------------------------------------------

/**
 * Holds `count` SSE connections, subscriber i to urls[i % urls.length] for
 * regions[i % regions.length]; reports, on request, every delivery latency
 * (now − the writer's t0 carried in the event's args) and a count of frames.
 */
async function subscriberChild(): Promise<void> {
  const { urls, regions, count, start } = JSON.parse(process.env.BENCH_SUBSCRIBERS!) as { urls: string[]; regions: string[]; count: number; start: number };
  const latencies: number[] = [];
  /** Writer's t0 → the batch's commit timestamp (taken as the batch starts), per frame. */
  const toCommit: number[] = [];
  const counts: StreamCounts = { connected: 0, failed: 0 };
  // This process's own event-loop delay: a late read here would look like a late delivery.
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const T0 = /"committed_at":"([^"]+)".*?"t0":(\d+)|"t0":(\d+).*?"committed_at":"([^"]+)"/g;
  function open(i: number): void {
    const url = `${urls[i % urls.length]}/v1/stream?region=${regions[i % regions.length]}`;
    holdStream(url, { authorization: `Bearer ${TOKEN}` }, counts, (complete, now) => {
      T0.lastIndex = 0;
      for (let m = T0.exec(complete); m; m = T0.exec(complete)) {
        const t0 = Number(m[2] ?? m[3]);
        latencies.push(now - t0);
        toCommit.push(Date.parse(m[1] ?? m[4]!) - t0);
      }
    });
  }
  // Opened in slices so the servers' accept queues never overflow.
  for (let i = 0; i < count; i++) {
    open(start + i);
    if (i % 500 === 499) await new Promise((r) => setTimeout(r, 50));
  }
  process.on('message', (msg: { cmd: string }) => {
    if (msg.cmd === 'status') process.send!(counts);
    if (msg.cmd === 'reset') {
      latencies.length = 0;
      toCommit.length = 0;
      loop.reset();
    }
    if (msg.cmd === 'report') {
      process.send!({ latencies, toCommit, loop: { p99_ms: round(loop.percentile(99) / 1e6), max_ms: round(loop.max / 1e6) } });
    }
  });
  process.send!({ ready: true });
}

// ---- child: a Harpoon replica ------------------------------------------------------------------

function startReplica(db: DbConfig, port: number, peer: number, cpuProfDir: string | undefined): Promise<ChildProcess> {
  const child = fork(fileURLToPath(new URL('../harpoon/main.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx', ...(cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : [])],
    env: childEnv({
      HARPOON_MYSQL_URL: formatMysqlUrl(db),
      HARPOON_TOKENS: `bench=${TOKEN}`,
      HARPOON_PEERS: `http://127.0.0.1:${peer}`,
      PORT: String(port),
      LOG_LEVEL: 'warn',
      // Group-commit settings under test, when the run names them.
      ...Object.fromEntries(['HARPOON_WRITERS', 'HARPOON_MAX_DELAY_MS', 'HARPOON_MAX_BATCH'].flatMap((k) => (process.env[k] ? [[k, process.env[k]!]] : []))),
    }),
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 30_000;
    const check = async () => {
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false);
      if (ok) return resolve(child);
      if (Date.now() > deadline || child.exitCode !== null) return reject(new Error(`harpoon on ${port} did not start`));
      setTimeout(check, 100);
    };
    void check();
  });
}

async function freePorts(n: number): Promise<number[]> {
  const { createServer } = await import('node:net');
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    ports.push(
      await new Promise<number>((resolve) => {
        const s = createServer().listen(0, '127.0.0.1', () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => resolve(p));
        });
      }),
    );
  }
  return ports;
}

/** A replica's process metrics (event-loop delay since the last scrape, GC, CPU). */
async function processStats(url: string): Promise<{ lagP99: number; lagMax: number; gc: Map<string, number>; cpu: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  const gc = new Map<string, number>();
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_sum\{kind="([^"]+)"\} (\S+)/gm)) gc.set(m[1]!, Number(m[2]));
  return { lagP99: num(/^nodejs_eventloop_lag_p99_seconds (\S+)/m), lagMax: num(/^nodejs_eventloop_lag_max_seconds (\S+)/m), gc, cpu: num(/^process_cpu_seconds_total (\S+)/m) };
}

function processDelta(a: Awaited<ReturnType<typeof processStats>>, b: Awaited<ReturnType<typeof processStats>>) {
  return {
    event_loop_delay_p99_ms: round(b.lagP99 * 1000),
    event_loop_delay_max_ms: round(b.lagMax * 1000),
    gc_ms_by_kind: Object.fromEntries([...b.gc].map(([k, v]) => [k, round((v - (a.gc.get(k) ?? 0)) * 1000)])),
    cpu_seconds: round(b.cpu - a.cpu, 2),
  };
}

// ---- main --------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const settings = {
    connections: arg('connections', 4),
    seconds: arg('seconds', 10),
    inflight: arg('inflight', 128),
    batch: arg('batch', 100),
    subscribers: arg('subscribers', 15_000),
    subscriber_processes: arg('subscriber-processes', 2),
    regions: arg('regions', 10),
    rate: arg('rate', 20),
    delivery_seconds: arg('delivery-seconds', 10),
    parts: textArg('parts') ?? 'ingest,delivery',
  };
  const parts = new Set(settings.parts.split(','));
  // --cpu-prof DIR: each Harpoon replica writes a V8 CPU profile there when the run ends.
  const cpuProfDir = textArg('cpu-prof');
  const loadStart = os.loadavg()[0]!;
  const logger = createLogger({ level: 'warn', destination: process.stderr });
  const server = await provisionServer({ logger, needConnections: 200 });
  const database = uniqueDatabaseName('bench_harpoon');
  const children: ChildProcess[] = [];
  const replicas: ChildProcess[] = [];
  try {
    const adminCfg = await prepareDatabase(server.admin, database, secret);
    const knex = createKnex(adminCfg, { poolMax: 2 });
    const seed = generateSeed({ hypervisors: 100, regions: settings.regions, seed: 1 });
    await insertSeed(knex, seed);
    await knex.destroy();
    const admin = await mysql.createConnection({ ...adminCfg });
    const [[facts]] = (await admin.query('SELECT @@innodb_flush_log_at_trx_commit AS flush, @@version AS version, @@userstat AS userstat')) as unknown as [
      Array<{ flush: number; version: string; userstat: number }>,
    ];
    if (!Number(facts!.userstat)) await admin.query('SET GLOBAL userstat = 1');
    const harpoonDb = serviceDbConfig(server.admin, database, 'harpoon', secret);
    const cloudDb = serviceDbConfig(server.admin, database, 'cloud', secret);
    const regionSlugs = seed.regions.map((r) => r.slug);
    const regionIds = seed.regions.map((r) => r.id);

    // 1. ingest ---------------------------------------------------------------------------------
    const [pa, pb] = await freePorts(2);
    const urls = [`http://127.0.0.1:${pa}`, `http://127.0.0.1:${pb}`];
    replicas.push(await startReplica({ ...harpoonDb }, pa!, pb!, cpuProfDir), await startReplica({ ...harpoonDb }, pb!, pa!, cpuProfDir));
    children.push(...replicas);

    // Durable commits (flush at every COMMIT, as production runs) and the throwaway server's relaxed
    // setting; a server we merely found is measured as it is.
    const modes = server.source === 'throwaway' ? [1, 2] : [Number(facts!.flush)];
    const ingestResults: Record<string, unknown> = {};
    for (const flush of parts.has('ingest') ? modes : []) {
      if (server.source === 'throwaway') await admin.query('SET GLOBAL innodb_flush_log_at_trx_commit = ?', [flush]);
      progress(`innodb_flush_log_at_trx_commit=${flush}:`);
      ingestResults[`innodb_flush_log_at_trx_commit_${flush}`] = await measureIngest({
        admin,
        plainDb: cloudDb,
        harpoonDb,
        plainUser: 'cloud',
        harpoonUrl: urls[0]!,
        harpoonUser: 'harpoon',
        token: TOKEN,
        connections: settings.connections,
        seconds: settings.seconds,
        inflight: settings.inflight,
        batch: settings.batch,
        regionSlugs,
        regionIds,
        progress,
        // CPU per event by process: where each path's work goes.
        processes: { harpoon: replicas[0]!.pid!, harpoon_peer: replicas[1]!.pid!, bench: process.pid, ...(server.pid ? { mariadbd: server.pid } : {}) },
      });
    }
    if (server.source === 'throwaway') await admin.query('SET GLOBAL innodb_flush_log_at_trx_commit = ?', [Number(facts!.flush)]);
    // What Node's HTTP layer alone costs per request (no database), under the same client and load.
    let httpFloor: Awaited<ReturnType<typeof measureHttpFloor>> | undefined;
    if (parts.has('ingest')) {
      const floor = await startHttpFloor();
      children.push(floor.child);
      progress(`  a bare node:http server (no database), ${settings.inflight} requests in flight of 1 event, ${settings.seconds} s…`);
      httpFloor = await measureHttpFloor(floor.url, floor.child.pid!, TOKEN, settings.inflight, settings.seconds, regionSlugs);
      floor.child.kill('SIGKILL');
    }

    // 2. delivery -------------------------------------------------------------------------------
    const measureDelivery = async () => {
      progress(`opening ${settings.subscribers} stream subscribers over ${settings.subscriber_processes} processes…`);
      const per = Math.ceil(settings.subscribers / settings.subscriber_processes);
      const subs: ChildProcess[] = [];
      for (let k = 0; k < settings.subscriber_processes; k++) {
        const count = Math.min(per, settings.subscribers - k * per);
        const child = fork(SELF, ['--subscriber-child'], {
          execArgv: ['--import', 'tsx'],
          env: childEnv({ BENCH_SUBSCRIBERS: JSON.stringify({ urls, regions: regionSlugs, count, start: k * per }) }),
          stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        });
        children.push(child);
        subs.push(child);
        await new Promise<void>((r) => child.once('message', () => r()));
      }
      const { connected, seconds: connectSeconds } = await waitForStreams(subs, settings.subscribers, 120_000);
      progress(`${connected} subscribers connected in ${round(connectSeconds)} s; writing ${settings.rate} events/s for ${settings.delivery_seconds} s through both replicas…`);
      await new Promise((r) => setTimeout(r, 1000));
      const lag0 = await Promise.all(urls.map((u) => histogramBuckets(u, 'harpoon_delivery_lag_seconds')));
      await Promise.all(subs.map((c) => askChild(c, 'status')));
      for (const c of subs) c.send({ cmd: 'reset' });
      const proc0 = await Promise.all(urls.map((u) => processStats(u)));
      const schedPids = { replicas: replicas.map((c) => c.pid), subscribers: subs.map((c) => c.pid), mariadbd: [server.pid], bench: [process.pid] };
      const sched0 = Object.fromEntries(Object.entries(schedPids).map(([k, pids]) => [k, pids.map((p) => schedStat(p))]));
      const window0 = Date.now();
      const loadBefore = os.loadavg()[0]!;
      const total = await writeEventsPaced({
        urls,
        token: TOKEN,
        rate: settings.rate,
        seconds: settings.delivery_seconds,
        event: (i) => ({ type: 'reboot', region: regionSlugs[i % regionSlugs.length], server_id: seed.servers.find((s) => s.region_id === regionIds[i % regionIds.length])!.id }),
      });
      await new Promise((r) => setTimeout(r, 2000));
      const proc1 = await Promise.all(urls.map((u) => processStats(u)));
      const windowSeconds = (Date.now() - window0) / 1000;
      // CPU used and time spent waiting for a core, per process: a slow run on a busy machine shows as waiting.
      const scheduling = Object.fromEntries(
        Object.entries(schedPids).map(([k, pids]) => [k, pids.map((p, i) => schedDelta(sched0[k]![i], schedStat(p), windowSeconds))]),
      );
      const reports = await Promise.all(subs.map((c) => askChild<{ latencies: number[]; toCommit: number[]; loop: { p99_ms: number; max_ms: number } }>(c, 'report')));
      const latencies = reports.flatMap((r) => r.latencies).sort((a, b) => a - b);
      const toCommit = reports.flatMap((r) => r.toCommit).sort((a, b) => a - b);
      const expected = total * (connected / settings.regions);
      const lag1 = await Promise.all(urls.map((u) => histogramBuckets(u, 'harpoon_delivery_lag_seconds')));
      return {
        replicas: 2,
        subscribers_connected: connected,
        connect_seconds: round(connectSeconds),
        events_written: total,
        deliveries: latencies.length,
        deliveries_expected: Math.round(expected),
        latency_ms: { p50: quantile(latencies, 0.5), p90: quantile(latencies, 0.9), p99: quantile(latencies, 0.99), max: latencies.at(-1) ?? null },
        goal_p99_ms: 50,
        // Commit → frame written to every matching subscriber, per replica (histogram bucket bounds).
        server_lag_ms_by_replica: urls.map((_, k) => ({ p50_at_most: bucketQuantile(lag0[k]!, lag1[k]!, 0.5), p99_at_most: bucketQuantile(lag0[k]!, lag1[k]!, 0.99) })),
        // Where the time goes: the writer's POST to the batch's start (queue + group-commit delay) …
        post_to_batch_ms: { p50: quantile(toCommit, 0.5), p99: quantile(toCommit, 0.99) },
        // … each replica's event loop and GC over the window (its process metrics, reset by the scrape before) …
        replicas_process: urls.map((_, k) => processDelta(proc0[k]!, proc1[k]!)),
        // … and the subscriber processes' own event loops, which read every frame.
        subscriber_event_loop_ms: reports.map((r) => r.loop),
        scheduling,
        load_average_during: { before: round(loadBefore, 2), after: round(os.loadavg()[0]!, 2) },
      };
    };
    const delivery = parts.has('delivery') ? await measureDelivery() : undefined;

    const out = {
      bench: 'harpoon',
      settings,
      // The machine is shared: the 1-minute load average at the start and end of the run (2 cores).
      load_average: { start: round(loadStart, 2), end: round(os.loadavg()[0]!, 2) },
      database: { source: server.source, host: server.admin.host, port: server.admin.port, server_version: facts!.version, innodb_flush_log_at_trx_commit: Number(facts!.flush) },
      ingest: { connections: settings.connections, goal_ratio: 8, goal_ratio_vs_raw_multi_row: 0.8, ...ingestResults, ...(httpFloor ? { node_http_floor_one_event_per_request: httpFloor } : {}) },
      delivery,
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    await admin.end();
  } finally {
    // A profiled replica writes its profile on a clean exit (SIGTERM closes it).
    if (cpuProfDir) await Promise.all(replicas.map((c) => new Promise<void>((r) => (c.once('exit', () => r()), c.kill('SIGTERM')))));
    for (const c of children) c.kill('SIGKILL');
    await dropDatabase(server.admin, database).catch(() => {});
    await server.release();
  }
}

if (process.argv.includes('--subscriber-child')) await subscriberChild();
else await main();
