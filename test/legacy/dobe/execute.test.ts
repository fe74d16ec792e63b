import type { Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentEvent } from '../../../contracts/agent-event.ts';
import { claimEvent, completeEvent, recordCompletion } from '../../../legacy/dobe/execute.ts';
import { openConnection } from '../../../lib/db/connection.ts';
import { agentEvent } from '../../helpers/agent-event.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';
import { insertEvent, seedWorld } from '../../helpers/seeded.ts';

/** The god-query agent's claim and completion, called directly on one connection of the agent's user. */
describe('the legacy agent: claim and completion (legacy/dobe/execute.ts)', () => {
  let t: TestDatabase;
  let conn: Connection;

  beforeAll(async () => {
    t = await createTestDatabase('dobe_execute');
    await seedWorld(t.db, { hypervisors: 3, regions: 1 });
    await t.db('events').del();
    conn = await openConnection(t.service('dobe'));
  });
  afterAll(async () => {
    await conn?.end();
    await t?.drop();
  });

  const row = (eventId: number, over: Partial<AgentEvent> = {}): AgentEvent => agentEvent({ event_id: eventId, ...over });

  it("claims a pending event of its own host once: the row goes to 'running' with started_at, a second claim gets false", async () => {
    const id = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 1 });
    expect(await claimEvent(conn, id, 1)).toBe(true);
    const stored = await t.db('events').where({ id }).first();
    expect(stored.status).toBe('running');
    expect(stored.started_at).not.toBeNull();
    expect(await claimEvent(conn, id, 1)).toBe(false);
  });

  it("does not claim another host's event, nor one that is not pending", async () => {
    const other = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 2 });
    expect(await claimEvent(conn, other, 1)).toBe(false);
    expect((await t.db('events').where({ id: other }).first()).status).toBe('pending');
    for (const status of ['done', 'error', 'running']) {
      const id = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 1, status });
      expect(await claimEvent(conn, id, 1)).toBe(false);
      expect((await t.db('events').where({ id }).first()).status).toBe(status);
    }
  });

  it('completes a running create: done with finished_at, host state moved by the size, one execution recorded', async () => {
    const [dropletId] = await t.db('droplets').insert({ customer_id: 1, name: 'x', region_id: 1, size_id: 1, image_id: 1, server_id: 1 });
    const id = await insertEvent(t.db, { type: 'create', region_id: 1, server_id: 1, droplet_id: Number(dropletId), status: 'running' });
    const host = { memfree: 10_000, diskfree_actual: 500, vmcount: 3 };
    const after = await completeEvent(conn, row(id, { event_type: 'create', droplet_id: Number(dropletId), size_memory: 1024, size_disk: 30 }), host, new Date(), 'god-query');
    expect(after).toEqual({ memfree: 8976, diskfree_actual: 470, vmcount: 4 });
    const stored = await t.db('events').where({ id }).first();
    expect(stored.status).toBe('done');
    expect(stored.finished_at).not.toBeNull();
    expect(await t.db('event_executions').where({ event_id: id })).toHaveLength(1);
    expect((await t.db('droplets').where({ id: dropletId }).first()).status).toBe('active');
  });

  it('a completion of an event that is not running changes nothing and returns undefined / false', async () => {
    for (const status of ['pending', 'done']) {
      const id = await insertEvent(t.db, { type: 'power_off', region_id: 1, server_id: 1, status });
      const before = await t.db('servers').where({ id: 1 }).first();
      expect(await completeEvent(conn, row(id, { event_type: 'power_off' }), { memfree: 1, diskfree_actual: 1, vmcount: 1 }, new Date(), 'god-query')).toBeUndefined();
      expect(await recordCompletion(conn, row(id, { event_type: 'power_off' }), new Date(), 'god-query')).toBe(false);
      expect((await t.db('events').where({ id }).first()).status).toBe(status);
      expect(await t.db('event_executions').where({ event_id: id })).toHaveLength(0);
      expect(await t.db('servers').where({ id: 1 }).first()).toEqual(before);
    }
  });

  it('a completion that fails half-way rolls back its done transition and rethrows; the connection stays usable', async () => {
    const id = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 1, status: 'running' });
    // A server id no INT column holds: the execution record's insert fails after the done transition.
    await expect(recordCompletion(conn, row(id, { server_id: -1 }), new Date(), 'god-query')).rejects.toThrow();
    expect((await t.db('events').where({ id }).first()).status).toBe('running');
    expect(await t.db('event_executions').where({ event_id: id })).toHaveLength(0);
    expect(await recordCompletion(conn, row(id), new Date(), 'god-query')).toBe(true);
    expect((await t.db('events').where({ id }).first()).status).toBe('done');
    expect(await t.db('event_executions').where({ event_id: id })).toHaveLength(1);
  });
});
