import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { claimAndLoad, claimEvents, loadUserDroplets, releaseEvents } from '../../scheduler/claims.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { insertEvent } from '../helpers/seeded.ts';

/** Scheduler V2's leases on create events (scheduler/claims.ts), on the scheduler's own user: which rows a claim takes, for how long, and what it reads. */
describe('Scheduler V2 claims', () => {
  let t: TestDatabase;
  let db: TestDatabase['db'];

  beforeAll(async () => {
    t = await createTestDatabase('scheduler_claims');
    await t.db('regions').insert([
      { id: 1, slug: 'nyc1', name: 'New York 1' },
      { id: 2, slug: 'ams2', name: 'Amsterdam 2' },
    ]);
    await t.db('sizes').insert({ id: 1, slug: '2gb', memory: 2048, vcpus: 2, disk: 40, price_monthly: 20 });
    await t.db('images').insert({ id: 1, slug: 'debian-8-x64', name: 'Debian', distribution: 'Debian', min_disk_size: 20 });
    await t.db('customers').insert([1, 2, 3].map((id) => ({ id, email: `c${id}@example.com`, name: `C${id}`, api_token_sha256: String(id).padStart(64, '0') })));
    await t.db('servers').insert([1, 2, 3].map((id) => ({ id, name: `hv${id}`, region_id: id === 3 ? 2 : 1, cpus: 24, memory: 65536, disk: 1920, memfree: 65536, diskfree_actual: 1920 })));
    const { createKnex } = await import('../../lib/db/knex.ts');
    db = createKnex(t.service('scheduler_v2'), { poolMax: 3 });
  });
  afterAll(async () => {
    await db?.destroy();
    await t?.drop();
  });
  beforeEach(async () => {
    await t.db('events').update({ status: 'done' });
  });

  async function request(region = 1, over: { customer?: number; created_at?: string } = {}): Promise<{ event: number; droplet: number }> {
    const [droplet] = await t.db('droplets').insert({ customer_id: over.customer ?? 1, name: 'd', region_id: region, size_id: 1, image_id: 1 });
    const event = await insertEvent(t.db, { type: 'create', region_id: region, droplet_id: Number(droplet), customer_id: over.customer ?? 1 });
    if (over.created_at) await t.db('events').where({ id: event }).update({ created_at: over.created_at });
    return { event, droplet: Number(droplet) };
  }
  const lease = async (id: number) =>
    (await t.db('events').where({ id }).first(t.db.raw('claimed_by'), t.db.raw('TIMESTAMPDIFF(MICROSECOND, CURRENT_TIMESTAMP(3), claim_expires_at) / 1000 AS ms'))) as { claimed_by: string | null; ms: number | null };

  it('leases the oldest unplaced pending creates up to the limit, for leaseMs on the database clock', async () => {
    const events = [await request(), await request(), await request()].map((r) => r.event);
    const other = await insertEvent(t.db, { type: 'reboot', region_id: 1 });
    const placed = await insertEvent(t.db, { type: 'create', region_id: 1, server_id: 1 });
    expect(await claimEvents(db, 'r1', { limit: 2, leaseMs: 60_000 })).toEqual(events.slice(0, 2));
    const held = await lease(events[0]!);
    expect(held.claimed_by).toBe('r1');
    expect(Number(held.ms)).toBeGreaterThan(30_000);
    expect(Number(held.ms)).toBeLessThanOrEqual(60_000);
    // Leased: not claimable by another replica until the lease runs out; the rest is.
    expect(await claimEvents(db, 'r2', { limit: 10, leaseMs: 60_000 })).toEqual([events[2]]);
    expect(await claimEvents(db, 'r2', { limit: 10, leaseMs: 60_000 })).toEqual([]);
    expect((await lease(other)).claimed_by).toBeNull();
    expect((await lease(placed)).claimed_by).toBeNull();
  });

  it('an expired lease is claimable again; a claim with nothing to take reports nothing and runs no callback', async () => {
    const { event } = await request();
    expect(await claimEvents(db, 'r1', { limit: 1, leaseMs: 0 })).toEqual([event]);
    await new Promise((r) => setTimeout(r, 20));
    let locked: number[] | undefined;
    expect(await claimEvents(db, 'r2', { limit: 5, leaseMs: 60_000, onLocked: (ids) => (locked = ids) })).toEqual([event]);
    expect(locked).toEqual([event]);
    expect((await lease(event)).claimed_by).toBe('r2');
    locked = undefined;
    expect(await claimEvents(db, 'r3', { limit: 5, leaseMs: 60_000, onLocked: (ids) => (locked = ids) })).toEqual([]);
    expect(locked).toBeUndefined();
  });

  it("claims only the given regions, and with olderThanMs only events created at least that long ago (helping another replica's region)", async () => {
    const nyc = await request(1);
    const ams = await request(2);
    const oldAms = await request(2, { created_at: '2020-01-01 00:00:00.000' });
    expect(await claimEvents(db, 'r1', { limit: 10, leaseMs: 60_000, regionIds: [1] })).toEqual([nyc.event]);
    expect(await claimEvents(db, 'r1', { limit: 10, leaseMs: 60_000, regionIds: [2], olderThanMs: 60_000 })).toEqual([oldAms.event]);
    expect(await claimEvents(db, 'r1', { limit: 10, leaseMs: 60_000, regionIds: [2] })).toEqual([ams.event]);
  });

  it('claimAndLoad answers what ranking needs, created_ms being created_at in UTC whatever the process time zone', async () => {
    const { event, droplet } = await request(2, { customer: 2, created_at: '2026-01-02 03:04:05.678' });
    const tz = process.env.TZ;
    process.env.TZ = 'America/New_York';
    try {
      const [loaded] = await claimAndLoad(db, 'r1', { limit: 10, leaseMs: 60_000 });
      expect(loaded).toMatchObject({ id: event, droplet_id: droplet, customer_id: 2, region_id: 2, size: { slug: '2gb', memory: 2048, vcpus: 2, disk: 40 } });
      expect(loaded!.created_ms).toBe(Date.UTC(2026, 0, 2, 3, 4, 5, 678));
      expect(loaded!.claimed_at).toBeGreaterThan(0);
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
    expect(await claimAndLoad(db, 'r1', { limit: 10, leaseMs: 60_000 })).toEqual([]);
  });

  it("releases only its own leases of still unplaced pending events, claimable again after afterMs", async () => {
    const mine = await request();
    const theirs = await request();
    const done = await request();
    await claimEvents(db, 'r1', { limit: 1, leaseMs: 60_000 });
    await claimEvents(db, 'r2', { limit: 1, leaseMs: 60_000 });
    await claimEvents(db, 'r1', { limit: 1, leaseMs: 60_000 });
    await t.db('events').where({ id: done.event }).update({ status: 'error' });
    await releaseEvents(db, 'r1', [mine.event, theirs.event, done.event], 0);
    await releaseEvents(db, 'r1', [], 0);
    expect(Number((await lease(mine.event)).ms)).toBeLessThanOrEqual(0);
    expect(Number((await lease(theirs.event)).ms)).toBeGreaterThan(30_000);
    expect(Number((await lease(done.event)).ms)).toBeGreaterThan(30_000);
    expect(await claimEvents(db, 'r3', { limit: 10, leaseMs: 60_000 })).toEqual([mine.event]);
    await releaseEvents(db, 'r3', [mine.event], 60_000);
    expect(Number((await lease(mine.event)).ms)).toBeGreaterThan(30_000);
  });

  it("counts each customer's live droplets by server, everywhere or only in the region each one is placing into", async () => {
    await t.db('droplets').update({ status: 'archived' });
    const live = [
      { customer_id: 1, server_id: 1, region_id: 1 },
      { customer_id: 1, server_id: 1, region_id: 1 },
      { customer_id: 1, server_id: 2, region_id: 1 },
      { customer_id: 1, server_id: 3, region_id: 2 },
      { customer_id: 2, server_id: 3, region_id: 2 },
      { customer_id: 3, server_id: 2, region_id: 1 },
    ];
    await t.db('droplets').insert([...live, { customer_id: 1, server_id: 2, region_id: 1, status: 'archived' }, { customer_id: 1, server_id: null, region_id: 1 }].map((d) => ({ status: 'active', name: 'x', size_id: 1, image_id: 1, ...d })));
    const asObject = (m: Map<number, Map<number, number>>) => Object.fromEntries([...m].map(([c, s]) => [c, Object.fromEntries(s)]));
    expect(asObject(await loadUserDroplets(db, [1, 2]))).toEqual({ 1: { 1: 2, 2: 1, 3: 1 }, 2: { 3: 1 } });
    expect(asObject(await loadUserDroplets(db, [1, 2], []))).toEqual({ 1: { 1: 2, 2: 1, 3: 1 }, 2: { 3: 1 } });
    expect(asObject(await loadUserDroplets(db, [1, 2], [[1, 1], [2, 1]]))).toEqual({ 1: { 1: 2, 2: 1 } });
    expect((await loadUserDroplets(db, [])).size).toBe(0);
  });
});
