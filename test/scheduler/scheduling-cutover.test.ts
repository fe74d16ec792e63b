import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Knex } from 'knex';
import { HOST_RESERVED } from '../../domain/catalog.ts';
import { createSchedulerV1, type SchedulerV1 } from '../../legacy/scheduler-v1/create-scheduler-v1.ts';
import type { Routing } from '../../lib/cutover/types.ts';
import { checkInvariants } from '../../lib/invariants.ts';
import { createSchedulerV2, type SchedulerV2 } from '../../scheduler/create-scheduler-v2.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { metricsForServer, startHostMetricsServer, type HostMetricsServer } from '../helpers/host-metrics.ts';
import { insertEvent } from '../helpers/seeded.ts';

/** Writes the `scheduling` row as the cutover controller would (the controller itself is exercised in scheduling-handover.test.ts). */
async function setScheduling(db: Knex | Knex.Transaction, routing: Routing): Promise<void> {
  const row = { mode: routing.mode, percent: routing.percent, regions: routing.regions === null ? null : JSON.stringify(routing.regions) };
  await db('cutover_features')
    .insert({ feature: 'scheduling', ...row })
    .onConflict('feature')
    .merge({ ...row, version: db.raw('version + 1') });
}

const NYC1_ONLY: Routing = { mode: 'canary', percent: 100, regions: ['nyc1'] };
const LEGACY: Routing = { mode: 'legacy', percent: 0, regions: null };

/**
 * The `scheduling` cutover seen from both schedulers: V1 leaves the regions
 * that moved, V2 takes only those, and a switch that lands while either is
 * between deciding and committing is caught by the fence (a shared lock on
 * the cutover row read inside the placement's transaction).
 */
describe('scheduling cutover: V1 and V2 follow the feature state', () => {
  let t: TestDatabase;
  let metrics: HostMetricsServer;
  const open: Array<{ close(): Promise<void> }> = [];

  beforeAll(async () => {
    t = await createTestDatabase('scheduling_cutover');
    await t.db('regions').insert([
      { id: 1, slug: 'nyc1', name: 'New York 1' },
      { id: 2, slug: 'sfo1', name: 'San Francisco 1' },
    ]);
    await t.db('sizes').insert({ id: 1, slug: '2gb', memory: 2048, vcpus: 2, disk: 40, price_monthly: 20 });
    await t.db('images').insert({ id: 1, slug: 'debian-8-x64', name: 'Debian', distribution: 'Debian', min_disk_size: 20 });
    await t.db('customers').insert({ id: 1, email: 'a@example.com', name: 'A', api_token_sha256: 'a'.repeat(64) });
    const servers = [1, 2].flatMap((region) =>
      Array.from({ length: 4 }, (_, i) => ({
        id: region * 10 + i,
        name: `${region === 1 ? 'nyc1' : 'sfo1'}-hv${String(i + 1).padStart(4, '0')}`,
        region_id: region,
        cpus: 24,
        memory: 131072,
        disk: 1920,
        vmcount: 0,
        memfree: 131072 - HOST_RESERVED.memory,
        diskfree_actual: 1870,
        error_count: 0,
        state: '',
      })),
    );
    await t.db('servers').insert(servers);
    metrics = await startHostMetricsServer(servers.map((s) => metricsForServer(s, s.region_id === 1 ? 'nyc1' : 'sfo1')));
  });

  afterEach(async () => {
    for (const s of open.splice(0).reverse()) await s.close();
    await t.db('events').update({ status: 'done' }).whereIn('status', ['pending', 'running']);
  });

  afterAll(async () => {
    await metrics?.close();
    await t?.drop();
  });

  async function create(regionId: number): Promise<number> {
    const [dropletId] = await t.db('droplets').insert({ customer_id: 1, name: 'd', region_id: regionId, size_id: 1, image_id: 1 });
    return insertEvent(t.db, { type: 'create', region_id: regionId, droplet_id: Number(dropletId) });
  }

  const v1 = (): SchedulerV1 => {
    const s = createSchedulerV1({ db: t.service('scheduler_v1') });
    open.push(s);
    return s;
  };
  const v2 = (replicaId: string): SchedulerV2 => {
    const s = createSchedulerV2({ db: t.service('scheduler_v2'), metricsEndpoints: [metrics.url], followCutover: { intervalMs: 1 }, replicaId });
    open.push(s);
    return s;
  };
  const event = (id: number) => t.db('events').where({ id }).first();

  it('V1 skips the regions that moved and V2 takes only those; legacy and shadow leave V2 idle', async () => {
    await setScheduling(t.db, LEGACY);
    const scheduler2 = v2('v2-follow-a');
    const nyc = await create(1);
    const sfo = await create(2);
    expect(await scheduler2.placeOnce()).toEqual([]);
    await setScheduling(t.db, { mode: 'shadow', percent: 0, regions: null });
    expect(await scheduler2.placeOnce()).toEqual([]);

    await setScheduling(t.db, NYC1_ONLY);
    const scheduler1 = v1();
    const decided = await scheduler1.runOnce();
    expect(decided.map((d) => d.event_id)).toEqual([sfo]);
    expect((await event(sfo)).server_id).toBeGreaterThanOrEqual(20);
    expect((await event(nyc)).server_id).toBeNull();
    expect(await scheduler1.registry.getSingleMetricAsString('scheduler_v1_regions_moved')).toMatch(/scheduler_v1_regions_moved 1/);

    const placed = await scheduler2.placeOnce();
    expect(placed).toMatchObject([{ event_id: nyc, outcome: 'placed' }]);
    expect(scheduler2.cutoverRouting()).toEqual(NYC1_ONLY);
    const row = await event(nyc);
    expect(row).toMatchObject({ claimed_by: 'v2-follow-a' });
    expect(row.server_id).toBeLessThan(20);
    expect(await t.db('droplets').where({ id: row.droplet_id }).first()).toMatchObject({ server_id: row.server_id });

    // full: V1 does not even poll the queue.
    await setScheduling(t.db, { mode: 'full', percent: 100, regions: null });
    const later = await create(2);
    expect(await scheduler1.runOnce()).toEqual([]);
    expect((await event(later)).server_id).toBeNull();
    expect(await scheduler2.placeOnce()).toMatchObject([{ event_id: later, outcome: 'placed' }]);
  });

  it('V1 re-reads its region list inside the placement transaction when the cached one expires (V1 has one connection)', async () => {
    await setScheduling(t.db, NYC1_ONLY);
    const scheduler1 = v1();
    const id = await create(2);
    // Every clock read is a minute later than the last: the region cache is stale at each use.
    const real = Date.now.bind(Date);
    let jumps = 0;
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => real() + 61_000 * ++jumps);
    try {
      expect(await scheduler1.runOnce()).toMatchObject([{ event_id: id, decision: { action: 'place' } }]);
    } finally {
      spy.mockRestore();
    }
    expect((await event(id)).server_id).toBeGreaterThanOrEqual(20);
  }, 20_000);

  it('a switch that commits while V1 is between its poll and its placement: V1 hands the event over and V2 places it once', async () => {
    await setScheduling(t.db, LEGACY);
    const scheduler1 = v1();
    const id = await create(1);
    // The controller's change, held open: V1's poll still sees legacy, its placement must wait for the lock.
    const trx = await t.db.transaction();
    await setScheduling(trx, NYC1_ONLY);
    const pass = scheduler1.runOnce();
    await new Promise((r) => setTimeout(r, 500));
    await trx.commit();
    expect(await pass).toMatchObject([{ event_id: id, decision: { action: 'wait' } }]);
    expect((await event(id)).server_id).toBeNull();
    expect(await scheduler1.registry.getSingleMetricAsString('scheduler_v1_handed_over_total')).toMatch(/scheduler_v1_handed_over_total 1/);
    const scheduler2 = v2('v2-follow-b');
    expect(await scheduler2.placeOnce()).toMatchObject([{ event_id: id, outcome: 'placed' }]);
  });

  it('a rollback that commits while V2 holds claims: V2 hands them back at its commit and V1 places each once', async () => {
    await setScheduling(t.db, NYC1_ONLY);
    const ids = [await create(1), await create(1)];
    const scheduler2 = createSchedulerV2({
      db: t.service('scheduler_v2'),
      metricsEndpoints: [metrics.url],
      followCutover: { intervalMs: 1 },
      replicaId: 'v2-follow-c',
      faults: { pauseBeforeCommitMs: 800 },
    });
    open.push(scheduler2);
    const batch = scheduler2.placeOnce();
    await new Promise((r) => setTimeout(r, 300));
    await setScheduling(t.db, LEGACY);
    const out = await batch;
    expect(out.map((d) => d.outcome)).toEqual(['handed-back', 'handed-back']);
    for (const id of ids) expect((await event(id)).server_id).toBeNull();
    expect(await t.db('placement_decisions').whereIn('event_id', ids)).toEqual([]);
    const decided = await v1().runOnce();
    expect(decided.map((d) => [d.event_id, d.decision.action])).toEqual(ids.map((id) => [id, 'place']));
    for (const id of ids) expect((await event(id)).server_id).toBeLessThan(20);
    expect(await scheduler2.registry.getSingleMetricAsString('scheduler_v2_decisions_total')).toMatch(/outcome="handed-back"} 2/);
    const inv = await checkInvariants(t.db, { sinceEventId: 0, sinceDropletId: 0, hostReserved: HOST_RESERVED });
    expect(inv.overcommitted_hosts).toBe(0);
  });
});
