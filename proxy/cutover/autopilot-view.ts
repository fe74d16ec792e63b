import type { AutopilotRecord, RunState } from './autopilot-store.ts';
import type { CutoverController, FeatureStatus } from './controller.ts';
import type { GateReading } from './gates.ts';
import { planFeature } from './plan.ts';

/**
 * What `strangler cutover status`, `run` and the dashboard show of a
 * feature's analysis and autopilot run: where it is, how many passing runs
 * it has of how many it needs, when the next check is, and why it waits.
 */
export interface AutopilotView {
  feature: string;
  run: RunState;
  run_all: boolean;
  run_actor: string | null;
  run_started_at: string | null;
  step: number;
  steps: number;
  step_name: string;
  paused: boolean;
  manual_judgement: boolean;
  soak_remaining_seconds: number;
  interval_seconds: number;
  checks: number;
  passes: number;
  passes_needed: number;
  failures: number;
  failure_threshold: number;
  /** Analysis runs of this step that had no data (never promotes, never rolls back). */
  no_data: number;
  on_failure: string;
  after_soak: string;
  last_outcome: string | null;
  last_check_at: string | null;
  next_check_at: string | null;
  /** null when no check is scheduled (legacy, paused, or just changed). */
  next_check_in_seconds: number | null;
  waiting: string | null;
  readings: GateReading[] | null;
  /** The admin replica analysing the feature. */
  owner: string | null;
}

export function autopilotView(controller: CutoverController, auto: AutopilotRecord, status: FeatureStatus, now: Date): AutopilotView {
  const step = status.step >= 1 ? planFeature(controller.plan, status.feature)?.steps[status.step - 1] : undefined;
  const analysis = controller.analysisOf(status.feature, step);
  const current = auto.feature_version === status.version;
  const next = current && auto.next_check_at && status.step > 0 && !status.paused ? auto.next_check_at : null;
  return {
    feature: status.feature,
    run: auto.run,
    run_all: auto.run_all,
    run_actor: auto.run_actor,
    run_started_at: auto.run_started_at,
    step: status.step,
    steps: status.steps,
    step_name: status.step_name,
    paused: status.paused,
    manual_judgement: status.manual_judgement,
    soak_remaining_seconds: status.soak_remaining_seconds,
    interval_seconds: analysis.interval_seconds,
    checks: current ? auto.checks : 0,
    passes: current ? auto.passes : 0,
    passes_needed: analysis.passes,
    failures: current ? auto.failures : 0,
    failure_threshold: analysis.failure_threshold,
    no_data: current ? auto.no_data : 0,
    on_failure: analysis.on_failure,
    after_soak: analysis.after_soak,
    last_outcome: current ? auto.last_outcome : null,
    last_check_at: current ? auto.last_check_at : null,
    next_check_at: next,
    next_check_in_seconds: next ? Math.max(0, Math.round((Date.parse(next) - now.getTime()) / 100) / 10) : null,
    waiting: auto.waiting,
    readings: current ? auto.readings : null,
    owner: auto.owner,
  };
}
