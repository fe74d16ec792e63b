import type { Pool } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCatalog, type Catalog } from '../../harpoon/catalog.ts';
import type { CreateEventInput } from '../../harpoon/types.ts';
import { writeBatch, type OpOutcome, type WriteOp } from '../../harpoon/write-batch.ts';
import { createMysqlPool } from '../../lib/db/mysql-pool.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { seedWorld } from '../helpers/seeded.ts';

/**
 * One group-commit transaction (harpoon/write-batch.ts) on Harpoon's own user, with and without
 * INSERT … RETURNING: what lands in `events` and `event_log`, and what each op is told.
 */
describe.each([{ returning: true }, { returning: false }])('writeBatch (returning: $returning)', ({ returning }) => {
  let t: TestDatabase;
  let pool: Pool;
  let catalog: Catalog;
  const NOW = Date.parse('2026-12-07T05:00:00.123Z');

  beforeAll(async () => {
    t = await createTestDatabase('write_batch');
    await seedWorld(t.db, { hypervisors: 4, regions: 2 });
    await t.db('events').del();
    pool = createMysqlPool(t.service('harpoon'), 2, { multipleStatements: true });
    catalog = createCatalog(pool);
    await catalog.load();
  });
  afterAll(async () => {
    await pool?.end();
    await t?.drop();
  });

  async function write(ops: WriteOp[]) {
    const conn = await pool.getConnection();
    try {
      return await writeBatch(conn, ops, catalog, NOW, returning);
    } finally {
      conn.release();
    }
  }
  const create = (input: Partial<CreateEventInput>, regionId = 1): WriteOp => ({ kind: 'create', input: { type: 'reboot', region: 'nyc1', ...input }, regionId });
  const change = (id: number, input: { status?: 'pending' | 'running' | 'done' | 'error'; server_id?: number; message?: string | null }, only?: { regionId: number; request: object }): WriteOp => ({
    kind: 'change', input: { id, ...input }, ...(only ? { only: { ...only, token: 'router-nyc1' } } : {}),
  });
  const ok = (o: OpOutcome | undefined) => {
    if (!o?.ok || !('create' in o)) throw new Error(`expected a create, got ${JSON.stringify(o)}`);
    return o.create;
  };
  const okChange = (o: OpOutcome | undefined) => {
    if (!o?.ok || !('status' in o)) throw new Error(`expected a status change, got ${JSON.stringify(o)}`);
    return o.status;
  };
  const code = (o: OpOutcome | undefined) => (o && !o.ok ? o.error.code : undefined);
  const logOf = (ids: number[]) => t.db('event_log').whereIn('event_id', ids).orderBy('id').select('id', 'event_id', 'kind', 'status', 'server_id', 'committed_at');
  const server = async (region: number) => Number((await t.db('servers').where({ region_id: region }).orderBy('id').first()).id);

  it('creates events with ids from the server, one log entry each, in order, and answers the changes it committed', async () => {
    const host = await server(1);
    const res = await write([create({ droplet_id: null, message: 'hello', args: { a: 1 } }), create({ type: 'ipmi_reboot', server_id: host, customer_id: 1 })]);
    const [a, b] = res.outcomes.map((o) => ok(o).event);
    expect(res.outcomes.map((o) => ok(o))).toMatchObject([{ duplicate: false }, { duplicate: false }]);
    const rows = await t.db('events').whereIn('id', [a!.id, b!.id]).orderBy('id');
    expect(rows.map((r) => [r.id, r.type, r.status, r.region_id, r.server_id, r.message, r.args])).toEqual([
      [a!.id, 'reboot', 'pending', 1, null, 'hello', '{"a":1}'],
      [b!.id, 'ipmi_reboot', 'pending', 1, host, null, null],
    ]);
    // Placed at creation: deliverable at once; unplaced: not yet.
    expect(rows[0].available_at).toBeNull();
    expect(rows[1].available_at).toBe('2026-12-07 05:00:00.123');
    expect(a).toMatchObject({ region: 'nyc1', args: { a: 1 }, created_at: '2026-12-07T05:00:00.123Z', available_at: null, key: null });
    expect(b).toMatchObject({ server_id: host, customer_id: 1, available_at: '2026-12-07T05:00:00.123Z' });
    const log = await logOf([a!.id, b!.id]);
    expect(log.map((l) => [l.event_id, l.kind, l.status])).toEqual([[a!.id, 'created', 'pending'], [b!.id, 'created', 'pending']]);
    expect(res.changes.map((c) => [c.cursor, c.kind, c.event.id, c.committed_at])).toEqual(log.map((l) => [l.id, 'created', l.event_id, '2026-12-07T05:00:00.123Z']));
    expect(res.statements).toBe(returning ? 5 : 7);
  });

  it('a key creates once: the same request again is a duplicate of the first event, a different one a conflict', async () => {
    const first = await write([create({ key: 'k-1', droplet_id: null })]);
    const event = ok(first.outcomes[0]).event;
    expect(event.key).toBe('k-1');
    const again = await write([create({ key: 'k-1' }), create({ key: 'k-1', type: 'power_on' }), create({ key: 'k-1' }, 2)]);
    expect(ok(again.outcomes[0])).toMatchObject({ duplicate: true, event: { id: event.id } });
    expect(again.outcomes.slice(1).map(code)).toEqual(['HARPOON_ERR_KEY_CONFLICT', 'HARPOON_ERR_KEY_CONFLICT']);
    expect(again.outcomes[1]).toMatchObject({ error: { message: `key "k-1" already created event ${event.id} (reboot); nothing was written` } });
    expect(again.changes).toEqual([]);
    expect(await t.db('events').where({ harpoon_key: 'k-1' })).toHaveLength(1);
    expect(await logOf([event.id])).toHaveLength(1);
  });

  it('two creates with one new key in one batch: the second is the first one\'s duplicate, or a conflict if it differs', async () => {
    const res = await write([create({ key: 'k-2' }), create({ key: 'k-2' }), create({ key: 'k-2', type: 'power_off' }), create({ key: 'k-3' })]);
    const first = ok(res.outcomes[0]);
    expect(first.duplicate).toBe(false);
    expect(ok(res.outcomes[1])).toMatchObject({ duplicate: true, event: { id: first.event.id } });
    expect(code(res.outcomes[2])).toBe('HARPOON_ERR_KEY_CONFLICT');
    expect(res.outcomes[2]).toMatchObject({ error: { message: `key "k-2" already created event ${first.event.id}; nothing was written` } });
    expect(ok(res.outcomes[3]).duplicate).toBe(false);
    expect(await t.db('events').whereIn('harpoon_key', ['k-2', 'k-3'])).toHaveLength(2);
    expect(res.changes.map((c) => c.event.key)).toEqual(['k-2', 'k-3']);
  });

  it('status changes follow pending → running → done | error; repeats change nothing; the rest is a coded 409', async () => {
    const ids = (await write([create({}), create({}), create({}), create({})])).outcomes.map((o) => ok(o).event.id);
    const [a, b, c, d] = ids as [number, number, number, number];
    await t.db('events').where({ id: d }).update({ started_at: '2020-01-01 00:00:00.000', status: 'pending' });
    const res = await write([
      change(a, { status: 'running' }),
      change(a, { status: 'done', message: 'ok' }),
      change(b, { status: 'error', message: 'no host' }),
      change(c, { status: 'done' }),
      change(d, { status: 'running' }),
      change(987_654, { status: 'running' }),
      change(b, { status: 'error' }),
    ]);
    expect(okChange(res.outcomes[0])).toMatchObject({ changed: true, event: { status: 'running', started_at: '2026-12-07T05:00:00.123Z', finished_at: null } });
    expect(okChange(res.outcomes[1])).toMatchObject({ changed: true, event: { status: 'done', message: 'ok', finished_at: '2026-12-07T05:00:00.123Z' } });
    expect(okChange(res.outcomes[2])).toMatchObject({ changed: true, event: { status: 'error', message: 'no host', finished_at: '2026-12-07T05:00:00.123Z' } });
    expect(res.outcomes[3]).toMatchObject({ ok: false, error: { code: 'HARPOON_ERR_ILLEGAL_TRANSITION', message: `event ${c} is pending; it cannot become done (allowed: running, error); nothing was changed` } });
    // A started_at already there stays.
    expect(okChange(res.outcomes[4])).toMatchObject({ event: { started_at: '2020-01-01T00:00:00.000Z' } });
    expect(res.outcomes[5]).toMatchObject({ ok: false, error: { code: 'HARPOON_ERR_NOT_FOUND', message: 'event 987654 does not exist; nothing was changed' } });
    expect(okChange(res.outcomes[6])).toMatchObject({ changed: false, event: { status: 'error' } });
    const rows = await t.db('events').whereIn('id', ids).orderBy('id').select('status', 'message', 'started_at', 'finished_at');
    expect(rows).toEqual([
      { status: 'done', message: 'ok', started_at: '2026-12-07 05:00:00.123', finished_at: '2026-12-07 05:00:00.123' },
      { status: 'error', message: 'no host', started_at: null, finished_at: '2026-12-07 05:00:00.123' },
      { status: 'pending', message: null, started_at: null, finished_at: null },
      { status: 'running', message: null, started_at: '2020-01-01 00:00:00.000', finished_at: null },
    ]);
    expect((await logOf(ids)).filter((l) => l.kind !== 'created').map((l) => [l.event_id, l.kind, l.status])).toEqual([
      [a, 'status', 'running'],
      [a, 'status', 'done'],
      [b, 'status', 'error'],
      [d, 'status', 'running'],
    ]);
    expect(res.changes.map((ch) => [ch.event.id, ch.event.status])).toEqual([[a, 'running'], [a, 'done'], [b, 'error'], [d, 'running']]);
    const final = await write([change(a, { status: 'running' })]);
    expect(final.outcomes[0]).toMatchObject({ error: { code: 'HARPOON_ERR_ILLEGAL_TRANSITION', message: `event ${a} is done; it cannot become running (done is final); nothing was changed` } });
  });

  it('places an unplaced pending event once (a `placed` entry); another host afterwards, or a non-pending event, is refused', async () => {
    const [h1, h2] = [await server(1), (await t.db('servers').where({ region_id: 1 }).orderBy('id').offset(1).first()).id as number];
    const [a, b] = (await write([create({}), create({})])).outcomes.map((o) => ok(o).event.id) as [number, number];
    await write([change(b, { status: 'running' })]);
    const res = await write([change(a, { server_id: h1 }), change(a, { server_id: h1 }), change(a, { server_id: h2 }), change(b, { server_id: h1 })]);
    expect(okChange(res.outcomes[0])).toMatchObject({ changed: true, event: { server_id: h1, available_at: '2026-12-07T05:00:00.123Z', status: 'pending' } });
    expect(okChange(res.outcomes[1])).toMatchObject({ changed: false });
    expect(res.outcomes[2]).toMatchObject({ error: { code: 'HARPOON_ERR_ALREADY_PLACED', message: `event ${a} is placed on hypervisor ${h1}, not ${h2}; nothing was changed` } });
    expect(res.outcomes[3]).toMatchObject({ error: { code: 'HARPOON_ERR_ALREADY_PLACED', message: `event ${b} is running; only a pending event can be placed` } });
    expect(res.changes.map((c) => [c.event.id, c.kind])).toEqual([[a, 'placed']]);
    expect((await t.db('events').where({ id: a }).first()).server_id).toBe(h1);
    // Placed and moved at once: one `status` entry.
    const [c] = (await write([create({})])).outcomes.map((o) => ok(o).event.id) as [number];
    const both = await write([change(c, { server_id: h2, status: 'running' })]);
    expect(both.changes.map((ch) => [ch.kind, ch.event.server_id, ch.event.status])).toEqual([['status', h2, 'running']]);
  });

  it("a region-bound token's request naming another region's event is refused whole; other requests of the batch go through", async () => {
    const [inNyc, inOther, another] = (await write([create({}), create({}, 2), create({})])).outcomes.map((o) => ok(o).event.id) as [number, number, number];
    const bad = {};
    const good = {};
    const res = await write([change(inNyc, { status: 'running' }, { regionId: 1, request: bad }), change(inOther, { status: 'running' }, { regionId: 1, request: bad }), change(another, { status: 'running' }, { regionId: 1, request: good })]);
    expect(res.outcomes.map(code)).toEqual(['HARPOON_ERR_FORBIDDEN', 'HARPOON_ERR_FORBIDDEN', undefined]);
    const otherSlug = catalog.regionSlug(2);
    expect(res.outcomes[0]).toMatchObject({ error: { message: `event ${inOther} is in ${otherSlug}; the token "router-nyc1" is bound to nyc1 and may change only its events; nothing of this request was written` } });
    expect((await t.db('events').whereIn('id', [inNyc, inOther, another]).orderBy('id')).map((r) => r.status)).toEqual(['pending', 'pending', 'running']);
    // Unknown ids are not another region's: the request's other changes go through.
    const mixed = {};
    const res2 = await write([change(987_655, { status: 'running' }, { regionId: 1, request: mixed }), change(inNyc, { status: 'running' }, { regionId: 1, request: mixed })]);
    expect(res2.outcomes.map(code)).toEqual(['HARPOON_ERR_NOT_FOUND', undefined]);
  });

  it('an SQL error rolls the whole batch back and is thrown; the connection is usable after', async () => {
    const before = [Number((await t.db('events').count({ n: '*' }))[0]!.n), Number((await t.db('event_log').count({ n: '*' }))[0]!.n)];
    // No region 999: the foreign key refuses the insert.
    await expect(write([create({}), create({}, 999)])).rejects.toMatchObject({ errno: expect.any(Number) });
    expect([Number((await t.db('events').count({ n: '*' }))[0]!.n), Number((await t.db('event_log').count({ n: '*' }))[0]!.n)]).toEqual(before);
    expect(ok((await write([create({})])).outcomes[0]).duplicate).toBe(false);
    // Only that one: nothing of the failed batch was left open on the connection to be committed with it.
    expect(Number((await t.db('events').count({ n: '*' }))[0]!.n)).toBe(before[0]! + 1);
  });

  it("an action for a droplet goes to the hypervisor its create placed it on: a wrong server is refused alone, the rest of the batch is written", async () => {
    const [a, b] = [await server(1), Number((await t.db('servers').where({ region_id: 1 }).orderBy('id').offset(1).first()).id)];
    const droplet = Number((await t.db('droplets').orderBy('id').first()).id);
    const placed = ok((await write([create({ type: 'create', droplet_id: droplet, server_id: a })])).outcomes[0]).event;
    const res = await write([
      create({ type: 'reboot', droplet_id: droplet, server_id: a }),
      create({ type: 'reboot', droplet_id: droplet, server_id: b }),
      create({ type: 'power_off', droplet_id: droplet }),
      create({ type: 'reboot', droplet_id: null }),
    ]);
    expect(ok(res.outcomes[0]).event).toMatchObject({ type: 'reboot', droplet_id: droplet, server_id: a });
    expect(res.outcomes.slice(1, 3).map(code)).toEqual(['HARPOON_ERR_WRONG_SERVER', 'HARPOON_ERR_WRONG_SERVER']);
    expect(res.outcomes[1]).toMatchObject({
      error: { message: `a reboot event for droplet ${droplet} must be addressed to hypervisor ${a}, where its create event ${placed.id} placed it, not to hypervisor ${b}; nothing was written` },
    });
    expect(ok(res.outcomes[3]).event.droplet_id).toBeNull();
    const rows = await t.db('events').where({ droplet_id: droplet }).orderBy('id').select('type', 'server_id');
    expect(rows).toEqual([{ type: 'create', server_id: a }, { type: 'reboot', server_id: a }]);
    expect(res.changes.map((c) => c.event.id)).toEqual([ok(res.outcomes[0]).event.id, ok(res.outcomes[3]).event.id]);
  });

  it('a key names one request: the same key for another droplet is a conflict, not a duplicate', async () => {
    const key = `k-droplet-${returning}`;
    const first = ok((await write([create({ key, droplet_id: null })])).outcomes[0]).event;
    const other = await write([create({ key, droplet_id: Number((await t.db('droplets').orderBy('id', 'desc').first()).id) })]);
    expect(code(other.outcomes[0])).toBe('HARPOON_ERR_KEY_CONFLICT');
    expect(await t.db('events').where({ harpoon_key: key })).toHaveLength(1);
    expect(first.droplet_id).toBeNull();
  });
});
