import type { Knex } from 'knex';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { routingOfState } from '../../lib/cutover/feature-row.ts';
import { readScheduling, schedulingMoved } from '../../lib/cutover/scheduling.ts';
import { SCHEDULING } from '../../domain/features.ts';
import type { ObservableFeatureStateSource, Routing } from '../../lib/cutover/types.ts';
import type { DbConfig } from '../../lib/db/config.ts';
import { createKnex } from '../../lib/db/knex.ts';
import { invalidOption } from '../../lib/errors.ts';
import { createHttpService, type HttpService } from '../../lib/http/service-server.ts';
import { createRouter } from '../../lib/http/router.ts';
import { silentLogger, type Logger } from '../../lib/logger.ts';
import { rankV1, type V1Decision } from './rank.ts';
import { fetchBusyList, fetchServers, fetchUnscheduled, fetchUserDroplets, type UnscheduledEvent } from './state-queries.ts';

export interface SchedulerV1Options {
  /** The `scheduler_v1` MySQL user's settings, or a knex the caller owns. */
  db: DbConfig | Knex;
  /** V1 polled every second. */
  pollIntervalMs?: number;
  /** Events ranked per pass. */
  batchSize?: number;
  overcommit?: number;
  /**
   * Honour the `scheduling` cutover (default true): each pass skips the
   * regions moved to Scheduler V2, and each placement re-checks its region
   * under a shared lock on the cutover row (lib/cutover/scheduling.ts), so a
   * switch never finds V1 and V2 placing in one region. `false` is the 2016
   * scheduler exactly (benchmarks of V1 alone).
   */
  followCutover?: boolean;
  /**
   * Where each pass reads the `scheduling` state instead of MySQL (e.g.
   * createHttpFeatureStateSource): with every region moved to V2 a pass then
   * sends MySQL nothing at all. V1 starts and closes it. The placement
   * fence still reads the row under a lock in its transaction.
   */
  stateSource?: ObservableFeatureStateSource & { start(): Promise<unknown>; close(): Promise<unknown> };
  logger?: Logger;
  registry?: Registry;
  /** Serve /metrics, /healthz, /readyz on this port (0 = any); omit for no HTTP. */
  port?: number;
  host?: string;
}

export interface SchedulerV1 {
  start(): Promise<{ url?: string }>;
  close(): Promise<void>;
  /** Runs one pass now (tests and the CLI); returns the decisions made. */
  runOnce(): Promise<Array<{ event_id: number; decision: V1Decision }>>;
  readonly registry: Registry;
}

function isKnex(db: DbConfig | Knex): db is Knex {
  return typeof db === 'function';
}

/**
 * Scheduler V1: one loop, one connection, one event at a time. Each pass it
 * polls for unscheduled create events, re-reads every host's row, the busy
 * list and the customer's droplets, ranks with the Perl port and writes
 * `server_id` — the 2016 bottleneck, faithfully single-threaded.
 *
 * @example
 *   const v1 = createSchedulerV1({ db: schedulerConfig, port: 0 });
 *   await v1.start(); … await v1.close();
 */
export function createSchedulerV1(options: SchedulerV1Options): SchedulerV1 {
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const batchSize = options.batchSize ?? 50;
  if (!(pollIntervalMs > 0)) throw invalidOption('pollIntervalMs', pollIntervalMs, 'a positive number of milliseconds');
  if (!Number.isInteger(batchSize) || batchSize < 1) throw invalidOption('batchSize', batchSize, 'a positive integer');
  const log = (options.logger ?? silentLogger()).child({ component: 'scheduler-v1' });
  const registry = options.registry ?? new Registry();
  const ownsDb = !isKnex(options.db);
  // Single-threaded by design: one connection is all V1 ever had.
  const db = isKnex(options.db) ? options.db : createKnex(options.db, { poolMax: 1 });

  const decisions = new Counter({
    name: 'scheduler_v1_decisions_total',
    help: 'Ranking outcomes of Scheduler V1 (place, wait, fail).',
    labelNames: ['action'],
    registers: [registry],
  });
  const passSeconds = new Histogram({
    name: 'scheduler_v1_pass_duration_seconds',
    help: 'Time for one scheduling pass (poll, read host state, rank, write).',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const handedOver = new Counter({
    name: 'scheduler_v1_handed_over_total',
    help: 'Placements V1 dropped because the scheduling cutover had moved the region to Scheduler V2 (checked under the cutover row lock).',
    registers: [registry],
  });
  const movedRegions = new Gauge({
    name: 'scheduler_v1_regions_moved',
    help: 'Regions the scheduling cutover has moved to Scheduler V2 (V1 no longer takes their events), as of the last pass.',
    registers: [registry],
  });
  const follow = options.followCutover ?? true;
  let regionSlugs: { byId: Map<number, string>; at: number } | undefined;
  /**
   * Region ids → slugs, re-read every minute (regions change with a deploy).
   * Inside a placement's transaction pass it: V1 has one connection, and the
   * transaction holds it.
   */
  async function slugs(q: Knex | Knex.Transaction = db): Promise<Map<number, string>> {
    if (!regionSlugs || Date.now() - regionSlugs.at > 60_000) {
      const rows = (await q('regions').select('id', 'slug')) as Array<{ id: number; slug: string }>;
      regionSlugs = { byId: new Map(rows.map((r) => [r.id, r.slug])), at: Date.now() };
    }
    return regionSlugs.byId;
  }
  /** Inside a placement's transaction: does the event's region still belong to V1? */
  async function stillMine(trx: Knex.Transaction, regionId: number): Promise<boolean> {
    if (!follow) return true;
    const { routing } = await readScheduling(trx, { lock: true });
    if (!schedulingMoved(routing, (await slugs(trx)).get(regionId) ?? '')) return true;
    handedOver.inc();
    return false;
  }
  const backlog = new Gauge({
    name: 'scheduler_v1_unscheduled_events',
    help: 'Create events without a host seen by the last pass (capped at the batch size).',
    registers: [registry],
  });
  let healthy = false;
  const http: HttpService | undefined =
    options.port === undefined
      ? undefined
      : createHttpService({ name: 'scheduler-v1', router: createRouter(), registry, logger: log, port: options.port, host: options.host, ready: () => healthy });

  async function place(event: UnscheduledEvent, serverId: number): Promise<boolean> {
    return db.transaction(async (trx) => {
      if (!(await stillMine(trx, event.region_id))) return false;
      const updated = await trx('events')
        .where({ id: event.id, status: 'pending' })
        .whereNull('server_id')
        .update({ server_id: serverId, available_at: trx.raw('CURRENT_TIMESTAMP(3)') });
      if (updated !== 1) return false;
      await trx('droplets').where({ id: event.droplet_id }).update({ server_id: serverId });
      return true;
    });
  }

  async function fail(event: UnscheduledEvent, reason: string): Promise<void> {
    await db.transaction(async (trx) => {
      if (!(await stillMine(trx, event.region_id))) return;
      await trx('events')
        .where({ id: event.id, status: 'pending' })
        .whereNull('server_id')
        .update({ status: 'error', message: reason.slice(0, 255), finished_at: trx.raw('CURRENT_TIMESTAMP(3)') });
      await trx('droplets').where({ id: event.droplet_id }).update({ status: 'error' });
    });
  }

  async function runOnce(): Promise<Array<{ event_id: number; decision: V1Decision }>> {
    const end = passSeconds.startTimer();
    let exclude: number[] = [];
    if (follow) {
      const routing: Routing = options.stateSource ? routingOfState(options.stateSource.get(SCHEDULING)) : (await readScheduling(db)).routing;
      if (routing.mode === 'full') {
        // Every region is V2's, whatever the regions are: not even the region list is read.
        if (regionSlugs) movedRegions.set(regionSlugs.byId.size);
        backlog.set(0);
        end();
        return [];
      }
      const byId = await slugs();
      exclude = [...byId].filter(([, slug]) => schedulingMoved(routing, slug)).map(([id]) => id);
      movedRegions.set(exclude.length);
      if (exclude.length > 0 && exclude.length === byId.size) {
        // Every region is V2's: V1 stops polling the queue altogether.
        backlog.set(0);
        end();
        return [];
      }
    }
    const events = await fetchUnscheduled(db, batchSize, exclude);
    backlog.set(events.length);
    const out: Array<{ event_id: number; decision: V1Decision }> = [];
    if (events.length === 0) {
      end();
      return out;
    }
    const regionIds = [...new Set(events.map((e) => e.region_id))];
    const servers = await fetchServers(db, regionIds);
    const busy = await fetchBusyList(db, regionIds);
    for (const event of events) {
      const result = rankV1({
        servers,
        busy,
        user_droplets: await fetchUserDroplets(db, event.customer_id),
        overcommit: options.overcommit,
        request: {
          event_id: event.id,
          customer_id: event.customer_id,
          region_id: event.region_id,
          size: { slug: event.size_slug, memory: event.size_memory, vcpus: event.size_vcpus, disk: event.size_disk },
        },
      });
      log.debug({ event_id: event.id, lines: result.log }, 'ranked');
      let decision = result.decision;
      if (decision.action === 'place') {
        if (await place(event, decision.server_id)) {
          // The host is now busy creating: later events in this pass must see that, as the Perl's list would.
          (busy[decision.server_name] ??= {}).create = event.id;
        } else {
          decision = { action: 'wait' };
        }
      } else if (decision.action === 'fail') {
        await fail(event, decision.reason);
        log.warn({ event_id: event.id, reason: decision.reason }, 'no host can take this droplet');
      }
      decisions.inc({ action: decision.action });
      out.push({ event_id: event.id, decision });
    }
    end();
    return out;
  }

  let timer: NodeJS.Timeout | undefined;
  let pass: Promise<unknown> | undefined;
  let stopped = false;
  let closing: Promise<void> | undefined;

  function loop(): void {
    if (stopped) return;
    pass = runOnce()
      .then(
        () => {
          healthy = true;
        },
        (err: Error) => {
          healthy = false;
          log.warn({ err: err.message }, 'scheduling pass failed; retrying');
        },
      )
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, pollIntervalMs);
      });
  }

  return {
    registry,
    runOnce,
    async start() {
      if (options.stateSource) await options.stateSource.start();
      const address = http ? await http.start() : undefined;
      loop();
      return { url: address?.url };
    },
    close() {
      closing ??= (async () => {
        stopped = true;
        clearTimeout(timer);
        await pass;
        await options.stateSource?.close();
        await http?.close();
        if (ownsDb) await db.destroy();
      })();
      return closing;
    },
  };
}
