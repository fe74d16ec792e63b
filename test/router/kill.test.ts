import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { duplicateExecutions, freePort, hvToken, openStream, postAck, routedAgents, setEventDelivery, startRouterProcess, type RouterProcess } from '../helpers/router.ts';
import { insertEvent, seedWorld, waitFor } from '../helpers/seeded.ts';

/** The brief's fault: kill -9 an Event Router mid-delivery; nothing lost, nothing executed twice. */
describe('an Event Router killed with SIGKILL while events are in flight', () => {
  let t: TestDatabase;
  let seed: SeedData;
  const routers: RouterProcess[] = [];

  beforeAll(async () => {
    t = await createTestDatabase('router_kill');
    seed = await seedWorld(t.db, { hypervisors: 10, regions: 2 });
    await t.db('events').del();
    await setEventDelivery(t.db, { mode: 'full' });
  });
  afterAll(async () => {
    for (const r of routers) r.child.kill('SIGKILL');
    await t.drop();
  });

  it('loses no event and records none twice once a new router process takes the same port', async () => {
    const region = seed.regions[0]!;
    const hosts = seed.servers.filter((s) => s.region_id === region.id).map((s) => s.id);
    const port = await freePort();
    const routerDb = t.service('event_router');
    const first = await startRouterProcess({ db: routerDb, region: region.slug, port });
    routers.push(first);

    // Slow work, so the kill lands while events are claimed and not acked.
    const fleet = routedAgents({ dobe: t.service('dobe'), serverIds: hosts, region: region.slug, routerUrl: first.url, workMs: 150 });
    const { stats } = fleet;
    await fleet.start();
    const ids: number[] = [];
    try {
      await waitFor(async () => stats.routerStreams === hosts.length);
      for (let i = 0; i < 40; i++) ids.push(await insertEvent(t.db, { type: 'reboot', region_id: region.id, server_id: hosts[i % hosts.length]! }));
      const count = async (status: string) => Number((await t.db('events').whereIn('id', ids).where({ status }).count({ n: '*' }))[0]!.n);
      // Some done, some claimed and unacknowledged: the moment to pull the plug.
      await waitFor(async () => (await count('done')) >= 3 && (await count('running')) >= 3, 15_000, 20);
      first.child.kill('SIGKILL');
      expect(await first.exited).toBeNull();
      const inFlightAtKill = await count('running');
      expect(inFlightAtKill).toBeGreaterThan(0);

      // Work keeps arriving while no router is up.
      for (let i = 0; i < 10; i++) ids.push(await insertEvent(t.db, { type: 'power_on', region_id: region.id, server_id: hosts[i % hosts.length]! }));
      await new Promise((r) => setTimeout(r, 300));
      const second = await startRouterProcess({ db: routerDb, region: region.slug, port });
      routers.push(second);

      await waitFor(async () => (await count('done')) === ids.length, 30_000);
      expect(await t.db('event_executions').whereIn('event_id', ids)).toHaveLength(ids.length);
      expect(await duplicateExecutions(t.db, ids)).toEqual([]);
      const metrics = await (await fetch(`${second.url}/metrics`)).text();
      // The new process recorded acks for claims the killed one made (rows read back from the database).
      expect(metrics).toMatch(/^router_events_acked_total [1-9]/m);
      expect(metrics).toMatch(/^router_connected_agents [1-9]/m);
      expect(stats.connected).toBe(0);
    } finally {
      await fleet.close();
    }
    const last = routers.at(-1)!;
    last.child.kill('SIGTERM');
    expect(await last.exited).toBe(0);
  });

  it('a restarted router re-sends what the killed one had delivered but never saw acknowledged', async () => {
    const region = seed.regions[1]!;
    const host = seed.servers.find((s) => s.region_id === region.id)!.id;
    const port = await freePort();
    const first = await startRouterProcess({ db: t.service('event_router'), region: region.slug, port });
    routers.push(first);
    const events = `${first.url}/v1/regions/${region.slug}/hypervisors/${host}/events`;
    const headers = { authorization: `Bearer ${hvToken(host, region.slug)}` };
    const before = await openStream(events, headers);
    const ids = [
      await insertEvent(t.db, { type: 'reboot', region_id: region.id, server_id: host }),
      await insertEvent(t.db, { type: 'reboot', region_id: region.id, server_id: host }),
    ];
    await waitFor(async () => before.messages.length === 2);
    first.child.kill('SIGKILL');
    await first.exited;
    await before.ended;

    const second = await startRouterProcess({ db: t.service('event_router'), region: region.slug, port });
    routers.push(second);
    // An agent that lost everything (no Last-Event-ID) gets both again, from the database's `running` rows.
    const after = await openStream(events, headers);
    await waitFor(async () => after.messages.length === 2);
    expect(after.messages.map((m) => Number(m.id)).sort()).toEqual(ids);
    for (const id of ids) {
      const res = await postAck(events.replace(/events$/, 'acks'), hvToken(host, region.slug), { event_id: id, received_at: new Date().toISOString() });
      expect(res).toMatchObject({ status: 200, json: { duplicate: false } });
    }
    after.close();
    expect(await t.db('event_executions').whereIn('event_id', ids)).toHaveLength(2);
    expect(await fetch(`${second.url}/metrics`).then((r) => r.text())).toMatch(/^router_events_redelivered_total 2$/m);
    second.child.kill('SIGTERM');
    await second.exited;
  });
});
