import type { Pool, PoolConnection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentEvent } from '../../contracts/agent-event.ts';
import { createMysqlPool } from '../../lib/db/mysql-pool.ts';
import { HOST_ROW_GUARD, executedAmong, recordGuardedCompletion, type CompletionGuard } from '../../router/completion.ts';
import { agentEvent } from '../helpers/agent-event.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { insertEvent, seedWorld } from '../helpers/seeded.ts';

/** The router's side of an ack, on the router's own database user: exactly one execution per event. */
describe('guarded completions (router/completion.ts)', () => {
  let t: TestDatabase;
  let pool: Pool;

  beforeAll(async () => {
    t = await createTestDatabase('router_completion');
    await seedWorld(t.db, { hypervisors: 3, regions: 1 });
    await t.db('events').del();
    await t.db('servers').update({ memfree: 50_000, diskfree_actual: 900, vmcount: 5 });
    pool = createMysqlPool(t.service('event_router'), 4);
  });
  afterAll(async () => {
    await pool?.end();
    await t?.drop();
  });

  const row = (eventId: number, over: Partial<AgentEvent> = {}): AgentEvent => agentEvent({ event_id: eventId, ...over });

  /** A guard that marks the event done in the transaction, then answers `answer`. */
  const marking = (id: number, answer: boolean): CompletionGuard => ({
    async lock(conn) {
      await conn.query("UPDATE events SET status = 'done' WHERE id = ?", [id]);
      return answer;
    },
    freshDroplet: false,
  });

  async function withConn<T>(fn: (conn: PoolConnection) => Promise<T>): Promise<T> {
    const conn = await pool.getConnection();
    try {
      return await fn(conn);
    } finally {
      conn.release();
    }
  }

  const executions = async (id: number) => (await t.db('event_executions').where({ event_id: id })).length;
  const host = (id: number) => t.db('servers').where({ id }).first();
  const size = async (id: number) => (await t.db('sizes').where({ id }).first()) as { memory: number; disk: number };

  it("records a completion once: a second one finds the execution and records nothing ('already-recorded')", async () => {
    const id = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 1, status: 'running' });
    expect(await withConn((c) => recordGuardedCompletion(c, row(id), new Date(), HOST_ROW_GUARD))).toBe('recorded');
    expect(await withConn((c) => recordGuardedCompletion(c, row(id), new Date(), HOST_ROW_GUARD))).toBe('already-recorded');
    expect(await executions(id)).toBe(1);
    expect((await t.db('event_executions').where({ event_id: id }).first()).source).toBe('router');
  });

  it("a create changes its host by the droplet's real size, not the size the (cached) row carries", async () => {
    const [dropletId] = await t.db('droplets').insert({ customer_id: 1, name: 'n', region_id: 1, size_id: 2, image_id: 1, status: 'new' });
    const id = await insertEvent(t.db, { type: 'create', region_id: 1, server_id: 2, droplet_id: Number(dropletId), status: 'running' });
    const before = await host(2);
    const real = await size(2);
    const stale = row(id, { event_type: 'create', server_id: 2, droplet_id: Number(dropletId), size_memory: 1, size_disk: 1 });
    expect(await withConn((c) => recordGuardedCompletion(c, stale, new Date(), HOST_ROW_GUARD))).toBe('recorded');
    expect(await host(2)).toMatchObject({ memfree: before.memfree - real.memory, diskfree_actual: before.diskfree_actual - real.disk, vmcount: before.vmcount + 1 });
    expect(await t.db('droplets').where({ id: dropletId }).first()).toMatchObject({ status: 'active', server_id: 2 });
  });

  it('a destroy of a droplet already archived (the row says active) gives nothing back twice', async () => {
    const [dropletId] = await t.db('droplets').insert({ customer_id: 1, name: 'gone', region_id: 1, size_id: 1, image_id: 1, server_id: 3, status: 'archived' });
    const id = await insertEvent(t.db, { type: 'destroy', region_id: 1, server_id: 3, droplet_id: Number(dropletId), status: 'running' });
    const before = await host(3);
    const stale = row(id, { event_type: 'destroy', server_id: 3, droplet_id: Number(dropletId), droplet_status: 'active', size_memory: 2048, size_disk: 40 });
    expect(await withConn((c) => recordGuardedCompletion(c, stale, new Date(), HOST_ROW_GUARD))).toBe('recorded');
    expect(await host(3)).toEqual(before);
    expect(await executions(id)).toBe(1);
  });

  it("an event that is neither create nor destroy, or whose droplet is gone, keeps the row's own fields", async () => {
    const [dropletId] = await t.db('droplets').insert({ customer_id: 1, name: 'on', region_id: 1, size_id: 1, image_id: 1, server_id: 1, status: 'active' });
    const reboot = await insertEvent(t.db, { type: 'power_off', region_id: 1, server_id: 1, droplet_id: Number(dropletId), status: 'running' });
    const before = await host(1);
    expect(await withConn((c) => recordGuardedCompletion(c, row(reboot, { event_type: 'power_off', droplet_id: Number(dropletId) }), new Date(), HOST_ROW_GUARD))).toBe('recorded');
    expect(await host(1)).toEqual(before);
    expect((await t.db('droplets').where({ id: dropletId }).first()).status).toBe('off');

    // A droplet id no row has: the row's own size is used (the host changes by it).
    const orphan = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 1, status: 'running' });
    const orphanRow = row(orphan, { event_type: 'create', droplet_id: 987_654, size_memory: 100, size_disk: 10 });
    const hostBefore = await host(1);
    expect(await withConn((c) => recordGuardedCompletion(c, orphanRow, new Date(), HOST_ROW_GUARD))).toBe('recorded');
    expect(await host(1)).toMatchObject({ memfree: hostBefore.memfree - 100, diskfree_actual: hostBefore.diskfree_actual - 10, vmcount: hostBefore.vmcount + 1 });
  });

  it("a guard that refuses rolls back what it did and records nothing ('not-running')", async () => {
    const id = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 1, status: 'running' });
    expect(await withConn((c) => recordGuardedCompletion(c, row(id), new Date(), marking(id, false)))).toBe('not-running');
    expect((await t.db('events').where({ id }).first()).status).toBe('running');
    expect(await executions(id)).toBe(0);
  });

  it("a guard's write stays when the execution was already recorded (an earlier completion died before its done)", async () => {
    const id = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 1, status: 'running' });
    await t.db('event_executions').insert({ event_id: id, server_id: 1, source: 'router', received_at: '2026-01-01 00:00:00.000', finished_at: '2026-01-01 00:00:00.000' });
    expect(await withConn((c) => recordGuardedCompletion(c, row(id), new Date(), marking(id, true)))).toBe('already-recorded');
    expect((await t.db('events').where({ id }).first()).status).toBe('done');
    expect(await executions(id)).toBe(1);
  });

  it('a failure part-way rolls everything back and is thrown; the connection goes back usable', async () => {
    const id = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 1, status: 'running' });
    // No INT UNSIGNED column holds server -1: the execution record fails after the guard's write.
    await expect(withConn((c) => recordGuardedCompletion(c, row(id, { server_id: -1 }), new Date(), marking(id, true)))).rejects.toThrow();
    expect((await t.db('events').where({ id }).first()).status).toBe('running');
    expect(await executions(id)).toBe(0);
  });

  it('two completions of one event racing on two connections: one records, the other finds it recorded', async () => {
    for (let round = 0; round < 5; round++) {
      const id = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 2, status: 'running' });
      const outcomes = await Promise.all([1, 2].map(() => withConn((c) => recordGuardedCompletion(c, row(id, { server_id: 2 }), new Date(), HOST_ROW_GUARD))));
      expect(outcomes.sort()).toEqual(['already-recorded', 'recorded']);
      expect(await executions(id)).toBe(1);
    }
  });

  it('executedAmong names exactly the events of the list with an execution recorded', async () => {
    const done = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 1, status: 'running' });
    const notYet = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 1, status: 'running' });
    await withConn((c) => recordGuardedCompletion(c, row(done), new Date(), HOST_ROW_GUARD));
    expect(await executedAmong(pool, [done, notYet])).toEqual(new Set([done]));
    expect(await executedAmong(pool, [notYet])).toEqual(new Set());
    expect(await executedAmong(pool, [])).toEqual(new Set());
  });
});
