import type { LockdownVerification } from '../harpoon/verify-lockdown.ts';
import type { ContentionReport } from './contention.ts';

/** Stage names, in the order the migration goes through them. */
export const STAGE_NAMES = ['legacy', 'event-router', 'scheduler-v2', 'harpoon', 'lockdown'] as const;
export type StageName = (typeof STAGE_NAMES)[number];

/** Connections as the MySQL server counts them (information_schema.PROCESSLIST). */
export interface ConnectionCount {
  total: number;
  by_user: Record<string, number>;
}

export interface StageReport {
  name: StageName;
  started_at: string;
  ended_at: string;
  /** Peak during the stage's measurement window. */
  mysql_connections: ConnectionCount;
  /**
   * Polling: SELECTs per second by the services that used to poll for events (dobe, scheduler_v1,
   * event_router, scheduler_v2), from USER_STATISTICS over an idle window after the drain (no traffic,
   * no queue): what they ask whether or not there is work. Under traffic: details.selects_per_s_under_traffic.
   */
  polling_queries_per_s: number;
  /**
   * Event committed (available to its host) → agent has it; from the database's own timestamps.
   * `n` is the sample; a percentile is `null` where the sample is too small for it
   * (lib/metrics/sample-percentiles.ts: 20 for p50, 100 for p99).
   */
  event_latency_ms: { p50: number | null; p99: number | null; n: number };
  events_created: number;
  events_done: number;
  /** Anything else the stage wants to show (queries per second overall, placements, …). */
  details?: Record<string, number | string>;
  /** The same traffic bursts at every stage, one per rate of the ramp, and what they cost the server (demo/contention.ts). */
  contention?: ContentionReport[];
  /** The autopilot's analysis runs of each cutover step the stage went through. */
  analysis?: StepAnalysis[];
}

/** The analysis runs of one step of a feature (proxy/cutover/autopilot.ts), oldest first. */
export interface StepAnalysis {
  feature: string;
  step: number;
  step_name: string;
  /** The feature's state version while it stood on the step. */
  version: number;
  runs: number;
  pass: number;
  fail: number;
  no_data: number;
  first_at: string;
  last_at: string;
  /** One letter per run: P pass, F fail, - no data. */
  outcomes: string;
}

/** One sample of the server's state over time, for the connections chart. */
export interface TimelineSample {
  t: string;
  stage: StageName;
  connections_total: number;
  by_user: Record<string, number>;
  questions_per_s: number;
}

/** `DIR/report.json`: the fields the brief fixes, plus the timeline and settings. */
export interface DemoReport {
  hypervisors: number;
  regions: number;
  database: { host: string; port: number; name: string; server_version: string; source: string };
  started_at: string;
  ended_at: string;
  settings: Record<string, number | string | boolean>;
  stages: StageReport[];
  /** Set when a stage failed: the run stopped there and `stages` holds the ones done before it. */
  failed?: { stage: StageName; code: string; message: string };
  lost_events: number;
  duplicate_executions: number;
  overcommitted_hosts: number;
  timeline: TimelineSample[];
  processes: Array<{ role: string; pid: number; peak_rss_bytes: number }>;
  /** `strangler cutover verify-lockdown` run in the lockdown stage: every service user against every event-data table. */
  lockdown_verification?: LockdownVerification;
}
