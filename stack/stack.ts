import type { DbConfig } from '../lib/db/config.ts';
import { MONITOR_USER, serviceDbConfig, type DbPasswords } from '../lib/db/service-users.ts';
import { loadHypervisorKeys, type HypervisorKeyRing } from '../lib/auth/hypervisor-keys.ts';
import { adminTokenDigest, type AdminTokenSpecs } from '../lib/auth/admin-token.ts';
import { HOST_RESERVED } from '../domain/catalog.ts';
import type { Autopilot } from '../proxy/cutover/autopilot.ts';
import { createMonitor, type Monitor } from '../lib/metrics/create-monitor.ts';
import { createHttpService } from '../lib/http/service-server.ts';
import { createRouter } from '../lib/http/router.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import { createCloud } from '../cloud/create-cloud.ts';
import { readOutboxHealth } from '../cloud/outbox.ts';
import { createFleet, type Fleet } from '../dobe/fleet.ts';
import { addHostMetricsRoutes, hostMetricsUrl } from '../dobe/host-metrics.ts';
import { createSchedulerV2, type SchedulerV2 } from '../scheduler/create-scheduler-v2.ts';
import { createSchedulerV1, type SchedulerV1 } from '../legacy/scheduler-v1/create-scheduler-v1.ts';
import { createSchedulerSupervisor } from '../scheduler/supervisor.ts';
import type { ProcessSupervisor } from '../lib/process/supervisor.ts';
import { formatMysqlUrl } from '../lib/db/config.ts';
import { freePort } from '../lib/net/free-port.ts';
import { createRouterSupervisor, type RouterSupervisor } from '../router/supervisor.ts';
import { MYSQL_SOURCE_MODULE } from '../legacy/router/mysql-source.ts';
import { workersForStreams, type ProxyCluster } from '../proxy/cluster.ts';
import type { ProxyConfig } from '../proxy/config.ts';
import { createConfiguredProxy } from '../proxy/from-config.ts';
import type { RouteTable } from '../proxy/route-table.ts';
import { createCutoverAdmin } from '../proxy/cutover/admin.ts';
import { createDashboardCollector, type DashboardCollector } from '../proxy/dashboard/collector.ts';
import { addDashboardRoutes } from '../proxy/dashboard/routes.ts';
import type { CutoverController } from '../proxy/cutover/controller.ts';
import type { CutoverPlan } from '../proxy/cutover/plan.ts';
import { randomBytes } from 'node:crypto';
import { createKnex } from '../lib/db/knex.ts';
import { createHarpoonReplicas, type HarpoonReplicas } from '../harpoon/replicas.ts';
import { createLockdownEffect } from '../harpoon/lockdown-effect.ts';
import { createGrantWatcher } from '../harpoon/grant-watcher.ts';
import { publicRoutes } from '../proxy/public-routes.ts';
import { createHttpFeatureStateSource } from '../lib/cutover/http-state-source.ts';
import { godQueryModeRef, type GodQueryModeOptions } from '../legacy/dobe/god-query-mode.ts';
import { directEvents } from '../legacy/cloud/direct-events.ts';
import { generateHarpoonTokens, scopedHarpoonTokens, type HarpoonServiceTokens } from './harpoon-tokens.ts';


export interface LegacyStackOptions {
  /** The server (admin credentials, no database). */
  server: DbConfig;
  /**
   * The server's control port (a pooled MariaDB's `extra_port`, lib/db/provision.ts): the monitor
   * and the cutover admin's sessions (state store, gate reads, lockdown's grants) connect there, so
   * a step's analysis is not queued behind thousands of legacy pollers in the thread pool.
   */
  controlPort?: number;
  database: string;
  /** Each service user's MySQL password (lib/secrets/stack-secrets.ts): each service is handed its own only. */
  passwords: DbPasswords;
  /**
   * The hypervisor token keys (lib/auth/hypervisor-keys.ts), or their file: the routers follow the file
   * (rotation, revocation without a restart), the fleet signs its agents' tokens with the ring.
   */
  hypervisorKeys: HypervisorKeyRing | { file: string };
  /** Hypervisors to simulate: servers.id 1..n unless `serverIds` is given. */
  serverIds: number[];
  pollIntervalMs?: { min: number; max: number };
  /** Which god query the legacy agents run and whether they share connections (default: the optimized one, one connection each). */
  godQuery?: GodQueryModeOptions;
  workMs?: number;
  schedulerPollMs?: number;
  agentsPerProcess?: number;
  logger?: Logger;
  onFleetProgress?: (connected: number, total: number) => void;
  /** Ports for the HTTP services (0 = any free port). */
  ports?: { cloud?: number; scheduler?: number; monitor?: number; fleet?: number; admin?: number };
  /**
   * Also starts the Event Router stage's pieces: one Event Router process per
   * region (as the `event_router` user, restarted if it dies), the strangler
   * proxy's worker processes with the event-delivery routes (each reads the
   * cutover state as the `proxy` user), and
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
    /** Serve the live dashboard at <admin>/dashboard, scraping every service every intervalMs (default 2000). Off by default. */
    dashboard?: { intervalMs?: number };
    /** The plan's webhook secrets by name (webhookSecretsFromEnv), when its webhooks sign. */
    webhookSecrets?: Record<string, string>;
  };
  /**
   * Makes Scheduler V2 replicas available (`schedulerV2.start()`, so the
   * stages before theirs run without them): in this process, each with its
   * own `scheduler_v2` pool, following the `scheduling` cutover state and
   * scraping the fleet's per-region host metrics. The cutover admin (started
   * with `eventRouter`) reads their /metrics as the `scheduler` gate service.
   * They stay idle until `scheduling` advances; V1 keeps placing until its
   * regions move.
   */
  schedulerV2?: {
    /** Active-active replicas (default 3). Each scrapes one endpoint per region: R sockets, whatever N. */
    replicas?: number;
    /** Pause between batches when idle (default 200 ms). */
    pollIntervalMs?: number;
    /**
     * Run the replicas as processes (scheduler/supervisor.ts: restarted on their port if they die)
     * instead of in this process; start() then gives no replica objects, only their URLs and the supervisor.
     */
    processes?: boolean;
  };
  /**
   * Starts Harpoon's replica processes (as the `harpoon` user, peered, restarted if one dies) before
   * everything else, so Cloud, the routers and Scheduler V2 can be given their URLs; they stay idle
   * until `event-writes` advances. With `eventRouter`, the cutover admin gets the `lockdown` step's
   * effect (REVOKE/GRANT as the server's admin account) and `harpoon` as a gate service.
   */
  harpoon?: {
    /** Default 2. */
    replicas?: number;
    /** MySQL connections per replica (default 4). */
    poolSize?: number;
  };
}

/** Harpoon as the stack runs it: its replicas and the service tokens each client uses. */
export interface HarpoonStack {
  replicas: HarpoonReplicas;
  urls: string[];
  /** Cloud's, Scheduler V2's and each region's router's Harpoon token. */
  tokens: HarpoonServiceTokens;
}

/** What `schedulerV2.start()` gives: replica objects (in-process) or their supervisor (processes). */
export interface SchedulerV2Replicas {
  replicas: SchedulerV2[];
  urls: string[];
  /** With `processes`: kill('replica-1'), list() of pids. */
  supervisor?: ProcessSupervisor;
}

export interface EventRouterStack {
  /** One router process per region (their URLs, pids; kill one to test recovery). */
  routers: RouterSupervisor;
  /** The proxy's worker processes. */
  proxy: ProxyCluster;
  /** The proxy's data port (the agents' router URL). */
  proxyUrl: string;
  /** The cutover admin API (`…/cutover/*`, token-protected); its /metrics has the proxy cluster's series too. */
  adminUrl: string;
  controller: CutoverController;
  /** The admin's analysis loop and autopilot (strangler cutover run). */
  autopilot: Autopilot;
  /** The live dashboard (`<adminUrl>/dashboard`), when started with `dashboard`. */
  dashboardUrl?: string;
  /** An admin token for followers that only read GET /cutover/state (lib/cutover/http-state-source.ts). */
  followerToken: string;
}

export interface LegacyStack {
  /** `publicApi`: where customers reach Cloud's API, the proxy when it fronts it (event-reads), else Cloud itself. */
  urls: { cloud: string; scheduler: string; monitor: string; fleet: string; publicApi?: string };
  fleet: Fleet;
  scheduler: SchedulerV1;
  monitor: Monitor;
  /** Present when started with `eventRouter`. */
  eventRouter?: EventRouterStack;
  /** Present when started with `schedulerV2`: start() starts the replicas (once) and gives them and their service URLs. */
  schedulerV2?: { start(): Promise<SchedulerV2Replicas> };
  /** Present when started with `harpoon`. */
  harpoon?: HarpoonStack;
  close(): Promise<void>;
}

/**
 * Starts the 2016 system on a prepared database: Cloud (droplet API with
 * direct DB access), Scheduler V1, the monitor, and one DOBE agent per
 * hypervisor, each with its own MySQL connection. Each service connects
 * as its own MySQL user.
 *
 * @example
 *   const stack = await startLegacyStack({ server, database, passwords: secrets.db, hypervisorKeys: { file }, serverIds: [1, 2, 3] });
 *   … await stack.close();
 */
export async function startLegacyStack(options: LegacyStackOptions): Promise<LegacyStack> {
  const logger = options.logger ?? silentLogger();
  const as = (user: Parameters<typeof serviceDbConfig>[2]) => serviceDbConfig(options.server, options.database, user, options.passwords);
  const onControlPort = (config: DbConfig): DbConfig => (options.controlPort ? { ...config, port: options.controlPort } : config);
  const started: Array<{ close(): Promise<void> }> = [];
  try {
    let harpoon: HarpoonStack | undefined;
    if (options.harpoon) {
      // One router token per region, bound to it: a router reaches its own region's events only.
      const tokens = generateHarpoonTokens(options.eventRouter?.regions ?? []);
      const replicas = createHarpoonReplicas({
        db: as('harpoon'),
        tokens: scopedHarpoonTokens(tokens),
        replicas: options.harpoon.replicas ?? 2,
        ...(options.harpoon.poolSize !== undefined ? { poolSize: options.harpoon.poolSize } : {}),
        logger,
      });
      started.push(replicas);
      await replicas.start();
      harpoon = { replicas, urls: replicas.urls(), tokens };
    }
    const monitor = createMonitor({ db: onControlPort(as('strangler_monitor')), database: options.database, logger, port: options.ports?.monitor ?? 0 });
    const monitorAddress = await monitor.start();
    started.push(monitor);
    // With Harpoon, Cloud follows event-writes: its events go through an outbox relayed to Harpoon (cloud/README.md).
    const cloud = createCloud({ db: as('cloud'), directEvents, logger, port: options.ports?.cloud ?? 0, ...(harpoon ? { harpoon: { urls: harpoon.urls, token: harpoon.tokens.cloud } } : {}) });
    const cloudAddress = await cloud.start();
    started.push(cloud);
    let eventRouter: EventRouterStack | undefined;
    let dashboard: DashboardCollector | undefined;
    // Filled once the V2 replicas are up (they need the fleet's host metrics); the gate scraper reads the list at each scrape.
    const schedulerUrls: string[] = [];
    if (options.eventRouter) {
      const er = options.eventRouter;
      // The routers read their cutover state from the admin over HTTP (no MySQL poll), so the admin is up
      // before them; their ports are chosen first so the proxy's routes and the admin's gates can name them.
      const routerPorts: Record<string, number> = {};
      for (const region of er.regions) routerPorts[region] = await freePort();
      const routerUrls = er.regions.map((region) => `http://127.0.0.1:${routerPorts[region]}`);
      const adminPort = options.ports?.admin || (await freePort());
      const adminUrl = `http://127.0.0.1:${adminPort}`;
      const followerToken = randomBytes(24).toString('base64url');
      const supervisor = createRouterSupervisor({
        regions: er.regions,
        ports: routerPorts,
        db: as('event_router'),
        hypervisorKeys: options.hypervisorKeys,
        pollIntervalMs: er.pollIntervalMs ?? 1000,
        // The legacy and transition stages poll MySQL until event-writes reaches full.
        legacySource: MYSQL_SOURCE_MODULE,
        logger,
        ...(harpoon ? { harpoon: { urls: harpoon.urls, token: harpoon.tokens.routers }, state: { url: adminUrl, token: followerToken } } : {}),
      });
      const byRegion = Object.fromEntries(er.regions.map((region, i) => [region, [routerUrls[i]!]]));
      const routes: RouteTable = {
        // With Harpoon, customers reach Cloud through the proxy too: event-reads moves their action reads.
        ...(harpoon ? publicRoutes({ cloud: [cloudAddress.url], harpoon: harpoon.urls }) : {}),
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
      // The demo's proxy goes through the same config, validator and entry point as an operator's file
      // (strangler proxy --config): only its content is generated here. Every agent holds a stream through
      // the proxy: two sockets each, spread over enough workers that none nears the per-process open-file
      // limit (proxy/cluster.ts).
      const proxyConfig: ProxyConfig = {
        version: 1,
        workers: workersForStreams(options.serverIds.length),
        state: { mysql: { urlEnv: 'PROXY_MYSQL_URL', intervalMs: 1000 } },
        healthCheck: { path: '/readyz' },
        features: routes,
      };
      const configured = createConfiguredProxy({ config: proxyConfig, env: { PROXY_MYSQL_URL: formatMysqlUrl(as('proxy')) }, logger });
      const proxy = configured.cluster;
      started.push(configured);
      const proxyAddress = await configured.start();
      // The admin serves the cluster's aggregated proxy_* series on its /metrics: the gates read the proxy there.
      // The lockdown step REVOKEs and GRANTs: only the server's admin account may, so it gets a pool of its own.
      const grantor = harpoon ? createKnex(onControlPort({ ...options.server, database: options.database }), { poolMin: 0, poolMax: 1, connectTimeoutMs: 60_000 }) : undefined;
      if (grantor) started.push({ close: () => grantor.destroy() });
      const admin = createCutoverAdmin({
        db: onControlPort(as('proxy')),
        tokens: { demo: er.adminToken, followers: { token: followerToken, scopes: ['read'] } },
        ...(grantor ? { effects: { lockdown: createLockdownEffect({ admin: grantor, database: options.database }) } } : {}),
        // Cloud's outbox, every Cloud's rows: parked ones are an alarm in cutover status (the grantor reads it after lockdown too).
        ...(grantor ? { reports: { outbox: () => readOutboxHealth(grantor) } } : {}),
        services: {
          proxy: adminUrl,
          router: routerUrls,
          monitor: monitorAddress.url,
          ...(options.schedulerV2 ? { scheduler: schedulerUrls } : {}),
          ...(harpoon ? { harpoon: harpoon.urls } : {}),
        },
        plan: er.plan,
        registry: proxy.registry,
        logger,
        port: adminPort,
        watcherActor: 'demo-soak-watcher',
        // Invariant and budget gates read the server: the grantor account once lockdown is possible
        // (it alone still reads events afterwards), else the monitor's read-only user.
        observer: grantor ?? onControlPort(as(MONITOR_USER)),
        hostReserved: HOST_RESERVED,
        ...(er.webhookSecrets ? { webhookSecrets: er.webhookSecrets } : {}),
        // Thousands of agents share two cores with MariaDB here: a scrape may wait behind them.
        scrapeTimeoutMs: 5000,
      });
      await admin.start();
      started.push(admin);
      // The admin re-checks lockdown's grants at start and every 10 s: drift is strangler_lockdown_drift_grants
      // and a red bar on the dashboard (and the lockdown-drift gate refuses every advance meanwhile).
      const grants = grantor ? createGrantWatcher({ admin: grantor, database: options.database, registry: proxy.registry, logger }) : undefined;
      if (grants) {
        await grants.start();
        started.push({ close: async () => grants.close() });
      }
      started.push(supervisor);
      const routers = await supervisor.start();
      eventRouter = { routers: supervisor, proxy, proxyUrl: proxyAddress.url, adminUrl, controller: admin.controller, autopilot: admin.autopilot, followerToken };
      if (er.dashboard) {
        dashboard = createDashboardCollector({ intervalMs: er.dashboard.intervalMs, logger, sources: [{ job: 'monitor', url: monitorAddress.url }, { job: 'proxy-admin', url: adminUrl }, { job: 'cloud', url: cloudAddress.url }, ...routers.map((r) => ({ job: 'event-router', url: r.url })), ...(harpoon?.urls ?? []).map((url) => ({ job: 'harpoon', url }))] });
        addDashboardRoutes(admin.router, {
          collector: dashboard,
          history: (limit) => admin.controller.history({ limit }),
          autopilot: () => admin.autopilot.view(),
          ...(grants ? { lockdown: () => grants.last() } : {}),
        });
        started.push(dashboard);
        eventRouter.dashboardUrl = `${adminUrl}/dashboard`;
      }
    }
    // V1 after the admin: it may read the cutover state from it.
    const scheduler = createSchedulerV1({
      db: as('scheduler_v1'),
      logger,
      port: options.ports?.scheduler ?? 0,
      pollIntervalMs: options.schedulerPollMs ?? 1000,
      // With Harpoon (the stack that goes all the way), V1 follows scheduling over HTTP too: at full it sends MySQL nothing.
      ...(harpoon && eventRouter ? { stateSource: createHttpFeatureStateSource({ url: eventRouter.adminUrl, token: eventRouter.followerToken, logger }) } : {}),
    });
    const schedulerAddress = await scheduler.start();
    started.push(scheduler);
    const fleet = createFleet({
      db: as('dobe'),
      serverIds: options.serverIds,
      pollingMode: godQueryModeRef(options.godQuery ?? {}),
      pollIntervalMs: options.pollIntervalMs,
      workMs: options.workMs,
      agentsPerProcess: options.agentsPerProcess,
      logger,
      onProgress: options.onFleetProgress,
      ...(eventRouter
        ? { routerUrl: eventRouter.proxyUrl, hypervisorKeys: 'file' in options.hypervisorKeys ? loadHypervisorKeys(options.hypervisorKeys.file) : options.hypervisorKeys, ...(options.eventRouter?.modeCheckEvery ? { modeCheckEvery: options.eventRouter.modeCheckEvery } : {}) }
        : {}),
    });
    started.push(fleet);
    await fleet.start();
    // The fleet's counters (god queries, executions) get their own /metrics, as a hypervisor exporter would,
    // and each region's hypervisors their host metrics (/hosts/:region/metrics, scraped by Scheduler V2).
    const fleetRouter = createRouter();
    addHostMetricsRoutes(fleetRouter, fleet.hostMetrics);
    const fleetHttp = createHttpService({ name: 'dobe-fleet', router: fleetRouter, registry: fleet.registry, logger, port: options.ports?.fleet ?? 0 });
    const fleetAddress = await fleetHttp.start();
    started.push(fleetHttp);
    if (dashboard) {
      dashboard.addSource({ job: 'fleet', url: fleetAddress.url });
      if (schedulerAddress.url) dashboard.addSource({ job: 'scheduler-v1', url: schedulerAddress.url });
      dashboard.start();
    }
    let schedulerV2: LegacyStack['schedulerV2'];
    if (options.schedulerV2) {
      const v2 = options.schedulerV2;
      const metricsEndpoints = fleet.hostMetrics.regions().map((region) => ({ name: region, url: hostMetricsUrl(fleetAddress.url, region) }));
      let starting: Promise<SchedulerV2Replicas> | undefined;
      // With Harpoon, V2 follows event-writes through it and reads the cutover state from the admin (no MySQL poll).
      const followHarpoon =
        harpoon && eventRouter
          ? { harpoon: { urls: harpoon.urls, token: harpoon.tokens.scheduler }, state: { url: eventRouter.adminUrl, token: eventRouter.followerToken } }
          : undefined;
      // The operator's admin token works on /explain and /decisions; the replicas hold only its digest.
      const explainTokens: AdminTokenSpecs | undefined = options.eventRouter
        ? { operator: { sha256: adminTokenDigest(options.eventRouter.adminToken), scopes: ['explain', 'placements'] } }
        : undefined;
      schedulerV2 = {
        start: () =>
          (starting ??= (async () => {
            if (v2.processes) {
              const supervisor = createSchedulerSupervisor({
                replicas: v2.replicas ?? 3,
                db: as('scheduler_v2'),
                metricsEndpoints,
                logger,
                ...(v2.pollIntervalMs !== undefined ? { pollIntervalMs: v2.pollIntervalMs } : {}),
                ...(explainTokens ? { tokens: explainTokens } : {}),
                // As the routers: the cutover state over HTTP from the admin, so Harpoon mode sends MySQL no SELECT.
                ...(followHarpoon ?? (harpoon ? { harpoon: { urls: harpoon.urls, token: harpoon.tokens.scheduler } } : {})),
              });
              started.push(supervisor);
              for (const r of await supervisor.start()) {
                schedulerUrls.push(r.url);
                dashboard?.addSource({ job: 'scheduler-v2', url: r.url });
              }
              return { replicas: [], urls: schedulerUrls, supervisor };
            }
            const replicas: SchedulerV2[] = [];
            for (let i = 0; i < (v2.replicas ?? 3); i++) {
              const replica = createSchedulerV2({
                db: as('scheduler_v2'),
                metricsEndpoints,
                followCutover: true,
                ...(followHarpoon ? { harpoon: followHarpoon.harpoon, stateSource: createHttpFeatureStateSource(followHarpoon.state) } : {}),
                replicaId: `v2-${process.pid}-${i + 1}`,
                logger,
                port: 0,
                ...(explainTokens ? { tokens: explainTokens } : {}),
                ...(v2.pollIntervalMs !== undefined ? { pollIntervalMs: v2.pollIntervalMs } : {}),
              });
              // Closed before the fleet whose metrics it scrapes (started closes in reverse).
              started.push(replica);
              const { url } = await replica.start();
              replicas.push(replica);
              schedulerUrls.push(url!);
              dashboard?.addSource({ job: 'scheduler-v2', url: url! });
            }
            return { replicas, urls: schedulerUrls };
          })()),
      };
    }
    let closing: Promise<void> | undefined;
    return {
      urls: {
        cloud: cloudAddress.url,
        scheduler: schedulerAddress.url ?? '',
        monitor: monitorAddress.url,
        fleet: fleetAddress.url,
        ...(harpoon && eventRouter ? { publicApi: eventRouter.proxyUrl } : {}),
      },
      fleet,
      scheduler,
      monitor,
      ...(eventRouter ? { eventRouter } : {}),
      ...(schedulerV2 ? { schedulerV2 } : {}),
      ...(harpoon ? { harpoon } : {}),
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
