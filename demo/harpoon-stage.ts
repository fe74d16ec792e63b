import type { Knex } from 'knex';
import { StranglerError } from '../lib/errors.ts';
import type { CutoverController } from '../proxy/cutover/controller.ts';
import { loadDefaultPlan, type CutoverPlan, type Gate, type PlanStep } from '../proxy/cutover/plan.ts';
import { runThrough, type StepTaken } from './advance-step.ts';
import type { Autopilot } from '../proxy/cutover/autopilot.ts';
import type { StepAnalysis } from './report-types.ts';
import type { Progress } from './progress.ts';
import type { StageReport } from './report-types.ts';
import { scrapeSum } from './scrape-sum.ts';

type HarpoonFeatures = Pick<CutoverPlan['features'], 'event-writes' | 'event-reads' | 'lockdown'>;

/**
 * The default plan's gates at the sample sizes a short demo reaches: a few
 * writes a second, a canary of 5% of customers, a two-second soak. Latency
 * limits are wider because the demo shares two cores with MariaDB and
 * thousands of agents; mismatch and error limits keep their meaning.
 */
function demoGates(gates: readonly Gate[]): Gate[] {
  return gates.map((g) => {
    switch (g.kind) {
      case 'error_rate':
        return { ...g, max: Math.max(g.max, 0.01), min_samples: 0 };
      case 'latency':
        return { ...g, max_seconds: Math.max(g.max_seconds, 2), min_samples: 0 };
      case 'shadow_mismatch_rate':
        return { ...g, max: Math.max(g.max, 0.02), min_samples: 10 };
      default:
        return g;
    }
  });
}

/**
 * `event-writes`, `event-reads` and `lockdown` for the demo: the default
 * plan's steps, requirements and gates (demo-sized), with short soaks.
 */
export function harpoonPlanFeatures(soakSeconds: number): HarpoonFeatures {
  const defaults = loadDefaultPlan().features;
  const steps = (feature: keyof HarpoonFeatures): PlanStep[] =>
    (defaults[feature]?.steps ?? []).map((s) => ({ ...s, soak_seconds: Math.min(s.soak_seconds, soakSeconds), gates: demoGates(s.gates) }));
  return {
    'event-writes': { steps: steps('event-writes') },
    'event-reads': { steps: steps('event-reads') },
    lockdown: { steps: steps('lockdown') },
  };
}

export interface HarpoonStageOptions {
  controller: CutoverController;
  /** The admin's autopilot: it advances the steps (strangler cutover run). */
  autopilot: Autopilot;
  db: Knex;
  progress: Progress;
  /** Customer traffic for the transition (with action reads, so event-reads has something to shadow). */
  startTraffic: () => { stop(): Promise<{ sent: number; failed: number }> };
  /** The stage's measurement (run-demo's runStage). */
  measure: () => Promise<StageReport>;
  /** Harpoon replicas' base URLs, for their counters. */
  harpoonUrls: readonly string[];
  /** The admin's /metrics (the proxy cluster's series), for event-reads' shadow counts. */
  adminUrl: string;
  /**
   * Resolves once every follower (routers, Scheduler V2 replicas) has moved its event source to
   * Harpoon after event-writes reached full; the stage waits for it before measuring.
   */
  followersOnHarpoon?: () => Promise<string>;
  refusedTimeoutMs?: number;
}

/**
 * The harpoon stage: `event-writes` advanced to full (Cloud writes through
 * Harpoon's outbox relay; at full the routers and Scheduler V2 take
 * Harpoon's stream), then `event-reads` (shadow, canary, full) under
 * traffic, then the stage measured.
 */
export async function runHarpoonStage(options: HarpoonStageOptions): Promise<StageReport> {
  const { controller, progress } = options;
  const began = Date.now();
  const transition = options.startTraffic();
  let writes: StepTaken[];
  let reads: StepTaken[];
  const analysis: StepAnalysis[] = [];
  const through = async (feature: string) => {
    const r = await runThrough({ controller, autopilot: options.autopilot, feature, progress, label: 'harpoon', ...stall(options) });
    analysis.push(...r.analysis);
    return r.steps;
  };
  let followers = 'not checked';
  try {
    writes = await through('event-writes');
    if (options.followersOnHarpoon) {
      followers = await options.followersOnHarpoon();
      progress.log(`harpoon: followers on Harpoon's stream: ${followers}`);
    }
    reads = await through('event-reads');
  } finally {
    const t = await transition.stop();
    progress.log(`harpoon: cutover done under traffic (${t.sent} requests, ${t.failed} failed) in ${Math.round((Date.now() - began) / 1000)}s`);
  }
  const committedBefore = await scrapeSum(options.harpoonUrls, 'harpoon_changes_committed_total');
  const statementsBefore = await scrapeSum(options.harpoonUrls, 'harpoon_db_statements_total');
  const stage = await options.measure();
  stage.analysis = analysis;
  const committedAfter = await scrapeSum(options.harpoonUrls, 'harpoon_changes_committed_total');
  const statementsAfter = await scrapeSum(options.harpoonUrls, 'harpoon_db_statements_total');
  const [[outbox]] = (await options.db.raw('SELECT COUNT(*) AS n FROM event_outbox').catch(() => [[{ n: -1 }]])) as [[{ n: number | string }]];
  stage.details = {
    ...stage.details,
    cutover_steps: [...writes.map((s) => `event-writes ${s.name}`), ...reads.map((s) => `event-reads ${s.name}`)].join(' → '),
    cutover_seconds: Math.round([...writes, ...reads].reduce((n, s) => n + s.seconds, 0) * 10) / 10,
    followers_on_harpoon: followers,
    harpoon_changes_committed: committedAfter - committedBefore,
    // Over the measured window, as the commits: SQL statements Harpoon sent for those changes and reads.
    harpoon_statements: statementsAfter - statementsBefore,
    event_reads_shadow_comparisons: await scrapeSum([options.adminUrl], 'proxy_shadow_comparisons_total'),
    outbox_rows_left: Number(outbox.n),
  };
  return stage;
}

export interface LockdownStageOptions {
  controller: CutoverController;
  autopilot: Autopilot;
  progress: Progress;
  measure: () => Promise<StageReport>;
  refusedTimeoutMs?: number;
}

/**
 * The lockdown stage: the `lockdown` step REVOKEs every grant on events
 * but Harpoon's (the controller's effect), then the stage is measured: its
 * connections are the project's headline number.
 */
export async function runLockdownStage(options: LockdownStageOptions): Promise<StageReport> {
  const { controller, progress } = options;
  const { steps, analysis } = await runThrough({ controller, autopilot: options.autopilot, feature: 'lockdown', progress, label: 'lockdown', ...stall(options) });
  const effects = (await controller.effects()) as {
    lockdown?: { sole_access?: boolean; others_with_access?: string[]; grants_on_events?: Record<string, string[]>; preflight?: { ok: boolean; overridden: boolean; offenders: string[] } };
  };
  const grants = effects.lockdown;
  progress.log(
    `lockdown: ${grants?.sole_access ? 'only harpoon holds grants on events' : `others still hold grants on events: ${grants?.others_with_access?.join(', ')}`}`,
  );
  const stage = await options.measure();
  stage.analysis = analysis;
  stage.details = {
    ...stage.details,
    cutover_steps: steps.map((s) => `lockdown ${s.name}`).join(' → '),
    sole_access: String(grants?.sole_access ?? 'unknown'),
    // What the step's preflight saw before it revoked (harpoon/lockdown-preflight.ts).
    preflight: grants?.preflight ? (grants.preflight.ok ? 'only harpoon seen at event data' : `${grants.preflight.overridden ? 'overridden: ' : ''}${grants.preflight.offenders.join('; ')}`) : 'not run',
    grants_on_events: Object.entries(grants?.grants_on_events ?? {})
      .map(([who, privileges]) => `${who}: ${privileges.join(' ')}`)
      .join('; '),
  };
  return stage;
}

function stall(options: { refusedTimeoutMs?: number }): { stallTimeoutMs?: number } {
  return options.refusedTimeoutMs !== undefined ? { stallTimeoutMs: options.refusedTimeoutMs } : {};
}

/**
 * Waits until every Event Router and every Scheduler V2 replica reports
 * Harpoon as its source (router_event_source{source="harpoon"},
 * scheduler_v2_harpoon_mode): what event-writes at full means for them.
 * Resolves with a summary, or rejects with DEMO_ERR_FOLLOWERS naming who
 * did not follow within `timeoutMs`.
 *
 * @example
 *   await waitForFollowers({ routerUrls, schedulerUrls, timeoutMs: 60_000 })   // '10/10 routers, 3/3 V2 replicas'
 */
export async function waitForFollowers(options: { routerUrls: readonly string[]; schedulerUrls: readonly string[]; timeoutMs?: number }): Promise<string> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    const routers = await scrapeSum(options.routerUrls, 'router_event_source', { source: 'harpoon' });
    const replicas = await scrapeSum(options.schedulerUrls, 'scheduler_v2_harpoon_mode');
    const summary = `${routers}/${options.routerUrls.length} routers, ${replicas}/${options.schedulerUrls.length} V2 replicas`;
    if (routers >= options.routerUrls.length && replicas >= options.schedulerUrls.length) return summary;
    if (Date.now() > deadline) throw new StranglerError('DEMO_ERR_FOLLOWERS', `event-writes is full but not every follower moved to Harpoon's stream: ${summary}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
