import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import { startLegacyStack, type LegacyStack } from '../../stack/stack.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { testStackOptions } from '../helpers/stack.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

/** The 2012 protocol from the seed, end to end through the real services. */
describe('a droplet create in the legacy system', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let stack: LegacyStack;
  beforeAll(async () => {
    t = await createTestDatabase('legacy_flow');
    seed = await seedWorld(t.db, { hypervisors: 12, regions: 2 });
    stack = await startLegacyStack(testStackOptions(t, seed, { pollIntervalMs: { min: 100, max: 200 }, schedulerPollMs: 100 }));
  });
  afterAll(async () => {
    await stack?.close();
    await t.drop();
  });

  it('goes pending (server_id NULL) → scheduled (server_id set) → done, executed once by its host', async () => {
    const res = await fetch(`${stack.urls.cloud}/v2/droplets`, {
      method: 'POST',
      headers: { authorization: `Bearer ${seed.tokens.get(1)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'flow.example.com', region: 'nyc1', size: '1gb', image: 'debian-8-x64' }),
    });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { droplet: { id: number }; links: { actions: Array<{ id: number }> } };
    const eventId = body.links.actions[0]!.id;

    const states: string[] = [];
    const final = await waitFor(async () => {
      const e = await t.db('events').where({ id: eventId }).first();
      const state = `${e.server_id === null ? 'unscheduled' : 'scheduled'}:${e.status}`;
      if (states.at(-1) !== state) states.push(state);
      return e.status === 'done' ? e : undefined;
    }, 20_000, 20);
    // The first observed state must be the 2012 one; later ones may be skipped between polls.
    expect(states[0]).toMatch(/^(unscheduled:pending|scheduled:pending)$/);
    expect(final.server_id).not.toBeNull();
    expect(final.available_at).not.toBeNull();

    const host = seed.servers.find((s) => s.id === final.server_id)!;
    expect(seed.regions.find((r) => r.id === host.region_id)!.slug).toBe('nyc1');
    expect(host.error_count).toBeLessThanOrEqual(3);
    expect(host.state).toBe('');
    const executions = await t.db('event_executions').where({ event_id: eventId });
    expect(executions).toHaveLength(1);
    expect(executions[0].server_id).toBe(final.server_id);
    const droplet = await t.db('droplets').where({ id: body.droplet.id }).first();
    expect(droplet).toMatchObject({ status: 'active', server_id: final.server_id });

    // Workers report their counters about once a second.
    const fleetMetrics = await waitFor(async () => {
      const text = await (await fetch(`${stack.urls.fleet}/metrics`)).text();
      return /^dobe_events_executed_total [1-9]/m.test(text) ? text : undefined;
    }, 5000);
    expect(fleetMetrics).toMatch(/^dobe_agents_connected 12$/m);

    const action = await fetch(`${stack.urls.cloud}/v2/actions/${eventId}`, { headers: { authorization: `Bearer ${seed.tokens.get(1)}` } });
    expect(((await action.json()) as { action: { status: string } }).action.status).toBe('completed');
  });
});
