import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StranglerError } from '../../lib/errors.ts';
import { createProxyCluster, workersForStreams, type ProxyCluster } from '../../proxy/cluster.ts';
import { createProxyAdmin, type ProxyAdmin } from '../../proxy/admin.ts';
import { metricValue, send, startUpstream, waitFor, type TestUpstream } from '../helpers/upstream.ts';

const STATIC_STATE = new URL('../../proxy/static-state.ts', import.meta.url).href;

describe('proxy cluster', () => {
  let legacy: TestUpstream;
  let fresh: TestUpstream;
  let proxies: ProxyCluster;
  let admin: ProxyAdmin;
  let url: string;
  let adminUrl: string;

  beforeAll(async () => {
    legacy = await startUpstream('legacy', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"droplet":{"id":1,"name":"a"}}');
    });
    fresh = await startUpstream('new', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"droplet":{"id":2,"name":"b"}}');
    });
    proxies = createProxyCluster({
      workers: 2,
      routes: { 'droplet-api': { legacy: [legacy.url], new: [fresh.url], compare: { ignore: ['$.droplet.id'] }, routes: [{ method: 'GET', path: '/v2/droplets/:id' }] } },
      stateFactory: { module: STATIC_STATE, export: 'createStaticState', options: { 'droplet-api': { mode: 'shadow' } } },
      restartDelayMs: 50,
    });
    ({ url } = await proxies.start());
    admin = createProxyAdmin({ token: 'cluster-admin-token-0123456789', proxy: proxies, registry: proxies.registry });
    ({ url: adminUrl } = await admin.start());
  }, 60_000);

  afterAll(async () => {
    await admin?.close();
    await proxies?.close();
    await legacy?.close();
    await fresh?.close();
  });

  /**
   * Which worker answered each of `n` requests (fresh connections, so the
   * primary spreads them). With `retries`, a request that gets no answer
   * within `timeoutMs` is sent again, as an agent would; returns how many were.
   */
  async function answeredBy(n: number, client: { timeoutMs?: number; retries?: number } = {}): Promise<{ workers: string[]; retried: number }> {
    const workers: string[] = [];
    let retried = 0;
    for (let i = 0; i < n; i++) {
      for (let attempt = 0; ; attempt++) {
        try {
          const res = await send(`${url}/v2/droplets/${i}`, { timeoutMs: client.timeoutMs ?? 10_000 });
          expect(res.status).toBe(200);
          expect(res.body.droplet.name).toBe('a');
          workers.push(String(res.headers['x-proxy-worker']));
          break;
        } catch (err) {
          if (attempt >= (client.retries ?? 0)) throw err;
          retried++;
        }
      }
    }
    return { workers, retried };
  }

  it('serves from both workers on one port', async () => {
    expect(proxies.workers()).toHaveLength(2);
    const { workers: by } = await answeredBy(20);
    const pids = new Set(by.map((w) => w.split('/')[1]));
    expect(pids).toEqual(new Set(proxies.workers().map((w) => String(w.pid))));
  });

  it('gathers shadow samples and metrics from every worker', async () => {
    await waitFor(() => proxies.shadowSamples().length >= 2, 5000, 'samples from the workers');
    expect(proxies.shadowSamples()[0]).toMatchObject({ feature: 'droplet-api', result: 'mismatch', differences: ['$.droplet.name'] });
    // The admin service of the primary serves the workers' metrics, aggregated.
    const text = (await send(`${adminUrl}/metrics`)).text;
    expect(metricValue(text, 'proxy_cluster_workers')).toBe(2);
    // Summed over both workers: every request so far, whichever worker took it.
    expect(metricValue(text, 'proxy_requests_total', { feature: 'droplet-api', route: '/v2/droplets/:id', target: 'legacy', status: '200' })).toBeGreaterThanOrEqual(20);
  });

  it('survives a worker killed with SIGKILL and replaces it', async () => {
    const before = proxies.workers();
    const victim = before[0]!;
    process.kill(victim.pid, 'SIGKILL');
    // Requests go on during the kill. A connection the primary handed to the victim in the very
    // instant it died is lost by node:cluster (it hangs instead of being reset), so the client
    // behaves like an agent: a 1 s deadline and one retry. Nothing else may fail.
    const during = await answeredBy(10, { timeoutMs: 1000, retries: 1 });
    expect(during.retried).toBeLessThanOrEqual(1);
    await waitFor(() => !proxies.workers().some((w) => w.pid === victim.pid), 5000, 'the primary to notice the death');
    // Once the primary knows, every request succeeds at the first try, on the survivor.
    const after = await answeredBy(10);
    expect(after.workers.every((w) => !w.endsWith(`/${victim.pid}`))).toBe(true);
    await waitFor(() => proxies.workers().filter((w) => w.listening).length === 2, 30_000, 'a replacement worker');
    expect(proxies.restarts()).toBe(1);
    const replacement = proxies.workers().find((w) => !before.some((b) => b.pid === w.pid))!;
    expect(replacement).toBeDefined();
    await waitFor(async () => (await answeredBy(4)).workers.some((w) => w.endsWith(`/${replacement.pid}`)), 10_000, 'the replacement to serve');
  }, 60_000);

  it('refuses a function as stateFactory and sizes workers for the socket budget', () => {
    expect(() =>
      createProxyCluster({
        workers: 2,
        routes: { f: { legacy: ['http://127.0.0.1:1'], new: ['http://127.0.0.1:1'], routes: [{ method: 'GET', path: '/a' }] } },
        stateFactory: (() => ({ get: () => undefined })) as never,
      }),
    ).toThrow(StranglerError);
    expect(workersForStreams(15_000)).toBe(2);
    expect(workersForStreams(100)).toBe(1);
    expect(workersForStreams(30_000)).toBe(4);
  });
});
