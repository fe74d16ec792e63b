import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import { createHarpoonClient, type Change } from '../../harpoon/client.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { HARPOON_TOKEN, startHarpoonProcess, type HarpoonProcess } from '../helpers/harpoon.ts';
import { freePort } from '../helpers/router.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

/** The brief's fault: kill -9 a Harpoon replica while events are written and streamed. */
describe('two Harpoon replicas, one killed with SIGKILL under writes', () => {
  let t: TestDatabase;
  let seed: SeedData;
  const procs: HarpoonProcess[] = [];

  beforeAll(async () => {
    t = await createTestDatabase('harpoon_kill');
    seed = await seedWorld(t.db, { hypervisors: 4, regions: 2 });
  });
  afterAll(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    await t?.drop();
  });

  it('every subscriber, on either replica, gets every change exactly once and in order, across the kill and a restart', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const [ua, ub] = [`http://127.0.0.1:${pa}`, `http://127.0.0.1:${pb}`];
    const a = await startHarpoonProcess({ db: t.service('harpoon'), port: pa, peers: [ub], replica: 'a' });
    procs.push(a);
    const b = await startHarpoonProcess({ db: t.service('harpoon'), port: pb, peers: [ua], replica: 'b' });
    procs.push(b);
    await waitFor(async () => /^harpoon_peers_connected 1$/m.test(await (await fetch(`${ua}/metrics`)).text()));
    await waitFor(async () => /^harpoon_peers_connected 1$/m.test(await (await fetch(`${ub}/metrics`)).text()));

    // Subscribers of A fail over to B; subscribers of B stay. All start from the beginning of the log.
    const received: Change[][] = [[], [], [], []];
    const subs = [
      createHarpoonClient({ urls: [ua, ub], token: HARPOON_TOKEN }).subscribe({ cursor: 0, onChange: (c) => received[0]!.push(c) }),
      createHarpoonClient({ urls: [ua, ub], token: HARPOON_TOKEN }).subscribe({ cursor: 0, region: [seed.regions[0]!.slug], onChange: (c) => received[1]!.push(c) }),
      createHarpoonClient({ urls: [ub, ua], token: HARPOON_TOKEN }).subscribe({ cursor: 0, onChange: (c) => received[2]!.push(c) }),
      createHarpoonClient({ urls: [ub, ua], token: HARPOON_TOKEN }).subscribe({ cursor: 0, region: [seed.regions[0]!.slug], onChange: (c) => received[3]!.push(c) }),
    ];
    await waitFor(async () => subs.every((s) => s.connected()));

    // Two writers, one per replica, each failing over to the other; keys make their retries safe.
    let stop = false;
    let seq = 0;
    const writer = async (urls: string[]) => {
      const client = createHarpoonClient({ urls, token: HARPOON_TOKEN, attempts: 20 });
      while (!stop) {
        const n = seq++;
        const region = seed.regions[n % 2]!.slug;
        const { event } = await client.createEvent({ type: 'create', region, key: `kill-${n}` });
        if (n % 3 === 0) await client.setStatus(event.id, { status: 'error', message: 'cancelled' });
      }
    };
    const writers = [writer([ua, ub]), writer([ub, ua])];
    await waitFor(async () => received[2]!.length >= 60, 20_000, 20);
    a.child.kill('SIGKILL');
    expect(await a.exited).toBeNull();
    await waitFor(async () => received[2]!.length >= 160, 30_000, 20);
    // A comes back on the same port; its subscribers may return to it later.
    const a2 = await startHarpoonProcess({ db: t.service('harpoon'), port: pa, peers: [ub], replica: 'a2' });
    procs.push(a2);
    await waitFor(async () => received[2]!.length >= 220, 30_000, 20);
    stop = true;
    await Promise.all(writers);

    const log = (await t.db('event_log').orderBy('id').select('id', 'region_id')) as Array<{ id: number; region_id: number }>;
    const allIds = log.map((r) => Number(r.id));
    const region0Ids = log.filter((r) => r.region_id === seed.regions[0]!.id).map((r) => Number(r.id));
    await waitFor(async () => received[0]!.length === allIds.length && received[2]!.length === allIds.length, 15_000, 50);
    await waitFor(async () => received[1]!.length === region0Ids.length && received[3]!.length === region0Ids.length, 15_000, 50);
    for (const [i, got] of received.entries()) {
      const want = i % 2 === 0 ? allIds : region0Ids;
      // No gap, no duplicate, in order: exactly the log.
      expect(got.map((c) => c.cursor)).toEqual(want);
    }
    // Every key was created once, whatever the writers retried.
    const [dups] = (await t.db.raw('SELECT harpoon_key FROM events WHERE harpoon_key LIKE ? GROUP BY harpoon_key HAVING COUNT(*) > 1', ['kill-%'])) as [unknown[]];
    expect(dups).toEqual([]);
    // A new subscriber on the restarted replica reads the whole log from its cursor, the same.
    const late: Change[] = [];
    const lateSub = createHarpoonClient({ urls: a2.url, token: HARPOON_TOKEN }).subscribe({ cursor: 0, onChange: (c) => late.push(c) });
    await waitFor(async () => late.length === allIds.length, 15_000, 50);
    expect(late.map((c) => c.cursor)).toEqual(allIds);
    lateSub.close();
    for (const s of subs) s.close();
    for (const p of [b, a2]) {
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
    }
  });
});
