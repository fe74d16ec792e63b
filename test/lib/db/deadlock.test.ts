import type { Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDeadlock, isLockFailure, retryDeadlocks } from '../../../lib/db/deadlock.ts';
import { openConnection } from '../../../lib/db/connection.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';

/** lib/db/deadlock.ts against a real deadlock: two transactions that lock the same rows in opposite orders. */
describe('retryDeadlocks', () => {
  let t: TestDatabase;
  let holder: Connection;
  let victim: Connection;

  beforeAll(async () => {
    t = await createTestDatabase('deadlock');
    await t.db.schema.createTable('dl', (tb) => {
      tb.integer('id').primary();
      tb.integer('v').notNullable();
    });
    await t.db('dl').insert(Array.from({ length: 50 }, (_, i) => ({ id: i + 1, v: 0 })));
    holder = await openConnection(t.admin);
    victim = await openConnection(t.admin);
  });
  afterAll(async () => {
    await holder?.end();
    await victim?.end();
    await t?.drop();
  });

  it('runs a deadlock victim again until it commits; the other transaction is untouched', async () => {
    // The holder changes many rows, so the server picks the one-row transaction below as the victim.
    await holder.query('BEGIN');
    await holder.query('UPDATE dl SET v = v + 1 WHERE id BETWEEN 2 AND 50');
    let tries = 0;
    const errors: unknown[] = [];
    const result = retryDeadlocks(async () => {
      tries++;
      try {
        await victim.query('BEGIN');
        await victim.query('UPDATE dl SET v = v + 10 WHERE id = 1');
        if (tries === 1) {
          // The holder now waits for row 1 (the victim's); the victim's next statement closes the cycle.
          void holder.query('UPDATE dl SET v = v + 1 WHERE id = 1').then(() => holder.query('COMMIT'));
          await new Promise((r) => setTimeout(r, 200));
        }
        await victim.query('UPDATE dl SET v = v + 10 WHERE id = 2');
        await victim.query('COMMIT');
        return 'committed';
      } catch (err) {
        errors.push(err);
        await victim.query('ROLLBACK');
        throw err;
      }
    });
    expect(await result).toBe('committed');
    expect(tries).toBe(2);
    expect(errors).toHaveLength(1);
    expect(isDeadlock(errors[0])).toBe(true);
    expect(isLockFailure(errors[0])).toBe(true);
    const rows = (await t.db('dl').whereIn('id', [1, 2, 3]).orderBy('id').pluck('v')) as number[];
    // Row 1: the holder's +1, then the victim's second try +10; row 2: holder +1, victim +10; row 3: holder only.
    expect(rows).toEqual([11, 11, 1]);
  });

  it('passes any other error on at once, and gives a deadlock up after `attempts` tries', async () => {
    let tries = 0;
    const duplicate = Object.assign(new Error('Duplicate entry'), { errno: 1062, code: 'ER_DUP_ENTRY' });
    await expect(retryDeadlocks(async () => (tries++, Promise.reject(duplicate)))).rejects.toBe(duplicate);
    expect(tries).toBe(1);
    tries = 0;
    const deadlock = Object.assign(new Error('Deadlock found'), { errno: 1213, code: 'ER_LOCK_DEADLOCK' });
    await expect(retryDeadlocks(async () => (tries++, Promise.reject(deadlock)), 3)).rejects.toBe(deadlock);
    expect(tries).toBe(3);
    tries = 0;
    await expect(retryDeadlocks(async () => (tries++, Promise.reject(deadlock)))).rejects.toBe(deadlock);
    expect(tries).toBe(5);
    // A lock wait timeout is a lock failure, but not a deadlock: the statement alone was rolled back, not retried here.
    const timeout = Object.assign(new Error('Lock wait timeout exceeded'), { errno: 1205 });
    expect([isDeadlock(timeout), isLockFailure(timeout)]).toEqual([false, true]);
    expect([isDeadlock(duplicate), isLockFailure(duplicate), isDeadlock(undefined), isLockFailure(null)]).toEqual([false, false, false, false]);
    // knex and mysql2 name it by code too.
    expect(isDeadlock({ code: 'ER_LOCK_DEADLOCK' })).toBe(true);
  });
});
