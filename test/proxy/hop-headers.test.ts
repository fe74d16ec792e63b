import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProxy, type Proxy } from '../../proxy/create-proxy.ts';
import { createStaticState } from '../../proxy/static-state.ts';

/** One request straight from node:http, a fresh client connection each time, with the headers given. */
function get(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/v1/regions/nyc1/hypervisors/7/mode`, { headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe("the proxy does not forward the client's hop-by-hop headers", () => {
  let upstream: Server;
  let proxy: Proxy;
  let url: string;
  const seen: IncomingHttpHeaders[] = [];
  const sockets = new Set<Socket>();
  const parseErrors: string[] = [];

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      // Health checks come in too; only the proxied requests are counted.
      if (req.url?.startsWith('/v1/')) {
        seen.push(req.headers);
        sockets.add(req.socket);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"mode":"router"}');
    });
    upstream.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      parseErrors.push(String(err.code));
      socket.destroy();
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const target = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    proxy = createProxy({
      routes: { 'event-delivery': { legacy: [target], new: [target], routes: [{ method: 'GET', path: '/v1/regions/:region/hypervisors/:id/mode' }] } },
      state: createStaticState(),
      healthCheck: { intervalMs: 600_000 },
    });
    ({ url } = await proxy.start());
  });
  afterAll(async () => {
    await proxy?.close();
    upstream?.close();
  });

  it('keeps the upstream keep-alive socket usable after a client asked to close its own connection', async () => {
    // Clients that close after each request (as an agent's short-lived request does), some naming extra
    // hop-by-hop headers, interleaved with ordinary ones: all must reach the upstream over reused sockets.
    const answers = [];
    for (let i = 0; i < 20; i++) {
      const headers: Record<string, string> = i % 2 === 0 ? { connection: 'close, x-hop', 'x-hop': 'secret', 'keep-alive': 'timeout=5' } : {};
      answers.push(await get(url, headers));
    }
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
    expect(parseErrors).toEqual([]);
    expect(seen).toHaveLength(20);
    for (const h of seen) {
      expect(h.connection ?? 'keep-alive').toBe('keep-alive');
      expect(h['x-hop']).toBeUndefined();
      expect(h['keep-alive']).toBeUndefined();
    }
    // The upstream hop is the proxy's keep-alive agent: far fewer sockets than requests.
    expect(sockets.size).toBeLessThanOrEqual(2);
  });
});
