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
    expect(await shadow.shadowOnce()).toEqual({ judged: 3, agree: 3, differ: 0, by_category: {}, agree_by_category: {}, agreement_ratio: 1 });
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
      agree_by_category: {},
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

/**
 * V1 reads the hosts once per pass and places the pass's events one by one, so it ranks an event
 * with rows read before its placement. The rows below are what such a pass leaves, written by hand
 * so the interleaving is exact: a create on the best host finishes between V1's read and its
 * placement of the next event.
 */
describe('Scheduler V2 shadow mode: V1 placing with rows read earlier in its pass', () => {
  let t: TestDatabase;
  let nyc1: HostMetricsServer;
  let shadow: SchedulerV2;
  let binPack: SchedulerV2;
  const HOST = { region_id: 1, cpus: 24, memory: 131072, disk: 1920, vmcount: 10, diskfree_actual: 1500, error_count: 0, state: '' };
  const SERVERS = [
    { id: 1, name: 'nyc1-hv0001', ...HOST, memfree: 100000 },
    { id: 2, name: 'nyc1-hv0002', ...HOST, memfree: 90000 },
    { id: 3, name: 'nyc1-hv0003', ...HOST, memfree: 80000 },
  ];
  const at = (ms: number) => t.db.raw('FROM_UNIXTIME(? / 1000)', [ms]);
  let customer = 0;
  /** Each test's timeline lies after the previous one's, all in the past. */
  let clock = Date.now() - 120_000;
  const timeline = () => (clock += 20_000);

  /** The agents' latest reports are fresh (each test's changes are in the past, so already in them). */
  async function judge(replica: SchedulerV2) {
    for (const s of SERVERS) nyc1.set(s.name, { last_report_ms: Date.now() });
    return replica.shadowOnce();
  }

  /** A create event and its droplet as V1 leaves them: created at `createdMs`, placed at `placedMs` on `serverId`. */
  async function placed(serverId: number, createdMs: number, placedMs: number): Promise<number> {
    const customerId = ++customer;
    const [dropletId] = await t.db('droplets').insert({ customer_id: customerId, name: 'x', region_id: 1, size_id: 1, image_id: 1, server_id: serverId });
    const [id] = await t.db('events').insert({ type: 'create', region_id: 1, droplet_id: Number(dropletId), customer_id: customerId, server_id: serverId, status: 'pending', created_at: at(createdMs), available_at: at(placedMs) });
    return Number(id);
  }

  /** The agent finishes a create at `ms`: event done, host row and droplet updated, and its next report shows it. */
  async function finished(eventId: number, serverId: number, ms: number): Promise<void> {
    await t.db('events').where({ id: eventId }).update({ status: 'done', finished_at: at(ms) });
    await t.db('droplets').where({ id: (await t.db('events').where({ id: eventId }).first()).droplet_id }).update({ status: 'active' });
    await t.db('servers').where({ id: serverId }).update({ memfree: t.db.raw('memfree - 2048'), diskfree_actual: t.db.raw('diskfree_actual - 40'), vmcount: t.db.raw('vmcount + 1') });
    const row = (await t.db('servers').where({ id: serverId }).first()) as (typeof SERVERS)[number];
    nyc1.set(row.name, { memfree_mb: row.memfree, diskfree_gb: row.diskfree_actual, vmcount: row.vmcount });
  }

  beforeAll(async () => {
    t = await createTestDatabase('scheduler_v2_shadow_read');
    await t.db('regions').insert({ id: 1, slug: 'nyc1', name: 'New York 1' });
    await t.db('sizes').insert({ id: 1, slug: '2gb', memory: 2048, vcpus: 2, disk: 40, price_monthly: 20 });
    await t.db('images').insert({ id: 1, slug: 'debian-8-x64', name: 'Debian', distribution: 'Debian', min_disk_size: 20 });
    await t.db('customers').insert(Array.from({ length: 20 }, (_, i) => ({ id: i + 1, email: `c${i + 1}@example.com`, name: `C${i + 1}`, api_token_sha256: String(i).padStart(64, '0') })));
    await t.db('servers').insert(SERVERS);
    nyc1 = await startHostMetricsServer(SERVERS.map((s) => metricsForServer(s, 'nyc1')));
    const options = { db: t.service('scheduler_v2'), metricsEndpoints: [{ name: 'nyc1', url: nyc1.url }], mode: 'shadow' as const, scrapeIntervalMs: 1 };
    shadow = createSchedulerV2({ ...options, replicaId: 'shadow-read' });
    binPack = createSchedulerV2({ ...options, replicaId: 'shadow-read-binpack', policy: 'bin-pack' });
    await shadow.shadowOnce();
    await binPack.shadowOnce();
  });

  afterAll(async () => {
    await shadow?.close();
    await binPack?.close();
    await nyc1?.close();
    await t?.drop();
  });

  it('agrees when V1 read its rows while the best host was still busy, and says so', async () => {
    const now = timeline();
    // hv0001 is busy creating; K is created; V1 reads (hv0001 busy: hv0002 is its best); hv0001's create
    // finishes (hv0001 still has the most memory free); V1 places K on hv0002.
    const x = await placed(1, now - 4000, now - 3000);
    const k = await placed(2, now - 2000, now - 1000);
    await finished(x, 1, now - 1500);
    expect(await judge(shadow)).toEqual({ judged: 2, agree: 2, differ: 0, by_category: {}, agree_by_category: { 'earlier-read': 1 }, agreement_ratio: 1 });
    expect(await shadow.registry.metrics()).toContain('scheduler_v2_shadow_decisions_total{result="agree",category="earlier-read"} 1');
    // A policy that really orders hosts otherwise still differs, whenever V1 may have read: bin-pack takes hv0003.
    const other = await judge(binPack);
    expect(other).toMatchObject({ judged: 2, differ: 2, by_category: { 'ranked-lower': 2 }, agree_by_category: {} });
    await finished(k, 2, now - 500);
  });

  it('still differs when V1 cannot have read before the finish: its event did not exist yet', async () => {
    const now = timeline();
    const x = await placed(1, now - 4000, now - 3000);
    await finished(x, 1, now - 2000);
    // K was created after hv0001's create finished: V1 saw hv0001 free, with the most memory, and passed it over.
    const k = await placed(2, now - 1500, now - 1000);
    const stats = await judge(shadow);
    expect(stats).toMatchObject({ judged: 4, agree: 3, differ: 1, by_category: { 'ranked-lower': 1 }, agree_by_category: { 'earlier-read': 1 } });
    await finished(k, 2, now - 500);
  });

  it('still differs when V1 read after its previous pass, when the best host was free again', async () => {
    const now = timeline();
    const x = await placed(1, now - 5500, now - 5000);
    // K is created, then M; a slow pass that read while hv0001 was busy places M (not K) on hv0002: V2 agrees as of that read.
    const k = await placed(2, now - 4000, now - 1000);
    const m = await placed(2, now - 3900, now - 2000);
    await finished(x, 1, now - 3000);
    await finished(m, 2, now - 1800);
    // K, with the lower id, was not in that pass: V1 read for it after M's placement, when hv0001 was free.
    const stats = await judge(shadow);
    expect(stats).toMatchObject({ judged: 7, agree: 5, differ: 2, by_category: { 'ranked-lower': 2 }, agree_by_category: { 'earlier-read': 2 } });
    await finished(k, 2, now - 500);
  });

  it('still differs when V2 filters V1 host, whenever V1 read', async () => {
    const now = timeline();
    const x = await placed(1, now - 4000, now - 3000);
    const k = await placed(2, now - 2000, now - 1000);
    await finished(x, 1, now - 1500);
    nyc1.set('nyc1-hv0002', { error_count: 5 });
    const stats = await judge(shadow);
    nyc1.set('nyc1-hv0002', { error_count: 0 });
    expect(stats).toMatchObject({ judged: 9, agree: 6, differ: 3, by_category: { 'ranked-lower': 2, 'filtered-too-many-errors': 1 }, agree_by_category: { 'earlier-read': 2 } });
    await finished(k, 2, now - 500);
  });

  it('reads the changes back to the event creation, also those a previous shadow pass had seen finish', async () => {
    const now = timeline();
    const x = await placed(1, now - 5000, now - 4000);
    await finished(x, 1, now - 1500);
    // This pass judges X and sees it done: a later pass must still read it to rewind K's read.
    expect(await judge(shadow)).toMatchObject({ judged: 10, agree: 7 });
    // And a pass with nothing to judge: from it on, X is older than every event still open.
    expect(await judge(shadow)).toMatchObject({ judged: 10 });
    // hv0002 is the fullest now: V1 takes hv0003 while hv0001 is busy.
    await placed(3, now - 2000, now - 1000);
    expect(await judge(shadow)).toMatchObject({ judged: 11, agree: 8, differ: 3, agree_by_category: { 'earlier-read': 3 } });
  });
});
