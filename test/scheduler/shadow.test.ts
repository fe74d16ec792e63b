import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSchedulerV1, type SchedulerV1 } from '../../legacy/scheduler-v1/create-scheduler-v1.ts';
import { createSchedulerV2, type SchedulerV2 } from '../../scheduler/create-scheduler-v2.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { metricsForServer, startHostMetricsServer, type HostMetricsServer } from '../helpers/host-metrics.ts';
import { insertEvent } from '../helpers/seeded.ts';

/**
 * Shadow mode: V1 places, V2 only judges. The fleet's metrics mirror the
 * `servers` rows V1 reads, except where a test makes them disagree.
 */
describe('Scheduler V2 shadow mode', () => {
  let t: TestDatabase;
  let nyc1: HostMetricsServer;
  let ams2: HostMetricsServer;
  let v1: SchedulerV1;
  let shadow: SchedulerV2;
  let binPack: SchedulerV2;
  const HOST = { cpus: 24, memory: 131072, disk: 1920, vmcount: 10, diskfree_actual: 1500, error_count: 0, state: '' };
  const SERVERS = [
    { id: 1, name: 'nyc1-hv0001', region_id: 1, ...HOST, memfree: 90000, error_count: 5 },
    { id: 2, name: 'nyc1-hv0002', region_id: 1, ...HOST, memfree: 60000 },
    { id: 3, name: 'nyc1-hv0003', region_id: 1, ...HOST, memfree: 50000 },
    { id: 4, name: 'nyc1-hv0004', region_id: 1, ...HOST, memfree: 40000 },
    { id: 5, name: 'ams2-hv0001', region_id: 2, ...HOST, memfree: 1000 },
  ];

  async function createRequest(customerId: number, regionId = 1, sizeId = 1): Promise<number> {
    const [dropletId] = await t.db('droplets').insert({ customer_id: customerId, name: 'x', region_id: regionId, size_id: sizeId, image_id: 1 });
    return insertEvent(t.db, { type: 'create', region_id: regionId, droplet_id: Number(dropletId), customer_id: customerId });
  }

  /** What the agents would do: finish every placed create, so hosts are no longer busy. */
  async function agentsFinish(): Promise<void> {
    await t.db('events').where({ status: 'pending' }).whereNotNull('server_id').update({ status: 'done' });
  }

  beforeAll(async () => {
    t = await createTestDatabase('scheduler_v2_shadow');
    await t.db('regions').insert([
      { id: 1, slug: 'nyc1', name: 'New York 1' },
      { id: 2, slug: 'ams2', name: 'Amsterdam 2' },
    ]);
    await t.db('sizes').insert([
      { id: 1, slug: '2gb', memory: 2048, vcpus: 2, disk: 40, price_monthly: 20 },
      { id: 2, slug: '64gb', memory: 65536, vcpus: 20, disk: 640, price_monthly: 640 },
    ]);
    await t.db('images').insert({ id: 1, slug: 'debian-8-x64', name: 'Debian', distribution: 'Debian', min_disk_size: 20 });
    await t.db('customers').insert([
      { id: 1, email: 'a@example.com', name: 'A', api_token_sha256: 'a'.repeat(64) },
      { id: 2, email: 'b@example.com', name: 'B', api_token_sha256: 'b'.repeat(64) },
      { id: 3, email: 'c@example.com', name: 'C', api_token_sha256: 'c'.repeat(64) },
      { id: 4, email: 'd@example.com', name: 'D', api_token_sha256: 'd'.repeat(64) },
    ]);
    await t.db('servers').insert(SERVERS);
    nyc1 = await startHostMetricsServer(SERVERS.filter((s) => s.region_id === 1).map((s) => metricsForServer(s, 'nyc1')));
    ams2 = await startHostMetricsServer(SERVERS.filter((s) => s.region_id === 2).map((s) => metricsForServer(s, 'ams2')));
    v1 = createSchedulerV1({ db: t.service('scheduler_v1') });
    const options = {
      db: t.service('scheduler_v2'),
      metricsEndpoints: [
        { name: 'nyc1', url: nyc1.url },
        { name: 'ams2', url: ams2.url },
      ],
      mode: 'shadow' as const,
      // Every pass scrapes (passes here are milliseconds apart; a real loop scrapes on its own interval).
      scrapeIntervalMs: 1,
    };
    shadow = createSchedulerV2({ ...options, replicaId: 'shadow' });
    binPack = createSchedulerV2({ ...options, replicaId: 'shadow-binpack', policy: 'bin-pack' });
    // The first pass marks where the queue stands: only what V1 decides from now on is judged.
    await shadow.shadowOnce();
    await binPack.shadowOnce();
  });

  afterAll(async () => {
    await v1?.close();
    await shadow?.close();
    await binPack?.close();
    await nyc1?.close();
    await ams2?.close();
    await t?.drop();
  });

  it('agrees with V1 when it sees what V1 sees, judging each event as V1 saw it', async () => {
    await createRequest(1);
    await createRequest(2);
    await createRequest(1);
    // V1 places all three in one pass: hv0002, then hv0003 (hv0002 busy), then hv0004.
    expect((await v1.runOnce()).map((d) => (d.decision.action === 'place' ? d.decision.server_name : d.decision.action))).toEqual([
      'nyc1-hv0002',
      'nyc1-hv0003',
      'nyc1-hv0004',
    ]);
    expect(await shadow.shadowOnce()).toEqual({ judged: 3, agree: 3, differ: 0, by_category: {}, agreement_ratio: 1 });
    // Another policy disagrees where it ranks V1's host lower: bin-pack prefers the fullest host.
    const other = await binPack.shadowOnce();
    expect(other.judged).toBe(3);
    expect(other.by_category['ranked-lower']).toBeGreaterThan(0);
    await agentsFinish();
  });

  it('categorises differences by the V2 filter that rejected V1 host', async () => {
    // The fleet says hv0002 is erroring; its servers row (what V1 reads) does not.
    // Shadow judges with its view at the time it runs, so it runs right after each V1 pass, as its loop would.
    // New customers each time: a host already holding the customer's droplets would be V1's fallback, not its choice.
    nyc1.set('nyc1-hv0002', { error_count: 6 });
    await createRequest(3);
    await v1.runOnce();
    await shadow.shadowOnce();
    await agentsFinish();
    nyc1.set('nyc1-hv0002', { error_count: 0, last_report_ms: Date.now() - 60_000 });
    await createRequest(4);
    await v1.runOnce();
    const stats = await shadow.shadowOnce();
    await agentsFinish();
    nyc1.set('nyc1-hv0002', { last_report_ms: Date.now() });
    expect(stats).toEqual({
      judged: 5,
      agree: 3,
      differ: 2,
      by_category: { 'filtered-too-many-errors': 1, 'filtered-metrics-stale': 1 },
      agreement_ratio: 0.6,
    });
  });

  it('agrees when both fail an event, and counts V1 failures V2 would have waited on', async () => {
    await createRequest(1, 2, 2); // 64 GB in ams2: nothing fits, for either.
    await v1.runOnce();
    await shadow.shadowOnce();
    ams2.set('ams2-hv0001', { last_report_ms: Date.now() - 60_000 });
    await createRequest(1, 2, 2);
    await v1.runOnce();
    const stats = await shadow.shadowOnce();
    expect(stats).toMatchObject({ judged: 7, agree: 4, differ: 3 });
    // V2 cannot see the only host any more: it would wait for fresh metrics rather than fail the droplet.
    expect(stats.by_category['v1-failed']).toBe(1);
  });

  it('exports agreement as metrics and never writes', async () => {
    const text = await shadow.registry.metrics();
    expect(text).toContain('scheduler_v2_shadow_decisions_total{result="agree",category="none"} 4');
    expect(text).toContain('scheduler_v2_shadow_decisions_total{result="differ",category="filtered-too-many-errors"} 1');
    expect(text).toContain('scheduler_v2_shadow_decisions_total{result="differ",category="filtered-metrics-stale"} 1');
    expect(text).toContain('scheduler_v2_shadow_decisions_total{result="differ",category="v1-failed"} 1');
    expect(Number((await t.db('placement_decisions').count({ n: '*' }).first())!.n)).toBe(0);
    expect(Number((await t.db('events').whereNotNull('claimed_by').count({ n: '*' }).first())!.n)).toBe(0);
    expect(await t.db('servers').pluck('generation')).toEqual([0, 0, 0, 0, 0]);
    expect(shadow.shadowStats().agreement_ratio).toBeCloseTo(4 / 7);
  });
});
