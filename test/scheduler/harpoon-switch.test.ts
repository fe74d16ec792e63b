import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarpoonClient, type HarpoonClient } from '../../harpoon/client.ts';
import type { Harpoon } from '../../harpoon/create-harpoon.ts';
import { HOST_RESERVED } from '../../domain/catalog.ts';
import { FEATURE_ROW_SQL, parseFeatureRow } from '../../lib/cutover/feature-row.ts';
import { checkInvariants } from '../../lib/invariants.ts';
import { createSchedulerV2, type SchedulerV2 } from '../../scheduler/create-scheduler-v2.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { HARPOON_TOKEN, startHarpoon } from '../helpers/harpoon.ts';
import { metricsFromDatabase, startHostMetricsServer, type HostMetricsServer } from '../helpers/host-metrics.ts';
import { freePort } from '../helpers/router.ts';
import { recordingLogger } from '../helpers/logs.ts';
import { FULL, setFeature, startCompleter } from '../helpers/scheduler-harpoon.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LEGACY = { mode: 'legacy' as const, percent: 0, regions: null };

/**
 * A live switch of `event-writes` MySQL → Harpoon → MySQL under a steady
 * stream of creates, with two V2 replicas reading the state from MySQL and
 * the creates written the way Cloud does (direct and fenced below full,
 * through Harpoon at full). Every event is placed exactly once, some in
 * each mode, and no host is over-committed.
 */
describe('Scheduler V2: event-writes switch under traffic', () => {
  let t: TestDatabase;
  const harpoons: Harpoon[] = [];
  const metrics: HostMetricsServer[] = [];
  let client: HarpoonClient;
  let urls: string[];
  let sinceEvent = 0;

  beforeAll(async () => {
    t = await createTestDatabase('sched_v2_harpoon_switch');
    await seedWorld(t.db, { hypervisors: 16, regions: 2 });
    await t.db('events').whereIn('status', ['pending', 'running']).update({ status: 'done' });
    sinceEvent = Number(((await t.db('events').max('id as m')) as Array<{ m: number | null }>)[0]!.m ?? 0);
    for (const list of (await metricsFromDatabase(t.db)).values()) metrics.push(await startHostMetricsServer(list));
    const [pa, pb] = [await freePort(), await freePort()];
    for (const [port, peer] of [[pa, pb], [pb, pa]] as const) harpoons.push((await startHarpoon(t.service('harpoon'), { port, peers: [`http://127.0.0.1:${peer}`] })).harpoon);
    urls = [`http://127.0.0.1:${pa}`, `http://127.0.0.1:${pb}`];
    client = createHarpoonClient({ urls, token: HARPOON_TOKEN });
    await setFeature(t.db, 'scheduling', FULL);
    await setFeature(t.db, 'event-writes', LEGACY);
  }, 120_000);

  /** The region's host with the most memory left by the ledger. */
  async function roomiest(regionId: number, except = 0): Promise<number> {
    const [[row]] = (await t.db.raw(
      `SELECT s.id FROM servers s LEFT JOIN droplets d ON d.server_id = s.id AND d.status NOT IN ('archived', 'error') LEFT JOIN sizes z ON z.id = d.size_id
        WHERE s.region_id = ? AND s.id <> ? GROUP BY s.id, s.memory ORDER BY s.memory - COALESCE(SUM(z.memory), 0) DESC LIMIT 1`,
      [regionId, except],
    )) as [[{ id: number }]];
    return row.id;
  }

  afterAll(async () => {
    for (const h of harpoons) await h.close();
    for (const m of metrics) await m.close();
    await t?.drop();
  });

  it('places each event exactly once through MySQL → Harpoon → MySQL', async () => {
    const logs = recordingLogger();
    const replicas: SchedulerV2[] = [];
    const completer = startCompleter(t.db, client, sinceEvent);
    const regions = (await t.db('regions').orderBy('id').select('id', 'slug')) as Array<{ id: number; slug: string }>;
    const sizes = (await t.db('sizes').whereIn('slug', ['512mb', '1gb']).select('id', 'slug')) as Array<{ id: number; slug: string }>;
    const customers = (await t.db('customers').limit(6).pluck('id')) as number[];
    let stop = false;
    const created = { direct: 0, harpoon: 0 };
    // Cloud's rule: a direct write reads the event-writes row under a shared lock in its own transaction.
    const generator = (async () => {
      for (let n = 0; !stop; n++) {
        const region = regions[n % regions.length]!;
        const size = sizes[n % sizes.length]!;
        const customer = customers[n % customers.length]!;
        const viaHarpoon = await t.db.transaction(async (trx) => {
          const [rows] = (await trx.raw(`${FEATURE_ROW_SQL} LOCK IN SHARE MODE`, ['event-writes'])) as [Array<Record<string, unknown>>];
          const [dropletId] = await trx('droplets').insert({ customer_id: customer, name: `sw-${n}`, region_id: region.id, size_id: size.id, image_id: 1 });
          if (parseFeatureRow(rows[0]).routing.mode === 'full') return Number(dropletId);
          await trx('events').insert({ type: 'create', status: 'pending', region_id: region.id, customer_id: customer, droplet_id: Number(dropletId), args: JSON.stringify({ size: size.slug }) });
          return undefined;
        });
        if (viaHarpoon !== undefined) {
          await client.createEvent({ type: 'create', region: region.slug, droplet_id: viaHarpoon, customer_id: customer, args: { size: size.slug }, key: `sw-${viaHarpoon}` });
          created.harpoon++;
        } else {
          created.direct++;
        }
        await sleep(25);
      }
    })();
    const modes: boolean[][] = [[], []];
    try {
      for (const name of ['v2-a', 'v2-b']) {
        const r = createSchedulerV2({
          db: t.service('scheduler_v2'),
          metricsEndpoints: metrics.map((m, i) => ({ name: `r${i}`, url: m.url })),
          followCutover: { intervalMs: 100 },
          harpoon: { urls, token: HARPOON_TOKEN },
          replicaId: name,
          pollIntervalMs: 50,
          heartbeatMs: 300,
          leaseMs: 2000,
          maxStalenessMs: 600_000,
          logger: logs.logger,
        });
        replicas.push(r);
        await r.start();
      }
      const watch = setInterval(() => replicas.forEach((r, i) => modes[i]!.push(r.harpoonMode())), 50);
      await sleep(2000);
      await setFeature(t.db, 'event-writes', FULL);
      await waitFor(async () => replicas.every((r) => r.harpoonMode()), 15_000, 50);
      await sleep(2500);
      await setFeature(t.db, 'event-writes', LEGACY);
      await waitFor(async () => replicas.every((r) => !r.harpoonMode()), 15_000, 50);
      await sleep(2000);
      stop = true;
      await generator;
      clearInterval(watch);

      await waitFor(async () => {
        const [[row]] = (await t.db.raw(`SELECT COUNT(*) AS n FROM events WHERE id > ? AND type = 'create' AND status <> 'done'`, [sinceEvent])) as [[{ n: number }]];
        return Number(row.n) === 0;
      }, 45_000, 200);
    } finally {
      stop = true;
      await generator;
      for (const r of replicas) await r.close();
      await completer.stop();
    }
    expect(created.direct).toBeGreaterThan(10);
    expect(created.harpoon).toBeGreaterThan(10);
    for (const m of modes) expect(m.includes(true) && m.includes(false)).toBe(true);

    const [rows] = (await t.db.raw(
      `SELECT e.id, e.server_id, d.server_id AS droplet_server,
              (SELECT COUNT(*) FROM event_log l WHERE l.event_id = e.id AND l.kind = 'placed') AS via_harpoon,
              (SELECT COUNT(*) FROM placement_decisions p WHERE p.event_id = e.id AND p.outcome = 'placed') AS decisions
         FROM events e JOIN droplets d ON d.id = e.droplet_id WHERE e.id > ? AND e.type = 'create' ORDER BY e.id`,
      [sinceEvent],
    )) as [Array<{ id: number; server_id: number | null; droplet_server: number | null; via_harpoon: number; decisions: number }>];
    expect(rows.length).toBe(created.direct + created.harpoon);
    let placedViaHarpoon = 0;
    for (const r of rows) {
      expect({ id: r.id, placed: r.server_id !== null, droplet: r.droplet_server, decisions: Number(r.decisions) }).toEqual({ id: r.id, placed: true, droplet: r.server_id, decisions: 1 });
      expect(Number(r.via_harpoon)).toBeLessThanOrEqual(1);
      placedViaHarpoon += Number(r.via_harpoon);
    }
    // Some placements went through Harpoon, the rest were direct.
    expect(placedViaHarpoon).toBeGreaterThan(10);
    expect(rows.length - placedViaHarpoon).toBeGreaterThan(10);
    const inv = await checkInvariants(t.db, { sinceEventId: sinceEvent, hostReserved: HOST_RESERVED });
    expect(inv.overcommitted_hosts).toBe(0);
    expect(logs.warnings().filter((w) => !/harpoon stream dropped/.test(w.msg))).toEqual([]);
  }, 120_000);

  it('a switch to full that commits while V2 holds claims: its direct commit is fenced, and it places the events through Harpoon once', async () => {
    await setFeature(t.db, 'event-writes', LEGACY);
    const region = ((await t.db('regions').orderBy('id').first('id', 'slug')) as { id: number; slug: string });
    const size = (await t.db('sizes').where({ slug: '512mb' }).first('id')) as { id: number };
    const ids: number[] = [];
    for (let i = 0; i < 2; i++) {
      const [dropletId] = await t.db('droplets').insert({ customer_id: 1, name: `fence-${i}`, region_id: region.id, size_id: size.id, image_id: 1 });
      const [eventId] = await t.db('events').insert({ type: 'create', status: 'pending', region_id: region.id, customer_id: 1, droplet_id: Number(dropletId) });
      ids.push(Number(eventId));
    }
    const r = createSchedulerV2({
      db: t.service('scheduler_v2'),
      metricsEndpoints: metrics.map((m, i) => ({ name: `r${i}`, url: m.url })),
      followCutover: { intervalMs: 1 },
      harpoon: { urls, token: HARPOON_TOKEN },
      replicaId: 'v2-fence',
      pollIntervalMs: 50,
      maxStalenessMs: 600_000,
      faults: { pauseBeforeCommitMs: 800 },
    });
    try {
      const batch = r.placeOnce();
      await sleep(300);
      await setFeature(t.db, 'event-writes', FULL);
      expect((await batch).map((d) => d.outcome)).toEqual(['handed-back', 'handed-back']);
      const unplaced = (await t.db('events as e').join('droplets as d', 'd.id', 'e.droplet_id').whereIn('e.id', ids).select('e.server_id', 'd.server_id as ds')) as Array<{ server_id: number | null; ds: number | null }>;
      expect(unplaced).toEqual([
        { server_id: null, ds: null },
        { server_id: null, ds: null },
      ]);
      // Its loop sees full, catches up through Harpoon and places both there.
      await r.start();
      await waitFor(async () => {
        const n = await t.db('event_log').whereIn('event_id', ids).where({ kind: 'placed' }).count({ n: '*' });
        return Number(n[0]!.n) === 2;
      }, 20_000, 100);
      expect(r.harpoonMode()).toBe(true);
      // Recorded once Harpoon confirmed each placement: a moment after the log entry.
      await waitFor(async () => Number((await t.db('placement_decisions').whereIn('event_id', ids).where({ outcome: 'placed' }).count({ n: '*' }))[0]!.n) === 2, 10_000, 50);
    } finally {
      await r.close();
    }
  }, 60_000);

  it('a reservation left between reserve and place is finished by another replica; a 409 gives a reservation back', async () => {
    await setFeature(t.db, 'event-writes', FULL);
    const [r0, r1] = (await t.db('regions').orderBy('id').select('id', 'slug')) as Array<{ id: number; slug: string }>;
    const size = (await t.db('sizes').where({ slug: '512mb' }).first('id')) as { id: number };
    const create = async (region: { id: number; slug: string }, name: string) => {
      const [dropletId] = await t.db('droplets').insert({ customer_id: 1, name, region_id: region.id, size_id: size.id, image_id: 1 });
      const { event } = await client.createEvent({ type: 'create', region: region.slug, droplet_id: Number(dropletId), customer_id: 1, key: name });
      return { id: event.id, droplet: Number(dropletId) };
    };
    const replica = (name: string, faults: { pauseBeforePlaceMs?: number } = {}) =>
      createSchedulerV2({
        db: t.service('scheduler_v2'),
        metricsEndpoints: metrics.map((m, i) => ({ name: `r${i}`, url: m.url })),
        followCutover: { intervalMs: 50 },
        harpoon: { urls, token: HARPOON_TOKEN },
        replicaId: name,
        regions: [r0!.slug, r1!.slug],
        pollIntervalMs: 50,
        heartbeatMs: 200,
        helpAfterMs: 500,
        maxStalenessMs: 600_000,
        faults,
      });
    const row = async (e: { id: number; droplet: number }) =>
      (await t.db('events as e').join('droplets as d', 'd.id', 'e.droplet_id').where('e.id', e.id).first('e.server_id', 'd.server_id as ds')) as { server_id: number | null; ds: number | null };

    // A stalls between its reservation and its placement (as if it died there): B finishes the reservation.
    const stalled = replica('v2-stall', { pauseBeforePlaceMs: 4000 });
    const helper = replica('v2-finisher');
    try {
      await stalled.start();
      await waitFor(async () => stalled.harpoonMode(), 15_000, 50);
      const e1 = await create(r0!, 'crash-window-1');
      const reserved = await waitFor(async () => (await row(e1)).ds, 10_000, 50);
      expect((await row(e1)).server_id).toBeNull();
      await helper.start();
      await waitFor(async () => (await row(e1)).server_id, 10_000, 50);
      expect(await row(e1)).toEqual({ server_id: reserved, ds: reserved });
      const decisions = await waitFor(async () => {
        const list = (await t.db('placement_decisions').where({ event_id: e1.id, outcome: 'placed' }).select('replica', 'summary')) as Array<{ replica: string; summary: string }>;
        return list.length > 0 ? list : undefined;
      }, 10_000, 50);
      expect(decisions).toHaveLength(1);
      expect(decisions[0]!.replica).toBe('v2-finisher');
      expect(decisions[0]!.summary).toMatch(/finished a reservation/);
      await helper.close();

      // Another scheduler places e2 elsewhere (directly, as V1 does) while A holds its reservation: A's
      // placement is refused with 409 and the reservation follows the real host.
      const e2 = await create(r1!, 'crash-window-2');
      const mine = await waitFor(async () => (await row(e2)).ds, 10_000, 50);
      // The host with the most room left by the ledger (the direct placement checks none, as V1's).
      const other = await roomiest(r1!.id, mine);
      await t.db.transaction(async (trx) => {
        await trx('events').where({ id: e2.id }).whereNull('server_id').update({ server_id: other, available_at: trx.raw('CURRENT_TIMESTAMP(3)') });
        await trx('droplets').where({ id: e2.droplet }).update({ server_id: other });
      });
      await waitFor(async () => Number(/scheduler_v2_decisions_total\{outcome="claim-lost"\} (\d+)/.exec(await stalled.registry.metrics())?.[1] ?? 0) >= 1, 15_000, 100);
      expect(await row(e2)).toEqual({ server_id: other, ds: other });
      expect(await t.db('placement_decisions').where({ event_id: e2.id, outcome: 'placed' })).toEqual([]);
    } finally {
      await helper.close();
      await stalled.close();
    }
    const inv = await checkInvariants(t.db, { sinceEventId: sinceEvent, hostReserved: HOST_RESERVED });
    expect(inv.overcommitted_hosts).toBe(0);
  }, 60_000);

  it('a busy host whose completion never reached the stream is re-read through Harpoon and freed', async () => {
    // What the earlier tests left pending would keep hosts busy: finished before this replica starts.
    await t.db('events').whereIn('status', ['pending', 'running']).update({ status: 'done' });
    await setFeature(t.db, 'event-writes', FULL);
    const region = (await t.db('regions').orderBy('id').first('id', 'slug')) as { id: number; slug: string };
    const onlyId = await roomiest(region.id);
    const all = (await t.db('servers').where({ region_id: region.id }).orderBy('id').select('id', 'name')) as Array<{ id: number; name: string }>;
    const only = all.find((h) => h.id === onlyId)!;
    const hosts = [only, ...all.filter((h) => h.id !== onlyId)];
    // One host in service in the region: every create must go there, one at a time (busy-create).
    const set = (state: string) => {
      for (const h of hosts.slice(1)) for (const m of metrics) if (m.hosts.has(h.name)) m.set(h.name, { state });
    };
    set('maintenance');
    const served = metrics.find((m) => m.hosts.has(only.name))!;
    const before = { ...served.hosts.get(only.name)! };
    served.set(only.name, { memfree_mb: 64_000, diskfree_gb: 1000, error_count: 0, state: '' });
    const size = (await t.db('sizes').where({ slug: '512mb' }).first('id')) as { id: number };
    const create = async (name: string) => {
      const [dropletId] = await t.db('droplets').insert({ customer_id: 1, name, region_id: region.id, size_id: size.id, image_id: 1 });
      return (await client.createEvent({ type: 'create', region: region.slug, droplet_id: Number(dropletId), customer_id: 1, args: { size: '512mb' }, key: name })).event.id;
    };
    const r = createSchedulerV2({
      db: t.service('scheduler_v2'),
      metricsEndpoints: metrics.map((m, i) => ({ name: `r${i}`, url: m.url })),
      followCutover: { intervalMs: 50 },
      harpoon: { urls, token: HARPOON_TOKEN },
      replicaId: 'v2-recheck',
      regions: [region.slug],
      pollIntervalMs: 50,
      scrapeIntervalMs: 50,
      waitRetryMs: 100,
      busyRecheckMs: 500,
      maxStalenessMs: 600_000,
    });
    try {
      await r.start();
      await waitFor(async () => r.harpoonMode(), 15_000, 50);
      const first = await create('recheck-1');
      await waitFor(async () => ((await t.db('events').where({ id: first }).first('server_id')) as { server_id: number | null }).server_id === only.id, 10_000, 50);
      // Finished straight in MySQL, as a router's last direct ack during its switch: Harpoon's log never hears of it.
      await t.db('events').where({ id: first }).update({ status: 'done', started_at: t.db.raw('CURRENT_TIMESTAMP(3)'), finished_at: t.db.raw('CURRENT_TIMESTAMP(3)') });
      const second = await create('recheck-2');
      await waitFor(async () => ((await t.db('events').where({ id: second }).first('server_id')) as { server_id: number | null }).server_id === only.id, 15_000, 50);
    } finally {
      set('');
      served.set(only.name, { memfree_mb: before.memfree_mb, diskfree_gb: before.diskfree_gb });
      await r.close();
    }
  }, 60_000);
});
