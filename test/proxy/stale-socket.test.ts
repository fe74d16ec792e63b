import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProxy, type Proxy } from '../../proxy/create-proxy.ts';
import { createStaticState } from '../../proxy/static-state.ts';
import { metricValue, send } from '../helpers/upstream.ts';

/**
 * An upstream that answers the first request of every connection with
 * keep-alive, then closes the connection the moment a second request
 * arrives on it: the race between a server closing an idle keep-alive
 * socket and a client reusing it, made to happen every time.
 */
function startClosingUpstream(): Promise<{ url: string; requests: string[]; resets: () => number; close(): Promise<void> }> {
  const requests: string[] = [];
  let resets = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    let served = false;
    let buffer = '';
    socket.on('data', (chunk: Buffer) => {
      if (served) {
        resets++;
        socket.resetAndDestroy();
        return;
      }
      buffer += chunk.toString('latin1');
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/content-length: *(\d+)/i.exec(buffer.slice(0, end))?.[1] ?? 0);
      if (buffer.length < end + 4 + length) return;
      served = true;
      requests.push(buffer.slice(0, buffer.indexOf('\r\n')) + ' ' + buffer.slice(end + 4, end + 4 + length));
      const body = '{"acked":true}';
      socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: keep-alive\r\nkeep-alive: timeout=60\r\n\r\n${body}`);
    });
    socket.on('error', () => undefined);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolve({
        url: `http://127.0.0.1:${port}`,
        requests,
        resets: () => resets,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

describe('a keep-alive socket the upstream closed while idle', () => {
  let upstream: Awaited<ReturnType<typeof startClosingUpstream>>;
  let proxy: Proxy;
  let url: string;

  beforeAll(async () => {
    upstream = await startClosingUpstream();
    proxy = createProxy({
      routes: { acks: { legacy: [upstream.url], new: [upstream.url], routes: [{ method: 'POST', path: '/v1/hypervisors/:id/acks' }] } },
      state: createStaticState(),
      // No health checks in between: every request of the test reuses the data path's sockets.
      healthCheck: { intervalMs: 600_000 },
    });
    ({ url } = await proxy.start());
  });
  afterAll(async () => {
    await proxy?.close();
    await upstream?.close();
  });

  it('sends a POST again over a new connection instead of answering 502, once per request', async () => {
    for (let i = 1; i <= 5; i++) {
      const res = await send(`${url}/v1/hypervisors/7/acks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"event_id":${i}}` });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toEqual({ acked: true });
    }
    // Each request after the first met a reused socket that reset, and reached the upstream exactly once.
    expect(upstream.resets()).toBeGreaterThanOrEqual(4);
    expect(upstream.requests.filter((r) => r.startsWith('POST')).map((r) => r.split(' ').at(-1))).toEqual([1, 2, 3, 4, 5].map((i) => `{"event_id":${i}}`));
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metricValue(metrics, 'proxy_requests_total', { feature: 'acks', status: '502' }) ?? 0).toBe(0);
    expect(metricValue(metrics, 'proxy_upstream_errors_total', { feature: 'acks' }) ?? 0).toBe(0);
  });
});
