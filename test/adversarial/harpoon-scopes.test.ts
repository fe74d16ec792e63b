import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarpoon, type Harpoon } from '../../harpoon/create-harpoon.ts';
import { scopedHarpoonTokens } from '../../stack/harpoon-tokens.ts';
import type { SeedData } from '../../stack/seed/generate.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { seedWorld } from '../helpers/seeded.ts';

/**
 * Issue 12, points 9 and 11: Harpoon tokens had no scope (Cloud's token marked any event done and created
 * events already placed on any server) and any service token could open the peer stream. Now each token
 * holds what its service does (stack/harpoon-tokens.ts), the peer stream needs the peer scope, and a
 * refused request writes nothing.
 */
const T = { cloud: 'cloud-token-0123456789abcdef', router: 'router-token-0123456789abcdef', scheduler: 'sched-token-0123456789abcdef' };
const PEER = 'peer-token-0123456789abcdef';

describe('Harpoon service tokens with scopes (issue 12 points 9, 11)', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let harpoon: Harpoon;
  let url: string;
  const call = async (token: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, body: (text.startsWith('{') ? JSON.parse(text) : {}) as Record<string, any> };
  };
  const rows = async () => (await t.db('events').select('id', 'status', 'server_id').orderBy('id')) as Array<{ id: number; status: string; server_id: number | null }>;

  beforeAll(async () => {
    t = await createTestDatabase('adv_harpoon_scopes');
    seed = await seedWorld(t.db, { hypervisors: 2, regions: 1 });
    await t.db('events').del();
    const tokens = scopedHarpoonTokens({ cloud: T.cloud, scheduler: T.scheduler, routers: { [seed.regions[0]!.slug]: T.router } });
    harpoon = createHarpoon({ db: t.service('harpoon'), tokens: { ...tokens, 'harpoon-peer': { token: PEER, scopes: ['peer'] } } });
    url = (await harpoon.start()).url;
  });
  afterAll(async () => {
    await harpoon?.close();
    await t?.drop();
  });

  it("Cloud creates and reads, but cannot place, run or finish events; a router cannot place; only a peer opens the peer stream", async () => {
    const region = seed.regions[0]!.slug;
    const server = seed.servers[0]!.id;
    const made = await call(T.cloud, 'POST', '/v1/events', { type: 'create', region });
    expect(made.status).toBe(201);
    const id = made.body.event.id as number;
    const before = await rows();

    const refused = [
      await call(T.cloud, 'POST', `/v1/events/${id}/status`, { status: 'done' }),
      await call(T.cloud, 'POST', '/v1/events/status', { changes: [{ id, server_id: server }] }),
      await call(T.cloud, 'POST', '/v1/events', { type: 'create', region, server_id: server }),
      await call(T.router, 'POST', '/v1/events/status', { changes: [{ id, server_id: server }] }),
      await call(T.scheduler, 'POST', `/v1/events/${id}/status`, { status: 'done' }),
      await call(T.router, 'POST', '/v1/events', { type: 'reboot', region }),
    ];
    for (const r of refused) expect(r, JSON.stringify(r.body)).toMatchObject({ status: 403, body: { code: 'HARPOON_ERR_FORBIDDEN' } });
    expect(await rows()).toEqual(before);

    for (const token of [T.cloud, T.router, T.scheduler]) {
      const peer = await fetch(`${url}/v1/peer/changes`, { headers: { authorization: `Bearer ${token}` } });
      expect(peer.status).toBe(403);
      await peer.body?.cancel();
    }
    const stream = await fetch(`${url}/v1/stream`, { headers: { authorization: `Bearer ${T.cloud}` } });
    expect(stream.status).toBe(403);
    await stream.body?.cancel();

    // Each does its own job.
    expect((await call(T.scheduler, 'POST', '/v1/events/status', { changes: [{ id, server_id: server }] })).status).toBe(200);
    expect((await call(T.router, 'POST', `/v1/events/${id}/status`, { status: 'running' })).status).toBe(200);
    expect((await call(T.router, 'POST', `/v1/events/${id}/status`, { status: 'done' })).status).toBe(200);
    expect((await rows()).find((r) => r.id === id)).toMatchObject({ status: 'done', server_id: server });
  });

  it('refuses JSON nested 9,000 levels deep with a 400, and keeps serving (point 10)', async () => {
    const deep = `{"type":"create","region":"x","args":${'['.repeat(9000)}${']'.repeat(9000)}}`;
    const res = await fetch(`${url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${T.cloud}`, 'content-type': 'application/json' }, body: deep });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe('HTTP_ERR_JSON_TOO_DEEP');
    expect((await call(T.cloud, 'GET', '/v1/events?limit=1')).status).toBe(200);
  });
});
