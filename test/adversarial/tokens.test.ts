import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkHypervisorToken, mintHypervisorToken } from '../../lib/auth/hypervisor-token.ts';
import { ADMIN_TOKEN, CUTOVER_TOKEN, HARPOON_TOKEN, startAdversarialStack, tableSnapshot, type AdversarialStack, type ServiceName } from '../helpers/adversarial-stack.ts';
import { expectRefusal, serverErrors } from '../helpers/bad-input.ts';
import { call, type RequestSpec } from '../helpers/raw-http.ts';
import { openStream } from '../helpers/router.ts';
import { insertEvent, waitFor } from '../helpers/seeded.ts';
import { freshKeyRing, newHypervisorKey } from '../../lib/auth/hypervisor-keys.ts';

/**
 * Credentials on every protected endpoint: Cloud's customer tokens, the
 * proxy admin token, the cutover admin tokens, the per-hypervisor tokens of
 * the Event Router (directly and through the proxy). Missing, malformed,
 * forged, truncated, overlong, of another kind, minted under an old
 * secret: each is a 401 with the service's code, nothing written. A valid
 * hypervisor token reads and acknowledges only its own host's events.
 *
 * Hypervisor tokens carry a key id and an expiry and can be revoked per
 * host (lib/auth/hypervisor-keys.ts); admin tokens may carry an expiry;
 * customer tokens are looked up by digest and revoked by suspending the
 * account — those are what the "expired" cases test.
 */

let s: AdversarialStack;

interface Protected {
  name: string;
  service: ServiceName;
  spec: RequestSpec;
  /** The valid token, from which forgeries are derived. */
  token: () => string;
  /** The code a refused credential gets. */
  code: string;
  /** Tokens of other kinds that must not work here either. */
  others: () => string[];
}

let rows: Protected[];

beforeAll(async () => {
  s = await startAdversarialStack('adv_tokens');
  const customer = () => s.customerToken;
  const hvA = () => s.hv(s.hostA);
  const droplet = s.seed.droplets.find((d) => d.customer_id === s.seed.customers[0]!.id)!;
  const create = JSON.stringify({ name: 'web-1', region: s.region, size: '2gb', image: s.seed.images[0]!.slug });
  const ack = JSON.stringify({ event_id: 1, received_at: new Date().toISOString() });
  const json = { 'content-type': 'application/json' };
  const hvPath = (what: string) => `/v1/regions/${s.region}/hypervisors/${s.hostA.id}/${what}`;
  const cloud = (method: string, path: string, body?: string): Protected => ({
    name: `Cloud ${method} ${path}`,
    service: 'cloud',
    spec: { method, path, ...(body ? { headers: json, body } : {}) },
    token: customer,
    code: 'CLOUD_ERR_UNAUTHORIZED',
    others: () => [ADMIN_TOKEN, CUTOVER_TOKEN, hvA()],
  });
  const cutover = (method: string, path: string): Protected => ({
    name: `cutover ${method} ${path}`,
    service: 'cutover',
    spec: { method, path, ...(method === 'POST' ? { headers: json, body: '{"reason":"forged"}' } : {}) },
    token: () => CUTOVER_TOKEN,
    code: 'CUTOVER_ERR_UNAUTHORIZED',
    others: () => [ADMIN_TOKEN, customer(), hvA()],
  });
  const hv = (service: 'router' | 'proxy', method: string, what: string, body?: string): Protected => ({
    name: `${service === 'proxy' ? 'proxy → ' : ''}Event Router ${method} ${what}`,
    service,
    spec: { method, path: hvPath(what), ...(body ? { headers: json, body } : {}) },
    token: hvA,
    code: 'ROUTER_ERR_UNAUTHORIZED',
    others: () => [ADMIN_TOKEN, CUTOVER_TOKEN, customer(), mintHypervisorToken(freshKeyRing(), s.hostA.id, s.hostA.region)],
  });
  rows = [
    cloud('GET', '/v2/droplets'),
    cloud('POST', '/v2/droplets', create),
    cloud('GET', `/v2/droplets/${droplet.id}`),
    cloud('DELETE', `/v2/droplets/${droplet.id}`),
    cloud('POST', `/v2/droplets/${droplet.id}/actions`, '{"type":"reboot"}'),
    cloud('GET', '/v2/actions/1'),
    ...['/admin/shadow/samples', '/admin/upstreams'].map(
      (path): Protected => ({
        name: `proxy admin GET ${path}`,
        service: 'proxyAdmin',
        spec: { method: 'GET', path },
        token: () => ADMIN_TOKEN,
        code: 'PROXY_ERR_UNAUTHORIZED',
        others: () => [CUTOVER_TOKEN, customer(), hvA()],
      }),
    ),
    ...[
      ['POST', '/v1/events', JSON.stringify({ type: 'reboot', region: 'nyc1' })],
      ['GET', '/v1/events'],
      ['GET', '/v1/events/1'],
      ['POST', '/v1/events/1/status', '{"status":"done"}'],
      ['POST', '/v1/events/status', '{"changes":[{"id":1,"status":"done"}]}'],
      ['GET', '/v1/stream'],
    ].map(
      ([method, path, body]): Protected => ({
        name: `Harpoon ${method} ${path}`,
        service: 'harpoon',
        spec: { method: method!, path: path!, ...(body ? { headers: json, body } : {}) },
        token: () => HARPOON_TOKEN,
        code: 'HARPOON_ERR_UNAUTHORIZED',
        others: () => [ADMIN_TOKEN, CUTOVER_TOKEN, hvA()],
      }),
    ),
    cutover('GET', '/cutover/status'),
    cutover('GET', '/cutover/plan'),
    cutover('GET', '/cutover/history'),
    ...['advance', 'rollback', 'pause', 'resume'].map((verb) => cutover('POST', `/cutover/event-delivery/${verb}`)),
    ...(['router', 'proxy'] as const).flatMap((service) => [hv(service, 'GET', 'events'), hv(service, 'POST', 'acks', ack), hv(service, 'GET', 'mode')]),
  ];
});

afterAll(async () => {
  await s?.close();
});

/** Authorization header values that must all be refused, given the valid token. */
function forgeries(token: string, others: string[]): Array<[string, string | undefined]> {
  const flip = (t: string, i: number) => t.slice(0, i) + (t[i] === 'A' ? 'B' : 'A') + t.slice(i + 1);
  return [
    ['no Authorization header', undefined],
    ['an empty header', ''],
    ['Basic credentials', 'Basic dXNlcjpwYXNzd29yZA=='],
    ['Bearer with no token', 'Bearer'],
    ['Bearer and spaces', 'Bearer    '],
    ['the token without Bearer', token],
    ['the last character changed', `Bearer ${flip(token, token.length - 1)}`],
    ['the first character changed', `Bearer ${flip(token, 0)}`],
    ['truncated', `Bearer ${token.slice(0, -1)}`],
    ['extended', `Bearer ${token}x`],
    ['two tokens', `Bearer ${token} ${token}`],
    ['SQL-looking', "Bearer ' OR '1'='1"],
    ['SQL-looking with the token', `Bearer ${token}' OR '1'='1`],
    ['600 characters', `Bearer ${'A'.repeat(600)}`],
    ['8 KB', `Bearer ${'A'.repeat(8000)}`],
    ['with a tab inside', `Bearer ${token.slice(0, 5)}\t${token.slice(5)}`],
    ...others.map((o, i): [string, string] => [`a token of another kind (#${i + 1})`, `Bearer ${o}`]),
  ];
}

describe('forged, missing, malformed and revoked credentials', () => {
  it('every protected endpoint refuses each with a 401 and its code, writes nothing, and keeps serving', async () => {
    const before = await tableSnapshot(s.t.db, s.t.name);
    const errorsBefore = await Promise.all(rows.map((r) => serverErrors(s.registries[r.service])));
    let refused = 0;
    for (const row of rows) {
      const attempts = forgeries(row.token(), row.others());
      for (let i = 0; i < attempts.length; i += 6) {
        await Promise.all(
          attempts.slice(i, i + 6).map(async ([what, header]) => {
            const headers = { ...row.spec.headers, ...(header === undefined ? {} : { authorization: header }) };
            const answer = await call(s.ports[row.service], { ...row.spec, headers });
            expectRefusal(answer, 401, row.code, `${row.name}: ${what}`);
            refused++;
          }),
        );
      }
    }
    expect(refused).toBeGreaterThan(rows.length * 15);
    expect(await tableSnapshot(s.t.db, s.t.name)).toEqual(before);
    expect(await Promise.all(rows.map((r) => serverErrors(s.registries[r.service])))).toEqual(errorsBefore);
    for (const service of ['cloud', 'router', 'proxy', 'proxyAdmin', 'cutover', 'harpoon'] as const) {
      const after = await call(s.ports[service], s.good[service]);
      expect(after.status, `${service}: ${after.text}`).toBe(200);
    }
  });

  it('a suspended customer is refused with 403 before anything is written', async () => {
    const suspended = s.seed.customers[1]!;
    await s.t.db('customers').where({ id: suspended.id }).update({ status: 'suspended' });
    const before = await tableSnapshot(s.t.db, s.t.name);
    const answer = await call(s.ports.cloud, {
      method: 'POST',
      path: '/v2/droplets',
      headers: { authorization: `Bearer ${s.seed.tokens.get(suspended.id)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'web-2', region: s.region, size: '2gb', image: s.seed.images[0]!.slug }),
    });
    expectRefusal(answer, 403, 'CLOUD_ERR_ACCOUNT_INACTIVE');
    expect(await tableSnapshot(s.t.db, s.t.name)).toEqual(before);
  });

  it('hypervisor tokens carry a key id and an expiry; an expired token, a retired key or a revoked host is refused', () => {
    const ring = freshKeyRing();
    const kid = ring.keys[0]!.kid;
    const at = (s: number) => new Date(1_800_000_000_000 + s * 1000);
    const token = mintHypervisorToken(ring, 7, 'nyc1', { now: at(0), ttlSeconds: 60 });
    expect(token).toMatch(new RegExp(`^hv\\.${kid}\\.7\\.1800000000\\.1800000060\\.[A-Za-z0-9_-]{43}$`));
    expect(checkHypervisorToken(ring, token, 7, 'nyc1', at(30))).toBe('ok');
    expect(checkHypervisorToken(ring, token, 7, 'nyc1', at(60))).toBe('expired');
    expect(checkHypervisorToken(ring, token, 7, 'sfo1', at(30))).toBe('bad-mac');
    expect(checkHypervisorToken(ring, token.replace(/\.1800000060\./, '.1900000060.'), 7, 'nyc1', at(30))).toBe('bad-mac');
    // Rotation: a new key signs, the old one is still accepted until retired.
    const rotated = { ...ring, keys: [newHypervisorKey(), ...ring.keys] };
    expect(mintHypervisorToken(rotated, 7, 'nyc1')).not.toContain(`hv.${kid}.`);
    expect(checkHypervisorToken(rotated, token, 7, 'nyc1', at(30))).toBe('ok');
    const retired = { ...rotated, keys: rotated.keys.map((k) => (k.kid === kid ? { ...k, retired_at: at(1).toISOString() } : k)) };
    expect(checkHypervisorToken(retired, token, 7, 'nyc1', at(30))).toBe('retired-key');
    expect(checkHypervisorToken({ ...ring, keys: rotated.keys.slice(0, 1) }, token, 7, 'nyc1', at(30))).toBe('unknown-key');
    // Revocation of one host: its tokens issued before are refused, another host's are not, a new one works.
    const revoked = { ...ring, revoked: { '7': at(10).toISOString() } };
    expect(checkHypervisorToken(revoked, token, 7, 'nyc1', at(30))).toBe('revoked');
    expect(checkHypervisorToken(revoked, mintHypervisorToken(ring, 8, 'nyc1', { now: at(0) }), 8, 'nyc1', at(30))).toBe('ok');
    expect(checkHypervisorToken(revoked, mintHypervisorToken(ring, 7, 'nyc1', { now: at(11) }), 7, 'nyc1', at(30))).toBe('ok');
  });
});

describe("a hypervisor and another's events", () => {
  const path = (host: { id: number; region: string }, what: string, region = host.region) => `/v1/regions/${region}/hypervisors/${host.id}/${what}`;

  it.each(['router', 'proxy'] as const)("%s: A cannot open, ask about or ack B's stream; B's claimed event stays B's", async (service) => {
    const port = s.ports[service];
    const { hostA, hostB, foreign } = s;
    const authA = { authorization: `Bearer ${s.hv(hostA)}` };
    // B holds its stream, so the router claims B's event and sends it to B.
    const streamB = await openStream(`http://127.0.0.1:${port}${path(hostB, 'events')}`, { authorization: `Bearer ${s.hv(hostB)}` });
    try {
      expect(streamB.status).toBe(200);
      const regionId = s.seed.regions.find((r) => r.slug === s.region)!.id;
      const eventB = await insertEvent(s.t.db, { type: 'reboot', region_id: regionId, server_id: hostB.id });
      await waitFor(async () => streamB.messages.some((m) => m.id === String(eventB)), 15_000);
      expect((await s.t.db('events').where({ id: eventB }).first()).status).toBe('running');

      const before = await tableSnapshot(s.t.db, s.t.name);
      const ack = (id: number) => ({ event_id: id, received_at: new Date().toISOString() });
      const attempts: Array<[string, RequestSpec, number, string]> = [
        ["A's token on B's stream", { method: 'GET', path: path(hostB, 'events'), headers: authA }, 403, 'ROUTER_ERR_FORBIDDEN'],
        ["A's token on B's mode", { method: 'GET', path: path(hostB, 'mode'), headers: authA }, 403, 'ROUTER_ERR_FORBIDDEN'],
        [
          "A's token on B's acks",
          { method: 'POST', path: path(hostB, 'acks'), headers: { ...authA, 'content-type': 'application/json' }, body: JSON.stringify(ack(eventB)) },
          403,
          'ROUTER_ERR_FORBIDDEN',
        ],
        [
          "A acking B's event on A's own path",
          { method: 'POST', path: path(hostA, 'acks'), headers: { ...authA, 'content-type': 'application/json' }, body: JSON.stringify(ack(eventB)) },
          403,
          'ROUTER_ERR_FORBIDDEN',
        ],
        [
          "A acking B's event inside a batch",
          {
            method: 'POST',
            path: path(hostA, 'acks'),
            headers: { ...authA, 'content-type': 'application/json' },
            body: JSON.stringify({ acks: [ack(987_654_321), ack(eventB)] }),
          },
          403,
          'ROUTER_ERR_FORBIDDEN',
        ],
        [
          "B's token under A's region but another region's host id",
          { method: 'GET', path: path(foreign, 'events', s.region), headers: { authorization: `Bearer ${s.hv(hostB)}` } },
          403,
          'ROUTER_ERR_FORBIDDEN',
        ],
        [
          "a host of another region on this region's stream",
          { method: 'GET', path: path(foreign, 'events', s.region), headers: { authorization: `Bearer ${s.hv(foreign)}` } },
          404,
          'ROUTER_ERR_WRONG_REGION',
        ],
        [
          "A's token minted for the other region",
          { method: 'GET', path: path(hostA, 'events'), headers: { authorization: `Bearer ${s.hv({ id: hostA.id, region: foreign.region })}` } },
          401,
          'ROUTER_ERR_UNAUTHORIZED',
        ],
      ];
      for (const [what, spec, status, code] of attempts) {
        const answer = await call(port, spec);
        expectRefusal(answer, status, code, what);
      }
      expect(await tableSnapshot(s.t.db, s.t.name)).toEqual(before);
      expect((await s.t.db('events').where({ id: eventB }).first()).status).toBe('running');
      expect(await s.t.db('event_executions').where({ event_id: eventB })).toEqual([]);
      // B's stream was not taken over by A's attempts, and B's own ack records it once.
      expect(streamB.messages.filter((m) => m.id === String(eventB))).toHaveLength(1);
      const own = await call(port, {
        method: 'POST',
        path: path(hostB, 'acks'),
        headers: { authorization: `Bearer ${s.hv(hostB)}`, 'content-type': 'application/json' },
        body: JSON.stringify(ack(eventB)),
      });
      expect(own.status, own.text).toBe(200);
      expect(own.json).toEqual({ event_id: eventB, duplicate: false });
      expect(await s.t.db('event_executions').where({ event_id: eventB })).toHaveLength(1);
    } finally {
      streamB.close();
    }
  });
});
