import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarpoonClient, type HarpoonClient } from '../../harpoon/client.ts';
import type { Harpoon } from '../../harpoon/create-harpoon.ts';
import { lockdown, rollbackLockdown } from '../../harpoon/lockdown.ts';
import { HOST_RESERVED } from '../../domain/catalog.ts';
import { createSchedulerV1 } from '../../legacy/scheduler-v1/create-scheduler-v1.ts';
import { createKnex } from '../../lib/db/knex.ts';
import { checkInvariants } from '../../lib/invariants.ts';
import { createSchedulerV2, type SchedulerV2 } from '../../scheduler/create-scheduler-v2.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { HARPOON_TOKEN, createCountedUser, startHarpoon, userStatements } from '../helpers/harpoon.ts';
import { metricsFromDatabase, startHostMetricsServer, type HostMetricsServer } from '../helpers/host-metrics.ts';
import { freePort } from '../helpers/router.ts';
import { recordingLogger } from '../helpers/logs.ts';
import { FULL, memoryStateSource, setFeature, startCompleter } from '../helpers/scheduler-harpoon.ts';
import { insertEvent, seedWorld, waitFor } from '../helpers/seeded.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The final state: event-writes full and `lockdown` done (no MySQL user but
 * harpoon holds a grant on events). Three V2 replicas take their queue from
 * two Harpoon replicas' stream and place through Harpoon; each create is
 * placed once, no host is over-committed, and V2 sends MySQL no statement on
 * events (it has no grant left: one would fail and be logged) and no SELECT
 * at all while idle. V1, at scheduling full, keeps running without errors
 * and takes its regions back on a rollback.
 */
describe('Scheduler V2 through Harpoon after lockdown', () => {
  let t: TestDatabase;
  const harpoons: Harpoon[] = [];
  const metrics: HostMetricsServer[] = [];
  let client: HarpoonClient;
  let urls: string[];
  let v2User: Awaited<ReturnType<typeof createCountedUser>>;
  let v1User: Awaited<ReturnType<typeof createCountedUser>>;
  let sinceEvent = 0;
  let regions: Array<{ id: number; slug: string }>;

  beforeAll(async () => {
    t = await createTestDatabase('sched_v2_harpoon');
    await seedWorld(t.db, { hypervisors: 12, regions: 2 });
    await t.db('events').whereIn('status', ['pending', 'running']).update({ status: 'done' });
    sinceEvent = Number(((await t.db('events').max('id as m')) as Array<{ m: number | null }>)[0]!.m ?? 0);
    regions = (await t.db('regions').orderBy('id').select('id', 'slug')) as Array<{ id: number; slug: string }>;
    for (const list of (await metricsFromDatabase(t.db)).values()) metrics.push(await startHostMetricsServer(list));
    const [pa, pb] = [await freePort(), await freePort()];
    for (const [port, peer] of [[pa, pb], [pb, pa]] as const) {
      const h = await startHarpoon(t.service('harpoon'), { port, peers: [`http://127.0.0.1:${peer}`] });
      harpoons.push(h.harpoon);
    }
    urls = [`http://127.0.0.1:${pa}`, `http://127.0.0.1:${pb}`];
    await waitFor(async () => /^harpoon_peers_connected 1$/m.test(await (await fetch(`${urls[0]}/metrics`)).text()));
    client = createHarpoonClient({ urls, token: HARPOON_TOKEN });
    v2User = await createCountedUser(t, 'scheduler_v2');
    v1User = await createCountedUser(t, 'scheduler_v1');
    await setFeature(t.db, 'scheduling', FULL);
    await setFeature(t.db, 'event-writes', FULL);
    await lockdown(t.db, t.name);
  }, 120_000);

  afterAll(async () => {
    for (const h of harpoons) await h.close();
    for (const m of metrics) await m.close();
    await v2User?.drop();
    await v1User?.drop();
    await t?.drop();
  });

  it('places every create written through Harpoon once, from 3 replicas, with no statement on events and no SELECT while idle', async () => {
    // The lockdown took scheduler_v2's grant on events: any statement on it would now fail.
    const probe = createKnex(v2User.db, { poolMax: 1 });
    await expect(probe('events').count({ n: '*' })).rejects.toThrow(/denied/i);
    await probe.destroy();
    const logs = recordingLogger();
    const source = memoryStateSource({ scheduling: FULL, 'event-writes': FULL });
    const replicas: SchedulerV2[] = [];
    const completer = startCompleter(t.db, client, sinceEvent);
    try {
      for (const name of ['v2-a', 'v2-b', 'v2-c']) {
        const r = createSchedulerV2({
          db: v2User.db,
          metricsEndpoints: metrics.map((m, i) => ({ name: `r${i}`, url: m.url })),
          followCutover: { intervalMs: 100 },
          stateSource: source,
          harpoon: { urls, token: HARPOON_TOKEN },
          replicaId: name,
          pollIntervalMs: 50,
          heartbeatMs: 300,
          helpAfterMs: 1500,
          maxStalenessMs: 600_000,
          logger: logs.logger,
        });
        replicas.push(r);
        await r.start();
      }
      await waitFor(async () => replicas.every((r) => r.harpoonMode()), 15_000, 50);

      const sizes = (await t.db('sizes').whereIn('slug', ['512mb', '1gb']).select('id', 'slug')) as Array<{ id: number; slug: string }>;
      const customers = (await t.db('customers').limit(6).pluck('id')) as number[];
      const created: number[] = [];
      for (let burst = 0; burst < 4; burst++) {
        const inputs = [];
        for (let i = 0; i < 15; i++) {
          const n = burst * 15 + i;
          const region = regions[n % regions.length]!;
          const size = sizes[n % sizes.length]!;
          const customer = customers[n % customers.length]!;
          const [dropletId] = await t.db('droplets').insert({ customer_id: customer, name: `hp-${n}`, region_id: region.id, size_id: size.id, image_id: 1 });
          inputs.push({ type: 'create' as const, region: region.slug, droplet_id: Number(dropletId), customer_id: customer, args: { size: size.slug }, key: `hp-create-${dropletId}` });
        }
        for (const r of await client.createEvents(inputs)) if ('event' in r) created.push(r.event.id);
        await sleep(300);
      }
      expect(created).toHaveLength(60);
      await waitFor(async () => {
        const n = await t.db('events').whereIn('id', created).where({ status: 'done' }).count({ n: '*' });
        // Decisions are recorded once Harpoon confirmed each placement: a moment after it.
        const d = await t.db('placement_decisions').whereIn('event_id', created).where({ outcome: 'placed' }).count({ n: '*' });
        return Number(n[0]!.n) === created.length && Number(d[0]!.n) >= created.length;
      }, 45_000, 200);

      const rows = (await t.db('events as e')
        .join('droplets as d', 'd.id', 'e.droplet_id')
        .whereIn('e.id', created)
        .select(
          'e.id',
          'e.server_id',
          'd.server_id as droplet_server',
          t.db.raw(`(SELECT COUNT(*) FROM event_log l WHERE l.event_id = e.id AND l.server_id IS NOT NULL AND l.kind = 'placed') AS placements`),
          t.db.raw(`(SELECT COUNT(*) FROM placement_decisions p WHERE p.event_id = e.id AND p.outcome = 'placed') AS decisions`),
        )) as Array<{ id: number; server_id: number | null; droplet_server: number | null; placements: number; decisions: number }>;
      for (const r of rows) {
        expect({ id: r.id, placed: r.server_id !== null, droplet: r.droplet_server, placements: Number(r.placements), decisions: Number(r.decisions) }).toEqual({
          id: r.id,
          placed: true,
          droplet: r.server_id,
          placements: 1,
          decisions: 1,
        });
      }
      const byReplica = (await t.db('placement_decisions').whereIn('event_id', created).where({ outcome: 'placed' }).groupBy('replica').select('replica')) as Array<{ replica: string }>;
      expect(byReplica.length).toBeGreaterThanOrEqual(2);
      const inv = await checkInvariants(t.db, { sinceEventId: sinceEvent, hostReserved: HOST_RESERVED });
      expect(inv.overcommitted_hosts).toBe(0);

      // Idle: the replicas keep heartbeating (writes) and scraping (HTTP), and send no SELECT at all.
      await sleep(500);
      const before = await userStatements(t, v2User.user);
      await sleep(2000);
      const after = await userStatements(t, v2User.user);
      expect(after.select - before.select).toBe(0);
      expect(logs.warnings()).toEqual([]);
    } finally {
      for (const r of replicas) await r.close();
      await completer.stop();
    }
  }, 90_000);

  it('V1 at scheduling full keeps running after lockdown without an error or a SELECT, and picks its regions back up on a rollback', async () => {
    const logs = recordingLogger();
    // The default: the state from MySQL (one primary-key read a pass, no statement on events).
    const fromMysql = createSchedulerV1({ db: t.service('scheduler_v1'), pollIntervalMs: 50, logger: logs.logger });
    // With a state source: not a single statement while V2 owns every region.
    const source = memoryStateSource({ scheduling: FULL });
    const v1 = createSchedulerV1({ db: v1User.db, pollIntervalMs: 50, logger: logs.logger, stateSource: source });
    try {
      await fromMysql.start();
      await v1.start();
      await sleep(300);
      const before = await userStatements(t, v1User.user);
      await sleep(1000);
      expect(await v1.runOnce()).toEqual([]);
      expect(await fromMysql.runOnce()).toEqual([]);
      const after = await userStatements(t, v1User.user);
      expect(after.select - before.select).toBe(0);
      expect(logs.warnings()).toEqual([]);
      await fromMysql.close();
      // Rollback: the grants come back, then scheduling goes back to legacy; V1 places a direct create.
      await rollbackLockdown(t.db, t.name);
      await setFeature(t.db, 'event-writes', { mode: 'legacy', percent: 0, regions: null });
      await setFeature(t.db, 'scheduling', { mode: 'legacy', percent: 0, regions: null });
      source.set('scheduling', { mode: 'legacy', percent: 0, regions: null });
      const size = (await t.db('sizes').where({ slug: '512mb' }).first('id')) as { id: number };
      const [dropletId] = await t.db('droplets').insert({ customer_id: 1, name: 'v1-back', region_id: regions[0]!.id, size_id: size.id, image_id: 1 });
      const eventId = await insertEvent(t.db, { type: 'create', region_id: regions[0]!.id, droplet_id: Number(dropletId), customer_id: 1 });
      const placed = await waitFor(async () => ((await t.db('events').where({ id: eventId }).first('server_id')) as { server_id: number | null }).server_id, 15_000, 100);
      expect(placed).toBeGreaterThan(0);
      expect(logs.warnings()).toEqual([]);
    } finally {
      await fromMysql.close();
      await v1.close();
    }
  }, 60_000);
});
