import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventRouterPlan } from '../../demo/event-router-stage.ts';
import { startLegacyStack, type LegacyStack } from '../../stack/stack.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { testStackOptions } from '../helpers/stack.ts';
import { startCountingRelay, type CountingRelay } from '../helpers/mysql-wire.ts';
import { seedWorld } from '../helpers/seeded.ts';

/**
 * The stack's control sessions (the monitor, the cutover admin's state store and gate reads) on the server's
 * control port: here a counting relay stands in for MariaDB's extra_port, so what goes there is on the wire.
 */
describe('a stack given a control port', () => {
  let t: TestDatabase;
  let stack: LegacyStack;
  let relay: CountingRelay;
  beforeAll(async () => {
    t = await createTestDatabase('control_port');
    const seed = await seedWorld(t.db, { hypervisors: 4, regions: 2 });
    relay = await startCountingRelay({ host: t.server.host, port: t.server.port });
    const regions = seed.regions.map((r) => r.slug);
    stack = await startLegacyStack(
      testStackOptions(t, seed, {
        controlPort: relay.port,
        eventRouter: { regions, plan: eventRouterPlan(regions, 0), adminToken: 'control-port-test-admin-token-0123', pollIntervalMs: 200, modeCheckEvery: 1 },
      }),
    );
  });
  afterAll(async () => {
    await stack?.close();
    await relay?.close();
    await t?.drop();
  });

  it('sends the monitor\'s reads and the cutover\'s state there, and nothing of the legacy load', async () => {
    const before = relay.queries();
    const metrics = await fetch(`${stack.urls.monitor}/metrics`);
    expect(await metrics.text()).toContain('mysql_global_status_threads_connected');
    const afterScrape = relay.queries();
    expect(afterScrape).toBeGreaterThan(before);

    const er = stack.eventRouter!;
    const status = await er.controller.statusOf('event-delivery');
    await er.controller.advance('event-delivery', 'test', 'control port', { expectedVersion: status.version });
    const row = await t.db('cutover_features').where({ feature: 'event-delivery' }).first();
    expect(row.version).toBeGreaterThan(status.version);
    expect(relay.queries()).toBeGreaterThan(afterScrape);

    // Who came through: the monitor and the admin (its state store as the proxy user), never a legacy service.
    expect([...relay.users()].sort()).toEqual(['proxy', 'strangler_monitor']);
  });
});
