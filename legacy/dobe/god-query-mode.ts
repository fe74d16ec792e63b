import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { AgentEvent } from '../../contracts/agent-event.ts';
import type { AgentCore, PollingMode, PollingModeFactory, PollingModeRef } from '../../dobe/polling-mode.ts';
import type { HeldEvent } from '../../dobe/router-client.ts';
import { claimEvent, completeEvent } from './execute.ts';
import { godQueryParams, godQuerySql, type GodQueryVariant } from './god-query.ts';
import { sharedPool } from './shared-pool.ts';
import { EVENT_DELIVERY, EVENT_DELIVERY_SQL } from '../../lib/cutover/event-delivery.ts';

/** How a god-query mode reaches MySQL and what it asks. */
export interface GodQueryModeOptions {
  /** The 2016 query (18 tables, no hints) or the optimized one (default). */
  variant?: GodQueryVariant;
  /**
   * Connections shared by all agents of one process (the "connection pooler in front of MySQL"
   * counterfactual); absent, each agent holds its own connection, as in 2016.
   */
  multiplex?: number;
}

/** After a switch back from the router, polls between re-reads of this host's running events. */
const RUNNING_RECHECK_EVERY = 3;

/**
 * The agent's legacy event source, the infinite loop from the talk: over
 * its own MySQL connection it runs the god query for its hypervisor every
 * 1–5 s, claims and executes what it finds, marks it done, and periodically
 * writes its host state to `servers` (which Scheduler V1 reads).
 *
 * Dual mode (the agent has a router): every few polls (every poll by
 * default) it reads the `event-delivery` row over the connection it already
 * holds, in the god query's own packet; when routed,
 * it finishes the poll in hand and hands the agent to its router with what
 * it executed but could not record. Sent back from the router, it first
 * finishes this host's `running` events (claims the router made that never
 * reached it), and re-reads them at every mode check for a while.
 *
 * @example
 *   createDobeAgent({ serverId: 7, db: dobeConfig, polling: godQueryMode });
 */
export function createGodQueryMode(options: GodQueryModeOptions = {}): PollingModeFactory {
  const sql = godQuerySql(options.variant ?? 'optimized');
  return (core) => godQueryPolling(core, sql, options.multiplex);
}

function godQueryPolling(core: AgentCore, sql: string, multiplex: number | undefined): PollingMode {
  const { stats, log, serverId } = core;
  // The cutover row and the god query in one packet: one wait in a saturated server's queue per poll, not two,
  // so a region step reaches its agents a queue wait sooner (and the migration adds no round trip to the legacy).
  const withMode = `${EVENT_DELIVERY_SQL};\n${sql}`;
  const pool = multiplex ? sharedPool(core.db, multiplex, core.dual) : undefined;
  const poll = core.pollIntervalMs;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let closed = false;
  let closing: Promise<void> | undefined;
  let lastReport = 0;
  let failures = 0;
  let polls = 0;
  let toRouter = false;
  let recheckRunningUntil = 0;

  /**
   * Text protocol, as DBD::mysql sent it (its prepares were client-side):
   * the server parses and plans the whole god query on every poll, which
   * is the cost that made 15,000 pollers a problem.
   */
  async function runGodQuery(c: Connection, status: 'pending' | 'running' = 'pending'): Promise<AgentEvent[]> {
    const [rows] = await c.query<RowDataPacket[]>(sql, godQueryParams(serverId, status));
    return rows as AgentEvent[];
  }

  /** The `event-delivery` row and the god query's rows, over a connection that allows multiple statements. */
  async function modeAndGodQuery(c: Connection): Promise<{ routed: boolean; rows: AgentEvent[] }> {
    const [sets] = await c.query<RowDataPacket[][]>(withMode, [EVENT_DELIVERY, ...godQueryParams(serverId)]);
    return { routed: core.routedBy(sets[0]?.[0]), rows: (sets[1] ?? []) as AgentEvent[] };
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
    const after = await completeEvent(c, row, core.host(), receivedAt, 'god-query');
    if (after) {
      core.setHost(after);
      stats.eventsExecuted++;
    } else {
      stats.claimsLost++;
    }
  }

  /** One poll over the agent's own connection, or over a connection leased from the process's shared pool. */
  async function iteration(): Promise<void> {
    if (!pool) return pollOver(await ownConnection());
    const lease = await pool.getConnection();
    try {
      await pollOver(lease);
      lease.release();
    } catch (err) {
      lease.destroy();
      throw err;
    }
  }

  async function ownConnection(): Promise<Connection> {
    const fresh = !core.connected();
    const conn = await core.connection();
    if (fresh) stats.reconnects += failures > 0 ? 1 : 0;
    return conn;
  }

  async function pollOver(conn: Connection): Promise<void> {
    const modeCheck = core.dual && polls % core.modeCheckEvery === 0;
    // After a switch back, the host's running events are re-read every third poll for a while (a claim may have raced the switch).
    const recheck = polls++ % RUNNING_RECHECK_EVERY === 0;
    const readStuck = !recovered || (recheck && Date.now() < recheckRunningUntil);
    let rows: AgentEvent[] | undefined;
    if (modeCheck && !readStuck && unfinished.length === 0) {
      // Routed: the rows are left alone (nothing claimed); the router delivers them.
      ({ routed: toRouter, rows } = await modeAndGodQuery(conn));
      stats.godQueries++;
    } else if (modeCheck) {
      toRouter = await core.readRouted(conn);
    }
    if (!toRouter && readStuck) {
      // After a restart (kill -9 of the fleet) or a switch back from the router, events claimed for this host are still 'running'.
      const stuck = await runGodQuery(conn, 'running');
      for (const row of stuck) keep(row, core.now());
      recovered = true;
    }
    while (unfinished.length > 0 && !closed) {
      const { row, receivedAt } = unfinished[0]!;
      await finish(conn, row, receivedAt);
      unfinished.shift();
    }
    // Routed: the poll in hand is done and nothing is half-finished; the router takes it from here.
    if (toRouter) return;
    if (!rows) {
      rows = await runGodQuery(conn);
      stats.godQueries++;
    }
    const receivedAt = core.now();
    for (const row of rows) {
      if (closed) break;
      if (!(await claimEvent(conn, row.event_id, serverId))) {
        stats.claimsLost++;
        continue;
      }
      unfinished.push({ row, receivedAt });
      if (core.workMs > 0) await new Promise((r) => setTimeout(r, core.workMs));
      await finish(conn, row, receivedAt);
      unfinished = unfinished.filter((u) => u.row.event_id !== row.event_id);
    }
    if (Date.now() - lastReport >= core.hostReportIntervalMs) {
      lastReport = Date.now();
      const host = core.host();
      await conn.query('UPDATE servers SET memfree = ?, diskfree_actual = ?, vmcount = ?, updated_at = CURRENT_TIMESTAMP(3) WHERE id = ?', [
        host.memfree,
        host.diskfree_actual,
        host.vmcount,
        serverId,
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
            // Anything claimed over MySQL and not recorded goes to the router as an ack (the work is done).
            const carry: HeldEvent[] = unfinished.map((u) => ({ ...u, executed: true }));
            unfinished = [];
            return core.enterRouter(carry);
          }
          schedule(poll.min + core.random() * (poll.max - poll.min));
          return undefined;
        })
        .catch(async (err: Error) => {
          stats.errors++;
          failures++;
          log.warn({ err: err.message, failures }, 'poll failed; reconnecting');
          await core.dropConnection();
          schedule(Math.min(10_000, 250 * 2 ** Math.min(failures, 6)));
        });
    }, delayMs);
  }

  return {
    multipleStatements: core.dual,
    ...(pool
      ? {
          async lease() {
            const c = await pool.getConnection();
            return { conn: c, release: () => c.release(), destroy: () => c.destroy() };
          },
        }
      : {}),
    start() {
      lastReport = Date.now();
      // connect() has just read the cutover row: the next read comes within modeCheckEvery polls (the next one, by default).
      polls = 1;
      // Spread the first polls over one interval so a fleet does not stampede.
      schedule(core.random() * poll.max);
    },
    resume(leftover) {
      // Started on the router: host reports count from the switch.
      lastReport ||= Date.now();
      for (const h of leftover) keep(h.row, h.receivedAt);
      recovered = false;
      recheckRunningUntil = Date.now() + core.runningRecheckMs;
      // The first poll re-reads the cutover row and this host's running events.
      polls = 0;
      schedule(0);
    },
    close() {
      closing ??= (async () => {
        closed = true;
        clearTimeout(timer);
        await running?.catch(() => {});
      })();
      return closing;
    },
  };
}

/** The optimized god query over each agent's own connection. */
export const godQueryMode: PollingModeFactory = createGodQueryMode();
/** The 2016 god query (18 tables, no hints) over each agent's own connection: the demo's faithful legacy. */
export const godQuery2016Mode: PollingModeFactory = createGodQueryMode({ variant: '2016' });

/** godQueryMode by module path, for the fleet's worker processes (createFleet's `pollingMode`). */
export const GOD_QUERY_MODE: PollingModeRef = { module: import.meta.url, export: 'godQueryMode' };
/** godQuery2016Mode by module path. */
export const GOD_QUERY_2016_MODE: PollingModeRef = { module: import.meta.url, export: 'godQuery2016Mode' };

/**
 * A god-query mode by module path, for fleet workers: the variant, and optionally the
 * connections all agents of one worker process share (`multiplex`).
 *
 * @example
 *   createFleet({ db, serverIds, pollingMode: godQueryModeRef({ variant: '2016' }) });
 */
export function godQueryModeRef(options: GodQueryModeOptions): PollingModeRef {
  if (!options.multiplex) return options.variant === '2016' ? GOD_QUERY_2016_MODE : GOD_QUERY_MODE;
  return { module: import.meta.url, export: 'createGodQueryMode', args: { ...options } };
}
