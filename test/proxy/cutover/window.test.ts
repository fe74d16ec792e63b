import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCutoverAdmin, type CutoverAdmin } from '../../../proxy/cutover/admin.ts';
import { validatePlan } from '../../../proxy/cutover/plan.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';

const TOKEN = 'window-token-0123456789abcdef';
const ERRORS = `proxy_requests_total{feature='event-delivery',target='new',status=~'5..'}`;
const TOTAL = `proxy_requests_total{feature='event-delivery',target='new'}`;
const PLAN = validatePlan({
  version: 1,
  features: {
    'event-delivery': {
      steps: [
        { name: 'nyc1', mode: 'canary', regions: ['nyc1'], soak_seconds: 1, gates: [{ name: 'errors', kind: 'error_rate', service: 'proxy', errors: ERRORS, total: TOTAL, max: 0.01, min_samples: 0 }] },
        { name: 'all-regions', mode: 'full', soak_seconds: 0, gates: [] },
      ],
    },
    scheduling: {
      steps: [
        { name: 'shadow', mode: 'shadow', soak_seconds: 1, gates: [{ name: 'enough', kind: 'error_rate', service: 'proxy', errors: ERRORS, total: TOTAL, max: 0.5, min_samples: 300 }] },
        { name: 'full', mode: 'full', soak_seconds: 0, gates: [] },
      ],
    },
  },
});

/**
 * Found by `npm run chaos`: a router killed during a step made the proxy
 * count stream errors; long after the router was back, every advance was
 * refused, because the gate judged everything since the step began. Gates
 * judge the soak window: a late advance looks at the last soak_seconds.
 */
describe('cutover gates judge the soak window, not the whole step', () => {
  let t: TestDatabase;
  let admin: CutoverAdmin;
  let url: string;
  let upstream: Server;
  const registry = new Registry();
  const requests = new Counter({ name: 'proxy_requests_total', help: 'r', labelNames: ['feature', 'target', 'status'], registers: [registry] });
  const traffic = (ok: number, failed = 0) => {
    requests.inc({ feature: 'event-delivery', target: 'new', status: '200' }, ok);
    if (failed) requests.inc({ feature: 'event-delivery', target: 'new', status: '503' }, failed);
  };
  const advance = async (feature = 'event-delivery') => {
    const res = await fetch(`${url}/cutover/${feature}/advance`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: '{}' });
    return { status: res.status, body: (await res.json()) as { code?: string; message?: string; readings?: Array<{ samples?: number }> } };
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  beforeAll(async () => {
    t = await createTestDatabase('cutover_window');
    upstream = createServer((_req, res) => {
      void registry.metrics().then((body) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(body);
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    admin = createCutoverAdmin({ db: t.service('proxy'), tokens: { op: TOKEN }, services: { proxy: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` }, plan: PLAN, watch: true, watchIntervalMs: 200 });
    url = (await admin.start()).url;
  });
  afterAll(async () => {
    await admin?.close();
    upstream?.close();
    await t?.drop();
  });

  it('refuses while the failures are inside the last soak, and advances once a clean soak has passed', async () => {
    traffic(10);
    expect((await advance()).status).toBe(200); // legacy → nyc1: the window starts
    await sleep(1300); // soaked (an outage during the soak would be the watcher's to roll back)
    traffic(90, 10); // an outage: 10% errors, the gate allows 1%
    const refused = await advance();
    expect(refused.status).toBe(422);
    expect(refused.body.code).toBe('CUTOVER_ERR_GATE_FAILED');
    // The outage is over: a clean soak of traffic follows.
    traffic(500);
    await sleep(1800);
    traffic(200);
    const ok = await advance();
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    // It judged the recent window: the clean requests only, not the 100 of the outage.
    expect(ok.body.readings?.[0]?.samples).toBeLessThan(800);
  }, 30_000);

  it('still counts samples over the whole step: a min_samples gate fills up across several soaks', async () => {
    expect((await advance('scheduling')).status).toBe(200);
    await sleep(1300);
    traffic(150);
    expect((await advance('scheduling')).body.code).toBe('CUTOVER_ERR_GATE_FAILED'); // 150 of 300
    await sleep(1500);
    traffic(200);
    const ok = await advance('scheduling');
    expect(ok.status, JSON.stringify(ok.body)).toBe(200); // 350 since the step began, though fewer in the last soak
  }, 30_000);
});
