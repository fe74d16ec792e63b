import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarpoonClient, type Change } from '../../harpoon/client.ts';
import { createHarpoonReplicas, type HarpoonReplicas } from '../../harpoon/replicas.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { HARPOON_TOKEN, HARPOON_TOKENS } from '../helpers/harpoon.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('Harpoon replicas as supervised processes (harpoon/replicas.ts)', () => {
  let t: TestDatabase;
  let replicas: HarpoonReplicas;
  let region: string;

  beforeAll(async () => {
    t = await createTestDatabase('harpoon_replicas');
    const seed = await seedWorld(t.db, { hypervisors: 4, regions: 1 });
    region = seed.regions[0]!.slug;
    replicas = createHarpoonReplicas({ db: t.service('harpoon'), tokens: HARPOON_TOKENS, replicas: 2, poolSize: 2, restartDelayMs: 100 });
    await replicas.start();
  }, 120_000);
  afterAll(async () => {
    await replicas?.close();
    await t?.drop();
  });

  it('peers the replicas, restarts one killed with -9 on its port, and loses no change across it', async () => {
    const [a, b] = replicas.list();
    expect(a!.port).not.toBe(b!.port);
    // A subscriber on b sees what is written through a: the peers found each other through their fixed ports.
    const seen: Change[] = [];
    const onB = createHarpoonClient({ urls: [b!.url], token: HARPOON_TOKEN });
    const viaA = createHarpoonClient({ urls: [a!.url], token: HARPOON_TOKEN });
    const both = createHarpoonClient({ urls: replicas.urls(), token: HARPOON_TOKEN });
    const sub = onB.subscribe({ cursor: 0, region: [region], onChange: (c) => seen.push(c) });
    try {
      const first = await viaA.createEvent({ type: 'create', region, key: 'replicas-1' });
      await waitFor(async () => seen.some((c) => c.event.id === first.event.id));

      const oldPid = a!.pid;
      expect(replicas.kill('a')).toBe(true);
      await waitFor(async () => !alive(oldPid), 10_000, 20);
      // While a is down, writes fail over to b (same key: never twice).
      const during = await both.createEvent({ type: 'create', region, key: 'replicas-2' });
      await replicas.whenUp('a');
      const restarted = replicas.list().find((p) => p.name === 'a')!;
      expect(restarted.pid).not.toBe(oldPid);
      expect(restarted.url).toBe(a!.url);
      expect(replicas.restarts()).toBe(1);
      // The restarted a serves again, and its writes reach b's subscriber.
      const after = await viaA.createEvent({ type: 'create', region, key: 'replicas-3' });
      await waitFor(async () => seen.some((c) => c.event.id === after.event.id));
      const created = seen.filter((c) => c.kind === 'created').map((c) => c.event.id);
      expect(created).toEqual([first.event.id, during.event.id, after.event.id]);
      const [[rows]] = (await t.db.raw("SELECT COUNT(*) AS n FROM events WHERE harpoon_key LIKE 'replicas-%'")) as [[{ n: number }]];
      expect(Number(rows.n)).toBe(3);
    } finally {
      sub.close();
    }
  }, 120_000);

  it('stops every replica at close, and is idempotent', async () => {
    const pids = replicas.list().map((p) => p.pid);
    await Promise.all([replicas.close(), replicas.close()]);
    for (const pid of pids) expect(alive(pid)).toBe(false);
  }, 60_000);
});
