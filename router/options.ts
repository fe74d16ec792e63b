import type { Registry } from 'prom-client';
import type { DbConfig } from '../lib/db/config.ts';
import { invalidOption } from '../lib/errors.ts';
import type { ObservableFeatureStateSource } from '../lib/cutover/types.ts';
import type { Logger } from '../lib/logger.ts';
import type { EventSourceFactory } from './event-source.ts';
import type { HypervisorKeyRing } from '../lib/auth/hypervisor-keys.ts';

export interface EventRouterOptions {
  /** The `event_router` MySQL user's settings. */
  db: DbConfig;
  /** The region slug this router serves. */
  region: string;
  /**
   * The keys hypervisor tokens are checked against (lib/auth/hypervisor-keys.ts): a ring, or its file,
   * re-read when it changes so rotations and revocations apply without a restart.
   */
  hypervisorKeys: HypervisorKeyRing | { file: string };
  /** A second stream for a host that has one replaces it at most 3 times per this many ms (default 10 s); more is a 429. */
  takeoverIntervalMs?: number;
  pollIntervalMs?: number;
  /** Heartbeat comment interval on every stream (one shared timer). */
  heartbeatMs?: number;
  /** A claim not acked for this long is re-sent to its host's stream if this stream has not carried it. */
  redeliverAfterMs?: number;
  /** Events claimed per poll at most. */
  batchSize?: number;
  /** MySQL connections this router may hold (default 5): acks use all but one, which the poll loop keeps. */
  poolSize?: number;
  /**
   * Harpoon's replicas and the router's service token. With them the router follows `event-writes`:
   * at `full` it takes its region's events from Harpoon's stream and writes claims and `done` through
   * Harpoon, never touching `events`.
   */
  harpoon?: { urls: string[]; token: string };
  /**
   * The source of the legacy and transition stages, used while `event-writes` is below full: the
   * MySQL-polling source (legacy/router/mysql-source.ts), passed in by the wiring that runs those
   * stages so that the router itself never imports legacy code. Without it the router reads Harpoon
   * only (the post-migration system).
   */
  legacySource?: EventSourceFactory;
  /**
   * Where the cutover state comes from (e.g. createHttpFeatureStateSource): the router starts and
   * closes it. Absent: the router reads `cutover_features` over its MySQL pool on every poll.
   */
  stateSource?: RouterStateSource;
  registry?: Registry;
  logger?: Logger;
  port?: number;
  host?: string;
}

/** A cutover state source the router owns: CutoverStateReader's shape (proxy/cutover/state-store.ts). */
export interface RouterStateSource extends ObservableFeatureStateSource {
  start(): Promise<void>;
  refresh(): Promise<void>;
  close(): Promise<void>;
  readonly lastReadAt: Date | undefined;
}

/** The options with their defaults, checked once. */
export interface RouterSettings {
  region: string;
  hypervisorKeys: HypervisorKeyRing | { file: string };
  takeoverIntervalMs: number;
  pollIntervalMs: number;
  heartbeatMs: number;
  redeliverAfterMs: number;
  batchSize: number;
  poolSize: number;
  harpoon: { urls: string[]; token: string } | undefined;
}

/**
 * Defaults and validation of EventRouterOptions; errors name the option and the value.
 *
 * @example
 *   const settings = routerSettings({ db, region: 'nyc1', hypervisorKeys, harpoon });   // throws CONFIG_ERR_INVALID_OPTION
 */
export function routerSettings(options: EventRouterOptions): RouterSettings {
  const region = options.region;
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const redeliverAfterMs = options.redeliverAfterMs ?? 15_000;
  const batchSize = options.batchSize ?? 1000;
  const poolSize = options.poolSize ?? 5;
  if (typeof region !== 'string' || !/^[a-z0-9-]{1,32}$/.test(region)) throw invalidOption('region', region, 'a region slug such as "nyc1"');
  if (typeof options.hypervisorKeys !== 'object' || options.hypervisorKeys === null) throw invalidOption('hypervisorKeys', '[redacted]', 'a hypervisor key ring or { file }');
  const takeoverIntervalMs = options.takeoverIntervalMs ?? 10_000;
  if (!(takeoverIntervalMs >= 0)) throw invalidOption('takeoverIntervalMs', takeoverIntervalMs, 'a non-negative number of milliseconds');
  if (!(pollIntervalMs >= 10)) throw invalidOption('pollIntervalMs', pollIntervalMs, 'at least 10 milliseconds');
  if (!(heartbeatMs >= 100)) throw invalidOption('heartbeatMs', heartbeatMs, 'at least 100 milliseconds');
  if (!(redeliverAfterMs >= 100)) throw invalidOption('redeliverAfterMs', redeliverAfterMs, 'at least 100 milliseconds');
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) throw invalidOption('batchSize', batchSize, 'an integer from 1 to 10000');
  if (!Number.isInteger(poolSize) || poolSize < 2 || poolSize > 64) throw invalidOption('poolSize', poolSize, 'an integer from 2 to 64');
  if (options.harpoon !== undefined) {
    const h = options.harpoon;
    if (!Array.isArray(h.urls) || h.urls.length === 0 || !h.urls.every((u) => typeof u === 'string' && /^https?:\/\//.test(u))) {
      throw invalidOption('harpoon.urls', h.urls, 'a non-empty list of http(s) URLs of Harpoon replicas');
    }
    if (typeof h.token !== 'string' || h.token.length < 16) throw invalidOption('harpoon.token', '[redacted]', 'a Harpoon service token of at least 16 characters');
  }
  if (options.legacySource !== undefined && typeof options.legacySource !== 'function') {
    throw invalidOption('legacySource', typeof options.legacySource, 'a function that creates the legacy event source');
  }
  if (options.harpoon === undefined && options.legacySource === undefined) {
    throw invalidOption('harpoon', undefined, 'Harpoon settings { urls, token } (or, for the legacy stages, a legacySource)');
  }
  return { region, hypervisorKeys: options.hypervisorKeys, takeoverIntervalMs, pollIntervalMs, heartbeatMs, redeliverAfterMs, batchSize, poolSize, harpoon: options.harpoon };
}
