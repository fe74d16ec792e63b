import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { watchServerBacklog } from '../../demo/server-backlog.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

let t: TestDatabase;

beforeAll(async () => {
  t = await createTestDatabase('backlog');
  await t.db.raw('CREATE TABLE lock_me (id INT PRIMARY KEY, v INT) ENGINE=InnoDB');
  await t.db.raw('INSERT INTO lock_me VALUES (1, 0)');
}, 60_000);

afterAll(async () => {
  await t?.drop();
});

describe('watchServerBacklog', () => {
  it('sees a transaction waiting on a row lock, on which table and whose, and the statement that waits', async () => {
    // On the control port, where each session has a thread: in a fresh-clone CI run (2026-12-07) the second UPDATE
    // never reached its lock wait within 25 s. My reading, not measured: it sat in the pooled server's queue behind
    // the other test files' statements.
    const holder = await mysql.createConnection({ ...t.control });
    const waiter = await mysql.createConnection({ ...t.control });
    try {
      await holder.query('BEGIN');
      await holder.query('UPDATE lock_me SET v = 1 WHERE id = 1');
      const watch = watchServerBacklog(t.db, { intervalMs: 50, detail: true });
      await waiter.query('SET SESSION innodb_lock_wait_timeout = 30');
      const blocked = waiter.query('UPDATE lock_me SET v = 2 WHERE id = 1');
      // The waiter is waiting for as long as the holder holds the lock: the watcher samples it meanwhile. On a loaded
      // machine the UPDATE can take seconds to reach the server (a CI run missed it within 5 s): wait for it, up to 25 s.
      let waiting = false;
      for (const deadline = Date.now() + 25_000; !waiting && Date.now() < deadline; ) {
        const [rows] = (await t.db.raw("SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'")) as [[{ n: number }]];
        waiting = Number(rows[0]!.n) > 0;
        if (!waiting) await new Promise((r) => setTimeout(r, 50));
      }
      expect(waiting, 'the second UPDATE never waited on the lock').toBe(true);
      await new Promise((r) => setTimeout(r, 300));
      const summary = await watch.stop();
      await holder.query('COMMIT');
      await blocked;
      expect(summary.lock_waiting_transactions_peak).toBeGreaterThanOrEqual(1);
      expect(summary.lock_waits_seen!['lock_me by root']).toBeGreaterThanOrEqual(1);
      expect(summary.threads_running.peak).toBeGreaterThanOrEqual(2);
      // The final sample is taken at stop(), while the UPDATE still waits: at least 300 ms old then.
      expect(summary.oldest_statement_ms!.n).toBeGreaterThanOrEqual(1);
      expect(summary.oldest_statement_ms!.max).toBeGreaterThanOrEqual(300);
      expect(summary.events_unfinished_peak).toBe(0);
    } finally {
      await holder.end();
      await waiter.end();
    }
  });

  it('without detail reads Threads_running only, and has a sample even when stopped at once', async () => {
    const summary = await watchServerBacklog(t.db, { intervalMs: 10_000 }).stop();
    expect(summary.threads_running.n).toBe(1);
    expect(summary.threads_running.peak).toBeGreaterThanOrEqual(1);
    expect(summary.oldest_statement_ms).toBeUndefined();
    expect(summary.lock_waits_seen).toBeUndefined();
  });
});
