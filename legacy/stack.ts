import type { DbConfig } from '../lib/db/config.ts';
import { serviceDbConfig } from '../lib/db/service-users.ts';
import { createMonitor, type Monitor } from '../lib/metrics/create-monitor.ts';
import { createHttpService } from '../lib/http/service-server.ts';
import { createRouter } from '../lib/http/router.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import { createCloud } from './cloud/create-cloud.ts';
import { createFleet, type Fleet } from './dobe/fleet.ts';
import { createSchedulerV1, type SchedulerV1 } from './scheduler-v1/create-scheduler-v1.ts';
import { createEventRouter } from '../router/event-router.ts';
import { createProxy } from '../proxy/create-proxy.ts';
import type { RouteTable } from '../proxy/route-table.ts';
import { createCutoverAdmin } from '../proxy/cutover/admin.ts';
import type { CutoverController } from '../proxy/cutover/controller.ts';
import type { CutoverPlan } from '../proxy/cutover/plan.ts';
import { createCutoverStateReader } from '../proxy/cutover/state-store.ts';

export interface LegacyStackOptions {
  /** The server (admin credentials, no database). */
  server: DbConfig;
  database: string;
  /** Secret the service users' passwords derive from. */
  secret: string;
  /** Hypervisors to simulate: servers.id 1..n unless `serverIds` is given. */
  serverIds: number[];
  pollIntervalMs?: { min: number; max: number };
  workMs?: number;
  schedulerPollMs?: number;
  agentsPerProcess?: number;
  logger?: Logger;
  onFleetProgress?: (connected: number, total: number) => void;
  /** Ports for the HTTP services (0 = any free port). */
  ports?: { cloud?: number; scheduler?: number; monitor?: number; fleet?: number };
  /**
   * Also starts the Event Router stage's pieces: one Event Router per region
   * (in process, as the `event_router` user), the strangler proxy with the
   * event-delivery routes (its cutover state read as the `proxy` user), and
   * the cutover admin API (controller, state store and soak watcher, as the
   * `proxy` user). The agents become dual-mode, with the proxy as their
   * router URL; they stay on the god query until `event-delivery` advances.
   */
  eventRouter?: {
    /** Region slugs: one router each. */
    regions: string[];
    /** The cutover plan the admin API runs. */
    plan: CutoverPlan;
    /** The admin API token (at least 16 characters). */
    adminToken: string;
    /** Router poll interval (default 1000 ms). */
    pollIntervalMs?: number;
    /** Agents' god-query polls between reads of the cutover row (default 3). */
    modeCheckEvery?: number;
  };
}

export interface EventRouterStack {
  routers: Array<{ region: string; url: string; stats(): { connected: number; inflight: number; delivered: number; acked: number } }>;
  /** The proxy's data port (the agents' router URL); its /metrics too. */
  proxyUrl: string;
  /** The cutover admin API (`…/cutover/*`, token-protected). */
  adminUrl: string;
  controller: CutoverController;
}

export interface LegacyStack {
  urls: { cloud: string; scheduler: string; monitor: string; fleet: string };
  fleet: Fleet;
  scheduler: SchedulerV1;
  monitor: Monitor;
  /** Present when started with `eventRouter`. */
  eventRouter?: EventRouterStack;
  close(): Promise<void>;
}

/**
 * Starts the 2016 system on a prepared database: Cloud (droplet API with
 * direct DB access), Scheduler V1, the monitor, and one DOBE agent per
 * hypervisor, each with its own MySQL connection. Each service connects
 * as its own MySQL user.
 *
 * @example
 *   const stack = await startLegacyStack({ server, database, secret, serverIds: [1, 2, 3] });
 *   … await stack.close();
 */
export async function startLegacyStack(options: LegacyStackOptions): Promise<LegacyStack> {
  const logger = options.logger ?? silentLogger();
  const as = (user: Parameters<typeof serviceDbConfig>[2]) => serviceDbConfig(options.server, options.database, user, options.secret);
  const started: Array<{ close(): Promise<void> }> = [];
  try {
    const monitor = createMonitor({ db: as('strangler_monitor'), database: options.database, logger, port: options.ports?.monitor ?? 0 });
    const monitorAddress = await monitor.start();
    started.push(monitor);
    const cloud = createCloud({ db: as('cloud'), logger, port: options.ports?.cloud ?? 0 });
    const cloudAddress = await cloud.start();
    started.push(cloud);
    const scheduler = createSchedulerV1({
      db: as('scheduler_v1'),
      logger,
      port: options.ports?.scheduler ?? 0,
      pollIntervalMs: options.schedulerPollMs ?? 1000,
    });
    const schedulerAddress = await scheduler.start();
    started.push(scheduler);
    let eventRouter: EventRouterStack | undefined;
    if (options.eventRouter) {
      const er = options.eventRouter;
      const routers: EventRouterStack['routers'] = [];
      const byRegion: Record<string, string[]> = {};
      for (const region of er.regions) {
        const router = createEventRouter({ db: as('event_router'), region, secret: options.secret, pollIntervalMs: er.pollIntervalMs ?? 1000, logger, port: 0 });
        started.push(router);
        const { url } = await router.start();
        routers.push({ region, url, stats: () => router.stats() });
        byRegion[region] = [url];
      }
      const reader = createCutoverStateReader({ db: as('proxy'), intervalMs: 1000, logger });
      started.push(reader);
      await reader.start();
      const routes: RouteTable = {
        'event-delivery': {
          // Legacy points at the routers too: only an agent that has just switched reaches it (runbooks/event-router-stage.md).
          legacy: { byRegion },
          new: { byRegion },
          routes: [
            { method: 'GET', path: '/v1/regions/:region/hypervisors/:id/events', region: { param: 'region' }, stickyBy: { param: 'id' } },
            { method: 'POST', path: '/v1/regions/:region/hypervisors/:id/acks', region: { param: 'region' }, stickyBy: { param: 'id' } },
            { method: 'GET', path: '/v1/regions/:region/hypervisors/:id/mode', region: { param: 'region' }, stickyBy: { param: 'id' } },
          ],
        },
      };
      const proxy = createProxy({ routes, state: reader, logger, port: 0, healthCheck: { path: '/readyz' } });
      const proxyAddress = await proxy.start();
      started.push(proxy);
      const admin = createCutoverAdmin({
        db: as('proxy'),
        tokens: { demo: er.adminToken },
        services: { proxy: proxyAddress.url, router: routers.map((r) => r.url), monitor: monitorAddress.url },
        plan: er.plan,
        logger,
        port: 0,
        watcherActor: 'demo-soak-watcher',
      });
      const adminAddress = await admin.start();
      started.push(admin);
      eventRouter = { routers, proxyUrl: proxyAddress.url, adminUrl: adminAddress.url, controller: admin.controller };
    }
    const fleet = createFleet({
      db: as('dobe'),
      serverIds: options.serverIds,
      pollIntervalMs: options.pollIntervalMs,
      workMs: options.workMs,
      agentsPerProcess: options.agentsPerProcess,
      logger,
      onProgress: options.onFleetProgress,
      ...(eventRouter
        ? { routerUrl: eventRouter.proxyUrl, tokenSecret: options.secret, ...(options.eventRouter?.modeCheckEvery ? { modeCheckEvery: options.eventRouter.modeCheckEvery } : {}) }
        : {}),
    });
    started.push(fleet);
    await fleet.start();
    // The fleet's counters (god queries, executions) get their own /metrics, as a hypervisor exporter would.
    const fleetHttp = createHttpService({ name: 'dobe-fleet', router: createRouter(), registry: fleet.registry, logger, port: options.ports?.fleet ?? 0 });
    const fleetAddress = await fleetHttp.start();
    started.push(fleetHttp);
    let closing: Promise<void> | undefined;
    return {
      urls: { cloud: cloudAddress.url, scheduler: schedulerAddress.url ?? '', monitor: monitorAddress.url, fleet: fleetAddress.url },
      fleet,
      scheduler,
      monitor,
      ...(eventRouter ? { eventRouter } : {}),
      close() {
        // Reverse order: agents stop polling before the services they report to go away.
        closing ??= (async () => {
          for (const service of [...started].reverse()) await service.close();
        })();
        return closing;
      },
    };
  } catch (err) {
    for (const service of [...started].reverse()) await service.close().catch(() => {});
    throw err;
  }
}
