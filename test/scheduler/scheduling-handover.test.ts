import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFleet, type Fleet } from '../../dobe/fleet.ts';
import { addHostMetricsRoutes, hostMetricsUrl } from '../../dobe/host-metrics.ts';
import { HOST_RESERVED } from '../../domain/catalog.ts';
import { createSchedulerV1, type SchedulerV1 } from '../../legacy/scheduler-v1/create-scheduler-v1.ts';
import { checkInvariants } from '../../lib/invariants.ts';
import { createHttpService, type HttpService } from '../../lib/http/service-server.ts';
import { createRouter } from '../../lib/http/router.ts';
import { silentLogger } from '../../lib/logger.ts';
import { createCutoverAdmin, type CutoverAdmin } from '../../proxy/cutover/admin.ts';
import { validatePlan } from '../../proxy/cutover/plan.ts';
import { createSchedulerV2, type SchedulerV2 } from '../../scheduler/create-scheduler-v2.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';
import { GOD_QUERY_MODE } from '../../legacy/dobe/god-query-mode.ts';

const HOSTS = 24;
const TOKEN = 'handover-test-token-0123456789';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The whole hand-over on a real MariaDB with the real fleet: creates keep
 * arriving in two regions while `scheduling` goes legacy → shadow → nyc1 →
 * every region and is rolled back to nyc1, then to legacy. Every event is
 * placed once, by the scheduler that owned its region at that moment (as the
 * cutover history orders it), executed once, and no host is over-committed.
 */
describe('scheduling hand-over between V1 and V2 under traffic', () => {
  let t: TestDatabase;
  let fleet: Fleet;
  let fleetHttp: HttpService;
  let v1: SchedulerV1;
  const v2: SchedulerV2[] = [];
  let admin: CutoverAdmin;
  let base: string;

  beforeAll(async () => {
    t = await createTestDatabase('scheduling_handover');
    await seedWorld(t.db, { hypervisors: HOSTS, regions: 2 });
    const ids = ((await t.db('servers').select('id')) as Array<{ id: number }>).map((r) => r.id);
    fleet = createFleet({ pollingMode: GOD_QUERY_MODE, db: t.service('dobe'), serverIds: ids, pollIntervalMs: { min: 100, max: 200 }, workMs: 1 });
    await fleet.start();
    const router = createRouter();
    addHostMetricsRoutes(router, fleet.hostMetrics);
    fleetHttp = createHttpService({ name: 'fleet', router, registry: fleet.registry, logger: silentLogger(), port: 0 });
    const fleetUrl = (await fleetHttp.start()).url;
    v1 = createSchedulerV1({ db: t.service('scheduler_v1'), pollIntervalMs: 100 });
    await v1.start();
    const urls: string[] = [];
    for (const name of ['v2-a', 'v2-b']) {
      const replica = createSchedulerV2({
        db: t.service('scheduler_v2'),
        metricsEndpoints: fleet.hostMetrics.regions().map((region) => ({ name: region, url: hostMetricsUrl(fleetUrl, region) })),
        followCutover: { intervalMs: 100 },
        replicaId: name,
        pollIntervalMs: 50,
        heartbeatMs: 300,
        port: 0,
      });
      v2.push(replica);
      urls.push((await replica.start()).url!);
    }
    const plan = validatePlan({
      version: 1,
      features: {
        scheduling: {
          steps: [
            { name: 'shadow', mode: 'shadow', soak_seconds: 0, gates: [] },
            { name: 'nyc1', mode: 'canary', regions: ['nyc1'], soak_seconds: 0, gates: [] },
            { name: 'all-regions', mode: 'full', soak_seconds: 0, gates: [] },
          ],
        },
      },
    });
    admin = createCutoverAdmin({ db: t.service('proxy'), tokens: { test: TOKEN }, services: { scheduler: urls }, plan, watch: false, port: 0, logger: silentLogger() });
    base = (await admin.start()).url;
  }, 90_000);

  afterAll(async () => {
    await admin?.close();
    for (const r of v2) await r.close();
    await v1?.close();
    await fleetHttp?.close();
    await fleet?.close();
    await t?.drop();
  });

  it('places every event created during switches in both directions exactly once, by the owner of its region at that moment', async () => {
    const regions = (await t.db('regions').orderBy('id').select('id', 'slug')) as Array<{ id: number; slug: string }>;
    const nyc1 = regions.find((r) => r.slug === 'nyc1')!.id;
    const sizes = (await t.db('sizes').whereIn('slug', ['512mb', '1gb']).select('id')) as Array<{ id: number }>;
    const customers = (await t.db('customers').limit(5).select('id')) as Array<{ id: number }>;
    const sinceEvent = Number(((await t.db('events').max('id as m')) as Array<{ m: number }>)[0]!.m ?? 0);
    const sinceDroplet = Number(((await t.db('droplets').max('id as m')) as Array<{ m: number }>)[0]!.m ?? 0);

    // Creates as Cloud writes them (droplet and event in one transaction), alternating regions, every 30 ms.
    let stop = false;
    let created = 0;
    const generator = (async () => {
      while (!stop) {
        const n = created++;
        const region = regions[n % regions.length]!.id;
        await t.db.transaction(async (trx) => {
          const [dropletId] = await trx('droplets').insert({ customer_id: customers[n % customers.length]!.id, name: `ho-${n}`, region_id: region, size_id: sizes[n % sizes.length]!.id, image_id: 1 });
          await trx('events').insert({ type: 'create', status: 'pending', region_id: region, droplet_id: Number(dropletId) });
        });
        await sleep(30);
      }
    })();
    const api = async (method: 'GET' | 'POST', path: string, body?: object) => {
      const res = await fetch(`${base}/cutover/${path}`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      expect(res.status).toBe(200);
      return res.json();
    };
    try {
      await sleep(1000);
      await api('POST', 'scheduling/advance'); // shadow: V1 places, V2 judges
      // The status shows V2's shadow agreement once V1 has placed something (seconds on a busy machine).
      const status = await waitFor(async () => {
        const st = await api('GET', 'status');
        return st.shadow?.scheduling?.judged > 0 ? st : undefined;
      }, 30_000, 250);
      expect(status.shadow.scheduling).toMatchObject({ service: 'scheduler', instances: 2 });
      expect(status.shadow.scheduling.agree + status.shadow.scheduling.differ).toBe(status.shadow.scheduling.judged);
      await api('POST', 'scheduling/advance'); // nyc1 → V2
      await sleep(2000);
      await api('POST', 'scheduling/advance'); // every region → V2
      await sleep(2000);
      await api('POST', 'scheduling/rollback', { to: 'previous' }); // sfo1 back to V1
      await sleep(2000);
      await api('POST', 'scheduling/rollback', { to: 'legacy' }); // nyc1 back to V1
      await sleep(1500);
    } finally {
      stop = true;
      await generator;
    }
    expect(created).toBeGreaterThan(20);

    // Every create of the run is decided and, when placed, executed.
    await waitFor(async () => {
      const [[row]] = (await t.db.raw("SELECT COUNT(*) AS n FROM events WHERE id > ? AND status IN ('pending', 'running')", [sinceEvent])) as [[{ n: number }]];
      return Number(row.n) === 0;
    }, 60_000, 250);
    const inv = await checkInvariants(t.db, { sinceEventId: sinceEvent, sinceDropletId: sinceDroplet, hostReserved: HOST_RESERVED });
    expect(inv).toEqual({ lost_events: 0, duplicate_executions: 0, overcommitted_hosts: 0, droplets_without_event: 0 });
    const [events] = (await t.db.raw(
      `SELECT e.id, e.region_id, e.status, e.server_id, d.server_id AS droplet_server, UNIX_TIMESTAMP(e.available_at) * 1000 AS placed_ms,
              (SELECT COUNT(*) FROM event_executions x WHERE x.event_id = e.id) AS executions,
              (SELECT COUNT(*) FROM placement_decisions p WHERE p.event_id = e.id AND p.outcome = 'placed') AS v2_placements
         FROM events e JOIN droplets d ON d.id = e.droplet_id WHERE e.id > ? AND e.type = 'create' ORDER BY e.id`,
      [sinceEvent],
    )) as [Array<{ id: number; region_id: number; status: string; server_id: number | null; droplet_server: number | null; placed_ms: string | null; executions: number; v2_placements: number }>];
    expect(events.length).toBe(created);
    for (const e of events) {
      if (e.status === 'error') {
        expect(e.server_id).toBeNull();
        continue;
      }
      expect(e.status).toBe('done');
      expect(e.server_id).not.toBeNull();
      expect(e.droplet_server).toBe(e.server_id);
      expect(Number(e.executions)).toBe(1);
      expect(Number(e.v2_placements)).toBeLessThanOrEqual(1);
    }

    // Who owned each region when: the cutover history, on the database clock.
    const [changes] = (await t.db.raw(
      "SELECT to_step, UNIX_TIMESTAMP(at) * 1000 AS at_ms FROM cutover_history WHERE feature = 'scheduling' AND action IN ('advance', 'rollback') ORDER BY id",
    )) as [Array<{ to_step: number; at_ms: string }>];
    expect(changes.map((c) => c.to_step)).toEqual([1, 2, 3, 2, 0]);
    const movedAt = (step: number, regionId: number) => step === 3 || (step === 2 && regionId === nyc1);
    const ownerAt = (ms: number, regionId: number): 'v1' | 'v2' | 'either' => {
      let step = 0;
      for (const c of changes) {
        const at = Number(c.at_ms);
        // A placement stamped in the same millisecond as a switch may be on either side of it.
        if (Math.abs(ms - at) < 1 && movedAt(step, regionId) !== movedAt(c.to_step, regionId)) return 'either';
        if (at <= ms) step = c.to_step;
      }
      return movedAt(step, regionId) ? 'v2' : 'v1';
    };
    const placedBy = { v1: new Map<number, number>(), v2: new Map<number, number>() };
    const lastChange = Number(changes.at(-1)!.at_ms);
    let v1AfterHandBack = 0;
    for (const e of events) {
      if (e.server_id === null) continue;
      const by = Number(e.v2_placements) === 1 ? 'v2' : 'v1';
      const owner = ownerAt(Number(e.placed_ms), e.region_id);
      if (owner !== 'either') expect({ event: e.id, region: e.region_id, by }).toEqual({ event: e.id, region: e.region_id, by: owner });
      placedBy[by].set(e.region_id, (placedBy[by].get(e.region_id) ?? 0) + 1);
      if (by === 'v1' && e.region_id === nyc1 && Number(e.placed_ms) > lastChange) v1AfterHandBack++;
    }
    // Both schedulers placed in both regions, and V1 took nyc1 back.
    for (const r of regions) {
      expect(placedBy.v1.get(r.id) ?? 0).toBeGreaterThan(0);
      expect(placedBy.v2.get(r.id) ?? 0).toBeGreaterThan(0);
    }
    expect(v1AfterHandBack).toBeGreaterThan(0);
  }, 120_000);
});
