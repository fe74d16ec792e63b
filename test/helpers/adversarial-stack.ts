import type { Knex } from 'knex';
import { Registry } from 'prom-client';
import { createHarpoon, type Harpoon } from '../../harpoon/create-harpoon.ts';
import { createMonitor, type Monitor } from '../../lib/metrics/create-monitor.ts';
import type { SeedData } from '../../stack/seed/generate.ts';
import { createProxyAdmin, type ProxyAdmin } from '../../proxy/admin.ts';
import { createCutoverAdmin, type CutoverAdmin } from '../../proxy/cutover/admin.ts';
import { createProxy, type Proxy } from '../../proxy/create-proxy.ts';
import { createStaticState } from '../../proxy/static-state.ts';
import { createEventRouter, type EventRouter } from '../../router/event-router.ts';
import { createMysqlEventSource } from '../../legacy/router/mysql-source.ts';
import { createSchedulerV2, type SchedulerV2 } from '../../scheduler/create-scheduler-v2.ts';
import { DROPLET_API_ROUTES } from './routes.ts';
import { startTestCloud, type TestCloud } from './cloud.ts';
import type { RequestSpec } from './raw-http.ts';
import { TEST_HV_KEYS, createTestDatabase, type TestDatabase } from './database.ts';
import { metricsFromDatabase, startHostMetricsServer, type HostMetricsServer } from './host-metrics.ts';
import { hvToken, setEventDelivery } from './router.ts';
import { seedWorld, waitFor } from './seeded.ts';
import type { HypervisorKeyRing } from '../../lib/auth/hypervisor-keys.ts';
import { adminTokenDigest } from '../../lib/auth/admin-token.ts';

/** Every HTTP surface the system exposes today, by name. */
export const SERVICES = ['cloud', 'router', 'proxy', 'proxyAdmin', 'cutover', 'scheduler', 'monitor', 'harpoon'] as const;
export type ServiceName = (typeof SERVICES)[number];

export const ADMIN_TOKEN = 'proxy-admin-token-0123456789';
export const CUTOVER_TOKEN = 'cutover-token-alice-0123456789';
export const HARPOON_TOKEN = 'harpoon-token-cloud-0123456789';

export interface Host {
  id: number;
  region: string;
}

export interface AdversarialStack {
  t: TestDatabase;
  seed: SeedData;
  ports: Record<ServiceName, number>;
  /** Registries of the services that serve `http_requests_total` from the shared shell. */
  registries: Partial<Record<ServiceName, Registry>>;
  /** A seeded customer's API token. */
  customerToken: string;
  /** The router's region and two of its hosts; a host of the other region. */
  region: string;
  otherRegion: string;
  hostA: Host;
  hostB: Host;
  foreign: Host;
  hv(host: Host, keys?: HypervisorKeyRing): string;
  router: EventRouter;
  /** A request each service answers 200 to, writing nothing: proof it still serves. */
  good: Record<ServiceName, RequestSpec>;
  close(): Promise<void>;
}

/**
 * Every service of the system on one seeded database, in this process, each
 * on its own port: Cloud; an Event Router for the first region (the
 * `event-delivery` row says full); the proxy's data port routing that
 * region's hypervisor paths to the router and Cloud's droplet paths to
 * Cloud; the proxy admin port; the cutover admin API (no soak watcher:
 * nothing changes state by itself); a Scheduler V2 replica with its HTTP
 * (scheduling only the second region, which has no creates); the monitor;
 * Harpoon (no peers).
 * Between requests nothing writes except Scheduler V2's heartbeat row.
 */
export async function startAdversarialStack(prefix: string): Promise<AdversarialStack> {
  const t = await createTestDatabase(prefix);
  const closers: Array<() => Promise<unknown>> = [];
  try {
    const seed = await seedWorld(t.db, { hypervisors: 8, regions: 2 });
    await t.db('events').del();
    await setEventDelivery(t.db, { mode: 'full' });
    const [r0, r1] = seed.regions;
    const inRegion = (id: number) => seed.servers.filter((s) => s.region_id === id);
    const hostA = { id: inRegion(r0!.id)[0]!.id, region: r0!.slug };
    const hostB = { id: inRegion(r0!.id)[1]!.id, region: r0!.slug };
    const foreign = { id: inRegion(r1!.id)[0]!.id, region: r1!.slug };

    const cloud: TestCloud = await startTestCloud(t);
    closers.push(() => cloud.cloud.close());

    const routerRegistry = new Registry();
    const router = createEventRouter({
      legacySource: createMysqlEventSource,
      db: t.service('event_router'),
      region: r0!.slug,
      hypervisorKeys: TEST_HV_KEYS,
      pollIntervalMs: 100,
      redeliverAfterMs: 60_000,
      registry: routerRegistry,
    });
    const routerUrl = (await router.start()).url;
    closers.push(() => router.close());

    const proxy: Proxy = createProxy({
      routes: {
        'event-delivery': {
          legacy: { byRegion: { [r0!.slug]: [routerUrl] } },
          new: { byRegion: { [r0!.slug]: [routerUrl] } },
          routes: [
            { method: 'GET', path: '/v1/regions/:region/hypervisors/:id/events', region: { param: 'region' }, stickyBy: { param: 'id' } },
            { method: 'POST', path: '/v1/regions/:region/hypervisors/:id/acks', region: { param: 'region' }, stickyBy: { param: 'id' } },
            { method: 'GET', path: '/v1/regions/:region/hypervisors/:id/mode', region: { param: 'region' }, stickyBy: { param: 'id' } },
          ],
        },
        'droplet-api': {
          legacy: [cloud.url],
          new: [cloud.url],
          routes: DROPLET_API_ROUTES,
        },
      },
      state: createStaticState({ 'event-delivery': { mode: 'full' } }),
      // Tolerant: the machine is shared, and a single router marked down would turn every case into a 503.
      healthCheck: { path: '/readyz', intervalMs: 1000, timeoutMs: 5000, unhealthyThreshold: 5 },
    });
    const proxyUrl = (await proxy.start()).url;
    closers.push(() => proxy.close());
    // The router is ready after its first poll; until the proxy's health check has seen it, the proxy answers 503.
    await waitFor(async () => proxy.upstreams().every((u) => u.healthy), 30_000, 50);

    const proxyAdmin: ProxyAdmin = createProxyAdmin({ token: ADMIN_TOKEN, proxy, registry: proxy.registry });
    const proxyAdminUrl = (await proxyAdmin.start()).url;
    closers.push(() => proxyAdmin.close());

    const cutoverRegistry = new Registry();
    const cutover: CutoverAdmin = createCutoverAdmin({
      db: t.service('proxy'),
      tokens: { alice: CUTOVER_TOKEN },
      services: { proxy: proxyAdminUrl, router: routerUrl },
      registry: cutoverRegistry,
      watch: false,
    });
    const cutoverUrl = (await cutover.start()).url;
    closers.push(() => cutover.close());

    const byRegion = await metricsFromDatabase(t.db);
    const metrics: HostMetricsServer = await startHostMetricsServer(byRegion.get(r1!.slug) ?? []);
    closers.push(() => metrics.close());
    const schedulerRegistry = new Registry();
    const scheduler: SchedulerV2 = createSchedulerV2({
      db: t.service('scheduler_v2'),
      metricsEndpoints: [{ name: r1!.slug, url: metrics.url }],
      regions: [r1!.slug],
      replicaId: 'adversarial-1',
      registry: schedulerRegistry,
      port: 0,
      // The operator's token, as a digest (stack/stack.ts does the same); room for the suites' concurrent bad bodies.
      tokens: { alice: { sha256: adminTokenDigest(CUTOVER_TOKEN), scopes: ['explain', 'placements'] } },
      explainConcurrency: 16,
    });
    const schedulerUrl = (await scheduler.start()).url!;
    closers.push(() => scheduler.close());

    const monitorRegistry = new Registry();
    const monitor: Monitor = createMonitor({ db: t.service('strangler_monitor'), database: t.name, registry: monitorRegistry });
    const monitorUrl = (await monitor.start()).url;
    closers.push(() => monitor.close());

    const harpoon: Harpoon = createHarpoon({ db: t.service('harpoon'), tokens: { cloud: HARPOON_TOKEN } });
    const harpoonUrl = (await harpoon.start()).url;
    closers.push(() => harpoon.close());

    const port = (url: string) => Number(new URL(url).port);
    const customerToken = seed.tokens.get(seed.customers[0]!.id)!;
    const mode = { method: 'GET', path: `/v1/regions/${hostA.region}/hypervisors/${hostA.id}/mode`, headers: { authorization: `Bearer ${hvToken(hostA.id, hostA.region)}` } };
    const good: Record<ServiceName, RequestSpec> = {
      cloud: { method: 'GET', path: '/v2/droplets?per_page=1', headers: { authorization: `Bearer ${customerToken}` } },
      router: mode,
      proxy: mode,
      proxyAdmin: { method: 'GET', path: '/admin/upstreams', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } },
      cutover: { method: 'GET', path: '/cutover/status', headers: { authorization: `Bearer ${CUTOVER_TOKEN}` } },
      scheduler: { method: 'POST', path: '/explain', headers: { 'content-type': 'application/json', authorization: `Bearer ${CUTOVER_TOKEN}` }, body: JSON.stringify({ region: r1!.slug, size: '2gb' }) },
      monitor: { method: 'GET', path: '/metrics' },
      harpoon: { method: 'GET', path: `/v1/events?region=${r0!.slug}&limit=1`, headers: { authorization: `Bearer ${HARPOON_TOKEN}` } },
    };
    return {
      good,
      t,
      seed,
      ports: {
        cloud: port(cloud.url),
        router: port(routerUrl),
        proxy: port(proxyUrl),
        proxyAdmin: port(proxyAdminUrl),
        cutover: port(cutoverUrl),
        scheduler: port(schedulerUrl),
        monitor: port(monitorUrl),
        harpoon: port(harpoonUrl),
      },
      registries: { cloud: cloud.registry, router: routerRegistry, cutover: cutoverRegistry, scheduler: schedulerRegistry, monitor: monitorRegistry, proxyAdmin: proxy.registry, harpoon: harpoon.registry },
      customerToken,
      region: r0!.slug,
      otherRegion: r1!.slug,
      hostA,
      hostB,
      foreign,
      hv: (host, keys) => hvToken(host.id, host.region, keys),
      router,
      async close() {
        for (const close of closers.reverse()) await close().catch(() => undefined);
        await t.drop();
      },
    };
  } catch (err) {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await t.drop();
    throw err;
  }
}

/** Tables some service writes on its own between requests (Scheduler V2's heartbeat, the admin's analysis loop); left out of snapshots. */
const BACKGROUND_TABLES = new Set(['scheduler_replicas', 'knex_migrations', 'knex_migrations_lock', 'cutover_autopilot', 'cutover_analysis_runs']);

/** Row count and CHECKSUM TABLE of every table of the database, as the server computes them. */
export async function tableSnapshot(db: Knex, database: string): Promise<Record<string, { rows: number; checksum: string }>> {
  const [tables] = (await db.raw("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY table_name", [
    database,
  ])) as [Array<{ name: string }>];
  const names = tables.map((t) => t.name).filter((n) => !BACKGROUND_TABLES.has(n));
  const [sums] = (await db.raw(`CHECKSUM TABLE ${names.map((n) => `\`${n}\``).join(', ')}`)) as [Array<{ Table: string; Checksum: number | string }>];
  const out: Record<string, { rows: number; checksum: string }> = {};
  for (const name of names) {
    const [[count]] = (await db.raw(`SELECT COUNT(*) AS n FROM \`${name}\``)) as [[{ n: number }]];
    const sum = sums.find((s) => s.Table.endsWith(`.${name}`));
    out[name] = { rows: Number(count.n), checksum: String(sum?.Checksum) };
  }
  return out;
}
