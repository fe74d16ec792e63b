import type { Knex } from 'knex';
import { summarizeLatency, type LatencySummary } from '../lib/metrics/sample-percentiles.ts';
import type { Progress } from './progress.ts';
import { readServerCounters, watchThreadsRunning } from './server-load.ts';
import type { startTraffic } from './traffic.ts';

/**
 * The same burst of customer traffic (creates, actions, destroys, reads) at
 * every stage, so the report can set side by side what it costs the server
 * while every service still writes `events` directly (legacy, event-router,
 * scheduler-v2) and once Harpoon alone writes it in batches: the "table
 * locks and query backlogs" the talk lists before Harpoon, read from the
 * server (SHOW GLOBAL STATUS deltas, Threads_running sampled every 0.5 s).
 */
export interface ContentionReport {
  rate_per_s: number;
  seconds: number;
  requests_sent: number;
  requests_failed: number;
  innodb_row_lock_waits: number;
  innodb_row_lock_time_ms: number;
  table_locks_waited: number;
  threads_running_peak: number;
  threads_running_mean: number;
  /** Cloud's answer time under the burst, as its customers saw it. */
  cloud_request_ms: LatencySummary;
  /** Events of the burst still pending or running when the drain after it gave up (0 when all finished). */
  events_unfinished_after_drain?: number;
}

export interface ContentionOptions {
  rate: number;
  seconds: number;
}

/** Runs one burst and reads what it cost; the events it created are finished by the next drain. */
export async function measureContention(
  db: Knex,
  options: ContentionOptions,
  startBurst: (rate: number) => ReturnType<typeof startTraffic>,
  progress: Progress,
  stage: string,
): Promise<ContentionReport> {
  progress.update(`${stage}: contention burst at ${options.rate} requests/s for ${options.seconds}s…`);
  const before = await readServerCounters(db);
  const threads = watchThreadsRunning(db, 500);
  const traffic = startBurst(options.rate);
  await new Promise((r) => setTimeout(r, options.seconds * 1000));
  const stats = await traffic.stop();
  const after = await readServerCounters(db);
  const running = threads.stop();
  return {
    rate_per_s: options.rate,
    seconds: options.seconds,
    requests_sent: stats.sent,
    requests_failed: stats.failed,
    innodb_row_lock_waits: after.rowLockWaits - before.rowLockWaits,
    innodb_row_lock_time_ms: after.rowLockTimeMs - before.rowLockTimeMs,
    table_locks_waited: after.tableLocksWaited - before.tableLocksWaited,
    threads_running_peak: running.peak,
    threads_running_mean: running.mean,
    cloud_request_ms: summarizeLatency(stats.latenciesMs),
  };
}
