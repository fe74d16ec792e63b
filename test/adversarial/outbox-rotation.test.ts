import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarpoon, type Harpoon } from '../../harpoon/create-harpoon.ts';
import { EVENT_WRITES } from '../../domain/features.ts';
import { freePort } from '../../lib/net/free-port.ts';
import type { SeedData } from '../../stack/seed/generate.ts';
import { cloudClient, startTestCloud, type TestCloud } from '../helpers/cloud.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { createBody, eventsPerDroplet, setFeature } from '../helpers/event-writes.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

/**
 * Issue 12, point 8: after one refused token (a rotation under way) the relay gave the row up: it stayed in
 * the outbox with cloud_outbox_pending 0 until some restart, and the droplet stayed `new`. Now 401/403 are
 * retried with capped backoff like 429/5xx, and the row reaches Harpoon once it knows the new token.
 */
const OLD = 'harpoon-token-old-0123456789abcdef';
const NEW = 'harpoon-token-new-0123456789abcdef';

describe('the outbox relay across a Harpoon token rotation (issue 12 point 8)', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let harpoon: Harpoon | undefined;
  let cloud: TestCloud;

  beforeAll(async () => {
    t = await createTestDatabase('adv_outbox_rotation');
    seed = await seedWorld(t.db, { hypervisors: 2, regions: 1 });
    await setFeature(t.db, EVENT_WRITES, 'full');
  });
  afterAll(async () => {
    await cloud?.cloud.close();
    await harpoon?.close();
    await t?.drop();
  });

  it('retries a 401 until Harpoon accepts the new token, and relays the row once', async () => {
    const port = await freePort();
    harpoon = createHarpoon({ db: t.service('harpoon'), tokens: { cloud: OLD }, port });
    await harpoon.start();
    // Cloud already has the new token; Harpoon does not know it yet.
    cloud = await startTestCloud(t, { harpoon: { urls: [`http://127.0.0.1:${port}`], token: NEW }, relayWaitMs: 100 });
    const res = await cloudClient(cloud.url)('POST', '/v2/droplets', { token: seed.tokens.get(seed.customers[0]!.id)!, json: createBody('rotation-1', seed) });
    expect(res.status).toBe(202);
    const id = res.body.droplet.id as number;
    await new Promise((r) => setTimeout(r, 1500));
    expect((await eventsPerDroplet(t.db, [id])).outbox).toBe(1);
    const metrics = await cloud.registry.metrics();
    expect(metrics).toMatch(/cloud_outbox_pending 1/);
    expect(metrics).not.toMatch(/cloud_outbox_rejected_total [1-9]/);

    // The rotation reaches Harpoon: it accepts both tokens.
    await harpoon.close();
    harpoon = createHarpoon({ db: t.service('harpoon'), tokens: { cloud: OLD, 'cloud-next': NEW }, port });
    await harpoon.start();
    const state = await waitFor(async () => {
      const s = await eventsPerDroplet(t.db, [id]);
      return s.outbox === 0 ? s : undefined;
    }, 20_000, 100);
    expect(state.counts.get(id)).toBe(1);
  });
});
