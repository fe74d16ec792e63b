import { hostname } from 'node:os';
import { Counter, Gauge, type Registry } from 'prom-client';
import { LEGACY_ROUTING, type Routing } from '../../lib/cutover/types.ts';
import { invalidOption, StranglerError } from '../../lib/errors.ts';
import { silentLogger, type Logger } from '../../lib/logger.ts';
import { cutoverError } from './errors.ts';
import { captureBaseline, createScraper, evaluateStep, type Baseline, type FetchLike, type GateReading, type Scraper, type ServiceMap } from './gates.ts';
import type { FeatureEffects, StepChange } from './effects.ts';
import { currentStep, planMismatch as mismatch, stepElapsedSeconds, toStatus, type FeatureStatus } from './feature-status.ts';
import { planFeature, modeSatisfies, planServices, resolveAnalysis, stepRouting, type CutoverPlan, type PlanFeature, type PlanStep, type ResolvedAnalysis } from './plan.ts';
import { errorReading, type GateProviders } from './providers.ts';
import { createRecentWindows } from './recent-window.ts';
import type { Webhooks } from './webhooks.ts';
import { readShadowSummaries, type ShadowSummary } from './shadow-summary.ts';
import type { CutoverStateStore, FeatureRecord, HistoryAction, HistoryEntry, HistoryInput } from './state-store.ts';

/**
 * The cutover controller: the verbs behind `strangler cutover` and the soak
 * watcher. Every change goes through the store's optimistic `version`, so
 * any number of replicas can run a controller (and a watcher): the first
 * to commit wins, the others get CUTOVER_ERR_CONFLICT (and the watcher just
 * moves on), never a double change.
 */

export type { FeatureStatus } from './feature-status.ts';

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
  /** The analysis interval of steps whose plan sets none (`analysis.interval_seconds` wins). Default: the plan's default, 10 s. */
  watchIntervalMs?: number;
  /** Per-scrape timeout. Default 2000 ms. */
  scrapeTimeoutMs?: number;
  /**
   * Failing analysis runs in a row before acting, for steps whose plan sets no `analysis.failure_threshold`,
   * so one blip of a gauge does not undo a step. Default 2.
   */
  rollbackAfterFailures?: number;
  /** Who the watcher acts as in the history. Default `soak-watcher@<host>:<pid>`. */
  watcherActor?: string;
  registry?: Registry;
  fetch?: FetchLike;
  /** Side effects of features' steps (proxy/cutover/effects.ts): lockdown's REVOKE and its rollback's GRANT. */
  effects?: FeatureEffects;
  /**
   * What `strangler cutover status` shows beside the features' effects, by name: the outbox's parked rows
   * (cloud/outbox-status.ts), say. Errors are reported, not thrown.
   */
  reports?: Record<string, () => Promise<unknown>>;
  /** Providers of the gates that are not scraped (prometheus, web, invariant, budget): proxy/cutover/providers.ts. */
  providers?: GateProviders;
  /** The plan's webhooks: confirm before a step is entered, notify after every change. */
  webhooks?: Webhooks;
}

/** One analysis run of a feature's current step (CutoverController.check). */
export interface CheckResult {
  feature: keyof CutoverPlan['features'];
  record: FeatureRecord;
  step: PlanStep;
  soaked: boolean;
  readings: GateReading[];
  /** fail: a gate failed; pass: every gate passed; no-data: none failed but some had no data or could not be read. */
  outcome: 'pass' | 'fail' | 'no-data';
  /** The failing streak after this run (0 after a pass; kept through no-data). */
  failures: number;
  /** What the run did: nothing, a rollback (`change`), or an alert (policy `after_soak: alert`). */
  action: 'none' | 'rollback' | 'alert';
  change?: ChangeResult;
}

export interface CutoverController {
  readonly plan: CutoverPlan;
  status(): Promise<FeatureStatus[]>;
  statusOf(feature: string): Promise<FeatureStatus>;
  /** Checks the current step's gates over its soak window, then moves to the next step. */
  /** `overridePreflight`: go on although the step's effect's preflight refuses (recorded in the history). */
  advance(feature: string, actor: string, reason?: string | null, options?: { expectedVersion?: number; overridePreflight?: boolean }): Promise<ChangeResult>;
  /** Immediate and never gated: to legacy (step 0) or one step back. */
  rollback(feature: string, options: { to?: RollbackTarget; actor: string; reason?: string | null; expectedVersion?: number }): Promise<ChangeResult>;
  pause(feature: string, actor: string, reason?: string | null): Promise<ChangeResult>;
  resume(feature: string, actor: string, reason?: string | null): Promise<ChangeResult>;
  history(query?: { feature?: string; limit?: number; beforeId?: number }): Promise<HistoryEntry[]>;
  /** Appends a decision that changed no state (the autopilot's run-started, promote, drift…) to the history. */
  record(feature: string, entry: HistoryInput): Promise<number>;
  /** The current step's gate readings now (no state change; a missing baseline is taken). */
  evaluate(feature: string): Promise<GateReading[]>;
  /** One analysis run of the feature's current step (null at legacy, paused, or off the plan); acts on a failing streak. */
  check(feature: string, options: { failuresBefore: number; autopilot: boolean; soakOnly?: boolean }): Promise<CheckResult | null>;
  /** The analysis settings (interval, passes, threshold, on_failure, after_soak) of a step of the feature. */
  analysisOf(feature: keyof CutoverPlan['features'], step: PlanStep | undefined): ResolvedAnalysis;
  /** One pass of the soak watcher over every feature (check with this process's failing streaks); resolves when done. */
  watchOnce(): Promise<void>;
  /** Services the plan's gates read that the services map lacks. */
  missingServices(): string[];
  /** Shadow agreement reported by the new side of features that judge it themselves (`scheduling`: Scheduler V2). */
  shadow(): Promise<Partial<Record<string, ShadowSummary>>>;
  /** What each feature's side effect holds now (lockdown: who holds which grants on events), and the reports; errors are reported, not thrown. */
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
  const metrics = options.registry ? createMetrics(options.registry, store) : undefined;

  function featurePlan(feature: string): { name: keyof CutoverPlan['features']; spec: PlanFeature } {
    const spec = planFeature(plan, feature);
    if (!spec) {
      const known = Object.keys(plan.features).join(', ');
      throw cutoverError('CUTOVER_ERR_UNKNOWN_FEATURE', `no feature ${JSON.stringify(feature)} in the cutover plan; the plan's features are ${known}`);
    }
    return { name: feature, spec };
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
    options.webhooks?.notify({ event: opts.action, feature: name, from_step: record.step, to_step: to, step_name: target.stepName, actor: opts.actor, reason: opts.reason, ...(opts.readings ? { readings: opts.readings } : {}) });
    backfillBaseline(name, spec, next);
    return result(name, true, opts.action, opts.readings ?? [], historyId);
  }

  /** Runs the step's effect; its note (what its preflight saw) for the history. A 4xx from it is a refusal: recorded and passed on as is. */
  async function applyEffect(change: StepChange, refused?: (why: string) => Promise<void>): Promise<string | undefined> {
    const effect = options.effects?.[change.feature];
    if (!effect) return undefined;
    try {
      return (await effect.apply(change))?.note;
    } catch (err) {
      if (err instanceof StranglerError && err.status >= 400 && err.status < 500) {
        await refused?.(err.message);
        throw err;
      }
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
    options.webhooks?.notify({ event: action, feature: name, from_step: record.step, to_step: record.step, step_name: record.stepName, actor, reason });
    return result(name, true, action, [], historyId);
  }

  const recent = createRecentWindows(scraper);

  /** The effects' gates (lockdown-drift): judged at every advance of every feature, whatever its step's gates. */
  async function standingReadings(): Promise<GateReading[]> {
    const out: GateReading[] = [];
    for (const [feature, effect] of Object.entries(options.effects ?? {})) {
      if (!effect?.gate) continue;
      try {
        const reading = await effect.gate();
        if (reading) out.push(reading);
      } catch (err) {
        out.push(errorReading({ gate: `${feature}-effect`, kind: 'invariant', service: 'database', threshold: {} }, err));
      }
    }
    return out;
  }

  async function evaluateCurrent(name: keyof CutoverPlan['features'], step: PlanStep, record: FeatureRecord): Promise<GateReading[]> {
    const full = await evaluateStep(step, record.baseline, scraper, options.providers);
    let readings = full.readings;
    if (Object.keys(full.newBaselines).length > 0) {
      await store.setBaseline(name, record.version, { ...(record.baseline ?? {}), ...full.newBaselines } satisfies Baseline);
    }
    // The whole step's window keeps counting samples (a parity gate's min_samples fills up); when it
    // does not pass, the last soak alone may: every gate passing there lets a recovered step go on.
    const recentStart = readings.some((r) => r.verdict !== 'pass') ? recent.start(name, step, record) : undefined;
    if (recentStart) {
      const lastSoak = await evaluateStep(step, recentStart, scraper, options.providers);
      if (lastSoak.readings.every((r) => r.verdict === 'pass')) readings = lastSoak.readings;
    }
    for (const r of readings) metrics?.gateChecks.inc({ feature: name, verdict: r.verdict });
    return readings;
  }

  /** The analysis settings of a feature's current step; the admin's watcher period and rollbackAfterFailures are the defaults a plan may override. */
  function analysisOf(name: keyof CutoverPlan['features'], step: PlanStep | undefined): ResolvedAnalysis {
    const defaults = { ...(options.watchIntervalMs !== undefined ? { interval_seconds: watchIntervalMs / 1000 } : {}), ...(options.rollbackAfterFailures !== undefined ? { failure_threshold: rollbackAfterFailures } : {}) };
    return resolveAnalysis({ ...plan, analysis: { ...defaults, ...plan.analysis } }, name, step);
  }

  /**
   * One analysis run of a feature's current step: judges its gates (the whole step, or its last
   * soak once soaked), counts the failing streak, and acts when it reaches the threshold — during
   * the soak (or under the autopilot) by rolling back as `on_failure` says, after it by `after_soak`
   * (alert, or roll back). "No data" and "error" never act.
   */
  async function check(feature: string, opts: { failuresBefore: number; autopilot: boolean; soakOnly?: boolean }): Promise<CheckResult | null> {
    const { name, spec } = featurePlan(feature);
    const { now, record } = await store.get(name);
    const step = currentStep(spec, record);
    if (record.paused || !step || mismatch(spec, record)) return null;
    const soaked = stepElapsedSeconds(record, now) >= step.soak_seconds;
    if (soaked) await recent.remember(name, step, record);
    // The soak watcher's pass: a soaked step stands; its window keeps sliding for a late advance.
    if (soaked && opts.soakOnly) return null;
    const readings = await evaluateCurrent(name, step, record);
    const outcome = readings.some((r) => r.verdict === 'fail') ? 'fail' : readings.every((r) => r.verdict === 'pass') ? 'pass' : 'no-data';
    const failures = outcome === 'fail' ? opts.failuresBefore + 1 : outcome === 'pass' ? 0 : opts.failuresBefore;
    const analysis = analysisOf(name, step);
    const base: CheckResult = { feature: name, record, step, soaked, readings, outcome, failures, action: 'none' };
    if (outcome !== 'fail') return base;
    const failed = readings.filter((r) => r.verdict === 'fail');
    const what = failed.map((r) => `${r.gate} failed: ${r.message}`).join('; ');
    if (failures === 1) options.webhooks?.notify({ event: 'gate-failure', feature: name, from_step: record.step, to_step: record.step, step_name: record.stepName, actor: watcherActor, reason: what, readings });
    if (failures < analysis.failure_threshold) {
      logger.warn({ feature: name, step: record.stepName, failed: failed.map((r) => r.message), failures }, `gate failing (${failures} of ${analysis.failure_threshold} checks in a row before acting)`);
      return base;
    }
    const when = soaked ? (opts.autopilot ? 'under the autopilot, after the soak' : 'after the soak') : 'during the soak';
    const checks = analysis.failure_threshold > 1 ? `, ${analysis.failure_threshold} checks in a row` : '';
    const reason = `gate ${what} (${when} of step ${record.step} ${record.stepName}${checks})`;
    if (soaked && !opts.autopilot && analysis.after_soak === 'alert') {
      // Once per failing streak: the next alert needs a pass in between.
      if (failures > analysis.failure_threshold) return base;
      await store.record(name, { action: 'alert', actor: watcherActor, reason, readings, fromStep: record.step, toStep: record.step });
      metrics?.changes.inc({ feature: name, action: 'alert' });
      logger.warn({ feature: name, step: record.stepName, reason }, 'cutover alert: a gate fails after the soak (policy alert)');
      return { ...base, action: 'alert' };
    }
    try {
      const change = await rollbackTo(name, { to: analysis.on_failure, actor: watcherActor, reason, expectedVersion: record.version, action: 'auto-rollback', readings });
      return { ...base, failures: 0, action: 'rollback', change };
    } catch (err) {
      // Another replica (or an operator) changed the feature first: nothing left to do.
      if ((err as { code?: string }).code === 'CUTOVER_ERR_CONFLICT') return base;
      throw err;
    }
  }

  /** The soak watcher's in-memory failing streaks (feature → the version it failed at and how many in a row). */
  const strikes = new Map<string, { version: number; count: number }>();

  async function watchOnce(): Promise<void> {
    const { records } = await store.list();
    await Promise.all(
      records.map(async (record) => {
        if (!plan.features[record.feature]) return;
        try {
          if (record.paused || record.step === 0) return;
          const prior = strikes.get(record.feature);
          const result = await check(record.feature, { failuresBefore: prior?.version === record.version ? prior.count : 0, autopilot: false, soakOnly: true });
          if (result && result.action !== 'rollback') strikes.set(record.feature, { version: record.version, count: result.failures });
          else strikes.delete(record.feature);
        } catch (err) {
          logger.error({ err, feature: record.feature }, 'soak watcher failed for a feature');
        }
      }),
    );
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
      }
      // The effects' gates too (lockdown-drift): a server that is not what the cutover state says is no state to move on from.
      readings = [...readings, ...(await standingReadings())];
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
      if (options.webhooks) {
        try {
          await options.webhooks.confirm({ feature: name, from_step: record.step, to_step: target.step, step_name: target.stepName, actor, reason, readings });
        } catch (err) {
          await store.record(name, { action: 'advance-blocked', actor, reason: (err as Error).message, readings, fromStep: record.step, toStep: record.step });
          metrics?.changes.inc({ feature: name, action: 'advance-blocked' });
          throw err;
        }
      }
      const note = await applyEffect(
        { feature: name, fromStep: record.step, toStep: target.step, fromMode: record.mode, toMode: target.routing.mode, actor, ...(opts.overridePreflight ? { overridePreflight: true } : {}) },
        async (why) => {
          await store.record(name, { action: 'advance-refused', actor, reason: `${why}${reason ? ` — ${reason}` : ''}`, readings, fromStep: record.step, toStep: record.step });
          metrics?.changes.inc({ feature: name, action: 'advance-refused' });
        },
      );
      // The next step's window starts now: its baseline is taken before the switch so the window covers all of it.
      const baseline = await captureBaseline(nextStep, scraper);
      // The note first: the history keeps 512 characters, and an override must stay in them.
      const recorded = note === undefined ? reason : `${note}${reason ? ` — ${reason}` : ''}`;
      const { historyId } = await store.change({
        feature: name,
        expectedVersion: record.version,
        set: { step: target, restartSoak: true, baseline: Object.keys(baseline).length > 0 ? baseline : null },
        history: { action: 'advance', actor, reason: recorded, readings, fromStep: record.step, toStep: target.step },
      });
      metrics?.changes.inc({ feature: name, action: 'advance' });
      logger.info({ feature: name, from: record.step, to: target.step, step: target.stepName, actor, reason }, 'cutover advance');
      options.webhooks?.notify({ event: 'advance', feature: name, from_step: record.step, to_step: target.step, step_name: target.stepName, actor, reason, readings });
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

    async record(feature, entry) {
      const { name } = featurePlan(feature);
      metrics?.changes.inc({ feature: name, action: entry.action });
      return store.record(name, entry);
    },
    async history(query = {}) {
      if (query.feature !== undefined) featurePlan(query.feature);
      return store.history(query);
    },

    async evaluate(feature) {
      const { name, spec } = featurePlan(feature);
      const { record } = await store.get(name);
      const step = currentStep(spec, record);
      return [...(step ? await evaluateCurrent(name, step, record) : []), ...(await standingReadings())];
    },

    check,
    analysisOf,
    watchOnce,
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
      for (const [name, report] of Object.entries(options.reports ?? {})) out[name] = await report().catch((err: Error) => ({ error: err.message }));
      return out;
    },
  };
}

function createMetrics(registry: Registry, store: CutoverStateStore) {
  const changes = new Counter({
    name: 'cutover_changes_total',
    help: 'Cutover decisions made by this process, by feature and action (advance, advance-refused, advance-blocked, rollback, auto-rollback, pause, resume, alert).',
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
