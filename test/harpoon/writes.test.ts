import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import type { Harpoon } from '../../harpoon/create-harpoon.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { call, createCountedUser, startHarpoon, userStatements } from '../helpers/harpoon.ts';
import { seedWorld } from '../helpers/seeded.ts';

describe('Harpoon writes: group commit, idempotent status changes, bad input', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let harpoon: Harpoon;
  let url: string;
  let counted: Awaited<ReturnType<typeof createCountedUser>>;

  beforeAll(async () => {
    t = await createTestDatabase('harpoon_writes');
    seed = await seedWorld(t.db, { hypervisors: 6, regions: 2 });
    await t.db('events').del();
    counted = await createCountedUser(t);
    // A 25 ms window: the requests of one burst from one test process arrive over a few hundred ms.
    ({ harpoon, url } = await startHarpoon(counted.db, { maxDelayMs: 25 }));
  });
  afterAll(async () => {
    await harpoon?.close();
    await counted?.drop();
    await t?.drop();
  });

  const region = () => seed.regions[0]!.slug;
  const eventCount = async () => Number((await t.db('events').count({ n: '*' }))[0]!.n);
  const logCount = async () => Number((await t.db('event_log').count({ n: '*' }))[0]!.n);

  it('creates one event and a batch, each with its log entry, in the shape documented', async () => {
    const one = await call(url, 'POST', '/v1/events', { type: 'create', region: region(), args: { size: seed.sizes[0]!.slug }, key: 'k-one' });
    expect(one.status).toBe(201);
    expect(one.json).toMatchObject({ duplicate: false, event: { type: 'create', status: 'pending', region: region(), server_id: null, key: 'k-one' } });
    const row = await t.db('events').where('id', one.json.event.id).first();
    expect(row).toMatchObject({ type: 'create', status: 'pending', region_id: seed.regions[0]!.id, harpoon_key: 'k-one' });
    // The same key again: the first event, nothing new written.
    const again = await call(url, 'POST', '/v1/events', { type: 'create', region: region(), args: { size: seed.sizes[0]!.slug }, key: 'k-one' });
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ duplicate: true, event: { id: one.json.event.id } });
    const host = seed.servers[0]!;
    const batch = await call(url, 'POST', '/v1/events', {
      events: [
        { type: 'reboot', region: seed.regions.find((r) => r.id === host.region_id)!.slug, server_id: host.id },
        { type: 'power_off', region: seed.regions.find((r) => r.id === host.region_id)!.slug, server_id: host.id },
      ],
    });
    expect(batch.status).toBe(201);
    expect(batch.json.events).toHaveLength(2);
    expect(batch.json.events[0].event.available_at).not.toBeNull();
    expect(await eventCount()).toBe(3);
    const log = await t.db('event_log').orderBy('id');
    expect(log.map((l) => [Number(l.event_id), l.kind])).toEqual([
      [one.json.event.id, 'created'],
      [batch.json.events[0].event.id, 'created'],
      [batch.json.events[1].event.id, 'created'],
    ]);
  });

  it('groups concurrent creates into few multi-row statements, as the server counts them', async () => {
    const n = 400;
    const before = await userStatements(t, counted.user);
    const eventsBefore = await eventCount();
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => call(url, 'POST', '/v1/events', { type: 'create', region: seed.regions[i % 2]!.slug, key: `gc-${i}` })),
    );
    expect(results.every((r) => r.status === 201)).toBe(true);
    const after = await userStatements(t, counted.user);
    expect(await eventCount()).toBe(eventsBefore + n);
    const ids = new Set(results.map((r) => r.json.event.id));
    expect(ids.size).toBe(n);
    // INSERT/UPDATE statements as the server counted them for this user: two multi-row INSERTs per batch
    // (events, event_log), and few batches for many requests.
    const writes = after.update - before.update;
    expect(writes).toBeGreaterThan(0);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const batches = Number(/^harpoon_batch_rows_count (\d+)/m.exec(metrics)![1]);
    expect(batches).toBeLessThan(n / 5);
    expect(writes).toBeLessThanOrEqual(2 * batches);
  });

  it('changes status idempotently: a repeat is harmless, an illegal move is a coded 409, nothing else is written', async () => {
    const host = seed.servers[1]!;
    const slug = seed.regions.find((r) => r.id === host.region_id)!.slug;
    const created = await call(url, 'POST', '/v1/events', { type: 'reboot', region: slug, server_id: host.id });
    const id = created.json.event.id as number;
    const logBefore = await logCount();
    const running = await call(url, 'POST', `/v1/events/${id}/status`, { status: 'running' });
    expect(running).toMatchObject({ status: 200, json: { changed: true, event: { status: 'running' } } });
    const repeat = await call(url, 'POST', `/v1/events/${id}/status`, { status: 'running' });
    expect(repeat).toMatchObject({ status: 200, json: { changed: false, event: { status: 'running' } } });
    const done = await call(url, 'POST', `/v1/events/${id}/status`, { status: 'done', message: 'ok' });
    expect(done).toMatchObject({ status: 200, json: { changed: true, event: { status: 'done', message: 'ok' } } });
    const doneAgain = await call(url, 'POST', `/v1/events/${id}/status`, { status: 'done' });
    expect(doneAgain).toMatchObject({ status: 200, json: { changed: false } });
    const back = await call(url, 'POST', `/v1/events/${id}/status`, { status: 'running' });
    expect(back).toMatchObject({ status: 409, json: { code: 'HARPOON_ERR_ILLEGAL_TRANSITION' } });
    const row = await t.db('events').where({ id }).first();
    expect(row).toMatchObject({ status: 'done', message: 'ok' });
    expect(row.started_at).not.toBeNull();
    expect(row.finished_at).not.toBeNull();
    // Two real changes, two log entries; repeats and the refusal wrote nothing.
    expect(await logCount()).toBe(logBefore + 2);
    const missing = await call(url, 'POST', '/v1/events/999999/status', { status: 'running' });
    expect(missing).toMatchObject({ status: 404, json: { code: 'HARPOON_ERR_NOT_FOUND' } });
  });

  it('places an unscheduled create once; a different host afterwards is a 409', async () => {
    const created = await call(url, 'POST', '/v1/events', { type: 'create', region: region() });
    const id = created.json.event.id as number;
    const host = seed.servers.find((s) => s.region_id === seed.regions[0]!.id)!;
    const placed = await call(url, 'POST', `/v1/events/${id}/status`, { server_id: host.id });
    expect(placed).toMatchObject({ status: 200, json: { changed: true, event: { server_id: host.id, status: 'pending' } } });
    expect(placed.json.event.available_at).not.toBeNull();
    expect(await call(url, 'POST', `/v1/events/${id}/status`, { server_id: host.id })).toMatchObject({ status: 200, json: { changed: false } });
    const other = seed.servers.find((s) => s.id !== host.id)!;
    expect(await call(url, 'POST', `/v1/events/${id}/status`, { server_id: other.id })).toMatchObject({ status: 409, json: { code: 'HARPOON_ERR_ALREADY_PLACED' } });
    const batch = await call(url, 'POST', '/v1/events/status', { changes: [{ id, status: 'running' }, { id: 999998, status: 'running' }] });
    expect(batch.status).toBe(200);
    expect(batch.json.results[0]).toMatchObject({ id, changed: true });
    expect(batch.json.results[1]).toMatchObject({ id: 999998, error: { code: 'HARPOON_ERR_NOT_FOUND' } });
  });

  it('refuses bad input with a clear 4xx and writes nothing', async () => {
    const before = { events: await eventCount(), log: await logCount() };
    const cases: Array<[unknown, number, string]> = [
      ['{"type": "create", "region":', 400, 'HTTP_ERR_MALFORMED_JSON'],
      [{ type: 'create', region: region(), color: 'red' }, 422, 'HARPOON_ERR_VALIDATION'],
      [{ type: 'explode', region: region() }, 422, 'HARPOON_ERR_VALIDATION'],
      [{ type: 'create', region: 7 }, 422, 'HARPOON_ERR_VALIDATION'],
      [{ type: 'create', region: region(), droplet_id: '1; DROP TABLE events' }, 422, 'HARPOON_ERR_VALIDATION'],
      [{ type: 'create', region: 'atlantis' }, 422, 'HARPOON_ERR_UNKNOWN_REGION'],
      [{ type: 'create', region: region(), args: { size: 'xxl-9000' } }, 422, 'HARPOON_ERR_UNKNOWN_SIZE'],
      [{ type: 'create', region: region(), droplet_id: 4_000_000 }, 422, 'HARPOON_ERR_VALIDATION'],
      [{ events: [] }, 422, 'HARPOON_ERR_VALIDATION'],
      [{ events: [{ type: 'create', region: region() }, { type: 'create', region: 'nowhere' }] }, 422, 'HARPOON_ERR_UNKNOWN_REGION'],
      [`{"type":"create","region":"${region()}","message":"${'x'.repeat(600 * 1024)}"}`, 413, 'HTTP_ERR_BODY_TOO_LARGE'],
    ];
    for (const [body, status, code] of cases) {
      const res = await call(url, 'POST', '/v1/events', body);
      expect({ body: String(JSON.stringify(body)).slice(0, 80), status: res.status, code: res.json.code }).toEqual({
        body: String(JSON.stringify(body)).slice(0, 80),
        status,
        code,
      });
    }
    expect(await call(url, 'POST', '/v1/events/1/status', { status: 'sleeping' })).toMatchObject({ status: 422 });
    expect(await call(url, 'POST', '/v1/events/1/status', { status: 'done', extra: 1 })).toMatchObject({ status: 422 });
    expect(await call(url, 'POST', '/v1/events', { type: 'create', region: region() }, null)).toMatchObject({ status: 401, json: { code: 'HARPOON_ERR_UNAUTHORIZED' } });
    expect(await call(url, 'POST', '/v1/events', { type: 'create', region: region() }, 'not-a-valid-token-at-all')).toMatchObject({ status: 401 });
    expect({ events: await eventCount(), log: await logCount() }).toEqual(before);
    // Still serving.
    expect((await call(url, 'POST', '/v1/events', { type: 'create', region: region() })).status).toBe(201);
  });
});
