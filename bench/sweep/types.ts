import type { StageName } from '../../demo/report-types.ts';

/**
 * An architecture the sweep measures at each size. `migration` is the whole
 * demo (its five stages give five series); the `legacy-*` variants run only
 * the legacy stage with one thing changed, so each shows what that change buys.
 */
export const SWEEP_VARIANTS = ['migration', 'legacy-pooled', 'legacy-thread-pool', 'legacy-optimized'] as const;
export type SweepVariant = (typeof SWEEP_VARIANTS)[number];

/** One stage of one run at one size: the figures a sweep chart plots. */
export interface SweepRow {
  variant: SweepVariant;
  stage: StageName;
  /** `variant` for the legacy variants, `variant/stage` for the migration's stages. */
  series: string;
  size: number;
  connections: number;
  polling_queries_per_s: number;
  latency_ms: { p50: number | null; p99: number | null; n: number };
  cloud_error_rate: number;
  mariadbd_cpu_cores: number | null;
  mariadbd_rss_mb: number | null;
  threads_running_peak: number | null;
  innodb_row_lock_waits: number | null;
  thread_handling: string;
  god_query: string;
}

/** A run that did not finish (the server refused the fleet, a stage failed): the size where it broke. */
export interface SweepFailure {
  variant: SweepVariant;
  size: number;
  stage?: StageName;
  code: string;
  message: string;
}

/** Where a series leaves its flat part, and by which measure. */
export interface Knee {
  series: string;
  size: number;
  reason: string;
}

/** `DIR/sweep.json`: kept after each run, so an interrupted sweep resumes where it stopped. */
export interface SweepReport {
  started_at: string;
  updated_at: string;
  settings: Record<string, string | number>;
  /** Runs done: `${variant}@${size}`. */
  done: string[];
  rows: SweepRow[];
  failures: SweepFailure[];
  knees: Knee[];
  machine: { cpus: number; load_average: number[]; total_memory_mb: number };
  /** Seconds each run took, by `${variant}@${size}`. */
  run_seconds: Record<string, number>;
}
