import { afterEach, describe, expect, it } from 'vitest';
import { compareResponses, compileRules, normalize } from '../../proxy/compare.ts';
import { createProxyAdmin } from '../../proxy/admin.ts';
import { createProxy, type Proxy, type ProxyOptions } from '../../proxy/create-proxy.ts';
import type { RouteTable } from '../../proxy/route-table.ts';
import { createStaticState } from '../../proxy/static-state.ts';
import { metricValue, send, startUpstream, waitFor, type TestUpstream, type UpstreamHandler } from '../helpers/upstream.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function upstream(name: string, handler?: UpstreamHandler): Promise<TestUpstream> {
  const u = await startUpstream(name, handler);
  cleanups.push(() => u.close());
  return u;
}

function json(res: import('node:http').ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const TOKEN = 'admin-token-0123456789abcdef';

/** A droplet as each side renders it: ids and timestamps are each side's own. */
function droplet(side: 'legacy' | 'new', name: string) {
  return {
    droplet: {
      id: side === 'legacy' ? 101 : 90001,
      name,
      status: 'new',
      region: { slug: 'nyc1' },
      created_at: side === 'legacy' ? '2016-05-01T10:00:00Z' : '2016-05-01T10:00:00.123Z',
      networks: { v4: [{ ip_address: '10.0.0.1', created_at: side === 'legacy' ? 'a' : 'b' }] },
    },
  };
}

async function shadowProxy(legacy: TestUpstream, fresh: TestUpstream, extra: Partial<ProxyOptions> = {}, routeExtra: Record<string, unknown> = {}) {
  const routes: RouteTable = {
    'droplet-api': {
      legacy: [legacy.url],
      new: [fresh.url],
      compare: { ignore: ['$.droplet.id', '*.created_at'], unordered: [{ path: '$.droplets', by: 'name' }] },
      routes: [
        { method: 'GET', path: '/v2/droplets/:id', stickyBy: 'bearer' },
        { method: 'GET', path: '/v2/droplets', stickyBy: 'bearer' },
        { method: 'POST', path: '/v2/droplets', stickyBy: 'bearer', ...routeExtra },
      ],
    },
  };
  const proxy: Proxy = createProxy({ routes, state: createStaticState({ 'droplet-api': { mode: 'shadow' } }), ...extra });
  const { url } = await proxy.start();
  cleanups.push(() => proxy.close());
  return { proxy, url };
}

async function comparisons(url: string, result: string): Promise<number> {
  const text = (await send(`${url}/metrics`)).text;
  return metricValue(text, 'proxy_shadow_comparisons_total', { feature: 'droplet-api', route: '/v2/droplets/:id', result }) ?? 0;
}

describe('shadow mode', () => {
  it('answers from legacy, copies to new, and counts a match when only ignored ids and timestamps differ', async () => {
    const legacy = await upstream('legacy', (_req, res) => json(res, 200, droplet('legacy', 'web-1')));
    const fresh = await upstream('new', (_req, res) => json(res, 200, droplet('new', 'web-1')));
    const { url, proxy } = await shadowProxy(legacy, fresh);
    const res = await send(`${url}/v2/droplets/101`, { headers: { 'x-request-id': 'shadow-1' } });
    expect(res.status).toBe(200);
    expect(res.body.droplet.id).toBe(101);
    await waitFor(async () => (await comparisons(url, 'match')) === 1, 3000, 'one match');
    expect(await comparisons(url, 'mismatch')).toBe(0);
    expect(proxy.shadowSamples()).toEqual([]);
    // The copy carries the same request id and a marker the new side can see.
    expect(fresh.requests[0]!.headers['x-request-id']).toBe('shadow-1');
    expect(fresh.requests[0]!.headers['x-strangler-shadow']).toBe('1');
  });

  it('counts a mismatch when a real field differs and keeps a sample with both bodies, readable from the admin route', async () => {
    const legacy = await upstream('legacy', (_req, res) => json(res, 200, droplet('legacy', 'web-1')));
    const fresh = await upstream('new', (_req, res) => json(res, 200, droplet('new', 'web-2')));
    const { url, proxy } = await shadowProxy(legacy, fresh);
    const res = await send(`${url}/v2/droplets/101?secret=yes`, { headers: { 'x-request-id': 'shadow-2' } });
    expect(res.body.droplet.name).toBe('web-1');
    await waitFor(async () => (await comparisons(url, 'mismatch')) === 1, 3000, 'one mismatch');
    const [sample] = proxy.shadowSamples();
    expect(sample).toMatchObject({
      feature: 'droplet-api',
      route: '/v2/droplets/:id',
      method: 'GET',
      path: '/v2/droplets/101',
      requestId: 'shadow-2',
      result: 'mismatch',
      differences: ['$.droplet.name'],
      legacy: { status: 200 },
      new: { status: 200 },
    });
    expect(JSON.parse(sample!.legacy.body).droplet.name).toBe('web-1');
    expect(JSON.parse((sample!.new as { body: string }).body).droplet.name).toBe('web-2');

    const admin = createProxyAdmin({ token: TOKEN, proxy, registry: proxy.registry });
    const { url: adminUrl } = await admin.start();
    cleanups.push(() => admin.close());
    const denied = await send(`${adminUrl}/admin/shadow/samples`);
    expect(denied.status).toBe(401);
    expect(denied.body.code).toBe('PROXY_ERR_UNAUTHORIZED');
    const wrong = await send(`${adminUrl}/admin/shadow/samples`, { headers: { authorization: 'Bearer not-the-token-at-all' } });
    expect(wrong.status).toBe(401);
    const listed = await send(`${adminUrl}/admin/shadow/samples?feature=droplet-api`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(listed.status).toBe(200);
    expect(listed.body.samples).toHaveLength(1);
    expect(listed.body.samples[0].requestId).toBe('shadow-2');
    // Other components mount their own token-protected routes on the same admin service.
    admin.route('GET', '/admin/cutover/ping', ({ res: r }) => json(r, 200, { pong: true }));
    expect((await send(`${adminUrl}/admin/cutover/ping`)).status).toBe(401);
    expect((await send(`${adminUrl}/admin/cutover/ping`, { headers: { authorization: `Bearer ${TOKEN}` } })).body).toEqual({ pong: true });
    // The shared shell's endpoints, and the proxy's metrics through the shared registry.
    expect((await send(`${adminUrl}/healthz`)).status).toBe(200);
    expect((await send(`${adminUrl}/metrics`)).text).toContain('proxy_shadow_comparisons_total');
  });

  it('compares arrays by key regardless of order, and a status difference is a mismatch', async () => {
    let newStatus = 200;
    const legacy = await upstream('legacy', (_req, res) => json(res, 200, { droplets: [{ name: 'a', id: 1 }, { name: 'b', id: 2 }], meta: { total: 2 } }));
    const fresh = await upstream('new', (_req, res) => json(res, newStatus, { droplets: [{ name: 'b', id: 8 }, { name: 'a', id: 9 }], meta: { total: 2 } }));
    const { url, proxy } = await shadowProxy(legacy, fresh, { shadow: { compare: { ignore: ['$.droplets[*].id'] } } });
    await send(`${url}/v2/droplets`);
    const list = async (result: string) =>
      metricValue((await send(`${url}/metrics`)).text, 'proxy_shadow_comparisons_total', { feature: 'droplet-api', route: '/v2/droplets', result }) ?? 0;
    await waitFor(async () => (await list('match')) === 1, 3000, 'the reordered list to match');
    newStatus = 500;
    await send(`${url}/v2/droplets`);
    await waitFor(async () => (await list('mismatch')) === 1, 3000, 'the 500 to mismatch');
    expect(proxy.shadowSamples()[0]!.differences).toContain('status 200 vs 500');
  });

  it('never slows or changes the client answer: a slow or dead new side only counts errors', async () => {
    const legacy = await upstream('legacy', (_req, res) => json(res, 200, droplet('legacy', 'web-1')));
    const fresh = await upstream('new', async (_req, res) => {
      await new Promise((r) => setTimeout(r, 3000));
      if (!res.destroyed) json(res, 200, droplet('new', 'web-1'));
    });
    const { url, proxy } = await shadowProxy(legacy, fresh, { shadow: { timeoutMs: 300 } });
    const started = Date.now();
    const res = await send(`${url}/v2/droplets/101`);
    // Far below the new side's 3 s: the client never waits for the copy.
    expect(Date.now() - started).toBeLessThan(1000);
    expect(res.body).toEqual(droplet('legacy', 'web-1'));
    await waitFor(async () => (await comparisons(url, 'error')) === 1, 3000, 'the late copy to count as an error');
    expect(proxy.shadowSamples()[0]).toMatchObject({ result: 'error', new: { error: expect.stringContaining('300 ms') } });

    await fresh.kill();
    const again = await send(`${url}/v2/droplets/101`);
    expect(again.status).toBe(200);
    await waitFor(async () => (await comparisons(url, 'error')) === 2, 3000, 'the refused copy to count as an error');
  });

  it('does not shadow writes unless the route allows it', async () => {
    const legacy = await upstream('legacy', (_req, res, body) => json(res, 202, { droplet: { id: 1, name: JSON.parse(body).name } }));
    const fresh = await upstream('new', (_req, res, body) => json(res, 202, { droplet: { id: 2, name: JSON.parse(body).name } }));
    const { url } = await shadowProxy(legacy, fresh);
    const res = await send(`${url}/v2/droplets`, { method: 'POST', body: JSON.stringify({ name: 'web-9' }), headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(202);
    await new Promise((r) => setTimeout(r, 200));
    expect(legacy.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
    expect(fresh.requests).toHaveLength(0);

    const legacy2 = await upstream('legacy', (_req, res, body) => json(res, 202, { droplet: { id: 1, name: JSON.parse(body).name } }));
    const fresh2 = await upstream('new', (_req, res, body) => json(res, 202, { droplet: { id: 2, name: JSON.parse(body).name } }));
    const { url: url2 } = await shadowProxy(legacy2, fresh2, {}, { shadowWrites: true });
    await send(`${url2}/v2/droplets`, { method: 'POST', body: JSON.stringify({ name: 'web-10' }), headers: { 'content-type': 'application/json' } });
    await waitFor(() => fresh2.requests.length === 1, 3000, 'the write copy');
    expect(fresh2.requests[0]).toMatchObject({ method: 'POST', body: '{"name":"web-10"}' });
    await waitFor(
      async () =>
        metricValue((await send(`${url2}/metrics`)).text, 'proxy_shadow_comparisons_total', { feature: 'droplet-api', route: '/v2/droplets', result: 'match' }) === 1,
      3000,
      'the write to match',
    );
  });

  it('keeps a bounded sample: the latest N, bodies truncated', async () => {
    let n = 0;
    const legacy = await upstream('legacy', (_req, res) => json(res, 200, { n: 0, pad: 'x'.repeat(500) }));
    const fresh = await upstream('new', (_req, res) => json(res, 200, { n: ++n, pad: 'x'.repeat(500) }));
    const { url, proxy } = await shadowProxy(legacy, fresh, { shadow: { samples: 3, sampleBodyBytes: 64 } });
    for (let i = 0; i < 5; i++) await send(`${url}/v2/droplets/1`);
    await waitFor(async () => (await comparisons(url, 'mismatch')) === 5, 3000, 'five mismatches');
    const samples = proxy.shadowSamples();
    expect(samples).toHaveLength(3);
    const ns = samples.map((s) => (s.new as { body: string }).body.match(/"n":(\d+)/)![1]);
    expect(ns).toEqual(['3', '4', '5']);
    expect(samples[0]!.legacy.body.length).toBe(64);
    expect(samples[0]!.legacy.truncated).toBe(true);
  });
});

describe('comparison rules', () => {
  const rules = compileRules([{ rules: { ignore: ['$.droplet.id', '*.created_at', '$.items[*].etag'], unordered: [{ path: '$.items', by: 'k' }] }, option: 'compare' }]);
  const cmp = (a: unknown, b: unknown, status = [200, 200]) =>
    compareResponses(
      { status: status[0]!, contentType: 'application/json', body: Buffer.from(JSON.stringify(a)) },
      { status: status[1]!, contentType: 'application/json', body: Buffer.from(JSON.stringify(b)) },
      rules,
    );

  it('ignores anchored paths, keys at any depth and array elements', () => {
    expect(normalize({ droplet: { id: 1, created_at: 'x', deep: { created_at: 'y', keep: 1 } } }, rules)).toEqual({ droplet: { deep: { keep: 1 } } });
    expect(cmp({ droplet: { id: 1, name: 'a' } }, { droplet: { id: 2, name: 'a' } }).equal).toBe(true);
    // Only $.droplet.id is ignored, not every id.
    expect(cmp({ other: { id: 1 } }, { other: { id: 2 } })).toEqual({ equal: false, differences: ['$.other.id'] });
    expect(cmp({ items: [{ k: 'b', etag: 1 }, { k: 'a', etag: 2 }] }, { items: [{ k: 'a', etag: 3 }, { k: 'b', etag: 4 }] }).equal).toBe(true);
    expect(cmp({ items: [{ k: 'a', v: 1 }] }, { items: [{ k: 'a', v: 2 }] }).differences).toEqual(['$.items[0].v']);
    expect(cmp({ a: 1 }, { a: 1, b: 2 }).differences).toEqual(['$.b (only on new)']);
    expect(cmp({ a: 1 }, { a: 1 }, [200, 404]).differences).toEqual(['status 200 vs 404']);
  });
});
