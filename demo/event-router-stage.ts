import type { Knex } from 'knex';
import { readMysqlSnapshot } from '../lib/metrics/mysql-snapshot.ts';
import type { CutoverController } from '../proxy/cutover/controller.ts';
import { loadDefaultPlan, regionRolloutSteps, validatePlan, type CutoverPlan, type Gate } from '../proxy/cutover/plan.ts';
import { runThrough } from './advance-step.ts';
import type { StepAnalysis } from './report-types.ts';
import type { Autopilot } from '../proxy/cutover/autopilot.ts';
import type { Progress } from './progress.ts';

/**
 * The demo's cutover plan: only `event-delivery`, one step per region of
 * this run (regionRolloutSteps), with short soaks and the default plan's
 * event-delivery gates (router backlog, stream errors).
 */
export function eventRouterPlan(regions: readonly string[], soakSeconds: number): CutoverPlan {
  const defaults = loadDefaultPlan().features['event-delivery'];
  // The database's own count of double executions is held at every step too (a gate no peer has).
  const gates: Gate[] = [...(defaults?.steps[0]?.gates ?? []), { name: 'no-double-execution', kind: 'invariant', check: 'duplicate_executions' }];
  return validatePlan({
    version: 1,
    description: 'The demo: event delivery moves to the Event Routers region by region.',
    features: { 'event-delivery': { steps: regionRolloutSteps(regions, { soakSeconds, gates }) } },
  });
}

export interface AdvanceOptions {
  controller: CutoverController;
  /** The admin's autopilot: it advances the steps (strangler cutover run). */
  autopilot: Autopilot;
  /** An admin connection to the run's database (PROCESSLIST is read with it). */
  db: Knex;
  database: string;
  /** Hypervisors per region slug. */
  hostsByRegion: Map<string, number>;
  progress: Progress;
  /** The fleet's counters (agents on the router). */
  fleetStats: () => { onRouter: number; onGodQuery: number };
  /** How long one step may take to show in the connections before the demo goes on anyway. */
  stepTimeoutMs?: number;
  /** How long the autopilot may take over one step before the stage fails. */
  refusedTimeoutMs?: number;
}

export interface AdvanceStep {
  step: number;
  name: string;
  routed_hosts: number;
  dobe_connections: number;
  seconds: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function dobeConnections(db: Knex, database: string): Promise<number> {
  return (await readMysqlSnapshot(db, { database })).byUser.dobe ?? 0;
}

/**
 * Moves `event-delivery` through every step of the controller's plan with
 * the autopilot (runThrough), and after each step it enters waits until the routed
 * regions' agents are on their routers and their `dobe` connections are
 * gone (as the server counts them).
 */
export async function advanceEventDelivery(options: AdvanceOptions): Promise<{ steps: AdvanceStep[]; analysis: StepAnalysis[] }> {
  const { controller, progress } = options;
  const spec = controller.plan.features['event-delivery'];
  if (!spec) throw new Error('the cutover plan has no event-delivery feature');
  const total = [...options.hostsByRegion.values()].reduce((a, b) => a + b, 0);
  const done: AdvanceStep[] = [];
  let began = Date.now();
  const { analysis } = await runThrough({
    controller,
    autopilot: options.autopilot,
    feature: 'event-delivery',
    progress,
    label: 'event-router',
    ...(options.refusedTimeoutMs !== undefined ? { stallTimeoutMs: options.refusedTimeoutMs } : {}),
    after: async (after) => {
      const step = spec.steps[after.step - 1]!;
      const routed =
        step.mode === 'full'
          ? total
          : (step.regions ?? [...options.hostsByRegion.keys()]).reduce((n, r) => n + (options.hostsByRegion.get(r) ?? 0), 0);
      const exact = step.mode === 'full' || (step.percent ?? 100) >= 100;
      progress.log(
        `event-router: event-delivery at step ${after.step}/${after.steps} ${after.step_name} (${step.mode === 'full' ? 'every region' : `${(step.regions ?? []).join(', ')}${exact ? '' : ` ${step.percent}%`}`}); waiting for ${exact ? routed : `up to ${routed}`} agents to leave MySQL…`,
      );
      const deadline = Date.now() + (options.stepTimeoutMs ?? 60_000);
      let dobe = await dobeConnections(options.db, options.database);
      // A partial canary routes a sticky share we do not predict here: wait for exact steps only.
      while (exact && Date.now() < deadline) {
        const stats = options.fleetStats();
        if (dobe <= total - routed && stats.onRouter >= routed) break;
        progress.update(`event-router: ${after.step_name}: ${stats.onRouter}/${routed} agents on their router, ${dobe} dobe connections`);
        await sleep(250);
        dobe = await dobeConnections(options.db, options.database);
      }
      const seconds = Math.round((Date.now() - began) / 100) / 10;
      const ok = !exact || dobe <= total - routed;
      progress.log(
        `event-router: ${after.step_name}: ${options.fleetStats().onRouter} agents on routers, ${dobe} dobe connections (${seconds}s)${ok ? '' : ' — not all agents switched within the timeout'}`,
      );
      done.push({ step: after.step, name: after.step_name, routed_hosts: routed, dobe_connections: dobe, seconds });
      began = Date.now();
    },
  });
  return { steps: done, analysis };
}
