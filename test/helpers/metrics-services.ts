import { createHttpService } from '../../lib/http/service-server.ts';
import { createRouter } from '../../lib/http/router.ts';
import type { ScrapeJob } from '../../lib/metrics/scrape-targets.ts';
import { silentLogger } from '../../lib/logger.ts';
import { enableUserStatistics } from '../../lib/metrics/user-statistics.ts';
import { createMonitor } from '../../lib/metrics/create-monitor.ts';
import { createFleet } from '../../dobe/fleet.ts';
import { createSchedulerV1 } from '../../legacy/scheduler-v1/create-scheduler-v1.ts';
import type { SeedData } from '../../stack/seed/generate.ts';
import { createProxyAdmin } from '../../proxy/admin.ts';
import { createProxy } from '../../proxy/create-proxy.ts';
import { createCutoverAdmin } from '../../proxy/cutover/admin.ts';
import { createStaticState } from '../../proxy/static-state.ts';
import { createHarpoon } from '../../harpoon/create-harpoon.ts';
import { createEventRouter } from '../../router/event-router.ts';
import { createMysqlEventSource } from '../../legacy/router/mysql-source.ts';
import { createSchedulerV2 } from '../../scheduler/create-scheduler-v2.ts';
import { DROPLET_API_ROUTES } from './routes.ts';
import { startTestCloud } from './cloud.ts';
import { TEST_HV_KEYS, type TestDatabase } from './database.ts';
import { metricsFromDatabase, startHostMetricsServer } from './host-metrics.ts';
import { seedWorld, waitFor } from './seeded.ts';
import { GOD_QUERY_MODE } from '../../legacy/dobe/god-query-mode.ts';

export interface MetricsEndpoint {
  /** The service, as the Prometheus scrape config (dashboards/prometheus.yml) names its job. */
  job: ScrapeJob;
  /** The service itself (two services share the proxy-admin job). */
  service: string;
  /** The /metrics URL. */
  url: string;
}

export interface MetricsServices {
  endpoints: MetricsEndpoint[];
  seed: SeedData;
  close(): Promise<void>;
}

const ADMIN_TOKEN = 'metrics-test-admin-token-0123456789';

/**
 * Every service of the system that serves /metrics, started in process on
 * port 0 against one seeded test database, with a little traffic through
 * each so labelled series and histograms have samples: the monitor, Cloud
 * (behind the proxy, whose `droplet-api` feature is in shadow mode so the
 * comparison counters move), Scheduler V1, the DOBE fleet, the proxy and its
 * admin port, the cutover admin, one Event Router per region and Scheduler
 * V2 (shadow mode, reading host metrics from a stand-in exporter) and Harpoon.
 */
export async function startMetricsServices(t: TestDatabase, options: { hypervisors?: number; regions?: number } = {}): Promise<MetricsServices> {
  const hypervisors = options.hypervisors ?? 6;
  const seed = await seedWorld(t.db, { hypervisors, regions: options.regions ?? 2 });
  // Per-user statement counters (mysql_info_schema_user_statistics_*) exist only with userstat on.
  const userstat = await enableUserStatistics(t.db);
  const started: Array<{ close(): Promise<void> }> = [{ close: () => userstat.restore() }];
  const endpoints: MetricsEndpoint[] = [];
  const add = (job: ScrapeJob, base: string, service: string = job) => endpoints.push({ job, service, url: `${base.replace(/\/metrics$/, '')}/metrics` });
  try {
    const monitor = createMonitor({ db: t.service('strangler_monitor'), database: t.name });
    started.push(monitor);
    add('monitor', (await monitor.start()).url);

    const cloud = await startTestCloud(t);
    started.push(cloud.cloud);
    add('cloud', cloud.url);

    const v1 = createSchedulerV1({ db: t.service('scheduler_v1'), port: 0, pollIntervalMs: 200 });
    started.push(v1);
    add('scheduler-v1', (await v1.start()).url!);

    const routers: Record<string, string[]> = {};
    for (const region of seed.regions) {
      const router = createEventRouter({ legacySource: createMysqlEventSource, db: t.service('event_router'), region: region.slug, hypervisorKeys: TEST_HV_KEYS, pollIntervalMs: 200, port: 0 });
      started.push(router);
      const { url } = await router.start();
      routers[region.slug] = [url];
      add('event-router', url);
    }

    const proxy = createProxy({
      routes: {
        'droplet-api': {
          legacy: [cloud.url],
          new: [cloud.url],
          routes: DROPLET_API_ROUTES,
          
        },
        'event-delivery': {
          legacy: { byRegion: routers },
          new: { byRegion: routers },
          routes: [{ method: 'GET', path: '/v1/regions/:region/hypervisors/:id/mode', region: { param: 'region' }, stickyBy: { param: 'id' } }],
        },
      },
      state: createStaticState({ 'droplet-api': { mode: 'shadow' }, 'event-delivery': { mode: 'legacy' } }),
      healthCheck: { path: '/readyz' },
    });
    started.push(proxy);
    const proxyUrl = (await proxy.start()).url;
    add('proxy', proxyUrl);
    const proxyAdmin = createProxyAdmin({ token: ADMIN_TOKEN, proxy, registry: proxy.registry });
    started.push(proxyAdmin);
    add('proxy-admin', (await proxyAdmin.start()).url);

    const cutover = createCutoverAdmin({
      db: t.service('proxy'),
      tokens: { test: ADMIN_TOKEN },
      services: { proxy: `${proxyUrl}/metrics`, router: Object.values(routers).flat().map((u) => `${u}/metrics`), monitor: endpoints[0]!.url },
      watchIntervalMs: 500,
    });
    started.push(cutover);
    add('proxy-admin', (await cutover.start()).url, 'cutover-admin');

    const hostMetrics = await startHostMetricsServer([...(await metricsFromDatabase(t.db)).values()].flat());
    started.push(hostMetrics);
    const v2 = createSchedulerV2({ db: t.service('scheduler_v2'), metricsEndpoints: [{ name: 'fleet', url: hostMetrics.url }], mode: 'shadow', port: 0, scrapeIntervalMs: 200 });
    started.push(v2);
    add('scheduler-v2', (await v2.start()).url!);

    const harpoon = createHarpoon({ db: t.service('harpoon'), tokens: { test: ADMIN_TOKEN }, port: 0 });
    started.push(harpoon);
    add('harpoon', (await harpoon.start()).url);

    const fleet = createFleet({ pollingMode: GOD_QUERY_MODE,
      db: t.service('dobe'),
      serverIds: seed.servers.map((s) => s.id),
      pollIntervalMs: { min: 200, max: 400 },
      workMs: 1,
    });
    started.push(fleet);
    await fleet.start();
    const fleetHttp = createHttpService({ name: 'dobe-fleet', router: createRouter(), registry: fleet.registry, logger: silentLogger(), port: 0 });
    started.push(fleetHttp);
    add('fleet', (await fleetHttp.start()).url);

    // Traffic: lists and a create through the proxy (shadowed), an unknown route, a mode read for a hypervisor.
    const token = seed.tokens.values().next().value!;
    const auth = { authorization: `Bearer ${token}` };
    for (let i = 0; i < 3; i++) await (await fetch(`${proxyUrl}/v2/droplets`, { headers: auth })).text();
    const created = await fetch(`${proxyUrl}/v2/droplets`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'metrics-test', region: seed.regions[0]!.slug, size: seed.sizes[0]!.slug, image: seed.images[0]!.slug }),
    });
    await created.text();
    await (await fetch(`${proxyUrl}/no/such/route`)).text();
    await (await fetch(`${cloud.url}/v2/droplets/999999`, { headers: auth })).text();
    await waitFor(async () => fleet.stats().godQueries > 0);
    return {
      endpoints,
      seed,
      async close() {
        for (const s of [...started].reverse()) await s.close().catch(() => {});
      },
    };
  } catch (err) {
    for (const s of [...started].reverse()) await s.close().catch(() => {});
    throw err;
  }
}
