import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Knex } from 'knex';
import type { Registry } from 'prom-client';
import { HOST_RESERVED } from '../domain/catalog.ts';
import { V1_DEFAULT_OVERCOMMIT } from '../domain/overcommit.ts';
import type { AdminTokenSpecs } from '../lib/auth/admin-token.ts';
import type { DbConfig } from '../lib/db/config.ts';
import { invalidOption } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { SchedulerStateSource } from './cutover-follow.ts';
import { selectFilters, type FilterPlugin } from './filters.ts';
import type { MetricsEndpoint } from './scraper.ts';
import { isPolicy, POLICY_IDS, type PolicyId } from './scorers.ts';
import type { HostReserved } from './state.ts';

export interface SchedulerV2Options {
  /** The `scheduler_v2` MySQL user's settings, or a knex the caller owns. */
  db: DbConfig | Knex;
  /** Host-metrics endpoints (one per region, normally): URLs, or `{ name, url }` to name them in metrics. */
  metricsEndpoints: Array<string | MetricsEndpoint>;
  /** `active` places events; `shadow` only computes what it would do for events V1 places. Default active. */
  mode?: 'active' | 'shadow';
  /** Scoring policy. Default `v1-compatible`. */
  policy?: PolicyId;
  /** Filter ids to run (canonical order is kept). Default: all (the metrics filters and every V1 rule). */
  filters?: string[];
  /** Regions this replica schedules, by id or slug. Default: all. */
  regions?: Array<number | string>;
  /**
   * Follow the `scheduling` cutover state (lib/cutover/scheduling.ts) instead of `mode`: legacy →
   * idle; shadow → shadow passes only (nothing written); canary/full → place only in the regions that
   * have moved (within `regions`), each commit fenced by a shared lock on the cutover row so that V1
   * and V2 never place in one region at once. The state is re-read at most every `intervalMs`
   * (default 500 ms); `true` for the defaults.
   */
  followCutover?: boolean | { intervalMs?: number };
  /**
   * Harpoon replicas and a service token. With it the replica follows `event-writes`: at full its
   * queue is Harpoon's stream and it places by setStatus (no statement on `events`); below full it
   * works over MySQL. Without it, at event-writes full a following replica places nothing.
   */
  harpoon?: { urls: string[]; token: string };
  /**
   * Where the followed cutover state (`scheduling`, `event-writes`) is read from instead of MySQL,
   * e.g. createHttpFeatureStateSource (lib/cutover/http-state-source.ts). The replica starts and
   * closes it. The commit fences still read the rows under a lock in their transaction.
   */
  stateSource?: SchedulerStateSource;
  /** Unique per replica; stored as events.claimed_by and in decisions. */
  replicaId?: string;
  /** Events claimed per batch. Default 100. */
  batchSize?: number;
  /** Pause between batches when there was nothing (or less than a batch) to do. Default 200 ms. */
  pollIntervalMs?: number;
  /** How long a claim lasts; a dead replica's events are claimable again after it. Default 5000 ms. */
  leaseMs?: number;
  /** An event that must wait (hosts busy or unseen) is claimable again after this. Default 500 ms. */
  waitRetryMs?: number;
  /** Placement attempts per event and batch before it is handed back. Default 5. */
  maxAttempts?: number;
  scrapeIntervalMs?: number;
  scrapeTimeoutMs?: number;
  /** A host whose last metrics report is older than this is not chosen ("metrics stale"). Default 10 s. */
  maxStalenessMs?: number;
  /** Heartbeat into scheduler_replicas; a replica silent for 3 heartbeats is considered gone. Default 1000 ms. */
  heartbeatMs?: number;
  /**
   * Claim events of regions other replicas prefer only once they are this old (their owner is overloaded
   * or dead; a dead one also loses its share after 3 missed heartbeats). Default 3000 ms.
   */
  helpAfterMs?: number;
  /**
   * Harpoon mode: a host's busy entry (a create or reboot pending or running on it) older than this
   * is re-read through Harpoon before a batch ranks, in case its completion never reached the stream.
   * Default 10 s.
   */
  busyRecheckMs?: number;
  /** Inventory and ledger reload (new hosts, destroyed droplets). Default 30 s. */
  inventoryRefreshMs?: number;
  overcommit?: number;
  /** What a hypervisor keeps for itself; capacity checks use total minus this. Default HOST_RESERVED. */
  hostReserved?: HostReserved;
  poolMax?: number;
  logger?: Logger;
  registry?: Registry;
  /** Serve /metrics, /healthz, /readyz, POST /explain, GET /decisions/:event_id on this port; omit for no HTTP. */
  port?: number;
  /**
   * Admin tokens (lib/auth/admin-token.ts) accepted on POST /explain (scope `explain`; `placements` to rank
   * with the customer's own hosts) and GET /decisions/:event_id (scope `placements`). Hand a replica digests,
   * `{ sha256: adminTokenDigest(token), scopes }`, so it holds no token it could call with. Without it both
   * routes answer 401.
   */
  tokens?: AdminTokenSpecs;
  /** POST /explain requests answered at once, beside placement; more get 429 SCHEDULER_ERR_EXPLAIN_BUSY. Default 2. */
  explainConcurrency?: number;
  /** The Retry-After of that 429, in seconds. Default 1. */
  explainRetryAfterSeconds?: number;
  host?: string;
  /**
   * Fault injection for tests and drills: sleep after claiming (a replica
   * that stalls holding leases), or between ranking and committing (widens
   * the window in which another replica can take the same host), or in
   * Harpoon mode between a reservation's commit and its placement (the
   * window a crash leaves a reservation to be finished by another replica).
   */
  faults?: { pauseAfterClaimMs?: number; pauseBeforeCommitMs?: number; pauseBeforePlaceMs?: number };
}

/** The options after validation, with every default filled in (what the replica's parts are built from). */
export interface ResolvedOptions {
  mode: 'active' | 'shadow';
  policy: PolicyId;
  filters: FilterPlugin[];
  batchSize: number;
  pollIntervalMs: number;
  leaseMs: number;
  waitRetryMs: number;
  maxAttempts: number;
  scrapeIntervalMs: number;
  scrapeTimeoutMs: number;
  maxStalenessMs: number;
  inventoryRefreshMs: number;
  heartbeatMs: number;
  helpAfterMs: number;
  busyRecheckMs: number;
  overcommit: number;
  poolMax: number;
  reserved: HostReserved;
  explainConcurrency: number;
  explainRetryAfterSeconds: number;
  /** Set when the replica follows the `scheduling` cutover. */
  follow: { intervalMs: number } | undefined;
  replicaId: string;
  endpoints: MetricsEndpoint[];
}

function positive(name: string, value: number | undefined, fallback: number, integer = false): number {
  const v = value ?? fallback;
  if (!(Number.isFinite(v) && v > 0) || (integer && !Number.isInteger(v))) {
    throw invalidOption(name, value, integer ? 'a positive integer' : 'a positive number');
  }
  return v;
}

/**
 * Validates a replica's options once, at construction: a bad one throws
 * CONFIG_ERR_INVALID_OPTION naming the option and the value (redacted where
 * it may hold a secret).
 *
 * @example
 *   const o = resolveOptions({ db, metricsEndpoints: ['http://127.0.0.1:9100/metrics'] });
 *   o.batchSize; // 100
 */
export function resolveOptions(options: SchedulerV2Options): ResolvedOptions {
  const mode = options.mode ?? 'active';
  if (mode !== 'active' && mode !== 'shadow') throw invalidOption('mode', mode, '"active" or "shadow"');
  const policy = options.policy ?? 'v1-compatible';
  if (!isPolicy(policy)) throw invalidOption('policy', policy, `one of ${POLICY_IDS.join(', ')}`);
  let filters: FilterPlugin[];
  try {
    filters = selectFilters(options.filters);
  } catch (err) {
    throw invalidOption('filters', options.filters, (err as Error).message);
  }
  const numbers = {
    batchSize: positive('batchSize', options.batchSize, 100, true),
    pollIntervalMs: positive('pollIntervalMs', options.pollIntervalMs, 200),
    leaseMs: positive('leaseMs', options.leaseMs, 5000),
    waitRetryMs: positive('waitRetryMs', options.waitRetryMs, 500),
    maxAttempts: positive('maxAttempts', options.maxAttempts, 5, true),
    scrapeIntervalMs: positive('scrapeIntervalMs', options.scrapeIntervalMs, 1000),
    scrapeTimeoutMs: positive('scrapeTimeoutMs', options.scrapeTimeoutMs, 2000),
    maxStalenessMs: positive('maxStalenessMs', options.maxStalenessMs, 10_000),
    inventoryRefreshMs: positive('inventoryRefreshMs', options.inventoryRefreshMs, 30_000),
    heartbeatMs: positive('heartbeatMs', options.heartbeatMs, 1000),
    helpAfterMs: positive('helpAfterMs', options.helpAfterMs, 3000),
    busyRecheckMs: positive('busyRecheckMs', options.busyRecheckMs, 10_000),
    overcommit: positive('overcommit', options.overcommit, V1_DEFAULT_OVERCOMMIT),
    poolMax: positive('poolMax', options.poolMax, 3, true),
    explainConcurrency: positive('explainConcurrency', options.explainConcurrency, 2, true),
    explainRetryAfterSeconds: positive('explainRetryAfterSeconds', options.explainRetryAfterSeconds, 1, true),
    reserved: options.hostReserved ?? { ...HOST_RESERVED },
    follow: options.followCutover
      ? { intervalMs: positive('followCutover.intervalMs', typeof options.followCutover === 'object' ? options.followCutover.intervalMs : undefined, 500) }
      : undefined,
  };
  if (options.harpoon !== undefined) {
    const { urls, token } = options.harpoon;
    if (!Array.isArray(urls) || urls.length === 0 || !urls.every((u) => typeof u === 'string' && /^https?:\/\//.test(u))) {
      throw invalidOption('harpoon.urls', '(redacted)', 'a non-empty list of http:// or https:// URLs');
    }
    if (typeof token !== 'string' || token.length < 16) throw invalidOption('harpoon.token', '(redacted)', 'a service token of at least 16 characters');
  }
  if (options.stateSource !== undefined && (typeof options.stateSource.get !== 'function' || typeof options.stateSource.start !== 'function')) {
    throw invalidOption('stateSource', '(object)', 'a feature state source with start(), close() and get(feature)');
  }
  const replicaId = options.replicaId ?? `v2-${hostname().slice(0, 30)}-${process.pid}-${randomBytes(3).toString('hex')}`;
  if (typeof replicaId !== 'string' || replicaId.length === 0 || replicaId.length > 64) {
    throw invalidOption('replicaId', replicaId, 'a string of 1 to 64 characters');
  }
  if (!Array.isArray(options.metricsEndpoints) || options.metricsEndpoints.length === 0) {
    throw invalidOption('metricsEndpoints', options.metricsEndpoints, 'a non-empty list of host-metrics URLs');
  }
  const endpoints: MetricsEndpoint[] = options.metricsEndpoints.map((e, i) => {
    const endpoint = typeof e === 'string' ? { name: endpointName(e, i), url: e } : e;
    try {
      const u = new URL(endpoint.url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
    } catch {
      throw invalidOption(`metricsEndpoints[${i}]`, '(redacted)', 'an http:// or https:// URL');
    }
    return endpoint;
  });
  return {
    ...numbers,
    mode,
    policy,
    filters,
    replicaId,
    endpoints,
  };
}

/** `host:port` of a URL (never its path or credentials), for metric labels. */
function endpointName(url: string, index: number): string {
  try {
    return new URL(url).host || `endpoint-${index}`;
  } catch {
    return `endpoint-${index}`;
  }
}
