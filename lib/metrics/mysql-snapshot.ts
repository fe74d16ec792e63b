import type { Knex } from 'knex';

/** What the server says about itself at one instant. */
export interface MysqlSnapshot {
  at: Date;
  status: Record<string, number>;
  variables: Record<string, number>;
  /** Connections per MySQL user, from information_schema.PROCESSLIST. */
  byUser: Record<string, number>;
  /** Connections per (command, state), as mysqld_exporter groups them. */
  byCommandState: Array<{ command: string; state: string; count: number }>;
  /** Connections in total, from PROCESSLIST (excluding the reader's own). */
  processlistTotal: number;
}

const VARIABLES = ['max_connections', 'open_files_limit', 'thread_pool_size'];

/**
 * Reads connection and query counters from the server itself:
 * `SHOW GLOBAL STATUS`, a few variables, and PROCESSLIST grouped by user.
 * With `database`, PROCESSLIST rows are limited to that schema, so
 * concurrent runs on one server do not count each other.
 *
 * @example
 *   const snap = await readMysqlSnapshot(monitorDb, { database: 'strangler_demo_1' });
 *   snap.byUser.dobe // 15000
 */
export async function readMysqlSnapshot(db: Knex, options: { database?: string } = {}): Promise<MysqlSnapshot> {
  const [statusRows] = (await db.raw('SHOW GLOBAL STATUS')) as [Array<{ Variable_name: string; Value: string }>];
  // The instant the counters were read: rates computed from `at` must not include time spent on the other queries.
  const at = new Date();
  const status: Record<string, number> = {};
  for (const row of statusRows) {
    const n = Number(row.Value);
    if (Number.isFinite(n)) status[row.Variable_name.toLowerCase()] = n;
  }
  const [varRows] = (await db.raw(`SHOW GLOBAL VARIABLES WHERE Variable_name IN (${VARIABLES.map(() => '?').join(',')})`, VARIABLES)) as [
    Array<{ Variable_name: string; Value: string }>,
  ];
  const variables: Record<string, number> = {};
  for (const row of varRows) variables[row.Variable_name.toLowerCase()] = Number(row.Value);

  const filter = options.database ? 'AND DB = ?' : '';
  const binds = options.database ? [options.database] : [];
  // One scan of PROCESSLIST: with 15,000 threads each scan is expensive for the server.
  const [rows] = (await db.raw(
    `SELECT USER AS user, COALESCE(COMMAND, '') AS command, COALESCE(STATE, '') AS state, COUNT(*) AS n
       FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() ${filter} GROUP BY USER, COMMAND, STATE`,
    binds,
  )) as [Array<{ user: string; command: string; state: string; n: number }>];
  const byUser: Record<string, number> = {};
  const byCs = new Map<string, { command: string; state: string; count: number }>();
  let processlistTotal = 0;
  for (const row of rows) {
    const n = Number(row.n);
    byUser[row.user] = (byUser[row.user] ?? 0) + n;
    processlistTotal += n;
    const command = row.command.toLowerCase();
    const state = row.state.toLowerCase();
    const key = `${command}\u0000${state}`;
    const entry = byCs.get(key) ?? { command, state, count: 0 };
    entry.count += n;
    byCs.set(key, entry);
  }
  const byCommandState = [...byCs.values()];
  return { at, status, variables, byUser, byCommandState, processlistTotal };
}
