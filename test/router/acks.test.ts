import type { Pool } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAckSlots } from '../../router/acks.ts';
import { createMysqlPool } from '../../lib/db/mysql-pool.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

/** Ack slots (router/acks.ts): acks never take the poll's connection, whatever their number. */
describe('ack slots', () => {
  let t: TestDatabase;
  let pool: Pool;
  const POOL = 3;

  beforeAll(async () => {
    t = await createTestDatabase('router_acks');
    pool = createMysqlPool(t.service('event_router'), POOL);
  });
  afterAll(async () => {
    await pool?.end();
    await t?.drop();
  });

  /** Runs `n` acks that each hold a connection (SLEEP on the server) and reports how many ran at once, as the server saw them. */
  async function flood(n: number): Promise<{ results: number[]; peak: number }> {
    const slots = createAckSlots(pool, POOL);
    let running = 0;
    let peak = 0;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        slots.withConnection(async (conn) => {
          peak = Math.max(peak, ++running);
          try {
            const [rows] = await conn.query('SELECT SLEEP(0.05) AS s, CONNECTION_ID() AS c, ? AS i', [i]);
            return Number((rows as Array<{ i: number }>)[0]!.i);
          } finally {
            running--;
          }
        }),
      ),
    );
    return { results, peak };
  }

  it('runs every ack, at most pool size - 1 at a time (one connection is always left to the poll), in the order they came', async () => {
    const { results, peak } = await flood(8);
    expect(results).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(peak).toBe(POOL - 1);
  });

  it('a failing ack gives its slot and connection back; the next ones still run', async () => {
    const slots = createAckSlots(pool, POOL);
    const outcomes = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) =>
        slots.withConnection(async (conn) => {
          if (i % 2 === 0) throw new Error(`ack ${i} failed`);
          await conn.query('SELECT 1');
          return i;
        }),
      ),
    );
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
    expect((await flood(4)).peak).toBe(POOL - 1);
  });

  it('withSlot bounds work that takes no connection of its own the same way', async () => {
    const slots = createAckSlots(pool, POOL);
    let running = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 6 }, () =>
        slots.withSlot(async () => {
          peak = Math.max(peak, ++running);
          await pool.query('SELECT SLEEP(0.02)');
          running--;
        }),
      ),
    );
    expect(peak).toBe(POOL - 1);
  });
});
