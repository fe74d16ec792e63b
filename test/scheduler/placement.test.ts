import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitRound, failEvents, type DecisionRow, type PlacementIntent } from '../../scheduler/placement.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { insertEvent } from '../helpers/seeded.ts';

/**
 * failEvents (scheduler/placement.ts): only this replica's pending, unplaced event fails, and only where the fence allows.
 * commitRound: the compare-and-swap's own checks, called directly with the intents a ranking would hand it.
 */
describe('Scheduler V2 committing and failing placements', () => {
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
  const RESERVED = { memory: 2048, disk: 50 };
  let nextHost = 100;

  /** A host with room for `slots` 2 GB / 40 GB droplets after the reserve, plus `extra` MB and GB. */
  async function host(slots: number, extra: { memory?: number; disk?: number } = {}): Promise<number> {
    const id = ++nextHost;
    await t.db('servers').insert({
      id, name: `hv${id}`, region_id: 1, cpus: 24, memory: RESERVED.memory + 2048 * slots + (extra.memory ?? 0), disk: RESERVED.disk + 40 * slots + (extra.disk ?? 0),
      vmcount: 0, memfree: 999_999, diskfree_actual: 999_999,
    });
    return id;
  }

  async function intent(claimedBy: string, serverId: number, generation = 0): Promise<PlacementIntent> {
    const { event, droplet } = await request(claimedBy);
    return {
      event_id: event, region_id: 1, droplet_id: droplet, server_id: serverId, expected_generation: generation, memory: 2048, disk: 40,
      decision: { ...decision(event, `placed on ${serverId}`), outcome: 'placed', server_id: serverId },
    };
  }

  const placedOn = async (events: number[]) => t.db('events').whereIn('id', events).orderBy('id').pluck('server_id');
  const dropletHosts = async (droplets: number[]) => t.db('droplets').whereIn('id', droplets).orderBy('id').pluck('server_id');
  const generation = async (id: number) => Number((await t.db('servers').where({ id }).first()).generation);

  it('a host takes placements up to exactly its allocatable memory and disk, and not one more', async () => {
    const h = await host(2);
    const round = [await intent('r1', h), await intent('r1', h)];
    const result = await commitRound(t.db, 'r1', round, RESERVED);
    expect(result.committed.map((i) => i.event_id)).toEqual(round.map((i) => i.event_id));
    expect(result.conflictedHosts).toEqual([]);
    expect(await placedOn(round.map((i) => i.event_id))).toEqual([h, h]);
    expect(await dropletHosts(round.map((i) => i.droplet_id))).toEqual([h, h]);
    expect(await generation(h)).toBe(1);

    // Full now: a ranking that still saw the new generation and room (a stale ledger) is refused by MySQL's ledger.
    const late = await intent('r1', h, 1);
    const refused = await commitRound(t.db, 'r1', [late], RESERVED);
    expect(refused).toMatchObject({ committed: [], conflictedHosts: [h] });
    expect(refused.conflicted.map((i) => i.event_id)).toEqual([late.event_id]);
    expect(await placedOn([late.event_id])).toEqual([null]);
    expect(await generation(h)).toBe(1);
  });

  it('one MB or one GB short of the round is a conflict; the same round fits a host with exactly that much', async () => {
    const shortMemory = await host(1, { memory: -1 });
    const shortDisk = await host(1, { disk: -1 });
    const exact = await host(1);
    const a = await intent('r1', shortMemory);
    const b = await intent('r1', shortDisk);
    const c = await intent('r1', exact);
    const result = await commitRound(t.db, 'r1', [a, b, c], RESERVED);
    expect(result.committed.map((i) => i.event_id)).toEqual([c.event_id]);
    expect(result.conflictedHosts).toEqual([shortMemory, shortDisk]);
    expect(await placedOn([a.event_id, b.event_id, c.event_id])).toEqual([null, null, exact]);
    expect([await generation(shortMemory), await generation(shortDisk), await generation(exact)]).toEqual([0, 0, 1]);
  });

  it('a host whose generation moved since the ranking is a conflict, whatever room it has', async () => {
    const h = await host(5);
    await t.db('servers').where({ id: h }).update({ generation: 3 });
    const stale = await intent('r1', h, 2);
    const result = await commitRound(t.db, 'r1', [stale], RESERVED);
    expect(result).toMatchObject({ committed: [], conflictedHosts: [h] });
    expect(await placedOn([stale.event_id])).toEqual([null]);
    expect(await generation(h)).toBe(3);
  });

  it('events whose lease moved to another replica are lost; the rest of the round still commits, with its decisions', async () => {
    const h = await host(4);
    const kept = await intent('r1', h);
    const taken = await intent('r2', h);
    const result = await commitRound(t.db, 'r1', [kept, taken], RESERVED);
    expect(result.committed.map((i) => i.event_id)).toEqual([kept.event_id]);
    expect(result.lost.map((i) => i.event_id)).toEqual([taken.event_id]);
    expect(await placedOn([kept.event_id, taken.event_id])).toEqual([h, null]);
    expect(await dropletHosts([kept.droplet_id, taken.droplet_id])).toEqual([h, null]);
    expect(await t.db('placement_decisions').whereIn('event_id', [kept.event_id, taken.event_id]).pluck('event_id')).toEqual([kept.event_id]);
    expect((await t.db('events').where({ id: kept.event_id }).first()).claim_expires_at).toBeNull();
    expect(await generation(h)).toBe(1);
  });

  it('a round whose every lease moved places nothing and reports every event lost', async () => {
    const h = await host(4);
    const round = [await intent('r2', h), await intent('r3', h)];
    const result = await commitRound(t.db, 'r1', round, RESERVED);
    expect(result).toMatchObject({ committed: [], conflicted: [], conflictedHosts: [], fenced: [] });
    expect(result.lost.map((i) => i.event_id)).toEqual(round.map((i) => i.event_id));
    expect(await placedOn(round.map((i) => i.event_id))).toEqual([null, null]);
    expect(await generation(h)).toBe(0);
  });

  it('events of a region the fence closed are handed back untouched (fenced), on either path', async () => {
    const h = await host(4);
    const closed = async () => () => false;
    const mine = await intent('r1', h);
    expect(await commitRound(t.db, 'r1', [mine], RESERVED, closed)).toMatchObject({ committed: [], fenced: [mine] });
    const theirs = await intent('r2', h);
    // A lost lease sends the round down the careful path, which reads the fence again.
    let calls = 0;
    const closesAfterFirst = async () => {
      const open = ++calls === 1;
      return () => open;
    };
    expect(await commitRound(t.db, 'r1', [mine, theirs], RESERVED, closesAfterFirst)).toMatchObject({ committed: [], lost: [], fenced: [mine, theirs] });
    expect(calls).toBe(2);
    expect(await placedOn([mine.event_id, theirs.event_id])).toEqual([null, null]);
    expect(await generation(h)).toBe(0);
  });
  it('a fence closing one region of the round fences only that region: the other commits', async () => {
    const h = await host(4);
    const open = await intent('r1', h);
    const closed = { ...(await intent('r1', h)), region_id: 2 };
    const onlyRegion1 = async () => (region: number) => region === 1;
    const result = await commitRound(t.db, 'r1', [open, closed], RESERVED, onlyRegion1);
    expect(result.committed.map((i) => i.event_id)).toEqual([open.event_id]);
    expect(result.fenced.map((i) => i.event_id)).toEqual([closed.event_id]);
    expect(await placedOn([open.event_id, closed.event_id])).toEqual([h, null]);
  });

  it('stores a decision summary whole up to 1024 characters and cuts a longer one to 1024 with an ellipsis', async () => {
    const h = await host(4);
    const exact = await intent('r1', h);
    exact.decision.summary = 'x'.repeat(1024);
    const long = await intent('r1', h);
    long.decision.summary = 'y'.repeat(3000);
    await commitRound(t.db, 'r1', [exact, long], RESERVED);
    const summaries = await t.db('placement_decisions').whereIn('event_id', [exact.event_id, long.event_id]).orderBy('event_id').pluck('summary');
    expect(summaries).toEqual(['x'.repeat(1024), 'y'.repeat(1023) + '…']);
  });
});
