import type { DbConfig } from '../../lib/db/config.ts';
import type { AgentStats } from './agent-stats.ts';

/** What the fleet parent tells a worker process. */
export type ToWorker =
  | {
      type: 'start';
      serverIds: number[];
      db: DbConfig;
      pollIntervalMs: { min: number; max: number };
      workMs: number;
      hostReportIntervalMs: number;
      connectConcurrency: number;
    }
  /** Every worker has connected its agents: start polling (a fleet-wide barrier, so connecting is not slowed by polling). */
  | { type: 'run' }
  | { type: 'stop' };

/** What a worker reports back. */
export type FromWorker =
  | { type: 'progress'; connected: number; total: number }
  | { type: 'started'; agents: number; connectMs: number }
  | { type: 'stats'; stats: AgentStats; rssBytes: number; heapUsedBytes: number }
  | { type: 'failed'; message: string }
  | { type: 'stopped' };
