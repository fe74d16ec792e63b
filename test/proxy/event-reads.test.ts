import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import type { Harpoon } from '../../harpoon/create-harpoon.ts';
import { EVENT_READS, EVENT_WRITES } from '../../domain/features.ts';
import { createProxy, type Proxy } from '../../proxy/create-proxy.ts';
import { publicRoutes } from '../../proxy/public-routes.ts';
import { createStaticState } from '../../proxy/static-state.ts';
import { cloudClient, startTestCloud, type TestCloud } from '../helpers/cloud.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { createBody, setFeature } from '../helpers/event-writes.ts';
import { HARPOON_TOKEN, startHarpoon } from '../helpers/harpoon.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';
import { metricValue } from '../helpers/upstream.ts';

/** Sum of proxy_shadow_comparisons_total{feature="event-reads",result} over its routes. */
async function comparisons(url: string, result: 'match' | 'mismatch' | 'error'): Promise<number> {
  return metricValue(await (await fetch(`${url}/metrics`)).text(), 'proxy_shadow_comparisons_total', { feature: EVENT_READS, result }) ?? 0;
}

describe('event-reads in shadow: the real proxy in front of a real Cloud and a real Harpoon on one database', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let harpoon: Harpoon;
  let cloud: TestCloud;
  let proxy: Proxy;
  let url: string;

  beforeAll(async () => {
    t = await createTestDatabase('proxy_reads');
    seed = await seedWorld(t.db, { hypervisors: 4, regions: 2 });
    const h = await startHarpoon(t.service('harpoon'));
    harpoon = h.harpoon;
    cloud = await startTestCloud(t, { harpoon: { urls: [h.url], token: HARPOON_TOKEN } });
    // Half the customers write through Harpoon: the reads compare events written both ways.
    await setFeature(t.db, EVENT_WRITES, 'canary', 50);
    proxy = createProxy({ routes: publicRoutes({ cloud: [cloud.url], harpoon: [h.url] }), state: createStaticState({ [EVENT_READS]: { mode: 'shadow' } }) });
    url = (await proxy.start()).url;
  });
  afterAll(async () => {
    await proxy?.close();
    await cloud?.cloud.close();
    await harpoon?.close();
    await t?.drop();
  });

  it('compares equal for real action reads (0 mismatches), and counts a forced difference as a mismatch', async () => {
    const api = cloudClient(url);
    const customers = seed.customers.slice(0, 4);
    const reads: Array<{ token: string; path: string }> = [];
    for (const c of customers) {
      const token = seed.tokens.get(c.id)!;
      for (let i = 0; i < 2; i++) {
        const created = await api('POST', '/v2/droplets', { token, json: createBody(`shadow-${c.id}-${i}`, seed) });
        expect(created.status).toBe(202);
        const id = created.body.droplet.id as number;
        const server = seed.servers.find((s) => s.region_id === seed.regions[0]!.id)!;
        await t.db('droplets').where({ id }).update({ server_id: server.id, status: 'active' });
        await t.db('events').where({ droplet_id: id }).update({ status: 'done', server_id: server.id, finished_at: t.db.raw('CURRENT_TIMESTAMP(3)') });
        const reboot = await api('POST', `/v2/droplets/${id}/actions`, { token, json: { type: 'reboot' } });
        expect(reboot.status).toBe(201);
        reads.push({ token, path: `/v2/actions/${created.body.links.actions[0].id}` }, { token, path: `/v2/actions/${reboot.body.action.id}` });
        reads.push({ token, path: `/v2/droplets/${id}/actions` }, { token, path: `/v2/droplets/${id}/actions?per_page=1&page=2` });
      }
      reads.push({ token, path: '/v2/actions' }, { token, path: '/v2/actions?page=2&per_page=1' }, { token, path: '/v2/actions?per_page=0' });
    }
    // Another customer's action: 404 from both.
    const other = seed.tokens.get(seed.customers[5]!.id)!;
    reads.push({ token: other, path: reads[0]!.path });
    for (const r of reads) {
      const res = await api('GET', r.path, { token: r.token });
      expect([200, 400, 404]).toContain(res.status);
    }
    await waitFor(async () => (await comparisons(url, 'match')) + (await comparisons(url, 'mismatch')) + (await comparisons(url, 'error')) >= reads.length || undefined, 10_000, 50);
    expect(proxy.shadowSamples()).toEqual([]);
    expect(await comparisons(url, 'mismatch')).toBe(0);
    expect(await comparisons(url, 'error')).toBe(0);
    expect(await comparisons(url, 'match')).toBe(reads.length);

    // A forced difference: rename the region behind Harpoon's catalogue cache, so Cloud's join and Harpoon's cache disagree.
    const region = seed.regions[0]!;
    await t.db('regions').where({ id: region.id }).update({ slug: `${region.slug}x` });
    try {
      const res = await api('GET', reads[0]!.path, { token: reads[0]!.token });
      expect(res.body.action.region_slug).toBe(`${region.slug}x`);
      await waitFor(async () => (await comparisons(url, 'mismatch')) === 1 || undefined, 10_000, 50);
      const [sample] = proxy.shadowSamples();
      expect(sample).toMatchObject({ feature: EVENT_READS, route: '/v2/actions/:id', result: 'mismatch', differences: ['$.action.region_slug'] });
    } finally {
      await t.db('regions').where({ id: region.id }).update({ slug: region.slug });
    }
  });
});
