import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSchedulerV1 } from '../../../legacy/scheduler-v1/create-scheduler-v1.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';
import { insertEvent } from '../../helpers/seeded.ts';

/**
 * The loop against a hand-built world, so each decision is predictable:
 * region 1 with three hosts of known state.
 */
describe('Scheduler V1 loop', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('scheduler_v1');
    await t.db('regions').insert([{ id: 1, slug: 'nyc1', name: 'New York 1' }, { id: 2, slug: 'ams2', name: 'Amsterdam 2' }]);
    await t.db('sizes').insert({ id: 1, slug: '2gb', memory: 2048, vcpus: 2, disk: 40, price_monthly: 20 });
    await t.db('images').insert({ id: 1, slug: 'debian-8-x64', name: 'Debian', distribution: 'Debian', min_disk_size: 20 });
    await t.db('customers').insert([
      { id: 1, email: 'a@example.com', name: 'A', api_token_sha256: 'a'.repeat(64) },
      { id: 2, email: 'b@example.com', name: 'B', api_token_sha256: 'b'.repeat(64) },
    ]);
    const host = { region_id: 1, cpus: 24, memory: 131072, disk: 2000, vmcount: 10, diskfree_actual: 1500, error_count: 0, state: '' };
    await t.db('servers').insert([
      { id: 1, name: 'nyc1-hv0001', ...host, memfree: 40000, error_count: 5 },
      { id: 2, name: 'nyc1-hv0002', ...host, memfree: 60000 },
      { id: 3, name: 'nyc1-hv0003', ...host, memfree: 50000 },
      { id: 4, name: 'ams2-hv0001', ...host, region_id: 2, memfree: 1000 },
    ]);
  });
  afterAll(() => t.drop());

  async function createRequest(customerId: number, regionId = 1): Promise<{ dropletId: number; eventId: number }> {
    const [dropletId] = await t.db('droplets').insert({ customer_id: customerId, name: 'x', region_id: regionId, size_id: 1, image_id: 1 });
    const eventId = await insertEvent(t.db, { type: 'create', region_id: regionId, droplet_id: Number(dropletId), customer_id: customerId });
    return { dropletId: Number(dropletId), eventId };
  }

  it('places on the host with most memfree, sets server_id on event and droplet, and marks the host busy', async () => {
    const first = await createRequest(1);
    const second = await createRequest(1);
    const v1 = createSchedulerV1({ db: t.service('scheduler_v1') });
    try {
      const decisions = await v1.runOnce();
      expect(decisions.map((d) => d.decision)).toEqual([
        { action: 'place', server_id: 2, server_name: 'nyc1-hv0002', reason: 'best-memfree' },
        // hv0002 is now busy creating, and hv0001 has too many errors: hv0003 it is.
        { action: 'place', server_id: 3, server_name: 'nyc1-hv0003', reason: 'best-memfree' },
      ]);
      const event = await t.db('events').where({ id: first.eventId }).first();
      expect(event).toMatchObject({ server_id: 2, status: 'pending' });
      expect(event.available_at).not.toBeNull();
      expect((await t.db('droplets').where({ id: first.dropletId }).first()).server_id).toBe(2);
      expect((await t.db('events').where({ id: second.eventId }).first()).server_id).toBe(3);

      // Both healthy hosts are busy with creates: a third request waits, untouched.
      const third = await createRequest(2);
      expect((await v1.runOnce()).map((d) => d.decision)).toEqual([{ action: 'wait' }]);
      expect(await t.db('events').where({ id: third.eventId }).first()).toMatchObject({ server_id: null, status: 'pending' });

      // When the agent finishes, the host is free again and the waiting event is placed.
      await t.db('events').where({ id: first.eventId }).update({ status: 'done' });
      expect((await v1.runOnce()).map((d) => d.decision)).toEqual([
        { action: 'place', server_id: 2, server_name: 'nyc1-hv0002', reason: 'best-memfree' },
      ]);
    } finally {
      await v1.close();
    }
  });

  it('fails an event no host can ever take, and its droplet', async () => {
    const request = await createRequest(1, 2);
    const v1 = createSchedulerV1({ db: t.service('scheduler_v1') });
    try {
      expect((await v1.runOnce()).map((d) => d.decision.action)).toEqual(['fail']);
    } finally {
      await v1.close();
    }
    expect(await t.db('events').where({ id: request.eventId }).first()).toMatchObject({ status: 'error', server_id: null });
    expect((await t.db('droplets').where({ id: request.dropletId }).first()).status).toBe('error');
  });

  it('runs its loop, serves /metrics and counts decisions', async () => {
    await t.db('events').whereNotNull('server_id').update({ status: 'done' });
    const request = await createRequest(2);
    const v1 = createSchedulerV1({ db: t.service('scheduler_v1'), pollIntervalMs: 50, port: 0 });
    const { url } = await v1.start();
    try {
      const deadline = Date.now() + 5000;
      while ((await t.db('events').where({ id: request.eventId }).first()).server_id === null && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect((await t.db('events').where({ id: request.eventId }).first()).server_id).not.toBeNull();
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toMatch(/scheduler_v1_decisions_total\{action="place"\} [1-9]/);
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
    } finally {
      await v1.close();
      await v1.close();
    }
  });
});
