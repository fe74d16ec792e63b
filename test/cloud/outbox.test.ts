import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteOutbox, readOutboxHealth } from '../../cloud/outbox.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { seedWorld } from '../helpers/seeded.ts';

/** The outbox's health as the server reads it (cloud/outbox.ts): what the OUTBOX lines of `cutover status` show. */
describe('outbox health', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('cloud_outbox_health');
    await seedWorld(t.db, { hypervisors: 2, regions: 1 });
  });
  afterAll(async () => {
    await t?.drop();
  });

  it('counts pending and parked rows and ages the oldest pending one in seconds; an empty table is all zero', async () => {
    expect(await readOutboxHealth(t.db)).toEqual({ pending: 0, parked: 0, oldest_pending_seconds: 0 });
    const droplet = (await t.db('droplets').first('id', 'customer_id')) as { id: number; customer_id: number };
    const row = { droplet_id: droplet.id, customer_id: droplet.customer_id, type: 'create', payload: '{}' };
    const ids = [
      ...((await t.db('event_outbox').insert({ ...row, created_at: t.db.raw('NOW(3) - INTERVAL 90 SECOND') })) as number[]),
      ...((await t.db('event_outbox').insert({ ...row, created_at: t.db.raw('NOW(3) - INTERVAL 10 SECOND') })) as number[]),
      // Parked rows are not pending, however old.
      ...((await t.db('event_outbox').insert({ ...row, created_at: t.db.raw('NOW(3) - INTERVAL 1 HOUR'), parked_at: t.db.raw('NOW(3)') })) as number[]),
    ];
    const health = await readOutboxHealth(t.db);
    expect(health).toMatchObject({ pending: 2, parked: 1 });
    expect(health.oldest_pending_seconds).toBeGreaterThanOrEqual(90);
    expect(health.oldest_pending_seconds).toBeLessThan(150);
    await deleteOutbox(t.db, ids);
    await deleteOutbox(t.db, []);
    expect(await readOutboxHealth(t.db)).toEqual({ pending: 0, parked: 0, oldest_pending_seconds: 0 });
  });
});
