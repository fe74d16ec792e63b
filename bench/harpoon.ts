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
 *    (information_schema.USER_STATISTICS), rows from the table.
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
import { Agent, request } from 'node:http';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { formatMysqlUrl, type DbConfig } from '../lib/db/config.ts';
import { dropDatabase, prepareDatabase, uniqueDatabaseName } from '../lib/db/database.ts';
import { createKnex } from '../lib/db/knex.ts';
import { provisionServer } from '../lib/db/provision.ts';
import { DEFAULT_DB_SECRET, serviceDbConfig } from '../lib/db/service-users.ts';
import { createLogger } from '../lib/logger.ts';
import { generateSeed } from '../stack/seed/generate.ts';
import { insertSeed } from '../stack/seed/insert.ts';
import { numberArg as arg } from './args.ts';
import { askChild, bucketQuantile, histogramBuckets, holdStream, quantile, waitForStreams, writeEventsPaced, type StreamCounts } from './stream-bench.ts';
import { childEnv } from '../lib/process/child-env.ts';

const SELF = fileURLToPath(import.meta.url);
const TOKEN = 'bench-harpoon-service-token-000001';
const secret = process.env.STRANGLER_DB_SECRET ?? DEFAULT_DB_SECRET;

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
  const counts: StreamCounts = { connected: 0, failed: 0 };
  const T0 = /"t0":(\d+)/g;
  function open(i: number): void {
    const url = `${urls[i % urls.length]}/v1/stream?region=${regions[i % regions.length]}`;
    holdStream(url, { authorization: `Bearer ${TOKEN}` }, counts, (complete, now) => {
      T0.lastIndex = 0;
      for (let m = T0.exec(complete); m; m = T0.exec(complete)) latencies.push(now - Number(m[1]));
    });
  }
  // Opened in slices so the servers' accept queues never overflow.
  for (let i = 0; i < count; i++) {
    open(start + i);
    if (i % 500 === 499) await new Promise((r) => setTimeout(r, 50));
  }
  process.on('message', (msg: { cmd: string }) => {
    if (msg.cmd === 'status') process.send!(counts);
    if (msg.cmd === 'reset') latencies.length = 0;
    if (msg.cmd === 'report') process.send!({ latencies });
  });
  process.send!({ ready: true });
}

// ---- child: a Harpoon replica ------------------------------------------------------------------

function startReplica(db: DbConfig, port: number, peer: number): Promise<ChildProcess> {
  const child = fork(fileURLToPath(new URL('../harpoon/main.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    env: childEnv({
      HARPOON_MYSQL_URL: formatMysqlUrl(db),
      HARPOON_TOKENS: `bench=${TOKEN}`,
      HARPOON_PEERS: `http://127.0.0.1:${peer}`,
      PORT: String(port),
      LOG_LEVEL: 'warn',
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

// ---- ingest ------------------------------------------------------------------------------------

async function userWrites(admin: mysql.Connection, user: string): Promise<number> {
  const [rows] = await admin.query('SELECT UPDATE_COMMANDS AS u FROM information_schema.USER_STATISTICS WHERE USER = ?', [user]);
  return Number((rows as Array<{ u: number }>)[0]?.u ?? 0);
}

async function countEvents(admin: mysql.Connection): Promise<number> {
  const [rows] = await admin.query('SELECT COUNT(*) AS n FROM events');
  return Number((rows as Array<{ n: number }>)[0]!.n);
}

/** Single-row INSERTs, autocommit, `connections` connections in parallel for `seconds`. */
async function singleRowInserts(db: DbConfig, connections: number, seconds: number, regionIds: number[]): Promise<number> {
  const conns = await Promise.all(Array.from({ length: connections }, () => mysql.createConnection({ ...db, timezone: 'Z' })));
  const end = Date.now() + seconds * 1000;
  let n = 0;
  await Promise.all(
    conns.map(async (c, k) => {
      while (Date.now() < end) {
        await c.query("INSERT INTO events (type, status, region_id, created_at) VALUES ('create', 'pending', ?, CURRENT_TIMESTAMP(3))", [regionIds[(n + k) % regionIds.length]]);
        n++;
      }
    }),
  );
  await Promise.all(conns.map((c) => c.end()));
  return n;
}

/** HTTP clients posting to Harpoon, `inflight` requests at a time, each of `batch` events. */
async function throughHarpoon(urls: string[], inflight: number, batch: number, seconds: number, regions: string[]): Promise<{ events: number; refused: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: inflight });
  const end = Date.now() + seconds * 1000;
  let events = 0;
  let refused = 0;
  let seq = 0;
  const post = (url: string, body: string) =>
    new Promise<number>((resolve, reject) => {
      const req = request(`${url}/v1/events`, {
        method: 'POST',
        agent,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      });
      req.on('error', reject);
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.end(body);
    });
  await Promise.all(
    Array.from({ length: inflight }, async (_, k) => {
      while (Date.now() < end) {
        const items = Array.from({ length: batch }, () => ({ type: 'create', region: regions[seq++ % regions.length] }));
        const status = await post(urls[k % urls.length]!, JSON.stringify(batch === 1 ? items[0] : { events: items }));
        if (status === 201) events += batch;
        else if (status === 429) {
          refused++;
          await new Promise((r) => setTimeout(r, 100));
        } else throw new Error(`harpoon answered ${status}`);
      }
    }),
  );
  agent.destroy();
  return { events, refused };
}

/** Group-commit counters from a replica's /metrics. */
async function batchStats(url: string): Promise<{ count: number; rows: number; seconds: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
  return {
    count: num(/^harpoon_batch_rows_count (\S+)/m),
    rows: num(/^harpoon_batch_rows_sum (\S+)/m),
    seconds: num(/^harpoon_batch_duration_seconds_sum (\S+)/m),
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
  };
  const loadStart = os.loadavg()[0]!;
  const logger = createLogger({ level: 'warn', destination: process.stderr });
  const server = await provisionServer({ logger, needConnections: 200 });
  const database = uniqueDatabaseName('bench_harpoon');
  const children: ChildProcess[] = [];
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
    children.push(await startReplica({ ...harpoonDb }, pa!, pb!));
    children.push(await startReplica({ ...harpoonDb }, pb!, pa!));

    const ingest = async (batch: number) => {
      // Batches: few requests in flight, so the items queued stay under Harpoon's queue bound (5000).
      const inflight = batch === 1 ? settings.inflight : Math.max(1, Math.min(settings.inflight, Math.floor(2500 / batch)));
      progress(`  through Harpoon (one replica, pool ${settings.connections}), ${inflight} requests in flight of ${batch} event(s), ${settings.seconds} s…`);
      const rows0 = await countEvents(admin);
      const writes0 = await userWrites(admin, 'harpoon');
      const m0 = await batchStats(urls[0]!);
      const t0 = Date.now();
      const r = await throughHarpoon([urls[0]!], inflight, batch, settings.seconds, regionSlugs);
      const secs = (Date.now() - t0) / 1000;
      const rows = (await countEvents(admin)) - rows0;
      const writes = (await userWrites(admin, 'harpoon')) - writes0;
      const m1 = await batchStats(urls[0]!);
      const batches = m1.count - m0.count;
      return {
        requests_in_flight: inflight,
        events_per_s: round(rows / secs),
        events: rows,
        acknowledged: r.events,
        refused_429: r.refused,
        batches,
        mean_batch_rows: round((m1.rows - m0.rows) / batches),
        mean_batch_ms: round(((m1.seconds - m0.seconds) / batches) * 1000, 2),
        server_write_statements: writes,
        statements_per_event: round(writes / rows, 4),
      };
    };
    // Durable commits (flush at every COMMIT, as production runs) and the throwaway server's relaxed
    // setting; a server we merely found is measured as it is.
    const modes = server.source === 'throwaway' ? [1, 2] : [Number(facts!.flush)];
    const ingestResults: Record<string, unknown> = {};
    for (const flush of modes) {
      if (server.source === 'throwaway') await admin.query('SET GLOBAL innodb_flush_log_at_trx_commit = ?', [flush]);
      progress(`innodb_flush_log_at_trx_commit=${flush}: single-row INSERTs over ${settings.connections} connections for ${settings.seconds} s…`);
      const before = await countEvents(admin);
      const cloudBefore = await userWrites(admin, 'cloud');
      await singleRowInserts(cloudDb, settings.connections, settings.seconds, regionIds);
      const singleRows = (await countEvents(admin)) - before;
      const singleStatements = (await userWrites(admin, 'cloud')) - cloudBefore;
      const singleRate = singleRows / settings.seconds;
      const harpoonSingle = await ingest(1);
      const harpoonBatch = await ingest(settings.batch);
      ingestResults[`innodb_flush_log_at_trx_commit_${flush}`] = {
        single_row_inserts: {
          connections: settings.connections,
          events_per_s: round(singleRate),
          events: singleRows,
          server_write_statements: singleStatements,
          statements_per_event: round(singleStatements / singleRows, 4),
        },
        harpoon_one_event_per_request: harpoonSingle,
        harpoon_batch_requests: { events_per_request: settings.batch, ...harpoonBatch },
        ratio_one_event_per_request: round(harpoonSingle.events_per_s / singleRate, 2),
        ratio_batch_requests: round(harpoonBatch.events_per_s / singleRate, 2),
      };
    }
    if (server.source === 'throwaway') await admin.query('SET GLOBAL innodb_flush_log_at_trx_commit = ?', [Number(facts!.flush)]);

    // 2. delivery -------------------------------------------------------------------------------
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
    const total = await writeEventsPaced({
      urls,
      token: TOKEN,
      rate: settings.rate,
      seconds: settings.delivery_seconds,
      event: (i) => ({ type: 'reboot', region: regionSlugs[i % regionSlugs.length], server_id: seed.servers.find((s) => s.region_id === regionIds[i % regionIds.length])!.id }),
    });
    await new Promise((r) => setTimeout(r, 2000));
    const reports = await Promise.all(subs.map((c) => askChild<{ latencies: number[] }>(c, 'report')));
    const latencies = reports.flatMap((r) => r.latencies).sort((a, b) => a - b);
    const expected = total * (connected / settings.regions);
    const lag1 = await Promise.all(urls.map((u) => histogramBuckets(u, 'harpoon_delivery_lag_seconds')));

    const out = {
      bench: 'harpoon',
      settings,
      // The machine is shared: the 1-minute load average at the start and end of the run (2 cores).
      load_average: { start: round(loadStart, 2), end: round(os.loadavg()[0]!, 2) },
      database: { source: server.source, host: server.admin.host, port: server.admin.port, server_version: facts!.version, innodb_flush_log_at_trx_commit: Number(facts!.flush) },
      ingest: { connections: settings.connections, goal_ratio: 5, ...ingestResults },
      delivery: {
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
      },
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    await admin.end();
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await dropDatabase(server.admin, database).catch(() => {});
    await server.release();
  }
}

if (process.argv.includes('--subscriber-child')) await subscriberChild();
else await main();
