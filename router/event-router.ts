/**
 * The Event Router: one process (or several) per region, pushing each of
 * the region's events to the agent it belongs to over one Server-Sent-Events
 * stream. Why SSE, how redelivery works and the switch rule between its two
 * event sources: router/README.md.
 *
 * In short:
 * - delivery state lives with the events, never only in memory: pending →
 *   running is the claim (made only when the host's stream is here),
 *   running → done is the ack (exactly once);
 * - after a connect the router re-sends the host's `running` events (minus
 *   the ids the agent says it holds in Last-Event-ID), so nothing claimed
 *   is lost to a router kill -9, a dropped stream or a reconnect elsewhere;
 * - the `event-delivery` cutover state is followed every poll; a host that
 *   is no longer routed here is first removed from the claim set, then told
 *   `event: switch`, so the legacy side never misses a claim made for it;
 * - `event-writes` picks the source: Harpoon at full (harpoon-source.ts),
 *   else the legacy MySQL-polling source the wiring passed in.
 *
 * This file composes the parts: options.ts, metrics.ts, streams.ts,
 * cutover-follower.ts, the sources (event-source.ts), acks.ts, routes.ts.
 */
import { Registry } from 'prom-client';
import { createMysqlPool } from '../lib/db/mysql-pool.ts';
import { createHttpService } from '../lib/http/service-server.ts';
import { silentLogger } from '../lib/logger.ts';
import { createAckProcessor, createAckSlots } from './acks.ts';
import { createCutoverFollower } from './cutover-follower.ts';
import type { EventSource, EventSourceName, SourceContext } from './event-source.ts';
import { createHarpoonSource, type HarpoonSource } from './harpoon-source.ts';
import { createRouterMetrics } from './metrics.ts';
import { routerSettings, type EventRouterOptions } from './options.ts';
import { routerError } from './errors.ts';
import { fetchRegionId } from './queries.ts';
import { createRegionDirectory, createRouterRoutes } from './routes.ts';
import { createStreamHub } from './streams.ts';
import { keyRingSource } from '../lib/auth/hypervisor-keys.ts';

export type { EventRouterOptions, RouterStateSource } from './options.ts';
export type { EventSourceName } from './event-source.ts';

export interface EventRouterStats {
  connected: number;
  inflight: number;
  delivered: number;
  acked: number;
  source: EventSourceName;
}

export interface EventRouter {
  start(): Promise<{ port: number; url: string }>;
  /** Stops polling, ends every stream (agents reconnect elsewhere), lets in-flight acks finish. Idempotent. */
  close(): Promise<void>;
  stats(): EventRouterStats;
  readonly registry: Registry;
}

/**
 * @example
 *   const router = createEventRouter({ db: routerDb, region: 'nyc1', hypervisorKeys: { file: keysPath }, harpoon: { urls, token }, port: 0 });
 *   const { url } = await router.start(); … await router.close();
 */
export function createEventRouter(options: EventRouterOptions): EventRouter {
  const settings = routerSettings(options);
  const { region, pollIntervalMs } = settings;
  const log = (options.logger ?? silentLogger()).child({ component: 'event-router', region });
  const registry = options.registry ?? new Registry();
  // On Harpoon the router's MySQL work is only the acks' non-event writes, a trickle per region:
  // connections a burst opened close again after a minute idle, down to one.
  const pool = createMysqlPool(options.db, settings.poolSize, { maxIdle: 1 });
  const countQuery = (query: string, n = 1) => metric.queries.inc({ query }, n);

  let legacy: EventSource | undefined;
  let harpoon: HarpoonSource | undefined;
  /** The source that owns events now; undefined until the first poll has picked one. */
  let current: EventSource | undefined;
  /** Set while the source switches: acks wait for it. */
  let switching: Promise<void> | undefined;
  /** Acks being processed on the current source, and who waits for them to drain. */
  let acksOnSource = 0;
  const ackDrained: Array<() => void> = [];
  let regionId = 0;
  let polling = false;
  let looping = false;
  let wakeAgain = false;
  let healthy = false;
  let closed = false;
  let pollTimer: NodeJS.Timeout | undefined;
  let currentPoll: Promise<void> | undefined;
  let closing: Promise<void> | undefined;

  const sourceName = (): EventSourceName => current?.name ?? (options.legacySource ? 'mysql' : 'harpoon');
  const metric = createRouterMetrics(registry, {
    connected: () => hub.streams.size,
    inflight: () => hub.inflight.size,
    source: sourceName,
    harpoonConnected: () => harpoon?.connected() ?? false,
    harpoonCursor: () => harpoon?.cursor(),
  });
  const hub = createStreamHub({ metric, log });
  const slots = createAckSlots(pool, settings.poolSize);
  const acks = createAckProcessor({ hub, metric });
  const directory = createRegionDirectory(pool, countQuery);
  const cutover = createCutoverFollower({
    region,
    pool,
    stateSource: options.stateSource,
    hub,
    log,
    countQuery,
    claiming: () => Boolean(legacy?.claiming() || harpoon?.claiming()),
    onChange: wake,
  });

  /** Harpoon at full `event-writes` (when configured); else the legacy source, or Harpoon when there is none. */
  function wantedSource(): EventSource | undefined {
    if (harpoon && (cutover.writes().routing.mode === 'full' || !legacy)) return harpoon;
    return legacy;
  }

  /**
   * Switches between two polls. Acks already running finish on the old
   * source first (a direct MySQL `done` after the switch would be a write
   * Harpoon's stream never carries); acks arriving meanwhile wait for the
   * switch, then use the new one.
   */
  async function followSource(): Promise<void> {
    const want = wantedSource();
    if (want === current || !want) return;
    if (cutover.writes().routing.mode !== 'full' && want === harpoon && current === undefined) {
      log.warn('event-writes is below full and no legacy source was given: reading events from Harpoon');
    }
    let release!: () => void;
    switching = new Promise<void>((r) => (release = r));
    try {
      while (acksOnSource > 0) await new Promise<void>((r) => ackDrained.push(r));
      const previous = current;
      await want.activate();
      await previous?.deactivate();
      current = want;
      if (previous) {
        metric.sourceSwitches.inc({ to: want.name });
        if (want.name === 'mysql') log.info('event-writes is below full: back to polling MySQL');
      }
    } finally {
      switching = undefined;
      release();
    }
  }

  async function onSource<T>(fn: (source: EventSource) => Promise<T>): Promise<T> {
    while (switching || !current) {
      if (closed) throw routerError('ROUTER_ERR_SHUTTING_DOWN', 'this router is shutting down; reconnect');
      await (switching ?? new Promise((r) => setTimeout(r, 10)));
    }
    const source = current;
    acksOnSource++;
    try {
      return await fn(source);
    } finally {
      if (--acksOnSource === 0) for (const r of ackDrained.splice(0)) r();
    }
  }

  /** Resolves true when more work is likely waiting, so the next poll comes at once. */
  async function poll(): Promise<boolean> {
    const end = metric.pollSeconds.startTimer();
    try {
      // A state source is read from memory (it refreshes itself and wakes the loop on a change).
      await cutover.refresh(false);
      await followSource();
      for (const other of [legacy, harpoon]) if (other && other !== current) other.idle();
      return (await current?.tick()) ?? false;
    } finally {
      end();
    }
  }

  function wake(): void {
    // Before start() runs the first poll there is nothing to wake (a source's first load emits changes too).
    if (closed || !looping) return;
    if (polling) {
      wakeAgain = true;
      return;
    }
    clearTimeout(pollTimer);
    loop();
  }

  function loop(): void {
    // One loop only: a second would switch sources concurrently with the first.
    if (closed || polling) return;
    let full = false;
    polling = true;
    currentPoll = poll()
      .then(
        (more) => {
          healthy = true;
          full = more;
        },
        (err: Error) => {
          healthy = false;
          metric.pollErrors.inc();
          log.warn({ err: err.message }, 'poll failed; retrying next interval');
        },
      )
      .finally(() => {
        polling = false;
        const now = full || wakeAgain;
        wakeAgain = false;
        if (!closed) pollTimer = setTimeout(loop, now ? 0 : pollIntervalMs);
      });
  }

  // A file ring is followed as it changes (rotation, revocation without a restart).
  const keys = keyRingSource(settings.hypervisorKeys);
  const http = createHttpService({
    name: 'event-router',
    router: createRouterRoutes({
      region,
      keys: () => keys.current(),
      takeoverIntervalMs: settings.takeoverIntervalMs,
      pollIntervalMs,
      directory,
      cutover,
      hub,
      acks,
      metric,
      log,
      closed: () => closed,
      onSource,
      streamOpened: (serverId) => current?.streamOpened(serverId),
    }),
    registry,
    logger: log,
    port: options.port,
    host: options.host,
    ready: () => healthy && !closed,
  });

  return {
    registry,
    stats: () => ({ connected: hub.streams.size, inflight: hub.inflight.size, delivered: hub.delivered(), acked: acks.acked(), source: sourceName() }),
    async start() {
      try {
        countQuery('region');
        const id = await fetchRegionId(pool, region);
        if (id === undefined) throw routerError('ROUTER_ERR_UNKNOWN_REGION', `region "${region}" does not exist in the regions table`);
        regionId = id;
        await directory.load();
        const context: SourceContext = {
          settings,
          regionId,
          pool,
          hub,
          metric,
          log,
          countQuery,
          withAckConnection: slots.withConnection,
          withAckSlot: slots.withSlot,
          claimsSettled: () => cutover.applyRouting(),
          closed: () => closed,
        };
        legacy = options.legacySource?.(context);
        harpoon = settings.harpoon ? createHarpoonSource(context, settings.harpoon) : undefined;
        await cutover.start();
        await cutover.refresh(false);
      } catch (err) {
        await cutover.close();
        await pool.end().catch(() => {});
        closed = true;
        throw err;
      }
      const address = await http.start();
      hub.startHeartbeat(settings.heartbeatMs);
      looping = true;
      loop();
      log.info({ url: address.url, hypervisors: directory.count(region) }, 'event router started');
      return address;
    },
    close() {
      closing ??= (async () => {
        closed = true;
        keys.close();
        clearTimeout(pollTimer);
        await currentPoll;
        await Promise.allSettled(acks.pending());
        for (const source of [harpoon, legacy]) await source?.close().catch(() => {});
        // No switch event: the agents stay on the router path and reconnect (to a sibling, or to us restarted).
        hub.endAll();
        const done = http.close();
        const force = setTimeout(() => http.server.closeAllConnections(), 5000);
        await done;
        clearTimeout(force);
        await cutover.close();
        await pool.end().catch(() => {});
      })();
      return closing;
    },
  };
}
