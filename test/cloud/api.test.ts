import { connect } from 'node:net';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCloud } from '../../cloud/create-cloud.ts';
import { generateSeed, sha256, type SeedData } from '../../stack/seed/generate.ts';
import { insertSeed } from '../../stack/seed/insert.ts';
import { cloudClient, startTestCloud, type ApiRequest, type TestCloud } from '../helpers/cloud.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { waitFor } from '../helpers/seeded.ts';
import { directEvents } from '../../legacy/cloud/direct-events.ts';

let t: TestDatabase;
let seed: SeedData;
let tc: TestCloud;
let api: ReturnType<typeof cloudClient>;
let tokenA: string;
let tokenB: string;

const A = 1;
const B = 2;
const VALID = { name: 'web-1', region: 'nyc1', size: '1gb', image: 'ubuntu-16-04-x64' };

async function count(table: string, where: Record<string, unknown> = {}): Promise<number> {
  const [row] = (await t.db(table).where(where).count({ n: '*' })) as Array<{ n: number }>;
  return Number(row!.n);
}

async function queueCounts() {
  return {
    droplets: await count('droplets'),
    events: await count('events'),
    droplet_ssh_keys: await count('droplet_ssh_keys'),
    droplet_features: await count('droplet_features'),
  };
}

/** Creates a droplet through the API and returns its id and create event id. */
async function create(token: string, body: Record<string, unknown> = {}): Promise<{ id: number; eventId: number }> {
  const res = await api('POST', '/v2/droplets', { token, json: { ...VALID, ...body } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return { id: res.body.droplet.id, eventId: res.body.links.actions[0].id };
}

/** What the scheduler and a DOBE agent would have done: give the droplet a host. */
async function place(dropletId: number): Promise<number> {
  const droplet = await t.db('droplets').where({ id: dropletId }).first('region_id');
  const server = await t.db('servers').where({ region_id: droplet.region_id }).orderBy('id').first('id');
  await t.db('droplets').where({ id: dropletId }).update({ server_id: server.id, status: 'active' });
  await t.db('events').where({ droplet_id: dropletId, type: 'create' }).update({ server_id: server.id, status: 'done', finished_at: t.db.raw('CURRENT_TIMESTAMP(3)') });
  return server.id;
}

beforeAll(async () => {
  t = await createTestDatabase('cloud');
  seed = generateSeed({ hypervisors: 20, regions: 2, seed: 7 });
  await insertSeed(t.db, seed);
  // These tests create dozens of droplets as A and B; the limit tests use other customers.
  await t.db('customers').whereIn('id', [A, B]).update({ droplet_limit: 10_000 });
  tokenA = seed.tokens.get(A)!;
  tokenB = seed.tokens.get(B)!;
  tc = await startTestCloud(t);
  api = cloudClient(tc.url);
});

afterAll(async () => {
  await tc?.cloud.close();
  await t?.drop();
});

describe('service endpoints', () => {
  it('answers /healthz, /readyz and /metrics', async () => {
    expect((await api('GET', '/healthz')).body).toEqual({ status: 'ok', service: 'cloud' });
    const ready = await api('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe('ready');
    const metrics = await fetch(tc.url + '/metrics');
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    expect(text).toContain('cloud_droplets_created_total');
    expect(text).toContain('cloud_events_written_total{type="create"}');
  });
});

describe('auth', () => {
  it.each<[string, Record<string, string>]>([
    ['no Authorization header', {}],
    ['an unknown token', { authorization: 'Bearer dop_v1_not-a-real-token' }],
    ['a non-Bearer scheme', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }],
    ['an empty bearer', { authorization: 'Bearer ' }],
  ])('refuses %s with 401', async (_label, headers) => {
    const before = await queueCounts();
    for (const [method, path] of [
      ['GET', '/v2/droplets'],
      ['GET', '/v2/droplets/1'],
      ['DELETE', '/v2/droplets/1'],
      ['GET', '/v2/actions/1'],
    ] as const) {
      const res = await api(method, path, { headers });
      expect(res.status).toBe(401);
      expect(res.body.code).toBe('CLOUD_ERR_UNAUTHORIZED');
      expect(res.body.message).toMatch(/token|Bearer/);
    }
    const res = await api('POST', '/v2/droplets', { headers, json: VALID });
    expect(res.status).toBe(401);
    expect(await queueCounts()).toEqual(before);
  });

  it('refuses a suspended account with 403', async () => {
    const token = 'dop_v1_suspended-customer-token';
    await t.db('customers').insert({ email: 'suspended@example.com', name: 'Suspended', api_token_sha256: sha256(token), status: 'suspended' });
    const res = await api('GET', '/v2/droplets', { token });
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('CLOUD_ERR_ACCOUNT_INACTIVE');
  });

  it("answers 404 for another customer's droplets and actions, and changes nothing", async () => {
    const { id, eventId } = await create(tokenA, { name: 'private-to-a' });
    await place(id);
    const before = await queueCounts();
    const attempts: Array<[string, string, ApiRequest]> = [
      ['GET', `/v2/droplets/${id}`, {}],
      ['DELETE', `/v2/droplets/${id}`, {}],
      ['POST', `/v2/droplets/${id}/actions`, { json: { type: 'reboot' } }],
      ['GET', `/v2/actions/${eventId}`, {}],
    ];
    for (const [method, path, request] of attempts) {
      const res = await api(method, path, { ...request, token: tokenB });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body.code).toBe('CLOUD_ERR_NOT_FOUND');
    }
    expect(await queueCounts()).toEqual(before);
    const list = await api('GET', '/v2/droplets?per_page=200', { token: tokenB });
    expect(list.body.droplets.map((d: { id: number }) => d.id)).not.toContain(id);
    // The owner still sees it.
    expect((await api('GET', `/v2/droplets/${id}`, { token: tokenA })).status).toBe(200);
  });
});

describe('POST /v2/droplets', () => {
  it('writes one droplet and one pending create event with no server, and answers 202 in the DO shape', async () => {
    const before = await queueCounts();
    const res = await api('POST', '/v2/droplets', {
      token: tokenA,
      json: { name: 'db-1.example.com', region: 'sfo1', size: '2gb', image: 'debian-8-x64', ssh_keys: [A, A], ipv6: true, backups: true, monitoring: false },
    });
    expect(res.status).toBe(202);
    const { droplet, links } = res.body;
    expect(droplet).toMatchObject({
      name: 'db-1.example.com',
      memory: 2048,
      vcpus: 2,
      disk: 40,
      locked: false,
      status: 'new',
      size_slug: '2gb',
      region: { slug: 'sfo1', name: 'San Francisco 1' },
      image: { slug: 'debian-8-x64', name: 'Debian 8.6 x64', distribution: 'Debian' },
      networks: { v4: [] },
      features: ['backups', 'ipv6'],
    });
    expect(droplet.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(links.actions).toEqual([{ id: expect.any(Number), rel: 'create', href: `/v2/actions/${links.actions[0].id}` }]);

    expect(await queueCounts()).toEqual({
      droplets: before.droplets + 1,
      events: before.events + 1,
      droplet_ssh_keys: before.droplet_ssh_keys + 1,
      droplet_features: before.droplet_features + 2,
    });
    const row = await t.db('droplets').where({ id: droplet.id }).first();
    expect(row).toMatchObject({ customer_id: A, name: 'db-1.example.com', server_id: null, status: 'new', region_id: 2 });
    const events = await t.db('events').where({ droplet_id: droplet.id });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      id: links.actions[0].id,
      type: 'create',
      server_id: null,
      status: 'pending',
      region_id: 2,
      customer_id: A,
      available_at: null,
    });
    expect(JSON.parse(events[0].args)).toMatchObject({ size: '2gb', image: 'debian-8-x64', region: 'sfo1' });
    expect(await t.db('droplet_ssh_keys').where({ droplet_id: droplet.id })).toEqual([{ droplet_id: droplet.id, ssh_key_id: A }]);

    const action = await api('GET', `/v2/actions/${links.actions[0].id}`, { token: tokenA });
    expect(action.status).toBe(200);
    expect(action.body.action).toMatchObject({ status: 'in-progress', type: 'create', resource_id: droplet.id, resource_type: 'droplet', region_slug: 'sfo1', completed_at: null });
  });

  it('writes the droplet and its event in one transaction: when the event insert fails, no droplet remains', async () => {
    await t.db.raw(`REVOKE INSERT ON ??.events FROM 'cloud'@'%'`, [t.name]);
    try {
      const before = await queueCounts();
      const res = await api('POST', '/v2/droplets', { token: tokenA, json: { ...VALID, name: 'half-written', ipv6: true, ssh_keys: [A] } });
      expect(res.status).toBe(503);
      expect(res.body.code).toBe('CLOUD_ERR_DATABASE_UNAVAILABLE');
      expect(await queueCounts()).toEqual(before);
      expect(await count('droplets', { name: 'half-written' })).toBe(0);
    } finally {
      await t.db.raw(`GRANT INSERT ON ??.events TO 'cloud'@'%'`, [t.name]);
    }
    await create(tokenA, { name: 'after-regrant' });
  });

  it('enforces droplet_limit on non-archived droplets, writing nothing when refused', async () => {
    const customer = 3;
    const token = seed.tokens.get(customer)!;
    const active = await t.db('droplets').where({ customer_id: customer }).whereNot('status', 'archived').count({ n: '*' });
    const n = Number(active[0]!.n);
    await t.db('customers').where({ id: customer }).update({ droplet_limit: n });
    const before = await queueCounts();
    const res = await api('POST', '/v2/droplets', { token, json: VALID });
    expect(res.status).toBe(422);
    expect(res.body.code).toBe('CLOUD_ERR_DROPLET_LIMIT');
    expect(res.body.message).toContain(`limit is ${n}`);
    expect(await queueCounts()).toEqual(before);
    // Archived droplets do not count against the limit.
    const one = await t.db('droplets').where({ customer_id: customer }).first('id');
    await t.db('droplets').where({ id: one.id }).update({ status: 'archived' });
    await create(token);
  });

  it('never lets concurrent creates pass the limit (with and without existing droplets)', async () => {
    const token = 'dop_v1_fresh-customer-token';
    const [customerId] = await t.db('customers').insert({ email: 'fresh@example.com', name: 'Fresh', api_token_sha256: sha256(token), droplet_limit: 3 });
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => api('POST', '/v2/droplets', { token, json: { ...VALID, name: `burst-${i}` } })),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([202, 202, 202, 422, 422, 422, 422, 422]);
    for (const r of results.filter((r) => r.status === 422)) expect(r.body.code).toBe('CLOUD_ERR_DROPLET_LIMIT');
    expect(await count('droplets', { customer_id: customerId })).toBe(3);
    expect(await count('events', { customer_id: customerId, type: 'create' })).toBe(3);

    await t.db('customers').where({ id: customerId }).update({ droplet_limit: 5 });
    const more = await Promise.all(Array.from({ length: 6 }, (_, i) => api('POST', '/v2/droplets', { token, json: { ...VALID, name: `more-${i}` } })));
    expect(more.filter((r) => r.status === 202)).toHaveLength(2);
    expect(await count('droplets', { customer_id: customerId })).toBe(5);
  });
});

describe('bad input writes nothing and gets a coded 4xx', () => {
  const json = 'application/json';
  const cases: Array<{ label: string; request: ApiRequest; status: number; code: string; mentions?: string }> = [
    { label: 'malformed JSON', request: { raw: '{"name": web-1}', headers: { 'content-type': json } }, status: 400, code: 'CLOUD_ERR_MALFORMED_JSON' },
    { label: 'truncated JSON', request: { raw: '{"name":"web-1","region":"ny', headers: { 'content-type': json } }, status: 400, code: 'CLOUD_ERR_MALFORMED_JSON' },
    { label: 'an empty body', request: { raw: '', headers: { 'content-type': json } }, status: 400, code: 'CLOUD_ERR_MALFORMED_JSON' },
    { label: 'text/plain', request: { raw: JSON.stringify(VALID), headers: { 'content-type': 'text/plain' } }, status: 415, code: 'CLOUD_ERR_UNSUPPORTED_MEDIA_TYPE' },
    { label: 'form encoding', request: { raw: 'name=web-1', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, status: 415, code: 'CLOUD_ERR_UNSUPPORTED_MEDIA_TYPE' },
    { label: 'a JSON array', request: { json: [VALID] }, status: 422, code: 'CLOUD_ERR_VALIDATION', mentions: 'body' },
    { label: 'a JSON string', request: { json: 'web-1' }, status: 422, code: 'CLOUD_ERR_VALIDATION', mentions: 'body' },
    { label: 'an unknown field', request: { json: { ...VALID, user_data: '#!/bin/sh' } }, status: 422, code: 'CLOUD_ERR_VALIDATION', mentions: 'user_data' },
    { label: 'a __proto__ field', request: { raw: `{"__proto__":{"admin":true},"name":"web-1","region":"nyc1","size":"1gb","image":"ubuntu-16-04-x64"}`, headers: { 'content-type': json } }, status: 422, code: 'CLOUD_ERR_VALIDATION', mentions: '__proto__' },
    { label: 'a missing name', request: { json: { region: 'nyc1', size: '1gb', image: 'ubuntu-16-04-x64' } }, status: 422, code: 'CLOUD_ERR_VALIDATION', mentions: 'name' },
    { label: 'a numeric name', request: { json: { ...VALID, name: 42 } }, status: 422, code: 'CLOUD_ERR_VALIDATION', mentions: 'name' },
    { label: 'a null region', request: { json: { ...VALID, region: null } }, status: 422, code: 'CLOUD_ERR_VALIDATION', mentions: 'region' },
    { label: 'an object size', request: { json: { ...VALID, size: { slug: '1gb' } } }, status: 422, code: 'CLOUD_ERR_VALIDATION', mentions: 'size' },
    { label: 'a numeric image', request: { json: { ...VALID, image: 2 } }, status: 422, code: 'CLOUD_ERR_VALIDATION', mentions: 'image' },
    { label: 'a string boolean', request: { json: { ...VALID, backups: 'yes' } }, status: 422, code: 'CLOUD_ERR_VALIDATION', mentions: 'backups' },
    { label: 'ssh_keys not an array', request: { json: { ...VALID, ssh_keys: '1' } }, status: 422, code: 'CLOUD_ERR_VALIDATION', mentions: 'ssh_keys' },
    { label: 'a fractional ssh key id', request: { json: { ...VALID, ssh_keys: [1.5] } }, status: 422, code: 'CLOUD_ERR_VALIDATION', mentions: 'ssh_keys[0]' },
    { label: "another customer's ssh key", request: { json: { ...VALID, ssh_keys: [B] } }, status: 422, code: 'CLOUD_ERR_UNKNOWN_SSH_KEY', mentions: String(B) },
    { label: 'SQL in the name', request: { json: { ...VALID, name: "x'; DROP TABLE events; --" } }, status: 422, code: 'CLOUD_ERR_VALIDATION', mentions: 'name' },
    { label: 'SQL in the region', request: { json: { ...VALID, region: "nyc1' OR '1'='1" } }, status: 422, code: 'CLOUD_ERR_UNKNOWN_REGION', mentions: 'OR' },
    { label: 'a name with a space', request: { json: { ...VALID, name: 'web 1' } }, status: 422, code: 'CLOUD_ERR_VALIDATION', mentions: 'name' },
    { label: 'a label starting with a hyphen', request: { json: { ...VALID, name: '-web' } }, status: 422, code: 'CLOUD_ERR_VALIDATION', mentions: 'name' },
    { label: 'a 256-character name', request: { json: { ...VALID, name: Array.from({ length: 5 }, () => 'a'.repeat(50)).join('.') + '.a' } }, status: 422, code: 'CLOUD_ERR_VALIDATION', mentions: 'name' },
    { label: 'an unknown region', request: { json: { ...VALID, region: 'mars1' } }, status: 422, code: 'CLOUD_ERR_UNKNOWN_REGION', mentions: 'mars1' },
    { label: 'a region in the wrong case', request: { json: { ...VALID, region: 'NYC1' } }, status: 422, code: 'CLOUD_ERR_UNKNOWN_REGION', mentions: 'NYC1' },
    { label: 'an unknown size', request: { json: { ...VALID, size: '3gb' } }, status: 422, code: 'CLOUD_ERR_UNKNOWN_SIZE', mentions: '3gb' },
    { label: 'an unknown image', request: { json: { ...VALID, image: 'windows-2012' } }, status: 422, code: 'CLOUD_ERR_UNKNOWN_IMAGE', mentions: 'windows-2012' },
    { label: 'a body over the limit', request: { json: { ...VALID, name: 'a'.repeat(70 * 1024) } }, status: 413, code: 'CLOUD_ERR_BODY_TOO_LARGE' },
  ];

  it.each(cases)('$label → $status $code', async ({ request, status, code, mentions }) => {
    const before = await queueCounts();
    const res = await api('POST', '/v2/droplets', { token: tokenA, ...request });
    expect(res.status).toBe(status);
    expect(res.body.code).toBe(code);
    expect(typeof res.body.message).toBe('string');
    if (mentions) expect(res.body.message).toContain(mentions);
    expect(await queueCounts()).toEqual(before);
  });

  it('keeps every table and keeps serving afterwards', async () => {
    const tables = (await t.db('information_schema.TABLES').where({ TABLE_SCHEMA: t.name }).pluck('TABLE_NAME')) as string[];
    expect(tables).toEqual(expect.arrayContaining(['events', 'droplets', 'customers']));
    expect((await api('GET', '/healthz')).status).toBe(200);
    await create(tokenA, { name: 'still-serving' });
  });

  it('counts a client that hangs up mid-body as 499 CLOUD_ERR_CLIENT_CLOSED, not a server error, and writes nothing', async () => {
    const before = await queueCounts();
    const status = async (code: string) => {
      const metric = await tc.registry.getSingleMetric('http_requests_total')!.get();
      return metric.values.filter((v) => v.labels.route === '/v2/droplets' && v.labels.status === code).reduce((n, v) => n + v.value, 0);
    };
    const serverErrorsBefore = (await status('500')) + (await status('503'));
    const { hostname, port } = new URL(tc.url);
    const socket = connect(Number(port), hostname);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    // Headers promise 200 bytes; 10 arrive, then the client is gone.
    socket.write(`POST /v2/droplets HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${tokenA}\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{"name":"w`);
    await new Promise((r) => setTimeout(r, 200));
    socket.destroy();
    await waitFor(async () => (await status('499')) >= 1);
    expect((await status('500')) + (await status('503'))).toBe(serverErrorsBefore);
    expect(await queueCounts()).toEqual(before);
    await create(tokenA, { name: 'after-hangup' });
  });

  it('refuses bad action bodies and ids without writing', async () => {
    const { id } = await create(tokenA, { name: 'action-input' });
    await place(id);
    const before = await queueCounts();
    const bad: Array<[string, ApiRequest, number, string]> = [
      [`/v2/droplets/${id}/actions`, { json: { type: 'snapshot' } }, 422, 'CLOUD_ERR_VALIDATION'],
      [`/v2/droplets/${id}/actions`, { json: { type: 'reboot', force: true } }, 422, 'CLOUD_ERR_VALIDATION'],
      [`/v2/droplets/${id}/actions`, { json: {} }, 422, 'CLOUD_ERR_VALIDATION'],
      [`/v2/droplets/${id}/actions`, { raw: 'type=reboot', headers: { 'content-type': 'text/plain' } }, 415, 'CLOUD_ERR_UNSUPPORTED_MEDIA_TYPE'],
      ['/v2/droplets/abc/actions', { json: { type: 'reboot' } }, 404, 'CLOUD_ERR_NOT_FOUND'],
      ['/v2/droplets/99999999/actions', { json: { type: 'reboot' } }, 404, 'CLOUD_ERR_NOT_FOUND'],
    ];
    for (const [path, request, status, code] of bad) {
      const res = await api('POST', path, { ...request, token: tokenA });
      expect(res.status, `${path} ${JSON.stringify(request)}`).toBe(status);
      expect(res.body.code).toBe(code);
    }
    expect(await queueCounts()).toEqual(before);
  });
});

describe('GET /v2/droplets and /v2/droplets/:id', () => {
  it('lists the customer’s non-archived droplets with a total and pages through them', async () => {
    const visible = () => t.db('droplets').where({ customer_id: A }).whereNot('status', 'archived');
    const [{ n }] = (await visible().count({ n: '*' })) as Array<{ n: number }>;
    for (let i = Number(n); i < 12; i++) await create(tokenA, { name: `page-filler-${i}` });
    const ids = (await visible().orderBy('id').pluck('id')) as number[];
    expect(ids.length).toBeGreaterThanOrEqual(12);
    const first = await api('GET', '/v2/droplets?per_page=5', { token: tokenA });
    expect(first.status).toBe(200);
    expect(first.body.meta).toEqual({ total: ids.length });
    expect(first.body.droplets.map((d: { id: number }) => d.id)).toEqual(ids.slice(0, 5));
    expect(first.body.links.pages.next).toBe('/v2/droplets?page=2&per_page=5');
    const second = await api('GET', '/v2/droplets?page=2&per_page=5', { token: tokenA });
    expect(second.body.droplets.map((d: { id: number }) => d.id)).toEqual(ids.slice(5, 10));
    const all = await api('GET', '/v2/droplets?per_page=200', { token: tokenA });
    expect(all.body.droplets.map((d: { id: number }) => d.id)).toEqual(ids.slice(0, 200));
    const beyond = await api('GET', `/v2/droplets?page=${ids.length + 1}&per_page=1`, { token: tokenA });
    expect(beyond.body.droplets).toEqual([]);

    // A seeded droplet carries its address; archiving removes it from the list.
    const seeded = all.body.droplets.find((d: { id: number }) => d.id === ids[0]);
    expect(seeded.networks.v4).toEqual([{ ip_address: expect.stringMatching(/^10\./), type: 'public' }]);
    await t.db('droplets').where({ id: ids[0] }).update({ status: 'archived' });
    const after = await api('GET', '/v2/droplets?per_page=5', { token: tokenA });
    expect(after.body.meta.total).toBe(ids.length - 1);
    expect(after.body.droplets.map((d: { id: number }) => d.id)).not.toContain(ids[0]);
    expect((await api('GET', `/v2/droplets/${ids[0]}`, { token: tokenA })).status).toBe(404);
  });

  it.each(['per_page=201', 'per_page=0', 'page=0', 'page=abc', 'page=1.5', 'page=-1', 'tag_name=web', 'page=1&page=2'])(
    'refuses ?%s with 400 CLOUD_ERR_INVALID_QUERY',
    async (query) => {
      const res = await api('GET', `/v2/droplets?${query}`, { token: tokenA });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('CLOUD_ERR_INVALID_QUERY');
    },
  );

  it('gets one droplet, and answers 404 for ids that cannot exist', async () => {
    const { id } = await create(tokenA, { name: 'get-me', monitoring: true });
    const res = await api('GET', `/v2/droplets/${id}`, { token: tokenA });
    expect(res.status).toBe(200);
    expect(res.body.droplet).toMatchObject({ id, name: 'get-me', status: 'new', features: ['monitoring'], size_slug: '1gb', region: { slug: 'nyc1' } });
    for (const bad of ['abc', '0', '-1', '1.5', '99999999999', '4294967296', '%20']) {
      const r = await api('GET', `/v2/droplets/${bad}`, { token: tokenA });
      expect(r.status, bad).toBe(404);
      expect(r.body.code).toBe('CLOUD_ERR_NOT_FOUND');
    }
  });
});

describe('DELETE /v2/droplets/:id', () => {
  it('refuses a droplet not yet placed, then writes a destroy event for its server once it is', async () => {
    const { id } = await create(tokenA, { name: 'doomed' });
    const before = await queueCounts();
    const early = await api('DELETE', `/v2/droplets/${id}`, { token: tokenA });
    expect(early.status).toBe(422);
    expect(early.body.code).toBe('CLOUD_ERR_DROPLET_NOT_READY');
    expect(await queueCounts()).toEqual(before);

    const serverId = await place(id);
    const res = await api('DELETE', `/v2/droplets/${id}`, { token: tokenA });
    expect(res.status).toBe(204);
    const destroys = await t.db('events').where({ droplet_id: id, type: 'destroy' });
    expect(destroys).toHaveLength(1);
    expect(destroys[0]).toMatchObject({ server_id: serverId, status: 'pending', customer_id: A });
    expect(destroys[0].available_at).not.toBeNull();
    expect(await count('events')).toBe(before.events + 1);

    // Asking again while the destroy is in flight is answered, not queued twice.
    expect((await api('DELETE', `/v2/droplets/${id}`, { token: tokenA })).status).toBe(204);
    expect(await count('events', { droplet_id: id, type: 'destroy' })).toBe(1);
    const busy = await api('POST', `/v2/droplets/${id}/actions`, { token: tokenA, json: { type: 'reboot' } });
    expect(busy.status).toBe(422);
    expect(busy.body.code).toBe('CLOUD_ERR_DROPLET_BUSY');
  });

  it('archives without an event a droplet whose create failed before placement', async () => {
    const { id, eventId } = await create(tokenA, { name: 'never-placed' });
    await t.db('events').where({ id: eventId }).update({ status: 'error', message: 'no capacity' });
    const before = await count('events');
    const res = await api('DELETE', `/v2/droplets/${id}`, { token: tokenA });
    expect(res.status).toBe(204);
    expect(await count('events')).toBe(before);
    expect((await t.db('droplets').where({ id }).first('status')).status).toBe('archived');
    expect((await api('GET', `/v2/droplets/${id}`, { token: tokenA })).status).toBe(404);
    expect((await api('DELETE', `/v2/droplets/${id}`, { token: tokenA })).status).toBe(404);
  });
});

describe('POST /v2/droplets/:id/actions and GET /v2/actions/:id', () => {
  it('writes an event for the droplet’s server and reads it back through the status mapping', async () => {
    const { id } = await create(tokenA, { name: 'actions' });
    const refused = await api('POST', `/v2/droplets/${id}/actions`, { token: tokenA, json: { type: 'power_off' } });
    expect(refused.status).toBe(422);
    expect(refused.body.code).toBe('CLOUD_ERR_DROPLET_NOT_READY');

    const serverId = await place(id);
    const ids: number[] = [];
    for (const type of ['reboot', 'power_off', 'power_on']) {
      const res = await api('POST', `/v2/droplets/${id}/actions`, { token: tokenA, json: { type } });
      expect(res.status).toBe(201);
      expect(res.body.action).toMatchObject({ type, status: 'in-progress', resource_id: id, resource_type: 'droplet', region_slug: 'nyc1', completed_at: null });
      expect(res.body.action.started_at).toMatch(/Z$/);
      const row = await t.db('events').where({ id: res.body.action.id }).first();
      expect(row).toMatchObject({ type, server_id: serverId, status: 'pending', droplet_id: id, customer_id: A });
      expect(row.available_at).not.toBeNull();
      ids.push(res.body.action.id);
    }

    const read = async (eventId: number) => (await api('GET', `/v2/actions/${eventId}`, { token: tokenA })).body.action;
    await t.db('events').where({ id: ids[0] }).update({ status: 'running', started_at: t.db.raw('CURRENT_TIMESTAMP(3)') });
    expect((await read(ids[0]!)).status).toBe('in-progress');
    await t.db('events').where({ id: ids[0] }).update({ status: 'done', finished_at: t.db.raw('CURRENT_TIMESTAMP(3)') });
    const done = await read(ids[0]!);
    expect(done.status).toBe('completed');
    expect(done.completed_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    await t.db('events').where({ id: ids[1] }).update({ status: 'error', finished_at: t.db.raw('CURRENT_TIMESTAMP(3)') });
    expect((await read(ids[1]!)).status).toBe('errored');
    expect((await read(ids[2]!)).status).toBe('in-progress');
  });

  it('answers 404 for unknown, malformed and platform-internal action ids', async () => {
    // Maintenance events (pdu_reboot, …) belong to no customer and are nobody's action.
    const [internal] = await t.db('events').insert({ region_id: 1, type: 'pdu_reboot', server_id: 1, status: 'pending' });
    for (const bad of ['abc', '0', '999999999', String(internal)]) {
      const res = await api('GET', `/v2/actions/${bad}`, { token: tokenA });
      expect(res.status, bad).toBe(404);
      expect(res.body.code).toBe('CLOUD_ERR_NOT_FOUND');
    }
  });
});

describe('metrics and lifecycle', () => {
  it('counts exactly the committed writes', async () => {
    const value = async (name: string, labels: Record<string, string> = {}) => {
      const metric = await tc.registry.getSingleMetric(name)!.get();
      return metric.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value ?? 0;
    };
    const apiDroplets = await t.db('droplets').where('id', '>', seed.droplets.length).count({ n: '*' });
    expect(await value('cloud_droplets_created_total')).toBe(Number(apiDroplets[0]!.n));
    for (const type of ['create', 'destroy', 'reboot', 'power_off', 'power_on']) {
      expect(await value('cloud_events_written_total', { type }), type).toBe(await count('events', { type }));
    }
  });

  it('rejects bad options at start-up, naming them', () => {
    const db = t.service('cloud');
    expect(() => createCloud({ db, port: -1 })).toThrow(/option "port"/);
    expect(() => createCloud({ db, bodyLimit: 10 })).toThrow(/option "bodyLimit"/);
    expect(() => createCloud({ db, poolMax: 0 })).toThrow(/option "poolMax"/);
    expect(() => createCloud({ db: { host: 'x' } as never })).toThrow(/option "db"/);
    try {
      createCloud({ db: { ...db, port: 'nope' } as never });
    } catch (err) {
      expect((err as { code: string }).code).toBe('CONFIG_ERR_INVALID_OPTION');
      expect((err as Error).message).not.toContain(db.password);
    }
  });

  it('fails start-up with a coded error when the database refuses it', async () => {
    const cloud = createCloud({ db: { ...t.service('cloud'), password: 'wrong' } });
    await expect(cloud.start()).rejects.toMatchObject({ code: 'CLOUD_ERR_DATABASE_UNAVAILABLE' });
    await cloud.close();
  });

  it('closes idempotently, and leaves a borrowed knex open', async () => {
    const cloud = createCloud({ db: t.db, registry: new Registry(), directEvents });
    const { url } = await cloud.start();
    expect((await fetch(url + '/healthz')).status).toBe(200);
    await Promise.all([cloud.close(), cloud.close()]);
    await cloud.close();
    await expect(fetch(url + '/healthz')).rejects.toThrow();
    expect(await count('regions')).toBe(2);
  });
});
