import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import { parseEventDeliveryRow, routedToRouter } from '../../lib/cutover/event-delivery.ts';
import { createFleet } from '../../dobe/fleet.ts';
import { readMysqlSnapshot } from '../../lib/metrics/mysql-snapshot.ts';
import { createEventRouter, type EventRouter } from '../../router/event-router.ts';
import { createMysqlEventSource } from '../../legacy/router/mysql-source.ts';
import { TEST_HV_KEYS, createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { duplicateExecutions, setEventDelivery } from '../helpers/router.ts';
import { insertEvent, seedWorld, waitFor } from '../helpers/seeded.ts';
import { metricValue } from '../helpers/upstream.ts';
import { GOD_QUERY_MODE } from '../../legacy/dobe/god-query-mode.ts';

const AGENTS = 24;

/**
 * The live switch of the brief: a dual-mode fleet moves from the god query
 * to the Event Routers (a sticky 50% canary, then everyone) and back, while
 * events keep arriving. The server itself counts the `dobe` connections.
 */
describe('a dual-mode fleet switching live between the god query and the Event Router', () => {
  let t: TestDatabase;
  let seed: SeedData;
  const routers: EventRouter[] = [];

  beforeAll(async () => {
    t = await createTestDatabase('fleet_switch');
    seed = await seedWorld(t.db, { hypervisors: AGENTS, regions: 2 });
    await t.db('events').del();
  });
  afterAll(async () => {
    await Promise.all(routers.map((r) => r.close()));
    await t.drop();
  });

  it('loses nothing, repeats nothing, and drops the switched agents\' MySQL connections while they are on the router', async () => {
    const urls: Record<string, string> = {};
    for (const region of seed.regions) {
      const router = createEventRouter({ legacySource: createMysqlEventSource, db: t.service('event_router'), region: region.slug, hypervisorKeys: TEST_HV_KEYS, pollIntervalMs: 100, port: 0 });
      routers.push(router);
      urls[region.slug] = (await router.start()).url;
    }
    const serverIds = seed.servers.map((s) => s.id);
    const regionOf = new Map(seed.servers.map((s) => [s.id, seed.regions.find((r) => r.id === s.region_id)!]));
    const fleet = createFleet({ pollingMode: GOD_QUERY_MODE,
      db: t.service('dobe'),
      serverIds,
      agentsPerProcess: 12,
      pollIntervalMs: { min: 100, max: 200 },
      workMs: 2,
      routerUrl: urls,
      hypervisorKeys: TEST_HV_KEYS,
      modeCheckEvery: 2,
      routerRetryMs: { min: 50, max: 500 },
    });
    const dobeConnections = async () => (await readMysqlSnapshot(t.db, { database: t.name })).byUser.dobe ?? 0;
    const bySource = async () => {
      const text = await fleet.registry.metrics();
      const read = (source: string) => metricValue(text, 'dobe_agents_by_source', { source }) ?? NaN;
      return { godQuery: read('god-query'), router: read('router') };
    };
    const routed = () => routers.reduce((n, r) => n + r.stats().connected, 0);

    // Events keep arriving for random hosts through every phase.
    const ids: number[] = [];
    let inserting = true;
    const inserter = (async () => {
      let i = 0;
      while (inserting) {
        const server = seed.servers[(i * 7) % seed.servers.length]!;
        ids.push(await insertEvent(t.db, { type: i % 2 ? 'reboot' : 'power_on', region_id: server.region_id, server_id: server.id }));
        i++;
        await new Promise((r) => setTimeout(r, 15));
      }
    })();

    await fleet.start();
    try {
      try {
        // Legacy: one connection per hypervisor.
        await waitFor(async () => (await bySource()).godQuery === AGENTS);
        expect(await dobeConnections()).toBe(AGENTS);
        await new Promise((r) => setTimeout(r, 500));

        // Canary: a sticky half of the hypervisors, decided as the proxy decides it.
        const canary = { mode: 'canary' as const, percent: 50, regions: null };
        const expected = serverIds.filter((id) =>
          routedToRouter(parseEventDeliveryRow({ ...canary, regions: null, version: 1 }), id, regionOf.get(id)!.slug),
        ).length;
        expect(expected).toBeGreaterThan(0);
        expect(expected).toBeLessThan(AGENTS);
        await setEventDelivery(t.db, canary);
        await waitFor(async () => routed() === expected && (await dobeConnections()) === AGENTS - expected, 15_000);
        // Workers report their counters about once a second.
        await waitFor(async () => JSON.stringify(await bySource()) === JSON.stringify({ godQuery: AGENTS - expected, router: expected }));
        await new Promise((r) => setTimeout(r, 500));

        // Everyone: the dobe user holds no connection at all.
        await setEventDelivery(t.db, { mode: 'full' });
        await waitFor(async () => routed() === AGENTS && (await dobeConnections()) === 0, 15_000);
        await waitFor(async () => (await bySource()).router === AGENTS);
        await new Promise((r) => setTimeout(r, 500));
        const routerSnap = await readMysqlSnapshot(t.db, { database: t.name });
        expect(routerSnap.byUser.dobe ?? 0).toBe(0);
        // Two regions, a few pooled connections each.
        expect(routerSnap.byUser.event_router ?? 0).toBeLessThanOrEqual(10);

        // Rollback: back to one connection per hypervisor, every stream ended with a switch.
        await setEventDelivery(t.db, { mode: 'legacy' });
        await waitFor(async () => routed() === 0 && (await dobeConnections()) === AGENTS, 15_000);
        await waitFor(async () => (await bySource()).godQuery === AGENTS);
        await new Promise((r) => setTimeout(r, 500));
      } finally {
        inserting = false;
        await inserter;
      }
      await waitFor(async () => Number((await t.db('events').whereIn('id', ids).where({ status: 'done' }).count({ n: '*' }))[0]!.n) === ids.length, 20_000);
      expect(await t.db('event_executions').whereIn('event_id', ids)).toHaveLength(ids.length);
      expect(await duplicateExecutions(t.db, ids)).toEqual([]);
      const sources: Array<{ source: string }> = await t.db('event_executions').whereIn('event_id', ids).distinct('source');
      expect(sources.map((s) => s.source).sort()).toEqual(['god-query', 'router']);
      await waitFor(async () => fleet.stats().switches >= AGENTS * 2);
      const metrics = await fleet.registry.metrics();
      expect(metrics).toMatch(/^dobe_source_switches_total [1-9]/m);
      for (const r of routers) expect(await r.registry.metrics()).toMatch(/^router_events_acked_total [1-9]/m);
    } finally {
      await fleet.close();
    }
    await waitFor(async () => (await dobeConnections()) === 0, 10_000);
  });
});
