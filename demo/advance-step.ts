import { StranglerError } from '../lib/errors.ts';
import type { AnalysisRun } from '../proxy/cutover/autopilot-store.ts';
import type { Autopilot } from '../proxy/cutover/autopilot.ts';
import type { CutoverController, FeatureStatus } from '../proxy/cutover/controller.ts';
import type { Progress } from './progress.ts';
import type { StepAnalysis } from './report-types.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface StepTaken {
  step: number;
  name: string;
  /** From the step before it was entered to this one being entered (and `after` done). */
  seconds: number;
}

/** The analysis runs of each step a run went through, as report.json records them. */
export function stepAnalyses(feature: string, runs: readonly AnalysisRun[]): StepAnalysis[] {
  const out: StepAnalysis[] = [];
  for (const r of runs) {
    let s = out.at(-1);
    if (!s || s.step !== r.step || s.version !== r.feature_version) {
      s = { feature, step: r.step, step_name: r.step_name, version: r.feature_version, runs: 0, pass: 0, fail: 0, no_data: 0, first_at: r.at, last_at: r.at, outcomes: '' };
      out.push(s);
    }
    s.runs++;
    if (r.outcome === 'pass') s.pass++;
    else if (r.outcome === 'fail') s.fail++;
    else s.no_data++;
    s.last_at = r.at;
    s.outcomes += r.outcome === 'pass' ? 'P' : r.outcome === 'fail' ? 'F' : '-';
  }
  return out;
}

/**
 * Moves a feature through every remaining step of the plan with the admin's
 * autopilot (`strangler cutover run`), as an operator would: starts the run,
 * watches it, and calls `after` once each step is entered (to wait for
 * followers, say). The autopilot decides when to advance (the soak, the
 * plan's passes) and rolls back on failures; a run that ends other than
 * done, or makes no step in `stallTimeoutMs` (default 3 min: a busy machine
 * is slow to gather samples), fails the stage with the autopilot's reason.
 *
 * @example
 *   const { steps, analysis } = await runThrough({ controller, autopilot, feature: 'event-writes', progress, label: 'harpoon' });
 */
export async function runThrough(options: {
  controller: CutoverController;
  autopilot: Autopilot;
  feature: string;
  progress: Progress;
  /** Prefix of progress lines (the demo stage). */
  label: string;
  stallTimeoutMs?: number;
  after?: (status: FeatureStatus) => Promise<void>;
}): Promise<{ steps: StepTaken[]; analysis: StepAnalysis[] }> {
  const { controller, autopilot, feature, progress, label } = options;
  const stall = options.stallTimeoutMs ?? 180_000;
  const start = await controller.statusOf(feature);
  const steps: StepTaken[] = [];
  if (start.step >= start.steps) return { steps, analysis: [] };
  await autopilot.run(feature, 'demo', { reason: `npm run demo: ${label} stage` });
  let seen = start.step;
  let moved = Date.now();
  for (;;) {
    const v = (await autopilot.view()).find((f) => f.feature === feature)!;
    if (v.step > seen) {
      const status = await controller.statusOf(feature);
      await options.after?.(status);
      const seconds = Math.round((Date.now() - moved) / 100) / 10;
      progress.log(`${label}: the autopilot advanced ${feature} to step ${status.step}/${status.steps} ${status.step_name} (${seconds}s)`);
      steps.push({ step: status.step, name: status.step_name, seconds });
      seen = status.step;
      moved = Date.now();
      continue;
    }
    if (v.run === 'done') break;
    if (v.run !== 'running' && v.run !== 'waiting') {
      throw new StranglerError('DEMO_ERR_AUTOPILOT', `${feature}: the autopilot run ended "${v.run}" at step ${v.step}/${v.steps} ${v.step_name}: ${v.waiting ?? 'no reason given'}`);
    }
    if (Date.now() - moved > stall) {
      await autopilot.stop(feature, 'demo', `no step in ${stall / 1000}s`).catch(() => {});
      throw new StranglerError('DEMO_ERR_AUTOPILOT', `${feature}: no step in ${stall / 1000}s at step ${v.step}/${v.steps} ${v.step_name}; the autopilot waits: ${v.waiting ?? v.run}`);
    }
    progress.update(`${label}: ${feature} step ${v.step}/${v.steps} ${v.step_name}: ${v.waiting ?? v.run}`);
    await sleep(250);
  }
  const runs = await autopilot.runs(feature, { fromVersion: start.version, limit: 5000 });
  return { steps, analysis: stepAnalyses(feature, runs) };
}
