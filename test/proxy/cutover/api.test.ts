import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatMysqlUrl } from '../../../lib/db/config.ts';
import { createKnex } from '../../../lib/db/knex.ts';
import type { FeatureStateChange } from '../../../lib/cutover/types.ts';
import { createRouter } from '../../../lib/http/router.ts';
import { createHttpService } from '../../../lib/http/service-server.ts';
import { silentLogger } from '../../../lib/logger.ts';
import { addCutoverRoutes, createCutoverAdmin, type CutoverAdmin } from '../../../proxy/cutover/admin.ts';
import { validatePlan, type CutoverPlan } from '../../../proxy/cutover/plan.ts';
import { createReader } from '../../../proxy/cutover/reader.ts';
import { createCutoverStateReader } from '../../../proxy/cutover/state-store.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';

const TOKENS = { alice: 'alice-token-0123456789abcdef', bob: 'bob-token-0123456789abcdef00' };

/** A /metrics upstream whose registry the test drives; `delayMs` slows every scrape. */
async function metricsUpstream(registry: Registry, options: { delayMs?: number } = {}): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const answer = async () => {
      if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
      const body = await registry.metrics();
      res.writeHead(req.url === '/metrics' ? 200 : 404, { 'content-type': registry.contentType });
      res.end(body);
    };
    void answer();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

const ERRORS = `proxy_requests_total{feature='event-delivery',target='new',status=~'5..'}`;
const TOTAL = `proxy_requests_total{feature='event-delivery',target='new'}`;

/** Short soaks so the test moves: step 1 soaks 2 s, step 2 soaks 30 s (long enough for the watcher to act inside it). */
const PLAN: CutoverPlan = validatePlan({
  version: 1,
  features: {
    'event-delivery': {
      steps: [
        {
          name: 'nyc1',
          mode: 'canary',
          regions: ['nyc1'],
          soak_seconds: 2,
          gates: [
            { name: 'errors', kind: 'error_rate', service: 'proxy', errors: ERRORS, total: TOTAL, max: 0.01, min_samples: 0 },
            { name: 'backlog', kind: 'gauge', service: 'router', metric: 'router_pending_events', max: 100 },
          ],
        },
        {
          name: 'nyc1-sfo1',
          mode: 'canary',
          percent: 50,
          regions: ['nyc1', 'sfo1'],
          soak_seconds: 30,
          gates: [
            { name: 'p99', kind: 'latency', service: 'proxy', histogram: `proxy_request_duration_seconds{feature='event-delivery',target='new'}`, max_seconds: 0.2, min_samples: 1 },
          ],
        },
        { name: 'all-regions', mode: 'full', soak_seconds: 1, gates: [] },
      ],
    },
    scheduling: {
      steps: [
        {
          name: 'shadow',
          mode: 'shadow',
          soak_seconds: 0,
          gates: [
            {
              kind: 'shadow_mismatch_rate',
              service: 'slow',
              mismatches: `proxy_shadow_comparisons_total{result='mismatch'}`,
              total: 'proxy_shadow_comparisons_total',
              max: 0.1,
              min_samples: 0,
            },
          ],
        },
        { name: 'full', mode: 'full', soak_seconds: 0, gates: [] },
      ],
    },
    'event-writes': { steps: [{ name: 'full', mode: 'full', soak_seconds: 0, gates: [] }] },
  },
});

describe('cutover control through the admin API', () => {
  let t: TestDatabase;
  let admin: CutoverAdmin;
  let url: string;
  const upstreams: Server[] = [];
  const proxyRegistry = new Registry();
  const requests = new Counter({ name: 'proxy_requests_total', help: 'r', labelNames: ['feature', 'target', 'status'], registers: [proxyRegistry] });
  const latency = new Histogram({
    name: 'proxy_request_duration_seconds',
    help: 'l',
    labelNames: ['feature', 'target'],
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5],
    registers: [proxyRegistry],
  });
  const routerRegistry = new Registry();
  const backlog = new Gauge({ name: 'router_pending_events', help: 'p', labelNames: ['region'], registers: [routerRegistry] });
  const slowRegistry = new Registry();
  new Counter({ name: 'proxy_shadow_comparisons_total', help: 's', labelNames: ['result'], registers: [slowRegistry] }).inc({ result: 'match' }, 5);
  let services: Record<string, string>;

  const traffic = (ok: number, failed = 0) => {
    requests.inc({ feature: 'event-delivery', target: 'new', status: '200' }, ok);
    if (failed) requests.inc({ feature: 'event-delivery', target: 'new', status: '503' }, failed);
  };

  async function api(method: string, path: string, options: { token?: string | null; body?: unknown; raw?: string; headers?: Record<string, string> } = {}) {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? TOKENS.alice : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (options.raw !== undefined) body = options.raw;
    else if (options.body !== undefined) body = JSON.stringify(options.body);
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const res = await fetch(`${url}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    return { status: res.status, body: (await res.json()) as any };
  }

  const row = async (feature: string) => (await t.db('cutover_features').where({ feature }).first()) as Record<string, any>;
  const historyRows = async (feature: string) => (await t.db('cutover_history').where({ feature }).orderBy('id')) as Array<Record<string, any>>;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  function startAdmin(options: { watch?: boolean; watcherActor?: string } = {}): CutoverAdmin {
    return createCutoverAdmin({
      db: t.service('proxy'),
      tokens: TOKENS,
      services,
      plan: PLAN,
      watch: options.watch ?? false,
      watchIntervalMs: 200,
      ...(options.watcherActor ? { watcherActor: options.watcherActor } : {}),
    });
  }

  beforeAll(async () => {
    t = await createTestDatabase('cutover_api');
    const proxy = await metricsUpstream(proxyRegistry);
    const router = await metricsUpstream(routerRegistry);
    const slow = await metricsUpstream(slowRegistry, { delayMs: 400 });
    upstreams.push(proxy.server, router.server, slow.server);
    services = { proxy: proxy.url, router: router.url, slow: slow.url };
    backlog.set({ region: 'nyc1' }, 3);
    admin = startAdmin();
    url = (await admin.start()).url;
  });

  afterAll(async () => {
    await admin?.close();
    for (const s of upstreams) s.close();
    await t?.drop();
  });

  it('refuses every route without a valid token, and changes nothing', async () => {
    const before = await row('event-delivery');
    const routes: Array<[string, string]> = [
      ['GET', '/cutover/status'],
      ['GET', '/cutover/plan'],
      ['GET', '/cutover/history'],
      ['POST', '/cutover/event-delivery/advance'],
      ['POST', '/cutover/event-delivery/rollback'],
      ['POST', '/cutover/event-delivery/pause'],
      ['POST', '/cutover/event-delivery/resume'],
      ['POST', '/cutover/no-such-feature/advance'],
    ];
    for (const [method, path] of routes) {
      for (const token of [null, 'wrong-token-0123456789abcdef', TOKENS.alice + 'x', '']) {
        const res = await api(method, path, { token, ...(method === 'POST' ? { body: { reason: 'sneaky' } } : {}) });
        expect(res.status, `${method} ${path} with ${token}`).toBe(401);
        expect(res.body.code).toBe('CUTOVER_ERR_UNAUTHORIZED');
        expect(JSON.stringify(res.body)).not.toContain(TOKENS.alice);
      }
    }
    const basic = await fetch(`${url}/cutover/status`, { headers: { authorization: `Basic ${Buffer.from('alice:x').toString('base64')}` } });
    expect(basic.status).toBe(401);
    expect(await row('event-delivery')).toEqual(before);
    expect(before).toMatchObject({ step: 0, mode: 'legacy', version: 1 });
    expect(await t.db('cutover_history').count({ n: '*' })).toEqual([{ n: 0 }]);
  });

  it('shows status and plan', async () => {
    const status = await api('GET', '/cutover/status');
    expect(status.status).toBe(200);
    expect(status.body.features.map((f: { feature: string }) => f.feature)).toEqual(['event-delivery', 'scheduling', 'event-writes']);
    expect(status.body.features[0]).toMatchObject({ feature: 'event-delivery', step: 0, steps: 3, step_name: 'legacy', mode: 'legacy', paused: false, next_step: 'nyc1', last_change: null });
    const plan = await api('GET', '/cutover/plan');
    expect(plan.status).toBe(200);
    expect(plan.body.plan).toEqual(PLAN);
    expect(plan.body.services).toEqual(['proxy', 'router', 'slow']);
    expect(plan.body.missing_services).toEqual([]);
  });

  it('validates input: unknown feature 404, unknown fields and bad values 422, bad JSON 400, big bodies 413', async () => {
    const before = await row('event-delivery');
    const cases: Array<[string, Parameters<typeof api>[2], number, string]> = [
      ['/cutover/teleport/advance', {}, 404, 'CUTOVER_ERR_UNKNOWN_FEATURE'],
      ['/cutover/lockdown/advance', {}, 404, 'CUTOVER_ERR_UNKNOWN_FEATURE'], // a real feature this plan leaves out
      ['/cutover/event-delivery/advance', { body: { reason: 'x', force: true } }, 422, 'CUTOVER_ERR_VALIDATION'],
      ['/cutover/event-delivery/advance', { body: { reason: 42 } }, 422, 'CUTOVER_ERR_VALIDATION'],
      ['/cutover/event-delivery/advance', { body: [] }, 422, 'CUTOVER_ERR_VALIDATION'],
      ['/cutover/event-delivery/advance', { body: { reason: 'r'.repeat(501) } }, 422, 'CUTOVER_ERR_VALIDATION'],
      ['/cutover/event-delivery/advance', { body: { expected_version: 'one' } }, 422, 'CUTOVER_ERR_VALIDATION'],
      ['/cutover/event-delivery/rollback', { body: { to: 'yesterday' } }, 422, 'CUTOVER_ERR_VALIDATION'],
      ['/cutover/event-delivery/pause', { body: { to: 'legacy' } }, 422, 'CUTOVER_ERR_VALIDATION'],
      ['/cutover/event-delivery/advance', { raw: '{"reason": ' }, 400, 'CUTOVER_ERR_MALFORMED_JSON'],
      ['/cutover/event-delivery/advance', { raw: 'reason=x', headers: { 'content-type': 'text/plain' } }, 415, 'CUTOVER_ERR_UNSUPPORTED_MEDIA_TYPE'],
      ['/cutover/event-delivery/advance', { body: { reason: 'x'.repeat(20_000) } }, 413, 'CUTOVER_ERR_BODY_TOO_LARGE'],
      ["/cutover/event-delivery/advance?force=1", {}, 422, 'CUTOVER_ERR_VALIDATION'],
    ];
    for (const [path, options, status, code] of cases) {
      const res = await api('POST', path, options);
      expect(res.status, `${path} ${JSON.stringify(options).slice(0, 80)}`).toBe(status);
      expect(res.body.code).toBe(code);
      expect(typeof res.body.message).toBe('string');
    }
    expect((await api('POST', '/cutover/event-delivery/rollback', { body: { to: 'yesterday' } })).body.message).toMatch(/^to: /);
    expect((await api('POST', '/cutover/event-delivery/advance', { body: { force: true } })).body.message).toMatch(/^force: unknown field/);
    for (const q of ['feature=teleport', 'limit=0', 'limit=abc', 'limit=5&limit=6', 'sort=asc']) {
      const res = await api('GET', `/cutover/history?${q}`);
      expect(res.status, q).toBe(q.startsWith('feature') ? 404 : 422);
    }
    expect(await row('event-delivery')).toEqual(before);
    expect(await t.db('cutover_history').count({ n: '*' })).toEqual([{ n: 0 }]);
  });

  it('advances from legacy (no gates there), then refuses while the step soaks or is paused', async () => {
    const res = await api('POST', '/cutover/event-delivery/advance', { body: { reason: 'canary nyc1' } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ changed: true, action: 'advance', readings: [] });
    expect(res.body.status).toMatchObject({ step: 1, step_name: 'nyc1', mode: 'canary', percent: 100, regions: ['nyc1'], version: 2, soak_seconds: 2 });
    expect(res.body.status.last_change).toMatchObject({ action: 'advance', actor: 'alice', reason: 'canary nyc1', from_step: 0, to_step: 1 });
    expect(await row('event-delivery')).toMatchObject({ step: 1, step_name: 'nyc1', mode: 'canary', regions: '["nyc1"]', version: 2 });
    const baseline = JSON.parse((await row('event-delivery')).baseline);
    expect(Object.keys(baseline)).toEqual(['proxy']); // the window of step 1's error rate starts here

    const soaking = await api('POST', '/cutover/event-delivery/advance');
    expect(soaking.status).toBe(409);
    expect(soaking.body.code).toBe('CUTOVER_ERR_SOAKING');
    expect(soaking.body.remaining_seconds).toBeGreaterThan(0);

    const pause = await api('POST', '/cutover/event-delivery/pause', { token: TOKENS.bob, body: { reason: 'lunch' } });
    expect(pause.status).toBe(200);
    expect(pause.body).toMatchObject({ changed: true, action: 'pause', status: { paused: true, step: 1, version: 3 } });
    const again = await api('POST', '/cutover/event-delivery/pause');
    expect(again.body).toMatchObject({ changed: false, action: null });
    await sleep(2100);
    const paused = await api('POST', '/cutover/event-delivery/advance');
    expect(paused.status).toBe(409);
    expect(paused.body.code).toBe('CUTOVER_ERR_PAUSED');
    const resume = await api('POST', '/cutover/event-delivery/resume');
    expect(resume.body).toMatchObject({ changed: true, action: 'resume', status: { paused: false, version: 4 } });
    const actions = (await historyRows('event-delivery')).map((h) => [h.action, h.actor]);
    expect(actions).toEqual([
      ['advance', 'alice'],
      ['pause', 'bob'],
      ['resume', 'alice'],
    ]);
  });

  it('refuses to advance while a gate fails: 422 with the readings, the row untouched, the refusal audited', async () => {
    traffic(90, 10); // 10% errors inside step 1's window; the gate allows 1%
    backlog.set({ region: 'nyc1' }, 3);
    const before = await row('event-delivery');
    const res = await api('POST', '/cutover/event-delivery/advance', { body: { reason: 'looks fine to me' } });
    expect(res.status).toBe(422);
    expect(res.body.code).toBe('CUTOVER_ERR_GATE_FAILED');
    expect(res.body.message).toMatch(/errors fail: 10\.00% \(10\/100 requests/);
    const byGate = Object.fromEntries(res.body.readings.map((r: { gate: string }) => [r.gate, r]));
    expect(byGate.errors).toMatchObject({ verdict: 'fail', kind: 'error_rate', service: 'proxy', value: 0.1, samples: 100, threshold: { max: 0.01 } });
    expect(byGate.backlog).toMatchObject({ verdict: 'pass', kind: 'gauge', value: 3 });
    expect(await row('event-delivery')).toEqual(before);
    const last = (await historyRows('event-delivery')).at(-1)!;
    expect(last).toMatchObject({ action: 'advance-refused', actor: 'alice', from_step: 1, to_step: 1, reason: 'looks fine to me' });
    expect(JSON.parse(last.readings)).toEqual(res.body.readings);

    // A gauge with no series is no-data, which also blocks.
    backlog.reset();
    const noData = await api('POST', '/cutover/event-delivery/advance');
    expect(noData.status).toBe(422);
    expect(noData.body.readings.find((r: { gate: string }) => r.gate === 'backlog')).toMatchObject({ verdict: 'no-data', value: null });
    backlog.set({ region: 'nyc1' }, 3);
  });

  it('rolls back at once, to legacy or one step back, never gated', async () => {
    const toLegacy = await api('POST', '/cutover/event-delivery/rollback', { body: { to: 'legacy', reason: 'errors' } });
    expect(toLegacy.status).toBe(200);
    expect(toLegacy.body).toMatchObject({ changed: true, action: 'rollback', status: { step: 0, step_name: 'legacy', mode: 'legacy', percent: 0, regions: null } });
    expect(await row('event-delivery')).toMatchObject({ step: 0, mode: 'legacy', regions: null });
    const noop = await api('POST', '/cutover/event-delivery/rollback');
    expect(noop.body).toMatchObject({ changed: false });

    // Forward again with a fresh window: the old errors no longer count.
    expect((await api('POST', '/cutover/event-delivery/advance')).status).toBe(200);
    traffic(500);
    await sleep(2100);
    const adv = await api('POST', '/cutover/event-delivery/advance', { body: { reason: 'clean' } });
    expect(adv.status, JSON.stringify(adv.body)).toBe(200);
    expect(adv.body.status).toMatchObject({ step: 2, step_name: 'nyc1-sfo1', mode: 'canary', percent: 50, regions: ['nyc1', 'sfo1'] });
    expect(adv.body.readings.map((r: { verdict: string }) => r.verdict)).toEqual(['pass', 'pass']);
    const recorded = (await historyRows('event-delivery')).at(-1)!;
    expect(recorded).toMatchObject({ action: 'advance', from_step: 1, to_step: 2 });
    expect(JSON.parse(recorded.readings).map((r: { gate: string }) => r.gate)).toEqual(['errors', 'backlog']);

    const back = await api('POST', '/cutover/event-delivery/rollback', { body: { to: 'previous' } });
    expect(back.body.status).toMatchObject({ step: 1, step_name: 'nyc1', regions: ['nyc1'], percent: 100 });
  });

  it('lets exactly one of two concurrent advances win; the other gets 409 CUTOVER_ERR_CONFLICT', async () => {
    // scheduling's next step reads a slow service (400 ms), so both requests hold the same version when they commit.
    const before = await row('scheduling');
    const results = await Promise.all([
      api('POST', '/cutover/scheduling/advance', { body: { reason: 'one' } }),
      api('POST', '/cutover/scheduling/advance', { token: TOKENS.bob, body: { reason: 'two' } }),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 409]);
    expect(results.find((r) => r.status === 409)!.body.code).toBe('CUTOVER_ERR_CONFLICT');
    expect(await row('scheduling')).toMatchObject({ step: 1, version: before.version + 1 });
    expect((await historyRows('scheduling')).filter((h) => h.action === 'advance')).toHaveLength(1);

    // With expected_version, racing operators conflict however the requests interleave.
    const v = (await row('event-writes')).version;
    const many = await Promise.all(Array.from({ length: 5 }, () => api('POST', '/cutover/event-writes/advance', { body: { expected_version: v } })));
    expect(many.filter((r) => r.status === 200)).toHaveLength(1);
    expect(many.filter((r) => r.status === 409 && r.body.code === 'CUTOVER_ERR_CONFLICT')).toHaveLength(4);
    expect(await row('event-writes')).toMatchObject({ step: 1, mode: 'full', version: v + 1 });
    const last = await api('POST', '/cutover/event-writes/advance');
    expect(last.status).toBe(409);
    expect(last.body.code).toBe('CUTOVER_ERR_LAST_STEP');
  });

  it('rolls a feature back by itself when a gate fails during the soak, and records why', async () => {
    // Back on step 1 (rolled back in an earlier test): let it soak, then advance into step 2 (30 s soak).
    traffic(100);
    await sleep(2100);
    const adv = await api('POST', '/cutover/event-delivery/advance');
    expect(adv.status, JSON.stringify(adv.body)).toBe(200);
    expect(adv.body.status.step).toBe(2);

    // Two more replicas, each with a soak watcher (the first has none): both see the failure, one acts.
    const watchers = [startAdmin({ watch: true, watcherActor: 'soak-watcher-a' }), startAdmin({ watch: true, watcherActor: 'soak-watcher-b' })];
    for (const w of watchers) await w.start();
    try {
      for (let i = 0; i < 20; i++) latency.observe({ feature: 'event-delivery', target: 'new' }, 0.004);
      await sleep(700);
      expect(await row('event-delivery')).toMatchObject({ step: 2 }); // healthy: the watcher leaves it alone
      const started = Date.now();
      for (let i = 0; i < 20; i++) latency.observe({ feature: 'event-delivery', target: 'new' }, 0.9);
      let r = await row('event-delivery');
      while (r.step === 2 && Date.now() - started < 10_000) {
        await sleep(100);
        r = await row('event-delivery');
      }
      expect(r).toMatchObject({ step: 1, step_name: 'nyc1' });
      expect(Date.now() - started).toBeLessThan(5_000);
      const last = (await historyRows('event-delivery')).at(-1)!;
      expect(last).toMatchObject({ action: 'auto-rollback', from_step: 2, to_step: 1 });
      expect(last.actor).toMatch(/^soak-watcher-[ab]$/);
      expect(last.reason).toMatch(/gate p99 failed: p99 .* ms .* > max 200\.0 ms .*during the soak of step 2 nyc1-sfo1, 2 checks in a row/);
      const readings = JSON.parse(last.readings);
      expect(readings).toEqual([expect.objectContaining({ gate: 'p99', kind: 'latency', verdict: 'fail', samples: 40 })]);
      expect(readings[0].value).toBeGreaterThan(0.2);
      const history = await api('GET', '/cutover/history?feature=event-delivery&limit=1');
      expect(history.body.entries).toEqual([expect.objectContaining({ action: 'auto-rollback', readings })]);

      // The rolled-back step soaks again; a paused feature is left alone by the watcher.
      expect((await api('POST', '/cutover/event-delivery/pause')).status).toBe(200);
      traffic(0, 500); // would fail step 1's error gate
      await sleep(800);
      expect(await row('event-delivery')).toMatchObject({ step: 1, paused: 1 });
      // Exactly one automatic rollback, however many watchers saw the failing gate.
      expect((await historyRows('event-delivery')).filter((h) => h.action === 'auto-rollback')).toHaveLength(1);
      expect((await api('POST', '/cutover/event-delivery/rollback', { body: { to: 'legacy' } })).status).toBe(200);
      expect((await api('POST', '/cutover/event-delivery/resume')).status).toBe(200);
    } finally {
      for (const w of watchers) await w.close();
    }
  });

  it('does not roll back on one blip: only on consecutive failing checks of the same step', async () => {
    expect((await api('POST', '/cutover/event-delivery/advance')).status).toBe(200);
    const check = async (pending: number) => {
      backlog.set({ region: 'nyc1' }, pending);
      await admin.controller.watchOnce();
      return (await row('event-delivery')).step;
    };
    // All inside step 1's 2 s soak; this replica's watcher is not running, so only these checks act.
    expect(await check(500)).toBe(1); // one failing check
    expect(await check(3)).toBe(1); // recovered: the count starts again
    expect(await check(500)).toBe(1);
    expect(await check(500)).toBe(0); // two in a row: back to legacy
    backlog.set({ region: 'nyc1' }, 3);
    const last = (await historyRows('event-delivery')).at(-1)!;
    expect(last).toMatchObject({ action: 'auto-rollback', from_step: 1, to_step: 0 });
    expect(JSON.parse(last.readings).find((r: { gate: string }) => r.gate === 'backlog')).toMatchObject({ verdict: 'fail', value: 500 });
  });

  it('keeps its state across a restart, and every reader sees a change within about a second', async () => {
    await admin.close();
    admin = startAdmin();
    url = (await admin.start()).url;
    const status = await api('GET', '/cutover/status');
    const byFeature = Object.fromEntries(status.body.features.map((f: { feature: string }) => [f.feature, f]));
    expect(byFeature['event-delivery']).toMatchObject({ step: 0, paused: false, last_change: { action: 'auto-rollback', to_step: 0 } });
    expect(byFeature.scheduling).toMatchObject({ step: 1, step_name: 'shadow', mode: 'shadow' });
    expect(byFeature['event-writes']).toMatchObject({ step: 1, mode: 'full', percent: 100 });

    // Two readers stand for two proxy replicas: one as a cluster worker builds it (a URL; here the dobe user,
    // which agents use and which may only SELECT), one on a pool the caller owns.
    const proxyDb = createKnex(t.service('proxy'), { poolMax: 1 });
    const readers = [
      await createReader({ mysqlUrl: formatMysqlUrl(t.service('dobe')), intervalMs: 1000 }),
      createCutoverStateReader({ db: proxyDb, intervalMs: 1000 }),
    ];
    try {
      await readers[1]!.start();
      for (const reader of readers) {
        expect(reader.get('scheduling')).toMatchObject({ feature: 'scheduling', step: 1, stepName: 'shadow', mode: 'shadow', paused: false });
        expect(reader.get('event-delivery')).toMatchObject({ step: 0, mode: 'legacy', percent: 0, regions: null });
        expect(reader.get('teleport')).toBeUndefined();
        expect(reader.all().map((s) => s.feature)).toContain('lockdown');
      }
      const seen = readers.map(
        (reader) =>
          new Promise<{ at: number; change: FeatureStateChange }>((resolve) => {
            const off = reader.onChange((change) => {
              if (change.feature !== 'event-delivery') return;
              off();
              resolve({ at: Date.now(), change });
            });
          }),
      );
      const changedAt = Date.now();
      expect((await api('POST', '/cutover/event-delivery/advance')).status).toBe(200);
      for (const { at, change } of await Promise.all(seen)) {
        expect(at - changedAt).toBeLessThan(2_000); // one 1 s poll plus the query, with room for a busy machine
        expect(change.state).toMatchObject({ step: 1, stepName: 'nyc1', mode: 'canary', percent: 100, regions: ['nyc1'] });
        expect(change.previous).toMatchObject({ step: 0, mode: 'legacy' });
      }
    } finally {
      for (const reader of readers) await reader.close();
      await proxyDb.destroy();
    }
    const history = await api('GET', '/cutover/history?limit=3');
    expect(history.body.entries).toHaveLength(3);
    expect(history.body.entries[0]).toMatchObject({ feature: 'event-delivery', action: 'advance', actor: 'alice', from_step: 0, to_step: 1 });
    expect(history.body.entries[0].id).toBeGreaterThan(history.body.entries[1].id);
  });

  it('mounts under a prefix on another service\'s router, with its own tokens', async () => {
    const router = addCutoverRoutes(createRouter(), { controller: admin.controller, tokens: { carol: 'carol-token-0123456789abcdef' }, prefix: '/admin' });
    const other = createHttpService({ name: 'other-admin', router, registry: new Registry(), logger: silentLogger() });
    const { url: otherUrl } = await other.start();
    try {
      const ok = await fetch(`${otherUrl}/admin/cutover/status`, { headers: { authorization: 'Bearer carol-token-0123456789abcdef' } });
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { features: unknown[] }).features).toHaveLength(3);
      const alice = await fetch(`${otherUrl}/admin/cutover/status`, { headers: { authorization: `Bearer ${TOKENS.alice}` } });
      expect(alice.status).toBe(401);
      expect((await fetch(`${otherUrl}/cutover/status`)).status).toBe(404);
    } finally {
      await other.close();
    }
    expect(() => addCutoverRoutes(createRouter(), { controller: admin.controller, tokens: { short: 'too-short' } })).toThrow(/tokens.short/);
    expect(() => addCutoverRoutes(createRouter(), { controller: admin.controller, tokens: {} })).toThrow(/tokens/);
  });

  it('answers 503 CUTOVER_ERR_DATABASE_UNAVAILABLE, without detail, when MySQL refuses', async () => {
    await t.db.raw(`REVOKE SELECT, INSERT, UPDATE ON ??.?? FROM 'proxy'@'%'`, [t.name, 'cutover_features']);
    try {
      const res = await api('POST', '/cutover/scheduling/rollback');
      expect(res.status).toBe(503);
      expect(res.body.code).toBe('CUTOVER_ERR_DATABASE_UNAVAILABLE');
      expect(res.body.message).toMatch(/check the status before retrying; see the service log for request [\w-]+$/);
      expect(await row('scheduling')).toMatchObject({ step: 1 }); // the rollback did not happen
      expect(res.body.message).not.toMatch(/denied|cutover_features/);
    } finally {
      await t.db.raw(`GRANT SELECT, INSERT, UPDATE ON ??.?? TO 'proxy'@'%'`, [t.name, 'cutover_features']);
    }
    expect((await api('GET', '/cutover/status')).status).toBe(200);
  });
});
