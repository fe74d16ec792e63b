import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDobeAgent } from '../../dobe/agent.ts';
import { createAgentStats } from '../../dobe/agent-stats.ts';
import type { AgentEvent } from '../../contracts/agent-event.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { insertEvent, seedWorld, waitFor } from '../helpers/seeded.ts';
import { godQueryMode } from '../../legacy/dobe/god-query-mode.ts';

describe('a legacy DOBE agent', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('dobe');
    await seedWorld(t.db, { hypervisors: 6, regions: 1 });
    await t.db('events').del();
  });
  afterAll(() => t.drop());

  it('finds a placed create by polling, executes it once, and updates droplet and host state', async () => {
    const server = await t.db('servers').where({ id: 2 }).first();
    const size = await t.db('sizes').where({ slug: '4gb' }).first();
    const [dropletId] = await t.db('droplets').insert({ customer_id: 1, name: 'new-one', region_id: server.region_id, size_id: size.id, image_id: 1, server_id: 2 });
    const eventId = await insertEvent(t.db, { type: 'create', region_id: server.region_id, server_id: 2, droplet_id: Number(dropletId) });

    const stats = createAgentStats();
    const agent = createDobeAgent({ polling: godQueryMode, serverId: 2, db: t.service('dobe'), pollIntervalMs: { min: 50, max: 100 }, workMs: 5, stats });
    await agent.start();
    try {
      await waitFor(async () => (await t.db('events').where({ id: eventId }).first()).status === 'done');
    } finally {
      await agent.close();
    }
    const executions = await t.db('event_executions').where({ event_id: eventId });
    expect(executions).toHaveLength(1);
    expect(executions[0]).toMatchObject({ server_id: 2, source: 'god-query' });
    expect((await t.db('droplets').where({ id: dropletId }).first()).status).toBe('active');
    const after = await t.db('servers').where({ id: 2 }).first();
    expect(after.memfree).toBe(server.memfree - size.memory);
    expect(after.diskfree_actual).toBe(server.diskfree_actual - size.disk);
    expect(after.vmcount).toBe(server.vmcount + 1);
    expect(stats.godQueries).toBeGreaterThan(0);
    expect(stats.connected).toBe(0);
  });

  it('never executes an event twice, even with two agents polling the same host', async () => {
    const ids: number[] = [];
    for (let i = 0; i < 20; i++) ids.push(await insertEvent(t.db, { type: 'ipmi_reboot', region_id: 1, server_id: 3 }));
    const stats = createAgentStats();
    const agents = [1, 2].map(() => createDobeAgent({ polling: godQueryMode, serverId: 3, db: t.service('dobe'), pollIntervalMs: { min: 10, max: 20 }, workMs: 1, stats, random: () => 0 }));
    await Promise.all(agents.map((a) => a.start()));
    try {
      await waitFor(async () => Number((await t.db('events').whereIn('id', ids).where({ status: 'done' }).count({ n: '*' }))[0]!.n) === ids.length);
    } finally {
      await Promise.all(agents.map((a) => a.close()));
    }
    const [dups] = await t.db.raw('SELECT event_id FROM event_executions WHERE event_id IN (?) GROUP BY event_id HAVING COUNT(*) > 1', [ids]);
    expect(dups).toHaveLength(0);
    expect(await t.db('event_executions').whereIn('event_id', ids)).toHaveLength(ids.length);
  });

  it('writes its host state back to its servers row periodically', async () => {
    await t.db('servers').where({ id: 4 }).update({ memfree: 1 });
    const agent = createDobeAgent({ polling: godQueryMode, serverId: 4, db: t.service('dobe'), pollIntervalMs: { min: 20, max: 40 }, hostReportIntervalMs: 50, workMs: 0 });
    // The agent reads its state at start (memfree 1), then reports it; prove the write by changing the row under it.
    await agent.start();
    await t.db('servers').where({ id: 4 }).update({ memfree: 999_999 });
    try {
      await waitFor(async () => (await t.db('servers').where({ id: 4 }).first()).memfree === 1, 5000);
    } finally {
      await agent.close();
    }
  });

  it('after a restart, finishes the events its previous incarnation had claimed, once', async () => {
    // What a kill -9 between claim and done leaves behind.
    const id = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 5, status: 'running' });
    const agent = createDobeAgent({ polling: godQueryMode, serverId: 5, db: t.service('dobe'), pollIntervalMs: { min: 20, max: 40 }, workMs: 0 });
    await agent.start();
    try {
      await waitFor(async () => (await t.db('events').where({ id }).first()).status === 'done', 5000);
    } finally {
      await agent.close();
    }
    expect(await t.db('event_executions').where({ event_id: id })).toHaveLength(1);
  });

  it('records one execution when two completions of the same claimed event race', async () => {
    const { openConnection } = await import('../../lib/db/connection.ts');
    const { completeEvent } = await import('../../legacy/dobe/execute.ts');
    const id = await insertEvent(t.db, { type: 'pdu_reboot', region_id: 1, server_id: 6, status: 'running' });
    const row: AgentEvent = {
      event_id: id, event_type: 'pdu_reboot', event_status: 'running', event_args: null, event_created_at: '', event_available_at: null,
      droplet_id: null, droplet_name: null, droplet_status: null, customer_id: null, size_slug: null, size_memory: null, size_vcpus: null,
      size_disk: null, image_slug: null, server_id: 6, server_name: 'x', ssh_fingerprints: null, features: null, ip_addresses: null,
      server_running_events: 0, customer_droplets_on_server: 0,
    };
    const conns = await Promise.all([openConnection(t.service('dobe')), openConnection(t.service('dobe'))]);
    try {
      const host = { memfree: 1000, diskfree_actual: 100, vmcount: 1 };
      const results = await Promise.all(conns.map((c) => completeEvent(c, row, host, new Date(), 'god-query')));
      expect(results.filter((r) => r !== undefined)).toHaveLength(1);
    } finally {
      await Promise.all(conns.map((c) => c.end()));
    }
    expect(await t.db('event_executions').where({ event_id: id })).toHaveLength(1);
  });

  it('rejects bad options with the option name', () => {
    expect(() => createDobeAgent({ polling: godQueryMode, serverId: 0, db: t.service('dobe') })).toThrow(/serverId/);
    expect(() => createDobeAgent({ polling: godQueryMode, serverId: 1, db: t.service('dobe'), pollIntervalMs: { min: 10, max: 5 } })).toThrow(/pollIntervalMs/);
  });
});
