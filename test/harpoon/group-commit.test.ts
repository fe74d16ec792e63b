import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClosedError, QueueFullError, createGroupCommit, type GroupCommitOptions } from '../../harpoon/group-commit.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

/**
 * Group commit on its own, writing into a table of a real database: which
 * requests commit together (one transaction each batch), which are refused,
 * and what a failing request takes down with it.
 */
describe('group commit (harpoon/group-commit.ts)', () => {
  let t: TestDatabase;
  /** Each batch's rows, in the order the batches were written. */
  let batches: string[][];

  beforeAll(async () => {
    t = await createTestDatabase('group_commit');
    await t.db.schema.createTable('gc_items', (tb) => {
      tb.increments('id');
      tb.string('v', 32).notNullable().unique();
      tb.integer('batch').notNullable();
    });
  });
  afterAll(() => t?.drop());

  /** One transaction per batch; a duplicate `v` fails the whole batch. Returns the row ids in item order. */
  async function write(items: string[]): Promise<number[]> {
    const batch = batches.push([...items]) - 1;
    return t.db.transaction(async (trx) => {
      const ids: number[] = [];
      for (const v of items) ids.push(Number((await trx('gc_items').insert({ v, batch }))[0]));
      return ids;
    });
  }

  function gc(over: Partial<GroupCommitOptions<string, number>> = {}) {
    batches = [];
    return createGroupCommit<string, number>({ maxDelayMs: 60_000, maxRows: 100, maxQueue: 1000, write, ...over });
  }

  const rows = async (prefix: string) => (await t.db('gc_items').where('v', 'like', `${prefix}%`).orderBy('id')).map((r) => ({ v: r.v as string, id: r.id as number }));
  const values = async (prefix: string) => (await rows(prefix)).map((r) => r.v);

  /** A write that waits for `open()`: what queues meanwhile is observable; `started` holds the batches begun. */
  function gated() {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const started: string[][] = [];
    return {
      started,
      open: () => open(),
      write: async (items: string[]) => {
        started.push([...items]);
        await gate;
        return write(items);
      },
    };
  }

  it('requests that arrive together commit in one batch, and each gets the outcomes of its own items, in order', async () => {
    const seen: Array<[number, number]> = [];
    const g = gc({ maxDelayMs: 50, onBatch: (n, requests) => seen.push([n, requests]) });
    const results = await Promise.all([g.submit(['a1', 'a2']), g.submit(['a3']), g.submit(['a4', 'a5', 'a6'])]);
    expect(batches).toEqual([['a1', 'a2', 'a3', 'a4', 'a5', 'a6']]);
    expect(seen).toEqual([[6, 3]]);
    const ids = (await rows('a')).map((r) => r.id);
    expect(results).toEqual([ids.slice(0, 2), ids.slice(2, 3), ids.slice(3, 6)]);
    expect(g.depth()).toBe(0);
  });

  it('a batch is written as soon as it holds maxRows items, without waiting out the delay', async () => {
    const g = gc({ maxRows: 3 });
    await expect(g.submit(['b1', 'b2', 'b3'])).resolves.toHaveLength(3);
    expect(await values('b')).toEqual(['b1', 'b2', 'b3']);
  });

  it('a batch takes whole requests up to maxRows: a request never splits, and one larger than maxRows goes alone', async () => {
    const { open, write: w } = gated();
    const g = gc({ maxRows: 4, write: w });
    const first = g.submit(['c0', 'c00', 'c000', 'c0000']);
    const rest = [g.submit(['c1', 'c2']), g.submit(['c3', 'c4']), g.submit(['c5']), g.submit(['c6', 'c7', 'c8', 'c9', 'c10'])];
    open();
    await Promise.all([first, ...rest]);
    expect(batches).toEqual([['c0', 'c00', 'c000', 'c0000'], ['c1', 'c2', 'c3', 'c4'], ['c5'], ['c6', 'c7', 'c8', 'c9', 'c10']]);
  });

  it('a lone request waits for more (maxDelayMs) and is written when the delay runs out', async () => {
    const g = gc({ maxDelayMs: 1000 });
    const done = g.submit(['d1']);
    await new Promise((r) => setTimeout(r, 20));
    expect(await values('d')).toEqual([]);
    expect(g.depth()).toBe(1);
    await done;
    expect(await values('d')).toEqual(['d1']);
    expect(g.depth()).toBe(0);
  });

  it('refuses a request that would take the queue past maxQueue, whole, at once; up to the limit is admitted', async () => {
    const { open, write: w } = gated();
    const g = gc({ maxQueue: 5, maxRows: 100, write: w });
    const admitted = [g.submit(['e1', 'e2', 'e3']), g.submit(['e4'])];
    expect(g.depth()).toBe(4);
    const refused = g.submit(['e5', 'e6']);
    await expect(refused).rejects.toBeInstanceOf(QueueFullError);
    await expect(refused).rejects.toMatchObject({ depth: 4, limit: 5, message: 'write queue holds 4 items (limit 5)' });
    const last = g.submit(['e5']);
    expect(g.depth()).toBe(5);
    void g.drain();
    open();
    await Promise.all([...admitted, last]);
    expect(await values('e')).toEqual(['e1', 'e2', 'e3', 'e4', 'e5']);
  });

  it('when a batch fails, its requests are written again one at a time: only the bad one fails, the rest commit', async () => {
    await t.db('gc_items').insert({ v: 'f-taken', batch: -1 });
    const g = gc({ maxDelayMs: 50 });
    const outcomes = await Promise.allSettled([g.submit(['f1', 'f2']), g.submit(['f3', 'f-taken']), g.submit(['f4'])]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(await values('f')).toEqual(['f-taken', 'f1', 'f2', 'f4']);
    expect(batches).toEqual([['f1', 'f2', 'f3', 'f-taken', 'f4'], ['f1', 'f2'], ['f3', 'f-taken'], ['f4']]);
  });

  it('with isolateFailures false, a failing batch fails every request in it and writes nothing', async () => {
    await t.db('gc_items').insert({ v: 'g-taken', batch: -1 });
    const g = gc({ maxDelayMs: 50, isolateFailures: false });
    const outcomes = await Promise.allSettled([g.submit(['g1']), g.submit(['g-taken'])]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    expect(await values('g')).toEqual(['g-taken']);
    expect(batches).toHaveLength(1);
  });

  it('a failing batch of a single request fails it without writing it again', async () => {
    await t.db('gc_items').insert({ v: 'h-taken', batch: -1 });
    const g = gc({ maxDelayMs: 10 });
    await expect(g.submit(['h-taken'])).rejects.toThrow(/Duplicate/);
    expect(batches).toEqual([['h-taken']]);
    expect(g.depth()).toBe(0);
  });

  it('one batch at a time by default: what arrives while it commits forms the next batch', async () => {
    const { open, started, write: w } = gated();
    const g = gc({ maxRows: 1, write: w });
    const all = [g.submit(['i1']), g.submit(['i2']), g.submit(['i3'])];
    await new Promise((r) => setTimeout(r, 20));
    expect(started).toEqual([['i1']]);
    expect(g.depth()).toBe(3);
    open();
    await Promise.all(all);
    expect(batches).toEqual([['i1'], ['i2'], ['i3']]);
  });

  it('with concurrency 2, a second batch starts while the first commits, and no third', async () => {
    const { open, started, write: w } = gated();
    const g = gc({ maxRows: 1, concurrency: 2, write: w });
    const all = [g.submit(['j1']), g.submit(['j2']), g.submit(['j3'])];
    await new Promise((r) => setTimeout(r, 20));
    expect(started).toEqual([['j1'], ['j2']]);
    open();
    await Promise.all(all);
    expect(batches.flat().sort()).toEqual(['j1', 'j2', 'j3']);
  });

  it('drain writes what is queued at once (not after maxDelayMs), resolves when it is committed, and refuses later submits', async () => {
    const g = gc({ maxDelayMs: 60_000 });
    const pending = [g.submit(['k1']), g.submit(['k2'])];
    await g.drain();
    expect(await values('k')).toEqual(['k1', 'k2']);
    await Promise.all(pending);
    await expect(g.submit(['k3'])).rejects.toBeInstanceOf(ClosedError);
    expect(await values('k')).toEqual(['k1', 'k2']);
    await expect(gc().drain()).resolves.toBeUndefined();
  });

  it('drain waits for a batch in flight and for what queued behind it', async () => {
    const { open, write: w } = gated();
    const g = gc({ maxRows: 1, write: w });
    const all = [g.submit(['l1']), g.submit(['l2'])];
    let drained = false;
    const d = g.drain().then(() => (drained = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(drained).toBe(false);
    open();
    await d;
    expect(await values('l')).toEqual(['l1', 'l2']);
    await Promise.all(all);
  });
});
