import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HOST_RESERVED } from '../../domain/catalog.ts';
import { checkInvariants } from '../../lib/invariants.ts';
import { createSchedulerV2, type SchedulerV2, type SchedulerV2Options } from '../../scheduler/create-scheduler-v2.ts';
import { FILTER_IDS } from '../../scheduler/filters.ts';
import { createMembership } from '../../scheduler/membership.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { metricsForServer, startHostMetricsServer, type HostMetricsServer } from '../helpers/host-metrics.ts';
import { insertEvent, waitFor } from '../helpers/seeded.ts';

/**
 * Replicas racing for the same hosts. The capacity ledger is what the CAS
 * re-checks, so a host's room is set by its total memory and the droplets
 * already on it, whatever its metrics claim.
 */
describe('Scheduler V2: concurrent replicas', () => {
  let t: TestDatabase;
  let metrics: HostMetricsServer;
  const replicas: SchedulerV2[] = [];

  function replica(over: Partial<SchedulerV2Options>): SchedulerV2 {
    const r = createSchedulerV2({
      db: t.service('scheduler_v2'),
      metricsEndpoints: [{ name: 'nyc1', url: metrics.url }],
      scrapeIntervalMs: 50,
      ...over,
    });
    replicas.push(r);
    return r;
  }

  async function createRequests(n: number): Promise<number[]> {
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      const [dropletId] = await t.db('droplets').insert({ customer_id: 1 + (i % 20), name: `d${i}`, region_id: 1, size_id: 1, image_id: 1 });
      ids.push(await insertEvent(t.db, { type: 'create', region_id: 1, droplet_id: Number(dropletId), customer_id: 1 + (i % 20) }));
    }
    return ids;
  }

  /** Replaces the hosts: `room` 2 GB slots each (allocatable memory), metrics claiming far more. */
  async function hosts(list: Array<{ id: number; room: number; used?: number }>): Promise<void> {
    await t.db('events').whereIn('status', ['pending', 'running']).update({ status: 'done' });
    await t.db('droplets').update({ status: 'archived' });
    metrics.hosts.clear();
    for (const h of list) {
      const row = {
        id: h.id,
        name: `nyc1-hv${String(h.id).padStart(4, '0')}`,
        region_id: 1,
        cpus: 24,
        memory: HOST_RESERVED.memory + 2048 * (h.room + (h.used ?? 0)),
        disk: 1920,
        vmcount: h.used ?? 0,
        memfree: 2048 * h.room,
        diskfree_actual: 1500,
        error_count: 0,
        state: '',
      };
      await t.db('servers').insert(row).onConflict('id').merge();
      for (let i = 0; i < (h.used ?? 0); i++) {
        await t.db('droplets').insert({ customer_id: 99, name: 'tenant', region_id: 1, size_id: 1, image_id: 1, server_id: h.id, status: 'active' });
      }
      metrics.hosts.set(row.name, metricsForServer(row, 'nyc1'));
    }
    await t.db('servers').whereNotIn('id', list.map((h) => h.id)).update({ region_id: 2 });
  }

  beforeAll(async () => {
    t = await createTestDatabase('scheduler_v2_race');
    await t.db('regions').insert([
      { id: 1, slug: 'nyc1', name: 'New York 1' },
      { id: 2, slug: 'gone', name: 'Decommissioned' },
    ]);
    await t.db('sizes').insert({ id: 1, slug: '2gb', memory: 2048, vcpus: 2, disk: 40, price_monthly: 20 });
    await t.db('images').insert({ id: 1, slug: 'debian-8-x64', name: 'Debian', distribution: 'Debian', min_disk_size: 20 });
    await t.db('customers').insert(Array.from({ length: 99 }, (_, i) => ({ id: i + 1, email: `c${i + 1}@example.com`, name: `C${i + 1}`, api_token_sha256: String(i + 1).padStart(64, '0') })));
    metrics = await startHostMetricsServer();
  });

  beforeEach(async () => {
    while (replicas.length) await replicas.pop()!.close();
  });

  afterAll(async () => {
    for (const r of replicas) await r.close();
    await metrics?.close();
    await t?.drop();
  });

  it('two replicas racing for the last slot of a host: exactly one wins, the other falls back to the next-ranked host', async () => {
    // hv0001 has one 2 GB slot left (bin-pack ranks it first: it is the fullest); hv0002 has plenty.
    await hosts([
      { id: 1, room: 1, used: 1 },
      { id: 2, room: 50 },
    ]);
    const [e1, e2] = await createRequests(2);
    // Both rank before either commits: the window a real race needs, made wide.
    const options = { policy: 'bin-pack' as const, batchSize: 1, faults: { pauseBeforeCommitMs: 300 } };
    const r1 = replica({ ...options, replicaId: 'racer-1' });
    const r2 = replica({ ...options, replicaId: 'racer-2' });
    const [d1, d2] = await Promise.all([r1.placeOnce(), r2.placeOnce()]);
    const all = [...d1!, ...d2!];
    expect(all.map((d) => d.event_id).sort()).toEqual([e1, e2].sort());
    const winner = all.find((d) => d.server_id === 1)!;
    const loser = all.find((d) => d.server_id === 2)!;
    expect(winner).toMatchObject({ outcome: 'placed', server_name: 'nyc1-hv0001', attempts: 1, conflicts: [] });
    expect(loser).toMatchObject({ outcome: 'placed', server_name: 'nyc1-hv0002', attempts: 2, conflicts: [{ host: 'nyc1-hv0001', kind: 'generation' }] });
    expect(loser.summary).toMatch(/^placed on nyc1-hv0002 \(bin-pack score [\d.]+\): 1\/2 hosts available; rejected: 1 not enough memory\. Attempts 2, conflicts 1 \(nyc1-hv0001: generation\)\.$/);

    expect(await t.db('servers').whereIn('id', [1, 2]).orderBy('id').pluck('generation')).toEqual([1, 1]);
    const stored = await t.db('placement_decisions').whereIn('event_id', [e1, e2]).orderBy('event_id').select('event_id', 'server_id', 'attempts', 'conflicts');
    expect(stored).toHaveLength(2);
    expect(stored.find((s) => s.event_id === loser.event_id)).toMatchObject({ server_id: 2, attempts: 2, conflicts: 1 });
    const loserReplica = d1!.includes(loser) ? r1 : r2;
    expect(await loserReplica.registry.metrics()).toContain('scheduler_v2_conflicts_total{kind="generation"} 1');
    expect((await checkInvariants(t.db, { hostReserved: HOST_RESERVED })).overcommitted_hosts).toBe(0);
  });

  it('live replicas split the regions by heartbeat; a replica that leaves or falls silent hands its share over', async () => {
    const options = { heartbeatMs: 100, timeoutMs: 500 };
    const a = createMembership(t.db, 'member-a', 'active', options);
    const b = createMembership(t.db, 'member-b', 'active', options);
    const watcher = createMembership(t.db, 'member-shadow', 'shadow', options);
    await a.beat(true);
    await b.beat(true);
    await watcher.beat(true);
    await a.beat(true);
    // Shadow replicas place nothing: they take no share.
    expect(a.members()).toEqual(['member-a', 'member-b']);
    expect(a.preferred([3, 1, 2, 4, 5])).toEqual([1, 3, 5]);
    expect(b.preferred([1, 2, 3, 4, 5])).toEqual([2, 4]);
    expect(watcher.preferred([1, 2, 3])).toEqual([1, 2, 3]);
    await a.beat(true);
    expect(await t.db('scheduler_replicas').where({ replica: 'member-a' }).first()).toMatchObject({ mode: 'active', preferred_regions: '1,3,5' });

    await b.leave();
    await a.beat(true);
    expect(a.preferred([1, 2, 3, 4, 5])).toEqual([1, 2, 3, 4, 5]);

    await b.beat(true);
    await a.beat(true);
    expect(a.members()).toEqual(['member-a', 'member-b']);
    await new Promise((r) => setTimeout(r, 600)); // b falls silent (killed)
    await a.beat(true);
    expect(a.members()).toEqual(['member-a']);
    await a.leave();
    await b.leave();
    await watcher.leave();
  });

  // Each resource alone: a host whose memory (or disk) another path filled while V2's view still shows room.
  it.each([
    { resource: 'memory', room: 4, fillSize: 1, left: 1 },
    // 1920 GB - 50 reserved - 3 × 600 = 70 GB: room for one 40 GB disk, while memory has room for 20 droplets.
    { resource: 'disk', room: 20, fillSize: 2, left: 1 },
  ])('a stale view (scraped metrics and the cached ledger still showing room) cannot over-commit $resource: the commit re-checks the ledger in MySQL', async ({ room, fillSize, left }) => {
    await hosts([{ id: 1, room }]);
    await t.db('sizes').insert({ id: 2, slug: 'disk-hog', memory: 512, vcpus: 1, disk: 600, price_monthly: 10 }).onConflict('id').ignore();
    // Without the busy rules every request may go to the same host in one round: only the commit's re-check stands in the way.
    const filters = FILTER_IDS.filter((f) => f !== 'busy-create' && f !== 'busy-restore');
    const r = replica({ replicaId: 'stale-view', filters, batchSize: 10 });
    // Loads the inventory and ledger (nothing to claim yet): from here on the replica's view is what it cached.
    expect(await r.placeOnce()).toEqual([]);

    // Another path (V1, an import, an operator) fills the host behind V2's back: the rows in MySQL change, the
    // generation does not (only V2 moves it), and the metrics endpoint keeps reporting the old free memory and disk.
    await t.db('droplets').insert([1, 2, 3].map(() => ({ customer_id: 99, name: 'elsewhere', region_id: 1, image_id: 1, status: 'active', size_id: fillSize, server_id: 1 })));

    // Three 2 GB requests: V2's stale view has room for all of them.
    const events = await createRequests(3);
    for (let pass = 0; pass < 4; pass++) await r.placeOnce();

    const [host] = await t.db('servers as s')
      .join('droplets as d', 'd.server_id', 's.id')
      .join('sizes as z', 'z.id', 'd.size_id')
      .where('s.id', 1)
      .whereNotIn('d.status', ['archived', 'error'])
      .groupBy('s.id', 's.memory', 's.disk')
      .select('s.memory', 's.disk', t.db.raw('SUM(z.memory) AS used_memory'), t.db.raw('SUM(z.disk) AS used_disk'));
    expect(Number(host.used_memory), 'memory committed on the host').toBeLessThanOrEqual(host.memory - HOST_RESERVED.memory);
    expect(Number(host.used_disk), 'disk committed on the host').toBeLessThanOrEqual(host.disk - HOST_RESERVED.disk);
    expect((await checkInvariants(t.db, { hostReserved: HOST_RESERVED })).overcommitted_hosts).toBe(0);
    // Exactly the room MySQL had.
    expect(Number((await t.db('events').whereIn('id', events).whereNotNull('server_id').count({ n: '*' }).first())!.n)).toBe(left);
    // The refusal was the ledger's (capacity), not a generation that moved.
    expect(await r.registry.metrics()).toMatch(/scheduler_v2_conflicts_total\{kind="capacity"\} [1-9]/);
    expect(await r.registry.metrics()).toContain('scheduler_v2_conflicts_total{kind="generation"} 0');
  });

  it('an event placed elsewhere while its replica ranked is reported lost; the rest of the round still commits', async () => {
    await hosts([
      { id: 1, room: 10 },
      { id: 2, room: 10 },
    ]);
    const filters = FILTER_IDS.filter((f) => f !== 'busy-create' && f !== 'busy-restore');
    const r = replica({ replicaId: 'slow-commit', filters, batchSize: 10, faults: { pauseBeforeCommitMs: 400 } });
    const [taken, ...rest] = await createRequests(3);
    const round = r.placeOnce();
    // Claimed and being ranked: another path (V1 here) places the first event directly meanwhile.
    await waitFor(async () => Number((await t.db('events').whereIn('id', [taken, ...rest]).where({ claimed_by: 'slow-commit' }).count({ n: '*' }).first())!.n) === 3, 10_000, 10);
    await t.db.transaction(async (trx) => {
      await trx('events').where({ id: taken }).update({ server_id: 2, available_at: trx.raw('CURRENT_TIMESTAMP(3)') });
      const { droplet_id } = (await trx('events').where({ id: taken }).first('droplet_id')) as { droplet_id: number };
      await trx('droplets').where({ id: droplet_id }).update({ server_id: 2 });
    });
    const decisions = await round;
    expect(decisions.find((d) => d.event_id === taken)).toMatchObject({ outcome: 'claim-lost' });
    expect(decisions.filter((d) => rest.includes(d.event_id)).map((d) => d.outcome)).toEqual(['placed', 'placed']);
    expect(await t.db('events').where({ id: taken }).first('server_id')).toEqual({ server_id: 2 });
    expect(await t.db('placement_decisions').where({ event_id: taken, outcome: 'placed' })).toEqual([]);
    const placed = (await t.db('events as e').join('droplets as d', 'd.id', 'e.droplet_id').whereIn('e.id', rest).select('e.server_id', 'd.server_id as droplet_server')) as Array<{ server_id: number; droplet_server: number }>;
    expect(placed.every((p) => p.server_id !== null && p.droplet_server === p.server_id)).toBe(true);
    expect(await t.db('placement_decisions').whereIn('event_id', rest).where({ outcome: 'placed', replica: 'slow-commit' })).toHaveLength(2);
  });

  it('three replicas, many events, little room: never over-commits, places each event once, fails the rest', async () => {
    await hosts([
      { id: 1, room: 5 },
      { id: 2, room: 5, used: 3 },
      { id: 3, room: 4 },
      { id: 4, room: 6, used: 1 },
    ]);
    const room = 5 + 5 + 4 + 6;
    const events = await createRequests(36);
    // Without V1's busy rules a host takes many creates at once: only the ledger CAS stands between replicas and over-commit.
    const filters = FILTER_IDS.filter((f) => f !== 'busy-create' && f !== 'busy-restore');
    for (const policy of ['bin-pack', 'spread', 'v1-compatible'] as const) {
      // helpAfterMs 1: every replica claims from the one region at once, so they do race for its hosts.
      const r = replica({ policy, filters, batchSize: 4, pollIntervalMs: 10, helpAfterMs: 1, faults: { pauseBeforeCommitMs: 5 } });
      await r.start();
    }
    await waitFor(async () => {
      const open = await t.db('events').whereIn('id', events).where('status', 'pending').whereNull('server_id').count({ n: '*' }).first();
      return Number(open!.n) === 0;
    }, 30_000);
    const placed = await t.db('events').whereIn('id', events).whereNotNull('server_id').count({ n: '*' }).first();
    const failed = await t.db('events').whereIn('id', events).where('status', 'error').count({ n: '*' }).first();
    expect(Number(placed!.n)).toBe(room);
    expect(Number(failed!.n)).toBe(36 - room);
    expect((await checkInvariants(t.db, { hostReserved: HOST_RESERVED })).overcommitted_hosts).toBe(0);
    const perEvent = await t.db('placement_decisions').whereIn('event_id', events).where('outcome', 'placed').groupBy('event_id').select('event_id', t.db.raw('COUNT(*) AS n'));
    expect(perEvent).toHaveLength(room);
    expect(perEvent.every((r) => Number(r.n) === 1)).toBe(true);
    // The droplet is where its event says.
    const mismatched = await t.db('events as e').join('droplets as d', 'd.id', 'e.droplet_id').whereIn('e.id', events).whereRaw('NOT (d.server_id <=> e.server_id)').count({ n: '*' }).first();
    expect(Number(mismatched!.n)).toBe(0);
    const conflicts = (await Promise.all(replicas.map((r) => r.registry.getSingleMetric('scheduler_v2_conflicts_total')!.get()))).flatMap((m) => m.values).reduce((s, v) => s + v.value, 0);
    expect(conflicts).toBeGreaterThan(0);
  });
});
