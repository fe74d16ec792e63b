import { randomBytes } from 'node:crypto';
import { dropDatabase, prepareDatabase, uniqueDatabaseName } from '../lib/db/database.ts';
import { createKnex } from '../lib/db/knex.ts';
import { startThrowawayServer, throwawayAvailable } from '../lib/db/throwaway-server.ts';
import { StranglerError } from '../lib/errors.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import { generateSeed } from '../stack/seed/generate.ts';
import { insertSeed } from '../stack/seed/insert.ts';
import { startLegacyStack } from '../stack/stack.ts';
import type { Progress } from '../demo/progress.ts';
import { harpoonPlanFeatures } from '../demo/harpoon-stage.ts';
import { demoPlan } from '../demo/scheduler-v2-stage.ts';
import { validatePlan } from '../proxy/cutover/plan.ts';
import { maxEventId } from '../demo/stage-metrics.ts';
import { startTraffic } from '../demo/traffic.ts';
import { finalCheck, type FinalCheck } from './checker.ts';
import { createCutoverDriver, type CutoverChange } from './cutover-driver.ts';
import { createInjectors } from './injectors.ts';
import { measureRecovery } from './prober.ts';
import { planFaults, type FaultKind, type PlannedFault } from './schedule.ts';
import { loadStackSecrets } from '../lib/secrets/stack-secrets.ts';
import { freshKeyRing } from '../lib/auth/hypervisor-keys.ts';

export interface ChaosOptions {
  hypervisors: number;
  regions: number;
  /** Seconds of traffic with faults. */
  durationS: number;
  seed: number;
  /** Customer requests per second at Cloud. */
  rate: number;
  /** Run Harpoon replicas and move event-writes and event-reads too (default true). */
  harpoon?: boolean;
  /** With Harpoon: move `lockdown` too (REVOKE of every grant on events but Harpoon's), last (default true). */
  lockdown?: boolean;
  /** Scheduler V2 replica processes (default 2). */
  schedulerReplicas?: number;
  /** Soak of each cutover step (default 2 s). */
  soakSeconds?: number;
  /** How long a component may take to serve again before the run calls it unrecovered (default 120 s). */
  recoveryTimeoutMs?: number;
  /** Give up draining after this long without progress (default 60 s). */
  drainStallMs?: number;
  logger?: Logger;
  progress: Progress;
  env?: NodeJS.ProcessEnv;
}

export interface FaultRecord extends PlannedFault {
  /** Seconds after traffic started that it actually fired (later than at_s while the previous one recovered). */
  fired_at_s?: number;
  fired_at?: string;
  target?: string;
  pid?: number;
  cutover_change?: CutoverChange & { at_s: number };
  recovered?: boolean;
  recovery_ms?: number;
  /** Why it did not run. */
  skipped?: string;
}

export interface ChaosReport extends FinalCheck {
  /** No event lost or executed twice, no host over-committed, no droplet without its event, every fault recovered. */
  ok: boolean;
  seed: number;
  hypervisors: number;
  regions: number;
  duration_s: number;
  started_at: string;
  ended_at: string;
  database: { port: number; server_version: string };
  max_recovery_ms: number;
  max_recovery_fault: string | null;
  recovery_ms_by_kind: Partial<Record<FaultKind, number>>;
  unrecovered_faults: number;
  requests: { sent: number; failed: number; by_status: Record<string, number> };
  faults: FaultRecord[];
  cutover: {
    final: Record<string, string>;
    /** Forward advances that moved a feature, with when. */
    forward: Array<CutoverChange & { at_s: number }>;
    /** Every change in the cutover history during the run, by action (advance, rollback, auto-rollback, advance-refused). */
    history_actions: Record<string, number>;
    /** Forward advances the gates refused, per feature, with the last refusal's message. */
    refusals: Record<string, { count: number; last: string }>;
  };
  restarts: { event_router: number; proxy_worker: number; scheduler_v2: number; mysql: number };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A chaos run: the demo's stack (Cloud, V1, the fleet, an Event Router
 * process per region, the proxy cluster, the cutover admin, Scheduler V2
 * replica processes) on a throwaway MariaDB of its own, under customer
 * traffic, while the cutover moves forward and a seeded fault schedule
 * kills components (planFaults); each fault's recovery is timed by a probe.
 * Then traffic stops, the queue drains, and the database is checked.
 *
 * @example
 *   const report = await runChaos({ hypervisors: 200, regions: 2, durationS: 60, seed: 1, rate: 10, progress });
 *   report.ok   // false if anything was lost, doubled or over-committed
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const { progress } = options;
  const logger = options.logger ?? silentLogger();
  const passwords = loadStackSecrets(options.env ?? process.env).secrets.db;
  if (!throwawayAvailable()) {
    throw new StranglerError('DB_ERR_NO_SERVER_BINARY', 'a chaos run restarts MySQL, so it needs a server of its own: install mariadb-server (mariadbd) on this machine');
  }
  const startedAt = new Date();
  progress.log(`starting a throwaway MariaDB for ${options.hypervisors} hypervisors…`);
  const server = await startThrowawayServer({ maxConnections: options.hypervisors + 300, logger });
  const database = uniqueDatabaseName('strangler_chaos');
  let stack: Awaited<ReturnType<typeof startLegacyStack>> | undefined;
  let db: ReturnType<typeof createKnex> | undefined;
  try {
    const config = await prepareDatabase(server.config, database, passwords);
    db = createKnex(config, { poolMin: 0, poolMax: 4, connectTimeoutMs: 30_000 });
    const [[version]] = (await db.raw('SELECT VERSION() AS v')) as [[{ v: string }]];
    const seed = generateSeed({ hypervisors: options.hypervisors, regions: options.regions, seed: options.seed });
    await insertSeed(db, seed, (table, rows) => progress.update(`seeding ${table}: ${rows} rows`));
    const regionSlugs = seed.regions.map((r) => r.slug);
    const withHarpoon = options.harpoon ?? true;
    const basePlan = demoPlan(regionSlugs, options.soakSeconds ?? 2);
    const { lockdown, ...harpoonFeatures } = harpoonPlanFeatures(options.soakSeconds ?? 2);
    if (options.lockdown ?? true) Object.assign(harpoonFeatures, { lockdown });
    const plan = withHarpoon ? validatePlan({ ...basePlan, features: { ...basePlan.features, ...harpoonFeatures } }) : basePlan;
    progress.log(`database ${database} on 127.0.0.1:${server.config.port} (${version.v}); seeded ${seed.servers.length} hypervisors in ${regionSlugs.length} regions`);

    stack = await startLegacyStack({
      server: server.config,
      database,
      passwords,
      // This run's hypervisor tokens only: a fresh ring, kept nowhere.
      hypervisorKeys: freshKeyRing(),
      serverIds: seed.servers.map((s) => s.id),
      pollIntervalMs: { min: 1000, max: 3000 },
      workMs: 20,
      logger,
      onFleetProgress: (connected, total) => progress.update(`fleet: ${connected}/${total} agents connected`),
      eventRouter: { regions: regionSlugs, plan, adminToken: randomBytes(24).toString('base64url') },
      schedulerV2: { replicas: options.schedulerReplicas ?? 2, processes: true },
      ...(withHarpoon ? { harpoon: { replicas: 2 } } : {}),
    });
    const er = stack.eventRouter!;
    const v2 = await stack.schedulerV2!.start();
    const harpoon = stack.harpoon?.replicas;
    progress.log(
      `stack up: ${regionSlugs.length} event routers, ${er.proxy.workers().length} proxy workers, ${v2.urls.length} Scheduler V2 replica processes, ${harpoon ? `${harpoon.list().length} Harpoon replicas` : 'no Harpoon replicas'}; cutover admin ${er.adminUrl}`,
    );
    const injectors = createInjectors({
      routers: { list: () => er.routers.routers().map((r) => ({ name: r.region, pid: r.pid, url: r.url, up: r.up })) },
      proxy: er.proxy,
      proxyUrl: er.proxyUrl,
      ...(v2.supervisor ? { scheduler: v2.supervisor } : {}),
      ...(harpoon ? { harpoon } : {}),
      mysql: { server, admin: server.config },
    });
    const driver = createCutoverDriver(er.controller);
    const sinceEventId = await maxEventId(db);
    const [[maxDroplet]] = (await db.raw('SELECT COALESCE(MAX(id), 0) AS id FROM droplets')) as [[{ id: number }]];

    const traffic = startTraffic({
      // With Harpoon the proxy fronts Cloud's API (event-reads): customers go through it, as in production.
      cloudUrl: stack.urls.publicApi ?? stack.urls.cloud,
      customers: seed.customers.map((c) => ({ id: c.id, token: seed.tokens.get(c.id)! })),
      droplets: seed.droplets.map((d) => ({ id: d.id, customer_id: d.customer_id })),
      regions: regionSlugs,
      sizes: ['512mb', '1gb', '2gb', '4gb'],
      images: seed.images.map((i) => i.slug),
      rate: options.rate,
      seed: options.seed,
      // Customers also read their actions: what event-reads shadows and moves.
      ...(withHarpoon ? { mix: { create: 0.5, action: 0.2, destroy: 0.05, read: 0.25 } } : {}),
    });
    const faultPlan = planFaults({ seed: options.seed, durationS: options.durationS, features: driver.features });
    progress.log(`traffic at ${options.rate}/s for ${options.durationS}s; ${faultPlan.length} faults planned: ${faultPlan.map((f) => `${f.at_s}s ${f.kind}+${f.cutover.action}`).join(', ')}`);
    const t0 = Date.now();
    const atS = () => Math.round((Date.now() - t0) / 100) / 10;
    const faults: FaultRecord[] = [];
    const forward: ChaosReport['cutover']['forward'] = [];
    const refusals: ChaosReport['cutover']['refusals'] = {};
    const settled: Promise<unknown>[] = [];
    let mysqlRestarts = 0;
    let next = 0;
    let lastForward = 0;
    const end = t0 + options.durationS * 1000;
    const recoveryTimeoutMs = options.recoveryTimeoutMs ?? 120_000;
    while (Date.now() < end || next < faultPlan.length) {
      const planned = faultPlan[next];
      if (planned && Date.now() >= t0 + planned.at_s * 1000) {
        next++;
        const record: FaultRecord = { ...planned };
        faults.push(record);
        const injector = injectors[planned.kind];
        const why = injector.unavailable();
        if (why) {
          record.skipped = why;
          progress.log(`fault ${planned.index}/${faultPlan.length} ${planned.kind}: skipped (${why})`);
          continue;
        }
        const firedAt = Date.now();
        const hit = injector.inject(planned.pick);
        if (hit.settled) settled.push(hit.settled);
        if (planned.kind === 'mysql') mysqlRestarts++;
        Object.assign(record, { fired_at_s: atS(), fired_at: new Date(firedAt).toISOString(), target: hit.target, pid: hit.pid });
        progress.log(`fault ${planned.index}/${faultPlan.length} at ${record.fired_at_s}s: kill -9 ${planned.kind} ${hit.target} (pid ${hit.pid}); ${planned.cutover.action} ${planned.cutover.feature} in ${planned.cutover_after_ms} ms`);
        const recovery = measureRecovery(hit.recovered, { since: firedAt, timeoutMs: recoveryTimeoutMs });
        await sleep(planned.cutover_after_ms);
        const changeAt = atS();
        const change = await driver.change(planned.cutover.feature, planned.cutover.action, `npm run chaos: ${planned.cutover.action} during a ${planned.kind} fault`);
        record.cutover_change = { ...change, at_s: changeAt };
        const { recovered, ms } = await recovery;
        Object.assign(record, { recovered, recovery_ms: ms });
        progress.log(
          `fault ${planned.index}: ${planned.kind} ${hit.target} ${recovered ? `serving again after ${ms} ms` : `NOT serving after ${ms} ms`}; ${change.action} ${change.feature}: ${change.outcome}${change.code ? ` (${change.code})` : ''}${change.step ? ` → ${change.step}` : ''}`,
        );
        continue;
      }
      if (Date.now() - lastForward >= 3000 && Date.now() < end) {
        lastForward = Date.now();
        const at = atS();
        const moved = await driver.forward();
        if (moved?.outcome === 'advanced') {
          forward.push({ ...moved, at_s: at });
          progress.log(`cutover: ${moved.feature} advanced to ${moved.step}`);
        } else if (moved && moved.code !== 'CUTOVER_ERR_SOAKING') {
          const r = (refusals[moved.feature] ??= { count: 0, last: '' });
          r.count++;
          r.last = `${moved.code ?? moved.outcome}: ${moved.message ?? ''}`;
        }
      }
      const s = traffic.stats();
      const fleet = stack.fleet.stats();
      progress.update(`${atS()}s: ${s.sent} requests (${s.failed} failed), ${fleet.onRouter}/${options.hypervisors} agents on routers, fault ${next}/${faultPlan.length}`);
      await sleep(250);
    }
    const requests = await traffic.stop();
    progress.log(`traffic stopped after ${atS()}s: ${requests.sent} requests, ${requests.failed} failed; waiting for restarts to settle and the queue to drain…`);
    await Promise.allSettled(settled);
    const check = await finalCheck(db, {
      sinceEventId,
      sinceDropletId: Number(maxDroplet.id),
      ...(options.drainStallMs !== undefined ? { stallMs: options.drainStallMs } : {}),
      onWait: (left) => progress.update(`draining: ${left} events pending or running`),
    });
    const history = await er.controller.history({ limit: 1000 });
    const historyActions: Record<string, number> = {};
    for (const h of history) if (Date.parse(h.at) >= t0 - 1000) historyActions[h.action] = (historyActions[h.action] ?? 0) + 1;
    const final = await driver.positions();
    const restarts = { event_router: er.routers.restarts(), proxy_worker: er.proxy.restarts(), scheduler_v2: v2.supervisor?.restarts() ?? 0, mysql: mysqlRestarts };

    const fired = faults.filter((f) => f.recovery_ms !== undefined);
    const byKind: ChaosReport['recovery_ms_by_kind'] = {};
    for (const f of fired) byKind[f.kind] = Math.max(byKind[f.kind] ?? 0, f.recovery_ms!);
    const worst = fired.reduce<FaultRecord | undefined>((w, f) => (!w || f.recovery_ms! > w.recovery_ms! ? f : w), undefined);
    const unrecovered = fired.filter((f) => !f.recovered).length;
    const ok =
      check.lost_events === 0 && check.duplicate_executions === 0 && check.overcommitted_hosts === 0 && check.droplets_without_event === 0 && unrecovered === 0;
    return {
      ok,
      seed: options.seed,
      hypervisors: options.hypervisors,
      regions: regionSlugs.length,
      duration_s: options.durationS,
      started_at: startedAt.toISOString(),
      ended_at: new Date().toISOString(),
      database: { port: server.config.port, server_version: version.v },
      ...check,
      max_recovery_ms: worst?.recovery_ms ?? 0,
      max_recovery_fault: worst ? `#${worst.index} ${worst.kind} ${worst.target}` : null,
      recovery_ms_by_kind: byKind,
      unrecovered_faults: unrecovered,
      requests: { sent: requests.sent, failed: requests.failed, by_status: requests.byStatus },
      faults,
      cutover: { final, forward, history_actions: historyActions, refusals },
      restarts,
    };
  } finally {
    await stack?.close().catch((err: Error) => logger.warn({ err: err.message }, 'closing the stack failed'));
    await db?.destroy().catch(() => {});
    await dropDatabase(server.config, database).catch(() => {});
    await server.stop();
  }
}
