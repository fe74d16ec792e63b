import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import { createHarpoon, type Harpoon } from '../../harpoon/create-harpoon.ts';
import { EVENT_WRITES } from '../../domain/features.ts';
import { freePort } from '../../lib/net/free-port.ts';
import { cloudClient } from '../helpers/cloud.ts';
import { startCloudProcess, type CloudProcess } from '../helpers/cloud-process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { createBody, eventsPerDroplet, setFeature } from '../helpers/event-writes.ts';
import { HARPOON_TOKEN, HARPOON_TOKENS } from '../helpers/harpoon.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

describe('Cloud killed with SIGKILL while its outbox holds rows', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let harpoon: Harpoon | undefined;
  let harpoonPort = 0;
  const procs: CloudProcess[] = [];

  beforeAll(async () => {
    t = await createTestDatabase('cloud_kill');
    seed = await seedWorld(t.db, { hypervisors: 4, regions: 2 });
    await setFeature(t.db, EVENT_WRITES, 'full');
  });
  afterAll(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    await harpoon?.close();
    await t?.drop();
  });

  async function cloudAt(harpoonPort: number): Promise<CloudProcess> {
    // A dead Cloud's rows wait for their lease to run out before a live one takes them: a short lease
    // keeps the test about the restart, not about the default 10 s lease on a loaded machine.
    const p = await startCloudProcess({
      db: t.service('cloud'),
      port: await freePort(),
      harpoon: { urls: [`http://127.0.0.1:${harpoonPort}`], token: HARPOON_TOKEN },
      relayWaitMs: 100,
      outbox: { leaseMs: 1500, scanMs: 200 },
    });
    procs.push(p);
    return p;
  }

  async function dropletsNamed(prefix: string): Promise<number[]> {
    return (await t.db('droplets').where('name', 'like', `${prefix}%`).orderBy('id').pluck('id')) as number[];
  }

  it('a restart relays the rows once, even with two Clouds recovering the same rows at once', async () => {
    harpoonPort = await freePort();
    const token = seed.tokens.get(seed.customers[0]!.id)!;
    // Harpoon is not running yet: every create ends in the outbox.
    const a = await cloudAt(harpoonPort);
    const api = cloudClient(a.url);
    for (let i = 0; i < 6; i++) {
      const res = await api('POST', '/v2/droplets', { token, json: createBody(`kill-${i}`, seed) });
      expect(res.status).toBe(202);
      expect(res.body.links.actions).toEqual([]);
    }
    const ids = await dropletsNamed('kill-');
    expect(ids).toHaveLength(6);
    expect((await eventsPerDroplet(t.db, ids)).outbox).toBe(6);
    a.child.kill('SIGKILL');
    await a.exited;

    harpoon = createHarpoon({ db: t.service('harpoon'), tokens: HARPOON_TOKENS, port: harpoonPort });
    await harpoon.start();
    // Both take the dead Cloud's rows once its leases run out: the outbox-<id> keys make a second relay a no-op.
    await Promise.all([cloudAt(harpoonPort), cloudAt(harpoonPort)]);
    const state = await waitFor(async () => {
      const s = await eventsPerDroplet(t.db, ids);
      return s.outbox === 0 ? s : undefined;
    }, 60_000, 100);
    expect([...state.counts.values()]).toEqual([1, 1, 1, 1, 1, 1]);
    const keys = (await t.db('events').whereIn('droplet_id', ids).pluck('harpoon_key')) as string[];
    expect(new Set(keys).size).toBe(6);
  });

  it('kill -9 in the middle of a burst of creates: every droplet that exists has exactly one event after a restart', async () => {
    const victim = procs.at(-1)!;
    const api = cloudClient(victim.url);
    const token = seed.tokens.get(seed.customers[1]!.id)!;
    const burst = Array.from({ length: 40 }, (_, i) => api('POST', '/v2/droplets', { token, json: createBody(`burst-${i}`, seed) }).catch(() => undefined));
    // Kill once some creates have committed, while others are in their transaction or relay.
    await waitFor(async () => (await dropletsNamed('burst-')).length >= 5 || undefined, 10_000, 5);
    victim.child.kill('SIGKILL');
    const answers = await Promise.all(burst);
    await victim.exited;
    const ids = await dropletsNamed('burst-');
    const left = (await eventsPerDroplet(t.db, ids)).outbox;
    // The restart: a fresh Cloud takes the victim's expired leases and relays what it committed but had not relayed.
    await cloudAt(harpoonPort);
    const state = await waitFor(async () => {
      const s = await eventsPerDroplet(t.db, ids);
      return s.outbox === 0 ? s : undefined;
    }, 60_000, 100);
    expect([...state.counts.values()].every((n) => n === 1), JSON.stringify([...state.counts])).toBe(true);
    // Every create that was answered 202 is among them: no answered droplet was lost.
    const answered = answers.filter((a) => a?.status === 202).map((a) => a!.body.droplet.id as number);
    expect(ids).toEqual(expect.arrayContaining(answered));
    console.log(`burst: ${answered.length} answered, ${ids.length} committed, ${left} left in the outbox at the kill`);
  });
});
