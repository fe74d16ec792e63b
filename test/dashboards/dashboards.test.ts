import { spawn, spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCRAPE_JOBS, writeScrapeTargets } from '../../lib/metrics/scrape-targets.ts';
import { parsePromText } from '../../lib/metrics/prom-text.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startMetricsServices, type MetricsServices } from '../helpers/metrics-services.ts';

const DASHBOARDS = fileURLToPath(new URL('../../dashboards/', import.meta.url));
const PROMTOOL = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
if (!PROMTOOL && process.env.CI) throw new Error('promtool is missing on CI: .ci/run installs it with apt-get install prometheus');

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/**
 * The metric names a PromQL expression reads: identifiers that are not
 * functions, keywords, label names (inside `{…}`, `by (…)`, …) or durations.
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?/g)) {
    const [whole, call] = [m[0], m[1]];
    const name = call ? whole.slice(0, whole.length - call.length) : whole;
    if (call || PROMQL_WORDS.has(name.toLowerCase()) || /^\d/.test(name)) continue;
    const before = stripped[m.index! - 1];
    if (before !== undefined && /[0-9.]/.test(before)) continue; // the "e" of 1e3, a duration suffix
    names.add(name);
  }
  return [...names];
}

/** Every `expr` in a Grafana dashboard: panels (rows' too), and annotations. */
function dashboardExprs(dashboard: unknown): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = [];
  const walk = (node: unknown, where: string) => {
    if (Array.isArray(node)) node.forEach((n, i) => walk(n, `${where}[${i}]`));
    else if (node && typeof node === 'object') {
      const o = node as Record<string, unknown>;
      const here = typeof o.title === 'string' ? `${where} "${o.title}"` : typeof o.name === 'string' ? `${where} "${o.name}"` : where;
      for (const [k, v] of Object.entries(o)) {
        if (k === 'expr' && typeof v === 'string') out.push({ where: here, expr: v });
        else walk(v, here);
      }
    }
  };
  walk(dashboard, '');
  return out;
}

describe('PromQL metric-name extraction', () => {
  it('finds the metrics and nothing else', () => {
    expect(metricNames('sum by (feature, target) (rate(proxy_requests_total{status=~"5.."}[$__rate_interval])) / sum by (feature) (rate(proxy_requests_total[5m]))')).toEqual([
      'proxy_requests_total',
    ]);
    expect(metricNames('histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket[1m]))) > 1e3 or on(job) up')).toEqual(['x_seconds_bucket', 'up']);
    expect(metricNames('changes(max by (feature) (cutover_feature_step)[1m:5s]) > 0')).toEqual(['cutover_feature_step']);
  });
});

describe('the Grafana dashboard and the Prometheus scrape configuration', () => {
  let t: TestDatabase;
  let services: MetricsServices;
  const exposed = new Map<string, Set<string>>(); // metric name → jobs exposing it
  beforeAll(async () => {
    t = await createTestDatabase('dashboards');
    services = await startMetricsServices(t);
    for (const { job, url } of services.endpoints) {
      const text = await (await fetch(url)).text();
      const { samples, types } = parsePromText(text);
      const names = new Set([...samples.map((s) => s.name), ...types.keys()]);
      for (const name of names) (exposed.get(name) ?? exposed.set(name, new Set()).get(name)!).add(job);
    }
  });
  afterAll(async () => {
    await services?.close();
    await t?.drop();
  });

  it('names only metrics that some service exposes', async () => {
    const files = (await readdir(DASHBOARDS)).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(0);
    const missing: string[] = [];
    let checked = 0;
    for (const file of files) {
      const dashboard = JSON.parse(await readFile(join(DASHBOARDS, file), 'utf8'));
      const exprs = dashboardExprs(dashboard);
      expect(exprs.length, file).toBeGreaterThan(5);
      for (const { where, expr } of exprs) {
        const names = metricNames(expr);
        expect(names.length, `${file}${where}: ${expr}`).toBeGreaterThan(0);
        for (const name of names) {
          checked++;
          if (!exposed.has(name)) missing.push(`${file}${where}: ${name} (in ${expr})`);
        }
      }
    }
    expect(missing).toEqual([]);
    expect(checked).toBeGreaterThan(10);
  });

  it('has a datasource variable that every panel and annotation uses', async () => {
    const dashboard = JSON.parse(await readFile(join(DASHBOARDS, 'strangler.json'), 'utf8'));
    const variable = dashboard.templating.list.find((v: { type: string }) => v.type === 'datasource');
    expect(variable).toMatchObject({ name: 'datasource', query: 'prometheus' });
    const panels = dashboard.panels.filter((p: { type: string }) => p.type !== 'row');
    for (const p of panels) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      for (const target of p.targets) expect(target.datasource.uid, p.title).toBe('${datasource}');
    }
    const ids = dashboard.panels.map((p: { id: number }) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it.skipIf(!PROMTOOL)('scrape config passes promtool check config, with target files written for the running services', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'strangler-prom-'));
    try {
      // The config names its target files relative to itself: ../out/prometheus-targets/<job>.json.
      await mkdir(join(dir, 'dashboards'));
      await copyFile(join(DASHBOARDS, 'prometheus.yml'), join(dir, 'dashboards', 'prometheus.yml'));
      const files = await writeScrapeTargets(
        join(dir, 'out', 'prometheus-targets'),
        services.endpoints.map((e) => ({ job: e.job, url: e.url, labels: { service: e.service } })),
      );
      expect(files).toHaveLength(SCRAPE_JOBS.length);
      const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn('promtool', ['check', 'config', join(dir, 'dashboards', 'prometheus.yml')]);
        let output = '';
        child.stdout.on('data', (c: Buffer) => (output += c.toString()));
        child.stderr.on('data', (c: Buffer) => (output += c.toString()));
        child.once('close', (code) => resolve({ code, output }));
      });
      expect(output).not.toMatch(/FAILED|WARNING/);
      expect(code, output).toBe(0);
      // Every job in the config has its target file, and the running services are in them.
      const config = await readFile(join(DASHBOARDS, 'prometheus.yml'), 'utf8');
      const jobs = [...config.matchAll(/job_name:\s*([\w-]+)/g)].map((m) => m[1]);
      expect(jobs.sort()).toEqual([...SCRAPE_JOBS].sort());
      const monitor = JSON.parse(await readFile(join(dir, 'out', 'prometheus-targets', 'monitor.json'), 'utf8'));
      expect(monitor).toEqual([{ targets: [new URL(services.endpoints.find((e) => e.job === 'monitor')!.url).host], labels: { service: 'monitor' } }]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
