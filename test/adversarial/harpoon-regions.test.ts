import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarpoonReplicas, type HarpoonReplicas } from '../../harpoon/replicas.ts';
import { createRouterSupervisor } from '../../router/supervisor.ts';
import { generateHarpoonTokens, scopedHarpoonTokens, type HarpoonServiceTokens } from '../../stack/harpoon-tokens.ts';
import type { SeedData } from '../../stack/seed/generate.ts';
import { TEST_HV_KEYS, createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { seedWorld } from '../helpers/seeded.ts';

/**
 * Issue 12: "a router claims, acks and completes only its region's events". Every router shared one
 * Harpoon token that reached every region. Now the stack makes one random token per region's router
 * (stack/harpoon-tokens.ts), bound to that region in Harpoon (HARPOON_TOKENS name=token=scopes=region,
 * parsed by a real replica process here): another region's claim, completion, stream, list or read
 * is 403 and writes nothing.
 */
describe("a router's Harpoon token reaches only its own region's events", () => {
  let t: TestDatabase;
  let seed: SeedData;
  let tokens: HarpoonServiceTokens;
  let harpoon: HarpoonReplicas;
  let url: string;
  let own: string;
  let other: string;
  const call = async (token: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, body: (text.startsWith('{') ? JSON.parse(text) : {}) as Record<string, any> };
  };
  const snapshot = async () => ({
    events: await t.db('events').select('id', 'status', 'server_id', 'started_at', 'finished_at').orderBy('id'),
    log: (await t.db('event_log').count({ n: '*' }).first())!.n,
  });
  /** A create event in `region`, placed on one of its servers by the scheduler's token. */
  async function placed(region: string): Promise<number> {
    const regionId = seed.regions.find((r) => r.slug === region)!.id;
    const server = seed.servers.find((s) => s.region_id === regionId)!.id;
    const made = await call(tokens.cloud, 'POST', '/v1/events', { type: 'create', region });
    expect(made.status).toBe(201);
    const id = made.body.event.id as number;
    expect((await call(tokens.scheduler, 'POST', '/v1/events/status', { changes: [{ id, server_id: server }] })).status).toBe(200);
    return id;
  }

  beforeAll(async () => {
    t = await createTestDatabase('adv_harpoon_regions');
    seed = await seedWorld(t.db, { hypervisors: 4, regions: 2 });
    await t.db('events').del();
    [own, other] = seed.regions.map((r) => r.slug) as [string, string];
    tokens = generateHarpoonTokens([own, other]);
    harpoon = createHarpoonReplicas({ db: t.service('harpoon'), tokens: scopedHarpoonTokens(tokens), replicas: 1 });
    await harpoon.start();
    url = harpoon.urls()[0]!;
  });
  afterAll(async () => {
    await harpoon?.close();
    await t?.drop();
  });

  it('each region gets its own random token', () => {
    expect(Object.keys(tokens.routers).sort()).toEqual([own, other].sort());
    const all = [tokens.cloud, tokens.scheduler, ...Object.values(tokens.routers)];
    expect(new Set(all).size).toBe(all.length);
    for (const token of all) expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(scopedHarpoonTokens(tokens)[`router-${own}`]).toEqual({ token: tokens.routers[own], scopes: ['stream', 'execute', 'read'], region: own });
  });

  it("refuses a claim, completion, stream, list or read of another region's events; writes nothing", async () => {
    const mine = await placed(own);
    const theirs = await placed(other);
    const router = tokens.routers[own]!;
    const before = await snapshot();

    const refused = [
      // claim (running) and completion of the other region's event
      await call(router, 'POST', `/v1/events/${theirs}/status`, { status: 'running' }),
      await call(router, 'POST', '/v1/events/status', { changes: [{ id: theirs, status: 'done' }] }),
      // a batch with one of its own: refused whole, its own event stays pending
      await call(router, 'POST', '/v1/events/status', { changes: [{ id: mine, status: 'running' }, { id: theirs, status: 'running' }] }),
      await call(router, 'GET', `/v1/events/${theirs}`),
      await call(router, 'GET', `/v1/events?region=${other}`),
      await call(router, 'GET', '/v1/events'),
      await call(router, 'GET', `/v1/events?region=${own},${other}`),
      await call(router, 'GET', '/v2/actions'),
    ];
    for (const r of refused) expect(r, JSON.stringify(r.body)).toMatchObject({ status: 403, body: { code: 'HARPOON_ERR_FORBIDDEN' } });
    expect(refused[0]!.body.message).toMatch(new RegExp(`event ${theirs} is in ${other}; the token "router-${own}" is bound to ${own}`));
    for (const query of [`region=${other}`, '', `region=${own},${other}`]) {
      const stream = await fetch(`${url}/v1/stream?${query}`, { headers: { authorization: `Bearer ${router}` } });
      expect(stream.status, query).toBe(403);
      await stream.body?.cancel();
    }
    expect(await snapshot()).toEqual(before);

    // Its own region's: stream, claim and completion go through.
    const stream = await fetch(`${url}/v1/stream?region=${own}`, { headers: { authorization: `Bearer ${router}` } });
    expect(stream.status).toBe(200);
    await stream.body?.cancel();
    expect((await call(router, 'GET', `/v1/events/${mine}`)).status).toBe(200);
    expect((await call(router, 'POST', '/v1/events/status', { changes: [{ id: mine, status: 'running' }] })).status).toBe(200);
    expect((await call(router, 'POST', `/v1/events/${mine}/status`, { status: 'done' })).status).toBe(200);
    // The other region's router does its own.
    expect((await call(tokens.routers[other]!, 'POST', `/v1/events/${theirs}/status`, { status: 'running' })).status).toBe(200);
    const after = await t.db('events').whereIn('id', [mine, theirs]).orderBy('id').pluck('status');
    expect(after).toEqual(mine < theirs ? ['done', 'running'] : ['running', 'done']);
  });

  it('the router supervisor hands each region its own token and refuses a map that misses one', () => {
    expect(() =>
      createRouterSupervisor({ regions: [own, other], db: t.service('event_router'), hypervisorKeys: TEST_HV_KEYS, harpoon: { urls: [url], token: { [own]: tokens.routers[own]! } } }),
    ).toThrow(new RegExp(`harpoon\\.token.*missing: ${other}`));
  });
});
