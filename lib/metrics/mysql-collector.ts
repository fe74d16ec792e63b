import type { Knex } from 'knex';
import { Counter, Gauge, type Registry } from 'prom-client';
import { readMysqlSnapshot, type MysqlSnapshot } from './mysql-snapshot.ts';
import { readUserCommandCounts, type UserCommandCounts } from './user-statistics.ts';

/**
 * SHOW GLOBAL STATUS counters exposed under mysqld_exporter's names
 * (`mysql_global_status_<lowercased name>`), so stock Grafana MySQL
 * dashboards work against any service that registers this collector.
 */
export const STATUS_METRICS: Record<string, string> = {
  threads_connected: 'Currently open connections.',
  threads_running: 'Threads that are not sleeping.',
  max_used_connections: 'Most connections in use at once since the server started.',
  connections: 'Connection attempts since the server started.',
  aborted_connects: 'Failed connection attempts.',
  questions: 'Statements sent by clients.',
  queries: 'Statements executed, including those inside stored programs.',
  slow_queries: 'Queries that took longer than long_query_time.',
  table_locks_waited: 'Table lock requests that had to wait.',
  innodb_row_lock_waits: 'InnoDB row lock waits.',
  com_select: 'SELECT statements.',
  com_insert: 'INSERT statements.',
  com_update: 'UPDATE statements.',
  threadpool_threads: 'Threads in the thread pool.',
};

export interface MysqlCollectorOptions {
  /** A connection (pool) with the PROCESS privilege: the monitor user. */
  db: Knex;
  /** Count only PROCESSLIST rows in this schema. */
  database?: string;
  /** Reuse one snapshot for scrapes within this window (every gauge reads the same instant). */
  cacheMs?: number;
}

/**
 * Registers gauges that read the server at scrape time, and returns a
 * function to read a snapshot directly (for reports).
 *
 * @example
 *   const read = registerMysqlCollector(registry, { db: monitorKnex, database });
 *   // GET /metrics now includes mysql_global_status_threads_connected …
 */
export function registerMysqlCollector(registry: Registry, options: MysqlCollectorOptions): () => Promise<MysqlSnapshot> {
  const cacheMs = options.cacheMs ?? 500;
  let cached: { at: number; value: Promise<MysqlSnapshot | undefined> } | undefined;
  const snapshot = (): Promise<MysqlSnapshot | undefined> => {
    if (!cached || Date.now() - cached.at > cacheMs) {
      cached = { at: Date.now(), value: readMysqlSnapshot(options.db, { database: options.database }).catch(() => undefined) };
    }
    return cached.value;
  };

  new Gauge({
    name: 'mysql_up',
    help: 'Whether the last scrape of the MySQL server succeeded.',
    registers: [registry],
    async collect() {
      this.set((await snapshot()) ? 1 : 0);
    },
  });
  for (const [name, help] of Object.entries(STATUS_METRICS)) {
    new Gauge({
      name: `mysql_global_status_${name}`,
      help: `Generic metric from SHOW GLOBAL STATUS: ${help}`,
      registers: [registry],
      async collect() {
        const snap = await snapshot();
        const value = snap?.status[name];
        if (value !== undefined) this.set(value);
      },
    });
  }
  new Gauge({
    name: 'mysql_global_variables_max_connections',
    help: 'Generic gauge metric from SHOW GLOBAL VARIABLES: max_connections.',
    registers: [registry],
    async collect() {
      const value = (await snapshot())?.variables.max_connections;
      if (value !== undefined) this.set(value);
    },
  });
  new Gauge({
    name: 'mysql_info_schema_processes_by_user',
    help: 'The number of processes by user (information_schema.PROCESSLIST).',
    labelNames: ['mysql_user'],
    registers: [registry],
    async collect() {
      const snap = await snapshot();
      if (!snap) return;
      this.reset();
      for (const [user, n] of Object.entries(snap.byUser)) this.set({ mysql_user: user }, n);
    },
  });
  new Gauge({
    name: 'mysql_info_schema_processlist_threads',
    help: 'The number of threads split by command and state (information_schema.PROCESSLIST).',
    labelNames: ['command', 'state'],
    registers: [registry],
    async collect() {
      const snap = await snapshot();
      if (!snap) return;
      this.reset();
      for (const row of snap.byCommandState) this.inc({ command: row.command, state: row.state || 'idle' }, row.count);
    },
  });
  // Per-user statement counters (mysqld_exporter's info_schema.userstats collector): polling load
  // per service as the server counts it. Rows exist only while the server has `userstat` on.
  let userStats: { at: number; value: Promise<Record<string, UserCommandCounts>> } | undefined;
  const readUserStats = () => {
    if (!userStats || Date.now() - userStats.at > cacheMs) userStats = { at: Date.now(), value: readUserCommandCounts(options.db) };
    return userStats.value;
  };
  for (const [column, key] of [['select', 'select'], ['update', 'update'], ['other', 'other']] as const) {
    new Counter({
      name: `mysql_info_schema_user_statistics_${column}_commands_total`,
      help: `The number of ${column.toUpperCase()} commands executed by the user (information_schema.USER_STATISTICS; needs userstat=1).`,
      labelNames: ['user'],
      registers: [registry],
      async collect() {
        const counts = await readUserStats();
        this.reset();
        for (const [user, c] of Object.entries(counts)) this.inc({ user }, c[key]);
      },
    });
  }
  return async () => {
    const snap = await snapshot();
    if (!snap) return readMysqlSnapshot(options.db, { database: options.database });
    return snap;
  };
}
