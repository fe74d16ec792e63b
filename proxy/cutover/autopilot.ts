import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Counter, type Registry } from 'prom-client';
import { invalidOption, StranglerError } from '../../lib/errors.ts';
import { silentLogger, type Logger } from '../../lib/logger.ts';
import type { AnalysisRun, AutopilotRecord, AutopilotStore, AutopilotUpdate, RunState } from './autopilot-store.ts';
import { autopilotView, type AutopilotView } from './autopilot-view.ts';
import type { CheckResult, CutoverController, FeatureStatus } from './controller.ts';
import { cutoverError } from './errors.ts';
import type { GateReading } from './gates.ts';
import { planFeature, type CutoverPlan } from './plan.ts';
import type { HistoryAction } from './state-store.ts';
import type { Webhooks } from './webhooks.ts';

/**
 * The analysis loop and the autopilot. Every interval of the current step
 * (the plan's `analysis.interval_seconds`), each non-legacy feature's gates
 * are judged (controller.check): during the soak a failing streak rolls the
 * step back; after it, by `after_soak` (alert, or roll back) — or, while an
 * autopilot run (`strangler cutover run`) moves the feature, by rolling
 * back as `on_failure` says. A run advances once the soak is over and the
 * gates passed `passes` runs in a row, and stops at a `manual_judgement`
 * step until `promote`. Its state and counters live in MySQL
 * (autopilot-store.ts) under a lease, so exactly one admin replica
 * analyses a feature and another (or a restart) takes over where it stood.
 */

export interface AutopilotOptions {
  controller: CutoverController;
  store: AutopilotStore;
  logger?: Logger;
  registry?: Registry;
  webhooks?: Webhooks;
  /** How often the loop looks for due analysis runs. Default 1000 ms (at most the shortest interval). */
  tickMs?: number;
  /** This replica's name in the leases. Default `admin@<host>:<pid>:<random>`. */
  owner?: string;
}

export interface Autopilot {
  start(): void;
  /** Stops the loop, waits for a pass in flight, and gives this replica's leases up. Idempotent. */
  close(): Promise<void>;
  /** One pass over every feature (what the loop runs each tick). */
  tick(): Promise<void>;
  /** Starts a run on the feature (idempotent while one is active). */
  run(feature: string, actor: string, options?: { all?: boolean; reason?: string | null }): Promise<AutopilotView>;
  /** Starts a run on the first feature of the plan not at its last step; each feature's end starts the next. */
  runAll(actor: string, reason?: string | null): Promise<AutopilotView[]>;
  /** Approves leaving the manual-judgement step the run waits at. */
  promote(feature: string, actor: string, reason?: string | null): Promise<AutopilotView>;
  stop(feature: string, actor: string, reason?: string | null): Promise<AutopilotView>;
  view(): Promise<AutopilotView[]>;
  runs(feature: string, options?: { sinceId?: number; limit?: number; fromVersion?: number }): Promise<AnalysisRun[]>;
}

const ACTIVE: readonly RunState[] = ['running', 'waiting'];
const isActive = (run: RunState) => ACTIVE.includes(run);
const RESET: AutopilotUpdate = { checks: 0, passes: 0, failures: 0, no_data: 0, last_outcome: null, readings: null, waiting: null };

export function createAutopilot(options: AutopilotOptions): Autopilot {
  const { controller, store } = options;
  const plan: CutoverPlan = controller.plan;
  const features = Object.keys(plan.features);
  const logger = (options.logger ?? silentLogger()).child({ component: 'autopilot' });
  const owner = options.owner ?? `admin@${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  const shortest = Math.min(...features.flatMap((f) => [undefined, ...(planFeature(plan, f)?.steps ?? [])].map((s) => controller.analysisOf(f, s).interval_seconds)));
  const tickMs = options.tickMs ?? Math.max(50, Math.min(1000, shortest * 1000));
  if (!Number.isFinite(tickMs) || tickMs < 10) throw invalidOption('tickMs', tickMs, 'at least 10 (ms)');
  // Long enough that a busy pass does not lose it, short enough that a dead replica's features move on.
  const leaseSeconds = Math.max(5, (3 * tickMs) / 1000);
  const analysisRuns = options.registry
    ? new Counter({ name: 'cutover_analysis_runs_total', help: 'Analysis runs of a step\'s gates by this process, by feature and outcome (pass, fail, no-data).', labelNames: ['feature', 'outcome'], registers: [options.registry] })
    : undefined;

  async function note(feature: string, status: FeatureStatus, action: HistoryAction, actor: string, reason: string | null, readings: GateReading[] | null = null): Promise<void> {
    await controller.record(feature, { action, actor, reason, readings, fromStep: status.step, toStep: status.step });
    const event = action as Parameters<Webhooks['notify']>[0]['event'];
    options.webhooks?.notify({ event, feature, from_step: status.step, to_step: status.step, step_name: status.step_name, actor, reason, ...(readings ? { readings } : {}) });
  }

  const runActor = (auto: AutopilotRecord) => `autopilot:${auto.run_actor ?? 'unknown'}`.slice(0, 128);

  async function startNext(after: string, actor: string): Promise<void> {
    const statuses = await controller.status();
    for (const f of features.slice(features.indexOf(after) + 1)) {
      const s = statuses.find((x) => x.feature === f);
      if (s && s.step < s.steps) {
        await run(f, actor, { all: true, reason: `run --all: ${after} is done` });
        return;
      }
    }
  }

  async function advance(feature: string, auto: AutopilotRecord, status: FeatureStatus, now: Date): Promise<void> {
    const reason = status.step === 0 ? 'autopilot: leaving legacy' : `autopilot: ${auto.passes} passing analysis runs in a row after the soak of step ${status.step} ${status.step_name}`;
    try {
      const r = await controller.advance(feature, runActor(auto), reason, { expectedVersion: status.version });
      await store.update(feature, { ...RESET, run: 'running', approved_version: null, feature_version: r.status.version, next_check_at: now.toISOString() });
    } catch (err) {
      const code = err instanceof StranglerError ? err.code : '';
      if (code === 'CUTOVER_ERR_CONFLICT') return;
      // A step's effect may refuse too (lockdown's preflight): a refusal, not a failure of the autopilot.
      const known = ['CUTOVER_ERR_CONFIRM_BLOCKED', 'CUTOVER_ERR_GATE_FAILED', 'CUTOVER_ERR_REQUIREMENT', 'CUTOVER_ERR_SOAKING', 'CUTOVER_ERR_EFFECT_FAILED', 'CUTOVER_ERR_PAUSED', 'HARPOON_ERR_LOCKDOWN_PREFLIGHT'].includes(code);
      if (!known) logger.error({ err, feature }, 'autopilot advance failed');
      // The passes stand: the next analysis run tries again.
      await store.update(feature, { waiting: `advance refused (${code || 'error'}): ${(err as Error).message}` });
    }
  }

  /** Reacts to a change the loop did not make (an operator's advance or rollback, another tool). */
  async function drift(feature: string, auto: AutopilotRecord, status: FeatureStatus): Promise<void> {
    await store.update(feature, { ...RESET, feature_version: status.version, next_check_at: null });
    if (!isActive(auto.run)) return;
    const by = status.last_change ? `${status.last_change.action} by ${status.last_change.actor}` : 'a change';
    const back = status.last_change?.action === 'rollback' || status.last_change?.action === 'auto-rollback';
    await note(feature, status, 'drift', runActor(auto), `${by} while the autopilot ran (version ${auto.feature_version} → ${status.version})${back ? '; the run stops' : ''}`);
    // A rollback by someone else means "not now": moving forward again would fight them.
    if (back) await store.update(feature, { run: 'stopped', run_all: false, waiting: `stopped: ${by}` });
  }

  async function record(feature: string, auto: AutopilotRecord, res: CheckResult, now: Date, intervalSeconds: number): Promise<AutopilotRecord> {
    const passes = res.outcome === 'pass' ? auto.passes + 1 : 0;
    const set: AutopilotUpdate = {
      checks: auto.checks + 1,
      passes,
      failures: res.failures,
      no_data: auto.no_data + (res.outcome === 'no-data' ? 1 : 0),
      last_outcome: res.outcome,
      last_check_at: now.toISOString(),
      next_check_at: new Date(now.getTime() + intervalSeconds * 1000).toISOString(),
      readings: res.readings,
    };
    analysisRuns?.inc({ feature, outcome: res.outcome });
    await store.recordRun({ feature, feature_version: res.record.version, step: res.record.step, step_name: res.record.stepName, outcome: res.outcome, soaked: res.soaked, passes, failures: res.failures, readings: res.readings });
    await store.update(feature, set);
    return { ...auto, ...set } as AutopilotRecord;
  }

  async function analyse(feature: string, auto: AutopilotRecord, now: Date): Promise<void> {
    const status = await controller.statusOf(feature);
    if (auto.feature_version !== status.version) return drift(feature, auto, status);
    const active = isActive(auto.run);
    if (status.paused) {
      if (active && auto.waiting !== 'paused') await store.update(feature, { waiting: 'paused' });
      return;
    }
    if (status.plan_mismatch) {
      if (active) await store.update(feature, { waiting: `plan mismatch: ${status.plan_mismatch}` });
      return;
    }
    if (status.step === 0) {
      if (auto.run === 'running') await advance(feature, auto, status, now);
      return;
    }
    if (auto.next_check_at && Date.parse(auto.next_check_at) > now.getTime()) return;
    const step = planFeature(plan, feature)!.steps[status.step - 1]!;
    const analysis = controller.analysisOf(feature, step);
    const res = await controller.check(feature, { failuresBefore: auto.failures, autopilot: active });
    if (!res) return;
    if (res.record.version !== status.version) return; // moved while we judged: the next pass sees it
    const after = await record(feature, auto, res, now, analysis.interval_seconds);
    if (res.action === 'rollback') {
      await store.update(feature, { ...RESET, feature_version: res.change!.status.version, next_check_at: null });
      if (active) {
        await store.update(feature, { run: 'rolled-back', run_all: false, waiting: `rolled back: ${res.change!.status.last_change?.reason ?? ''}` });
        await note(feature, res.change!.status, 'run-finished', runActor(auto), `the run ended with a rollback to step ${res.change!.status.step} ${res.change!.status.step_name}`, res.readings);
      }
      return;
    }
    if (!active) return;
    const why = res.outcome === 'pass' ? '' : `; last run ${res.outcome}: ${res.readings.filter((r) => r.verdict !== 'pass').map((r) => `${r.gate} ${r.verdict}`).join(', ')}`;
    if (!res.soaked) {
      const left = Math.max(0, Math.ceil(step.soak_seconds - (now.getTime() - Date.parse(status.step_started_at)) / 1000));
      await store.update(feature, { waiting: `soaking: ${left}s left; ${after.passes}/${analysis.passes} passes${why}` });
      return;
    }
    if (after.passes < analysis.passes) {
      await store.update(feature, { waiting: `${after.passes}/${analysis.passes} passing runs in a row${why}` });
      return;
    }
    if (status.step >= status.steps) {
      await store.update(feature, { run: 'done', waiting: null });
      await note(feature, status, 'run-finished', runActor(auto), `${feature} is at its last step ${status.step_name} and its gates passed ${after.passes} runs in a row`, res.readings);
      if (auto.run_all) await startNext(feature, auto.run_actor ?? 'autopilot');
      return;
    }
    if (step.manual_judgement && auto.approved_version !== status.version) {
      if (auto.run !== 'waiting') {
        await store.update(feature, { run: 'waiting', waiting: `manual judgement: step ${status.step_name} passed; run "strangler cutover promote ${feature}" to go on` });
        await note(feature, status, 'run-waiting', runActor(auto), `step ${status.step} ${status.step_name} is marked for manual judgement; its gates passed ${after.passes} runs in a row`, res.readings);
      }
      return;
    }
    await advance(feature, after, status, now);
  }

  let pass: Promise<void> | undefined;
  async function tick(): Promise<void> {
    const { now, records } = await store.list();
    await Promise.all(
      records.map(async (auto) => {
        try {
          const held = auto.owner === owner && auto.lease_until !== null && Date.parse(auto.lease_until) - now.getTime() > (leaseSeconds * 1000) / 2;
          if (!held && !(await store.lease(auto.feature, owner, leaseSeconds))) return;
          await analyse(auto.feature, auto, now);
        } catch (err) {
          logger.error({ err, feature: auto.feature }, 'analysis failed for a feature');
        }
      }),
    );
  }

  async function viewOf(feature: string): Promise<AutopilotView> {
    const [auto, status, { now }] = await Promise.all([store.get(feature), controller.statusOf(feature), store.list()]);
    return autopilotView(controller, auto, status, now);
  }

  async function run(feature: string, actor: string, opts: { all?: boolean; reason?: string | null } = {}): Promise<AutopilotView> {
    const status = await controller.statusOf(feature); // 404 for an unknown feature
    const auto = await store.get(feature);
    if (isActive(auto.run)) return viewOf(feature);
    const { now } = await store.list();
    await store.update(feature, {
      ...RESET,
      run: 'running',
      run_all: opts.all ?? false,
      run_actor: actor,
      run_started_at: now.toISOString(),
      approved_version: null,
      feature_version: status.version,
      next_check_at: now.toISOString(),
    });
    await note(feature, status, 'run-started', actor, opts.reason ?? `autopilot run started at step ${status.step} ${status.step_name}${opts.all ? ' (run --all)' : ''}`);
    return viewOf(feature);
  }

  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let closing: Promise<void> | undefined;
  const schedule = () => {
    if (!running) return;
    timer = setTimeout(() => {
      pass = tick()
        .catch((err: unknown) => logger.warn({ err }, 'analysis pass failed'))
        .finally(() => {
          pass = undefined;
          schedule();
        });
    }, tickMs);
    timer.unref();
  };

  return {
    start() {
      if (running) return;
      running = true;
      schedule();
    },
    close() {
      closing ??= (async () => {
        running = false;
        clearTimeout(timer);
        await pass;
        await store.release(owner).catch((err: unknown) => logger.warn({ err }, 'could not release the autopilot leases'));
      })();
      return closing;
    },
    tick,
    run,
    async runAll(actor, reason = null) {
      const statuses = await controller.status();
      const first = statuses.find((s) => s.step < s.steps) ?? statuses.at(-1);
      if (first) await run(first.feature, actor, { all: true, reason: reason ?? 'run --all: features in plan order' });
      return this.view();
    },
    async promote(feature, actor, reason = null) {
      const status = await controller.statusOf(feature);
      const auto = await store.get(feature);
      if (!isActive(auto.run) || !status.manual_judgement) {
        throw cutoverError(
          'CUTOVER_ERR_NOT_WAITING',
          `${feature} has no autopilot run waiting for manual judgement (run: ${auto.run}, step ${status.step} ${status.step_name}${status.manual_judgement ? '' : ' is not marked for manual judgement'})`,
          { run: auto.run },
        );
      }
      const { now } = await store.list();
      await store.update(feature, { run: 'running', approved_version: status.version, next_check_at: now.toISOString(), waiting: 'promoted: advancing after the next passing analysis run' });
      await note(feature, status, 'promote', actor, reason ?? `approved leaving step ${status.step} ${status.step_name}`, auto.readings);
      return viewOf(feature);
    },
    async stop(feature, actor, reason = null) {
      const status = await controller.statusOf(feature);
      const auto = await store.get(feature);
      if (!isActive(auto.run)) throw cutoverError('CUTOVER_ERR_NO_RUN', `${feature} has no autopilot run to stop (run: ${auto.run})`, { run: auto.run });
      await store.update(feature, { run: 'stopped', run_all: false, waiting: `stopped by ${actor}` });
      await note(feature, status, 'run-stopped', actor, reason ?? 'stopped by hand; the feature stays where it is');
      return viewOf(feature);
    },
    async view() {
      const [{ now, records }, statuses] = await Promise.all([store.list(), controller.status()]);
      return records.flatMap((auto) => {
        const status = statuses.find((s) => s.feature === auto.feature);
        return status ? [autopilotView(controller, auto, status, now)] : [];
      });
    },
    runs: (feature, q = {}) => store.runs({ feature, ...q }),
  };
}
