import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFleet, type Fleet } from '../../dobe/fleet.ts';
import { addHostMetricsRoutes, hostMetricsUrl } from '../../dobe/host-metrics.ts';
import { createHttpService, type HttpService } from '../../lib/http/service-server.ts';
import { createRouter } from '../../lib/http/router.ts';
import { silentLogger } from '../../lib/logger.ts';
import { createSchedulerV2, type SchedulerV2 } from '../../scheduler/create-scheduler-v2.ts';
import { hostMetricsFromSamples } from '../../lib/metrics/host-metrics.ts';
import { parsePromText } from '../../lib/metrics/prom-text.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { insertEvent, seedWorld, waitFor } from '../helpers/seeded.ts';
import { GOD_QUERY_MODE } from '../../legacy/dobe/god-query-mode.ts';

const HOSTS = 40;

interface Row {
  id: number;
  name: string;
  slug: string;
  memfree: number;
  diskfree_actual: number;
  vmcount: number;
  cpus: number;
  error_count: number;
  state: string;
}

/**
 * The real fleet (worker processes, one agent per hypervisor) serves each
 * region's host metrics from its agents' own state, and Scheduler V2
 * scrapes them; a killed worker's hosts go stale and are not chosen.
 */
describe('fleet host metrics', () => {
  let t: TestDatabase;
  let fleet: Fleet;
  let http: HttpService;
  let base: string;
  let rows: Row[];
  let v2: SchedulerV2 | undefined;

  beforeAll(async () => {
    t = await createTestDatabase('fleet_host_metrics');
    await seedWorld(t.db, { hypervisors: HOSTS, regions: 2 });
    rows = await t.db('servers as s').join('regions as r', 'r.id', 's.region_id').orderBy('s.id').select('s.*', 'r.slug');
    fleet = createFleet({ pollingMode: GOD_QUERY_MODE, db: t.service('dobe'), serverIds: rows.map((r) => r.id), agentsPerProcess: HOSTS / 2, pollIntervalMs: { min: 200, max: 400 }, workMs: 1 });
    await fleet.start();
    const router = createRouter();
    addHostMetricsRoutes(router, fleet.hostMetrics);
    http = createHttpService({ name: 'fleet-test', router, registry: fleet.registry, logger: silentLogger(), port: 0 });
    base = (await http.start()).url;
  }, 60_000);

  afterAll(async () => {
    await v2?.close();
    await http?.close();
    await fleet?.close();
    await t?.drop();
  });

  async function scrape(region: string) {
    const res = await fetch(hostMetricsUrl(base, region));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    return hostMetricsFromSamples(parsePromText(await res.text()).samples);
  }

  it('serves one endpoint per region with every hypervisor of it, as its agent measured itself', async () => {
    const regions = [...new Set(rows.map((r) => r.slug))].sort();
    expect(fleet.hostMetrics.regions()).toEqual(regions);
    await waitFor(async () => (await scrape(regions[0]!)).hosts.size === rows.filter((r) => r.slug === regions[0]).length);
    for (const region of regions) {
      const snap = await scrape(region);
      expect(snap.incomplete).toEqual([]);
      const mine = rows.filter((r) => r.slug === region);
      expect([...snap.hosts.keys()].sort()).toEqual(mine.map((r) => r.name).sort());
      for (const r of mine) {
        expect(snap.hosts.get(r.name)).toMatchObject({
          region,
          memfree_mb: r.memfree,
          diskfree_gb: r.diskfree_actual,
          vmcount: r.vmcount,
          cpus: r.cpus,
          error_count: r.error_count,
          state: r.state,
        });
        expect(Date.now() - snap.hosts.get(r.name)!.last_report_ms).toBeLessThan(5000);
      }
    }
    const missing = await fetch(hostMetricsUrl(base, 'nowhere'));
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: 'FLEET_ERR_UNKNOWN_REGION' });
  });

  it('reports what the agent executed, not what the servers row says', async () => {
    const host = rows.find((r) => r.state === '' && r.memfree > 4096)!;
    const size = await t.db('sizes').where({ slug: '1gb' }).first();
    const [dropletId] = await t.db('droplets').insert({ customer_id: 1, name: 'hm-1', region_id: (await t.db('servers').where({ id: host.id }).first()).region_id, size_id: size.id, image_id: 1, server_id: host.id });
    const before = (await scrape(host.slug)).hosts.get(host.name)!;
    const eventId = await insertEvent(t.db, { type: 'create', region_id: (await t.db('servers').where({ id: host.id }).first()).region_id, server_id: host.id, droplet_id: Number(dropletId) });
    await waitFor(async () => (await t.db('events').where({ id: eventId }).first()).status === 'done');
    // Someone scribbles on the row: the metrics keep the agent's own view.
    await t.db('servers').where({ id: host.id }).update({ memfree: 1, vmcount: 999 });
    const after = await waitFor(async () => {
      const h = (await scrape(host.slug)).hosts.get(host.name)!;
      return h.vmcount === before.vmcount + 1 ? h : undefined;
    });
    expect(after.memfree_mb).toBe(before.memfree_mb - size.memory);
    expect(after.diskfree_gb).toBe(before.diskfree_gb - size.disk);
    expect(after.last_report_ms).toBeGreaterThan(before.last_report_ms);
  });

  it('is scraped by Scheduler V2; the hosts of a killed worker go stale and are not chosen', async () => {
    const regions = fleet.hostMetrics.regions();
    v2 = createSchedulerV2({
      db: t.service('scheduler_v2'),
      metricsEndpoints: regions.map((name) => ({ name, url: hostMetricsUrl(base, name) })),
      maxStalenessMs: 2500,
      scrapeIntervalMs: 200,
    });
    const region = regions[0]!;
    const inRegion = rows.filter((r) => r.slug === region);
    const fresh = await v2.explain({ region, size: '512mb', hosts: true });
    expect(fresh.hosts_total).toBe(inRegion.length);
    expect(fresh.rejected['metrics-missing'] ?? 0).toBe(0);
    expect(fresh.rejected['metrics-stale'] ?? 0).toBe(0);
    expect(fresh.hosts_available).toBeGreaterThan(0);

    // kill -9 the worker that runs the region's first hosts: they stop reporting.
    const [first] = fleet.processes();
    process.kill(first!.pid, 'SIGKILL');
    const firstIds = new Set(rows.slice(0, first!.agents).map((r) => r.id));
    const deadHere = inRegion.filter((r) => firstIds.has(r.id));
    expect(deadHere.length).toBeGreaterThan(0);
    const stale = await waitFor(async () => {
      const e = await v2!.explain({ region, size: '512mb', hosts: true });
      return (e.rejected['metrics-stale'] ?? 0) === deadHere.length ? e : undefined;
    }, 15_000);
    const verdicts = new Map((stale.hosts ?? []).map((h) => [h.server_id, h]));
    for (const r of deadHere) {
      expect(verdicts.get(r.id)).toMatchObject({ passed: false, filter: 'metrics-stale' });
      expect(verdicts.get(r.id)!.message).toMatch(/metrics stale: last report \d+ s ago/);
    }
    for (const r of inRegion.filter((x) => !firstIds.has(x.id))) expect(verdicts.get(r.id)?.filter).not.toBe('metrics-stale');
    if (stale.chosen) expect(firstIds.has(stale.chosen.server_id)).toBe(false);
  }, 40_000);
});
