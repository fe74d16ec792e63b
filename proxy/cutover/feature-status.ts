import type { Routing } from '../../lib/cutover/types.ts';
import type { PlanFeature, PlanStep } from './plan.ts';
import type { FeatureRecord, HistoryEntry } from './state-store.ts';

/** What `strangler cutover status` shows of one feature. */
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
  /** The current step stops the autopilot until `strangler cutover promote`. */
  manual_judgement: boolean;
  last_change: Pick<HistoryEntry, 'action' | 'actor' | 'at' | 'reason' | 'from_step' | 'to_step'> | null;
  /** Set when the stored step does not match the plan (the plan file changed under a running cutover). */
  plan_mismatch?: string;
}

/** The plan step a record is on (undefined for legacy, or past the plan's end). */
export function currentStep(spec: PlanFeature, record: FeatureRecord): PlanStep | undefined {
  return record.step >= 1 ? spec.steps[record.step - 1] : undefined;
}

/** Why the stored step does not match the plan, or undefined when it does. */
export function planMismatch(spec: PlanFeature, record: FeatureRecord): string | undefined {
  if (record.step > spec.steps.length) return `stored step ${record.step} (${record.stepName}) is beyond the plan's ${spec.steps.length} steps`;
  const step = currentStep(spec, record);
  if (step && step.name !== record.stepName) return `stored step ${record.step} is "${record.stepName}" but the plan's step ${record.step} is "${step.name}"`;
  return undefined;
}

/** Seconds the record's step has run, on the database's clock. */
export function stepElapsedSeconds(record: FeatureRecord, now: Date): number {
  return Math.max(0, (now.getTime() - Date.parse(record.stepStartedAt)) / 1000);
}

export function toStatus(spec: PlanFeature, record: FeatureRecord, now: Date, last: HistoryEntry | undefined): FeatureStatus {
  const step = currentStep(spec, record);
  const soak = step?.soak_seconds ?? 0;
  const elapsed = stepElapsedSeconds(record, now);
  const problem = planMismatch(spec, record);
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
    manual_judgement: step?.manual_judgement === true,
    last_change: last ? { action: last.action, actor: last.actor, at: last.at, reason: last.reason, from_step: last.from_step, to_step: last.to_step } : null,
    ...(problem ? { plan_mismatch: problem } : {}),
  };
}
