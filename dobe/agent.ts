import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { DbConfig } from '../lib/db/config.ts';
import { openConnection } from '../lib/db/connection.ts';
import { invalidOption } from '../lib/errors.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import type { AgentStats } from './agent-stats.ts';
import { createAgentStats } from './agent-stats.ts';
import { parseEventDeliveryRow, readEventDelivery, routedToRouter, type DeliverySource, type EventDeliveryState } from '../lib/cutover/event-delivery.ts';
import { resourceDelta, type HostState } from '../domain/completion.ts';
import type { AgentCore, LeasedConnection, PollingMode, PollingModeFactory } from './polling-mode.ts';
import { startRouterSession, type HeldEvent, type RouterSession } from './router-client.ts';
import type { HostProfile } from './host-metrics.ts';

export interface DobeAgentOptions {
  serverId: number;
  /** The `dobe` MySQL user's settings: the agent reads its host row at connect (and, polling, holds its own connection, as in 2016). */
  db: DbConfig;
  /**
   * The legacy event source: polling MySQL (legacy/dobe/god-query-mode.ts
   * `godQueryMode`). Without it the agent takes its events from its
   * region's router only, and `routerUrl` is required.
   */
  polling?: PollingModeFactory;
  /** Poll interval bounds (polling mode); each wait is drawn uniformly between them (jitter). */
  pollIntervalMs?: { min: number; max: number };
  /** Simulated time a hypervisor spends executing one event. */
  workMs?: number;
  /** How often the agent writes its host state back to its `servers` row (polling mode). */
  hostReportIntervalMs?: number;
  /** This hypervisor's region slug; read from its `servers` row at connect when absent. */
  region?: string;
  /**
   * The base URL of its region's Event Router (or of the proxy in front of
   * the routers), or a function of the region slug. With `polling` too the
   * agent is dual-mode and follows the cutover; with `polling` alone it is
   * the 2016 agent and never reads the cutover state.
   */
  routerUrl?: string | ((region: string) => string);
  /** This hypervisor's token (lib/auth/hypervisor-token.ts); required with routerUrl. */
  routerToken?: string;
  /**
   * In god-query mode, polls between reads of the `event-delivery` cutover row (default 1: every poll, a
   * primary-key lookup before the god query, so a region step waits one poll, however stretched, not three).
   */
  modeCheckEvery?: number;
  /** Router reconnect backoff bounds (default 250 ms to 5 s). */
  routerRetryMs?: { min: number; max: number };
  /** A stream silent this long (heartbeats included) is dead (default 45 s; heartbeats come every 15 s). */
  routerIdleTimeoutMs?: number;
  /**
   * With no router reachable for this long, read the cutover row over a
   * short-lived MySQL connection and go back to the god query if it says
   * so (default 30 s): a rollback must not depend on a router being up.
   */
  routerFallbackAfterMs?: number;
  /** After a switch back from the router, re-read this host's `running` events at every mode check for this long (default 60 s). */
  runningRecheckMs?: number;
  stats?: AgentStats;
  logger?: Logger;
  random?: () => number;
  now?: () => Date;
}

export interface DobeAgent {
  /** connect() then run(). */
  start(): Promise<void>;
  /** Opens the connection and reads the host's state (and, dual-mode, the cutover state), without polling yet. */
  connect(): Promise<void>;
  /** Starts the event loop (after connect()): the router stream, or the polling mode if the cutover says so. */
  run(): void;
  close(): Promise<void>;
  readonly serverId: number;
  host(): HostState | undefined;
  /** The hypervisor's fixed facts (name, cpus, totals, errors, state), read from its row at connect. */
  profile(): HostProfile | undefined;
  /** Whether the agent is running (run() called, not closed): its measurements are current. */
  alive(): boolean;
  /** Where events come from now; undefined before run() and after close(). */
  source(): DeliverySource | undefined;
}

/**
 * A DOBE agent: executes its hypervisor's events and reports them done.
 *
 * On its router (`routerUrl` + `routerToken`): it holds no MySQL connection
 * and one SSE stream to its region's router; what it executes it acks to the
 * router, which records it. This is the agent after the migration.
 *
 * With a polling mode (`polling`, the god query from legacy/): alone, it is
 * the 2016 agent; with a router too it is dual-mode and its event source
 * follows the `event-delivery` cutover state (goesNew, keyed by server id,
 * by region). The polling mode hands the agent to its router when routed;
 * the router ends that stream with `event: switch` when the host is routed
 * back, and the agent finishes and acks what it holds, then polls again.
 * After a long router outage it reads the cutover row itself, so a rollback
 * does not depend on a router being up. Completions are recorded exactly
 * once either way.
 *
 * @example
 *   const agent = createDobeAgent({ serverId: 7, db: dobeConfig, routerUrl, routerToken });
 *   await agent.start(); … await agent.close();
 */
export function createDobeAgent(options: DobeAgentOptions): DobeAgent {
  const poll = options.pollIntervalMs ?? { min: 1000, max: 5000 };
  if (!Number.isInteger(options.serverId) || options.serverId < 1) throw invalidOption('serverId', options.serverId, 'a positive integer');
  if (!(poll.min > 0 && poll.max >= poll.min)) throw invalidOption('pollIntervalMs', poll, '{ min > 0, max >= min }');
  const hasRouter = options.routerUrl !== undefined;
  if (!hasRouter && !options.polling) throw invalidOption('routerUrl', options.routerUrl, 'a router URL (or a polling mode in `polling`, for a legacy agent)');
  // Dual mode: the agent follows the cutover between its polling mode and its router.
  const dual = hasRouter && options.polling !== undefined;
  if (hasRouter && !options.routerToken) throw invalidOption('routerToken', options.routerToken, 'the hypervisor token (required with routerUrl)');
  const modeCheckEvery = options.modeCheckEvery ?? 1;
  if (!Number.isInteger(modeCheckEvery) || modeCheckEvery < 1) throw invalidOption('modeCheckEvery', modeCheckEvery, 'a positive integer');
  const retryMs = options.routerRetryMs ?? { min: 250, max: 5000 };
  if (!(retryMs.min > 0 && retryMs.max >= retryMs.min)) throw invalidOption('routerRetryMs', retryMs, '{ min > 0, max >= min }');
  const workMs = options.workMs ?? 20;
  const stats = options.stats ?? createAgentStats();
  const log = (options.logger ?? silentLogger()).child({ component: 'dobe', server_id: options.serverId });
  const random = options.random ?? Math.random;
  const now = options.now ?? (() => new Date());

  let conn: Connection | undefined;
  let host: HostState | undefined;
  let profile: HostProfile | undefined;
  let runningLoop = false;
  let region = options.region;
  let delivery: EventDeliveryState | undefined;
  let source: DeliverySource | undefined;
  let session: RouterSession | undefined;
  let entering: Promise<void> | undefined;
  let closed = false;
  let closing: Promise<void> | undefined;
  let uncountCurrent = () => {};

  function setSource(next: DeliverySource | undefined): void {
    if (source === next) return;
    if (source === 'god-query') stats.onGodQuery--;
    if (source === 'router') stats.onRouter--;
    if (source !== undefined && next !== undefined) stats.switches++;
    if (next === 'god-query') stats.onGodQuery++;
    if (next === 'router') stats.onRouter++;
    source = next;
  }

  function routed(state: EventDeliveryState | undefined): boolean {
    if (!options.polling) return true;
    return dual && state !== undefined && region !== undefined && routedToRouter(state, options.serverId, region);
  }

  /** Reads this host's row (and, following the cutover, the `event-delivery` row) over `c`. */
  async function readHost(c: Connection): Promise<void> {
    const [rows] = await c.query<RowDataPacket[]>(
      'SELECT s.name, s.cpus, s.memory, s.disk, s.error_count, s.state, s.memfree, s.diskfree_actual, s.vmcount, r.slug AS region FROM servers s JOIN regions r ON r.id = s.region_id WHERE s.id = ?',
      [options.serverId],
    );
    const row = rows[0];
    if (!row) throw new Error(`server ${options.serverId} does not exist`);
    host = { memfree: row.memfree, diskfree_actual: row.diskfree_actual, vmcount: row.vmcount };
    region ??= String(row.region);
    profile = {
      name: String(row.name),
      region,
      cpus: Number(row.cpus),
      memory_mb: Number(row.memory),
      disk_gb: Number(row.disk),
      error_count: Number(row.error_count),
      state: String(row.state ?? ''),
    };
    if (dual) delivery = await readEventDelivery(c);
  }

  async function connect(): Promise<Connection> {
    const c = await openConnection(options.db, polling?.multipleStatements ? { multipleStatements: true } : {});
    c.on('error', (err) => {
      log.debug({ err: err.message }, 'connection error');
    });
    stats.connected++;
    let counted = true;
    const uncount = () => {
      if (counted) stats.connected--;
      counted = false;
    };
    c.once('end', uncount);
    c.once('error', uncount);
    uncountCurrent = uncount;
    try {
      await readHost(c);
    } catch (err) {
      uncount();
      c.destroy();
      throw err;
    }
    return c;
  }

  /** The host read over a connection the polling mode lends (a shared pool): the agent then opens none of its own. */
  async function readHostOverLease(lease: () => Promise<LeasedConnection>): Promise<void> {
    const leased = await lease();
    try {
      await readHost(leased.conn);
      leased.release();
    } catch (err) {
      leased.destroy();
      throw err;
    }
  }

  async function drop(): Promise<void> {
    const c = conn;
    conn = undefined;
    if (!c) return;
    uncountCurrent();
    await c.end().catch(() => c.destroy());
  }

  function eventsBase(): string {
    const base = typeof options.routerUrl === 'function' ? options.routerUrl(region!) : options.routerUrl!;
    return `${base.replace(/\/+$/, '')}/v1/regions/${encodeURIComponent(region!)}/hypervisors/${options.serverId}`;
  }

  /** Is the cutover back on the polling mode? Asked only after a long router outage, over a connection held for milliseconds. */
  async function fallBack(): Promise<boolean> {
    if (!dual) return false;
    const c = await openConnection(options.db);
    try {
      return !routed(await readEventDelivery(c));
    } finally {
      await c.end().catch(() => c.destroy());
    }
  }

  async function enterRouter(carry: HeldEvent[] = []): Promise<void> {
    if (closed) return;
    setSource('router');
    await drop();
    log.info('event source: router');
    const base = eventsBase();
    const s = startRouterSession({
      serverId: options.serverId,
      eventsUrl: `${base}/events`,
      acksUrl: `${base}/acks`,
      token: options.routerToken!,
      workMs,
      retryMs,
      idleTimeoutMs: options.routerIdleTimeoutMs ?? 45_000,
      fallbackAfterMs: options.routerFallbackAfterMs ?? 30_000,
      shouldFallBack: fallBack,
      onAcked(row, recorded) {
        if (recorded) {
          const d = resourceDelta(row);
          if (host) host = { memfree: host.memfree + d.memfree, diskfree_actual: host.diskfree_actual + d.diskfree_actual, vmcount: host.vmcount + d.vmcount };
          stats.eventsExecuted++;
        } else {
          stats.claimsLost++;
        }
      },
      carry,
      stats,
      log,
      random,
      now,
    });
    session = s;
    void s.done.then(({ reason, leftover }) => {
      if (session === s) session = undefined;
      if (reason !== 'switch' || closed) return;
      if (polling) {
        enterPolling(leftover);
        return;
      }
      // No polling mode to go back to: a router that sends this host away is misconfigured; ask again later with what is held.
      log.warn({ leftover: leftover.length }, 'router sent the host to a polling mode this agent does not have; reconnecting to the router');
      setTimeout(() => {
        entering = enterRouter(leftover);
      }, retryMs.max).unref();
    });
  }

  function enterPolling(leftover: HeldEvent[]): void {
    setSource('god-query');
    log.info({ leftover: leftover.length }, 'event source: god query');
    polling!.resume(leftover);
  }

  const core: AgentCore = {
    serverId: options.serverId,
    db: options.db,
    stats,
    log,
    workMs,
    pollIntervalMs: poll,
    hostReportIntervalMs: options.hostReportIntervalMs ?? 30_000,
    modeCheckEvery,
    runningRecheckMs: options.runningRecheckMs ?? 60_000,
    dual,
    now,
    random,
    closed: () => closed,
    host: () => host!,
    setHost(next) {
      host = next;
    },
    connected: () => conn !== undefined,
    async connection() {
      conn ??= await connect();
      return conn;
    },
    dropConnection: drop,
    async readRouted(c) {
      delivery = await readEventDelivery(c);
      return routed(delivery);
    },
    routedBy(row) {
      delivery = parseEventDeliveryRow(row);
      return routed(delivery);
    },
    enterRouter,
  };
  const polling: PollingMode | undefined = options.polling?.(core);

  return {
    serverId: options.serverId,
    host: () => host,
    profile: () => profile,
    alive: () => runningLoop && !closed,
    source: () => source,
    async connect() {
      if (polling?.lease && !conn) return readHostOverLease(polling.lease);
      conn ??= await connect();
    },
    run() {
      runningLoop = true;
      if (!polling || routed(delivery)) {
        entering = enterRouter();
        return;
      }
      setSource('god-query');
      polling.start();
    },
    async start() {
      await this.connect();
      this.run();
    },
    close() {
      closing ??= (async () => {
        closed = true;
        await polling?.close();
        await entering?.catch(() => {});
        await session?.close();
        await drop();
        setSource(undefined);
      })();
      return closing;
    },
  };
}
