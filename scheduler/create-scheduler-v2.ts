import type { Knex } from 'knex';
import { Registry } from 'prom-client';
import { createAdminTokenVerifier } from '../lib/auth/admin-token.ts';
import type { Routing } from '../lib/cutover/types.ts';
import type { DbConfig } from '../lib/db/config.ts';
import { createKnex } from '../lib/db/knex.ts';
import { createHttpService, type HttpService } from '../lib/http/service-server.ts';
import { silentLogger } from '../lib/logger.ts';
import { createBatchPlacer, type EventDecision } from './batch.ts';
import { createExplainer } from './explain-request.ts';
import { createExplainLimiter, createSchedulerRouter, type ExplainAccess, type ExplainInput, type ExplainResult } from './http.ts';
import { createInventory } from './inventory.ts';
import { createMembership } from './membership.ts';
import { createSchedulerMetrics } from './metrics.ts';
import { createModeControl } from './mode.ts';
import { resolveOptions, type SchedulerV2Options } from './options.ts';
import { rankHosts, type RankOptions } from './rank.ts';
import { createHostScraper } from './scraper.ts';
import { createShadow, type ShadowStats } from './shadow.ts';

export type { EventDecision } from './batch.ts';
export type { SchedulerV2Options } from './options.ts';

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
  /** The filter/score breakdown for a hypothetical request; writes nothing. In-process callers see placements unless `access` says otherwise. */
  explain(input: ExplainInput, access?: ExplainAccess): Promise<ExplainResult>;
  shadowStats(): ShadowStats;
  readonly replicaId: string;
  readonly registry: Registry;
}

function isKnex(db: DbConfig | Knex): db is Knex {
  return typeof db === 'function';
}

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
  const resolved = resolveOptions(options);
  const { mode, policy, replicaId, batchSize, pollIntervalMs, scrapeIntervalMs, maxStalenessMs, heartbeatMs } = resolved;

  const log = (options.logger ?? silentLogger()).child({ component: 'scheduler-v2', replica: replicaId });
  const registry = options.registry ?? new Registry();
  const ownsDb = !isKnex(options.db);
  const db = isKnex(options.db) ? options.db : createKnex(options.db, { poolMax: resolved.poolMax });

  const membership = createMembership(db, replicaId, mode, { heartbeatMs, timeoutMs: heartbeatMs * 3 });
  let heartbeatTimer: NodeJS.Timeout | undefined;

  const scraper = createHostScraper({
    endpoints: resolved.endpoints,
    timeoutMs: resolved.scrapeTimeoutMs,
    logger: log,
    observer: { scraped: (endpoint, seconds, ok) => metrics.scrapeSeconds.observe({ endpoint, result: ok ? 'ok' : 'error' }, seconds) },
  });
  const inventory = createInventory({ db, regions: options.regions, refreshMs: resolved.inventoryRefreshMs, reserved: resolved.reserved, metrics: () => scraper.hosts() });
  const metrics = createSchedulerMetrics(registry, { endpoints: () => scraper.status(), hostCounts: () => inventory.hostCounts(maxStalenessMs) });
  for (const outcome of ['placed', 'wait', 'fail', 'conflict-exhausted', 'claim-lost', 'handed-back'] as const) metrics.decisions.inc({ outcome }, 0);
  for (const kind of ['generation', 'capacity', 'lock'] as const) metrics.conflicts.inc({ kind }, 0);

  const modes = createModeControl({ db, options, resolved, inventory, metrics, log });
  const rankOptions = (overrides: Partial<RankOptions> = {}): RankOptions => ({ filters: resolved.filters, policy, overcommit: resolved.overcommit, maxStalenessMs, ...overrides });

  // Placement batches and shadow passes change the host store: one at a time. /explain only reads it (beside them).
  let queue: Promise<unknown> = Promise.resolve();
  function serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = queue.then(fn, fn);
    queue = run.catch(() => {});
    return run;
  }

  // The regions this replica's batches claim first: the background scrape keeps their endpoints freshest.
  let focus: ReadonlySet<string> | undefined;
  const onPreferred = (ids: readonly number[]) => {
    focus = new Set(ids.map((id) => inventory.regionSlug(id)).filter((r): r is string => r !== undefined));
  };
  const placeBatch = createBatchPlacer({ db, resolved, options, inventory, scraper, membership, metrics, mode: modes, log, rankOptions, onPreferred });
  const shadow = createShadow({
    db,
    metrics,
    log,
    rank: (regionId, request, rewindOf, userDroplets, choiceOnly = false) =>
      rankHosts(
        inventory.candidatesFor(inventory.store(), regionId, Date.now(), rewindOf),
        request,
        rankOptions({ ...(choiceOnly ? { top: 1 } : { verdicts: true }), ...(userDroplets ? { userDroplets } : {}) }),
      ),
    prepare: async () => {
      const s = await inventory.ensureLoaded();
      await scraper.ensureFresh(scrapeIntervalMs);
      await s.refreshInflight();
      return s;
    },
    reread: (hostIds) => inventory.store().reread(hostIds),
  });
  const explain = createExplainer({ db, inventory, loadStore: () => serial(inventory.ensureLoaded), scraper, scrapeIntervalMs, maxStalenessMs, policy, rankOptions });
  const verifier = options.tokens === undefined ? undefined : createAdminTokenVerifier(options.tokens);

  let healthy = false;
  const http: HttpService | undefined =
    options.port === undefined
      ? undefined
      : createHttpService({
          name: 'scheduler-v2',
          router: createSchedulerRouter({
            explain,
            decisions: (eventId) => db('placement_decisions').where({ event_id: eventId }).orderBy('id'),
            verifier,
            limiter: createExplainLimiter(resolved.explainConcurrency, resolved.explainRetryAfterSeconds, {
              running: (n) => metrics.explainInflight.set(n),
              busy: () => metrics.explainBusy.inc(),
            }),
          }),
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

  /** What the followed cutover state says to do now, then a batch; returns the number of decisions. */
  async function followPass(): Promise<number> {
    const kind = await modes.nextPass();
    if (kind === 'shadow') await shadow.once();
    return kind === 'place' ? (await placeBatch()).length : 0;
  }

  function loop(): void {
    if (stopped) return;
    sleeping = false;
    let next = pollIntervalMs;
    const work: Promise<unknown> = modes.following
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
  modes.onQueued(() => {
    if (!sleeping || stopped) return;
    sleeping = false;
    clearTimeout(timer);
    timer = setTimeout(loop, 2);
  });

  return {
    replicaId,
    registry,
    placeOnce: () => serial(placeBatch),
    shadowOnce: () => serial(() => shadow.once()),
    shadowStats: () => shadow.stats(),
    cutoverRouting: () => modes.lastRouting(),
    harpoonMode: () => modes.feed() !== undefined,
    explain: (input, access = { placements: true }) => explain(input, access),
    async start() {
      await modes.start();
      await serial(inventory.ensureLoaded);
      await membership.beat(true);
      // On its own timer: a slow batch must not make this replica look dead to the others.
      // In Harpoon mode it only writes: the live replicas are read when a batch needs them.
      heartbeatTimer = setInterval(() => {
        membership.beat(true, !modes.feed()).catch((err: Error) => log.warn({ err: err.message }, 'heartbeat failed'));
      }, heartbeatMs);
      heartbeatTimer.unref();
      await scraper.scrapeNow();
      // Endpoints of other replicas' shares every maxStalenessMs / 2: never stale, a fraction of the scrapes.
      scraper.start(scrapeIntervalMs, { focus: () => focus, othersEveryMs: maxStalenessMs / 2 });
      const address = http ? await http.start() : undefined;
      healthy = true;
      log.info(
        { mode: resolved.follow ? 'follow-cutover' : mode, policy, endpoints: resolved.endpoints.map((e) => e.name), hosts: inventory.loadedStore()?.size ?? 0 },
        'scheduler v2 replica started',
      );
      loop();
      return { url: address?.url };
    },
    close() {
      closing ??= (async () => {
        stopped = true;
        clearTimeout(timer);
        modes.stop();
        clearInterval(heartbeatTimer);
        scraper.close();
        await pass;
        await modes.close();
        await http?.close();
        if (heartbeatTimer) await membership.leave().catch((err: Error) => log.warn({ err: err.message }, 'could not remove the heartbeat row; it expires by itself'));
        if (ownsDb) await db.destroy();
      })();
      return closing;
    },
  };
}
