import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import { createAgentStats } from '../../dobe/agent-stats.ts';
import { createDobeAgent } from '../../dobe/agent.ts';
import { createEventRouter } from '../../router/event-router.ts';
import { createMysqlEventSource } from '../../legacy/router/mysql-source.ts';
import { TEST_HV_KEYS, createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { duplicateExecutions, freePort, hvToken, setEventDelivery } from '../helpers/router.ts';
import { insertEvent, seedWorld, waitFor } from '../helpers/seeded.ts';
import { createCountedUser, userStatements } from '../helpers/harpoon.ts';
import { godQueryMode } from '../../legacy/dobe/god-query-mode.ts';
import { startCountingRelay } from '../helpers/mysql-wire.ts';

describe('a dual-mode DOBE agent', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let region: { id: number; slug: string };
  let hosts: number[];

  beforeAll(async () => {
    t = await createTestDatabase('dobe_dual');
    seed = await seedWorld(t.db, { hypervisors: 6, regions: 1 });
    await t.db('events').del();
    region = seed.regions[0]!;
    hosts = seed.servers.map((s) => s.id);
  });
  beforeEach(() => setEventDelivery(t.db, { mode: 'legacy' }));
  afterAll(() => t.drop());

  const dual = (serverId: number, routerUrl: string, extra: Partial<Parameters<typeof createDobeAgent>[0]> = {}) =>
    createDobeAgent({ polling: godQueryMode,
      serverId,
      db: t.service('dobe'),
      routerUrl,
      routerToken: hvToken(serverId, region.slug),
      pollIntervalMs: { min: 30, max: 60 },
      modeCheckEvery: 1,
      routerRetryMs: { min: 30, max: 100 },
      workMs: 2,
      ...extra,
    });

  it('without a router URL stays the 2016 agent whatever the cutover says', async () => {
    await setEventDelivery(t.db, { mode: 'full' });
    const agent = createDobeAgent({ polling: godQueryMode, serverId: hosts[0]!, db: t.service('dobe'), pollIntervalMs: { min: 30, max: 60 }, workMs: 0 });
    await agent.start();
    try {
      const id = await insertEvent(t.db, { type: 'reboot', region_id: region.id, server_id: hosts[0]! });
      await waitFor(async () => (await t.db('events').where({ id }).first()).status === 'done');
      expect(agent.source()).toBe('god-query');
      expect(await t.db('event_executions').where({ event_id: id }).first()).toMatchObject({ source: 'god-query' });
    } finally {
      await agent.close();
    }
  });

  it('reads the cutover row at every poll by default, in the god query\'s packet: two statements, one round trip', async () => {
    const counted = await createCountedUser(t, 'dobe');
    const service = counted.db;
    const relay = await startCountingRelay({ host: service.host, port: service.port });
    const dead = `http://127.0.0.1:${await freePort()}`;
    const stats = createAgentStats();
    const agent = dual(hosts[2]!, dead, { db: { ...service, port: relay.port }, modeCheckEvery: undefined, stats });
    await agent.start();
    try {
      await waitFor(async () => stats.godQueries >= 20);
      await agent.close();
      const packets = relay.queries();
      const selects = (await userStatements(t, counted.user)).select;
      // Connect (time zone, host row, cutover row) and the first running-events read, then one packet per poll
      // carrying two statements: the cutover row and the god query.
      expect(packets - stats.godQueries).toBeGreaterThanOrEqual(3);
      expect(packets - stats.godQueries).toBeLessThanOrEqual(5);
      expect(selects - 2 * stats.godQueries).toBeGreaterThanOrEqual(0);
      expect(selects - 2 * stats.godQueries).toBeLessThanOrEqual(4);
    } finally {
      await agent.close();
      await relay.close();
      await counted.drop();
    }
  });

  it('learns its region from its servers row and goes back to the god query by itself when no router answers and the cutover is rolled back', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    await setEventDelivery(t.db, { mode: 'full' });
    const stats = createAgentStats();
    const agent = dual(hosts[1]!, dead, { routerFallbackAfterMs: 300, stats });
    await agent.start();
    try {
      expect(agent.source()).toBe('router');
      expect(stats.connected).toBe(0);
      const id = await insertEvent(t.db, { type: 'reboot', region_id: region.id, server_id: hosts[1]! });
      await new Promise((r) => setTimeout(r, 400));
      // Routed and no router up: nobody touches the event.
      expect((await t.db('events').where({ id }).first()).status).toBe('pending');
      await setEventDelivery(t.db, { mode: 'legacy' });
      await waitFor(async () => agent.source() === 'god-query', 5000);
      await waitFor(async () => (await t.db('events').where({ id }).first()).status === 'done');
      expect(await t.db('event_executions').where({ event_id: id })).toMatchObject([{ source: 'god-query' }]);
      expect(stats).toMatchObject({ onGodQuery: 1, onRouter: 0, switches: 1 });
    } finally {
      await agent.close();
    }
    expect(stats).toMatchObject({ onGodQuery: 0, onRouter: 0, connected: 0 });
  });

  it('records over MySQL, once, an event it executed but could not ack before switching back', async () => {
    await setEventDelivery(t.db, { mode: 'full' });
    const router = createEventRouter({ legacySource: createMysqlEventSource, db: t.service('event_router'), region: region.slug, hypervisorKeys: TEST_HV_KEYS, pollIntervalMs: 30, port: 0 });
    const { url } = await router.start();
    const stats = createAgentStats();
    const agent = dual(hosts[2]!, url, { routerFallbackAfterMs: 300, workMs: 600, region: region.slug, stats });
    await agent.start();
    try {
      await waitFor(async () => router.stats().connected === 1);
      const id = await insertEvent(t.db, { type: 'reboot', region_id: region.id, server_id: hosts[2]! });
      await waitFor(async () => stats.routerEvents === 1, 5000, 10);
      // The router goes away while the agent is executing, and the cutover is rolled back meanwhile.
      await router.close();
      await setEventDelivery(t.db, { mode: 'legacy' });
      await waitFor(async () => (await t.db('events').where({ id }).first()).status === 'done', 10_000);
      expect(agent.source()).toBe('god-query');
      expect(await t.db('event_executions').where({ event_id: id })).toMatchObject([{ source: 'god-query', server_id: hosts[2]! }]);
    } finally {
      await agent.close();
      await router.close();
    }
  });

  it('switches god query → router → god query live, each event executed once', async () => {
    const router = createEventRouter({ legacySource: createMysqlEventSource, db: t.service('event_router'), region: region.slug, hypervisorKeys: TEST_HV_KEYS, pollIntervalMs: 30, port: 0 });
    const { url } = await router.start();
    const stats = createAgentStats();
    const mine = hosts.slice(3, 6);
    const agents = mine.map((id) => dual(id, url, { stats }));
    await Promise.all(agents.map((a) => a.start()));
    const ids: number[] = [];
    const insert = async (n: number) => {
      for (let i = 0; i < n; i++) {
        ids.push(await insertEvent(t.db, { type: 'power_off', region_id: region.id, server_id: mine[i % mine.length]! }));
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    try {
      await insert(20);
      await setEventDelivery(t.db, { mode: 'full' });
      await insert(20);
      await waitFor(async () => agents.every((a) => a.source() === 'router') && stats.connected === 0);
      await insert(20);
      await setEventDelivery(t.db, { mode: 'legacy' });
      await insert(20);
      await waitFor(async () => agents.every((a) => a.source() === 'god-query') && stats.connected === mine.length);
      await insert(10);
      await waitFor(async () => Number((await t.db('events').whereIn('id', ids).where({ status: 'done' }).count({ n: '*' }))[0]!.n) === ids.length);
      expect(await t.db('event_executions').whereIn('event_id', ids)).toHaveLength(ids.length);
      expect(await duplicateExecutions(t.db, ids)).toEqual([]);
      expect(stats.switches).toBe(mine.length * 2);
    } finally {
      await Promise.all(agents.map((a) => a.close()));
      await router.close();
    }
  });
});
