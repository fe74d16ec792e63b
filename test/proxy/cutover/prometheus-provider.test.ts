import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Gauge, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeScrapeTargets } from '../../../lib/metrics/scrape-targets.ts';
import { freePort } from '../../../lib/net/free-port.ts';
import { createCutoverAdmin, type CutoverAdmin } from '../../../proxy/cutover/admin.ts';
import { validatePlan } from '../../../proxy/cutover/plan.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';
import { startUpstream, waitFor, type TestUpstream } from '../../helpers/upstream.ts';

const DASHBOARDS = new URL('../../../dashboards/', import.meta.url);
const TOKEN = 'prometheus-token-0123456789abcdef';

/**
 * The prometheus gate against a real Prometheus (the Debian package) that scrapes the targets
 * `strangler up` writes (lib/metrics/scrape-targets.ts) with dashboards/prometheus.yml, its
 * scrape interval shortened to 1 s.
 */
describe('the prometheus metric provider against a real Prometheus', { timeout: 180_000 }, () => {
  let t: TestDatabase;
  let dir: string;
  let prom: ChildProcess | undefined;
  let promUrl: string;
  let router: TestUpstream;
  let admin: CutoverAdmin;
  const registry = new Registry();
  const backlog = new Gauge({ name: 'router_pending_events', help: 'p', labelNames: ['region'], registers: [registry] });

  const query = async (q: string) => (await (await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`)).json()) as { data: { result: Array<{ value: [number, string] }> } };

  beforeAll(async () => {
    t = await createTestDatabase('prom_provider');
    router = await startUpstream('router', async (req, res) => {
      if (req.url !== '/metrics') return false;
      res.writeHead(200, { 'content-type': registry.contentType });
      res.end(await registry.metrics());
      return true;
    });
    backlog.set({ region: 'nyc1' }, 3);
    dir = await mkdtemp(join(tmpdir(), 'strangler-prom-'));
    await mkdir(join(dir, 'dashboards'));
    const config = (await readFile(new URL('prometheus.yml', DASHBOARDS), 'utf8')).replace('scrape_interval: 5s', 'scrape_interval: 1s').replace('scrape_timeout: 4s', 'scrape_timeout: 900ms');
    await writeFile(join(dir, 'dashboards', 'prometheus.yml'), config);
    await writeScrapeTargets(join(dir, 'out', 'prometheus-targets'), [{ job: 'event-router', url: router.url, labels: { region: 'nyc1' } }]);
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prom = spawn('prometheus', [`--config.file=${join(dir, 'dashboards', 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: 'ignore' });
    await waitFor(async () => {
      try {
        return (await query('up{job="event-router"}')).data.result[0]?.value[1] === '1';
      } catch {
        return false;
      }
    }, 60_000, 'Prometheus to scrape the router target');

    const plan = validatePlan({
      version: 1,
      analysis: { interval_seconds: 0.5, passes: 1, failure_threshold: 2, on_failure: 'legacy' },
      features: {
        'event-delivery': {
          steps: [
            {
              name: 'nyc1',
              mode: 'canary',
              regions: ['nyc1'],
              soak_seconds: 0,
              manual_judgement: true,
              gates: [{ name: 'backlog', kind: 'prometheus', service: 'prometheus', query: 'max by (region) (router_pending_events{job="event-router"})', max: 100 }],
            },
            { name: 'all', mode: 'full', soak_seconds: 0, gates: [] },
          ],
        },
        scheduling: {
          steps: [
            {
              name: 'all',
              mode: 'full',
              soak_seconds: 0,
              gates: [
                { name: 'nothing', kind: 'prometheus', service: 'prometheus', query: 'no_such_metric_anywhere', max: 1 },
                { name: 'broken', kind: 'prometheus', service: 'prometheus', query: 'sum(rate(router_pending_events[', max: 1 },
                { name: 'down', kind: 'prometheus', service: 'nowhere', query: 'up', min: 1 },
              ],
            },
          ],
        },
      },
    });
    admin = createCutoverAdmin({ db: t.service('proxy'), tokens: { operator: TOKEN }, services: { prometheus: promUrl, nowhere: 'http://127.0.0.1:9' }, plan, watch: true, autopilotTickMs: 100 });
    await admin.start();
  }, 120_000);

  afterAll(async () => {
    await admin?.close();
    prom?.kill('SIGTERM');
    await router?.close();
    await t?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('judges a PromQL query against its threshold; an empty answer is no data, a bad query or a dead server an error', async () => {
    await admin.controller.advance('event-delivery', 'operator');
    const [reading] = await admin.controller.evaluate('event-delivery');
    expect(reading).toMatchObject({ gate: 'backlog', kind: 'prometheus', service: 'prometheus', verdict: 'pass', value: 3, threshold: { max: 100 } });
    expect(reading!.message).toMatch(/max of 1 sample of max by \(region\) \(router_pending_events\{job="event-router"\}\) = 3 <= max 100/);

    await admin.controller.advance('scheduling', 'operator');
    const readings = await admin.controller.evaluate('scheduling');
    expect(readings.map((r) => [r.gate, r.verdict])).toEqual([['nothing', 'no-data'], ['broken', 'error'], ['down', 'error']]);
    expect(readings[1]!.message).toMatch(/Prometheus refused the query \(HTTP 400, bad_data\)/);
    await admin.controller.rollback('scheduling', { actor: 'operator' });
  });

  it('rolls a running autopilot back when the series Prometheus scraped goes over the threshold', async () => {
    expect((await admin.autopilot.run('event-delivery', 'operator')).run).toBe('running');
    await waitFor(async () => (await admin.autopilot.view()).find((v) => v.feature === 'event-delivery')?.run === 'waiting', 15_000, 'the run to pass and wait at nyc1');
    backlog.set({ region: 'nyc1' }, 5000);
    await waitFor(async () => (await admin.autopilot.view()).find((v) => v.feature === 'event-delivery')?.run === 'rolled-back', 45_000, 'the rollback');
    expect(await admin.controller.statusOf('event-delivery')).toMatchObject({ step: 0 });
    const rollback = (await admin.controller.history({ feature: 'event-delivery' })).find((h) => h.action === 'auto-rollback')!;
    expect(rollback.readings).toEqual([expect.objectContaining({ gate: 'backlog', kind: 'prometheus', verdict: 'fail', value: 5000 })]);
  });
});
