/**
 * `npm run bench:router-harpoon`: delivery latency write → agent in the real
 * design, where agents are behind their region's Event Router: a write
 * through Harpoon, Harpoon's stream to the region's router, the router's
 * claim through Harpoon, then the agent's SSE stream. Latency is from just
 * before the POST to the agent reading the frame (same machine clock); each
 * agent acknowledges what it gets, as a DOBE agent does.
 *
 * Every server runs in its own process: MariaDB, two Harpoon replicas, one
 * router per region (event-writes and event-delivery at full), the agent
 * processes, and this one (writer and orchestration). Prints ONE JSON object.
 *
 *   npm run bench:router-harpoon
 *   npm run bench:router-harpoon -- --agents 15000 --regions 10 --rate 20 --seconds 10
 */
import { fork, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { createHarpoonReplicas } from '../harpoon/replicas.ts';
import { mintHypervisorToken } from '../lib/auth/hypervisor-token.ts';
import { dropDatabase, prepareDatabase, uniqueDatabaseName } from '../lib/db/database.ts';
import { createKnex } from '../lib/db/knex.ts';
import { provisionServer } from '../lib/db/provision.ts';
import { serviceDbConfig } from '../lib/db/service-users.ts';
import { createLogger } from '../lib/logger.ts';
import { generateSeed } from '../stack/seed/generate.ts';
import { insertSeed } from '../stack/seed/insert.ts';
import { createRouterSupervisor } from '../router/supervisor.ts';
import { numberArg as arg } from './args.ts';
import { askChild, bucketQuantile, histogramBuckets, holdStream, quantile, waitForStreams, writeEventsPaced, type StreamCounts } from './stream-bench.ts';
import { childEnv } from '../lib/process/child-env.ts';
import { loadStackSecrets } from '../lib/secrets/stack-secrets.ts';
import { freshKeyRing, parseKeyRing } from '../lib/auth/hypervisor-keys.ts';
import { parsePromText, sumSamples } from '../lib/metrics/prom-text.ts';

const SELF = fileURLToPath(import.meta.url);
const TOKEN = 'bench-router-harpoon-token-000001';
const secret = loadStackSecrets(process.env).secrets.db;
// Tokens of this run only: a ring of one fresh key, kept nowhere.
const hypervisorKeys = freshKeyRing();
const progress = (msg: string) => process.stderr.write(`bench:router-harpoon ${msg}\n`);
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Server counters read before and after the write window. */
const SERVER_COUNTERS = ['Com_insert', 'Com_update', 'Com_update_multi', 'Com_select', 'Com_commit', 'Questions', 'Innodb_os_log_fsyncs'];

interface AgentSpec {
  id: number;
  region: string;
  url: string;
}

// ---- child: agents -------------------------------------------------------------------------------

/** Holds one router stream per agent, records latency (now − the writer's t0 in the event's args), acks each event. */
async function agentChild(): Promise<void> {
  // Thousands of specs are too large for the environment: they come as the first IPC message, with the
  // run's key ring (made fresh by the parent: a ring made here would mint tokens no router accepts).
  const { agents, keys } = await new Promise<{ agents: AgentSpec[]; keys: unknown }>((resolve) => process.once('message', (m) => resolve(m as { agents: AgentSpec[]; keys: unknown })));
  const ring = parseKeyRing(keys, 'the key ring from the bench');
  const latencies: number[] = [];
  const acker = new Agent({ keepAlive: true, maxSockets: 32 });
  const counts: StreamCounts = { connected: 0, failed: 0 };
  let acked = 0;
  const T0 = /t0\\?":(\d+)/;
  const ID = /^id: (\d+)$/m;
  function ack(a: AgentSpec, token: string, eventId: number): void {
    const body = JSON.stringify({ event_id: eventId, received_at: new Date().toISOString() });
    const req = request(`${a.url}/v1/regions/${a.region}/hypervisors/${a.id}/acks`, {
      method: 'POST',
      agent: acker,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    req.on('error', () => {});
    req.on('response', (res) => {
      res.resume();
      if (res.statusCode === 200) acked++;
    });
    req.end(body);
  }
  function open(a: AgentSpec): void {
    const token = mintHypervisorToken(ring, a.id, a.region);
    holdStream(`${a.url}/v1/regions/${a.region}/hypervisors/${a.id}/events`, { authorization: `Bearer ${token}` }, counts, (complete, now) => {
      for (const frame of complete.split('\n\n')) {
        const t0 = T0.exec(frame);
        const id = ID.exec(frame);
        if (!t0 || !id) continue;
        latencies.push(now - Number(t0[1]));
        ack(a, token, Number(id[1]));
      }
    });
  }
  for (let i = 0; i < agents.length; i++) {
    open(agents[i]!);
    if (i % 250 === 249) await sleep(50);
  }
  process.on('message', (msg: { cmd: string }) => {
    if (msg.cmd === 'status') process.send!({ ...counts, acked });
    if (msg.cmd === 'report') process.send!({ latencies, acked });
  });
  process.send!({ ready: true });
}

// ---- main ----------------------------------------------------------------------------------------

async function scrape(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await fetch(`${url}/metrics`).then((r) => r.text(), () => '');
  return sumSamples(parsePromText(text).samples, name, labels) ?? 0;
}

async function main(): Promise<void> {
  const settings = {
    agents: arg('agents', 15_000),
    regions: arg('regions', 10),
    agent_processes: arg('agent-processes', 3),
    rate: arg('rate', 20),
    seconds: arg('seconds', 10),
    router_poll_ms: arg('router-poll-ms', 1000),
  };
  const loadStart = os.loadavg()[0]!;
  const logger = createLogger({ level: 'warn', destination: process.stderr });
  const server = await provisionServer({ logger, needConnections: 200 + settings.regions * 6 });
  const database = uniqueDatabaseName('bench_router_harpoon');
  const children: ChildProcess[] = [];
  let harpoon: ReturnType<typeof createHarpoonReplicas> | undefined;
  let routers: ReturnType<typeof createRouterSupervisor> | undefined;
  let statusDb: ReturnType<typeof createKnex> | undefined;
  try {
    const adminCfg = await prepareDatabase(server.admin, database, secret);
    const knex = createKnex(adminCfg, { poolMax: 2 });
    progress(`seeding ${settings.agents} hypervisors in ${settings.regions} regions…`);
    const seed = generateSeed({ hypervisors: settings.agents, regions: settings.regions, seed: 1 });
    await insertSeed(knex, seed);
    await knex('events').del();
    for (const feature of ['event-delivery', 'event-writes']) {
      await knex.raw(
        "INSERT INTO cutover_features (feature, mode, percent, step_name) VALUES (?, 'full', 100, 'full') ON DUPLICATE KEY UPDATE mode = 'full', percent = 100, version = version + 1",
        [feature],
      );
    }
    await knex.destroy();
    // Server-side counts over the write window: statements and commits Harpoon, the routers and their acks cost.
    statusDb = createKnex(adminCfg, { poolMax: 1 });
    const serverStatus = async (): Promise<Record<string, number>> => {
      const [rows] = (await statusDb!.raw('SHOW GLOBAL STATUS WHERE Variable_name IN (?)', [SERVER_COUNTERS])) as [Array<{ Variable_name: string; Value: string }>];
      return Object.fromEntries(rows.map((r) => [r.Variable_name.toLowerCase(), Number(r.Value)]));
    };
    const regionSlug = new Map(seed.regions.map((r) => [r.id, r.slug]));

    harpoon = createHarpoonReplicas({ db: serviceDbConfig(server.admin, database, 'harpoon', secret), tokens: { router: TOKEN }, replicas: 2, logger });
    await harpoon.start();
    const urls = harpoon.urls();
    progress(`harpoon replicas ${urls.join(', ')}; starting ${settings.regions} routers…`);
    routers = createRouterSupervisor({
      regions: seed.regions.map((r) => r.slug),
      db: serviceDbConfig(server.admin, database, 'event_router', secret),
      hypervisorKeys,
      pollIntervalMs: settings.router_poll_ms,
      harpoon: { urls, token: TOKEN },
      logger,
    });
    const list = await routers.start();
    const routerUrl = new Map(list.map((r) => [r.region, r.url]));
    for (const r of list) {
      for (let i = 0; i < 600 && (await scrape(r.url, 'router_event_source', { source: 'harpoon' })) !== 1; i++) await sleep(100);
    }

    progress(`opening ${settings.agents} agent streams over ${settings.agent_processes} processes…`);
    const specs: AgentSpec[] = seed.servers.map((s) => ({ id: s.id, region: regionSlug.get(s.region_id)!, url: routerUrl.get(regionSlug.get(s.region_id)!)! }));
    const per = Math.ceil(specs.length / settings.agent_processes);
    const agentProcs: ChildProcess[] = [];
    for (let k = 0; k < settings.agent_processes; k++) {
      const child = fork(SELF, ['--agent-child'], {
        execArgv: ['--import', 'tsx'],
        env: childEnv({}),
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      });
      child.send({ agents: specs.slice(k * per, (k + 1) * per), keys: hypervisorKeys });
      children.push(child);
      agentProcs.push(child);
      await new Promise<void>((r) => child.once('message', () => r()));
    }
    const { connected, seconds: connectSeconds } = await waitForStreams(agentProcs, specs.length, 180_000);
    // Refused streams (a token no router accepts) would otherwise print a run with no deliveries and null latencies.
    if (connected === 0) throw new Error(`none of the ${specs.length} agent streams was accepted by the routers`);
    let routerStreams = 0;
    for (const r of list) routerStreams += await scrape(r.url, 'router_connected_agents');
    progress(`${connected} agents connected (${routerStreams} streams on routers) in ${round(connectSeconds)} s; writing ${settings.rate} events/s for ${settings.seconds} s…`);
    await sleep(2000);
    const routerUrls = list.map((r) => r.url);
    const histograms = ['router_harpoon_stream_lag_seconds', 'router_harpoon_claim_seconds', 'router_delivery_latency_seconds'];
    const before = await Promise.all(histograms.map((h) => histogramBuckets(routerUrls, h)));
    const statusBefore = await serverStatus();

    const total = await writeEventsPaced({
      urls,
      token: TOKEN,
      rate: settings.rate,
      seconds: settings.seconds,
      event: (i) => {
        const host = seed.servers[(i * 7919) % seed.servers.length]!;
        return { type: 'reboot', region: regionSlug.get(host.region_id), server_id: host.id };
      },
    });
    await sleep(3000);
    const statusAfter = await serverStatus();
    const reports = await Promise.all(agentProcs.map((c) => askChild<{ latencies: number[]; acked: number }>(c, 'report')));
    const latencies = reports.flatMap((r) => r.latencies).sort((a, b) => a - b);
    const after = await Promise.all(histograms.map((h) => histogramBuckets(routerUrls, h)));
    // Per hop, from the routers' histograms (bucket bounds): commit → router, the claim's round trip, commit → the agent's socket.
    const hops = Object.fromEntries(
      histograms.map((h, k) => [h.replace(/^router_|_seconds$/g, ''), { p50_at_most_ms: bucketQuantile(before[k]!, after[k]!, 0.5), p99_at_most_ms: bucketQuantile(before[k]!, after[k]!, 0.99) }]),
    );
    let lagSum = 0;
    let lagCount = 0;
    for (const r of list) {
      lagSum += await scrape(r.url, 'router_harpoon_stream_lag_seconds_sum');
      lagCount += await scrape(r.url, 'router_harpoon_stream_lag_seconds_count');
    }
    const out = {
      bench: 'router-harpoon',
      settings,
      load_average: { start: round(loadStart, 2), end: round(os.loadavg()[0]!, 2) },
      database: { source: server.source },
      delivery: {
        path: 'POST Harpoon → Harpoon stream → router → agent SSE (the claim through Harpoon goes out with the push)',
        harpoon_replicas: urls.length,
        routers: list.length,
        agents_connected: connected,
        connect_seconds: round(connectSeconds),
        events_written: total,
        deliveries: latencies.length,
        acked: reports.reduce((s, r) => s + r.acked, 0),
        latency_ms: { p50: quantile(latencies, 0.5), p90: quantile(latencies, 0.9), p99: quantile(latencies, 0.99), max: latencies.at(-1) ?? null },
        goal_p99_ms: 50,
        router_stream_lag_mean_ms: lagCount > 0 ? round((lagSum / lagCount) * 1000, 2) : null,
        router_hops: hops,
      },
      // Per event written, over the write window and 3 s after (everything on the server, the acks' writes included).
      server_per_event: Object.fromEntries(SERVER_COUNTERS.map((k) => [k.toLowerCase(), total > 0 ? round(((statusAfter[k.toLowerCase()] ?? 0) - (statusBefore[k.toLowerCase()] ?? 0)) / total, 2) : null])),
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await statusDb?.destroy();
    await routers?.close().catch(() => {});
    await harpoon?.close().catch(() => {});
    await dropDatabase(server.admin, database).catch(() => {});
    await server.release();
  }
}

if (process.argv.includes('--agent-child')) await agentChild();
else await main();
