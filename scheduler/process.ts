import { fileURLToPath } from 'node:url';
import type { FollowerHarpoonSettings, FollowerJsonOptions, FollowerStateSettings } from '../lib/cutover/follower-options.ts';
import type { AdminTokenSpecs } from '../lib/auth/admin-token.ts';
import { formatMysqlUrl, type DbConfig } from '../lib/db/config.ts';
import { spawnServiceProcess, type ServiceProcess } from '../lib/process/service-process.ts';
import type { MetricsEndpoint } from './scraper.ts';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

export interface SchedulerProcessOptions {
  /** The `scheduler_v2` MySQL user on the run's database. */
  db: DbConfig;
  /** Host-metrics endpoints, one per region normally. */
  metricsEndpoints: readonly MetricsEndpoint[];
  /** Unique per process (a replacement gets a new one: the dead one's leases expire on their own). */
  replicaId: string;
  /** A concrete port: a replacement listens where the dead one did, so the gate scraper's URL stays valid. */
  port: number;
  host?: string;
  /** Follow the `scheduling` cutover row (default true); false: active everywhere. */
  followCutover?: boolean;
  pollIntervalMs?: number;
  leaseMs?: number;
  /** Harpoon's replicas and the scheduler's service token: the replica follows `event-writes` (scheduler/README.md). */
  harpoon?: FollowerHarpoonSettings;
  /** The cutover admin's state endpoint: the replica reads its cutover state over HTTP instead of MySQL. */
  state?: FollowerStateSettings;
  /** Admin tokens POST /explain and GET /decisions accept: hand digests (`{ sha256, scopes }`), never the operator's token. */
  tokens?: AdminTokenSpecs;
  /** Fault injection (drills, kill -9 tests): Harpoon mode sleeps this long between a reservation and its placement. */
  pauseBeforePlaceMs?: number;
  logLevel?: string;
  readyTimeoutMs?: number;
}

/**
 * Runs one Scheduler V2 replica as its own process (`scheduler/main.ts`)
 * and resolves once it answers `/readyz`: a replica that a kill -9 takes
 * down alone. It exits when this process does (IPC lifeline).
 *
 * @example
 *   const r = await spawnSchedulerProcess({ db, metricsEndpoints, replicaId: 'v2-1', port: 8201 });
 *   … r.child.kill('SIGTERM'); await r.exited;
 */
export function spawnSchedulerProcess(options: SchedulerProcessOptions): Promise<ServiceProcess> {
  const host = options.host ?? '127.0.0.1';
  return spawnServiceProcess({
    name: `scheduler v2 replica ${options.replicaId}`,
    main: MAIN,
    url: `http://${host}:${options.port}`,
    errorCode: 'SCHEDULER_ERR_START',
    ...(options.readyTimeoutMs !== undefined ? { readyTimeoutMs: options.readyTimeoutMs } : {}),
    env: {
      SCHEDULER_V2_MYSQL_URL: formatMysqlUrl(options.db),
      SCHEDULER_V2_METRICS_URLS: options.metricsEndpoints.map((e) => `${e.name}=${e.url}`).join(','),
      SCHEDULER_V2_REPLICA_ID: options.replicaId,
      SCHEDULER_V2_MODE: options.followCutover === false ? 'active' : 'follow-cutover',
      ...(options.pollIntervalMs !== undefined ? { SCHEDULER_V2_POLL_MS: String(options.pollIntervalMs) } : {}),
      ...(options.leaseMs !== undefined ? { SCHEDULER_V2_LEASE_MS: String(options.leaseMs) } : {}),
      ...(options.harpoon || options.state
        ? { SCHEDULER_V2_OPTIONS: JSON.stringify({ harpoon: options.harpoon, state: options.state } satisfies FollowerJsonOptions) }
        : {}),
      ...(options.tokens ? { SCHEDULER_V2_TOKENS: JSON.stringify(options.tokens) } : {}),
      ...(options.pauseBeforePlaceMs !== undefined ? { SCHEDULER_V2_FAULT_PAUSE_BEFORE_PLACE_MS: String(options.pauseBeforePlaceMs) } : {}),
      PORT: String(options.port),
      HOST: host,
      LOG_LEVEL: options.logLevel ?? process.env.LOG_LEVEL ?? 'warn',
    },
  });
}
