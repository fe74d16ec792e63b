import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StranglerError } from '../../lib/errors.ts';
import { validateProxyConfig } from '../../proxy/config.ts';
import { runCli } from '../helpers/cli.ts';
import { startCliService } from '../helpers/cli-service.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

function good(): Record<string, any> {
  return {
    version: 1,
    listen: { host: '127.0.0.1', port: 0 },
    state: { static: { catalog: { mode: 'full' } } },
    healthCheck: { intervalMs: 200 },
    features: {
      catalog: {
        legacy: { urls: ['http://127.0.0.1:1'], healthPath: '/status' },
        new: ['http://127.0.0.1:2'],
        routes: [{ method: 'GET', path: '/catalog/:sku', stickyBy: { header: 'x-customer-id' } }],
        compare: { ignore: ['*.served_at'] },
      },
    },
    services: { proxy: 'http://127.0.0.1:9101', 'catalog-new': ['http://127.0.0.1:2'] },
  };
}

function errorsOf(mutate: (c: Record<string, any>) => void): string[] {
  const c = good();
  mutate(c);
  try {
    validateProxyConfig(c);
    return [];
  } catch (err) {
    expect((err as StranglerError).code).toBe('PROXY_ERR_INVALID_CONFIG');
    return (err as { details: { errors: string[] } }).details.errors;
  }
}

describe('the proxy config: one validator, errors by JSON path and value', () => {
  it('accepts a good config and names every bad field with its path and value', () => {
    expect(validateProxyConfig(good()).features.catalog).toBeTruthy();
    const cases: Array<[(c: Record<string, any>) => void, string]> = [
      [(c) => (c.version = 2), 'version: must be 1, got 2'],
      [(c) => (c.listen.port = 70000), 'listen.port: must be an integer from 0 to 65535, got 70000'],
      [(c) => (c.workers = 0), 'workers: must be an integer from 1 to 64, got 0'],
      [(c) => (c.typo = true), 'config.typo: unknown field'],
      [(c) => delete c.state, 'state: must be an object, got a undefined'],
      [(c) => (c.state = { redis: {} }), 'state: must have exactly one of admin, mysql, static, got ["redis"]'],
      [(c) => (c.state = { admin: { url: 'ftp://x' } }), 'state.admin.url: must be an http:// URL'],
      [(c) => (c.state = { admin: { url: 'http://a:9400', tokenEnv: 'lower case' } }), 'state.admin.tokenEnv: "lower case" is not valid'],
      [(c) => (c.state.static.catalog.mode = 'half'), 'state.static.catalog.mode: must be one of legacy, shadow, canary, full, got "half"'],
      [(c) => (c.features = {}), 'features: must name at least one feature'],
      [(c) => (c.features['Bad Name'] = c.features.catalog), 'features.Bad Name: "Bad Name" is not a valid feature name'],
      [(c) => (c.services.proxy = 'not a url'), 'services.proxy: must be an http:// URL'],
      [(c) => (c.services['Bad'] = 'http://x:1'), 'services.Bad: "Bad" is not a valid service name'],
      [(c) => (c.features.catalog.routes[0].path = 'no-slash'), 'features["catalog"].routes[0].path: must be a path pattern starting with /'],
      [(c) => (c.features.catalog.new = ['ftp://x']), 'features["catalog"].new[0]: must be an http:// base URL'],
      [(c) => (c.features.catalog.legacy.healthPath = 'status'), 'features["catalog"].legacy.healthPath: must be a path starting with / such as "/status", got "status"'],
      [(c) => (c.features.catalog.routes[0].stickyBy = { param: 'nope' }), 'features["catalog"].routes[0].stickyBy.param: must be one of the path\'s params (sku), got "nope"'],
      [(c) => (c.healthCheck.intervalMs = 1), 'healthCheck.intervalMs: must be an integer from 50 to 600000, got 1'],
    ];
    for (const [mutate, expected] of cases) {
      const errors = errorsOf(mutate);
      expect(errors.some((e) => e.startsWith(expected)), `${expected}\n  got: ${errors.join('\n  ')}`).toBe(true);
    }
    // Structural problems are all reported at once.
    expect(errorsOf((c) => ((c.version = 3), (c.workers = 'many'), (c.listen.port = -1))).length).toBe(3);
  });
});

describe('strangler proxy --config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-config-'));
  let legacy: TestUpstream;
  let next: TestUpstream;
  beforeAll(async () => {
    legacy = await startUpstream('legacy');
    next = await startUpstream('new');
  });
  afterAll(async () => {
    await legacy.close();
    await next.close();
  });

  it('refuses an invalid file with exit 2, naming the JSON path and the bad value', async () => {
    const file = join(dir, 'bad.json');
    const c = good();
    c.features.catalog.routes[0].method = 'get';
    c.listen.port = 'eighty';
    writeFileSync(file, JSON.stringify(c));
    const res = await runCli(['proxy', '--config', file]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('PROXY_ERR_INVALID_CONFIG');
    expect(res.stderr).toContain('listen.port: must be an integer from 0 to 65535, got "eighty"');
    const json = await runCli(['proxy', '--config', file, '--json']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ valid: false, code: 'PROXY_ERR_INVALID_CONFIG', errors: [expect.stringContaining('listen.port')] });
    writeFileSync(join(dir, 'syntax.json'), '{ "version": 1,');
    expect((await runCli(['proxy', '--config', join(dir, 'syntax.json')])).stderr).toContain('is not valid JSON');
    expect((await runCli(['proxy', '--help'])).stdout).toMatch(/^Usage: strangler proxy --config FILE/);
  });

  it('runs from the file: routes by the state it names, and an unreachable target starts unready and is named', async () => {
    const c = good();
    c.features.catalog.legacy = [legacy.url];
    c.features.catalog.new = { urls: [next.url, 'http://127.0.0.1:9'], healthPath: '/healthz' };
    const file = join(dir, 'good.json');
    writeFileSync(file, JSON.stringify(c));
    expect((await runCli(['proxy', '--config', file, '--check'])).code).toBe(0);
    const proxy = await startCliService<{ url: string; workers: number; unready_upstreams: Array<{ feature: string; target: string; instance: string }> }>(['proxy', '--config', file, '--json']);
    try {
      expect(proxy.info.workers).toBe(1);
      expect(proxy.info.unready_upstreams).toEqual([{ feature: 'catalog', target: 'new', instance: 'http://127.0.0.1:9', health_path: '/healthz' }]);
      // catalog is at full (state.static): every answer comes from the healthy new instance.
      for (let i = 0; i < 4; i++) {
        const res = await fetch(`${proxy.info.url}/catalog/sku-${i}`, { headers: { 'x-customer-id': `c${i}` } });
        expect(res.status).toBe(200);
        expect(((await res.json()) as { served_by: string }).served_by).toBe('new');
      }
      const ready = (await (await fetch(`${proxy.info.url}/readyz`)).json()) as { unready_upstreams: unknown[] };
      expect(ready.unready_upstreams).toHaveLength(1);
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
  });

  it('starts before its cutover admin: every feature on legacy until the first state read, and a missing token variable is exit 2', async () => {
    const c = good();
    c.features.catalog.legacy = [legacy.url];
    c.features.catalog.new = [next.url];
    c.state = { admin: { url: 'http://127.0.0.1:9', tokenEnv: 'CATALOG_STATE_TOKEN', intervalMs: 200 } };
    const file = join(dir, 'admin-down.json');
    writeFileSync(file, JSON.stringify(c));
    const noToken = await runCli(['proxy', '--config', file], { env: { CATALOG_STATE_TOKEN: '' } });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain('CATALOG_STATE_TOKEN');
    const proxy = await startCliService<{ url: string }>(['proxy', '--config', file, '--json'], { CATALOG_STATE_TOKEN: 'state-token-0123456789' });
    try {
      const res = await fetch(`${proxy.info.url}/catalog/sku-1`, { headers: { 'x-customer-id': 'c1' } });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { served_by: string }).served_by).toBe('legacy');
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
  });
});
