import type { DbConfig } from '../lib/db/config.ts';
import type { AgentStats } from './agent-stats.ts';
import type { HostProfile } from './host-metrics.ts';
import type { PollingModeRef } from './polling-mode.ts';

/** What a worker needs to run its agents dual-mode: all per-server arrays align with `serverIds`. */
export interface WorkerRouterOptions {
  /** Router base URL per region slug ('*' for one URL, the proxy, serving every region). */
  urls: Record<string, string>;
  regions: string[];
  /** Hypervisor tokens, minted in the parent: the secret never leaves it. */
  tokens: string[];
  modeCheckEvery?: number;
  retryMs?: { min: number; max: number };
  fallbackAfterMs?: number;
}

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
      /** The agents' routers (absent: legacy agents only). */
      router?: WorkerRouterOptions;
      /** The legacy polling mode the worker imports (absent: agents on their routers only). */
      pollingMode?: PollingModeRef;
    }
  /** Every worker has connected its agents: start polling (a fleet-wide barrier, so connecting is not slowed by polling). */
  | { type: 'run' }
  | { type: 'stop' };

/** What a worker reports back. */
export type FromWorker =
  | { type: 'progress'; connected: number; total: number }
  | { type: 'started'; agents: number; connectMs: number }
  /** Sent once, before `started`: each agent's hypervisor facts, by server id. */
  | { type: 'profiles'; profiles: Array<[number, HostProfile]> }
  /** Every second: the agents' measurements (host-metrics.ts encodeHostTick), taken at `atMs`. */
  | { type: 'hosts'; atMs: number; values: number[] }
  | { type: 'stats'; stats: AgentStats; rssBytes: number; heapUsedBytes: number }
  | { type: 'failed'; message: string }
  | { type: 'stopped' };
