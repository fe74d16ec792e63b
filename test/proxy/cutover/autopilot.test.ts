import { Counter, Gauge, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCutoverAdmin, type CutoverAdmin } from '../../../proxy/cutover/admin.ts';
import type { AutopilotView } from '../../../proxy/cutover/autopilot-view.ts';
import { validatePlan, type CutoverPlan, type Gate } from '../../../proxy/cutover/plan.ts';
import { runCli } from '../../helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';
import { startUpstream, waitFor, type TestUpstream } from '../../helpers/upstream.ts';

const TOKEN = 'autopilot-token-0123456789abcdef';
const VIEWER = 'autopilot-viewer-0123456789abcdef';

const backlogGate: Gate = { name: 'backlog', kind: 'gauge', service: 'svc', metric: 'pending_events', aggregate: 'max', max: 100 };
const errorsGate: Gate = { name: 'errors', kind: 'gauge', service: 'svc', metric: 'errors_now', max: 0 };
const readsGate: Gate = { name: 'reads-broken', kind: 'gauge', service: 'svc', metric: 'reads_broken', max: 0 };
/** Never enough requests: always "no data". */
const quietGate: Gate = { name: 'writes', kind: 'error_rate', service: 'svc', errors: "writes_total{status='5xx'}", total: 'writes_total', max: 0.01, min_samples: 1000 };

const PLAN: CutoverPlan = validatePlan({
  version: 1,
  analysis: { interval_seconds: 0.2, passes: 2, failure_threshold: 2 },
  features: {
    'event-delivery': {
      steps: [
        { name: 'canary', mode: 'canary', percent: 10, soak_seconds: 1, gates: [backlogGate] },
        { name: 'half', mode: 'canary', percent: 50, soak_seconds: 1, manual_judgement: true, gates: [backlogGate] },
        { name: 'all', mode: 'full', soak_seconds: 1, gates: [backlogGate] },
      ],
    },
    scheduling: {
      analysis: { on_failure: 'legacy' },
      steps: [
        { name: 'shadow', mode: 'shadow', soak_seconds: 0, gates: [errorsGate] },
        { name: 'nyc1', mode: 'canary', regions: ['nyc1'], soak_seconds: 0, manual_judgement: true, gates: [errorsGate] },
        { name: 'all', mode: 'full', soak_seconds: 0, gates: [errorsGate] },
      ],
    },
    'event-writes': { steps: [{ name: 'full', mode: 'full', soak_seconds: 0, gates: [quietGate] }] },
    'event-reads': {
      analysis: { after_soak: 'rollback' },
      steps: [
        { name: 'shadow', mode: 'shadow', soak_seconds: 0, gates: [readsGate] },
        { name: 'all', mode: 'full', soak_seconds: 0, gates: [readsGate] },
      ],
    },
  },
});

describe('the autopilot (strangler cutover run) in the admin', { timeout: 180_000 }, () => {
  let t: TestDatabase;
  let svc: TestUpstream;
  let admin: CutoverAdmin;
  let url: string;
  const registry = new Registry();
  const pending = new Gauge({ name: 'pending_events', help: 'p', registers: [registry] });
  const errorsNow = new Gauge({ name: 'errors_now', help: 'e', registers: [registry] });
  const readsBroken = new Gauge({ name: 'reads_broken', help: 'r', registers: [registry] });
  new Counter({ name: 'writes_total', help: 'w', labelNames: ['status'], registers: [registry] }).inc({ status: '200' }, 3);

  const startAdmin = () =>
    createCutoverAdmin({ db: t.service('proxy'), tokens: { operator: TOKEN, viewer: { token: VIEWER, scopes: ['read'] } }, services: { svc: svc.url }, plan: PLAN, watchIntervalMs: 200, autopilotTickMs: 100 });

  async function api<T = any>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as T };
  }
  const view = async (feature: string) => (await api<{ features: AutopilotView[] }>('GET', '/cutover/autopilot')).body.features.find((f) => f.feature === feature)!;
  const history = async (feature: string) => (await t.db('cutover_history').where({ feature }).orderBy('id')) as Array<Record<string, any>>;

  beforeAll(async () => {
    t = await createTestDatabase('autopilot');
    svc = await startUpstream('svc', async (req, res) => {
      if (req.url !== '/metrics') return false;
      res.writeHead(200, { 'content-type': registry.contentType });
      res.end(await registry.metrics());
      return true;
    });
    pending.set(3);
    errorsNow.set(0);
    readsBroken.set(0);
    admin = startAdmin();
    url = (await admin.start()).url;
  });

  afterAll(async () => {
    await admin?.close();
    await svc?.close();
    await t?.drop();
  });

  it('advances after N passing runs and the soak, stops at a manual-judgement step until promote, and audits every decision with its readings', async () => {
    // The CLI starts the run and follows it with JSON lines until the run is done.
    const cli = runCli(['cutover', 'run', 'event-delivery', '--json', '--url', url, '--token', TOKEN], { timeoutMs: 150_000 });
    await waitFor(async () => (await view('event-delivery')).run === 'waiting', 45_000, 'the run to wait at the manual-judgement step');
    const waiting = await view('event-delivery');
    expect(waiting).toMatchObject({ step: 2, step_name: 'half', manual_judgement: true, passes_needed: 2, failure_threshold: 2 });
    expect(waiting.passes).toBeGreaterThanOrEqual(2);
    expect(waiting.waiting).toMatch(/manual judgement: step half passed; run "strangler cutover promote event-delivery"/);
    await new Promise((r) => setTimeout(r, 600));
    expect((await view('event-delivery')).step).toBe(2); // it does not move by itself

    const promoted = await runCli(['cutover', 'promote', 'event-delivery', '--reason', 'looks good', '--url', url, '--token', TOKEN]);
    expect(promoted.code, promoted.stderr).toBe(0);
    const followed = await cli;
    expect(followed.code, followed.stderr).toBe(0);
    const lines = followed.stdout.trim().split('\n').map((l) => JSON.parse(l) as AutopilotView);
    expect(lines.some((l) => l.run === 'waiting' && l.step === 2)).toBe(true);
    expect(lines.at(-1)).toMatchObject({ run: 'done', step: 3, step_name: 'all' });

    const rows = await history('event-delivery');
    expect(rows.map((r) => r.action)).toEqual(['run-started', 'advance', 'advance', 'run-waiting', 'promote', 'advance', 'run-finished']);
    const advances = rows.filter((r) => r.action === 'advance');
    expect(advances.map((r) => [r.from_step, r.to_step])).toEqual([[0, 1], [1, 2], [2, 3]]);
    expect(advances[0]!.actor).toBe('autopilot:operator');
    expect(advances[1]!.reason).toMatch(/autopilot: \d+ passing analysis runs in a row after the soak of step 1 canary/);
    expect(JSON.parse(advances[1]!.readings)).toEqual([expect.objectContaining({ gate: 'backlog', verdict: 'pass', value: 3 })]);
    expect(rows.find((r) => r.action === 'promote')).toMatchObject({ actor: 'operator', reason: 'looks good' });
    expect(JSON.parse(rows.at(-1)!.readings)[0]).toMatchObject({ gate: 'backlog', verdict: 'pass' });

    // Every analysis run of each step is kept, with its verdict and readings.
    const runs = (await api<{ runs: Array<{ step: number; outcome: string; soaked: boolean; passes: number }> }>('GET', '/cutover/event-delivery/analysis')).body.runs;
    for (const step of [1, 2, 3]) {
      const ofStep = runs.filter((r) => r.step === step);
      expect(ofStep.length, `runs of step ${step}`).toBeGreaterThanOrEqual(2);
      expect(ofStep.every((r) => r.outcome === 'pass')).toBe(true);
      expect(ofStep.filter((r) => r.soaked).at(-1)!.passes).toBeGreaterThanOrEqual(2);
    }
    expect(await admin.controller.statusOf('event-delivery')).toMatchObject({ step: 3, mode: 'full' });
  });

  it('keeps analysing a step after its soak: a failure then alerts (policy alert) and leaves the step where it is', async () => {
    pending.set(500);
    await waitFor(async () => (await history('event-delivery')).some((r) => r.action === 'alert'), 45_000, 'an alert');
    const alert = (await history('event-delivery')).find((r) => r.action === 'alert')!;
    expect(alert.reason).toMatch(/gate backlog failed: max of 1 series = 500 > max 100 \(after the soak of step 3 all, 2 checks in a row\)/);
    await new Promise((r) => setTimeout(r, 800));
    expect((await history('event-delivery')).filter((r) => r.action === 'alert')).toHaveLength(1); // once per failing streak
    expect(await admin.controller.statusOf('event-delivery')).toMatchObject({ step: 3 });
    pending.set(3);
  });

  it('rolls back after the failure threshold, straight to legacy when on_failure says so, and ends the run', async () => {
    expect((await api('POST', '/cutover/scheduling/run', { reason: 'go' })).status).toBe(200);
    await waitFor(async () => (await view('scheduling')).run === 'waiting', 45_000, 'scheduling to wait at nyc1');
    errorsNow.set(2);
    await waitFor(async () => (await view('scheduling')).run === 'rolled-back', 45_000, 'the rollback');
    const v = await view('scheduling');
    expect(v).toMatchObject({ step: 0, step_name: 'legacy' });
    const rows = await history('scheduling');
    const rollback = rows.find((r) => r.action === 'auto-rollback')!;
    expect(rollback).toMatchObject({ from_step: 2, to_step: 0 });
    expect(rollback.reason).toMatch(/gate errors failed: sum of 1 series = 2 > max 0 \(under the autopilot, after the soak of step 2 nyc1, 2 checks in a row\)/);
    expect(JSON.parse(rollback.readings)).toEqual([expect.objectContaining({ gate: 'errors', verdict: 'fail', value: 2 })]);
    expect(rows.at(-1)).toMatchObject({ action: 'run-finished' });
    errorsNow.set(0);
    await new Promise((r) => setTimeout(r, 600));
    expect((await view('scheduling')).step).toBe(0); // a rolled-back run does not start again by itself
  });

  it('never advances and never rolls back on "no data": it counts the runs and says why it waits', async () => {
    expect((await api('POST', '/cutover/event-writes/run')).status).toBe(200);
    await waitFor(async () => (await view('event-writes')).no_data >= 4, 45_000, 'no-data runs');
    const v = await view('event-writes');
    expect(v).toMatchObject({ run: 'running', step: 1, passes: 0, failures: 0, last_outcome: 'no-data' });
    expect(v.waiting).toMatch(/0\/2 passing runs in a row; last run no-data: writes no-data/);
    expect(v.next_check_in_seconds).not.toBeNull();
    const stop = await runCli(['cutover', 'stop', 'event-writes', '--url', url, '--token', TOKEN]);
    expect(stop.code, stop.stderr).toBe(0);
    expect((await view('event-writes')).run).toBe('stopped');
    expect((await history('event-writes')).map((r) => r.action)).toEqual(['run-started', 'advance', 'run-stopped']);
    const again = await runCli(['cutover', 'promote', 'event-writes', '--url', url, '--token', TOKEN]);
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/CUTOVER_ERR_NOT_WAITING/);
  });

  it('rolls back after the soak under policy rollback, without any run', async () => {
    expect((await api('POST', '/cutover/event-reads/advance')).status).toBe(200);
    readsBroken.set(1);
    await waitFor(async () => (await admin.controller.statusOf('event-reads')).step === 0, 45_000, 'the after-soak rollback');
    const last = (await history('event-reads')).at(-1)!;
    expect(last).toMatchObject({ action: 'auto-rollback', from_step: 1, to_step: 0 });
    expect(last.reason).toMatch(/after the soak of step 1 shadow/);
    readsBroken.set(0);
  });

  it('needs the operate scope to run, promote or stop; a read token only watches', async () => {
    for (const verb of ['run', 'promote', 'stop']) {
      const res = await fetch(`${url}/cutover/event-reads/${verb}`, { method: 'POST', headers: { authorization: `Bearer ${VIEWER}` } });
      expect(res.status, verb).toBe(403);
      expect(((await res.json()) as { code: string }).code).toBe('CUTOVER_ERR_FORBIDDEN');
    }
    const all = await fetch(`${url}/cutover/run-all`, { method: 'POST', headers: { authorization: `Bearer ${VIEWER}` } });
    expect(all.status).toBe(403);
    const watch = await fetch(`${url}/cutover/autopilot`, { headers: { authorization: `Bearer ${VIEWER}` } });
    expect(watch.status).toBe(200);
    expect((await view('event-reads')).run).toBe('idle');
  });

  it('lives in MySQL: another admin (a restart) resumes a run where it stood', async () => {
    expect((await api('POST', '/cutover/scheduling/run')).status).toBe(200);
    await waitFor(async () => (await view('scheduling')).run === 'waiting', 45_000, 'scheduling waiting at nyc1');
    const before = await view('scheduling');
    await admin.close();
    admin = startAdmin();
    url = (await admin.start()).url;
    const after = await view('scheduling');
    expect(after).toMatchObject({ run: 'waiting', step: 2, run_actor: 'operator' });
    expect((await api('POST', '/cutover/scheduling/promote')).status).toBe(200);
    await waitFor(async () => (await view('scheduling')).run === 'done', 45_000, 'the resumed run to finish');
    expect((await view('scheduling')).owner).not.toBe(before.owner);
    expect(await admin.controller.statusOf('scheduling')).toMatchObject({ step: 3, mode: 'full' });
  });
});
