import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import { createHarpoonClient } from '../../harpoon/client.ts';
import type { Harpoon } from '../../harpoon/create-harpoon.ts';
import { createCutoverAdmin, type CutoverAdmin } from '../../proxy/cutover/admin.ts';
import { validatePlan } from '../../proxy/cutover/plan.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { HARPOON_TOKEN, startHarpoon } from '../helpers/harpoon.ts';
import { duplicateExecutions, freePort, routedAgents, setEventDelivery, setFeatureRouting, startRouterProcess, type RouterProcess } from '../helpers/router.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

/** The brief's fault on the Harpoon path: kill -9 a router process whose events come from Harpoon. */
describe('an Event Router on Harpoon killed with SIGKILL while events are in flight', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let harpoon: Harpoon;
  let url: string;
  let admin: CutoverAdmin;
  let adminUrl: string;
  const ADMIN_TOKENS = { router: 'router-state-token-0123456789' };
  const routers: RouterProcess[] = [];

  beforeAll(async () => {
    t = await createTestDatabase('router_harpoon_kill');
    seed = await seedWorld(t.db, { hypervisors: 10, regions: 2 });
    await t.db('events').del();
    await setEventDelivery(t.db, { mode: 'full' });
    await setFeatureRouting(t.db, 'event-writes', { mode: 'full' });
    ({ harpoon, url } = await startHarpoon(t.service('harpoon')));
    // The routers read the cutover state from the admin over HTTP, as in the stack.
    const plan = validatePlan({ version: 1, features: { 'event-writes': { steps: [{ name: 'full', mode: 'full', soak_seconds: 0, gates: [] }] } } });
    admin = createCutoverAdmin({ db: t.service('proxy'), tokens: ADMIN_TOKENS, services: {}, plan, watch: false, stateIntervalMs: 50 });
    adminUrl = (await admin.start()).url;
  });
  afterAll(async () => {
    for (const r of routers) r.child.kill('SIGKILL');
    await harpoon?.close();
    await admin?.close();
    await t?.drop();
  });

  it('loses no event and records none twice once a new process takes the same port', async () => {
    const region = seed.regions[0]!;
    const hosts = seed.servers.filter((s) => s.region_id === region.id).map((s) => s.id);
    const port = await freePort();
    const settings = { urls: [url], token: HARPOON_TOKEN };
    const state = { url: adminUrl, token: ADMIN_TOKENS.router, intervalMs: 100 };
    const first = await startRouterProcess({ db: t.service('event_router'), region: region.slug, port, harpoon: settings, state });
    routers.push(first);
    const client = createHarpoonClient({ urls: [url], token: HARPOON_TOKEN });
    const fleet = routedAgents({ dobe: t.service('dobe'), serverIds: hosts, region: region.slug, routerUrl: first.url, workMs: 150 });
    const { stats } = fleet;
    await fleet.start();
    const ids: number[] = [];
    const count = async (status: string) => Number((await t.db('events').whereIn('id', ids).where({ status }).count({ n: '*' }))[0]!.n);
    try {
      await waitFor(async () => stats.routerStreams === hosts.length);
      await waitFor(async () => /^router_event_source\{source="harpoon"\} 1$/m.test(await (await fetch(`${first.url}/metrics`)).text()));
      for (let i = 0; i < 40; i++) ids.push((await client.createEvent({ type: 'reboot', region: region.slug, server_id: hosts[i % hosts.length]!, key: `k1-${i}` })).event.id);
      await waitFor(async () => (await count('done')) >= 3 && (await count('running')) >= 3, 15_000, 20);
      first.child.kill('SIGKILL');
      expect(await first.exited).toBeNull();
      expect(await count('running')).toBeGreaterThan(0);

      // Work keeps arriving through Harpoon while no router is up.
      for (let i = 0; i < 10; i++) ids.push((await client.createEvent({ type: 'power_on', region: region.slug, server_id: hosts[i % hosts.length]!, key: `k2-${i}` })).event.id);
      await new Promise((r) => setTimeout(r, 300));
      const second = await startRouterProcess({ db: t.service('event_router'), region: region.slug, port, harpoon: settings, state });
      routers.push(second);

      await waitFor(async () => (await count('done')) === ids.length, 30_000);
      expect(await t.db('event_executions').whereIn('event_id', ids)).toHaveLength(ids.length);
      expect(await duplicateExecutions(t.db, ids)).toEqual([]);
      const metrics = await (await fetch(`${second.url}/metrics`)).text();
      expect(metrics).toMatch(/^router_event_source\{source="harpoon"\} 1$/m);
      expect(metrics).toMatch(/^router_events_acked_total [1-9]/m);
      // On Harpoon the restarted router never polled MySQL for events.
      expect(metrics).not.toMatch(/^router_db_queries_total\{query="(pending|backlog|running|claim|context|state)"\}/m);
    } finally {
      await fleet.close();
    }
    const last = routers.at(-1)!;
    last.child.kill('SIGTERM');
    expect(await last.exited).toBe(0);
  }, 90_000);
});
