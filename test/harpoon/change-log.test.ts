import type { Pool } from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createChangeLog } from '../../harpoon/change-log.ts';
import { readLog } from '../../harpoon/store.ts';
import type { Change } from '../../harpoon/types.ts';
import { createMysqlPool } from '../../lib/db/mysql-pool.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { waitFor } from '../helpers/seeded.ts';

/**
 * A replica's view of event_log (harpoon/change-log.ts) against a real log table: every entry reaches
 * the listeners once and in cursor order, whether it is appended, pushed after a gap, or read back.
 */
describe('the change log', () => {
  let t: TestDatabase;
  let pool: Pool;

  beforeAll(async () => {
    t = await createTestDatabase('change_log');
    pool = createMysqlPool(t.service('harpoon'), 4);
  });
  afterAll(async () => {
    await pool?.end();
    await t?.drop();
  });
  beforeEach(async () => {
    await t.db('event_log').del();
  });

  /** Commits log rows with these ids (a missing id is a rolled-back batch's hole) and returns them as changes. */
  async function commit(ids: number[]): Promise<Change[]> {
    await t.db('event_log').insert(ids.map((id) => ({ id, event_id: id, kind: 'created', region_id: 1, type: 'reboot', status: 'pending', payload: '{}' })));
    return readLog(pool, Math.min(...ids) - 1, Math.max(...ids), ids.length);
  }

  function open(options: { ringSize: number; gapWaitMs?: number }) {
    const queries: string[] = [];
    const log = createChangeLog(pool, { ...options, onQuery: (q) => queries.push(q) });
    const seen: number[] = [];
    log.onAppend((entries) => seen.push(...entries.map((e) => e.cursor)));
    return { log, seen, queries };
  }

  const cursors = (entries: Change[] | undefined) => entries?.map((e) => e.cursor);

  it('starts at the log head with the newest ringSize entries in memory; further back is not in memory', async () => {
    await commit([1, 2, 3, 4, 5]);
    const { log, queries } = open({ ringSize: 3 });
    await log.init();
    expect(log.head()).toBe(5);
    expect(queries).toEqual(['log_tail']);
    expect(cursors(log.fromMemory(2))).toEqual([3, 4, 5]);
    expect(cursors(log.fromMemory(3))).toEqual([4, 5]);
    expect(cursors(log.fromMemory(4))).toEqual([5]);
    expect(log.fromMemory(1)).toBeUndefined();
    expect(log.fromMemory(0)).toBeUndefined();
    expect(log.fromMemory(5)).toEqual([]);
    expect(log.fromMemory(9)).toEqual([]);
  });

  it('with no memory (ringSize 0) only the head itself is served from memory', async () => {
    await commit([1, 2]);
    const { log } = open({ ringSize: 0 });
    await log.init();
    expect(log.head()).toBe(2);
    expect(log.fromMemory(1)).toBeUndefined();
    expect(log.fromMemory(2)).toEqual([]);
  });

  it('an empty log starts at 0; appends right after the head reach the listeners once, in order', async () => {
    const { log, seen } = open({ ringSize: 10 });
    await log.init();
    expect(log.head()).toBe(0);
    const entries = await commit([1, 2, 3, 4]);
    await log.append(entries.slice(0, 2));
    await log.append(entries.slice(0, 2)); // a repeat: nothing new
    await log.append(entries.slice(1, 4)); // overlaps the head: only 3 and 4 are new
    await log.append([]);
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(log.head()).toBe(4);
    expect(cursors(log.fromMemory(0))).toEqual([1, 2, 3, 4]);
  });

  it('entries after a gap wait for the gap; if it arrives in time, nothing is read from the table', async () => {
    const { log, seen, queries } = open({ ringSize: 10, gapWaitMs: 60_000 });
    await log.init();
    const entries = await commit([1, 2, 3, 4, 5]);
    await log.append(entries.slice(3, 5));
    await log.append(entries.slice(2, 3)); // still a gap (1, 2 missing): waits too
    expect(seen).toEqual([]);
    expect(log.head()).toBe(0);
    await log.append(entries.slice(0, 2));
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    expect(log.head()).toBe(5);
    expect(queries).toEqual(['log_tail']);
  });

  it('a gap that is not pushed within gapWaitMs is read from the table, then the entries after it follow', async () => {
    const { log, seen, queries } = open({ ringSize: 10, gapWaitMs: 10 });
    await log.init();
    const entries = await commit([1, 2, 3, 4]);
    await log.append(entries.slice(3));
    await waitFor(async () => seen.length === 4);
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(queries).toEqual(['log_tail', 'log_gap']);
    expect(log.head()).toBe(4);
  });

  it('a gap of holes only (rolled-back batches) is stepped over', async () => {
    const { log, seen } = open({ ringSize: 10, gapWaitMs: 10 });
    await log.init();
    const [first] = await commit([1]);
    await log.append([first!]);
    const after = await commit([5, 6]);
    await log.append(after);
    await waitFor(async () => seen.length === 3);
    expect(seen).toEqual([1, 5, 6]);
    expect(log.head()).toBe(6);
    expect(cursors(log.fromMemory(1))).toEqual([5, 6]);
  });

  it('catchUp reads everything committed after the head, across pages, and delivers each once', async () => {
    const { log, seen, queries } = open({ ringSize: 5 });
    await log.init();
    const ids = Array.from({ length: 2105 }, (_, i) => i + 1).filter((id) => id !== 1500);
    await commit(ids);
    await log.catchUp();
    expect(log.head()).toBe(2105);
    expect(seen).toEqual(ids);
    expect(queries[0]).toBe('log_tail');
    expect(queries[1]).toBe('log_locked');
    expect(queries.slice(2).every((q) => q === 'log_gap')).toBe(true);
    // Memory keeps the newest five.
    expect(cursors(log.fromMemory(2100))).toEqual([2101, 2102, 2103, 2104, 2105]);
    expect(log.fromMemory(2099)).toBeUndefined();
    await log.catchUp();
    expect(seen).toHaveLength(ids.length);
  });

  it('memory keeps exactly the newest ringSize entries however many are appended', async () => {
    const { log } = open({ ringSize: 3 });
    await log.init();
    const entries = await commit(Array.from({ length: 20 }, (_, i) => i + 1));
    for (const [k, e] of entries.entries()) {
      await log.append([e]);
      const head = k + 1;
      expect(cursors(log.fromMemory(Math.max(0, head - 3)))).toEqual(entries.slice(Math.max(0, head - 3), head).map((x) => x.cursor));
      if (head > 3) expect(log.fromMemory(head - 4)).toBeUndefined();
    }
  });

  it('without gapWaitMs a gap waits 20 ms, not longer: the gap is read within a second', async () => {
    const { log, seen, queries } = open({ ringSize: 10 });
    await log.init();
    const entries = await commit([1, 2, 3]);
    await log.append(entries.slice(2));
    await waitFor(async () => seen.length === 3, 1_000, 5);
    expect(seen).toEqual([1, 2, 3]);
    expect(queries).toEqual(['log_tail', 'log_gap']);
  });

  it('a long gapWaitMs is kept: within it nothing is read, even after 150 ms', async () => {
    const { log, seen, queries } = open({ ringSize: 10, gapWaitMs: 60_000 });
    await log.init();
    const entries = await commit([1, 2, 3]);
    await log.append(entries.slice(2));
    await new Promise((r) => setTimeout(r, 150));
    expect(queries).toEqual(['log_tail']);
    expect(seen).toEqual([]);
    await log.append(entries.slice(0, 2));
    expect(seen).toEqual([1, 2, 3]);
  });

  it('two separate gaps pending at once are each filled, in order, and the head never jumps past the log', async () => {
    const { log, seen } = open({ ringSize: 10, gapWaitMs: 10 });
    await log.init();
    const entries = await commit([1, 2, 3, 4, 5, 6, 7]);
    await log.append([entries[2]!]); // 3: gap 1–2
    await log.append([entries[5]!]); // 6: gap 4–5
    await waitFor(async () => seen.length === 6);
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
    expect(log.head()).toBe(6);
    await log.append([entries[6]!]);
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(cursors(log.fromMemory(0))).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('a gap pushed before its timer fires leaves nothing for the timer: the head stays on the last entry', async () => {
    const { log, seen, queries } = open({ ringSize: 10, gapWaitMs: 10 });
    await log.init();
    const entries = await commit([1, 2, 3, 4]);
    await log.append([entries[2]!]);
    await log.append(entries.slice(0, 2));
    expect(seen).toEqual([1, 2, 3]);
    await new Promise((r) => setTimeout(r, 60)); // the timer has fired on an empty pending set
    expect(log.head()).toBe(3);
    expect(queries).toEqual(['log_tail']);
    await log.append([entries[3]!]);
    expect(seen).toEqual([1, 2, 3, 4]);
  });

  it('a failed read of the gap (the table unreachable for a moment) is tried again until it succeeds', async () => {
    const { log, seen, queries } = open({ ringSize: 10, gapWaitMs: 10 });
    await log.init();
    const entries = await commit([1, 2, 3]);
    await t.db.raw('RENAME TABLE event_log TO event_log_away');
    try {
      await log.append(entries.slice(2));
      await waitFor(async () => queries.filter((q) => q === 'log_gap').length >= 2, 5_000, 5);
      expect(seen).toEqual([]);
    } finally {
      await t.db.raw('RENAME TABLE event_log_away TO event_log');
    }
    await waitFor(async () => seen.length === 3, 5_000, 5);
    expect(seen).toEqual([1, 2, 3]);
    expect(log.head()).toBe(3);
  });

  it('an entry committed between init\'s locked read and its tail read is not in memory before it is appended, and then once', async () => {
    await commit([1, 2, 3]);
    // The real pool, with one entry committed just before the tail read goes out (a writer racing the start).
    const racing = new Proxy(pool, {
      get(target, prop, receiver) {
        if (prop !== 'query') return Reflect.get(target, prop, receiver) as unknown;
        return async (sql: string, params?: unknown) => {
          if (typeof sql === 'string' && sql.includes('ORDER BY id DESC')) await commit([4]);
          return target.query(sql, params as never[]);
        };
      },
    });
    const log = createChangeLog(racing, { ringSize: 10 });
    const seen: number[] = [];
    log.onAppend((entries) => seen.push(...entries.map((e) => e.cursor)));
    await log.init();
    expect(log.head()).toBe(3);
    expect(cursors(log.fromMemory(0))).toEqual([1, 2, 3]);
    await log.catchUp();
    expect(seen).toEqual([4]);
    expect(cursors(log.fromMemory(0))).toEqual([1, 2, 3, 4]);
  });
});
