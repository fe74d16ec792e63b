import { Agent, request } from 'node:http';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRouter } from '../../../lib/http/router.ts';
import { createHttpService, type HttpService } from '../../../lib/http/service-server.ts';
import { createProxy, type Proxy } from '../../../proxy/create-proxy.ts';
import { createStaticState } from '../../../proxy/static-state.ts';
import { silentLogger } from '../../../lib/logger.ts';

/** Two requests over one keep-alive socket: whether the second reused it, and both statuses. */
async function twoOnOneSocket(url: string, path: string, second: { method: string; body?: string } = { method: 'GET' }): Promise<{ statuses: number[]; reused: boolean }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const one = (method: string, body?: string) =>
    new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
      const req = request(`${url}${path}`, { method, agent, headers: body ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {} }, (res) => {
        res.resume();
        res.once('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
      });
      req.once('error', reject);
      req.end(body);
    });
  try {
    const a = await one('GET');
    // Let the agent put the socket back in its free list (or see it closed).
    await new Promise((r) => setTimeout(r, 50));
    const b = await one(second.method, second.body);
    return { statuses: [a.status, b.status], reused: b.reused };
  } finally {
    agent.destroy();
  }
}

describe('quick refusals keep the connection alive when no body is left unread', () => {
  let shell: HttpService;
  let shellUrl: string;
  let proxy: Proxy;
  let proxyUrl: string;

  beforeAll(async () => {
    shell = createHttpService({ name: 'keep-alive-test', router: createRouter(), registry: new Registry(), logger: silentLogger() });
    ({ url: shellUrl } = await shell.start());
    proxy = createProxy({ routes: { api: { legacy: [shellUrl], new: [shellUrl], routes: [{ method: 'GET', path: '/known' }] } }, state: createStaticState(), healthCheck: { intervalMs: 600_000 } });
    ({ url: proxyUrl } = await proxy.start());
  });
  afterAll(async () => {
    await proxy?.close();
    await shell?.close();
  });

  it('the shared shell: a 404 for a GET leaves the socket reusable', async () => {
    expect(await twoOnOneSocket(shellUrl, '/no-such-route')).toEqual({ statuses: [404, 404], reused: true });
  });

  it('the proxy data port: a 404 for a GET leaves the socket reusable', async () => {
    expect(await twoOnOneSocket(proxyUrl, '/no-such-route')).toEqual({ statuses: [404, 404], reused: true });
  });
});
