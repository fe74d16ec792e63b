import { hostname } from 'node:os';
import { Counter, Gauge, type Registry } from 'prom-client';
import { LEGACY_ROUTING, type Routing } from '../../lib/cutover/types.ts';
import { invalidOption } from '../../lib/errors.ts';
import { silentLogger, type Logger } from '../../lib/logger.ts';
import { cutoverError } from './errors.ts';
import { captureBaseline, createScraper, evaluateStep, windowedServices, type Baseline, type FetchLike, type GateReading, type Scraper, type ServiceMap } from './gates.ts';
import type { FeatureEffects, StepChange } from './effects.ts';
import { planFeature, modeSatisfies, planServices, stepRouting, type CutoverPlan, type PlanFeature, type PlanStep } from './plan.ts';
import { readShadowSummaries, type ShadowSummary } from './shadow-summary.ts';
import type { CutoverStateStore, FeatureRecord, HistoryAction, HistoryEntry } from './state-store.ts';

/**
 * The cutover controller: the verbs behind `strangler cutover` and the soak
 * watcher. Every change goes through the store's optimistic `version`, so
 * any number of replicas can run a controller (and a watcher): the first
 * to commit wins, the others get CUTOVER_ERR_CONFLICT (and the watcher just
 * moves on), never a double change.
 */

export interface FeatureStatus {
  feature: string;
  step: number;
  /** Number of plan steps (the legacy step 0 not counted). */
  steps: number;
  step_name: string;
  mode: Routing['mode'];
  percent: number;
  regions: string[] | null;
  paused: boolean;
  version: number;
  step_started_at: string;
  updated_at: string;
  soak_seconds: number;
  soak_elapsed_seconds: number;
  soak_remaining_seconds: number;
  next_step: string | null;
  last_change: Pick<HistoryEntry, 'action' | 'actor' | 'at' | 'reason' | 'from_step' | 'to_step'> | null;
  /** Set when the stored step does not match the plan (the plan file changed under a running cutover). */
  plan_mismatch?: string;
}

export interface ChangeResult {
  /** false when the verb had nothing to do (pause of a paused feature, rollback at legacy). */
  changed: boolean;
  action: HistoryAction | null;
  status: FeatureStatus;
  readings: GateReading[];
  history_id: number | null;
}

export type RollbackTarget = 'legacy' | 'previous';

export interface CutoverControllerOptions {
  store: CutoverStateStore;
  plan: CutoverPlan;
  /** service name → its /metrics base URL(s); the plan's gates name the services. */
  services: ServiceMap;
  logger?: Logger;
  /** Soak watcher period. Default 3000 ms. */
  watchIntervalMs?: number;
  /** Per-scrape timeout. Default 2000 ms. */
  scrapeTimeoutMs?: number;
  /**
   * Consecutive failing watcher checks (of the same step) before the watcher rolls back, so one
   * blip of a gauge does not undo a step. Default 2 (with the default period: within about 6 s).
   */
  rollbackAfterFailures?: number;
  /** Who the watcher acts as in the history. Default `soak-watcher@<host>:<pid>`. */
  watcherActor?: string;
  registry?: Registry;
  fetch?: FetchLike;
  /** Side effects of features' steps (proxy/cutover/effects.ts): lockdown's REVOKE and its rollback's GRANT. */
  effects?: FeatureEffects;
}

export interface CutoverController {
  readonly plan: CutoverPlan;
  status(): Promise<FeatureStatus[]>;
  statusOf(feature: string): Promise<FeatureStatus>;
  /** Checks the current step's gates over its soak window, then moves to the next step. */
  advance(feature: string, actor: string, reason?: string | null, options?: { expectedVersion?: number }): Promise<ChangeResult>;
  /** Immediate and never gated: to legacy (step 0) or one step back. */
  rollback(feature: string, options: { to?: RollbackTarget; actor: string; reason?: string | null; expectedVersion?: number }): Promise<ChangeResult>;
  pause(feature: string, actor: string, reason?: string | null): Promise<ChangeResult>;
  resume(feature: string, actor: string, reason?: string | null): Promise<ChangeResult>;
  history(query?: { feature?: string; limit?: number; beforeId?: number }): Promise<HistoryEntry[]>;
  /** The current step's gate readings now (no state change; a missing baseline is taken). */
  evaluate(feature: string): Promise<GateReading[]>;
  /** One pass of the soak watcher over every feature; resolves when done. */
  watchOnce(): Promise<void>;
  startWatcher(): void;
  stopWatcher(): Promise<void>;
  /** Services the plan's gates read that the services map lacks. */
  missingServices(): string[];
  /** Shadow agreement reported by the new side of features that judge it themselves (`scheduling`: Scheduler V2). */
  shadow(): Promise<Partial<Record<string, ShadowSummary>>>;
  /** What each feature's side effect holds now (lockdown: who holds which grants on events); errors are reported, not thrown. */
  effects(): Promise<Record<string, unknown>>;
}

export function createCutoverController(options: CutoverControllerOptions): CutoverController {
  const { store, plan } = options;
  const logger = (options.logger ?? silentLogger()).child({ component: 'cutover' });
  const scraper: Scraper = createScraper(options.services, { timeoutMs: options.scrapeTimeoutMs ?? 2000, ...(options.fetch ? { fetch: options.fetch } : {}) });
  const watchIntervalMs = options.watchIntervalMs ?? 3000;
  const watcherActor = options.watcherActor ?? `soak-watcher@${hostname()}:${process.pid}`;
  const rollbackAfterFailures = options.rollbackAfterFailures ?? 2;
  if (!Number.isInteger(rollbackAfterFailures) || rollbackAfterFailures < 1) throw invalidOption('rollbackAfterFailures', rollbackAfterFailures, 'an integer >= 1');
  if (!Number.isFinite(watchIntervalMs) || watchIntervalMs < 50) throw invalidOption('watchIntervalMs', watchIntervalMs, 'at least 50 (ms)');
  /** feature → the version it failed at and how many checks in a row. */
  const strikes = new Map<string, { version: number; count: number }>();
  const metrics = options.registry ? createMetrics(options.registry, store) : undefined;

  function featurePlan(feature: string): { name: keyof CutoverPlan['features']; spec: PlanFeature } {
    const spec = planFeature(plan, feature);
    if (!spec) {
      const known = Object.keys(plan.features).join(', ');
      throw cutoverError('CUTOVER_ERR_UNKNOWN_FEATURE', `no feature ${JSON.stringify(feature)} in the cutover plan; the plan's features are ${known}`);
    }
    return { name: feature, spec };
  }

  /** The plan step a record is on (undefined for legacy, or past the plan's end). */
  function currentStep(spec: PlanFeature, record: FeatureRecord): PlanStep | undefined {
    return record.step >= 1 ? spec.steps[record.step - 1] : undefined;
  }

  function mismatch(spec: PlanFeature, record: FeatureRecord): string | undefined {
    if (record.step > spec.steps.length) return `stored step ${record.step} (${record.stepName}) is beyond the plan's ${spec.steps.length} steps`;
    const step = currentStep(spec, record);
    if (step && step.name !== record.stepName) return `stored step ${record.step} is "${record.stepName}" but the plan's step ${record.step} is "${step.name}"`;
    return undefined;
  }

  function toStatus(spec: PlanFeature, record: FeatureRecord, now: Date, last: HistoryEntry | undefined): FeatureStatus {
    const step = currentStep(spec, record);
    const soak = step?.soak_seconds ?? 0;
    const elapsed = Math.max(0, (now.getTime() - Date.parse(record.stepStartedAt)) / 1000);
    const problem = mismatch(spec, record);
    return {
      feature: record.feature,
      step: record.step,
      steps: spec.steps.length,
      step_name: record.stepName,
      mode: record.mode,
      percent: record.percent,
      regions: record.regions,
      paused: record.paused,
      version: record.version,
      step_started_at: record.stepStartedAt,
      updated_at: record.updatedAt,
      soak_seconds: soak,
      soak_elapsed_seconds: Math.floor(elapsed),
      soak_remaining_seconds: Math.max(0, Math.ceil(soak - elapsed)),
      next_step: spec.steps[record.step]?.name ?? null,
      last_change: last
        ? { action: last.action, actor: last.actor, at: last.at, reason: last.reason, from_step: last.from_step, to_step: last.to_step }
        : null,
      ...(problem ? { plan_mismatch: problem } : {}),
    };
  }

  async function statusOf(feature: string): Promise<FeatureStatus> {
    const { name, spec } = featurePlan(feature);
    const [{ now, record }, last] = await Promise.all([store.get(name), store.lastChanges()]);
    return toStatus(spec, record, now, last.get(name));
  }

  async function result(feature: string, changed: boolean, action: HistoryAction | null, readings: GateReading[], historyId: number | null): Promise<ChangeResult> {
    return { changed, action, status: await statusOf(feature), readings, history_id: historyId };
  }

  function stepTarget(spec: PlanFeature, step: number): { step: number; stepName: string; routing: Routing } {
    if (step === 0) return { step: 0, stepName: 'legacy', routing: { ...LEGACY_ROUTING } };
    const s = spec.steps[step - 1]!;
    return { step, stepName: s.name, routing: stepRouting(s) };
  }

  /** Takes the baseline of a step entered without one (a rollback), after the fact, if the row is still there. */
  function backfillBaseline(feature: keyof CutoverPlan['features'], spec: PlanFeature, record: FeatureRecord): void {
    const step = currentStep(spec, record);
    if (!step || step.gates.length === 0) return;
    void captureBaseline(step, scraper)
      .then((baseline) => (Object.keys(baseline).length > 0 ? store.setBaseline(feature, record.version, baseline) : false))
      .catch((err: unknown) => logger.warn({ err, feature }, 'could not store the gate baseline; the watcher will retry'));
  }

  async function rollbackTo(
    feature: string,
    opts: { to: RollbackTarget; actor: string; reason: string | null; expectedVersion?: number; action: 'rollback' | 'auto-rollback'; readings: GateReading[] | null },
  ): Promise<ChangeResult> {
    const { name, spec } = featurePlan(feature);
    const { record } = await store.get(name);
    if (opts.expectedVersion !== undefined && opts.expectedVersion !== record.version) {
      throw cutoverError('CUTOVER_ERR_CONFLICT', `${name} is at version ${record.version}, not ${opts.expectedVersion}; check the status and retry`, { version: record.version });
    }
    if (record.step === 0) return result(name, false, null, [], null);
    // Past the plan's end (the plan shrank): one step back is the plan's last step.
    const to = opts.to === 'legacy' ? 0 : Math.min(record.step - 1, spec.steps.length);
    const target = stepTarget(spec, to);
    // Features whose current step requires this one above where it is going go back to legacy first:
    // lockdown's grants come back before any writer returns to the events table.
    const { records } = await store.list();
    for (const other of records) {
      if (other.feature === name || other.step === 0) continue;
      const otherStep = plan.features[other.feature]?.steps[other.step - 1];
      const required = otherStep?.requires?.[name];
      if (required && !modeSatisfies(target.routing.mode, required)) {
        await rollbackTo(other.feature, {
          to: 'legacy',
          actor: opts.actor,
          reason: `${name} is going back to ${target.stepName}, below the ${required} that ${other.feature}'s step ${otherStep!.name} requires`,
          action: opts.action,
          readings: null,
        });
      }
    }
    await applyEffect({ feature: name, fromStep: record.step, toStep: to, fromMode: record.mode, toMode: target.routing.mode, actor: opts.actor });
    const { record: next, historyId } = await store.change({
      feature: name,
      expectedVersion: record.version,
      set: { step: target, restartSoak: true, baseline: null },
      history: { action: opts.action, actor: opts.actor, reason: opts.reason, readings: opts.readings, fromStep: record.step, toStep: to },
    });
    metrics?.changes.inc({ feature: name, action: opts.action });
    logger.warn({ feature: name, from: record.step, to, actor: opts.actor, action: opts.action, reason: opts.reason }, `cutover ${opts.action}`);
    backfillBaseline(name, spec, next);
    return result(name, true, opts.action, opts.readings ?? [], historyId);
  }

  async function applyEffect(change: StepChange): Promise<void> {
    const effect = options.effects?.[change.feature];
    if (!effect) return;
    try {
      await effect.apply(change);
    } catch (err) {
      logger.error({ err, ...change }, 'the step\'s side effect failed; the state is unchanged');
      throw cutoverError(
        'CUTOVER_ERR_EFFECT_FAILED',
        `${change.feature} step ${change.fromStep} → ${change.toStep}: its side effect failed (${(err as Error).message}); the state is unchanged, fix the cause and run the same verb again`,
        { feature: change.feature },
        err,
      );
    }
  }

  async function setPaused(feature: string, paused: boolean, actor: string, reason: string | null): Promise<ChangeResult> {
    const { name } = featurePlan(feature);
    const { record } = await store.get(name);
    if (record.paused === paused) return result(name, false, null, [], null);
    const action = paused ? 'pause' : 'resume';
    const { historyId } = await store.change({
      feature: name,
      expectedVersion: record.version,
      set: { paused },
      history: { action, actor, reason, fromStep: record.step, toStep: record.step },
    });
    metrics?.changes.inc({ feature: name, action });
    logger.info({ feature: name, actor, reason }, `cutover ${action}`);
    return result(name, true, action, [], historyId);
  }

  /**
   * Counter snapshots the watcher takes of a soaked step (by feature, for one version of its row),
   * so that a late advance may also be judged on the last soak_seconds alone: an outage long past
   * (a router killed and back) would otherwise block the step until someone rolled it back, since
   * the step's window keeps its failures for good. Kept in memory: a replica without them judges
   * from the step's start only.
   */
  const recent = new Map<string, { version: number; snapshots: Baseline[] }>();

  async function rememberWindow(name: string, step: PlanStep, record: FeatureRecord): Promise<void> {
    if (!windowedServices(step).length) return;
    const snapshot = await captureBaseline(step, scraper);
    if (Object.keys(snapshot).length === 0) return;
    const entry = recent.get(name);
    const snapshots = entry?.version === record.version ? entry.snapshots : [];
    snapshots.push(snapshot);
    // Snapshot times are this process's clock (scrape.at), so the cutoff is too. Keep the newest
    // snapshot that is already a soak old (the recent window's start) and every newer one.
    const cutoff = Date.now() - step.soak_seconds * 1000;
    const oldEnough = snapshots.filter((b) => Object.values(b).every((v) => Date.parse(v.at) <= cutoff)).length;
    recent.set(name, { version: record.version, snapshots: snapshots.slice(Math.max(0, oldEnough - 1)) });
  }

  /** The start of the last soak: the step's baseline moved up to the newest snapshot at least a soak old, or undefined if none is. */
  function recentWindow(name: string, step: PlanStep, record: FeatureRecord): Baseline | undefined {
    const entry = recent.get(name);
    if (!record.baseline || entry?.version !== record.version) return undefined;
    const cutoff = Date.now() - step.soak_seconds * 1000;
    const out: Baseline = { ...record.baseline };
    let moved = false;
    for (const snap of entry.snapshots) {
      for (const [service, b] of Object.entries(snap)) {
        const current = out[service];
        if (current && Date.parse(b.at) <= cutoff && Date.parse(b.at) > Date.parse(current.at)) {
          out[service] = b;
          moved = true;
        }
      }
    }
    return moved ? out : undefined;
  }

  async function evaluateCurrent(name: keyof CutoverPlan['features'], step: PlanStep, record: FeatureRecord): Promise<GateReading[]> {
    const full = await evaluateStep(step, record.baseline, scraper);
    let readings = full.readings;
    if (Object.keys(full.newBaselines).length > 0) {
      await store.setBaseline(name, record.version, { ...(record.baseline ?? {}), ...full.newBaselines } satisfies Baseline);
    }
    // The whole step's window keeps counting samples (a parity gate's min_samples fills up); when it
    // does not pass, the last soak alone may: every gate passing there lets a recovered step go on.
    const recentStart = readings.some((r) => r.verdict !== 'pass') ? recentWindow(name, step, record) : undefined;
    if (recentStart) {
      const lastSoak = await evaluateStep(step, recentStart, scraper);
      if (lastSoak.readings.every((r) => r.verdict === 'pass')) readings = lastSoak.readings;
    }
    for (const r of readings) metrics?.gateChecks.inc({ feature: name, verdict: r.verdict });
    return readings;
  }

  async function watchFeature(name: keyof CutoverPlan['features'], spec: PlanFeature, record: FeatureRecord, now: Date): Promise<void> {
    if (record.paused || record.step === 0) return;
    const step = currentStep(spec, record);
    if (!step || step.gates.length === 0 || mismatch(spec, record)) return;
    const elapsed = (now.getTime() - Date.parse(record.stepStartedAt)) / 1000;
    // Soaked: the step stands until someone advances or rolls back; its window slides from here on.
    if (elapsed >= step.soak_seconds) return rememberWindow(name, step, record);
    const readings = await evaluateCurrent(name, step, record);
    const failed = readings.filter((r) => r.verdict === 'fail');
    if (failed.length === 0) {
      strikes.delete(name);
      return;
    }
    const prior = strikes.get(name);
    const count = prior?.version === record.version ? prior.count + 1 : 1;
    strikes.set(name, { version: record.version, count });
    if (count < rollbackAfterFailures) {
      logger.warn({ feature: name, step: record.stepName, failed: failed.map((r) => r.message), count }, 'gate failing during soak; rolling back if it fails again');
      return;
    }
    strikes.delete(name);
    const checks = rollbackAfterFailures > 1 ? `, ${rollbackAfterFailures} checks in a row` : '';
    const reason = `gate ${failed.map((r) => `${r.gate} failed: ${r.message}`).join('; ')} (during the soak of step ${record.step} ${record.stepName}${checks})`;
    try {
      await rollbackTo(name, { to: 'previous', actor: watcherActor, reason, expectedVersion: record.version, action: 'auto-rollback', readings });
    } catch (err) {
      // Another replica's watcher (or an operator) changed the feature first: nothing left to do.
      if ((err as { code?: string }).code === 'CUTOVER_ERR_CONFLICT') return;
      throw err;
    }
  }

  let watchTimer: NodeJS.Timeout | undefined;
  let watching = false;
  let watchRun: Promise<void> | undefined;

  async function watchOnce(): Promise<void> {
    const { now, records } = await store.list();
    await Promise.all(
      records.map(async (record) => {
        const spec = plan.features[record.feature];
        if (!spec) return;
        try {
          await watchFeature(record.feature, spec, record, now);
        } catch (err) {
          logger.error({ err, feature: record.feature }, 'soak watcher failed for a feature');
        }
      }),
    );
  }

  function scheduleWatch(): void {
    if (!watching) return;
    watchTimer = setTimeout(() => {
      watchRun = watchOnce()
        .catch((err: unknown) => logger.warn({ err }, 'soak watcher pass failed'))
        .finally(() => {
          watchRun = undefined;
          scheduleWatch();
        });
    }, watchIntervalMs);
    watchTimer.unref();
  }

  return {
    plan,
    statusOf,
    async status() {
      const [{ now, records }, last] = await Promise.all([store.list(), store.lastChanges()]);
      return records.flatMap((record) => {
        const spec = plan.features[record.feature];
        return spec ? [toStatus(spec, record, now, last.get(record.feature))] : [];
      });
    },

    async advance(feature, actor, reason = null, opts = {}) {
      const { name, spec } = featurePlan(feature);
      const { now, record } = await store.get(name);
      if (opts.expectedVersion !== undefined && opts.expectedVersion !== record.version) {
        throw cutoverError('CUTOVER_ERR_CONFLICT', `${name} is at version ${record.version}, not ${opts.expectedVersion}; check the status and retry`, { version: record.version });
      }
      if (record.paused) throw cutoverError('CUTOVER_ERR_PAUSED', `${name} is paused; resume it before advancing`);
      const problem = mismatch(spec, record);
      if (problem) throw cutoverError('CUTOVER_ERR_PLAN_MISMATCH', `${name}: ${problem}; roll back or fix the plan`);
      if (record.step >= spec.steps.length) {
        throw cutoverError('CUTOVER_ERR_LAST_STEP', `${name} is already at its last step (${record.step}/${spec.steps.length} ${record.stepName})`);
      }
      const step = currentStep(spec, record);
      let readings: GateReading[] = [];
      if (step) {
        const elapsed = (now.getTime() - Date.parse(record.stepStartedAt)) / 1000;
        if (elapsed < step.soak_seconds) {
          const remaining = Math.ceil(step.soak_seconds - elapsed);
          throw cutoverError(
            'CUTOVER_ERR_SOAKING',
            `${name} step ${record.step} (${record.stepName}) has soaked ${Math.floor(elapsed)}s of ${step.soak_seconds}s; advance again in ${remaining}s`,
            { remaining_seconds: remaining },
          );
        }
        readings = await evaluateCurrent(name, step, record);
        const blocking = readings.filter((r) => r.verdict !== 'pass');
        if (blocking.length > 0) {
          // Refusals are audited too (who tried, and what the gates said); the state is untouched.
          await store.record(name, { action: 'advance-refused', actor, reason, readings, fromStep: record.step, toStep: record.step });
          metrics?.changes.inc({ feature: name, action: 'advance-refused' });
          throw cutoverError(
            'CUTOVER_ERR_GATE_FAILED',
            `${name} cannot leave step ${record.step} (${record.stepName}): ${blocking.map((r) => `${r.gate} ${r.verdict}: ${r.message}`).join('; ')}`,
            { readings, feature: name, step: record.step },
          );
        }
      }
      const target = stepTarget(spec, record.step + 1);
      const nextStep = spec.steps[record.step]!;
      if (nextStep.requires) {
        const { records } = await store.list();
        const unmet = Object.entries(nextStep.requires).flatMap(([other, required]) => {
          const mode = records.find((r) => r.feature === other)?.mode ?? 'legacy';
          return modeSatisfies(mode, required) ? [] : [{ feature: other, mode, required }];
        });
        if (unmet.length > 0) {
          const why = unmet.map((u) => `${u.feature} is ${u.mode}, needs ${u.required}`).join('; ');
          await store.record(name, { action: 'advance-refused', actor, reason: `${reason ?? ''}${reason ? ' — ' : ''}requirement: ${why}`, readings, fromStep: record.step, toStep: record.step });
          metrics?.changes.inc({ feature: name, action: 'advance-refused' });
          throw cutoverError('CUTOVER_ERR_REQUIREMENT', `${name} cannot enter step ${target.step} (${target.stepName}): ${why}; advance those first`, { unmet, feature: name, step: record.step });
        }
      }
      await applyEffect({ feature: name, fromStep: record.step, toStep: target.step, fromMode: record.mode, toMode: target.routing.mode, actor });
      // The next step's window starts now: its baseline is taken before the switch so the window covers all of it.
      const baseline = await captureBaseline(nextStep, scraper);
      const { historyId } = await store.change({
        feature: name,
        expectedVersion: record.version,
        set: { step: target, restartSoak: true, baseline: Object.keys(baseline).length > 0 ? baseline : null },
        history: { action: 'advance', actor, reason, readings, fromStep: record.step, toStep: target.step },
      });
      metrics?.changes.inc({ feature: name, action: 'advance' });
      logger.info({ feature: name, from: record.step, to: target.step, step: target.stepName, actor, reason }, 'cutover advance');
      return result(name, true, 'advance', readings, historyId);
    },

    rollback(feature, opts) {
      return rollbackTo(feature, {
        to: opts.to ?? 'legacy',
        actor: opts.actor,
        reason: opts.reason ?? null,
        action: 'rollback',
        readings: null,
        ...(opts.expectedVersion !== undefined ? { expectedVersion: opts.expectedVersion } : {}),
      });
    },
    pause: (feature, actor, reason = null) => setPaused(feature, true, actor, reason),
    resume: (feature, actor, reason = null) => setPaused(feature, false, actor, reason),

    async history(query = {}) {
      if (query.feature !== undefined) featurePlan(query.feature);
      return store.history(query);
    },

    async evaluate(feature) {
      const { name, spec } = featurePlan(feature);
      const { record } = await store.get(name);
      const step = currentStep(spec, record);
      return step ? evaluateCurrent(name, step, record) : [];
    },

    watchOnce,
    startWatcher() {
      if (watching) return;
      watching = true;
      scheduleWatch();
    },
    async stopWatcher() {
      watching = false;
      clearTimeout(watchTimer);
      watchTimer = undefined;
      await watchRun;
    },
    missingServices() {
      return planServices(plan).filter((s) => !scraper.configured(s));
    },
    shadow: () => readShadowSummaries(scraper),
    async effects() {
      const out: Record<string, unknown> = {};
      for (const [feature, effect] of Object.entries(options.effects ?? {})) {
        if (!effect?.describe) continue;
        out[feature] = await effect.describe().catch((err: Error) => ({ error: err.message }));
      }
      return out;
    },
  };
}

function createMetrics(registry: Registry, store: CutoverStateStore) {
  const changes = new Counter({
    name: 'cutover_changes_total',
    help: 'Cutover changes made by this process, by feature and action (advance, advance-refused, rollback, auto-rollback, pause, resume).',
    labelNames: ['feature', 'action'],
    registers: [registry],
  });
  const gateChecks = new Counter({
    name: 'cutover_gate_checks_total',
    help: 'Gate readings taken by this process, by feature and verdict.',
    labelNames: ['feature', 'verdict'],
    registers: [registry],
  });
  new Gauge({
    name: 'cutover_feature_step',
    help: 'The step each feature is on (0 = legacy), read from MySQL at scrape time.',
    labelNames: ['feature', 'step_name', 'mode'],
    registers: [registry],
    async collect() {
      this.reset();
      try {
        const { records } = await store.list();
        for (const r of records) this.set({ feature: r.feature, step_name: r.stepName, mode: r.mode }, r.step);
      } catch {
        // a scrape must not fail because MySQL blinked
      }
    },
  });
  return { changes, gateChecks };
}
