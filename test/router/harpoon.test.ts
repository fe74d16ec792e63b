import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import { createHarpoonClient } from '../../harpoon/client.ts';
import type { Harpoon } from '../../harpoon/create-harpoon.ts';
import { lockdown } from '../../harpoon/lockdown.ts';
import { enableUserStatistics } from '../../lib/metrics/user-statistics.ts';
import { createHttpFeatureStateSource } from '../../lib/cutover/http-state-source.ts';
import { createCutoverAdmin } from '../../proxy/cutover/admin.ts';
import { validatePlan } from '../../proxy/cutover/plan.ts';
import { createCutoverStateReader } from '../../proxy/cutover/state-store.ts';
import { createEventRouter, type EventRouter } from '../../router/event-router.ts';
import { createMysqlEventSource } from '../../legacy/router/mysql-source.ts';
import { TEST_HV_KEYS, createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { HARPOON_TOKEN, createCountedUser, startHarpoon, userStatements } from '../helpers/harpoon.ts';
import { duplicateExecutions, freePort, hvToken, openStream, postAck, routedAgents, setEventDelivery, setFeatureRouting } from '../helpers/router.ts';
import { insertEvent, seedWorld, waitFor } from '../helpers/seeded.ts';
import { metricValue } from '../helpers/upstream.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The switch rule of docs/harpoon-era.md, router side: MySQL below event-writes full, Harpoon at full, back on a rollback. */
describe('the Event Router follows event-writes onto Harpoon and back', () => {
  let t: TestDatabase;
  let seed: SeedData;
  const harpoons: Harpoon[] = [];
  let urls: string[];
  let region: { id: number; slug: string };
  let hosts: number[];
  const client = () => createHarpoonClient({ urls, token: HARPOON_TOKEN });
  const doneCount = async (ids: number[]) => Number((await t.db('events').whereIn('id', ids).where({ status: 'done' }).count({ n: '*' }))[0]!.n);
  /** One series, written `name` or `name{label="value"}`; 0 when the router does not export it. */
  const metric = async (router: EventRouter, series: string) => {
    const [, name, label, value] = /^(\w+)(?:\{(\w+)="([^"]*)"\})?$/.exec(series)!;
    return metricValue(await router.registry.metrics(), name!, label ? { [label]: value! } : {}) ?? 0;
  };

  const startAgents = (serverIds: number[], url: string, workMs: number) =>
    routedAgents({ dobe: t.service('dobe'), serverIds, region: region.slug, routerUrl: url, workMs });

  beforeAll(async () => {
    t = await createTestDatabase('router_harpoon');
    seed = await seedWorld(t.db, { hypervisors: 10, regions: 2 });
    await t.db('events').del();
    region = seed.regions[0]!;
    hosts = seed.servers.filter((s) => s.region_id === region.id).map((s) => s.id);
    await setEventDelivery(t.db, { mode: 'full' });
    await setFeatureRouting(t.db, 'event-writes', { mode: 'legacy' });
    const [pa, pb] = [await freePort(), await freePort()];
    for (const [port, peer] of [
      [pa, pb],
      [pb, pa],
    ] as const) {
      const h = await startHarpoon(t.service('harpoon'), { port, peers: [`http://127.0.0.1:${peer}`] });
      harpoons.push(h.harpoon);
    }
    urls = [`http://127.0.0.1:${pa}`, `http://127.0.0.1:${pb}`];
  });
  afterAll(async () => {
    for (const h of harpoons) await h.close();
    await t?.drop();
  });

  it('delivers a live stream of events exactly once across MySQL → Harpoon → MySQL', async () => {
    const stateSource = createCutoverStateReader({ db: t.admin, intervalMs: 100 });
    const router = createEventRouter({
      legacySource: createMysqlEventSource,
      db: t.service('event_router'),
      region: region.slug,
      hypervisorKeys: TEST_HV_KEYS,
      pollIntervalMs: 50,
      port: 0,
      redeliverAfterMs: 1000,
      harpoon: { urls, token: HARPOON_TOKEN },
      stateSource,
    });
    const { url } = await router.start();
    const fleet = startAgents(hosts, url, 20);
    await fleet.start();
    const harpoon = client();
    const ids: number[] = [];
    let via: 'mysql' | 'harpoon' = 'mysql';
    let writing = true;
    let n = 0;
    // The writer follows the fence's rule: direct writes stop before event-writes reaches full.
    let inFlight: Promise<void> = Promise.resolve();
    const writer = (async () => {
      while (writing) {
        const host = hosts[n++ % hosts.length]!;
        inFlight =
          via === 'mysql'
            ? insertEvent(t.db, { type: 'reboot', region_id: region.id, server_id: host }).then((id) => void ids.push(id))
            : harpoon.createEvent({ type: 'reboot', region: region.slug, server_id: host, key: `rh-${n}` }).then((r) => void ids.push(r.event.id));
        await inFlight;
        await sleep(15);
      }
    })();
    try {
      // Each phase carries a number of events, not a length of time: a loaded machine writes slower.
      const written = async (more: number) => {
        const target = ids.length + more;
        await waitFor(async () => ids.length >= target, 60_000, 20);
      };
      await waitFor(async () => router.stats().connected === hosts.length);
      await written(8);
      expect(router.stats().source).toBe('mysql');

      via = 'harpoon';
      await inFlight;
      await setFeatureRouting(t.db, 'event-writes', { mode: 'full' });
      await waitFor(async () => router.stats().source === 'harpoon');
      const pendingPolls = await metric(router, 'router_db_queries_total{query="pending"}');
      const backlogPolls = await metric(router, 'router_db_queries_total{query="backlog"}');
      await written(8);
      // No MySQL polling while on Harpoon: the pending and backlog reads stood still, events kept flowing.
      expect(await metric(router, 'router_db_queries_total{query="pending"}')).toBe(pendingPolls);
      expect(await metric(router, 'router_db_queries_total{query="backlog"}')).toBe(backlogPolls);
      expect(await metric(router, 'router_event_source{source="harpoon"}')).toBe(1);
      expect(await metric(router, 'router_harpoon_requests_total{op="claim"}')).toBeGreaterThan(0);

      // Rollback: back to MySQL polling; writers may use either path (Harpoon writes the same table).
      await setFeatureRouting(t.db, 'event-writes', { mode: 'canary', percent: 25 });
      await waitFor(async () => router.stats().source === 'mysql');
      await written(4);
      via = 'mysql';
      await written(4);
      writing = false;
      await writer;

      await waitFor(async () => (await doneCount(ids)) === ids.length, 30_000);
      expect(ids.length).toBeGreaterThan(20);
      expect(await t.db('event_executions').whereIn('event_id', ids)).toHaveLength(ids.length);
      expect(await duplicateExecutions(t.db, ids)).toEqual([]);
      expect(await metric(router, 'router_source_switches_total{to="harpoon"}')).toBe(1);
      expect(await metric(router, 'router_source_switches_total{to="mysql"}')).toBe(1);
      expect(fleet.stats.eventsExecuted).toBe(ids.length);
    } finally {
      writing = false;
      await writer;
      await fleet.close();
      await router.close();
    }
    await setFeatureRouting(t.db, 'event-writes', { mode: 'legacy' });
  }, 90_000);

  it('after a crash between the two writes of a completion, the event is set done and neither redelivered nor recorded again', async () => {
    await setFeatureRouting(t.db, 'event-writes', { mode: 'full' });
    const harpoon = client();
    const host = hosts[0]!;
    const { event } = await harpoon.createEvent({ type: 'reboot', region: region.slug, server_id: host });
    await harpoon.setStatus(event.id, { status: 'running' });
    // What a router killed after its MySQL commit and before Harpoon's `done` leaves behind.
    await t.db('event_executions').insert({ event_id: event.id, server_id: host, source: 'router', received_at: new Date(), finished_at: new Date() });
    const router = createEventRouter({ legacySource: createMysqlEventSource, db: t.service('event_router'), region: region.slug, hypervisorKeys: TEST_HV_KEYS, pollIntervalMs: 50, port: 0, harpoon: { urls, token: HARPOON_TOKEN } });
    const { url } = await router.start();
    const path = `${url}/v1/regions/${region.slug}/hypervisors/${host}`;
    const stream = await openStream(`${path}/events`, { authorization: `Bearer ${hvToken(host, region.slug)}` });
    try {
      await waitFor(async () => (await harpoon.getEvent(event.id)).status === 'done');
      await sleep(300);
      expect(stream.messages.map((m) => Number(m.id))).not.toContain(event.id);
      // A late ack for it (the agent's retry) is a harmless duplicate.
      const ack = await postAck(`${path}/acks`, hvToken(host, region.slug), { event_id: event.id, received_at: new Date().toISOString() });
      expect(ack).toMatchObject({ status: 200, json: { duplicate: true } });
      expect(await t.db('event_executions').where({ event_id: event.id })).toHaveLength(1);
    } finally {
      stream.close();
      await router.close();
    }
  }, 60_000);

  it('reads the state from MySQL until its HTTP state source answers, then only from it', async () => {
    await setFeatureRouting(t.db, 'event-writes', { mode: 'full' });
    const port = await freePort();
    const token = 'router-follower-token-0123456789';
    const router = createEventRouter({
      legacySource: createMysqlEventSource,
      db: t.service('event_router'),
      region: region.slug,
      hypervisorKeys: TEST_HV_KEYS,
      pollIntervalMs: 50,
      port: 0,
      harpoon: { urls, token: HARPOON_TOKEN },
      stateSource: createHttpFeatureStateSource({ url: `http://127.0.0.1:${port}`, token, intervalMs: 100 }),
    });
    await router.start();
    const plan = validatePlan({ version: 1, features: { 'event-writes': { steps: [{ name: 'full', mode: 'full', soak_seconds: 0, gates: [] }] } } });
    const admin = createCutoverAdmin({ db: t.service('proxy'), tokens: { router: token }, services: {}, plan, watch: false, stateIntervalMs: 50, port });
    try {
      await waitFor(async () => router.stats().source === 'harpoon');
      expect(await metric(router, 'router_db_queries_total{query="state"}')).toBeGreaterThan(0);
      await admin.start();
      await sleep(2500);
      const reads = await metric(router, 'router_db_queries_total{query="state"}');
      await sleep(1000);
      expect(await metric(router, 'router_db_queries_total{query="state"}')).toBe(reads);
      // A rollback reaches it over HTTP.
      await setFeatureRouting(t.db, 'event-writes', { mode: 'legacy' });
      await waitFor(async () => router.stats().source === 'mysql');
    } finally {
      await router.close();
      await admin.close();
    }
  }, 60_000);

  it('keeps delivering when the Harpoon replica it streams from goes away (resumes on the other from its cursor)', async () => {
    await setFeatureRouting(t.db, 'event-writes', { mode: 'full' });
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await startHarpoon(t.service('harpoon'), { port: pa, peers: [`http://127.0.0.1:${pb}`] });
    const b = await startHarpoon(t.service('harpoon'), { port: pb, peers: [`http://127.0.0.1:${pa}`] });
    const pair = [a.url, b.url];
    const router = createEventRouter({ legacySource: createMysqlEventSource, db: t.service('event_router'), region: region.slug, hypervisorKeys: TEST_HV_KEYS, pollIntervalMs: 50, port: 0, harpoon: { urls: pair, token: HARPOON_TOKEN } });
    const { url } = await router.start();
    const fleet = startAgents(hosts.slice(0, 3), url, 5);
    await fleet.start();
    const writer = createHarpoonClient({ urls: [b.url], token: HARPOON_TOKEN });
    const write = async (k: number, tag: string) => {
      const ids: number[] = [];
      for (let i = 0; i < k; i++) ids.push((await writer.createEvent({ type: 'reboot', region: region.slug, server_id: hosts[i % 3]!, key: `${tag}-${i}` })).event.id);
      return ids;
    };
    try {
      await waitFor(async () => router.stats().connected === 3 && router.stats().source === 'harpoon');
      const before = await write(5, 'failover-a');
      await waitFor(async () => (await doneCount(before)) === before.length);
      // The router streams from and claims through the first URL: take it away.
      await a.harpoon.close();
      const after = await write(8, 'failover-b');
      await waitFor(async () => (await doneCount(after)) === after.length, 20_000);
      expect(await metric(router, 'router_harpoon_stream_reconnects_total')).toBeGreaterThan(0);
      expect(await duplicateExecutions(t.db, [...before, ...after])).toEqual([]);
      expect(await t.db('event_executions').whereIn('event_id', [...before, ...after])).toHaveLength(before.length + after.length);
    } finally {
      await fleet.close();
      await router.close();
      await a.harpoon.close();
      await b.harpoon.close();
    }
  }, 60_000);

  it('on Harpoon it sends no SELECT while idle, and after lockdown it still delivers and acks', async () => {
    await setFeatureRouting(t.db, 'event-writes', { mode: 'full' });
    const counted = await createCountedUser(t, 'event_router');
    const userstat = await enableUserStatistics(t.db);
    const stateSource = createCutoverStateReader({ db: t.admin, intervalMs: 100 });
    const router = createEventRouter({
      legacySource: createMysqlEventSource,
      db: counted.db,
      region: region.slug,
      hypervisorKeys: TEST_HV_KEYS,
      pollIntervalMs: 50,
      port: 0,
      harpoon: { urls, token: HARPOON_TOKEN },
      stateSource,
    });
    const { url } = await router.start();
    const fleet = startAgents(hosts.slice(0, 3), url, 5);
    await fleet.start();
    const harpoon = client();
    const createSome = async (k: number, tag: string) => {
      const ids: number[] = [];
      for (let i = 0; i < k; i++) ids.push((await harpoon.createEvent({ type: 'power_on', region: region.slug, server_id: hosts[i % 3]!, key: `${tag}-${i}` })).event.id);
      return ids;
    };
    try {
      await waitFor(async () => router.stats().connected === 3 && router.stats().source === 'harpoon');
      const first = await createSome(6, 'idle');
      await waitFor(async () => (await doneCount(first)) === first.length);
      expect(userstat.enabled).toBe(true);
      const before = await userStatements(t, counted.user);
      await sleep(5000);
      const after = await userStatements(t, counted.user);
      expect({ select: after.select - before.select, update: after.update - before.update }).toEqual({ select: 0, update: 0 });

      await lockdown(t.db, t.name);
      const routerDb = (await import('../../lib/db/knex.ts')).createKnex(counted.db, { poolMax: 1 });
      await expect(routerDb('events').count({ n: '*' })).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
      await routerDb.destroy();
      const locked = await createSome(9, 'locked');
      await waitFor(async () => (await doneCount(locked)) === locked.length, 20_000);
      expect(await t.db('event_executions').whereIn('event_id', locked)).toHaveLength(locked.length);
      expect(await duplicateExecutions(t.db, [...first, ...locked])).toEqual([]);
      expect(await metric(router, 'router_poll_errors_total')).toBe(0);
    } finally {
      await fleet.close();
      await router.close();
      await userstat.restore();
      await counted.drop();
    }
  }, 90_000);
});
