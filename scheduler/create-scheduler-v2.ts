import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Knex } from 'knex';
import { Registry } from 'prom-client';
import { HOST_RESERVED } from '../domain/catalog.ts';
import { V1_DEFAULT_OVERCOMMIT } from '../domain/overcommit.ts';
import { createHarpoonClient } from '../harpoon/client.ts';
import { schedulingMoved } from '../lib/cutover/scheduling.ts';
import type { Routing } from '../lib/cutover/types.ts';
import type { DbConfig } from '../lib/db/config.ts';
import { createKnex } from '../lib/db/knex.ts';
import { invalidOption, StranglerError } from '../lib/errors.ts';
import { createHttpService, type HttpService } from '../lib/http/service-server.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import { loadCatalog, type Catalog } from './catalog.ts';
import { harpoonBackend, mysqlBackend, type BackendRound, type Failure, type PlacementBackend } from './backend.ts';
import { loadUserDroplets, type ClaimedEvent } from './claims.ts';
import { createCutoverFollower, readFollowed, type SchedulerStateSource } from './cutover-follow.ts';
import { createHarpoonFeed, type HarpoonFeed } from './harpoon-feed.ts';
import { schedulerError } from './errors.ts';
import { summarize, type ConflictNote } from './explain.ts';
import { selectFilters, type FilterPlugin, type HostCandidate, type SizeSpec } from './filters.ts';
import { createSchedulerRouter, type ExplainInput, type ExplainResult } from './http.ts';
import { createSchedulerMetrics, type DecisionOutcome } from './metrics.ts';
import type { CommitFence, DecisionRow, PlacementIntent } from './placement.ts';
import { rankHosts, type RankOptions, type RankResult } from './rank.ts';
import { createMembership } from './membership.ts';
import { createHostScraper, type MetricsEndpoint } from './scraper.ts';
import { isPolicy, POLICY_IDS, type PolicyId } from './scorers.ts';
import type { HostRewind } from './rewind.ts';
import { createShadow, type ShadowStats } from './shadow.ts';
import { HostStore, type HostRecord, type HostReserved } from './state.ts';

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

export interface EventDecision {
  event_id: number;
  outcome: DecisionOutcome;
  server_id?: number;
  server_name?: string;
  score?: number;
  attempts: number;
  conflicts: ConflictNote[];
  summary: string;
}

export interface SchedulerV2 {
  start(): Promise<{ url?: string }>;
  close(): Promise<void>;
  /** Claims one batch and places it; returns what happened to each claimed event. */
  placeOnce(): Promise<EventDecision[]>;
  /** With followCutover: the `scheduling` routing as last read (undefined before the first read). */
  cutoverRouting(): Routing | undefined;
  /** Whether the replica takes its queue from and places through Harpoon (event-writes full). */
  harpoonMode(): boolean;
  /** Shadow mode: judges the events V1 decided since the last call. */
  shadowOnce(): Promise<ShadowStats>;
  /** The filter/score breakdown for a hypothetical request; writes nothing. */
  explain(input: ExplainInput): Promise<ExplainResult>;
  shadowStats(): ShadowStats;
  readonly replicaId: string;
  readonly registry: Registry;
}

function isKnex(db: DbConfig | Knex): db is Knex {
  return typeof db === 'function';
}

function positive(name: string, value: number | undefined, fallback: number, integer = false): number {
  const v = value ?? fallback;
  if (!(Number.isFinite(v) && v > 0) || (integer && !Number.isInteger(v))) {
    throw invalidOption(name, value, integer ? 'a positive integer' : 'a positive number');
  }
  return v;
}

interface Work {
  event: ClaimedEvent;
  size: SizeSpec;
  droplet_id: number;
  attempts: number;
  conflicts: ConflictNote[];
  /** Hosts the last ranking put first, in order (for re-reading the fallback on conflict). */
  lastRanked: number[];
}

const WAIT_MEMORY = 100_000;
/** Hosts ranked per event during placement: the choice and the fallbacks re-read on a conflict. */
const FALLBACKS = 4;

/**
 * Scheduler V2: one replica of an active-active set. Each batch it leases
 * unscheduled create events (`FOR UPDATE SKIP LOCKED`, a lease on the DB
 * clock), ranks hosts from scraped metrics with filter and scorer plugins,
 * and commits each placement with a compare-and-swap on the host's
 * generation plus a capacity re-check against the reservation ledger; a
 * conflict re-reads the hosts and falls back to the next-ranked one. Every
 * decision is stored with its explanation. See scheduler/README.md.
 *
 * @example
 *   const v2 = createSchedulerV2({ db: schedulerV2Config, metricsEndpoints: ['http://127.0.0.1:9100/metrics'], port: 0 });
 *   await v2.start(); … await v2.close();
 */
export function createSchedulerV2(options: SchedulerV2Options): SchedulerV2 {
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
  const batchSize = positive('batchSize', options.batchSize, 100, true);
  const pollIntervalMs = positive('pollIntervalMs', options.pollIntervalMs, 200);
  const leaseMs = positive('leaseMs', options.leaseMs, 5000);
  const waitRetryMs = positive('waitRetryMs', options.waitRetryMs, 500);
  const maxAttempts = positive('maxAttempts', options.maxAttempts, 5, true);
  const scrapeIntervalMs = positive('scrapeIntervalMs', options.scrapeIntervalMs, 1000);
  const scrapeTimeoutMs = positive('scrapeTimeoutMs', options.scrapeTimeoutMs, 2000);
  const maxStalenessMs = positive('maxStalenessMs', options.maxStalenessMs, 10_000);
  const inventoryRefreshMs = positive('inventoryRefreshMs', options.inventoryRefreshMs, 30_000);
  const heartbeatMs = positive('heartbeatMs', options.heartbeatMs, 1000);
  const helpAfterMs = positive('helpAfterMs', options.helpAfterMs, 3000);
  const busyRecheckMs = positive('busyRecheckMs', options.busyRecheckMs, 10_000);
  const overcommit = positive('overcommit', options.overcommit, V1_DEFAULT_OVERCOMMIT);
  const poolMax = positive('poolMax', options.poolMax, 3, true);
  const reserved: HostReserved = options.hostReserved ?? { ...HOST_RESERVED };
  const follow = options.followCutover
    ? { intervalMs: positive('followCutover.intervalMs', typeof options.followCutover === 'object' ? options.followCutover.intervalMs : undefined, 500) }
    : undefined;
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

  const log = (options.logger ?? silentLogger()).child({ component: 'scheduler-v2', replica: replicaId });
  const registry = options.registry ?? new Registry();
  const ownsDb = !isKnex(options.db);
  const db = isKnex(options.db) ? options.db : createKnex(options.db, { poolMax });

  const membership = createMembership(db, replicaId, mode, { heartbeatMs, timeoutMs: heartbeatMs * 3 });
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let catalog: Catalog | undefined;
  let store: HostStore | undefined;
  let regionIds: number[] | undefined;
  let inventoryLoadedAt = 0;

  const scraper = createHostScraper({
    endpoints,
    timeoutMs: scrapeTimeoutMs,
    logger: log,
    observer: { scraped: (endpoint, seconds, ok) => metrics.scrapeSeconds.observe({ endpoint, result: ok ? 'ok' : 'error' }, seconds) },
  });
  const metrics = createSchedulerMetrics(registry, {
    endpoints: () => scraper.status(),
    hostCounts: () => {
      const counts = { fresh: 0, stale: 0, missing: 0 };
      if (!store) return counts;
      const hosts = scraper.hosts();
      const now = Date.now();
      for (const h of store.byId.values()) {
        const m = hosts.get(h.name);
        if (!m) counts.missing++;
        else if (now - m.last_report_ms > maxStalenessMs) counts.stale++;
        else counts.fresh++;
      }
      return counts;
    },
  });
  for (const outcome of ['placed', 'wait', 'fail', 'conflict-exhausted', 'claim-lost', 'handed-back'] as const) metrics.decisions.inc({ outcome }, 0);
  for (const kind of ['generation', 'capacity', 'lock'] as const) metrics.conflicts.inc({ kind }, 0);

  const harpoonClient = options.harpoon ? createHarpoonClient({ urls: options.harpoon.urls, token: options.harpoon.token }) : undefined;
  // The loop follows `scheduling` (followCutover) and `event-writes` (a Harpoon is configured): from the
  // state source when given, else from MySQL at most every intervalMs.
  const following = Boolean(follow || harpoonClient);
  const follower = createCutoverFollower(db, { intervalMs: follow?.intervalMs ?? 500, ...(options.stateSource ? { source: options.stateSource } : {}) });
  async function schedulingState(): Promise<{ routing: Routing }> {
    return { routing: (await follower.read()).scheduling };
  }
  /** The regions of `ids` that a routing hands to V2: none in legacy and shadow. */
  const movedOf = (routing: Routing, ids: number[]) => ids.filter((id) => schedulingMoved(routing, catalog!.regionById.get(id) ?? ''));
  /** Why the last fence refused: the scheduling cutover took the region back, or event-writes went to full. */
  let fenceReason: 'scheduling' | 'event-writes' | undefined;
  // Every commit re-reads the state under a shared lock: a placement commits either before a switch
  // (and the other side sees it) or after it (and only if it is still allowed). Direct placements
  // (MySQL mode) also need event-writes below full: after the switch to full a follower reads through
  // Harpoon and would never see a direct write. Harpoon-mode reservations check scheduling only.
  const makeFence =
    (direct: boolean): CommitFence =>
    async (trx) => {
      const state = await readFollowed(trx, { lock: true });
      follower.remember(state);
      fenceReason = undefined;
      if (direct && state.eventWrites.mode === 'full') {
        fenceReason = 'event-writes';
        return () => false;
      }
      if (!follow) return () => true;
      const inScope = regionIds ? new Set(regionIds) : undefined;
      return (id) => {
        const ok = (!inScope || inScope.has(id)) && movedOf(state.scheduling, [id]).length === 1;
        if (!ok) fenceReason = 'scheduling';
        return ok;
      };
    };
  const directFence = following ? makeFence(true) : undefined;
  const harpoonFence = follow ? makeFence(false) : undefined;

  let feed: HarpoonFeed | undefined;
  let startInHarpoonMode = false;
  let feedKey = '';
  let warnedNoHarpoon = false;
  let mysql: PlacementBackend | undefined;
  let viaHarpoon: PlacementBackend | undefined;
  function currentBackend(): PlacementBackend {
    if (feed) {
      viaHarpoon ??= harpoonBackend({ db, client: harpoonClient!, feed, replicaId, leaseMs, waitRetryMs, reserved, policy, ...(harpoonFence ? { fence: harpoonFence } : {}), pauseBeforePlaceMs: options.faults?.pauseBeforePlaceMs, store: () => store!, busyRecheckMs });
      return viaHarpoon;
    }
    mysql ??= mysqlBackend({ db, replicaId, leaseMs, reserved, store: () => store!, ...(directFence ? { fence: directFence } : {}) });
    return mysql;
  }
  let wake: () => void = () => {};
  const sizeOfArgs = (args: unknown) => {
    const slug = args && typeof args === 'object' ? (args as { size?: unknown }).size : undefined;
    return typeof slug === 'string' ? catalog?.sizeBySlug.get(slug) : undefined;
  };
  /**
   * Harpoon mode on (event-writes full) or off. On: busy lists move to the stream, the queue is a
   * catch-up read plus the stream from its cursor. The feed is rebuilt when the scheduling routing
   * changes (regions V1 handed over may hold its direct placements, which Harpoon's log lacks).
   */
  async function setHarpoonMode(on: boolean, key: string): Promise<void> {
    if (feed && (!on || key !== feedKey)) {
      feed.close();
      feed = undefined;
      viaHarpoon = undefined;
      store?.useInflightSource('events');
      metrics.harpoonMode.set(0);
      log.info({ on }, on ? 'scheduling routing changed: Harpoon feed rebuilt' : 'event-writes below full: placing over MySQL again');
    }
    if (!on || feed) return;
    const s = await ensureLoaded();
    const slugs = (regionIds ?? catalog!.regions.map((r) => r.id)).map((id) => catalog!.regionById.get(id)!);
    s.useInflightSource('external');
    const next = createHarpoonFeed({
      client: harpoonClient!,
      regions: slugs,
      onBusy: (e) => s.applyBusy(e, sizeOfArgs(e.args)),
      onReset: () => s.clearInflight(),
      onQueued: () => wake(),
      logger: log,
    });
    try {
      await next.start();
    } catch (err) {
      next.close();
      s.useInflightSource('events');
      throw err;
    }
    feed = next;
    feedKey = key;
    metrics.harpoonMode.set(1);
    log.info({ regions: slugs }, 'event-writes full: queue and placements through Harpoon');
  }

  const rankOptions = (overrides: Partial<RankOptions> = {}): RankOptions => ({ filters, policy, overcommit, maxStalenessMs, ...overrides });

  // Placement batches, shadow passes and /explain all read or change the host store: one at a time.
  let queue: Promise<unknown> = Promise.resolve();
  function serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = queue.then(fn, fn);
    queue = run.catch(() => {});
    return run;
  }

  async function ensureLoaded(): Promise<HostStore> {
    if (!catalog) {
      catalog = await loadCatalog(db);
      if (options.regions) {
        regionIds = options.regions.map((r) => {
          const id = typeof r === 'number' ? (catalog!.regionById.has(r) ? r : undefined) : catalog!.regionBySlug.get(r);
          if (id === undefined) throw invalidOption('regions', r, `a region id or slug; known: ${catalog!.regions.map((x) => x.slug).join(', ')}`);
          return id;
        });
      }
    }
    if (!store || Date.now() - inventoryLoadedAt > inventoryRefreshMs) {
      const next = store ?? new HostStore(db, regionIds);
      // Started at event-writes full: the busy lists come from the feed, never from `events`.
      if (!store && startInHarpoonMode) next.useInflightSource('external');
      await next.loadAll();
      store = next;
      inventoryLoadedAt = Date.now();
    }
    return store;
  }

  function candidatesFor(s: HostStore, regionId: number, now: number, rewindOf?: (serverId: number) => HostRewind): HostCandidate[] {
    const hosts = scraper.hosts();
    return s.hostsInRegion(regionId).map((h) => s.candidate(h, hosts.get(h.name), now, reserved, rewindOf?.(h.id)));
  }

  const waitedOnce = new Set<number>();

  function decisionRow(event_id: number, outcome: DecisionRow['outcome'], rank: RankResult, summary: string, extra: Partial<DecisionRow> = {}): DecisionRow {
    return {
      event_id,
      replica: replicaId,
      outcome,
      server_id: null,
      policy: rank.policy,
      score: null,
      hosts_total: rank.hosts_total,
      hosts_available: rank.hosts_available,
      attempts: 1,
      conflicts: 0,
      summary,
      ...extra,
    };
  }

  async function placeBatch(): Promise<EventDecision[]> {
    const phases: Record<string, number> = {};
    const phase = (name: string, since: number) => {
      phases[name] = (phases[name] ?? 0) + Math.round((performance.now() - since) * 10) / 10;
    };
    let mark = performance.now();
    const s = await ensureLoaded();
    // Own share of the regions first (only replicas running their loop, started with start(), take part
    // in the split; one driven by hand with placeOnce() claims from every region). When the share has
    // nothing to claim, help with any region in scope, but only with events that have waited helpAfterMs:
    // their owner is busy or gone (membership drops a dead replica within three heartbeats), and younger
    // ones would only make two replicas race for the same hosts.
    let scope = regionIds ?? catalog!.regions.map((r) => r.id);
    let claimScope = regionIds;
    if (follow) {
      claimScope = scope = movedOf((await schedulingState()).routing, scope);
      if (scope.length === 0) return [];
    }
    const backend = currentBackend();
    // Harpoon mode reads the live replicas only when there is work (the heartbeat timer only writes).
    if (feed) await membership.refresh();
    const preferred = membership.preferred(scope);
    const shared = preferred.length > 0 && preferred.length < scope.length;
    const taken = await backend.take({ limit: batchSize, scope: claimScope, ...(shared ? { preferred } : {}), helpAfterMs });
    const events = taken.events;
    phase('claim', mark);
    if (events.length === 0 && taken.decided.length === 0) return [];
    const endBatch = metrics.rounds.startTimer();
    metrics.claimed.inc(events.length + taken.decided.length);
    log.debug({ events: events.length, finished: taken.decided.length, backend: backend.kind }, 'claimed');
    if (options.faults?.pauseAfterClaimMs) await sleep(options.faults.pauseAfterClaimMs);
    mark = performance.now();
    await scraper.ensureFresh(scrapeIntervalMs);
    phase('scrape', mark);
    mark = performance.now();
    const batchRegions = [...new Set(events.map((e) => e.region_id))];
    await backend.refreshBusy(batchRegions);
    phase('busy', mark);
    mark = performance.now();
    const customers = [...new Set(events.map((e) => e.customer_id).filter((c): c is number => c !== null))];
    const pairs = [...new Map(events.filter((e) => e.customer_id !== null).map((e) => [`${e.customer_id}:${e.region_id}`, [e.customer_id!, e.region_id] as const])).values()];
    const userDroplets = await loadUserDroplets(db, customers, pairs);
    phase('users', mark);

    const out: EventDecision[] = taken.decided.map((d) => ({ ...d, attempts: 1, conflicts: [] }));
    for (const d of taken.decided) if (d.outcome === 'placed') metrics.placements.inc({ policy });
    const failures: Failure[] = [];
    const waits: number[] = [];
    const waitRows: DecisionRow[] = [];
    let work: Work[] = [];
    for (const event of events) {
      if (!event.size || event.droplet_id === null) {
        const summary = 'cannot place: the create event has no droplet or the droplet has no size.';
        failures.push({
          event_id: event.id,
          region_id: event.region_id,
          droplet_id: event.droplet_id,
          decision: { event_id: event.id, replica: replicaId, outcome: 'failed', server_id: null, policy, score: null, hosts_total: 0, hosts_available: 0, attempts: 1, conflicts: 0, summary },
        });
        out.push({ event_id: event.id, outcome: 'fail', attempts: 1, conflicts: [], summary });
        continue;
      }
      work.push({ event, size: event.size, droplet_id: event.droplet_id, attempts: 0, conflicts: [], lastRanked: [] });
    }

    /** Takes back a placement booked in the local view that did not commit. */
    const unbook = (i: { host: HostRecord; event_id: number; memory: number; disk: number; work: Work }) => {
      s.unreserve(i.host, i.event_id, i);
      const m = i.work.event.customer_id === null ? undefined : userDroplets.get(i.work.event.customer_id);
      const n = m?.get(i.host.id);
      if (m && n !== undefined) {
        if (n > 1) m.set(i.host.id, n - 1);
        else m.delete(i.host.id);
      }
    };

    let rounds = 0;
    while (work.length > 0) {
      rounds++;
      const rankStarted = performance.now();
      const now = Date.now();
      const metricsNow = scraper.hosts();
      // Each region's hosts are turned into candidates once per round; a reservation refreshes just its host.
      const views = new Map<number, { list: HostCandidate[]; index: Map<number, number> }>();
      const viewOf = (regionId: number) => {
        let v = views.get(regionId);
        if (!v) {
          const list = candidatesFor(s, regionId, now);
          v = { list, index: new Map(list.map((c, i) => [c.id, i])) };
          views.set(regionId, v);
        }
        return v;
      };
      const intents: Array<PlacementIntent & { work: Work; host: HostRecord }> = [];
      for (const w of work) {
        w.attempts++;
        const userMap = w.event.customer_id === null ? undefined : userDroplets.get(w.event.customer_id);
        const rank = rankHosts(
          viewOf(w.event.region_id).list,
          { event_id: w.event.id, customer_id: w.event.customer_id ?? undefined, region_id: w.event.region_id, size: w.size },
          rankOptions({ top: FALLBACKS, ...(userMap ? { userDroplets: userMap } : {}) }),
        );
        w.lastRanked = rank.ranked.slice(0, 3).map((r) => r.host.id);
        if (rank.outcome === 'place') {
          const chosen = rank.ranked[0]!;
          const host = s.byId.get(chosen.host.id)!;
          const summary = summarize(rank, { chosen, attempts: w.attempts, conflicts: w.conflicts });
          intents.push({
            work: w,
            host,
            event_id: w.event.id,
            region_id: w.event.region_id,
            droplet_id: w.droplet_id,
            server_id: host.id,
            expected_generation: host.generation,
            memory: w.size.memory,
            disk: w.size.disk,
            decision: decisionRow(w.event.id, 'placed', rank, summary, { server_id: host.id, score: chosen.score, attempts: w.attempts, conflicts: w.conflicts.length }),
          });
          s.reserve(host, w.event.id, w.size);
          const v = viewOf(host.region_id);
          v.list[v.index.get(host.id)!] = s.candidate(host, metricsNow.get(host.name), now, reserved);
          if (w.event.customer_id !== null) {
            let m = userDroplets.get(w.event.customer_id);
            if (!m) userDroplets.set(w.event.customer_id, (m = new Map()));
            m.set(host.id, (m.get(host.id) ?? 0) + 1);
          }
        } else {
          const summary = summarize(rank, { attempts: w.attempts, conflicts: w.conflicts });
          if (rank.outcome === 'wait') {
            waits.push(w.event.id);
            if (!waitedOnce.has(w.event.id)) {
              waitedOnce.add(w.event.id);
              if (waitedOnce.size > WAIT_MEMORY) waitedOnce.delete(waitedOnce.values().next().value!);
              waitRows.push(decisionRow(w.event.id, 'waiting', rank, summary, { attempts: w.attempts, conflicts: w.conflicts.length }));
            }
          } else {
            failures.push({ event_id: w.event.id, region_id: w.event.region_id, droplet_id: w.droplet_id, decision: decisionRow(w.event.id, 'failed', rank, summary, { attempts: w.attempts, conflicts: w.conflicts.length }) });
          }
          out.push({ event_id: w.event.id, outcome: rank.outcome, attempts: w.attempts, conflicts: w.conflicts, summary });
        }
      }
      phase('rank', rankStarted);
      if (intents.length === 0) break;

      if (options.faults?.pauseBeforeCommitMs) await sleep(options.faults.pauseBeforeCommitMs);
      let result: BackendRound;
      let lockFailure = false;
      const commitStarted = performance.now();
      try {
        result = await backend.commit(intents);
      } catch (err) {
        if (!isLockFailure(err)) {
          for (const i of intents) unbook(i);
          throw err;
        }
        // InnoDB chose this transaction as a deadlock victim (or a lock wait timed out): nothing was
        // committed; treat every placement as a conflict and re-rank, like a lost CAS.
        lockFailure = true;
        result = { committed: [], conflicted: intents, conflictedHosts: [...new Set(intents.map((i) => i.server_id))], lost: [], fenced: [] };
      }
      phase('commit', commitStarted);
      const committedHosts = new Set<number>();
      const commitNow = performance.now();
      for (const i of result.committed as typeof intents) {
        committedHosts.add(i.server_id);
        metrics.placements.inc({ policy });
        metrics.latency.observe((commitNow - i.work.event.claimed_at) / 1000);
        if (Number.isFinite(i.work.event.created_ms)) metrics.queueSeconds.observe(Math.max(0, Date.now() - i.work.event.created_ms) / 1000);
        out.push({ event_id: i.event_id, outcome: 'placed', server_id: i.server_id, server_name: i.host.name, score: i.decision.score ?? undefined, attempts: i.work.attempts, conflicts: i.work.conflicts, summary: i.decision.summary });
      }
      for (const id of result.swappedHosts ?? committedHosts) s.byId.get(id)!.generation += 1;
      for (const i of (result.unconfirmed ?? []) as typeof intents) {
        // The reservation stands (the ledger counts it); the next batch that meets the event finishes it.
        out.push({ event_id: i.event_id, outcome: 'wait', server_id: i.server_id, server_name: i.host.name, attempts: i.work.attempts, conflicts: i.work.conflicts, summary: `reserved on ${i.host.name}; Harpoon did not confirm the placement yet: retried.` });
      }
      for (const i of result.lost as typeof intents) {
        unbook(i);
        out.push({ event_id: i.event_id, outcome: 'claim-lost', attempts: i.work.attempts, conflicts: i.work.conflicts, summary: 'lease lost: the event was claimed by another replica or changed before the commit.' });
      }
      const byEventWrites = fenceReason === 'event-writes';
      for (const i of result.fenced as typeof intents) {
        unbook(i);
        const summary = byEventWrites
          ? 'handed back: event-writes went to full before the commit; the event is placed through Harpoon.'
          : 'handed back: the scheduling cutover gave this region back to Scheduler V1 before the commit.';
        out.push({ event_id: i.event_id, outcome: 'handed-back', attempts: i.work.attempts, conflicts: i.work.conflicts, summary });
      }
      // After event-writes went to full no direct write to events may follow: the leases just expire.
      if (!byEventWrites) await backend.release(result.fenced.map((i) => i.event_id), 0);
      const conflicted = result.conflicted as typeof intents;
      if (conflicted.length === 0) break;
      const expected = new Map(conflicted.map((i) => [i.server_id, i.expected_generation]));
      for (const i of conflicted) unbook(i);
      // Re-read the hosts that refused and the fallbacks the last ranking had lined up, and everyone's busy list.
      const reread = new Set<number>(result.conflictedHosts);
      for (const i of conflicted) for (const id of i.work.lastRanked) reread.add(id);
      mark = performance.now();
      await s.reread([...reread]);
      await backend.refreshBusy(batchRegions);
      phase('reread', mark);
      for (const hostId of result.conflictedHosts) {
        const kind = lockFailure ? 'lock' : s.byId.get(hostId)!.generation !== expected.get(hostId) ? 'generation' : 'capacity';
        metrics.conflicts.inc({ kind });
        for (const i of conflicted) if (i.server_id === hostId) i.work.conflicts.push({ host: i.host.name, kind });
      }
      work = [];
      const handBack: number[] = [];
      for (const i of conflicted) {
        if (i.work.attempts >= maxAttempts) {
          handBack.push(i.event_id);
          out.push({ event_id: i.event_id, outcome: 'conflict-exhausted', attempts: i.work.attempts, conflicts: i.work.conflicts, summary: `handed back after ${i.work.attempts} attempts that all conflicted.` });
        } else {
          work.push(i.work);
        }
      }
      await backend.release(handBack, 0);
    }

    mark = performance.now();
    await backend.release(waits, waitRetryMs);
    await backend.recordWaits(waitRows);
    const failed = new Set(await backend.fail(failures));
    phase('finish', mark);
    for (const f of failures) {
      if (!failed.has(f.event_id)) {
        const d = out.find((o) => o.event_id === f.event_id);
        if (d) d.outcome = 'claim-lost';
      }
    }
    const tally: Record<string, number> = {};
    for (const d of out) {
      metrics.decisions.inc({ outcome: d.outcome });
      tally[d.outcome] = (tally[d.outcome] ?? 0) + 1;
    }
    endBatch();
    const example = out.find((d) => d.outcome !== 'placed');
    log.debug({ claimed: events.length + taken.decided.length, rounds, outcomes: tally, ms: phases, preferred, ...(example ? { example: example.summary } : {}) }, 'batch');
    return out;
  }

  const shadow = createShadow({
    db,
    metrics,
    rank: (regionId, request, rewindOf, userDroplets) =>
      rankHosts(candidatesFor(store!, regionId, Date.now(), rewindOf), request, rankOptions({ verdicts: true, ...(userDroplets ? { userDroplets } : {}) })),
    prepare: async () => {
      const s = await ensureLoaded();
      await scraper.ensureFresh(scrapeIntervalMs);
      await s.refreshInflight();
      return s;
    },
    reread: (hostIds) => store!.reread(hostIds),
  });

  async function explain(input: ExplainInput): Promise<ExplainResult> {
    return serial(async () => {
      const s = await ensureLoaded().catch((err: unknown) => {
        if (err instanceof StranglerError) throw err;
        throw schedulerError('SCHEDULER_ERR_NOT_READY', 'the host inventory could not be loaded from the database; retry shortly', err);
      });
      const cat = catalog!;
      const regionId = typeof input.region === 'number' ? (cat.regionById.has(input.region) ? input.region : undefined) : cat.regionBySlug.get(input.region);
      if (regionId === undefined) {
        throw schedulerError('SCHEDULER_ERR_UNKNOWN_REGION', `unknown region ${JSON.stringify(input.region).slice(0, 80)}; known: ${cat.regions.map((r) => r.slug).join(', ')}`);
      }
      if (regionIds && !regionIds.includes(regionId)) {
        throw schedulerError('SCHEDULER_ERR_UNKNOWN_REGION', `region ${cat.regionById.get(regionId)} is not scheduled by this replica; it schedules ${regionIds.map((r) => cat.regionById.get(r)).join(', ')}`);
      }
      let size: SizeSpec | undefined;
      if (typeof input.size === 'string') {
        size = cat.sizeBySlug.get(input.size);
        if (!size) throw schedulerError('SCHEDULER_ERR_UNKNOWN_SIZE', `unknown size ${JSON.stringify(input.size).slice(0, 80)}; known: ${cat.sizes.map((z) => z.slug).join(', ')}`);
      } else {
        size = input.size;
      }
      await scraper.ensureFresh(scrapeIntervalMs);
      await s.refreshInflight();
      const userDroplets = input.customer_id === undefined ? undefined : (await loadUserDroplets(db, [input.customer_id])).get(input.customer_id);
      const rank = rankHosts(
        candidatesFor(s, regionId, Date.now()),
        { customer_id: input.customer_id, region_id: regionId, size },
        rankOptions({ policy: input.policy ?? policy, verdicts: true, ...(userDroplets ? { userDroplets } : {}) }),
      );
      const chosen = rank.ranked[0];
      return {
        outcome: rank.outcome,
        policy: rank.policy,
        region: { id: regionId, slug: cat.regionById.get(regionId)! },
        size,
        chosen: chosen ? { server_id: chosen.host.id, name: chosen.host.name, score: chosen.score, fallback: chosen.tier === 1 } : null,
        summary: summarize(rank, chosen ? { chosen } : {}),
        hosts_total: rank.hosts_total,
        hosts_available: rank.hosts_available,
        rejected: rank.rejected,
        ranked: rank.ranked.slice(0, input.top ?? 10).map((r) => ({ server_id: r.host.id, name: r.host.name, score: r.score, fallback: r.tier === 1 })),
        ...(input.hosts ? { hosts: rank.verdicts ?? [] } : {}),
        max_staleness_ms: maxStalenessMs,
      };
    });
  }

  let healthy = false;
  const http: HttpService | undefined =
    options.port === undefined
      ? undefined
      : createHttpService({
          name: 'scheduler-v2',
          router: createSchedulerRouter({ explain, decisions: (eventId) => db('placement_decisions').where({ event_id: eventId }).orderBy('id') }),
          registry,
          logger: log,
          port: options.port,
          host: options.host,
          ready: () => healthy,
        });

  let timer: NodeJS.Timeout | undefined;
  let pass: Promise<unknown> | undefined;
  let stopped = false;
  let closing: Promise<void> | undefined;

  let sleeping = false;
  let sourceRetry: NodeJS.Timeout | undefined;
  /** The state source's first load; while it cannot be reached the state comes from MySQL, retried every 2 s. */
  async function startStateSource(): Promise<void> {
    try {
      await options.stateSource!.start();
      follower.sourceStarted();
      log.info('cutover state from the state source');
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'cutover state source not reachable; reading the state from MySQL meanwhile');
      if (!stopped) sourceRetry = setTimeout(() => void startStateSource(), 2000);
    }
  }

  /** What the followed cutover state says to do now, then a batch; returns the number of decisions. */
  async function followPass(): Promise<number> {
    const state = await follower.read();
    const toHarpoon = state.eventWrites.mode === 'full';
    if (toHarpoon && !harpoonClient) {
      // A direct placement now would be invisible to everyone reading through Harpoon.
      if (!warnedNoHarpoon) log.warn('event-writes is full but this replica has no harpoon option: it places nothing');
      warnedNoHarpoon = true;
      return 0;
    }
    warnedNoHarpoon = false;
    await setHarpoonMode(toHarpoon, follow ? JSON.stringify(state.scheduling) : '');
    const routingMode = follow ? state.scheduling.mode : mode === 'shadow' ? 'shadow' : 'full';
    if (routingMode === 'legacy') return 0;
    if (routingMode === 'shadow') {
      // Shadow passes read V1's decisions from `events`: none in Harpoon mode.
      if (!feed) await shadow.once();
      return 0;
    }
    if (feed) {
      // Nothing due: no batch, so not a single statement.
      const scope = new Set(follow ? movedOf(state.scheduling, regionIds ?? catalog!.regions.map((r) => r.id)) : (regionIds ?? catalog!.regions.map((r) => r.id)));
      if (!feed.hasDue((q) => scope.has(q.event.region_id))) return 0;
    }
    return (await placeBatch()).length;
  }

  function loop(): void {
    if (stopped) return;
    sleeping = false;
    let next = pollIntervalMs;
    const work: Promise<unknown> = following
      ? serial(followPass).then((n) => {
          if (n >= batchSize) next = 0;
        })
      : mode === 'shadow'
        ? serial(() => shadow.once())
        : serial(placeBatch).then((decisions) => {
            if (decisions.length >= batchSize) next = 0;
          });
    pass = work
      .then(
        () => {
          healthy = true;
        },
        (err: Error) => {
          healthy = false;
          log.warn({ err: err.message }, mode === 'shadow' ? 'shadow pass failed; retrying' : 'placement batch failed; its leases expire and the events are retried');
        },
      )
      .finally(() => {
        if (stopped) return;
        timer = setTimeout(loop, next);
        sleeping = true;
      });
  }
  // Harpoon mode: a new event wakes the loop at once (a few ms, so that a burst makes one batch).
  wake = () => {
    if (!sleeping || stopped) return;
    sleeping = false;
    clearTimeout(timer);
    timer = setTimeout(loop, 2);
  };

  return {
    replicaId,
    registry,
    placeOnce: () => serial(placeBatch),
    shadowOnce: () => serial(() => shadow.once()),
    shadowStats: () => shadow.stats(),
    cutoverRouting: () => follower.last()?.scheduling,
    harpoonMode: () => feed !== undefined,
    explain,
    async start() {
      if (options.stateSource) await startStateSource();
      if (harpoonClient) startInHarpoonMode = (await follower.read()).eventWrites.mode === 'full';
      await serial(ensureLoaded);
      await membership.beat(true);
      // On its own timer: a slow batch must not make this replica look dead to the others.
      // In Harpoon mode it only writes: the live replicas are read when a batch needs them.
      heartbeatTimer = setInterval(() => {
        membership.beat(true, !feed).catch((err: Error) => log.warn({ err: err.message }, 'heartbeat failed'));
      }, heartbeatMs);
      heartbeatTimer.unref();
      await scraper.scrapeNow();
      scraper.start(scrapeIntervalMs);
      const address = http ? await http.start() : undefined;
      healthy = true;
      log.info({ mode: follow ? 'follow-cutover' : mode, policy, endpoints: endpoints.map((e) => e.name), hosts: store?.size ?? 0 }, 'scheduler v2 replica started');
      loop();
      return { url: address?.url };
    },
    close() {
      closing ??= (async () => {
        stopped = true;
        clearTimeout(timer);
        clearTimeout(sourceRetry);
        clearInterval(heartbeatTimer);
        scraper.close();
        await pass;
        feed?.close();
        await options.stateSource?.close();
        await http?.close();
        if (heartbeatTimer) await membership.leave().catch((err: Error) => log.warn({ err: err.message }, 'could not remove the heartbeat row; it expires by itself'));
        if (ownsDb) await db.destroy();
      })();
      return closing;
    },
  };
}

/** MySQL/MariaDB deadlock (1213) or lock wait timeout (1205): the transaction was rolled back. */
function isLockFailure(err: unknown): boolean {
  const errno = (err as { errno?: number }).errno;
  return errno === 1213 || errno === 1205;
}

/** `host:port` of a URL (never its path or credentials), for metric labels. */
function endpointName(url: string, index: number): string {
  try {
    return new URL(url).host || `endpoint-${index}`;
  } catch {
    return `endpoint-${index}`;
  }
}
