import type { FollowerHarpoonSettings, FollowerStateSettings } from '../lib/cutover/follower-options.ts';
import type { AdminTokenSpecs } from '../lib/auth/admin-token.ts';
import type { DbConfig } from '../lib/db/config.ts';
import { invalidOption } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import { createProcessSupervisor, type ProcessSupervisor } from '../lib/process/supervisor.ts';
import { spawnSchedulerProcess } from './process.ts';
import type { MetricsEndpoint } from './scraper.ts';

export interface SchedulerSupervisorOptions {
  /** Active-active replica processes. */
  replicas: number;
  db: DbConfig;
  metricsEndpoints: readonly MetricsEndpoint[];
  /** Prefix of the replica ids (`<prefix>-<n>.<generation>`); default `v2-<pid>`. */
  idPrefix?: string;
  followCutover?: boolean;
  pollIntervalMs?: number;
  leaseMs?: number;
  /** Passed to every replica: follow `event-writes` through these Harpoon replicas. */
  harpoon?: FollowerHarpoonSettings;
  /** Passed to every replica: the cutover state over HTTP from the cutover admin. */
  state?: FollowerStateSettings;
  /** Passed to every replica: the admin tokens (digests) POST /explain and GET /decisions accept. */
  tokens?: AdminTokenSpecs;
  host?: string;
  logger?: Logger;
  restartDelayMs?: number;
}

/**
 * Scheduler V2 replicas as processes, each on a fixed port and restarted
 * there (with a new replica id) when it dies. The slots are named
 * `replica-1` … `replica-N`: `kill('replica-2')` is a kill -9 of one.
 *
 * @example
 *   const v2 = createSchedulerSupervisor({ replicas: 3, db: as('scheduler_v2'), metricsEndpoints });
 *   const list = await v2.start();   // [{ name: 'replica-1', url, pid, up }, …]
 *   … await v2.close();
 */
export function createSchedulerSupervisor(options: SchedulerSupervisorOptions): ProcessSupervisor {
  if (!Number.isInteger(options.replicas) || options.replicas < 1 || options.replicas > 32) throw invalidOption('replicas', options.replicas, 'an integer from 1 to 32');
  const prefix = options.idPrefix ?? `v2-${process.pid}`;
  // A replacement gets a new replica id: the dead one's heartbeat row and leases expire by themselves.
  const generations = new Map<string, number>();
  return createProcessSupervisor({
    component: 'scheduler-v2',
    names: Array.from({ length: options.replicas }, (_, i) => `replica-${i + 1}`),
    ...(options.host !== undefined ? { host: options.host } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.restartDelayMs !== undefined ? { restartDelayMs: options.restartDelayMs } : {}),
    spawn: (name, port) => {
      const generation = (generations.get(name) ?? 0) + 1;
      generations.set(name, generation);
      return spawnSchedulerProcess({
        db: options.db,
        metricsEndpoints: options.metricsEndpoints,
        replicaId: `${prefix}-${name.slice('replica-'.length)}.${generation}`,
        port,
        ...(options.host !== undefined ? { host: options.host } : {}),
        ...(options.followCutover !== undefined ? { followCutover: options.followCutover } : {}),
        ...(options.pollIntervalMs !== undefined ? { pollIntervalMs: options.pollIntervalMs } : {}),
        ...(options.leaseMs !== undefined ? { leaseMs: options.leaseMs } : {}),
        ...(options.harpoon ? { harpoon: options.harpoon } : {}),
        ...(options.state ? { state: options.state } : {}),
        ...(options.tokens ? { tokens: options.tokens } : {}),
      });
    },
  });
}
