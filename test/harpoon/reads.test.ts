import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import type { Harpoon } from '../../harpoon/create-harpoon.ts';
import { cloudClient, startTestCloud, type TestCloud } from '../helpers/cloud.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { call, createCountedUser, startHarpoon, userStatements } from '../helpers/harpoon.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

describe('Harpoon reads: consolidation, the actions Cloud serves, and backpressure', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let counted: Awaited<ReturnType<typeof createCountedUser>>;
  const started: Harpoon[] = [];
  let cloud: TestCloud;

  beforeAll(async () => {
    t = await createTestDatabase('harpoon_reads');
    seed = await seedWorld(t.db, { hypervisors: 6, regions: 2 });
    counted = await createCountedUser(t);
    cloud = await startTestCloud(t);
  });
  afterAll(async () => {
    for (const h of started) await h.close();
    await cloud?.cloud.close();
    await counted?.drop();
    await t?.drop();
  });

  async function harpoonWith(options: Parameters<typeof startHarpoon>[1] = {}) {
    const h = await startHarpoon(counted.db, options);
    started.push(h.harpoon);
    return h.url;
  }

  /** Holds a WRITE lock on `events` from another session, so Harpoon's reads wait (and pile up) until released. */
  async function lockEvents(): Promise<() => Promise<void>> {
    const conn = await mysql.createConnection({ ...t.admin });
    await conn.query('LOCK TABLES events WRITE');
    return async () => {
      await conn.query('UNLOCK TABLES');
      await conn.end();
    };
  }

  it('serves identical concurrent reads with one query, as the server counts them', async () => {
    const url = await harpoonWith();
    const customerId = seed.customers[0]!.id;
    const created = await call(url, 'POST', '/v1/events', { type: 'create', region: seed.regions[0]!.slug, customer_id: customerId });
    const id = created.json.event.id as number;
    const unlock = await lockEvents();
    const before = await userStatements(t, counted.user);
    const pending = [
      ...Array.from({ length: 60 }, () => call(url, 'GET', `/v1/events/${id}`)),
      ...Array.from({ length: 40 }, () => call(url, 'GET', `/v2/actions/${id}`)),
    ];
    // Every request has arrived and is waiting on the one read in flight.
    await waitFor(async () => {
      const m = await (await fetch(`${url}/metrics`)).text();
      return Number(/^harpoon_reads_total\{outcome="consolidated"\} (\d+)/m.exec(m)?.[1] ?? 0) >= 99;
    }, 10_000, 20);
    await unlock();
    const results = await Promise.all(pending);
    const after = await userStatements(t, counted.user);
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(results[0]!.json.event.id).toBe(id);
    expect(results[99]!.json.action.id).toBe(id);
    // 100 HTTP reads, one SELECT.
    expect(after.select - before.select).toBe(1);
  });

  it('answers GET /v2/actions/:id exactly as Cloud does, and hides other customers\' actions', async () => {
    const url = await harpoonWith();
    const customer = seed.customers[0]!;
    const token = seed.tokens.get(customer.id)!;
    const api = cloudClient(cloud.url);
    const droplet = await api('POST', '/v2/droplets', { token, json: { name: 'web-1', region: seed.regions[0]!.slug, size: seed.sizes[0]!.slug, image: seed.images[0]!.slug } });
    expect(droplet.status).toBe(202);
    const actionId = droplet.body.links.actions[0].id as number;
    const fromCloud = await api('GET', `/v2/actions/${actionId}`, { token });
    const fromHarpoon = await call(url, 'GET', `/v2/actions/${actionId}`, undefined, token);
    expect(fromHarpoon.status).toBe(200);
    expect(fromHarpoon.json).toEqual(fromCloud.body);
    const list = await call(url, 'GET', `/v2/droplets/${droplet.body.droplet.id}/actions`, undefined, token);
    expect(list.json).toMatchObject({ actions: [fromCloud.body.action], meta: { total: 1 } });
    const other = seed.tokens.get(seed.customers[1]!.id)!;
    expect(await call(url, 'GET', `/v2/actions/${actionId}`, undefined, other)).toMatchObject({ status: 404, json: { code: 'HARPOON_ERR_NOT_FOUND' } });
    expect(await call(url, 'GET', `/v2/actions/${actionId}`, undefined, 'dop_v1_not_a_token')).toMatchObject({ status: 401 });
    // A customer token cannot write or subscribe.
    expect(await call(url, 'POST', '/v1/events', { type: 'create', region: seed.regions[0]!.slug }, token)).toMatchObject({ status: 401 });
    expect(await call(url, 'GET', '/v1/events?region=atlantis')).toMatchObject({ status: 422, json: { code: 'HARPOON_ERR_UNKNOWN_REGION' } });
    expect(await call(url, 'GET', '/v1/events?colour=red')).toMatchObject({ status: 400, json: { code: 'HARPOON_ERR_INVALID_QUERY' } });
  });

  it('answers 429 with Retry-After when the write queue is full, and loses nothing it accepted', async () => {
    // A small queue, and MySQL slow to commit: another session holds the log lock every batch needs.
    const url = await harpoonWith({ maxQueue: 20, maxBatchRows: 10 });
    const slug = seed.regions[1]!.slug;
    const keys = Array.from({ length: 200 }, (_, i) => `bp-${i}`);
    const holder = await mysql.createConnection({ ...t.admin });
    await holder.query('BEGIN');
    await holder.query('SELECT id FROM harpoon_lock WHERE id = 1 FOR UPDATE');
    const burst = Promise.all(keys.map((key) => call(url, 'POST', '/v1/events', { type: 'create', region: slug, key })));
    await new Promise((r) => setTimeout(r, 1000));
    await holder.query('COMMIT');
    await holder.end();
    const first = await burst;
    const accepted = keys.filter((_, i) => first[i]!.status === 201);
    const refused = keys.filter((_, i) => first[i]!.status === 429);
    expect(accepted.length + refused.length).toBe(keys.length);
    expect(refused.length).toBeGreaterThan(0);
    const sample = first.find((r) => r.status === 429)!;
    expect(sample.json.code).toBe('HARPOON_ERR_BACKPRESSURE');
    expect(sample.headers.get('retry-after')).toBe('1');
    // Exactly what was accepted is in the database; nothing of a refused request is.
    const stored = (await t.db('events').whereIn('harpoon_key', keys).pluck('harpoon_key')) as string[];
    expect(stored.sort()).toEqual([...accepted].sort());
    // Retried (as a client would after Retry-After), every refused one lands once.
    let todo = refused;
    let refusals = refused.length;
    while (todo.length > 0) {
      const again = await Promise.all(todo.map((key) => call(url, 'POST', '/v1/events', { type: 'create', region: slug, key })));
      todo = todo.filter((_, i) => again[i]!.status === 429);
      refusals += todo.length;
    }
    const all = await t.db('events').whereIn('harpoon_key', keys).select('harpoon_key').count({ n: '*' }).groupBy('harpoon_key');
    expect(all).toHaveLength(keys.length);
    expect(all.every((r) => Number(r.n) === 1)).toBe(true);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^harpoon_backpressure_total\\{queue="write"\\} ${refusals}$`, 'm'));
  });

  it('answers 429 when too many distinct reads are in flight', async () => {
    const url = await harpoonWith({ maxReads: 2 });
    const unlock = await lockEvents();
    try {
      const reads = [1, 2, 3, 4].map((id) => call(url, 'GET', `/v1/events/${id}`));
      const refused = await Promise.race([Promise.all(reads), new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 1000))]);
      expect(refused).toBe('timeout');
      await unlock();
      const results = await Promise.all(reads);
      expect(results.filter((r) => r.status === 429).map((r) => r.json.code)).toEqual(['HARPOON_ERR_BACKPRESSURE', 'HARPOON_ERR_BACKPRESSURE']);
    } finally {
      await unlock().catch(() => {});
    }
  });
});
