import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFleet } from '../../../dobe/fleet.ts';
import { godQueryModeRef } from '../../../legacy/dobe/god-query-mode.ts';
import { readMysqlSnapshot } from '../../../lib/metrics/mysql-snapshot.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';
import { insertEvent, seedWorld, waitFor } from '../../helpers/seeded.ts';

const AGENTS = 120;
const SHARED = 3;

/** The "connection pooler in front of MySQL" counterfactual: agents of a process share a few connections. */
describe('the legacy fleet behind a connection pooler (--multiplex)', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('fleet_pooled');
    await seedWorld(t.db, { hypervisors: AGENTS, regions: 2 });
  });
  afterAll(() => t.drop());

  it('holds at most N connections per fleet process as the server counts them, and still polls for every host and runs each event once', async () => {
    const fleet = createFleet({
      pollingMode: godQueryModeRef({ variant: 'optimized', multiplex: SHARED }),
      db: t.service('dobe'),
      serverIds: Array.from({ length: AGENTS }, (_, i) => i + 1),
      agentsPerProcess: 60,
      pollIntervalMs: { min: 200, max: 400 },
      workMs: 1,
    });
    // From before the fleet starts: a pooler never lets the agents open connections of their own, not even to read their hosts.
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = await readMysqlSnapshot(t.db, { database: t.name });
        peak = Math.max(peak, s.byUser.dobe ?? 0);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await fleet.start();
    try {
      const snap = await waitFor(async () => {
        const s = await readMysqlSnapshot(t.db, { database: t.name });
        return (s.byUser.dobe ?? 0) > 0 ? s : undefined;
      }, 20_000);
      sampling = false;
      await sampler;
      // Two fleet processes of 60 agents, each sharing SHARED connections.
      expect(peak).toBeGreaterThan(0);
      expect(peak).toBeLessThanOrEqual(SHARED * 2);
      expect(snap.byUser.dobe).toBeLessThanOrEqual(SHARED * 2);
      const events = [await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 1 }), await insertEvent(t.db, { type: 'reboot', region_id: 2, server_id: AGENTS })];
      await waitFor(async () => (await t.db('events').whereIn('id', events).where({ status: 'done' })).length === 2, 20_000);
      const executions = await t.db('event_executions').whereIn('event_id', events).orderBy('event_id');
      expect(executions.map((x: { server_id: number }) => x.server_id)).toEqual([1, AGENTS]);
      // Multiplexing moves no poll: every agent still asks the god query on its interval.
      await waitFor(async () => fleet.stats().godQueries >= AGENTS * 2, 20_000);
    } finally {
      await fleet.close();
    }
  });
});
