import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProxy, type Proxy } from '../../proxy/create-proxy.ts';
import { createStaticState } from '../../proxy/static-state.ts';
import { metricValue, send, waitFor } from '../helpers/upstream.ts';

/** A Cloud whose readiness check times out (its database is saturated) while it still answers requests, slowly. */
function slowButServing(name: string): Promise<{ url: string; server: Server; served: () => number }> {
  let served = 0;
  const server = createServer((req, res) => {
    if (req.url === '/readyz') return; // never answers: the check times out
    served++;
    setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ served_by: name })), 50);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, served: () => served })));
}

describe('panic routing: a pool whose every instance fails its health checks is used anyway', () => {
  let a: Awaited<ReturnType<typeof slowButServing>>;
  let b: Awaited<ReturnType<typeof slowButServing>>;
  let proxy: Proxy;
  let url: string;

  beforeAll(async () => {
    a = await slowButServing('a');
    b = await slowButServing('b');
    proxy = createProxy({
      routes: { 'cloud-api': { legacy: [a.url, b.url], new: [a.url, b.url], routes: [{ method: ['GET', 'POST'], path: '/v2/droplets' }] } },
      state: createStaticState(),
      healthCheck: { path: '/readyz', intervalMs: 50, timeoutMs: 20, unhealthyThreshold: 2 },
    });
    ({ url } = await proxy.start());
  });
  afterAll(async () => {
    await proxy?.close();
    a?.server.close();
    b?.server.close();
  });

  it('answers from the unready instances instead of refusing every request, and counts it', async () => {
    const metrics = async () => (await send(`${url}/metrics`)).text;
    await waitFor(async () => metricValue(await metrics(), 'proxy_upstream_healthy', { feature: 'cloud-api', target: 'legacy', instance: new URL(b.url).host }) === 0, 5000, 'both instances out of rotation');
    expect(metricValue(await metrics(), 'proxy_upstream_healthy', { feature: 'cloud-api', target: 'legacy', instance: new URL(a.url).host })).toBe(0);
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => send(`${url}/v2/droplets`, i % 2 ? { method: 'POST', body: '{}' } : {})));
    expect(answers.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(new Set(answers.map((r) => r.body.served_by))).toEqual(new Set(['a', 'b']));
    expect(metricValue(await metrics(), 'proxy_panic_routed_total', { feature: 'cloud-api', target: 'legacy' })).toBe(10);
  });
});
