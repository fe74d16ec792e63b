import type { Knex } from 'knex';
import { HOST_RESERVED } from '../domain/catalog.ts';
import { checkInvariants } from '../lib/invariants.ts';
import { StranglerError } from '../lib/errors.ts';
import type { CutoverController } from '../proxy/cutover/controller.ts';
import { loadDefaultPlan, stepRouting, validatePlan, type CutoverPlan, type Gate, type PlanStep } from '../proxy/cutover/plan.ts';
import type { SchedulerV2 } from '../scheduler/create-scheduler-v2.ts';
import type { ShadowStats } from '../scheduler/shadow.ts';
import { runThrough } from './advance-step.ts';
import type { Autopilot } from '../proxy/cutover/autopilot.ts';
import { eventRouterPlan } from './event-router-stage.ts';
import type { Progress } from './progress.ts';
import type { StageReport, StepAnalysis } from './report-types.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The default plan's scheduling gates, with the latency gate loosened.
 * Parity is the plan's (at most 10% differ, over at least 100 judgements;
 * three replicas each judge every V1 decision, so that is ~35 decisions):
 * since shadow mode rewinds its view to the moment V1 decided
 * (scheduler/rewind.ts) a run at 3,000 hypervisors in 2 regions agreed on
 * 97.2% of 316 judgements (90.5% before). Latency is not: the demo shares
 * two cores with the fleet, the routers, the proxy and MariaDB, and the
 * first placements after V2 takes a region over are slow (a claim-to-commit
 * p99 of 1,375 ms over the first 75 at load average 8–9; the plan's 0.5 s
 * passed only after 114 s of refusals, as the window grew).
 */
function demoGates(gates: readonly Gate[]): Gate[] {
  return [...gates.map((g) => (g.kind === 'latency' ? { ...g, max_seconds: 5, min_samples: 5 } : g)), ...INVARIANT_GATES];
}

/**
 * Held continuously while scheduling moves: the database's own count, not a service's metric.
 * Not over-committed hosts: that count is state, not behaviour, so a host Scheduler V1 over-commits
 * while it still places (in shadow) would block every later step for good (a test run at load 30
 * kept V1 placing for three minutes and it over-committed one host of 40).
 */
const INVARIANT_GATES: Gate[] = [{ name: 'no-double-execution', kind: 'invariant', check: 'duplicate_executions' }];

/**
 * How the demo's autopilot judges each step: every second, two passing runs in a row (after the
 * soak) to advance, three failing in a row to roll back one step.
 */
export const DEMO_ANALYSIS = { interval_seconds: 1, passes: 2, failure_threshold: 3, on_failure: 'previous' } as const;

/**
 * A shadow step sends nothing new to customers, so its gates judge readiness, not harm: the demo
 * gives them two minutes of failing runs to come right before the autopilot rolls back, as an
 * operator retrying `advance` would. Under load, V2's parity starts low (a run at load average 28
 * read 81% over the first 148 judgements) and converges as the window grows.
 */
export function patientShadowSteps(plan: CutoverPlan): CutoverPlan {
  const features = Object.fromEntries(
    Object.entries(plan.features).map(([name, f]) => [name, f && { ...f, steps: f.steps.map((s) => (s.mode === 'shadow' ? { ...s, analysis: { failure_threshold: 120, ...s.analysis } } : s)) }]),
  );
  return validatePlan({ ...plan, features });
}

/**
 * `scheduling` for the demo: shadow, then the first region, then every
 * region (the default plan's shape and gates, short soaks).
 */
export function schedulingPlan(regions: readonly string[], soakSeconds: number): PlanStep[] {
  const defaults = loadDefaultPlan().features.scheduling?.steps ?? [];
  const gatesOf = (mode: PlanStep['mode']) => demoGates(defaults.find((s) => s.mode === mode)?.gates ?? []);
  return [
    { name: 'shadow', mode: 'shadow', soak_seconds: soakSeconds, gates: gatesOf('shadow') },
    ...(regions.length > 1 ? [{ name: regions[0]!, mode: 'canary' as const, percent: 100, regions: [regions[0]!], soak_seconds: soakSeconds, gates: gatesOf('canary') }] : []),
    { name: 'all-regions', mode: 'full', soak_seconds: soakSeconds, gates: gatesOf('full') },
  ];
}

/**
 * The demo's cutover plan: `event-delivery` region by region (eventRouterPlan),
 * then `scheduling` (schedulingPlan).
 */
export function demoPlan(regions: readonly string[], soakSeconds: number): CutoverPlan {
  const router = eventRouterPlan(regions, soakSeconds);
  return validatePlan({
    version: 1,
    description: 'The demo: event delivery moves to the Event Routers region by region, then scheduling to Scheduler V2 (shadow, one region, all).',
    analysis: DEMO_ANALYSIS,
    features: { ...router.features, scheduling: { steps: schedulingPlan(regions, soakSeconds) } },
  });
}

export interface SchedulingStep {
  step: number;
  name: string;
  /** From the advance request to every replica applying the new state. */
  seconds: number;
}

/** V2's shadow counts summed over the replicas (each judges every V1 decision). */
export function shadowTotals(replicas: readonly SchedulerV2[]): ShadowStats {
  const total: ShadowStats = { judged: 0, agree: 0, differ: 0, by_category: {}, agree_by_category: {}, agreement_ratio: null };
  for (const r of replicas) {
    const s = r.shadowStats();
    total.judged += s.judged;
    total.agree += s.agree;
    total.differ += s.differ;
    for (const [c, n] of Object.entries(s.by_category)) total.by_category[c] = (total.by_category[c] ?? 0) + n;
    for (const [c, n] of Object.entries(s.agree_by_category)) total.agree_by_category[c] = (total.agree_by_category[c] ?? 0) + n;
  }
  total.agreement_ratio = total.judged > 0 ? total.agree / total.judged : null;
  return total;
}

/** Counts by category, largest first: `ranked-lower 12, filtered-metrics-stale 3`, or `none`. */
function byCategory(counts: Readonly<Record<string, number>>): string {
  return Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ') || 'none';
}

/** V2's shadow parity in one line, for the progress log and a failed stage's message. */
export function shadowSummary(shadow: ShadowStats): string {
  if (shadow.agreement_ratio === null) return 'no shadow judgement yet';
  const agreedEarlier = Object.keys(shadow.agree_by_category).length > 0 ? ` (of which ${byCategory(shadow.agree_by_category)})` : '';
  return `shadow agreement ${(shadow.agreement_ratio * 100).toFixed(1)}% of ${shadow.judged} judgements${agreedEarlier}; differences: ${byCategory(shadow.by_category)}`;
}

/**
 * Advances `scheduling` through every step of the controller's plan under
 * whatever traffic runs, as an operator would (soaks, gate refusals
 * retried), and after each advance waits until every V2 replica follows
 * the new state.
 */
export async function advanceScheduling(options: {
  controller: CutoverController;
  autopilot: Autopilot;
  replicas: readonly SchedulerV2[];
  progress: Progress;
  refusedTimeoutMs?: number;
}): Promise<{ steps: SchedulingStep[]; analysis: StepAnalysis[] }> {
  const { controller, progress } = options;
  const spec = controller.plan.features.scheduling;
  if (!spec) throw new Error('the cutover plan has no scheduling feature');
  const done: SchedulingStep[] = [];
  let began = Date.now();
  const { analysis } = await runThrough({
    controller,
    autopilot: options.autopilot,
    feature: 'scheduling',
    progress,
    label: 'scheduler-v2',
    ...(options.refusedTimeoutMs !== undefined ? { stallTimeoutMs: options.refusedTimeoutMs } : {}),
    after: async (after) => {
      const want = JSON.stringify(stepRouting(spec.steps[after.step - 1]!));
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && !options.replicas.every((r) => JSON.stringify(r.cutoverRouting()) === want)) await sleep(100);
      const seconds = Math.round((Date.now() - began) / 100) / 10;
      const shadow = shadowTotals(options.replicas);
      progress.log(
        `scheduler-v2: every replica follows scheduling step ${after.step}/${after.steps} ${after.step_name} (${seconds}s)${shadow.agreement_ratio === null ? '' : `; so far ${shadowSummary(shadow)}`}`,
      );
      done.push({ step: after.step, name: after.step_name, seconds });
      began = Date.now();
    },
  });
  return { steps: done, analysis };
}

/**
 * The scheduler-v2 stage: `scheduling` advanced under traffic, then the
 * stage measured (`measure`: run-demo's runStage), with who placed the
 * stage's creates, V2's shadow parity and the over-committed hosts.
 */
export async function runSchedulerV2Stage(options: {
  controller: CutoverController;
  autopilot: Autopilot;
  /** Starts the V2 replicas (stack/stack.ts `schedulerV2.start`): they join at this stage, not before. */
  startReplicas: () => Promise<{ replicas: readonly SchedulerV2[]; urls: readonly string[] }>;
  db: Knex;
  progress: Progress;
  /** Starts customer traffic for the transition; stopped when it is done. */
  startTraffic: () => { stop(): Promise<{ sent: number; failed: number }> };
  /** The stage's measurement (traffic, drain, numbers). */
  measure: () => Promise<StageReport>;
  refusedTimeoutMs?: number;
}): Promise<StageReport> {
  const { progress, db } = options;
  const { replicas, urls } = await options.startReplicas();
  progress.log(`scheduler-v2: ${replicas.length} Scheduler V2 replicas up (${urls.join(', ')}), following the scheduling cutover; V1 places until its regions move`);
  const began = Date.now();
  const transition = options.startTraffic();
  let steps: SchedulingStep[];
  let analysis: StepAnalysis[];
  try {
    ({ steps, analysis } = await advanceScheduling({ ...options, replicas }));
  } catch (err) {
    // A parity gate that never opened must say why: the categories go into the failure the report keeps.
    const code = err instanceof StranglerError ? err.code : 'DEMO_ERR_STAGE_FAILED';
    throw new StranglerError(code, `${(err as Error).message}; ${shadowSummary(shadowTotals(replicas))}`, { cause: err });
  } finally {
    const t = await transition.stop();
    progress.log(`scheduler-v2: cutover done under traffic (${t.sent} requests, ${t.failed} failed) in ${Math.round((Date.now() - began) / 1000)}s`);
  }
  const shadow = shadowTotals(replicas);
  const [[first]] = (await db.raw('SELECT COALESCE(MAX(id), 0) AS id FROM events')) as [[{ id: number | string }]];
  const stage = await options.measure();
  const [[placed]] = (await db.raw(
    `SELECT SUM(d.event_id IS NOT NULL) AS v2, SUM(d.event_id IS NULL) AS v1
       FROM events e LEFT JOIN (SELECT DISTINCT event_id FROM placement_decisions WHERE outcome = 'placed') d ON d.event_id = e.id
      WHERE e.id > ? AND e.type = 'create' AND e.server_id IS NOT NULL`,
    [Number(first.id)],
  )) as [[{ v2: number | string | null; v1: number | string | null }]];
  const invariants = await checkInvariants(db, { hostReserved: HOST_RESERVED });
  stage.analysis = analysis;
  stage.details = {
    ...stage.details,
    cutover_steps: steps.map((s) => s.name).join(' → '),
    cutover_seconds: Math.round(steps.reduce((n, s) => n + s.seconds, 0) * 10) / 10,
    v2_replicas: replicas.length,
    placements_by_v2: Number(placed.v2 ?? 0),
    placements_by_v1: Number(placed.v1 ?? 0),
    shadow_judged: shadow.judged,
    shadow_agreement_pct: shadow.agreement_ratio === null ? 'n/a' : Math.round(shadow.agreement_ratio * 1000) / 10,
    shadow_differences: byCategory(shadow.by_category),
    shadow_agreements_not_exact: byCategory(shadow.agree_by_category),
    overcommitted_hosts: invariants.overcommitted_hosts,
  };
  progress.log(
    `scheduler-v2: ${stage.details.placements_by_v2} placements by V2, ${stage.details.placements_by_v1} by V1; shadow agreement ${stage.details.shadow_agreement_pct}% (${shadow.judged}); ${invariants.overcommitted_hosts} over-committed hosts`,
  );
  return stage;
}
