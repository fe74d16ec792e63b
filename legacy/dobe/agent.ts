import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { DbConfig } from '../../lib/db/config.ts';
import { openConnection } from '../../lib/db/connection.ts';
import { invalidOption } from '../../lib/errors.ts';
import { silentLogger, type Logger } from '../../lib/logger.ts';
import type { AgentStats } from './agent-stats.ts';
import { createAgentStats } from './agent-stats.ts';
import { claimEvent, completeEvent, type HostState } from './execute.ts';
import { GOD_QUERY, godQueryParams, type GodQueryRow } from './god-query.ts';

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
  stats?: AgentStats;
  logger?: Logger;
  random?: () => number;
  now?: () => Date;
}

export interface DobeAgent {
  /** connect() then run(). */
  start(): Promise<void>;
  /** Opens the connection and reads the host's state, without polling yet. */
  connect(): Promise<void>;
  /** Starts the polling loop (after connect()). */
  run(): void;
  close(): Promise<void>;
  readonly serverId: number;
  host(): HostState | undefined;
}

/**
 * A legacy DOBE agent: the infinite loop from the talk. Over its own MySQL
 * connection it runs the god query for its hypervisor every 1–5 s, claims
 * and executes what it finds, marks it done, and periodically writes its
 * host state to `servers` (which Scheduler V1 reads).
 *
 * @example
 *   const agent = createDobeAgent({ serverId: 7, db: dobeConfig });
 *   await agent.start(); … await agent.close();
 */
export function createDobeAgent(options: DobeAgentOptions): DobeAgent {
  const poll = options.pollIntervalMs ?? { min: 1000, max: 5000 };
  if (!Number.isInteger(options.serverId) || options.serverId < 1) throw invalidOption('serverId', options.serverId, 'a positive integer');
  if (!(poll.min > 0 && poll.max >= poll.min)) throw invalidOption('pollIntervalMs', poll, '{ min > 0, max >= min }');
  const workMs = options.workMs ?? 20;
  const reportEvery = options.hostReportIntervalMs ?? 30_000;
  const stats = options.stats ?? createAgentStats();
  const log = (options.logger ?? silentLogger()).child({ component: 'dobe', server_id: options.serverId });
  const random = options.random ?? Math.random;
  const now = options.now ?? (() => new Date());

  let conn: Connection | undefined;
  let host: HostState | undefined;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let closed = false;
  let lastReport = 0;
  let failures = 0;
  let closing: Promise<void> | undefined;
  let uncountCurrent = () => {};

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
    const [rows] = await c.query<RowDataPacket[]>('SELECT memfree, diskfree_actual, vmcount FROM servers WHERE id = ?', [options.serverId]);
    const row = rows[0];
    if (!row) throw new Error(`server ${options.serverId} does not exist`);
    host = { memfree: row.memfree, diskfree_actual: row.diskfree_actual, vmcount: row.vmcount };
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
  async function runGodQuery(c: Connection, status: 'pending' | 'running' = 'pending'): Promise<GodQueryRow[]> {
    const [rows] = await c.query<RowDataPacket[]>(GOD_QUERY, godQueryParams(options.serverId, status));
    return rows as GodQueryRow[];
  }

  /**
   * Events this host claimed but could not mark done (the connection died,
   * a lock wait timed out). Only this host's agent ever claims them, so
   * finishing them later is not a second execution: nothing was recorded.
   */
  let unfinished: Array<{ row: GodQueryRow; receivedAt: Date }> = [];
  let recovered = false;

  async function finish(c: Connection, row: GodQueryRow, receivedAt: Date): Promise<void> {
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
    if (!recovered) {
      // After a restart (kill -9 of the fleet), events this host had claimed are still 'running'.
      const stuck = await runGodQuery(conn, 'running');
      unfinished.push(...stuck.map((row) => ({ row, receivedAt: now() })));
      recovered = true;
    }
    while (unfinished.length > 0 && !closed) {
      const { row, receivedAt } = unfinished[0]!;
      await finish(conn, row, receivedAt);
      unfinished.shift();
    }
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
          schedule(poll.min + random() * (poll.max - poll.min));
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

  return {
    serverId: options.serverId,
    host: () => host,
    async connect() {
      conn ??= await connect();
    },
    run() {
      lastReport = Date.now();
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
        await drop();
      })();
      return closing;
    },
  };
}
