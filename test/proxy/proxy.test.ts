import { request } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stickyBucket } from '../../lib/cutover/decide.ts';
import { StranglerError } from '../../lib/errors.ts';
import { createProxy, type Proxy, type ProxyOptions } from '../../proxy/create-proxy.ts';
import { httpProxy3Engine } from '../../proxy/engine.ts';
import type { RouteTable } from '../../proxy/route-table.ts';
import { createStaticState, type StaticStateSource } from '../../proxy/static-state.ts';
import { metricValue, send, startBlackhole, startUpstream, waitFor, type TestUpstream } from '../helpers/upstream.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function upstream(name: string, handler?: Parameters<typeof startUpstream>[1]): Promise<TestUpstream> {
  const u = await startUpstream(name, handler);
  cleanups.push(() => u.close());
  return u;
}

async function proxyFor(options: Partial<ProxyOptions> & Pick<ProxyOptions, 'routes' | 'state'>): Promise<{ proxy: Proxy; url: string }> {
  const proxy = createProxy({ healthCheck: { intervalMs: 100, timeoutMs: 200, unhealthyThreshold: 1 }, ...options });
  const { url } = await proxy.start();
  cleanups.push(() => proxy.close());
  return { proxy, url };
}

/** Runs `fn` over `items` with at most `n` in flight. */
async function pool<T, R>(items: T[], n: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

describe('routing by the feature state', () => {
  let legacy: TestUpstream;
  let fresh: TestUpstream;
  let state: StaticStateSource;
  let url: string;
  let proxy: Proxy;

  beforeAll(async () => {
    legacy = await startUpstream('legacy');
    fresh = await startUpstream('new');
    state = createStaticState();
    const routes: RouteTable = {
      'droplet-api': {
        legacy: [legacy.url],
        new: [fresh.url],
        routes: [
          { method: 'GET', path: '/v2/customers/:customer/droplets', stickyBy: { header: 'x-customer-id' } },
          { method: 'GET', path: '/v2/droplets', stickyBy: 'bearer' },
        ],
      },
    };
    proxy = createProxy({ routes, state });
    ({ url } = await proxy.start());
  });
  afterAll(async () => {
    await proxy.close();
    await legacy.close();
    await fresh.close();
  });

  async function sideOf(key: string): Promise<string> {
    const res = await send(`${url}/v2/customers/c/droplets`, { headers: { 'x-customer-id': key } });
    expect(res.status).toBe(200);
    return res.body.served_by;
  }

  it('sends a feature with no state, or in legacy mode, to legacy', async () => {
    expect(await sideOf('k1')).toBe('legacy');
    state.set('droplet-api', { mode: 'legacy' });
    expect(await sideOf('k1')).toBe('legacy');
  });

  it('sends everything new in full mode', async () => {
    state.set('droplet-api', { mode: 'full' });
    const sides = await pool(['a', 'b', 'c', 'd', 'e'], 5, sideOf);
    expect(new Set(sides)).toEqual(new Set(['new']));
  });

  it('splits a 30% canary by sticky key, keeps each key on its side, and only adds keys at 60%', async () => {
    state.set('droplet-api', { mode: 'canary', percent: 30 });
    const keys = Array.from({ length: 2000 }, (_, i) => `customer-${i}`);
    const first = await pool(keys, 32, sideOf);
    const newShare = first.filter((s) => s === 'new').length / keys.length;
    expect(newShare).toBeGreaterThan(0.25);
    expect(newShare).toBeLessThan(0.35);
    // The proxy agrees with the shared decision function, key by key.
    keys.forEach((k, i) => expect(first[i]).toBe(stickyBucket('droplet-api', k) < 30 ? 'new' : 'legacy'));

    // Sticky: the same keys, asked again (twice), land on the same side every time.
    const again = await pool(keys, 32, sideOf);
    const third = await pool(keys.slice(0, 500), 32, sideOf);
    expect(again).toEqual(first);
    expect(third).toEqual(first.slice(0, 500));

    state.set('droplet-api', { mode: 'canary', percent: 60 });
    const raised = await pool(keys, 32, sideOf);
    keys.forEach((_, i) => {
      if (first[i] === 'new') expect(raised[i]).toBe('new');
    });
    const raisedShare = raised.filter((s) => s === 'new').length / keys.length;
    expect(raisedShare).toBeGreaterThan(0.55);
    expect(raisedShare).toBeLessThan(0.65);
    // 6,500 requests, each over a fresh connection: minutes, not seconds, on a loaded 2-core machine.
  }, 180_000);

  it('buckets the droplet API by the bearer token, without the token reaching the key', async () => {
    state.set('droplet-api', { mode: 'canary', percent: 50 });
    const tokens = Array.from({ length: 40 }, (_, i) => `dop_v1_${'x'.repeat(20)}${i}`);
    const sides = await pool(tokens, 8, async (t) => (await send(`${url}/v2/droplets`, { headers: { authorization: `Bearer ${t}` } })).body.served_by);
    expect(new Set(sides)).toEqual(new Set(['legacy', 'new']));
    const again = await pool(tokens, 8, async (t) => (await send(`${url}/v2/droplets`, { headers: { authorization: `Bearer ${t}` } })).body.served_by);
    expect(again).toEqual(sides);
    // No token: no key, so legacy during a canary.
    const anon = await pool([1, 2, 3, 4, 5, 6], 3, async () => (await send(`${url}/v2/droplets`)).body.served_by);
    expect(new Set(anon)).toEqual(new Set(['legacy']));
  });

  it('answers 404 PROXY_ERR_NO_ROUTE for unrouted paths and 405 for unrouted methods', async () => {
    const none = await send(`${url}/v3/whatever`);
    expect(none.status).toBe(404);
    expect(none.body.code).toBe('PROXY_ERR_NO_ROUTE');
    const post = await send(`${url}/v2/droplets`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(post.status).toBe(405);
    expect(post.body.code).toBe('PROXY_ERR_METHOD_NOT_ALLOWED');
    expect(post.headers.allow).toContain('GET');
  });
});

describe('region-aware targets', () => {
  it('routes by the region in the path, limits a canary to its regions, and refuses unknown regions', async () => {
    const legacyNyc = await upstream('legacy-nyc1');
    const legacySfo = await upstream('legacy-sfo1');
    const newNyc = await upstream('router-nyc1');
    const newSfo = await upstream('router-sfo1');
    const state = createStaticState({ 'event-delivery': { mode: 'canary', percent: 100, regions: ['nyc1'] } });
    const { url } = await proxyFor({
      state,
      routes: {
        'event-delivery': {
          legacy: { byRegion: { nyc1: [legacyNyc.url], sfo1: [legacySfo.url] } },
          new: { byRegion: { nyc1: [newNyc.url], sfo1: [newSfo.url] } },
          routes: [{ method: 'GET', path: '/v1/regions/:region/hypervisors/:id/events', region: { param: 'region' }, stickyBy: { param: 'id' } }],
        },
      },
    });
    const get = async (region: string, id: number) => send(`${url}/v1/regions/${region}/hypervisors/${id}/events`);
    for (let id = 1; id <= 10; id++) {
      expect((await get('nyc1', id)).body.served_by).toBe('router-nyc1');
      expect((await get('sfo1', id)).body.served_by).toBe('legacy-sfo1');
    }
    const unknown = await get('ams9', 1);
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('PROXY_ERR_UNKNOWN_REGION');
    expect(unknown.body.message).toContain('nyc1');

    state.set('event-delivery', { mode: 'full' });
    expect((await get('sfo1', 3)).body.served_by).toBe('router-sfo1');
  });

  it('takes the region from a header when the route says so', async () => {
    const a = await upstream('legacy-a');
    const b = await upstream('legacy-b');
    const { url } = await proxyFor({
      state: createStaticState(),
      routes: {
        'event-delivery': {
          legacy: { byRegion: { nyc1: [a.url], sfo1: [b.url] } },
          new: [a.url],
          routes: [{ method: 'GET', path: '/v1/events', region: { header: 'x-region' } }],
        },
      },
    });
    expect((await send(`${url}/v1/events`, { headers: { 'x-region': 'sfo1' } })).body.served_by).toBe('legacy-b');
    const missing = await send(`${url}/v1/events`);
    expect(missing.status).toBe(400);
    expect(missing.body.code).toBe('PROXY_ERR_NO_REGION');
  });
});

describe('pools, health checks and failover', () => {
  function routesFor(legacy: string[], fresh: string[]): RouteTable {
    return {
      'droplet-api': {
        legacy,
        new: fresh,
        routes: [
          { method: 'GET', path: '/v2/droplets' },
          { method: 'POST', path: '/v2/droplets' },
        ],
      },
    };
  }

  it('spreads over the pool, keeps answering from the survivor when one instance dies, and answers 503 when all are down', async () => {
    const a = await upstream('legacy-a');
    const b = await upstream('legacy-b');
    const n = await upstream('new');
    const { url } = await proxyFor({ routes: routesFor([a.url, b.url], [n.url]), state: createStaticState() });
    const served = await pool(Array.from({ length: 20 }), 4, async () => (await send(`${url}/v2/droplets`)).body.served_by);
    expect(new Set(served)).toEqual(new Set(['legacy-a', 'legacy-b']));

    await a.kill();
    const after = await pool(Array.from({ length: 30 }), 4, async () => {
      const res = await send(`${url}/v2/droplets`);
      return `${res.status} ${res.body.served_by}`;
    });
    expect(new Set(after)).toEqual(new Set(['200 legacy-b']));
    const metrics = (await send(`${url}/metrics`)).text;
    expect(metricValue(metrics, 'proxy_upstream_healthy', { feature: 'droplet-api', target: 'legacy', instance: `127.0.0.1:${a.port}` })).toBe(0);
    expect(metricValue(metrics, 'proxy_upstream_healthy', { feature: 'droplet-api', target: 'legacy', instance: `127.0.0.1:${b.port}` })).toBe(1);

    await b.kill();
    await waitFor(async () => (await send(`${url}/v2/droplets`)).status === 503, 3000, 'a 503 once every instance is down');
    const res = await send(`${url}/v2/droplets`);
    expect(res.status).toBe(503);
    expect(res.headers['content-type']).toContain('application/json');
    expect(res.body.code).toBe('PROXY_ERR_NO_HEALTHY_UPSTREAM');
  });

  it('takes an instance out when its health check fails and brings it back when it passes', async () => {
    const a = await upstream('legacy-a');
    const b = await upstream('legacy-b');
    const { url } = await proxyFor({ routes: routesFor([a.url, b.url], [b.url]), state: createStaticState() });
    a.setHealthy(false);
    await new Promise((r) => setTimeout(r, 300));
    const served = await pool(Array.from({ length: 10 }), 2, async () => (await send(`${url}/v2/droplets`)).body.served_by);
    expect(new Set(served)).toEqual(new Set(['legacy-b']));
    a.setHealthy(true);
    await waitFor(async () => (await send(`${url}/v2/droplets`)).body.served_by === 'legacy-a', 3000, 'legacy-a back in the rotation');
  });

  it('retries an idempotent request on the next instance when a connection is refused, but not a POST', async () => {
    const a = await upstream('legacy-a');
    const b = await upstream('legacy-b');
    // Health checks far apart: only the failover can notice the dead instance.
    const { url } = await proxyFor({ routes: routesFor([a.url, b.url], [b.url]), state: createStaticState(), healthCheck: { intervalMs: 60_000 } });
    await a.kill();
    const gets = await pool(Array.from({ length: 6 }), 1, async () => (await send(`${url}/v2/droplets`)).status);
    expect(gets).toEqual([200, 200, 200, 200, 200, 200]);

    const c = await upstream('legacy-c');
    const d = await upstream('legacy-d');
    const { url: url2 } = await proxyFor({ routes: routesFor([c.url, d.url], [d.url]), state: createStaticState(), healthCheck: { intervalMs: 60_000 } });
    await c.kill();
    const posts = await pool(Array.from({ length: 4 }), 1, async () => {
      const res = await send(`${url2}/v2/droplets`, { method: 'POST', body: '{"name":"x"}', headers: { 'content-type': 'application/json' } });
      return res.status === 502 ? res.body.code : res.status;
    });
    // The first POST meets the dead instance and is not retried; after that the instance is out of the rotation.
    expect(posts.filter((p) => p === 'PROXY_ERR_UPSTREAM_UNAVAILABLE').length).toBeLessThanOrEqual(1);
    expect(posts.filter((p) => p === 200).length).toBeGreaterThanOrEqual(3);
    expect(d.requests.filter((r) => r.method === 'POST').length).toBe(posts.filter((p) => p === 200).length);
  });
});

describe('errors, limits and request ids', () => {
  it('answers 502 PROXY_ERR_UPSTREAM_UNAVAILABLE when the upstream resets the connection', async () => {
    const u = await upstream('legacy', (req) => {
      req.socket.destroy();
    });
    const { url } = await proxyFor({ routes: { f: { legacy: [u.url], new: [u.url], routes: [{ method: 'GET', path: '/reset' }] } }, state: createStaticState() });
    const res = await send(`${url}/reset`);
    expect(res.status).toBe(502);
    expect(res.body).toMatchObject({ code: 'PROXY_ERR_UPSTREAM_UNAVAILABLE' });
    expect(res.headers['x-request-id']).toBeTruthy();
    const metrics = (await send(`${url}/metrics`)).text;
    expect(metricValue(metrics, 'proxy_upstream_errors_total', { feature: 'f', target: 'legacy', code: 'PROXY_ERR_UPSTREAM_UNAVAILABLE' })).toBeGreaterThanOrEqual(1);
  });

  it('answers 504 PROXY_ERR_UPSTREAM_TIMEOUT when the upstream does not answer in time', async () => {
    const u = await upstream('legacy', async (_req, res) => {
      await new Promise((r) => setTimeout(r, 3000));
      if (!res.destroyed) res.end('late');
    });
    const { url } = await proxyFor({
      routes: { f: { legacy: [u.url], new: [u.url], routes: [{ method: 'GET', path: '/slow', responseTimeoutMs: 200 }] } },
      state: createStaticState(),
    });
    const started = Date.now();
    const res = await send(`${url}/slow`);
    expect(res.status).toBe(504);
    expect(res.body.code).toBe('PROXY_ERR_UPSTREAM_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it('answers 504 PROXY_ERR_UPSTREAM_TIMEOUT when a connection cannot be opened in time', async () => {
    const hole = await startBlackhole();
    cleanups.push(async () => hole.close());
    const { url } = await proxyFor({
      routes: { f: { legacy: [hole.url], new: [hole.url], routes: [{ method: 'GET', path: '/v2/droplets' }] } },
      state: createStaticState(),
      connectTimeoutMs: 300,
      // Keep the instance in the rotation so the request itself meets the dead address.
      healthCheck: { intervalMs: 60_000, timeoutMs: 100, unhealthyThreshold: 100 },
    });
    const started = Date.now();
    const res = await send(`${url}/v2/droplets`);
    expect(res.status).toBe(504);
    expect(res.body.code).toBe('PROXY_ERR_UPSTREAM_TIMEOUT');
    expect(res.body.message).toContain('did not accept a connection within 300 ms');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('refuses bodies over the limit with 413, by Content-Length and while counting a chunked body, without forwarding them', async () => {
    const u = await upstream('legacy');
    const { url } = await proxyFor({
      routes: { f: { legacy: [u.url], new: [u.url], routes: [{ method: 'POST', path: '/v2/droplets' }] } },
      state: createStaticState(),
      bodyLimit: 1024,
    });
    const small = await send(`${url}/v2/droplets`, { method: 'POST', body: JSON.stringify({ name: 'ok' }), headers: { 'content-type': 'application/json' } });
    expect(small.status).toBe(200);
    expect(small.body.body).toBe('{"name":"ok"}');

    const declared = await send(`${url}/v2/droplets`, { method: 'POST', body: 'x'.repeat(4096), headers: { 'content-type': 'text/plain' } });
    expect(declared.status).toBe(413);
    expect(declared.body.code).toBe('PROXY_ERR_BODY_TOO_LARGE');

    // Chunked: no Content-Length, the proxy counts while reading.
    const chunked = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = request(`${url}/v2/droplets`, { method: 'POST', agent: false, headers: { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' } }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      });
      req.on('error', reject);
      for (let i = 0; i < 8; i++) req.write('y'.repeat(512));
      req.end();
    });
    expect(chunked.status).toBe(413);
    expect(chunked.body.code).toBe('PROXY_ERR_BODY_TOO_LARGE');
    expect(u.requests.length).toBe(1);
  });

  it('forwards the path exactly as routed, after a target base path, with the query', async () => {
    const u = await upstream('legacy');
    const { url } = await proxyFor({
      routes: { f: { legacy: [`${u.url}/api/`], new: [u.url], routes: [{ method: 'GET', path: '/v2/droplets/:id' }] } },
      state: createStaticState(),
      healthCheck: { path: '/../healthz' },
    });
    expect((await send(`${url}/v2/droplets/7?page=2&per_page=20`)).body.path).toBe('/api/v2/droplets/7?page=2&per_page=20');
    // Not normalized: the upstream sees the segment the route matched, not another path.
    const raw = await new Promise<string>((resolve, reject) => {
      const { hostname, port } = new URL(url);
      const req = request({ hostname, port, path: '/v2/droplets/..', agent: false }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve(JSON.parse(text).path));
      });
      req.on('error', reject);
      req.end();
    });
    expect(raw).toBe('/api/v2/droplets/..');
  });

  it('forwards and echoes X-Request-Id, and generates one when absent', async () => {
    const u = await upstream('legacy');
    const { url } = await proxyFor({ routes: { f: { legacy: [u.url], new: [u.url], routes: [{ method: 'GET', path: '/v2/account' }] } }, state: createStaticState() });
    const given = await send(`${url}/v2/account`, { headers: { 'x-request-id': 'req-abc.123' } });
    expect(given.headers['x-request-id']).toBe('req-abc.123');
    expect(given.body.request_id).toBe('req-abc.123');
    const generated = await send(`${url}/v2/account`);
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(generated.body.request_id).toBe(generated.headers['x-request-id']);
    // A malformed id is replaced, not forwarded.
    const bad = await send(`${url}/v2/account`, { headers: { 'x-request-id': 'has spaces and ;' } });
    expect(bad.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('event streams', () => {
  it('relays SSE unbuffered: the first event arrives before the upstream ends the stream, with no response timeout', async () => {
    let finish: () => void = () => undefined;
    const u = await upstream('router', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('id: 1\ndata: {"event":1}\n\n');
      const timer = setTimeout(() => res.write('id: 2\ndata: {"event":2}\n\n'), 400);
      finish = () => {
        clearTimeout(timer);
        res.end('id: 3\ndata: {"event":3}\n\n');
      };
    });
    const { url } = await proxyFor({
      // The response timeout is shorter than the stream: streams are exempt once they answered.
      responseTimeoutMs: 200,
      routes: { 'event-delivery': { legacy: [u.url], new: [u.url], routes: [{ method: 'GET', path: '/v1/hypervisors/:id/events', stickyBy: { param: 'id' } }] } },
      state: createStaticState(),
    });
    const received: Array<{ at: number; text: string }> = [];
    const started = Date.now();
    let ended = false;
    const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const req = request(`${url}/v1/hypervisors/7/events`, { agent: false, headers: { accept: 'text/event-stream' } }, resolve);
      req.on('error', reject);
      req.end();
    });
    expect(res.headers['content-type']).toBe('text/event-stream');
    res.setEncoding('utf8');
    res.on('data', (c: string) => received.push({ at: Date.now() - started, text: c }));
    res.on('end', () => (ended = true));
    await waitFor(() => received.some((r) => r.text.includes('"event":1')), 2000, 'the first event');
    expect(ended).toBe(false);
    expect((await send(`${url}/metrics`)).text).toMatch(/^proxy_open_streams 1$/m);
    await waitFor(() => received.some((r) => r.text.includes('"event":2')), 2000, 'the second event');
    expect(ended).toBe(false);
    finish();
    await waitFor(() => ended, 2000, 'the end of the stream');
    expect(received.map((r) => r.text).join('')).toContain('"event":3');
    await waitFor(async () => /^proxy_open_streams 0$/m.test((await send(`${url}/metrics`)).text), 2000, 'open streams back to 0');
  });

  it('closes the upstream stream when the client goes away', async () => {
    let open = 0;
    let closed = 0;
    const u = await upstream('router', (_req, res) => {
      open++;
      res.on('close', () => closed++);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: hello\n\n');
    });
    const { url } = await proxyFor({ routes: { 'event-delivery': { legacy: [u.url], new: [u.url], routes: [{ method: 'GET', path: '/stream' }] } }, state: createStaticState() });
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = request(`${url}/stream`, { agent: false }, (res) => res.once('data', () => (req.destroy(), resolve())));
        req.on('error', reject);
        req.end();
      });
    }
    await waitFor(() => closed === 5, 3000, 'every upstream stream closed');
    expect(open).toBe(5);
  });

  it('cuts the client off when the upstream dies mid-stream, so the agent reconnects', async () => {
    const u = await upstream('router', (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: first\n\n');
      setTimeout(() => req.socket.destroy(), 200);
    });
    const { url } = await proxyFor({ routes: { 'event-delivery': { legacy: [u.url], new: [u.url], routes: [{ method: 'GET', path: '/stream' }] } }, state: createStaticState() });
    const outcome = await new Promise<string>((resolve) => {
      const req = request(`${url}/stream`, { agent: false }, (res) => {
        res.on('data', () => undefined);
        res.on('end', () => resolve('end'));
        res.on('error', () => resolve('error'));
        res.on('close', () => resolve('close'));
      });
      req.on('error', () => resolve('error'));
      req.end();
    });
    expect(['error', 'close', 'end']).toContain(outcome);
  });
});

describe('metrics', () => {
  it('counts requests, latency, errors and health per feature and target', async () => {
    const l = await upstream('legacy');
    const n = await upstream('new');
    const state = createStaticState({ 'droplet-api': { mode: 'full' } });
    const { url } = await proxyFor({ routes: { 'droplet-api': { legacy: [l.url], new: [n.url], routes: [{ method: 'GET', path: '/v2/droplets/:id' }] } }, state });
    for (let i = 0; i < 3; i++) expect((await send(`${url}/v2/droplets/${i}`)).body.served_by).toBe('new');
    state.set('droplet-api', { mode: 'legacy' });
    expect((await send(`${url}/v2/droplets/9`)).body.served_by).toBe('legacy');
    await send(`${url}/nowhere`);
    const text = (await send(`${url}/metrics`)).text;
    expect(metricValue(text, 'proxy_requests_total', { feature: 'droplet-api', route: '/v2/droplets/:id', target: 'new', status: '200' })).toBe(3);
    expect(metricValue(text, 'proxy_requests_total', { feature: 'droplet-api', route: '/v2/droplets/:id', target: 'legacy', status: '200' })).toBe(1);
    expect(metricValue(text, 'proxy_requests_total', { feature: 'none', route: 'unmatched', target: 'none', status: '404' })).toBe(1);
    expect(metricValue(text, 'proxy_request_duration_seconds_count', { feature: 'droplet-api', target: 'new' })).toBe(3);
    expect(metricValue(text, 'proxy_upstream_healthy', { feature: 'droplet-api', target: 'new', instance: `127.0.0.1:${n.port}` })).toBe(1);
    expect(text).toContain('# TYPE proxy_upstream_errors_total counter');
    expect(text).toContain('# TYPE proxy_open_streams gauge');
    expect(text).toContain('# TYPE proxy_shadow_comparisons_total counter');
  });
});

describe('options and lifecycle', () => {
  it('refuses bad options at start-up, naming the option and the value', () => {
    const state = createStaticState();
    const attempt = (options: unknown) => {
      try {
        createProxy(options as ProxyOptions);
      } catch (err) {
        expect(err).toBeInstanceOf(StranglerError);
        expect((err as StranglerError).code).toBe('CONFIG_ERR_INVALID_OPTION');
        return (err as Error).message;
      }
      throw new Error('no error');
    };
    expect(attempt({ routes: {}, state })).toContain('option "routes"');
    expect(attempt({ routes: { f: { legacy: ['http://127.0.0.1:1'], new: ['http://127.0.0.1:1'], routes: [{ method: 'GET', path: 'no-slash' }] } }, state })).toContain(
      'option "routes["f"].routes[0].path" must be a path pattern',
    );
    expect(attempt({ routes: { f: { legacy: ['ftp://x'], new: ['http://127.0.0.1:1'], routes: [{ method: 'GET', path: '/a' }] } }, state })).toContain('routes["f"].legacy[0]');
    expect(
      attempt({ routes: { f: { legacy: { byRegion: { nyc1: ['http://127.0.0.1:1'] } }, new: ['http://127.0.0.1:1'], routes: [{ method: 'GET', path: '/a' }] } }, state }),
    ).toContain('routes["f"].routes[0].region');
    const routes = { f: { legacy: ['http://127.0.0.1:1'], new: ['http://127.0.0.1:1'], routes: [{ method: 'GET', path: '/a' }] } };
    expect(attempt({ routes, state, bodyLimit: -1 })).toContain('option "bodyLimit" must be an integer from 0 to');
    expect(attempt({ routes, state, connectTimeoutMs: 'soon' })).toContain('"connectTimeoutMs"');
    expect(attempt({ routes, state: undefined })).toContain('option "state"');
    expect(attempt({ routes, state, shadow: { compare: { ignore: ['$.a..b'] } } })).toContain('shadow.compare.ignore[0]');
  });

  it('drains in-flight requests on close, refuses new ones, and closes idempotently', async () => {
    const u = await upstream('legacy', async (_req, res) => {
      await new Promise((r) => setTimeout(r, 400));
      res.end('{"done":true}');
    });
    const proxy = createProxy({ routes: { f: { legacy: [u.url], new: [u.url], routes: [{ method: 'GET', path: '/slow' }] } }, state: createStaticState() });
    const { url } = await proxy.start();
    const inFlight = send(`${url}/slow`);
    await new Promise((r) => setTimeout(r, 100));
    const closed = Promise.all([proxy.close(), proxy.close()]);
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ done: true });
    await closed;
    await expect(send(`${url}/slow`)).rejects.toThrow();
  });
});

describe('engines', () => {
  // The pipe engine is the default; http-proxy-3 stays one option away (see proxy/engine.ts), so it must keep working.
  for (const [name, engine] of [
    ['pipe (default)', undefined],
    ['http-proxy-3', httpProxy3Engine],
  ] as const) {
    it(`${name}: forwards method, path, body and headers, answers with the upstream's status and headers, and fails over a refused instance`, async () => {
      const dead = await upstream('dead');
      const u = await upstream('legacy', (req, res, body) => {
        res.writeHead(201, 'Made', { 'content-type': 'application/json', 'x-upstream': 'yes' });
        res.end(JSON.stringify({ path: req.url, body, host: req.headers.host, request_id: req.headers['x-request-id'], custom: req.headers['x-custom'] }));
      });
      const { url } = await proxyFor({
        routes: { f: { legacy: [dead.url, `${u.url}/base`], new: [u.url], routes: [{ method: ['GET', 'PUT'], path: '/v2/things/:id' }] } },
        state: createStaticState(),
        healthCheck: { intervalMs: 60_000 },
        ...(engine ? { engine } : {}),
      });
      await dead.kill();
      for (const method of ['PUT', 'GET']) {
        const body = method === 'PUT' ? '{"size":"s-1vcpu-1gb"}' : undefined;
        const res = await send(`${url}/v2/things/7?x=1`, { method, headers: { 'x-custom': 'kept', 'x-request-id': `id-${method}` }, ...(body ? { body } : {}) });
        expect(res.status).toBe(201);
        expect(res.headers['x-upstream']).toBe('yes');
        expect(res.headers['x-request-id']).toBe(`id-${method}`);
        expect(res.body).toEqual({ path: '/base/v2/things/7?x=1', body: body ?? '', host: new URL(url).host, request_id: `id-${method}`, custom: 'kept' });
      }
    });
  }
});
