import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openConnection } from '../../../lib/db/connection.ts';
import { GOD_QUERY, godQueryParams, type GodQueryRow } from '../../../legacy/dobe/god-query.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';
import { insertEvent, seedWorld } from '../../helpers/seeded.ts';

describe('the god query', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('god_query');
    await seedWorld(t.db, { hypervisors: 12, regions: 2 });
    // Seeded maintenance events would blur the picture; this test owns the queue.
    await t.db('events').del();
  });
  afterAll(() => t.drop());

  it('returns exactly the pending events of its own hypervisor, with their context', async () => {
    const droplet = await t.db('droplets').where({ server_id: 3 }).first();
    const mine = [
      await insertEvent(t.db, { type: 'reboot', region_id: droplet.region_id, server_id: 3, droplet_id: droplet.id }),
      await insertEvent(t.db, { type: 'pdu_reboot', region_id: droplet.region_id, server_id: 3 }),
    ];
    // Each of these must stay invisible to server 3.
    await insertEvent(t.db, { type: 'reboot', region_id: droplet.region_id, server_id: 4 });
    await insertEvent(t.db, { type: 'reboot', region_id: droplet.region_id, server_id: 3, status: 'done' });
    await insertEvent(t.db, { type: 'reboot', region_id: droplet.region_id, server_id: 3, status: 'running' });
    await insertEvent(t.db, { type: 'create', region_id: droplet.region_id, server_id: null });

    const conn = await openConnection(t.service('dobe'));
    try {
      const [rows] = await conn.query(GOD_QUERY, godQueryParams(3));
      const result = rows as GodQueryRow[];
      expect(result.map((r) => r.event_id)).toEqual(mine);
      const reboot = result[0]!;
      expect(reboot).toMatchObject({ event_type: 'reboot', server_id: 3, droplet_id: droplet.id, droplet_name: droplet.name });
      expect(reboot.size_slug).toBeTruthy();
      expect(reboot.ip_addresses).toMatch(/^10\./);
      expect(result[1]).toMatchObject({ event_type: 'pdu_reboot', droplet_id: null, server_id: 3 });
    } finally {
      await conn.end();
    }
  });

  it('runs under the dobe user, which cannot delete from the queue', async () => {
    const conn = await openConnection(t.service('dobe'));
    try {
      await expect(conn.query('DELETE FROM events')).rejects.toThrow(/denied/);
      await expect(conn.query('DROP TABLE events')).rejects.toThrow(/denied/);
    } finally {
      await conn.end();
    }
    expect(Number((await t.db('events').count({ n: '*' }))[0]!.n)).toBeGreaterThan(0);
  });
});
