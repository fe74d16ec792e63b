import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFleet } from '../../dobe/fleet.ts';
import { readMysqlSnapshot } from '../../lib/metrics/mysql-snapshot.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { insertEvent, seedWorld, waitFor } from '../helpers/seeded.ts';
import { GOD_QUERY_MODE } from '../../legacy/dobe/god-query-mode.ts';

const AGENTS = 300;

describe('the legacy fleet', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('fleet');
    await seedWorld(t.db, { hypervisors: AGENTS, regions: 3 });
  });
  afterAll(() => t.drop());

  it('holds one MySQL connection per hypervisor, across processes, as the server counts them', async () => {
    const fleet = createFleet({ pollingMode: GOD_QUERY_MODE,
      db: t.service('dobe'),
      serverIds: Array.from({ length: AGENTS }, (_, i) => i + 1),
      agentsPerProcess: 120,
      pollIntervalMs: { min: 300, max: 600 },
      workMs: 1,
    });
    await fleet.start();
    try {
      const snap = await readMysqlSnapshot(t.db, { database: t.name });
      expect(snap.byUser.dobe).toBe(AGENTS);
      expect(fleet.processes()).toHaveLength(3);
      expect(new Set(fleet.processes().map((p) => p.pid)).size).toBe(3);

      // Every agent polls: an event for the last hypervisor gets executed by its own agent.
      const eventId = await insertEvent(t.db, { type: 'reboot', region_id: 3, server_id: AGENTS });
      await waitFor(async () => (await t.db('events').where({ id: eventId }).first()).status === 'done');
      expect(await t.db('event_executions').where({ event_id: eventId })).toMatchObject([{ server_id: AGENTS }]);
      await waitFor(async () => fleet.stats().godQueries >= AGENTS);
      const metrics = await fleet.registry.metrics();
      expect(metrics).toMatch(/dobe_agents_connected 300/);
    } finally {
      await fleet.close();
    }
    await waitFor(async () => !(await readMysqlSnapshot(t.db, { database: t.name })).byUser.dobe, 10_000);
  });
});
