import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarpoonClient } from '../../harpoon/client.ts';
import type { Harpoon } from '../../harpoon/create-harpoon.ts';
import type { ServiceProcess } from '../../lib/process/service-process.ts';
import { createCutoverAdmin, type CutoverAdmin } from '../../proxy/cutover/admin.ts';
import { validatePlan } from '../../proxy/cutover/plan.ts';
import { createSchedulerV2, type SchedulerV2 } from '../../scheduler/create-scheduler-v2.ts';
import { spawnSchedulerProcess } from '../../scheduler/process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { HARPOON_TOKEN, startHarpoon } from '../helpers/harpoon.ts';
import { metricsFromDatabase, startHostMetricsServer, type HostMetricsServer } from '../helpers/host-metrics.ts';
import { freePort } from '../helpers/router.ts';
import { startCompleter } from '../helpers/scheduler-harpoon.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

const TOKENS = { follower: 'follower-token-0123456789ab' };
const FULL_STEP = [{ name: 'full', mode: 'full' as const, soak_seconds: 0, gates: [] }];
const PLAN = validatePlan({ version: 1, features: { scheduling: { steps: FULL_STEP }, 'event-writes': { steps: FULL_STEP } } });

/**
 * A Scheduler V2 replica process as the stack runs it (scheduler/process.ts,
 * SCHEDULER_V2_OPTIONS): the cutover state over HTTP from the cutover
 * admin, Harpoon for its queue and placements once event-writes is full.
 */
describe('Scheduler V2 process on Harpoon and the HTTP cutover state', () => {
  let t: TestDatabase;
  let harpoon: Harpoon;
  let admin: CutoverAdmin;
  let adminUrl: string;
  let harpoonUrl: string;
  const metrics: HostMetricsServer[] = [];
  let fresh: NodeJS.Timeout;

  beforeAll(async () => {
    t = await createTestDatabase('sched_v2_harpoon_proc');
    await seedWorld(t.db, { hypervisors: 8, regions: 2 });
    await t.db('events').whereIn('status', ['pending', 'running']).update({ status: 'done' });
    for (const list of (await metricsFromDatabase(t.db)).values()) metrics.push(await startHostMetricsServer(list));
    // The hosts keep reporting (the process runs with the default staleness limit).
    fresh = setInterval(() => metrics.forEach((m) => m.hosts.forEach((h) => (h.last_report_ms = Date.now()))), 500);
    ({ harpoon, url: harpoonUrl } = await startHarpoon(t.service('harpoon')));
    admin = createCutoverAdmin({ db: t.service('proxy'), tokens: TOKENS, services: {}, plan: PLAN, watch: false, stateIntervalMs: 50 });
    adminUrl = (await admin.start()).url;
  }, 120_000);

  afterAll(async () => {
    clearInterval(fresh);
    await admin?.close();
    await harpoon?.close();
    for (const m of metrics) await m.close();
    await t?.drop();
  });

  it('moves to Harpoon when event-writes goes full and places what Cloud writes there, once each', async () => {
    const since = Number(((await t.db('events').max('id as m')) as Array<{ m: number | null }>)[0]!.m ?? 0);
    const client = createHarpoonClient({ urls: harpoonUrl, token: HARPOON_TOKEN });
    const completer = startCompleter(t.db, client, since);
    let proc: ServiceProcess | undefined;
    try {
      await admin.controller.advance('scheduling', 'test', 'test');
      const port = await freePort();
      proc = await spawnSchedulerProcess({
        db: t.service('scheduler_v2'),
        metricsEndpoints: metrics.map((m, i) => ({ name: `r${i}`, url: m.url })),
        replicaId: 'v2-proc',
        port,
        pollIntervalMs: 50,
        harpoon: { urls: [harpoonUrl], token: HARPOON_TOKEN },
        state: { url: adminUrl, token: TOKENS.follower, intervalMs: 100 },
      });
      const mode = async () => /^scheduler_v2_harpoon_mode 1$/m.test(await (await fetch(`${proc!.url}/metrics`)).text());
      expect(await mode()).toBe(false);
      await admin.controller.advance('event-writes', 'test', 'test');
      await waitFor(mode, 20_000, 100);

      const regions = (await t.db('regions').orderBy('id').select('id', 'slug')) as Array<{ id: number; slug: string }>;
      const size = (await t.db('sizes').where({ slug: '512mb' }).first('id')) as { id: number };
      const ids: number[] = [];
      for (let i = 0; i < 6; i++) {
        const region = regions[i % regions.length]!;
        const [dropletId] = await t.db('droplets').insert({ customer_id: 1, name: `proc-${i}`, region_id: region.id, size_id: size.id, image_id: 1 });
        ids.push((await client.createEvent({ type: 'create', region: region.slug, droplet_id: Number(dropletId), customer_id: 1, args: { size: '512mb' }, key: `proc-${dropletId}` })).event.id);
      }
      await waitFor(async () => Number((await t.db('event_log').whereIn('event_id', ids).where({ kind: 'placed' }).count({ n: '*' }))[0]!.n) === ids.length, 30_000, 100);
      // The decision is recorded once Harpoon confirmed the placement: a moment after the log entry.
      const decisions = async () => Number((await t.db('placement_decisions').whereIn('event_id', ids).where({ outcome: 'placed', replica: 'v2-proc' }).count({ n: '*' }))[0]!.n);
      await waitFor(async () => (await decisions()) === ids.length, 10_000, 100);
      expect(Number((await t.db('event_log').whereIn('event_id', ids).where({ kind: 'placed' }).count({ n: '*' }))[0]!.n)).toBe(ids.length);
    } finally {
      proc?.child.kill('SIGTERM');
      await proc?.exited;
      await completer.stop();
    }
  }, 90_000);

  it('a replica killed with SIGKILL between a reservation and its placement: another replica finishes it, once', async () => {
    const since = Number(((await t.db('events').max('id as m')) as Array<{ m: number | null }>)[0]!.m ?? 0);
    const client = createHarpoonClient({ urls: harpoonUrl, token: HARPOON_TOKEN });
    const completer = startCompleter(t.db, client, since);
    let proc: ServiceProcess | undefined;
    let finisher: SchedulerV2 | undefined;
    try {
      proc = await spawnSchedulerProcess({
        db: t.service('scheduler_v2'),
        metricsEndpoints: metrics.map((m, i) => ({ name: `r${i}`, url: m.url })),
        replicaId: 'v2-killed',
        port: await freePort(),
        pollIntervalMs: 50,
        harpoon: { urls: [harpoonUrl], token: HARPOON_TOKEN },
        state: { url: adminUrl, token: TOKENS.follower, intervalMs: 100 },
        pauseBeforePlaceMs: 60_000,
      });
      await waitFor(async () => /^scheduler_v2_harpoon_mode 1$/m.test(await (await fetch(`${proc!.url}/metrics`)).text()), 20_000, 100);
      const region = (await t.db('regions').orderBy('id').first('id', 'slug')) as { id: number; slug: string };
      const size = (await t.db('sizes').where({ slug: '512mb' }).first('id')) as { id: number };
      const [dropletId] = await t.db('droplets').insert({ customer_id: 1, name: 'killed-1', region_id: region.id, size_id: size.id, image_id: 1 });
      const { event } = await client.createEvent({ type: 'create', region: region.slug, droplet_id: Number(dropletId), customer_id: 1, args: { size: '512mb' }, key: 'killed-1' });
      const reserved = await waitFor(async () => ((await t.db('droplets').where({ id: dropletId }).first('server_id')) as { server_id: number | null }).server_id, 20_000, 50);
      proc.child.kill('SIGKILL');
      await proc.exited;
      expect(((await t.db('events').where({ id: event.id }).first('server_id')) as { server_id: number | null }).server_id).toBeNull();

      finisher = createSchedulerV2({
        db: t.service('scheduler_v2'),
        metricsEndpoints: metrics.map((m, i) => ({ name: `r${i}`, url: m.url })),
        followCutover: { intervalMs: 100 },
        harpoon: { urls: [harpoonUrl], token: HARPOON_TOKEN },
        replicaId: 'v2-finisher',
        pollIntervalMs: 50,
      });
      await finisher.start();
      await waitFor(async () => ((await t.db('events').where({ id: event.id }).first('server_id')) as { server_id: number | null }).server_id === reserved, 20_000, 50);
      await waitFor(async () => (await t.db('placement_decisions').where({ event_id: event.id, outcome: 'placed' })).length === 1, 10_000, 50);
      expect(await t.db('placement_decisions').where({ event_id: event.id, outcome: 'placed' }).pluck('replica')).toEqual(['v2-finisher']);
      expect(Number((await t.db('event_log').where({ event_id: event.id, kind: 'placed' }).count({ n: '*' }))[0]!.n)).toBe(1);
    } finally {
      if (proc && proc.child.exitCode === null && proc.child.signalCode === null) {
        proc.child.kill('SIGKILL');
        await proc.exited;
      }
      await finisher?.close();
      await completer.stop();
    }
  }, 90_000);
});
