import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/cli.ts';
import { freePort } from '../../../lib/net/free-port.ts';
import { startUpstream, waitFor, type TestUpstream } from '../../helpers/upstream.ts';

const METRICS = [
  '# HELP shop_requests_total Requests.',
  '# TYPE shop_requests_total counter',
  'shop_requests_total{status="200"} 10',
  '# HELP shop_errors_total Errors, none yet (a labelled counter never incremented has no sample).',
  '# TYPE shop_errors_total counter',
  '# HELP shop_latency_seconds Latency.',
  '# TYPE shop_latency_seconds histogram',
  'shop_latency_seconds_bucket{le="+Inf"} 10',
  'shop_latency_seconds_sum 1',
  'shop_latency_seconds_count 10',
  '',
].join('\n');

describe('strangler cutover plan --file --config: every gate reads what its service serves (a real Prometheus for its gates)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'plan-served-'));
  let shop: TestUpstream;
  let configFile: string;
  let prometheus: ChildProcess | undefined;
  let prometheusUrl: string;
  beforeAll(async () => {
    shop = await startUpstream('shop', (req, res) => {
      if (req.url !== '/metrics') return false;
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(METRICS);
      return true;
    });
    // A real Prometheus (the Debian package) scraping the shop every second.
    writeFileSync(join(dir, 'prometheus.yml'), `global: { scrape_interval: 1s, scrape_timeout: 900ms }\nscrape_configs:\n  - job_name: shop\n    static_configs: [{ targets: ['${new URL(shop.url).host}'] }]\n`);
    const port = await freePort();
    prometheusUrl = `http://127.0.0.1:${port}`;
    prometheus = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: 'ignore' });
    await waitFor(async () => {
      const res = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent('shop_requests_total')}`).catch(() => undefined);
      const body = (await res?.json().catch(() => undefined)) as { data?: { result?: unknown[] } } | undefined;
      return (body?.data?.result?.length ?? 0) > 0;
    }, 60_000, 'Prometheus to scrape the shop');
    configFile = join(dir, 'proxy.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        version: 1,
        state: { static: {} },
        features: { shop: { legacy: [shop.url], new: [shop.url], routes: [{ method: 'GET', path: '/shop' }] } },
        services: { shop: shop.url, prometheus: prometheusUrl },
      }),
    );
  });
  afterAll(async () => {
    prometheus?.kill('SIGTERM');
    await shop.close();
  });

  const plan = (gates: unknown[]) => ({ version: 1, features: { shop: { steps: [{ name: 'full', mode: 'full', soak_seconds: 0, gates }] } } });
  const check = async (doc: unknown, ...extra: string[]) => {
    const file = join(dir, `plan-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(doc));
    return runCli(['cutover', 'plan', '--file', file, '--config', configFile, ...extra]);
  };
  const gate = 'features.shop.steps[0].gates[0]';

  it('accepts gates whose metrics are served (a histogram by its buckets, a counter by its TYPE line, a query with data)', async () => {
    const ok = await check(
      plan([
        { kind: 'error_rate', service: 'shop', errors: 'shop_errors_total', total: 'shop_requests_total', max: 0.01 },
        { kind: 'latency', service: 'shop', histogram: 'shop_latency_seconds', max_seconds: 1 },
        { kind: 'prometheus', service: 'prometheus', query: 'sum(shop_requests_total{job="shop"})', min: 0 },
      ]),
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('every gate reads what its service serves');
  });

  it('refuses with exit 2 and the JSON path: a wrong metric name, a service the config lacks, a query without data, a missing field, an unknown gate kind', async () => {
    const wrong = await check(plan([{ kind: 'error_rate', service: 'shop', errors: 'shop_errorz_total', total: 'shop_requests_total', max: 0.01 }]));
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('CUTOVER_ERR_GATE_NOT_SERVED');
    expect(wrong.stderr).toContain(`${gate}.errors: metric "shop_errorz_total" is not served by service "shop"`);
    const json = await check(plan([{ kind: 'gauge', service: 'inventory', metric: 'stock', max: 1 }]), '--json');
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout).errors).toEqual([expect.stringContaining(`${gate}.service: gate gauge:inventory reads service "inventory"`)]);
    const missing = await check(plan([{ kind: 'error_rate', service: 'shop', total: 'shop_requests_total', max: 0.01 }]));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`${gate}.errors: must be a string`);
    const empty = await check(plan([{ kind: 'prometheus', service: 'prometheus', query: 'sum(shop_requestz_total)', max: 1 }]));
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain(`${gate}.query: the query returned no samples`);
    const kind = await check(plan([{ kind: 'vibes', service: 'shop' }]));
    expect(kind.code).toBe(2);
    expect(kind.stderr).toContain(`${gate}.kind: must be one of`);
  });
});
