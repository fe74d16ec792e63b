import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { dropDatabase, prepareDatabase, uniqueDatabaseName } from '../lib/db/database.ts';
import { createKnex, warmPool } from '../lib/db/knex.ts';
import { provisionServer } from '../lib/db/provision.ts';
import type { ServerDeath, ThreadHandling } from '../lib/db/throwaway-server.ts';
import type { GodQueryVariant } from '../legacy/dobe/god-query.ts';
import { checkInvariants } from '../lib/invariants.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import { enableUserStatistics, readTableRowsRead, readUserCommandCounts } from '../lib/metrics/user-statistics.ts';
import { HOST_RESERVED } from '../domain/catalog.ts';
import { generateSeed } from '../stack/seed/generate.ts';
import { insertSeed } from '../stack/seed/insert.ts';
import { startLegacyStack } from '../stack/stack.ts';
import { advanceEventDelivery } from './event-router-stage.ts';
import { demoPlan, patientShadowSteps, runSchedulerV2Stage } from './scheduler-v2-stage.ts';
import { harpoonPlanFeatures, runHarpoonStage, runLockdownStage, waitForFollowers } from './harpoon-stage.ts';
import { validatePlan } from '../proxy/cutover/plan.ts';
import { StranglerError } from '../lib/errors.ts';
import { formatLatencySummary, minSamplesFor, summarizeLatency } from '../lib/metrics/sample-percentiles.ts';
import { watchServerBacklog } from './server-backlog.ts';
import { readProcessMemory, readServerCounters, serverLoadDetails } from './server-load.ts';
import type { Progress } from './progress.ts';
import { renderReportHtml } from './report-html.ts';
import type { DemoReport, StageName, StageReport } from './report-types.ts';
import { startSampler } from './sampler.ts';
import { scrapeSum } from './scrape-sum.ts';
import { eventCounts, eventLatency, executedEvents, maxEventId, unfinishedEvents } from './stage-metrics.ts';
import { startTraffic } from './traffic.ts';
import { measureContention, type ContentionOptions } from './contention.ts';
import { legacyScaleNote } from './legacy-scale.ts';
import { databaseDeathMessage } from './database-death.ts';
import { loadStackSecrets } from '../lib/secrets/stack-secrets.ts';
import { freshKeyRing } from '../lib/auth/hypervisor-keys.ts';
import { verifyLockdown, type LockdownVerification } from '../harpoon/verify-lockdown.ts';

export interface DemoOptions {
  hypervisors: number;
  regions: number;
  out: string;
  /** Seconds of traffic per stage. */
  stageSeconds: number;
  /** Customer requests per second through Cloud. */
  rate: number;
  seed: number;
  pollIntervalMs: { min: number; max: number };
  workMs: number;
  keepDatabase: boolean;
  /** Soak of each event-delivery cutover step in the event-router stage (default 2 s). */
  soakSeconds?: number;
  /**
   * Stages to run, in order (default DEFAULT_STAGES). Each needs the ones before it:
   * event-router ← scheduler-v2 ← harpoon ← lockdown. bench:legacy runs only 'legacy'.
   */
  stages?: StageName[];
  /** Event Routers' poll interval (default 1000 ms). */
  routerPollMs?: number;
  /** Longest the legacy stage's traffic runs while its latency sample is under a p99's minimum (default 3 × stageSeconds). */
  legacyMaxSeconds?: number;
  /**
   * The legacy as 2016 had it (the default): a server with one thread per connection (when the demo
   * starts its own) and the 2016 god query; or today's kinder options, so a user sees what each buys.
   * `multiplex`: agents of one fleet process share that many connections (a pooler in front of MySQL).
   */
  legacy?: { threadHandling?: ThreadHandling; godQuery?: GodQueryVariant; multiplex?: number };
  /** After each stage's measurements, the same burst of traffic at every stage, for the locks and backlog table (off by default). */
  contention?: ContentionOptions;
  logger?: Logger;
  progress: Progress;
  env?: NodeJS.ProcessEnv;
}

/** The stages `npm run demo` runs when none are named. */
export const DEFAULT_STAGES: StageName[] = ['legacy', 'event-router', 'scheduler-v2', 'harpoon', 'lockdown'];

/** MySQL users whose SELECTs are polling (the queue pattern the migration removes). */
const POLLING_USERS = ['dobe', 'scheduler_v1', 'event_router', 'scheduler_v2'];

/**
 * Runs the migration end to end on this machine and writes
 * `out/report.json` and `out/report.html`. Stages: `legacy`, then `event-router`
 * (event delivery moved to the regional Event Routers through the proxy's cutover controller, region by region),
 * then `scheduler-v2` (scheduling moved to three Scheduler V2 replicas: shadow, one region, all).
 *
 * @example
 *   const report = await runDemo({ hypervisors: 200, regions: 3, out: 'out/demo', stageSeconds: 20, … });
 */
export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const { progress } = options;
  const logger = options.logger ?? silentLogger();
  const startedAt = new Date();
  const passwords = loadStackSecrets(options.env ?? process.env).secrets.db;
  const needConnections = options.hypervisors + 150;

  progress.log(`finding a MySQL server for ${options.hypervisors} hypervisors (${needConnections} connections)…`);
  const threadHandling = options.legacy?.threadHandling ?? 'one-thread-per-connection';
  const godQuery = options.legacy?.godQuery ?? '2016';
  const multiplex = options.legacy?.multiplex;
  const server = await provisionServer({ logger, needConnections, env: options.env, threadHandling });
  progress.log(
    `database: ${server.source} server ${server.admin.host}:${server.admin.port} (${server.serverVersion}, max_connections=${server.maxConnections}, thread_handling=${server.threadHandling}${server.controlPort ? `, control sessions on extra_port ${server.controlPort}` : ''})`,
  );
  if (server.threadHandling !== threadHandling) {
    progress.log(`note: the legacy stage wanted thread_handling=${threadHandling}; this ${server.source} server runs ${server.threadHandling} (only a server the demo starts itself can be set)`);
  }
  // A server that dies mid-run (the 2016 legacy at 15,000 runs a machine out of memory) ends the run with
  // one line saying so, not with whichever service's connection error arrives first.
  let death: ServerDeath | undefined;
  const deathError = (d: ServerDeath) =>
    new StranglerError('DEMO_ERR_DATABASE_DIED', databaseDeathMessage(d, { hypervisors: options.hypervisors, threadHandling: server.threadHandling, godQuery, totalMemBytes: totalmem() }));
  /** Rejects when the server dies: a stage in progress stops waiting on a database that is gone. */
  const died = server.died?.then((d): never => {
    death = d;
    progress.log(`the database server died (${d.signal ?? `exit code ${d.code}`}); stopping`);
    throw deathError(d);
  });
  died?.catch(() => {});
  const scaleNote = legacyScaleNote(options.hypervisors, server.threadHandling, godQuery, multiplex);
  if (scaleNote) progress.log(`note: ${scaleNote}`);
  const database = uniqueDatabaseName('strangler_demo');
  // The demo's own sessions (seeding, sampling, PROCESSLIST, invariants) use the control port where the server has
  // one, as the cutover admin does: a measurement must not wait in the queue it measures.
  const control = server.controlPort ? { port: server.controlPort } : {};
  const admin = createKnex({ ...server.admin, ...control, database: undefined }, { poolMin: 1, poolMax: 2, connectTimeoutMs: 60_000 });
  let stack: Awaited<ReturnType<typeof startLegacyStack>> | undefined;
  let lockdownVerification: LockdownVerification | undefined;
  let sampler: ReturnType<typeof startSampler> | undefined;
  let userStatistics: Awaited<ReturnType<typeof enableUserStatistics>> | undefined;
  // The run itself; raced against the server's death, so a dead database ends it at once instead of after every
  // remaining query has waited out its connect timeout (what a run killed mid-stage did in a loaded CI run).
  const body = async (): Promise<DemoReport> => {
    userStatistics = await enableUserStatistics(admin);
    const userStats = userStatistics.enabled;
    const config = await prepareDatabase(server.admin, database, passwords);
    // The demo measures a server it drives into saturation (the legacy stage at 15,000): its own
    // connections are opened up front and kept, and a reconnect may wait as long as a saturated
    // thread pool takes to accept it, so the measuring never fails where the system is only slow.
    const db = createKnex({ ...config, ...control }, { poolMin: 4, poolMax: 4, connectTimeoutMs: 60_000 });
    await warmPool(db, 4);
    try {
      const seed = generateSeed({ hypervisors: options.hypervisors, regions: options.regions, seed: options.seed });
      await insertSeed(db, seed, (table, rows) => progress.update(`seeding ${table}: ${rows} rows`));
      progress.log(
        `seeded ${seed.servers.length} hypervisors in ${seed.regions.length} regions (${Object.entries(seed.profile)
          .map(([k, v]) => `${v} ${k}`)
          .join(', ')}), ${seed.droplets.length} droplets`,
      );
      const maxEvent = await maxEventId(db);
      const seededDroplets = seed.droplets.length;

      let stage: StageName = 'legacy';
      sampler = startSampler(db, { database, stage: () => stage });
      const regionSlugs = seed.regions.map((r) => r.slug);
      const soakSeconds = options.soakSeconds ?? 2;
      const wanted = options.stages ?? DEFAULT_STAGES;
      const withRouter = wanted.includes('event-router');
      // Each later stage moves through the same cutover admin and builds on the one before.
      const withSchedulerV2 = withRouter && wanted.includes('scheduler-v2');
      const withHarpoon = withSchedulerV2 && wanted.includes('harpoon');
      const withLockdown = withHarpoon && wanted.includes('lockdown');
      const basePlan = demoPlan(regionSlugs, soakSeconds);
      const plan = patientShadowSteps(withHarpoon ? validatePlan({ ...basePlan, features: { ...basePlan.features, ...harpoonPlanFeatures(soakSeconds) } }) : basePlan);
      stack = await startLegacyStack({
        server: server.admin,
        ...(server.controlPort ? { controlPort: server.controlPort } : {}),
        database,
        passwords,
        // This run's hypervisor tokens only: a fresh ring, kept nowhere.
        hypervisorKeys: freshKeyRing(),
        serverIds: seed.servers.map((s) => s.id),
        pollIntervalMs: options.pollIntervalMs,
        workMs: options.workMs,
        godQuery: { variant: godQuery, ...(multiplex ? { multiplex } : {}) },
        logger,
        onFleetProgress: (connected, total) => progress.update(`legacy fleet: ${connected}/${total} agents connected`),
        eventRouter: withRouter
          ? {
              regions: regionSlugs,
              plan,
              adminToken: randomBytes(24).toString('base64url'),
              pollIntervalMs: options.routerPollMs ?? 1000,
            }
          : undefined,
        schedulerV2: withSchedulerV2 ? { replicas: 3 } : undefined,
        ...(withHarpoon ? { harpoon: { replicas: 2 } } : {}),
      });
      progress.log(`legacy stack up: cloud ${stack.urls.cloud}, metrics ${stack.urls.monitor}/metrics`);
      const er = stack.eventRouter;
      if (er) {
        progress.log(
          `event routers up (${er.routers.routers().map((r) => `${r.region} ${r.url} pid ${r.pid}`).join(', ')}), proxy ${er.proxyUrl} (${er.proxy.workers().length} worker processes), cutover admin ${er.adminUrl}/cutover; agents on the god query until event-delivery advances`,
        );
      }
      const trafficOptions = () => ({
        cloudUrl: stack!.urls.publicApi ?? stack!.urls.cloud,
        customers: seed.customers.map((c) => ({ id: c.id, token: seed.tokens.get(c.id)! })),
        droplets: seed.droplets.map((d) => ({ id: d.id, customer_id: d.customer_id })),
        regions: seed.regions.map((r) => r.slug),
        sizes: ['512mb', '1gb', '2gb', '4gb'],
        images: seed.images.map((i) => i.slug),
        rate: options.rate,
        seed: options.seed,
      });
      const traffic = () => startTraffic(trafficOptions());
      // Write-heavy with some reads: every service that writes `events` is busy at once.
      // A burst may ask more than the default in-flight cap allows: a cap below the rate would hide the backlog.
      const burst = (rate: number) => startTraffic({ ...trafficOptions(), rate, maxInFlight: Math.max(64, rate), mix: { create: 0.55, action: 0.3, destroy: 0.05, read: 0.1 } });
      const stageContext: StageContext = {
        seconds: options.stageSeconds,
        progress,
        db,
        sampler,
        userStats,
        startTraffic: traffic,
        ...(options.contention ? { contention: options.contention, startBurst: burst } : {}),
        drainMs: Math.max(60_000, options.pollIntervalMs.max * 3 + 30_000),
        sinceEventId: maxEvent,
        fleetStats: () => stack!.fleet.stats(),
        database,
        ...(server.pid ? { serverPid: server.pid } : {}),
      };

      const stages: StageReport[] = [];
      // A stage that fails (a gate that never opens, a service that will not start) ends the run, but
      // the stages done so far are measured numbers: the report is written with them and the failure.
      let failed: DemoReport['failed'];
      const attempt = async (name: StageName, run: () => Promise<StageReport>): Promise<boolean> => {
        if (failed) return false;
        stage = name;
        try {
          stages.push(await run());
          return true;
        } catch (err) {
          failed = { stage: name, code: err instanceof StranglerError ? err.code : 'DEMO_ERR_STAGE_FAILED', message: (err as Error).message };
          progress.log(`${name}: stage failed (${failed.code}): ${failed.message}; writing the report with the stages done so far`);
          logger.error({ err, stage: name }, 'demo stage failed');
          return false;
        }
      };
      const withMix = (mix: Parameters<typeof startTraffic>[0]['mix']) => () => startTraffic({ ...trafficOptions(), ...(mix ? { mix } : {}) });
      // From the harpoon stage on, customers also read their actions: what event-reads moves and shadows.
      const readingTraffic = withMix({ create: 0.5, action: 0.2, destroy: 0.05, read: 0.25 });

      // The legacy stage is the "before" every later figure is compared with: it keeps its traffic on
      // until its agents have received enough events for a p99 (or legacyMaxSeconds runs out).
      await attempt('legacy', () =>
        runStage('legacy', { ...stageContext, minSamples: minSamplesFor(0.99), maxSeconds: options.legacyMaxSeconds ?? options.stageSeconds * 3 }),
      );

      // event-router: move event delivery to the routers region by region, under traffic, then measure.
      if (er) {
        await attempt('event-router', async () => {
          const hostsByRegion = new Map<string, number>(seed.regions.map((r) => [r.slug, seed.servers.filter((s) => s.region_id === r.id).length]));
          const cutoverStarted = Date.now();
          const transition = traffic();
          let steps: Awaited<ReturnType<typeof advanceEventDelivery>>;
          try {
            steps = await advanceEventDelivery({
              controller: er.controller,
              autopilot: er.autopilot,
              db,
              database,
              hostsByRegion,
              progress,
              fleetStats: () => stack!.fleet.stats(),
            });
          } finally {
            const t = await transition.stop();
            progress.log(`event-router: cutover done under traffic (${t.sent} requests, ${t.failed} failed) in ${Math.round((Date.now() - cutoverStarted) / 1000)}s`);
          }
          const routerStage = await runStage('event-router', stageContext);
          routerStage.analysis = steps.analysis;
          const fleetNow = stack!.fleet.stats();
          routerStage.details = {
            ...routerStage.details,
            cutover_steps: steps.steps.map((s) => s.name).join(' → '),
            cutover_seconds: Math.round(steps.steps.reduce((n, s) => n + s.seconds, 0) * 10) / 10,
            agents_on_router: fleetNow.onRouter,
            agents_on_god_query: fleetNow.onGodQuery,
            router_events_delivered: await scrapeSum(er.routers.routers().map((r) => r.url), 'router_events_delivered_total'),
            router_restarts: er.routers.restarts(),
            proxy_worker_restarts: er.proxy.restarts(),
          };
          return routerStage;
        });
      }
      // scheduler-v2: scheduling moves to three V2 replicas (shadow, one region, all) under traffic, then measured.
      if (er && stack.schedulerV2) {
        const v2 = stack.schedulerV2;
        await attempt('scheduler-v2', () =>
          runSchedulerV2Stage({ controller: er.controller, autopilot: er.autopilot, startReplicas: v2.start, db, progress, startTraffic: traffic, measure: () => runStage('scheduler-v2', stageContext) }),
        );
      }
      // harpoon: event writes and reads move to Harpoon; routers and V2 take its stream. lockdown: only Harpoon keeps events.
      if (er && stack.harpoon) {
        const harpoonUrls = stack.harpoon.urls;
        const readingContext = { ...stageContext, startTraffic: readingTraffic };
        await attempt('harpoon', () =>
          runHarpoonStage({
            controller: er.controller,
            autopilot: er.autopilot,
            db,
            progress,
            startTraffic: readingTraffic,
            measure: () => runStage('harpoon', readingContext),
            harpoonUrls,
            adminUrl: er.adminUrl,
            followersOnHarpoon: async () =>
              waitForFollowers({ routerUrls: er.routers.routers().map((r) => r.url), schedulerUrls: (await stack!.schedulerV2?.start())?.urls ?? [] }),
          }),
        );
        if (withLockdown) {
          await attempt('lockdown', () => runLockdownStage({ controller: er.controller, autopilot: er.autopilot, progress, measure: () => runStage('lockdown', readingContext) }));
          // What an operator would run: every service user against every event-data table (nothing written).
          lockdownVerification = await verifyLockdown({ server: server.admin, database, passwords });
          progress.log(`verify-lockdown: ${lockdownVerification.ok ? 'only Harpoon may touch event data' : `NOT locked down: ${lockdownVerification.violations.join(', ')}`}`);
        }
      }
      const processes = [
        { role: 'demo', pid: process.pid, peak_rss_bytes: process.resourceUsage().maxRSS * 1024 },
        ...stack.fleet.processes().map((p) => ({ role: 'dobe-fleet-worker', pid: p.pid, peak_rss_bytes: p.peakRssBytes })),
        ...(await Promise.all((er?.routers.processes() ?? []).map(async (p) => ({ role: `event-router ${p.region}`, pid: p.pid, peak_rss_bytes: await peakRssOf(p.pid) })))),
        ...(await Promise.all((er?.proxy.workers() ?? []).map(async (w) => ({ role: 'proxy-worker', pid: w.pid, peak_rss_bytes: await peakRssOf(w.pid) })))),
        ...(server.pid ? [{ role: 'mariadbd', pid: server.pid, peak_rss_bytes: await peakRssOf(server.pid) }] : []),
      ];
      await stack.close();
      stack = undefined;
      await sampler.stop();
      const invariants = await checkInvariants(db, { sinceEventId: maxEvent, sinceDropletId: seededDroplets, hostReserved: HOST_RESERVED });
      const report: DemoReport = {
        hypervisors: options.hypervisors,
        regions: options.regions,
        database: { host: server.admin.host, port: server.admin.port, name: database, server_version: server.serverVersion, source: server.source },
        started_at: startedAt.toISOString(),
        ended_at: new Date().toISOString(),
        settings: {
          seed: options.seed,
          stage_seconds: options.stageSeconds,
          legacy_max_seconds: options.legacyMaxSeconds ?? options.stageSeconds * 3,
          latency_min_samples: `p50 ${minSamplesFor(0.5)}, p99 ${minSamplesFor(0.99)}`,
          rate_per_s: options.rate,
          poll_interval_ms: `${options.pollIntervalMs.min}-${options.pollIntervalMs.max}`,
          work_ms: options.workMs,
          max_connections: server.maxConnections,
          thread_handling: server.threadHandling,
          god_query: godQuery,
          ...(scaleNote ? { legacy_scale_note: scaleNote } : {}),
          agent_connections: multiplex ? `multiplexed: ${multiplex} per fleet process` : 'one per agent',
          ...(options.contention ? { contention_burst: `${options.contention.rates.join(', ')} requests/s, ${options.contention.seconds}s each, after each stage` } : {}),
          per_user_statistics: userStats,
        },
        stages,
        ...(failed ? { failed } : {}),
        lost_events: invariants.lost_events,
        duplicate_executions: invariants.duplicate_executions,
        overcommitted_hosts: invariants.overcommitted_hosts,
        timeline: [...sampler.samples],
        processes,
        ...(lockdownVerification ? { lockdown_verification: lockdownVerification } : {}),
      };
      const out = resolve(options.out);
      await mkdir(out, { recursive: true });
      await writeFile(join(out, 'report.json'), JSON.stringify(report, null, 2) + '\n');
      await writeFile(join(out, 'report.html'), renderReportHtml(report));
      progress.log(`wrote ${join(out, 'report.json')} and report.html`);
      return report;
    } finally {
      await sampler?.stop().catch(() => {});
      await stack?.close().catch(() => {});
      await db.destroy();
    }
  };
  try {
    const running = body();
    if (!died) return await running;
    running.catch(() => {}); // after a death its own end is nobody's business
    return await Promise.race([running, died]);
  } catch (err) {
    // The services' errors can arrive a moment before the server's exit is reported.
    if (server.died && !death) await Promise.race([server.died, new Promise((r) => setTimeout(r, 2_000).unref())]);
    if (death) throw Object.assign(deathError(death), { cause: err });
    throw err;
  } finally {
    // A dead server has nothing to restore or drop; asking it would only wait for connect timeouts.
    if (!death) await userStatistics?.restore().catch(() => {});
    await admin.destroy();
    if (!options.keepDatabase && !death) await dropDatabase(server.admin, database).catch(() => {});
    await server.release();
  }
}

/** VmHWM: the most resident memory a process has had, from /proc (Linux). */
async function peakRssOf(pid: number): Promise<number> {
  return (await readProcessMemory(pid)).peakBytes;
}

interface StageContext {
  seconds: number;
  progress: Progress;
  db: ReturnType<typeof createKnex>;
  sampler: ReturnType<typeof startSampler>;
  userStats: boolean;
  startTraffic: () => ReturnType<typeof startTraffic>;
  drainMs: number;
  sinceEventId: number;
  fleetStats: () => { godQueries: number };
  /** The run's database (TABLE_STATISTICS is per schema). */
  database: string;
  /** Seconds of no traffic after the drain in which polling is measured (default 5). */
  idleSeconds?: number;
  /** Events the stage's agents should receive before its traffic stops (a latency sample worth a p99). */
  minSamples?: number;
  /** Longest the traffic runs while waiting for `minSamples` (default `seconds`). */
  maxSeconds?: number;
  /** mariadbd's pid where the demo started the server: its CPU and memory per stage. */
  serverPid?: number;
  /** The burst each stage ends with, and how to drive it. */
  contention?: ContentionOptions;
  startBurst?: (rate: number) => ReturnType<typeof startTraffic>;
}

/** SELECTs so far by each polling user (USER_STATISTICS), or the server's Com_select as `*` where per-user counts are off. */
async function pollingSelects(ctx: StageContext): Promise<Record<string, number>> {
  if (ctx.userStats) {
    const counts = await readUserCommandCounts(ctx.db);
    return Object.fromEntries(POLLING_USERS.map((user) => [user, counts[user]?.select ?? 0]));
  }
  const [[row]] = (await ctx.db.raw("SHOW GLOBAL STATUS LIKE 'Com_select'")) as [[{ Value: string }]];
  return { '*': Number(row.Value) };
}

/**
 * Waits while the queue keeps shrinking: a saturated legacy server is slow, not stuck. Gives up only
 * after `drainMs` without progress (or 10 minutes in all); answers what is left.
 */
async function drainQueue(ctx: StageContext, name: string): Promise<number> {
  const hardDeadline = Date.now() + 600_000;
  let left = await unfinishedEvents(ctx.db, ctx.sinceEventId);
  let best = left;
  let lastProgress = Date.now();
  while (left > 0 && Date.now() - lastProgress < ctx.drainMs && Date.now() < hardDeadline) {
    ctx.progress.update(`${name}: ${left} events still pending or running`);
    await new Promise((r) => setTimeout(r, 1000));
    left = await unfinishedEvents(ctx.db, ctx.sinceEventId);
    if (left < best) {
      best = left;
      lastProgress = Date.now();
    }
  }
  return left;
}

/** One stage: traffic for `seconds`, then a drain until every event is finished, then the stage's numbers. */
async function runStage(name: StageName, ctx: StageContext): Promise<StageReport> {
  const startedAt = new Date();
  const firstId = await maxEventId(ctx.db);
  const selectsBefore = await pollingSelects(ctx);
  const godBefore = ctx.fleetStats().godQueries;
  const serverBefore = await readServerCounters(ctx.db, ctx.serverPid);
  const backlog = watchServerBacklog(ctx.db);
  const traffic = ctx.startTraffic();
  const deadline = Date.now() + ctx.seconds * 1000;
  // A stage that wants a sample worth a percentile keeps its traffic on past `seconds` until its
  // agents have received that many events, or until `maxSeconds` (a saturated legacy server may
  // never get there: the report then says n/a with the n it got).
  const wanted = ctx.minSamples ?? 0;
  const hardStop = Date.now() + Math.max(ctx.seconds, ctx.maxSeconds ?? ctx.seconds) * 1000;
  let received = 0;
  for (;;) {
    const now = Date.now();
    if (now >= hardStop) break;
    if (now >= deadline) {
      received = await executedEvents(ctx.db, firstId);
      if (received >= wanted) break;
    }
    await new Promise((r) => setTimeout(r, 1000));
    const last = ctx.sampler.samples.at(-1);
    const s = traffic.stats();
    const left = Date.now() < deadline ? `${Math.ceil((deadline - Date.now()) / 1000)}s left` : `sampling: ${received}/${wanted} events received, at most ${Math.ceil((hardStop - Date.now()) / 1000)}s more`;
    ctx.progress.update(
      `${name}: ${last?.connections_total ?? '?'} MySQL connections · ${last?.questions_per_s ?? '?'} queries/s · ${s.sent} requests (${s.failed} failed) · ${left}`,
    );
  }
  const trafficStats = await traffic.stop();
  const serverAfter = await readServerCounters(ctx.db, ctx.serverPid);
  const threads = (await backlog.stop()).threads_running;
  const serverRss = ctx.serverPid ? (await readProcessMemory(ctx.serverPid)).rssBytes : 0;
  const cloudLatency = summarizeLatency(trafficStats.latenciesMs);
  const measuredAt = new Date();
  const selectsAfter = await pollingSelects(ctx);
  const godAfter = ctx.fleetStats().godQueries;
  const window = (measuredAt.getTime() - startedAt.getTime()) / 1000;
  ctx.progress.log(`${name}: traffic stopped after ${trafficStats.sent} requests; draining the queue…`);
  const left = await drainQueue(ctx, name);
  // Polling is what a service asks whether or not there is work: measured over a window with no
  // traffic and (after the drain) no queue, from the server's own per-user and per-table counters.
  const idleSeconds = ctx.idleSeconds ?? 5;
  ctx.progress.update(`${name}: measuring polling over ${idleSeconds}s without traffic…`);
  const idleBefore = await pollingSelects(ctx);
  const eventsReadBefore = await readTableRowsRead(ctx.db, ctx.database, 'events');
  const idleStarted = Date.now();
  await new Promise((r) => setTimeout(r, idleSeconds * 1000));
  const idleAfter = await pollingSelects(ctx);
  const eventsReadAfter = await readTableRowsRead(ctx.db, ctx.database, 'events');
  const idleWindow = (Date.now() - idleStarted) / 1000;
  const perSecond = (after: Record<string, number>, before: Record<string, number>, seconds: number) =>
    Object.fromEntries(Object.keys(after).map((u) => [u, Math.round(((after[u]! - (before[u] ?? 0)) / seconds) * 10) / 10]));
  const idleByUser = perSecond(idleAfter, idleBefore, idleWindow);
  const trafficByUser = perSecond(selectsAfter, selectsBefore, window);
  const sum = (byUser: Record<string, number>) => Math.round(Object.values(byUser).reduce((a, b) => a + b, 0) * 10) / 10;
  const endedAt = new Date();
  // Requests the driver gave up on may still commit later: the range is read after the drain.
  const range = { afterId: firstId, lastId: await maxEventId(ctx.db) };
  const peak = ctx.sampler.peak(startedAt, endedAt);
  const latency = await eventLatency(ctx.db, range);
  const counts = await eventCounts(ctx.db, range);
  const report: StageReport = {
    name,
    started_at: startedAt.toISOString(),
    ended_at: endedAt.toISOString(),
    mysql_connections: { total: peak?.connections_total ?? 0, by_user: peak?.by_user ?? {} },
    polling_queries_per_s: sum(idleByUser),
    event_latency_ms: latency,
    events_created: counts.created,
    events_done: counts.done,
    details: {
      events_error: counts.error,
      events_unfinished_after_drain: left,
      requests_sent: trafficStats.sent,
      requests_failed: trafficStats.failed,
      cloud_error_rate: trafficStats.sent ? Math.round((trafficStats.failed / trafficStats.sent) * 1000) / 1000 : 0,
      // Percentiles only from a sample large enough for them (lib/metrics/sample-percentiles.ts), with n.
      cloud_request_ms: formatLatencySummary(cloudLatency),
      ...serverLoadDetails(serverBefore, serverAfter, threads, serverRss),
      god_queries_per_s_client: Math.round(((godAfter - godBefore) / window) * 10) / 10,
      idle_selects_per_s_by_user: Object.entries(idleByUser).map(([u, n]) => `${u} ${n}`).join(', '),
      selects_per_s_under_traffic: sum(trafficByUser),
      selects_per_s_under_traffic_by_user: Object.entries(trafficByUser).map(([u, n]) => `${u} ${n}`).join(', '),
      ...(eventsReadBefore !== undefined && eventsReadAfter !== undefined
        ? { events_rows_read_per_s_idle: Math.round(((eventsReadAfter - eventsReadBefore) / idleWindow) * 10) / 10 }
        : {}),
      measured_window_s: Math.round(window * 10) / 10,
    },
  };
  if (ctx.contention && ctx.startBurst) {
    report.contention = [];
    for (const rate of ctx.contention.rates) {
      const burst = await measureContention(ctx.db, rate, ctx.contention.seconds, ctx.startBurst, ctx.progress, name);
      // Each burst's events are finished before the next burst (or stage) starts, so steps do not add up.
      burst.events_unfinished_after_drain = await drainQueue(ctx, `${name} (after the ${rate}/s burst)`);
      report.contention.push(burst);
    }
  }
  ctx.progress.log(
    `${name}: peak ${report.mysql_connections.total} connections, ${report.polling_queries_per_s} polling queries/s, latency ${formatLatencySummary(latency)}, ${counts.done}/${counts.created} events done`,
  );
  return report;
}
