import { Gauge, Registry } from 'prom-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Knex } from 'knex';
import { createKnex } from '../../../lib/db/knex.ts';
import { StranglerError } from '../../../lib/errors.ts';
import { createCutoverController, type CutoverController } from '../../../proxy/cutover/controller.ts';
import type { FeatureEffects, StepChange } from '../../../proxy/cutover/effects.ts';
import type { GateReading } from '../../../proxy/cutover/gates.ts';
import { validatePlan } from '../../../proxy/cutover/plan.ts';
import { createCutoverStateStore } from '../../../proxy/cutover/state-store.ts';
import { createWebhooks } from '../../../proxy/cutover/webhooks.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';
import { recordingLogger } from '../../helpers/logs.ts';
import { metricValue, startUpstream, type TestUpstream } from '../../helpers/upstream.ts';

/**
 * The controller's verbs on their own (proxy/cutover/controller.ts), against the real state store and a real
 * /metrics upstream: what each refusal says and records, what it counts in cutover_changes_total, what an
 * effect's note and standing gate do to an advance, and what the soak watcher leaves alone.
 */
describe('the cutover controller', () => {
  let t: TestDatabase;
  let db: Knex;
  let upstream: TestUpstream;
  const source = new Registry();
  const backlog = new Gauge({ name: 'router_pending_events', help: 'test', registers: [source] });
  let confirmStatus = 200;

  const plan = validatePlan({
    version: 1,
    webhooks: [
      { name: 'freeze', type: 'confirm', url: 'http://127.0.0.1:1/confirm', features: ['scheduling'], timeout_ms: 500, retries: 0 },
      { name: 'ops', type: 'notify', url: 'http://127.0.0.1:1/notify', events: ['auto-rollback', 'rollback'], retries: 0 },
    ],
    features: {
      'event-delivery': {
        analysis: { failure_threshold: 1, after_soak: 'alert', on_failure: 'legacy' },
        steps: [
          { name: 'nyc1', mode: 'canary', regions: ['nyc1'], soak_seconds: 30, gates: [{ name: 'backlog', kind: 'gauge', service: 'router', metric: 'router_pending_events', max: 10 }] },
          { name: 'all', mode: 'full', soak_seconds: 0, gates: [{ name: 'backlog', kind: 'gauge', service: 'router', metric: 'router_pending_events', max: 10 }] },
        ],
      },
      'event-writes': { steps: [{ name: 'full', mode: 'full', soak_seconds: 0, gates: [] }] },
      scheduling: {
        steps: [{ name: 'full', mode: 'full', soak_seconds: 0, gates: [], requires: { 'event-delivery': 'full', 'event-writes': 'full' } }],
      },
    },
  });

  beforeAll(async () => {
    t = await createTestDatabase('cutover_controller');
    db = createKnex(t.service('proxy'), { poolMax: 4 });
    upstream = await startUpstream('router', async (req, res) => {
      if (req.url === '/metrics') {
        res.writeHead(200, { 'content-type': source.contentType }).end(await source.metrics());
        return true;
      }
      if (req.url === '/notify') {
        res.writeHead(200).end('ok');
        return true;
      }
      if (req.url === '/confirm') {
        res.writeHead(confirmStatus, { 'content-type': 'text/plain' }).end(confirmStatus === 200 ? 'ok' : 'change freeze');
        return true;
      }
      return false;
    });
  });
  afterAll(async () => {
    await upstream?.close();
    await db?.destroy();
    await t?.drop();
  });
  beforeEach(async () => {
    backlog.set(0);
    confirmStatus = 200;
    await t.db('cutover_history').delete();
    await t.db('cutover_features').update({ step: 0, step_name: 'legacy', mode: 'legacy', percent: 0, regions: null, paused: false, baseline: null });
  });

  function controller(extra: { effects?: FeatureEffects; watchIntervalMs?: number; rollbackAfterFailures?: number } = {}) {
    const registry = new Registry();
    const logs = recordingLogger('info');
    const hooks = plan.webhooks!.map((h) => ({ ...h, url: `${upstream.url}/${h.type}` }));
    const c: CutoverController = createCutoverController({
      store: createCutoverStateStore({ db, features: Object.keys(plan.features) }),
      plan,
      services: { router: upstream.url },
      logger: logs.logger,
      registry,
      watcherActor: 'watcher@test',
      webhooks: createWebhooks({ hooks, backoffMs: 10 }),
      ...extra,
    });
    const changes = async (feature: string, action: string) => metricValue(await registry.metrics(), 'cutover_changes_total', { feature, action }) ?? 0;
    return { c, registry, logs, changes };
  }
  /** Puts the features scheduling requires at full, as the controller would have left them. */
  const requirementsMet = async () => {
    await t.db('cutover_features').where({ feature: 'event-delivery' }).update({ step: 2, step_name: 'all', mode: 'full', percent: 100 });
    await t.db('cutover_features').where({ feature: 'event-writes' }).update({ step: 1, step_name: 'full', mode: 'full', percent: 100 });
  };
  const history = async (feature: string) => (await t.db('cutover_history').where({ feature }).orderBy('id').select('action', 'actor', 'reason', 'from_step', 'to_step')) as Array<Record<string, unknown>>;
  const refusal = async (p: Promise<unknown>) => {
    const err = (await p.then(() => undefined, (e: unknown) => e)) as StranglerError & { details?: Record<string, unknown> };
    expect(err, 'expected a refusal').toBeInstanceOf(StranglerError);
    return err;
  };

  it('refusals name the feature, the step and what to do: soaking (with the seconds left), paused, last step; each change is counted', async () => {
    const { c, changes } = controller();
    const stale = await refusal(c.advance('event-delivery', 'alice', 'go', { expectedVersion: 99 }));
    expect(stale.code).toBe('CUTOVER_ERR_CONFLICT');
    expect(stale.message).toMatch(/^event-delivery is at version \d+, not 99; check the status and retry$/);
    const version = Number(/at version (\d+)/.exec(stale.message)![1]);
    expect(stale).toMatchObject({ details: { version } });
    expect((await c.advance('event-delivery', 'alice', 'go', { expectedVersion: version })).changed).toBe(true);
    const staleRollback = await refusal(c.rollback('event-delivery', { actor: 'alice', expectedVersion: version }));
    expect([staleRollback.code, staleRollback.message]).toEqual(['CUTOVER_ERR_CONFLICT', `event-delivery is at version ${version + 1}, not ${version}; check the status and retry`]);
    expect(staleRollback).toMatchObject({ details: { version: version + 1 } });
    const soaking = await refusal(c.advance('event-delivery', 'alice'));
    expect(soaking.code).toBe('CUTOVER_ERR_SOAKING');
    expect(soaking.message).toMatch(/^event-delivery step 1 \(nyc1\) has soaked [01]s of 30s; advance again in (29|30)s$/);
    const remaining = Number(/in (\d+)s$/.exec(soaking.message)![1]);
    expect(soaking).toMatchObject({ details: { remaining_seconds: remaining } });

    await c.pause('event-delivery', 'alice', 'incident');
    expect((await c.pause('event-delivery', 'alice', 'again')).changed).toBe(false);
    const paused = await refusal(c.advance('event-delivery', 'alice'));
    expect([paused.code, paused.message]).toEqual(['CUTOVER_ERR_PAUSED', 'event-delivery is paused; resume it before advancing']);
    await c.resume('event-delivery', 'alice', null);

    // Past the soak (the row's start moved back), with the gate passing: the last step, then nothing further.
    await t.db('cutover_features').where({ feature: 'event-delivery' }).update({ step_started_at: t.db.raw('NOW(3) - INTERVAL 1 MINUTE') });
    await c.advance('event-delivery', 'alice');
    const last = await refusal(c.advance('event-delivery', 'alice'));
    expect([last.code, last.message]).toEqual(['CUTOVER_ERR_LAST_STEP', 'event-delivery is already at its last step (2/2 all)']);
    expect(await changes('event-delivery', 'advance')).toBe(2);
    expect(await changes('event-delivery', 'pause')).toBe(1);
    expect(await changes('event-delivery', 'resume')).toBe(1);
    expect((await history('event-delivery')).map((h) => h.action)).toEqual(['advance', 'pause', 'resume', 'advance']);

    // A plan edited under a running cutover: the stored step no longer is the plan's.
    await t.db('cutover_features').where({ feature: 'event-delivery' }).update({ step: 1, step_name: 'nyc1-old' });
    const mismatch = await refusal(c.advance('event-delivery', 'alice'));
    expect([mismatch.code, mismatch.message]).toEqual([
      'CUTOVER_ERR_PLAN_MISMATCH',
      'event-delivery: stored step 1 is "nyc1-old" but the plan\'s step 1 is "nyc1"; roll back or fix the plan',
    ]);
  });

  it('a step that requires another feature is refused until it is there: said, recorded with the reason, counted', async () => {
    const { c, changes } = controller();
    const refused = await refusal(c.advance('scheduling', 'bob', 'ready'));
    expect(refused.code).toBe('CUTOVER_ERR_REQUIREMENT');
    expect(refused.message).toBe('scheduling cannot enter step 1 (full): event-delivery is legacy, needs full; event-writes is legacy, needs full; advance those first');
    await t.db('cutover_features').where({ feature: 'event-writes' }).update({ step: 1, step_name: 'full', mode: 'full', percent: 100 });
    await refusal(c.advance('scheduling', 'bob'));
    expect(await history('scheduling')).toEqual([
      { action: 'advance-refused', actor: 'bob', reason: 'ready — requirement: event-delivery is legacy, needs full; event-writes is legacy, needs full', from_step: 0, to_step: 0 },
      { action: 'advance-refused', actor: 'bob', reason: 'requirement: event-delivery is legacy, needs full', from_step: 0, to_step: 0 },
    ]);
    expect(await changes('scheduling', 'advance-refused')).toBe(2);
    await requirementsMet();
    expect((await c.advance('scheduling', 'bob')).changed).toBe(true);
  });

  it('a confirm hook that says no blocks the step: recorded and counted as advance-blocked', async () => {
    const { c, changes } = controller();
    await requirementsMet();
    confirmStatus = 503;
    const blocked = await refusal(c.advance('scheduling', 'carol', 'now'));
    expect(blocked.code).toBe('CUTOVER_ERR_CONFIRM_BLOCKED');
    expect(await history('scheduling')).toEqual([expect.objectContaining({ action: 'advance-blocked', actor: 'carol', from_step: 0, to_step: 0 })]);
    expect(await changes('scheduling', 'advance-blocked')).toBe(1);
    expect(await changes('scheduling', 'advance')).toBe(0);
  });

  it("an effect's note goes first in the history's reason; its standing gate blocks every feature's advance, and so does a gate that cannot be read", async () => {
    let drift: GateReading | undefined;
    let unreadable = false;
    const seen: StepChange[] = [];
    const effects: FeatureEffects = {
      scheduling: {
        async apply(change) {
          seen.push(change);
          return { note: 'preflight: 2 users still read events (overridden)' };
        },
        async gate() {
          if (unreadable) throw new Error('information_schema is not readable');
          return drift;
        },
      },
    };
    const { c } = controller({ effects });
    await requirementsMet();
    await c.advance('scheduling', 'dave', 'window', { overridePreflight: true });
    await c.rollback('scheduling', { actor: 'dave', to: 'legacy' });
    await c.advance('scheduling', 'dave');
    expect((await history('scheduling')).filter((h) => h.action === 'advance').map((h) => h.reason)).toEqual([
      'preflight: 2 users still read events (overridden) — window',
      'preflight: 2 users still read events (overridden)',
    ]);
    expect(seen.map((s) => [s.fromStep, s.toStep, s.overridePreflight ?? false])).toEqual([[0, 1, true], [1, 0, false], [0, 1, false]]);

    // The effect's gate is judged at every advance of every feature, whatever that step's own gates say.
    await c.rollback('event-delivery', { actor: 'dave', to: 'previous' });
    await t.db('cutover_features').where({ feature: 'event-delivery' }).update({ step_started_at: t.db.raw('NOW(3) - INTERVAL 1 MINUTE') });
    drift = { gate: 'lockdown-drift', kind: 'invariant', service: 'database', verdict: 'fail', value: 1, threshold: { max: 0 }, message: '1 grant outside the policy' };
    const failing = await refusal(c.advance('event-delivery', 'dave'));
    expect([failing.code, failing.message]).toEqual(['CUTOVER_ERR_GATE_FAILED', 'event-delivery cannot leave step 1 (nyc1): lockdown-drift fail: 1 grant outside the policy']);
    drift = undefined;
    unreadable = true;
    const error = await refusal(c.advance('event-delivery', 'dave'));
    expect(error.message).toMatch(/^event-delivery cannot leave step 1 \(nyc1\): scheduling-effect error: .*information_schema is not readable/);
    unreadable = false;
    expect((await c.advance('event-delivery', 'dave')).changed).toBe(true);
  });

  it("an effect that refuses (4xx) is recorded as a refusal and passed on as is; one that fails otherwise leaves the state and says so", async () => {
    let failure: Error = new StranglerError('HARPOON_ERR_LOCKDOWN_PREFLIGHT', 'cloud still reads events', { status: 409 });
    const effects: FeatureEffects = {
      scheduling: {
        async apply() {
          throw failure;
        },
      },
    };
    const { c, logs } = controller({ effects });
    await requirementsMet();
    const refused = await refusal(c.advance('scheduling', 'frank', 'tonight'));
    expect(refused).toBe(failure);
    expect(await history('scheduling')).toEqual([{ action: 'advance-refused', actor: 'frank', reason: 'cloud still reads events — tonight', from_step: 0, to_step: 0 }]);
    failure = new Error('connection reset');
    const failed = await refusal(c.advance('scheduling', 'frank'));
    expect(failed.code).toBe('CUTOVER_ERR_EFFECT_FAILED');
    expect(failed.message).toBe('scheduling step 0 → 1: its side effect failed (connection reset); the state is unchanged, fix the cause and run the same verb again');
    expect(failed).toMatchObject({ details: { feature: 'scheduling' }, cause: failure });
    expect(logs.records().find((r) => r.level === 50)).toMatchObject({ msg: "the step's side effect failed; the state is unchanged", feature: 'scheduling', fromStep: 0, toStep: 1 });
    expect((await history('scheduling')).map((h) => h.action)).toEqual(['advance-refused']);
    expect(await c.statusOf('scheduling')).toMatchObject({ step: 0 });
  });

  it('the analysis defaults come from the options where the plan sets none', () => {
    const { c } = controller({ watchIntervalMs: 2500, rollbackAfterFailures: 4 });
    const step = plan.features.scheduling!.steps[0]!;
    expect(c.analysisOf('scheduling', step)).toMatchObject({ interval_seconds: 2.5, failure_threshold: 4 });
    // The plan's own analysis wins over the options.
    expect(c.analysisOf('event-delivery', plan.features['event-delivery']!.steps[0]!)).toMatchObject({ interval_seconds: 2.5, failure_threshold: 1 });
    expect(controller().c.analysisOf('scheduling', step)).toMatchObject({ interval_seconds: 10, failure_threshold: 2 });
  });

  it('the soak watcher leaves a soaked step to the autopilot and a paused one alone, and fails on nothing', async () => {
    const { c, logs } = controller();
    await c.advance('event-delivery', 'erin');
    backlog.set(50);
    // Paused during its soak: the failing gate is not acted on.
    await c.pause('event-delivery', 'erin', null);
    await c.watchOnce();
    expect((await history('event-delivery')).map((h) => h.action)).toEqual(['advance', 'pause']);
    await c.resume('event-delivery', 'erin', null);
    // Soaked: the watcher's pass does not judge it (no alert, no rollback), and logs no error.
    await t.db('cutover_features').where({ feature: 'event-delivery' }).update({ step_started_at: t.db.raw('NOW(3) - INTERVAL 1 MINUTE') });
    await c.watchOnce();
    await c.watchOnce();
    expect((await history('event-delivery')).map((h) => h.action)).toEqual(['advance', 'pause', 'resume']);
    expect(logs.records().filter((r) => r.level >= 50)).toEqual([]);
    // Inside the soak it acts: failure_threshold 1, on_failure legacy.
    await t.db('cutover_features').where({ feature: 'event-delivery' }).update({ step_started_at: t.db.raw('NOW(3)') });
    await c.watchOnce();
    const rows = await history('event-delivery');
    expect(rows.at(-1)).toMatchObject({ action: 'auto-rollback', actor: 'watcher@test', from_step: 1, to_step: 0 });
    expect(String(rows.at(-1)!.reason)).toMatch(/^gate backlog failed: .* \(during the soak of step 1 nyc1\)$/);
    // The notify hook is told, with the readings the decision was made on.
    let told: Record<string, unknown> | undefined;
    for (let i = 0; i < 100 && !told; i++) {
      const hit = upstream.requests.find((r) => r.url === '/notify' && r.body.includes('"auto-rollback"'));
      if (hit) told = JSON.parse(hit.body) as Record<string, unknown>;
      else await new Promise((r) => setTimeout(r, 20));
    }
    expect(told).toMatchObject({ event: 'auto-rollback', feature: 'event-delivery', from_step: 1, to_step: 0, step_name: 'legacy', actor: 'watcher@test' });
    expect(told!.readings).toEqual([expect.objectContaining({ gate: 'backlog', verdict: 'fail', value: 50 })]);
  });
});
