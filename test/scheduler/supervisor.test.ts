import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import { freePort } from '../../lib/net/free-port.ts';
import type { ProcessSupervisor } from '../../lib/process/supervisor.ts';
import { spawnSchedulerProcess } from '../../scheduler/process.ts';
import { createSchedulerSupervisor } from '../../scheduler/supervisor.ts';
import { alive, waitForReplacement } from '../helpers/process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { metricsFromDatabase, startHostMetricsServer, type HostMetricsServer } from '../helpers/host-metrics.ts';
import { insertEvent, seedWorld, waitFor } from '../helpers/seeded.ts';


/**
 * Scheduler V2 replicas as processes (what `npm run chaos` kills): a
 * replica killed with SIGKILL comes back on its port with a new pid and a
 * new replica id and places again; one whose parent is gone exits.
 */
describe('Scheduler V2 supervisor: replicas as processes', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let metrics: HostMetricsServer;
  let v2: ProcessSupervisor | undefined;

  beforeAll(async () => {
    t = await createTestDatabase('scheduler_supervisor');
    seed = await seedWorld(t.db, { hypervisors: 8, regions: 1 });
    metrics = await startHostMetricsServer([...(await metricsFromDatabase(t.db)).values()].flat());
  });
  afterAll(async () => {
    await v2?.close();
    await metrics?.close();
    await t?.drop();
  });

  it('restarts a replica killed with SIGKILL on the same URL, which then places events; close() stops every process', async () => {
    v2 = createSchedulerSupervisor({ replicas: 2, db: t.service('scheduler_v2'), metricsEndpoints: [{ name: seed.regions[0]!.slug, url: metrics.url }], followCutover: false, restartDelayMs: 50, pollIntervalMs: 100, idPrefix: 'sup' });
    const list = await v2.start();
    expect(list.map((r) => r.name)).toEqual(['replica-1', 'replica-2']);
    const victim = list[0]!;
    expect(v2.kill(victim.name)).toBe(true);
    await waitFor(async () => !alive(victim.pid));
    const back = await waitForReplacement(() => v2!.list().find((r) => r.name === victim.name)!, victim.pid, 60_000);
    expect(back.url).toBe(victim.url);
    expect(v2.restarts()).toBe(1);
    expect(v2.list()[1]!.pid).toBe(list[1]!.pid);
    // The replacement has a replica id of its own (its predecessor's leases expire by themselves).
    const replicas = await waitFor(async () => {
      const rows = (await t.db('scheduler_replicas').select('replica')) as Array<{ replica: string }>;
      return rows.some((r) => r.replica === 'sup-1.2') ? rows : undefined;
    }, 20_000);
    expect(replicas.map((r) => r.replica)).toContain('sup-2.1');

    // Fresh reports, as a live fleet sends them (a host silent for 10 s is skipped as "metrics stale").
    for (const name of metrics.hosts.keys()) metrics.set(name, { last_report_ms: Date.now() });
    const model = seed.droplets[0]!;
    const [dropletId] = await t.db('droplets').insert({ customer_id: model.customer_id, name: 'chaos-1', region_id: seed.regions[0]!.id, size_id: model.size_id, image_id: model.image_id });
    const eventId = await insertEvent(t.db, { type: 'create', region_id: seed.regions[0]!.id, droplet_id: Number(dropletId), customer_id: model.customer_id });
    const placed = await waitFor(async () => {
      const row = (await t.db('events').where({ id: eventId }).first()) as { server_id: number | null } | undefined;
      return row?.server_id ? row : undefined;
    }, 30_000);
    expect(placed.server_id).toBeGreaterThan(0);

    const pids = v2.list().map((r) => r.pid);
    await v2.close();
    await v2.close();
    for (const pid of pids) expect(alive(pid)).toBe(false);
    expect(v2.kill(victim.name)).toBe(false);
  }, 150_000);

  it('a replica process exits by itself when its parent is gone (its IPC channel closes)', async () => {
    const port = await freePort();
    const replica = await spawnSchedulerProcess({ db: t.service('scheduler_v2'), metricsEndpoints: [{ name: 'm', url: metrics.url }], replicaId: 'orphan', port, followCutover: false });
    expect((await fetch(`${replica.url}/readyz`)).status).toBe(200);
    replica.child.disconnect();
    expect(await replica.exited).toBe(0);
    expect(alive(replica.pid)).toBe(false);
  }, 90_000);

  it('validates its options', () => {
    expect(() => createSchedulerSupervisor({ replicas: 0, db: t.service('scheduler_v2'), metricsEndpoints: [] })).toThrow(/replicas/);
  });
});
