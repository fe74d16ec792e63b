import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { DbConfig } from '../lib/db/config.ts';
import { openConnection } from '../lib/db/connection.ts';
import { invalidOption } from '../lib/errors.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import type { AgentStats } from './agent-stats.ts';
import { createAgentStats } from './agent-stats.ts';
import { readEventDelivery, routedToRouter, type DeliverySource, type EventDeliveryState } from '../lib/cutover/event-delivery.ts';
import { claimEvent, completeEvent, resourceDelta, type HostState } from './execute.ts';
import { GOD_QUERY, godQueryParams } from '../legacy/dobe/god-query.ts';
import type { AgentEvent } from '../contracts/agent-event.ts';
import { startRouterSession, type HeldEvent, type RouterSession } from './router-client.ts';
import type { HostProfile } from './host-metrics.ts';

export interface DobeAgentOptions {
  serverId: number;
  /** The `dobe` MySQL user's settings: every agent opens its own connection, as in 2016. */
  db: DbConfig;
  /** Poll interval bounds; each wait is drawn uniformly between them (jitter). */
  pollIntervalMs?: { min: number; max: number };
  /** Simulated time a hypervisor spends executing one event. */
  workMs?: number;
  /** How often the agent writes its host state back to its `servers` row. */
  hostReportIntervalMs?: number;
  /** This hypervisor's region slug; read from its `servers` row at connect when absent. */
  region?: string;
  /**
   * Makes the agent dual-mode: the base URL of its region's Event Router (or
   * of the proxy in front of the routers), or a function of the region slug.
   * Without it the agent is the 2016 one and never reads the cutover state.
   */
  routerUrl?: string | ((region: string) => string);
  /** This hypervisor's token (lib/auth/hypervisor-token.ts); required with routerUrl. */
  routerToken?: string;
  /** In god-query mode, polls between reads of the `event-delivery` cutover row (default 3). */
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
  /** Starts the event loop (after connect()): the god query, or the router stream if the cutover says so. */
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
 * A DOBE agent. Legacy (no `routerUrl`): the infinite loop from the talk —
 * over its own MySQL connection it runs the god query for its hypervisor
 * every 1–5 s, claims and executes what it finds, marks it done, and
 * periodically writes its host state to `servers` (which Scheduler V1 reads).
 *
 * Dual-mode (`routerUrl` + `routerToken`): its event source follows the
 * `event-delivery` cutover state (goesNew, keyed by server id, by region).
 * On the god query it reads the state every few polls over the connection
 * it already holds; when routed, it finishes the poll in hand, closes its
 * MySQL connection and opens one SSE stream to its region's router. The
 * router ends that stream with `event: switch` when the host is routed
 * back; the agent finishes and acks what it holds, then reconnects to MySQL
 * and, first thing, finishes this host's `running` events (claims the
 * router made that never reached it). Completions are recorded exactly
 * once either way (recordCompletion's `done` transition).
 *
 * @example
 *   const agent = createDobeAgent({ serverId: 7, db: dobeConfig });
 *   await agent.start(); … await agent.close();
 */
export function createDobeAgent(options: DobeAgentOptions): DobeAgent {
  const poll = options.pollIntervalMs ?? { min: 1000, max: 5000 };
  if (!Number.isInteger(options.serverId) || options.serverId < 1) throw invalidOption('serverId', options.serverId, 'a positive integer');
  if (!(poll.min > 0 && poll.max >= poll.min)) throw invalidOption('pollIntervalMs', poll, '{ min > 0, max >= min }');
  const dual = options.routerUrl !== undefined;
  if (dual && !options.routerToken) throw invalidOption('routerToken', options.routerToken, 'the hypervisor token (required with routerUrl)');
  const modeCheckEvery = options.modeCheckEvery ?? 3;
  if (!Number.isInteger(modeCheckEvery) || modeCheckEvery < 1) throw invalidOption('modeCheckEvery', modeCheckEvery, 'a positive integer');
  const retryMs = options.routerRetryMs ?? { min: 250, max: 5000 };
  if (!(retryMs.min > 0 && retryMs.max >= retryMs.min)) throw invalidOption('routerRetryMs', retryMs, '{ min > 0, max >= min }');
  const workMs = options.workMs ?? 20;
  const reportEvery = options.hostReportIntervalMs ?? 30_000;
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
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let closed = false;
  let lastReport = 0;
  let failures = 0;
  let polls = 0;
  let toRouter = false;
  let recheckRunningUntil = 0;
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
    return dual && state !== undefined && region !== undefined && routedToRouter(state, options.serverId, region);
  }

  async function connect(): Promise<Connection> {
    const c = await openConnection(options.db);
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
    } catch (err) {
      uncount();
      c.destroy();
      throw err;
    }
    return c;
  }

  async function drop(): Promise<void> {
    const c = conn;
    conn = undefined;
    if (!c) return;
    uncountCurrent();
    await c.end().catch(() => c.destroy());
  }

  /**
   * Text protocol, as DBD::mysql sent it (its prepares were client-side):
   * the server parses and plans the whole god query on every poll, which
   * is the cost that made 15,000 pollers a problem.
   */
  async function runGodQuery(c: Connection, status: 'pending' | 'running' = 'pending'): Promise<AgentEvent[]> {
    const [rows] = await c.query<RowDataPacket[]>(GOD_QUERY, godQueryParams(options.serverId, status));
    return rows as AgentEvent[];
  }

  /**
   * Events this host claimed but could not mark done (the connection died,
   * a lock wait timed out, the router never got the ack). Only this host's
   * agent ever executes them, so finishing them later is not a second
   * execution: nothing was recorded.
   */
  let unfinished: Array<{ row: AgentEvent; receivedAt: Date }> = [];
  let recovered = false;

  function keep(row: AgentEvent, receivedAt: Date): void {
    if (!unfinished.some((u) => u.row.event_id === row.event_id)) unfinished.push({ row, receivedAt });
  }

  async function finish(c: Connection, row: AgentEvent, receivedAt: Date): Promise<void> {
    const after = await completeEvent(c, row, host!, receivedAt, 'god-query');
    if (after) {
      host = after;
      stats.eventsExecuted++;
    } else {
      stats.claimsLost++;
    }
  }

  async function iteration(): Promise<void> {
    if (!conn) {
      conn = await connect();
      stats.reconnects += failures > 0 ? 1 : 0;
    }
    let checked = false;
    if (dual && polls++ % modeCheckEvery === 0) {
      delivery = await readEventDelivery(conn);
      checked = true;
      toRouter = routed(delivery);
    }
    if (!toRouter && (!recovered || (checked && Date.now() < recheckRunningUntil))) {
      // After a restart (kill -9 of the fleet) or a switch back from the router, events claimed for this host are still 'running'.
      const stuck = await runGodQuery(conn, 'running');
      for (const row of stuck) keep(row, now());
      recovered = true;
    }
    while (unfinished.length > 0 && !closed) {
      const { row, receivedAt } = unfinished[0]!;
      await finish(conn, row, receivedAt);
      unfinished.shift();
    }
    // Routed: the poll in hand is done and nothing is half-finished; the router takes it from here.
    if (toRouter) return;
    const rows = await runGodQuery(conn);
    stats.godQueries++;
    const receivedAt = now();
    for (const row of rows) {
      if (closed) break;
      if (!(await claimEvent(conn, row.event_id, options.serverId))) {
        stats.claimsLost++;
        continue;
      }
      unfinished.push({ row, receivedAt });
      if (workMs > 0) await new Promise((r) => setTimeout(r, workMs));
      await finish(conn, row, receivedAt);
      unfinished = unfinished.filter((u) => u.row.event_id !== row.event_id);
    }
    if (Date.now() - lastReport >= reportEvery) {
      lastReport = Date.now();
      await conn.query('UPDATE servers SET memfree = ?, diskfree_actual = ?, vmcount = ?, updated_at = CURRENT_TIMESTAMP(3) WHERE id = ?', [
        host!.memfree,
        host!.diskfree_actual,
        host!.vmcount,
        options.serverId,
      ]);
    }
  }

  function schedule(delayMs: number): void {
    if (closed) return;
    timer = setTimeout(() => {
      running = iteration()
        .then(() => {
          failures = 0;
          if (toRouter) {
            toRouter = false;
            return enterRouter();
          }
          schedule(poll.min + random() * (poll.max - poll.min));
          return undefined;
        })
        .catch(async (err: Error) => {
          stats.errors++;
          failures++;
          log.warn({ err: err.message, failures }, 'poll failed; reconnecting');
          await drop();
          schedule(Math.min(10_000, 250 * 2 ** Math.min(failures, 6)));
        });
    }, delayMs);
  }

  function eventsBase(): string {
    const base = typeof options.routerUrl === 'function' ? options.routerUrl(region!) : options.routerUrl!;
    return `${base.replace(/\/+$/, '')}/v1/regions/${encodeURIComponent(region!)}/hypervisors/${options.serverId}`;
  }

  /** Is the cutover back on the god query? Asked only after a long router outage, over a connection held for milliseconds. */
  async function fallBack(): Promise<boolean> {
    const c = await openConnection(options.db);
    try {
      return !routed(await readEventDelivery(c));
    } finally {
      await c.end().catch(() => c.destroy());
    }
  }

  async function enterRouter(): Promise<void> {
    if (closed) return;
    setSource('router');
    await drop();
    log.info('event source: router');
    // Anything claimed over MySQL and not recorded goes to the router as an ack (the work is done).
    const carry: HeldEvent[] = unfinished.map((u) => ({ ...u, executed: true }));
    unfinished = [];
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
      if (reason === 'switch' && !closed) enterGodQuery(leftover);
    });
  }

  function enterGodQuery(leftover: HeldEvent[]): void {
    setSource('god-query');
    log.info({ leftover: leftover.length }, 'event source: god query');
    for (const h of leftover) keep(h.row, h.receivedAt);
    recovered = false;
    recheckRunningUntil = Date.now() + (options.runningRecheckMs ?? 60_000);
    // The first poll re-reads the cutover row and this host's running events.
    polls = 0;
    schedule(0);
  }

  return {
    serverId: options.serverId,
    host: () => host,
    profile: () => profile,
    alive: () => runningLoop && !closed,
    source: () => source,
    async connect() {
      conn ??= await connect();
    },
    run() {
      runningLoop = true;
      lastReport = Date.now();
      if (routed(delivery)) {
        running = enterRouter();
        return;
      }
      setSource('god-query');
      // connect() has just read the cutover row: the next read comes within modeCheckEvery polls.
      polls = 1;
      // Spread the first polls over one interval so a fleet does not stampede.
      schedule(random() * poll.max);
    },
    async start() {
      await this.connect();
      this.run();
    },
    close() {
      closing ??= (async () => {
        closed = true;
        clearTimeout(timer);
        await running?.catch(() => {});
        await session?.close();
        await drop();
        setSource(undefined);
      })();
      return closing;
    },
  };
}
