import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSchedulerV1, type SchedulerV1 } from '../../legacy/scheduler-v1/create-scheduler-v1.ts';
import { rankV1, type V1Server } from '../../legacy/scheduler-v1/rank.ts';
import { createSchedulerV2, type SchedulerV2 } from '../../scheduler/create-scheduler-v2.ts';
import { FILTERS } from '../../scheduler/filters.ts';
import { rankHosts } from '../../scheduler/rank.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { metricsForServer, startHostMetricsServer, type HostMetricsServer } from '../helpers/host-metrics.ts';
import { insertEvent } from '../helpers/seeded.ts';

/**
 * Shadow parity at the size of one region of the 15,000 demo: 1,500 equal
 * hypervisors. V1 places, the agents execute the creates (servers rows,
 * droplets, metrics all move), and only then does V2 judge — the order a
 * loaded demo produces. V2 must judge each decision with the host state as
 * it was when V1 ranked, not as V1's own placements have left it.
 */
describe('Scheduler V2 shadow parity on a 1,500-host region', () => {
  const HOSTS = 1500;
  const HOST = { region_id: 1, cpus: 48, memory: 393216, disk: 7680, vmcount: 0, memfree: 393216 - 2048, diskfree_actual: 7680 - 50, error_count: 0, state: '' };
  const SERVERS: V1Server[] = Array.from({ length: HOSTS }, (_, i) => ({ id: i + 1, name: `nyc1-hv${String(i + 1).padStart(4, '0')}`, ...HOST }));
  const SIZE = { id: 1, slug: '2gb', memory: 2048, vcpus: 2, disk: 40 };
  let t: TestDatabase;
  let nyc1: HostMetricsServer;
  let ams2: HostMetricsServer;
  /**
   * ams2: two hosts with as much free memory each, hv0001 in 2 droplets (1 GB each, the second run a
   * moment ago: its agent has not reported since), hv0002 in one of 2 GB. V1 reads 2 VMs on hv0001
   * and takes hv0002; the metrics alone would still say 1.
   */
  const AMS2 = { region_id: 2, cpus: 48, memory: 393216, disk: 7680, memfree: 393216 - 2048 - 2048, error_count: 0, state: '' };
  const AMS2_SERVERS: V1Server[] = [
    { id: HOSTS + 1, name: 'ams2-hv0001', ...AMS2, vmcount: 2, diskfree_actual: 7680 - 50 - 60 },
    { id: HOSTS + 2, name: 'ams2-hv0002', ...AMS2, vmcount: 1, diskfree_actual: 7680 - 50 - 40 },
  ];
  let v1: SchedulerV1;
  let shadow: SchedulerV2;
  let customer = 0;

  async function createRequest(regionId = 1): Promise<number> {
    const customerId = ++customer;
    const [dropletId] = await t.db('droplets').insert({ customer_id: customerId, name: 'x', region_id: regionId, size_id: SIZE.id, image_id: 1 });
    return insertEvent(t.db, { type: 'create', region_id: regionId, droplet_id: Number(dropletId), customer_id: customerId });
  }

  /** What the agents do with every placed create (dobe/completion.ts): event done, host row and droplet updated, metrics report the new host. */
  async function agentsExecute(): Promise<void> {
    const placed = (await t.db('events as e').join('servers as s', 's.id', 'e.server_id').where({ 'e.status': 'pending', 'e.type': 'create' }).select('e.id', 'e.droplet_id', 's.id as server_id', 's.name')) as Array<{
      id: number;
      droplet_id: number;
      server_id: number;
      name: string;
    }>;
    for (const p of placed) {
      await t.db.transaction(async (trx) => {
        await trx('events').where({ id: p.id }).update({ status: 'done', finished_at: trx.raw('CURRENT_TIMESTAMP(3)') });
        await trx('servers')
          .where({ id: p.server_id })
          .update({ memfree: trx.raw('memfree - ?', [SIZE.memory]), diskfree_actual: trx.raw('diskfree_actual - ?', [SIZE.disk]), vmcount: trx.raw('vmcount + 1') });
        await trx('droplets').where({ id: p.droplet_id }).update({ status: 'active' });
      });
      const row = (await t.db('servers').where({ id: p.server_id }).first()) as V1Server;
      // The agent's next metrics report, after the commit.
      nyc1.set(p.name, { memfree_mb: row.memfree, diskfree_gb: row.diskfree_actual, vmcount: row.vmcount, last_report_ms: Date.now() + 1 });
    }
  }

  /** V1's choices in its last pass, by host name. */
  const names = (decisions: Awaited<ReturnType<SchedulerV1['runOnce']>>) => decisions.map((d) => (d.decision.action === 'place' ? d.decision.server_name : d.decision.action));

  beforeAll(async () => {
    t = await createTestDatabase('scheduler_v2_shadow_scale');
    await t.db('regions').insert([
      { id: 1, slug: 'nyc1', name: 'New York 1' },
      { id: 2, slug: 'ams2', name: 'Amsterdam 2' },
    ]);
    await t.db('sizes').insert([
      { ...SIZE, price_monthly: 20 },
      { id: 2, slug: '1gb', memory: 1024, vcpus: 1, disk: 30, price_monthly: 10 },
    ]);
    await t.db('images').insert({ id: 1, slug: 'debian-8-x64', name: 'Debian', distribution: 'Debian', min_disk_size: 20 });
    await t.db('customers').insert(Array.from({ length: 40 }, (_, i) => ({ id: i + 1, email: `c${i + 1}@example.com`, name: `C${i + 1}`, api_token_sha256: String(i).padStart(64, '0') })));
    await t.db.batchInsert('servers', [...SERVERS, ...AMS2_SERVERS], 500);
    const [p, q] = AMS2_SERVERS.map((s) => s.id);
    await t.db('droplets').insert([
      { customer_id: 40, name: 'p1', region_id: 2, size_id: 2, image_id: 1, server_id: p, status: 'active' },
      { customer_id: 40, name: 'p2', region_id: 2, size_id: 2, image_id: 1, server_id: p, status: 'active' },
      { customer_id: 40, name: 'q1', region_id: 2, size_id: 1, image_id: 1, server_id: q, status: 'active' },
    ]);
    nyc1 = await startHostMetricsServer(SERVERS.map((s) => metricsForServer(s, 'nyc1')));
    // ams2-hv0001's last report predates its second droplet.
    ams2 = await startHostMetricsServer(AMS2_SERVERS.map((s) => (s.id === p ? { ...metricsForServer(s, 'ams2'), vmcount: 1, memfree_mb: s.memfree + 1024, diskfree_gb: s.diskfree_actual + 30 } : metricsForServer(s, 'ams2'))));
    v1 = createSchedulerV1({ db: t.service('scheduler_v1') });
    shadow = createSchedulerV2({
      db: t.service('scheduler_v2'),
      metricsEndpoints: [
        { name: 'nyc1', url: nyc1.url },
        { name: 'ams2', url: ams2.url },
      ],
      mode: 'shadow',
      replicaId: 'shadow-scale',
      scrapeIntervalMs: 1,
    });
    await shadow.shadowOnce();
  });

  afterAll(async () => {
    await v1?.close();
    await shadow?.close();
    await nyc1?.close();
    await ams2?.close();
    await t?.drop();
  });

  it("breaks ties among 1,500 equal hosts as V1 does (lowest id), so a tie alone never makes them differ", () => {
    const request = { customer_id: 1, region_id: 1, size: SIZE };
    const v1Choice = rankV1({ servers: SERVERS, request, busy: {}, user_droplets: {} }).decision;
    const candidates = SERVERS.map((s) => ({
      ...s,
      allocatable_memory: s.memory - 2048,
      allocatable_disk: s.disk - 50,
      busy: {},
      metrics_age_ms: 0,
    }));
    // Shuffled input: the order hosts arrive in must not matter either.
    const shuffled = [...candidates].reverse();
    const v2 = rankHosts(shuffled, request, { filters: FILTERS, policy: 'v1-compatible', overcommit: 4, maxStalenessMs: 10_000 });
    expect(v1Choice).toMatchObject({ action: 'place', server_id: 1 });
    expect(v2.ranked[0]!.host.id).toBe(1);
  });

  it('judged before the agents execute, V2 agrees with every placement', async () => {
    for (let i = 0; i < 10; i++) await createRequest();
    expect(names(await v1.runOnce())).toEqual(SERVERS.slice(0, 10).map((s) => s.name));
    expect(await shadow.shadowOnce()).toMatchObject({ judged: 10, agree: 10 });
    await agentsExecute();
  });

  it('judged after the agents have executed them, V2 still agrees: it rewinds V1 own placements and later ones', async () => {
    for (let i = 0; i < 10; i++) await createRequest();
    // hv0001–hv0010 hold one droplet each now: V1 takes the next ten equal hosts.
    expect(names(await v1.runOnce())).toEqual(SERVERS.slice(10, 20).map((s) => s.name));
    await agentsExecute();
    const stats = await shadow.shadowOnce();
    expect(stats.by_category).toEqual({});
    expect(stats).toMatchObject({ judged: 20, agree: 20, differ: 0 });
  });

  it('puts back what a destroy finished after V1 decided: the emptied host was not free when V1 ranked', async () => {
    await createRequest();
    expect(names(await v1.runOnce())).toEqual(['nyc1-hv0021']);
    await agentsExecute();
    // Then the droplet on hv0005 is destroyed: hv0005 is as empty as hv0021 and has the lower id.
    const droplet = (await t.db('droplets').where({ server_id: 5 }).first()) as { id: number };
    await insertEvent(t.db, { type: 'destroy', region_id: 1, server_id: 5, droplet_id: droplet.id, status: 'running' });
    await t.db.transaction(async (trx) => {
      await trx('events').where({ type: 'destroy', droplet_id: droplet.id }).update({ status: 'done', finished_at: trx.raw('CURRENT_TIMESTAMP(3)') });
      await trx('servers').where({ id: 5 }).update({ memfree: HOST.memfree, diskfree_actual: HOST.diskfree_actual, vmcount: 0 });
      await trx('droplets').where({ id: droplet.id }).update({ status: 'archived' });
    });
    nyc1.set('nyc1-hv0005', { memfree_mb: HOST.memfree, diskfree_gb: HOST.diskfree_actual, vmcount: 0, last_report_ms: Date.now() + 1 });
    const stats = await shadow.shadowOnce();
    expect(stats.by_category).toEqual({});
    expect(stats).toMatchObject({ judged: 21, agree: 21 });
  });

  it('still counts a real difference by category: the metrics say V1 host is erroring', async () => {
    await createRequest();
    // hv0005 is empty again: V1 takes it.
    expect(names(await v1.runOnce())).toEqual(['nyc1-hv0005']);
    await agentsExecute();
    nyc1.set('nyc1-hv0005', { error_count: 5 });
    const stats = await shadow.shadowOnce();
    nyc1.set('nyc1-hv0005', { error_count: 0 });
    expect(stats).toMatchObject({ judged: 22, agree: 21, differ: 1, by_category: { 'filtered-too-many-errors': 1 } });
  });

  it("breaks a tie on free memory by the ledger's VM count when the metrics have not caught up with a create", async () => {
    await createRequest(2);
    expect(names(await v1.runOnce())).toEqual(['ams2-hv0002']);
    // Reported just now (same numbers): on a loaded machine the file can outlast the 10 s staleness limit.
    for (const s of AMS2_SERVERS) ams2.set(s.name, { last_report_ms: Date.now() });
    const stats = await shadow.shadowOnce();
    expect(stats.by_category).toEqual({ 'filtered-too-many-errors': 1 });
    expect(stats).toMatchObject({ judged: 23, agree: 22 });
  });
});
