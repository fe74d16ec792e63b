import type { Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentEvent } from '../../contracts/agent-event.ts';
import { applyCompletion } from '../../dobe/completion.ts';
import { openConnection } from '../../lib/db/connection.ts';
import { agentEvent } from '../helpers/agent-event.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { seedWorld } from '../helpers/seeded.ts';

/** A completion's writes besides the event's own row, as the router and the god-query agent commit them. */
describe('applyCompletion (dobe/completion.ts)', () => {
  let t: TestDatabase;
  let conn: Connection;
  let nextEvent = 1_000;

  beforeAll(async () => {
    t = await createTestDatabase('dobe_completion');
    await seedWorld(t.db, { hypervisors: 3, regions: 1 });
    await t.db('servers').update({ memfree: 50_000, diskfree_actual: 900, vmcount: 5 });
    conn = await openConnection(t.service('dobe'));
  });
  afterAll(async () => {
    await conn?.end();
    await t?.drop();
  });

  const event = (over: Partial<AgentEvent>): AgentEvent => agentEvent({ event_id: ++nextEvent, server_id: 2, ...over });

  async function apply(e: AgentEvent, receivedAt = new Date()): Promise<void> {
    await conn.beginTransaction();
    await applyCompletion(conn, e, receivedAt, 'router');
    await conn.commit();
  }

  const host = (id: number) => t.db('servers').where({ id }).first();
  const droplet = (id: number) => t.db('droplets').where({ id }).first();

  it("a create takes the size from its host, activates the droplet there, gives it its address and records the execution", async () => {
    // 0x010203: the address spells the id's bytes.
    await t.db('droplets').insert({ id: 0x010203, customer_id: 1, name: 'new', region_id: 1, size_id: 1, image_id: 1, status: 'new' });
    const before = await host(2);
    const receivedAt = new Date('2026-12-07T01:02:03.456Z');
    const e = event({ event_type: 'create', droplet_id: 0x010203, size_memory: 2048, size_disk: 40 });
    await apply(e, receivedAt);
    expect(await host(2)).toMatchObject({ memfree: before.memfree - 2048, diskfree_actual: before.diskfree_actual - 40, vmcount: before.vmcount + 1 });
    expect(await droplet(0x010203)).toMatchObject({ status: 'active', server_id: 2 });
    expect(await t.db('ip_addresses').where({ droplet_id: 0x010203 }).select('region_id', 'address', 'type')).toEqual([{ region_id: 1, address: '172.17.2.3', type: 'public' }]);
    const executions = await t.db('event_executions').where({ event_id: e.event_id });
    expect(executions).toHaveLength(1);
    expect(executions[0]).toMatchObject({ server_id: 2, source: 'router', received_at: '2026-12-07 01:02:03.456' });
  });

  it('an address spells the high bits of the id too, and a create delivered twice keeps one address', async () => {
    await t.db('droplets').insert({ id: 0x0f_ff_fe, customer_id: 1, name: 'high', region_id: 1, size_id: 1, image_id: 1 });
    const e = event({ event_type: 'create', droplet_id: 0x0f_ff_fe, size_memory: 1, size_disk: 1 });
    await apply(e);
    await apply({ ...e, event_id: ++nextEvent });
    expect((await t.db('ip_addresses').where({ droplet_id: 0x0f_ff_fe })).map((r) => r.address)).toEqual(['172.31.255.254']);
  });

  it('a destroy gives the size back, never takes vmcount below zero, and archives the droplet', async () => {
    const [id] = await t.db('droplets').insert({ customer_id: 1, name: 'old', region_id: 1, size_id: 1, image_id: 1, server_id: 3, status: 'active' });
    await t.db('servers').where({ id: 3 }).update({ vmcount: 0 });
    const before = await host(3);
    await apply(event({ event_type: 'destroy', droplet_id: Number(id), droplet_status: 'active', size_memory: 2048, size_disk: 40, server_id: 3 }));
    expect(await host(3)).toMatchObject({ memfree: before.memfree + 2048, diskfree_actual: before.diskfree_actual + 40, vmcount: 0 });
    expect(await droplet(Number(id))).toMatchObject({ status: 'archived', server_id: 3 });
    expect(await t.db('ip_addresses').where({ droplet_id: Number(id) })).toHaveLength(0);
  });

  it("an event that moves no resources leaves the host row as it was (not even updated_at); a power_off turns the droplet 'off'", async () => {
    const [id] = await t.db('droplets').insert({ customer_id: 1, name: 'on', region_id: 1, size_id: 1, image_id: 1, server_id: 1, status: 'active' });
    await t.db('servers').where({ id: 1 }).update({ updated_at: '2020-01-01 00:00:00.000' });
    const before = await host(1);
    await apply(event({ event_type: 'power_off', droplet_id: Number(id), server_id: 1, size_memory: 2048, size_disk: 40 }));
    expect(await host(1)).toEqual(before);
    expect((await droplet(Number(id))).status).toBe('off');
  });

  it('an event without a droplet, or of a type that leaves its status alone, writes only the execution record', async () => {
    const [id] = await t.db('droplets').insert({ customer_id: 1, name: 'kept', region_id: 1, size_id: 1, image_id: 1, server_id: 1, status: 'active' });
    await t.db('droplets').where({ id }).update({ updated_at: '2020-01-01 00:00:00.000' });
    const keptBefore = await droplet(Number(id));
    const dropletsBefore = await t.db('droplets').orderBy('id');
    const addressesBefore = await t.db('ip_addresses').count({ n: '*' });
    const noDroplet = event({ event_type: 'create', server_id: 1 });
    const untyped = event({ event_type: 'ipmi_reboot', droplet_id: Number(id), server_id: 1 });
    await apply(noDroplet);
    await apply(untyped);
    await apply(event({ event_type: 'reboot', server_id: 1 }));
    expect(await droplet(Number(id))).toEqual(keptBefore);
    expect(await t.db('droplets').orderBy('id')).toEqual(dropletsBefore);
    expect(await t.db('ip_addresses').count({ n: '*' })).toEqual(addressesBefore);
    expect(await t.db('event_executions').whereIn('event_id', [noDroplet.event_id, untyped.event_id])).toHaveLength(2);
  });
});
