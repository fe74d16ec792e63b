import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import { createHarpoonClient, type HarpoonClient } from '../../harpoon/client.ts';
import type { Harpoon } from '../../harpoon/create-harpoon.ts';
import { followEvents } from '../../harpoon/follow.ts';
import type { HarpoonEvent } from '../../harpoon/types.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { HARPOON_TOKEN, startHarpoon } from '../helpers/harpoon.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

describe('followEvents (harpoon/follow.ts): catch-up then stream against a real Harpoon', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let harpoon: Harpoon;
  let client: HarpoonClient;

  beforeAll(async () => {
    t = await createTestDatabase('harpoon_follow');
    seed = await seedWorld(t.db, { hypervisors: 4, regions: 2 });
    const h = await startHarpoon(t.service('harpoon'));
    harpoon = h.harpoon;
    client = createHarpoonClient({ urls: h.url, token: HARPOON_TOKEN });
  });
  afterAll(async () => {
    await harpoon?.close();
    await t?.drop();
  });

  it('misses nothing committed between its read and its subscription, pages, and follows events out of the set', async () => {
    const [r0, r1] = [seed.regions[0]!, seed.regions[1]!];
    const host0 = seed.servers.find((s) => s.region_id === r0.id)!;
    const open1 = (await client.createEvent({ type: 'create', region: r0.slug })).event;
    const open2 = (await client.createEvent({ type: 'reboot', region: r0.slug, server_id: host0.id })).event;
    await client.setStatus(open2.id, { status: 'running' });
    const finished = (await client.createEvent({ type: 'reboot', region: r0.slug, server_id: host0.id })).event;
    await client.setStatus(finished.id, { status: 'running' });
    await client.setStatus(finished.id, { status: 'done' });
    const elsewhere = (await client.createEvent({ type: 'create', region: r1.slug })).event;

    // A write lands after the first page was read and before the stream opens: it must still arrive.
    let during: HarpoonEvent | undefined;
    const racing: Pick<HarpoonClient, 'listEvents' | 'subscribe'> = {
      async listEvents(query) {
        const page = await client.listEvents(query);
        during ??= (await client.createEvent({ type: 'create', region: r0.slug })).event;
        return page;
      },
      subscribe: (options) => client.subscribe(options),
    };
    const seen = new Map<number, string>();
    const { caughtUp, subscription } = await followEvents({
      client: racing,
      query: { region: [r0.slug] },
      catchUpQuery: { status: ['pending', 'running'] },
      pageSize: 1,
      onEvent: (e) => seen.set(e.id, e.status),
    });
    try {
      // Paged one row at a time, only the open events of r0.
      expect(caughtUp.map((e) => e.id).sort((a, b) => a - b)).toEqual(expect.arrayContaining([open1.id, open2.id]));
      expect(caughtUp.map((e) => e.id)).not.toContain(finished.id);
      expect(caughtUp.map((e) => e.id)).not.toContain(elsewhere.id);
      await waitFor(async () => seen.get(during!.id) === 'pending', 5000);
      // The stream is not narrowed to open statuses: an event leaving the set is seen leaving.
      await client.setStatus(open2.id, { status: 'done' });
      await waitFor(async () => seen.get(open2.id) === 'done', 5000);
      expect(seen.has(elsewhere.id)).toBe(false);
    } finally {
      subscription?.close();
    }
  });

  it('stops before applying or subscribing when its owner closed during the catch-up', async () => {
    const seen: number[] = [];
    const followed = await followEvents({ client, query: {}, onEvent: (e) => seen.push(e.id), isClosed: () => true });
    expect(followed.subscription).toBeUndefined();
    expect(followed.caughtUp.length).toBeGreaterThan(0);
    expect(seen).toEqual([]);
  });
});
