import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import { freePort } from '../../lib/net/free-port.ts';
import { spawnRouterProcess } from '../../router/process.ts';
import { createRouterSupervisor, type RouterSupervisor } from '../../router/supervisor.ts';
import { MYSQL_SOURCE_MODULE } from '../../legacy/router/mysql-source.ts';
import { alive, waitForReplacement } from '../helpers/process.ts';
import { TEST_HV_KEYS, createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';


describe('router supervisor: one Event Router process per region', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let routers: RouterSupervisor | undefined;

  beforeAll(async () => {
    t = await createTestDatabase('router_supervisor');
    seed = await seedWorld(t.db, { hypervisors: 6, regions: 2 });
  });
  afterAll(async () => {
    await routers?.close();
    await t.drop();
  });

  it('restarts a router killed with SIGKILL on the same URL, and close() stops every process', async () => {
    const regions = seed.regions.map((r) => r.slug);
    routers = createRouterSupervisor({ regions, db: t.service('event_router'), hypervisorKeys: TEST_HV_KEYS, pollIntervalMs: 200, restartDelayMs: 50, legacySource: MYSQL_SOURCE_MODULE });
    const list = await routers.start();
    expect(list.map((r) => r.region)).toEqual(regions);
    for (const r of list) {
      expect(r.up).toBe(true);
      const res = await fetch(`${r.url}/readyz`);
      expect(res.status).toBe(200);
    }
    const victim = list[0]!;
    expect(routers.kill(victim.region, 'SIGKILL')).toBe(true);
    await waitFor(async () => !alive(victim.pid));
    // Back on the same port with another pid; the other region's router never stopped.
    const back = await waitForReplacement(() => routers!.routers().find((r) => r.region === victim.region)!, victim.pid, 20_000);
    expect(back.url).toBe(victim.url);
    expect(routers.restarts()).toBe(1);
    expect(routers.routers().find((r) => r.region === list[1]!.region)!.pid).toBe(list[1]!.pid);
    const metrics = await (await fetch(`${back.url}/metrics`)).text();
    expect(metrics).toMatch(/^router_connected_agents 0/m);

    const pids = routers.routers().map((r) => r.pid);
    await routers.close();
    await routers.close();
    for (const pid of pids) expect(alive(pid)).toBe(false);
    expect(routers.kill(victim.region)).toBe(false);
  }, 120_000);

  it('a router process exits by itself when its supervisor is gone (its IPC channel closes)', async () => {
    const port = await freePort();
    const router = await spawnRouterProcess({ db: t.service('event_router'), region: seed.regions[0]!.slug, port, hypervisorKeys: TEST_HV_KEYS, legacySource: MYSQL_SOURCE_MODULE });
    expect((await fetch(`${router.url}/readyz`)).status).toBe(200);
    // What a SIGKILLed parent looks like from the child's side.
    router.child.disconnect();
    expect(await router.exited).toBe(0);
    expect(alive(router.pid)).toBe(false);
  }, 90_000);

  it('fails start() with ROUTER_ERR_START and the process output when a region does not exist', async () => {
    const bad = createRouterSupervisor({ regions: ['zz9'], db: t.service('event_router'), hypervisorKeys: TEST_HV_KEYS, legacySource: MYSQL_SOURCE_MODULE });
    const began = Date.now();
    await expect(bad.start()).rejects.toMatchObject({ code: 'ROUTER_ERR_START', message: expect.stringContaining('ROUTER_ERR_UNKNOWN_REGION') });
    // The failed process exits (it lets go of its IPC lifeline) instead of idling until the 60 s ready timeout.
    expect(Date.now() - began).toBeLessThan(30_000);
    await bad.close();
  }, 90_000);

  it('validates its options', () => {
    expect(() => createRouterSupervisor({ regions: [], db: t.service('event_router'), hypervisorKeys: TEST_HV_KEYS })).toThrow(/regions/);
    expect(() => createRouterSupervisor({ regions: ['a', 'a'], db: t.service('event_router'), hypervisorKeys: TEST_HV_KEYS })).toThrow(/repeats/);
  });
});
