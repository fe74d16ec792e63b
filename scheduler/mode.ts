import type { Knex } from 'knex';
import { createHarpoonClient } from '../harpoon/client.ts';
import type { Routing } from '../lib/cutover/types.ts';
import type { Logger } from '../lib/logger.ts';
import { harpoonBackend, mysqlBackend, type PlacementBackend } from './backend.ts';
import { createCutoverFollower } from './cutover-follow.ts';
import { createFences, movedRegions } from './fences.ts';
import { createHarpoonFeed, type HarpoonFeed } from './harpoon-feed.ts';
import type { Inventory } from './inventory.ts';
import type { SchedulerMetrics } from './metrics.ts';
import type { ResolvedOptions, SchedulerV2Options } from './options.ts';

/** What a pass of the replica's loop does, as the followed state says. */
export type PassKind = 'idle' | 'shadow' | 'place';

/**
 * A replica's mode: which cutover state it follows (`scheduling` with
 * followCutover, `event-writes` when a Harpoon is configured; from the state
 * source when given, else from MySQL at most every intervalMs), and the
 * backend its batches use — MySQL below event-writes full, Harpoon's
 * stream and setStatus at full. The Harpoon feed is built on the switch to
 * full and rebuilt when the scheduling routing changes.
 *
 * @example
 *   const mode = createModeControl({ db, options, resolved, inventory, metrics, log });
 *   if ((await mode.nextPass()) === 'place') await placeBatch(mode.backend());
 */
export function createModeControl(deps: {
  db: Knex;
  options: Pick<SchedulerV2Options, 'harpoon' | 'stateSource' | 'faults'>;
  resolved: ResolvedOptions;
  inventory: Inventory;
  metrics: SchedulerMetrics;
  log: Logger;
}) {
  const { db, options, resolved, inventory, metrics, log } = deps;
  const { follow, mode } = resolved;
  const harpoonClient = options.harpoon ? createHarpoonClient({ urls: options.harpoon.urls, token: options.harpoon.token }) : undefined;
  const following = Boolean(follow || harpoonClient);
  const follower = createCutoverFollower(db, { intervalMs: follow?.intervalMs ?? 500, ...(options.stateSource ? { source: options.stateSource } : {}) });
  const fences = createFences({ follower, followScheduling: Boolean(follow), inventory });

  let feed: HarpoonFeed | undefined;
  let feedKey = '';
  let warnedNoHarpoon = false;
  let mysql: PlacementBackend | undefined;
  let viaHarpoon: PlacementBackend | undefined;
  let wake: () => void = () => {};
  let stopped = false;
  let sourceRetry: NodeJS.Timeout | undefined;

  const sizeOfArgs = (args: unknown) => {
    const slug = args && typeof args === 'object' ? (args as { size?: unknown }).size : undefined;
    return typeof slug === 'string' ? inventory.catalog().sizeBySlug.get(slug) : undefined;
  };

  function backend(): PlacementBackend {
    const store = () => inventory.store();
    if (feed) {
      viaHarpoon ??= harpoonBackend({
        db,
        client: harpoonClient!,
        feed,
        replicaId: resolved.replicaId,
        leaseMs: resolved.leaseMs,
        waitRetryMs: resolved.waitRetryMs,
        reserved: resolved.reserved,
        policy: resolved.policy,
        ...(follow ? { fence: fences.harpoon } : {}),
        pauseBeforePlaceMs: options.faults?.pauseBeforePlaceMs,
        store,
        busyRecheckMs: resolved.busyRecheckMs,
      });
      return viaHarpoon;
    }
    mysql ??= mysqlBackend({ db, replicaId: resolved.replicaId, leaseMs: resolved.leaseMs, reserved: resolved.reserved, store, ...(following ? { fence: fences.direct } : {}) });
    return mysql;
  }

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
      inventory.loadedStore()?.useInflightSource('events');
      metrics.harpoonMode.set(0);
      log.info({ on }, on ? 'scheduling routing changed: Harpoon feed rebuilt' : 'event-writes below full: placing over MySQL again');
    }
    if (!on || feed) return;
    const s = await inventory.ensureLoaded();
    const slugs = inventory.scope().map((id) => inventory.regionSlug(id)!);
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

  return {
    /** Whether the loop follows a cutover state (followCutover, or a Harpoon configured). */
    following,
    fences,
    backend,
    feed: (): HarpoonFeed | undefined => feed,
    /** With followCutover: the `scheduling` routing as last read (undefined before the first read). */
    lastRouting: (): Routing | undefined => follower.last()?.scheduling,
    /** Called when the feed queues a new event (the loop wakes at once). */
    onQueued(fn: () => void): void {
      wake = fn;
    },
    /** With followCutover: the regions of `ids` the scheduling cutover has handed to V2 now. */
    async movedNow(ids: readonly number[]): Promise<number[]> {
      return movedRegions(inventory, (await follower.read()).scheduling, ids);
    },
    /** Before the first inventory load: the state source's first load, and whether event-writes is full already. */
    async start(): Promise<void> {
      if (options.stateSource) await startStateSource();
      if (harpoonClient) inventory.startWithExternalBusy((await follower.read()).eventWrites.mode === 'full');
    },
    /** What the followed cutover state says to do now (switching to or from Harpoon mode on the way). */
    async nextPass(): Promise<PassKind> {
      const state = await follower.read();
      const toHarpoon = state.eventWrites.mode === 'full';
      if (toHarpoon && !harpoonClient) {
        // A direct placement now would be invisible to everyone reading through Harpoon.
        if (!warnedNoHarpoon) log.warn('event-writes is full but this replica has no harpoon option: it places nothing');
        warnedNoHarpoon = true;
        return 'idle';
      }
      warnedNoHarpoon = false;
      await setHarpoonMode(toHarpoon, follow ? JSON.stringify(state.scheduling) : '');
      const routingMode = follow ? state.scheduling.mode : mode === 'shadow' ? 'shadow' : 'full';
      if (routingMode === 'legacy') return 'idle';
      // Shadow passes read V1's decisions from `events`: none in Harpoon mode.
      if (routingMode === 'shadow') return feed ? 'idle' : 'shadow';
      if (feed) {
        // Nothing due: no batch, so not a single statement.
        const scope = new Set(follow ? movedRegions(inventory, state.scheduling, inventory.scope()) : inventory.scope());
        if (!feed.hasDue((q) => scope.has(q.event.region_id))) return 'idle';
      }
      return 'place';
    },
    /** Stops retrying the state source (first step of close()). */
    stop(): void {
      stopped = true;
      clearTimeout(sourceRetry);
    },
    /** After the last pass: the feed and the state source. */
    async close(): Promise<void> {
      feed?.close();
      await options.stateSource?.close();
    },
  };
}

export type ModeControl = ReturnType<typeof createModeControl>;
