import type { Knex } from 'knex';
import { summarizeLatency, type LatencySummary } from '../lib/metrics/sample-percentiles.ts';
import type { Progress } from './progress.ts';
import { watchServerBacklog, type OldestStatement } from './server-backlog.ts';
import { readServerCounters } from './server-load.ts';
import type { startTraffic } from './traffic.ts';

/**
 * The same bursts of customer traffic (creates, actions, destroys, reads) at every stage, ramped
 * through the same rates, so the report can set side by side what they cost the server while every
 * service still writes `events` directly (legacy, event-router, scheduler-v2) and once Harpoon alone
 * writes it in batches: the "table locks and query backlogs" the talk lists before Harpoon, read from
 * the server (SHOW GLOBAL STATUS deltas; Threads_running, the oldest running statement, lock-waiting
 * transactions by table and the event queue sampled every 0.5 s).
 */
export interface ContentionReport {
  rate_per_s: number;
  seconds: number;
  requests_sent: number;
  requests_failed: number;
  /** What the driver reached (a saturated Cloud answers slower than the rate asked; in-flight requests are capped). */
  achieved_rate_per_s: number;
  innodb_row_lock_waits: number;
  innodb_row_lock_time_ms: number;
  table_locks_waited: number;
  threads_running_peak: number;
  threads_running_mean: number;
  /** The longest any statement had been running at a sample (PROCESSLIST.TIME_MS), and the number of samples. */
  oldest_statement_ms: OldestStatement;
  lock_waiting_transactions_peak: number;
  /** Samples × waiting transactions by "table by user" (INNODB_TRX, INNODB_LOCKS). */
  lock_waits_seen: Record<string, number>;
  /** Most events pending or running at once during the burst. */
  events_unfinished_peak: number;
  /** Cloud's answer time under the burst, as its customers saw it. */
  cloud_request_ms: LatencySummary;
  /** Events of the burst still pending or running when the drain after it gave up (0 when all finished). */
  events_unfinished_after_drain?: number;
}

export interface ContentionOptions {
  /** One burst per rate, in this order (a ramp); each is drained before the next. */
  rates: number[];
  seconds: number;
}

/** Runs one burst and reads what it cost; the events it created are finished by the caller's drain. */
export async function measureContention(
  db: Knex,
  rate: number,
  seconds: number,
  startBurst: (rate: number) => ReturnType<typeof startTraffic>,
  progress: Progress,
  stage: string,
): Promise<ContentionReport> {
  progress.update(`${stage}: contention burst at ${rate} requests/s for ${seconds}s…`);
  const before = await readServerCounters(db);
  const backlog = watchServerBacklog(db, { detail: true });
  const started = performance.now();
  const traffic = startBurst(rate);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const stats = await traffic.stop();
  const elapsed = (performance.now() - started) / 1000;
  const after = await readServerCounters(db);
  const server = await backlog.stop();
  return {
    rate_per_s: rate,
    seconds,
    requests_sent: stats.sent,
    requests_failed: stats.failed,
    achieved_rate_per_s: Math.round((stats.sent / elapsed) * 10) / 10,
    innodb_row_lock_waits: after.rowLockWaits - before.rowLockWaits,
    innodb_row_lock_time_ms: after.rowLockTimeMs - before.rowLockTimeMs,
    table_locks_waited: after.tableLocksWaited - before.tableLocksWaited,
    threads_running_peak: server.threads_running.peak,
    threads_running_mean: server.threads_running.mean,
    oldest_statement_ms: server.oldest_statement_ms!,
    lock_waiting_transactions_peak: server.lock_waiting_transactions_peak!,
    lock_waits_seen: server.lock_waits_seen!,
    events_unfinished_peak: server.events_unfinished_peak!,
    cloud_request_ms: summarizeLatency(stats.latenciesMs),
  };
}
