import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FEATURES } from '../../domain/features.ts';
import { allowedAfterLockdown, lockdown, readEventGrants } from '../../harpoon/lockdown.ts';
import { parsePromText, sumSamples } from '../../lib/metrics/prom-text.ts';
import { startPostMigrationStack, type PostMigrationStack } from '../../stack/post-migration.ts';
import type { SeedData } from '../../stack/seed/generate.ts';
import { cloudClient } from '../helpers/cloud-client.ts';
import { TEST_HV_KEYS, TEST_PASSWORDS, createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { createBody, setFeature } from '../helpers/event-writes.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

/**
 * The post-migration system, after lockdown, on its own: npm run
 * check:strangled runs this in a copy of the tree without legacy/, so
 * everything it starts builds and runs with the legacy deleted.
 */
describe('after lockdown, without legacy/', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let stack: PostMigrationStack;

  beforeAll(async () => {
    t = await createTestDatabase('strangled');
    seed = await seedWorld(t.db, { hypervisors: 4, regions: 2 });
    // Where a finished migration leaves the cutover: every feature at full, and the server enforcing sole access.
    for (const feature of FEATURES) await setFeature(t.db, feature, 'full');
    await lockdown(t.db, t.name);
    stack = await startPostMigrationStack({
      server: t.server,
      database: t.name,
      passwords: TEST_PASSWORDS,
      hypervisorKeys: TEST_HV_KEYS,
      serverIds: seed.servers.map((s) => s.id),
      regions: seed.regions.map((r) => r.slug),
      workMs: 1,
      harpoonReplicas: 1,
    });
  });

  afterAll(async () => {
    await stack?.close();
    await t?.drop();
  });

  it('creates a droplet through Cloud; V2 places it, a router delivers its event to its agent, and it is done once', async () => {
    // Sole access holds before anything runs: only Harpoon's user may touch events; nothing beyond lockdown's hand-offs is left.
    const grants = (await readEventGrants(t.db, t.name)).filter((g) => g.level !== 'global');
    expect([...new Set(grants.filter((g) => g.table === 'events').map((g) => g.user))]).toEqual(['harpoon']);
    expect(grants.filter((g) => !allowedAfterLockdown(g))).toEqual([]);

    const customer = seed.customers[0]!;
    const api = cloudClient(stack.urls.cloud);
    const created = await api('POST', '/v2/droplets', { token: seed.tokens.get(customer.id)!, json: createBody('strangled-1', seed) });
    expect(created.status).toBe(202);
    const dropletId: number = created.body.droplet.id;
    const actionId: number = created.body.links.actions[0].id;

    // Cloud answers from Harpoon at full: the action completes once the agent's ack is recorded.
    const action = await waitFor(async () => {
      const res = await api('GET', `/v2/actions/${actionId}`, { token: seed.tokens.get(customer.id)! });
      return res.status === 200 && res.body.action.status === 'completed' ? res.body.action : undefined;
    }, 60_000, 200);
    expect(action).toMatchObject({ id: actionId, type: 'create', resource_id: dropletId });

    const event = (await t.db('events').where({ droplet_id: dropletId }).select('id', 'type', 'status', 'server_id')) as Array<{ id: number; type: string; status: string; server_id: number | null }>;
    expect(event).toHaveLength(1);
    expect(event[0]).toMatchObject({ id: actionId, type: 'create', status: 'done' });
    const serverId = event[0]!.server_id!;
    const server = seed.servers.find((s) => s.id === serverId)!;
    expect(server.region_id).toBe(seed.regions.find((r) => r.slug === createBody('x', seed).region)!.id);

    // Placed by V2 (its fence row), executed once by the host's agent through its router, applied once.
    const executions = await t.db('event_executions').where({ event_id: actionId }).select('server_id', 'source');
    expect(executions).toEqual([{ server_id: serverId, source: 'router' }]);
    expect(await t.db('droplets').where({ id: dropletId }).first('status', 'server_id')).toEqual({ status: 'active', server_id: serverId });
    // No Scheduler V1 runs here: the placement is V2's, as its replicas count it. (The counter may count
    // one event twice: a reservation Harpoon confirms late is counted again by the batch that finishes
    // it; exactly-once placement is what the rows above show.)
    let placements = 0;
    for (const url of stack.urls.schedulers) {
      placements += sumSamples(parsePromText(await (await fetch(`${url}/metrics`)).text()).samples, 'scheduler_v2_placements_total') ?? 0;
    }
    expect(placements).toBeGreaterThanOrEqual(1);
    expect(await t.db('event_outbox').count({ n: '*' })).toEqual([{ n: 0 }]);

    // Every agent is on its router and holds no MySQL connection.
    const stats = stack.fleet.stats();
    expect(stats.onRouter).toBe(seed.servers.length);
    expect(stats.onGodQuery).toBe(0);
    expect(stats.godQueries).toBe(0);
    expect(stats.connected).toBe(0);
  });
});
