import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failEvents, type DecisionRow } from '../../scheduler/placement.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { insertEvent } from '../helpers/seeded.ts';

/** failEvents (scheduler/placement.ts): only this replica's pending, unplaced event fails, and only where the fence allows. */
describe('Scheduler V2 failing events it cannot place', () => {
  let t: TestDatabase;

  beforeAll(async () => {
    t = await createTestDatabase('scheduler_v2_fail');
    await t.db('regions').insert([{ id: 1, slug: 'nyc1', name: 'New York 1' }]);
    await t.db('sizes').insert({ id: 1, slug: '2gb', memory: 2048, vcpus: 2, disk: 40, price_monthly: 20 });
    await t.db('images').insert({ id: 1, slug: 'debian-8-x64', name: 'Debian', distribution: 'Debian', min_disk_size: 20 });
    await t.db('customers').insert({ id: 1, email: 'c1@example.com', name: 'C1', api_token_sha256: '1'.padStart(64, '0') });
  });

  afterAll(async () => {
    await t?.drop();
  });

  async function request(claimedBy: string): Promise<{ event: number; droplet: number }> {
    const [droplet] = await t.db('droplets').insert({ customer_id: 1, name: `d-${claimedBy}`, region_id: 1, size_id: 1, image_id: 1 });
    const event = await insertEvent(t.db, { type: 'create', region_id: 1, droplet_id: Number(droplet), customer_id: 1 });
    await t.db('events').where({ id: event }).update({ claimed_by: claimedBy });
    return { event, droplet: Number(droplet) };
  }

  const decision = (event_id: number, summary: string): DecisionRow => ({
    event_id, replica: 'r1', outcome: 'failed', server_id: null, policy: 'bin-pack', score: null, hosts_total: 1, hosts_available: 0, attempts: 1, conflicts: 0, summary,
  });

  it('fails its own event and droplet with the explanation; another replica\'s event and a fenced region are left alone', async () => {
    const mine = await request('r1');
    const theirs = await request('r2');
    const fenced = await request('r1');
    const long = 'no host has 2048 MB free '.repeat(20);
    const failed = await failEvents(t.db, 'r1', [
      { event_id: mine.event, region_id: 1, droplet_id: mine.droplet, decision: decision(mine.event, long) },
      { event_id: theirs.event, region_id: 1, droplet_id: theirs.droplet, decision: decision(theirs.event, 'x') },
    ]);
    expect(failed).toEqual([mine.event]);
    const fence = async () => (region: number) => region !== 1;
    expect(await failEvents(t.db, 'r1', [{ event_id: fenced.event, region_id: 1, droplet_id: fenced.droplet, decision: decision(fenced.event, 'x') }], fence)).toEqual([]);

    const events = await t.db('events').whereIn('id', [mine.event, theirs.event, fenced.event]).orderBy('id').select('id', 'status', 'message');
    expect(events).toEqual([
      { id: mine.event, status: 'error', message: long.slice(0, 255) },
      { id: theirs.event, status: 'pending', message: null },
      { id: fenced.event, status: 'pending', message: null },
    ]);
    const droplets = await t.db('droplets').whereIn('id', [mine.droplet, theirs.droplet, fenced.droplet]).orderBy('id').pluck('status');
    expect(droplets[0]).toBe('error');
    expect(droplets.slice(1)).not.toContain('error');
    expect(await t.db('placement_decisions').pluck('event_id')).toEqual([mine.event]);
  });
});
