import mysql, { type Pool } from 'mysql2/promise';
import type { DbConfig } from './config.ts';

/**
 * A bounded mysql2 pool for a service that writes its own SQL (the Event
 * Router, Harpoon): UTC date strings, few prepared statements per
 * connection (mysql2 preallocates them), and sessions in UTC with READ
 * COMMITTED, so transactions lock exactly the rows they change, never the
 * gaps that other writers' INSERTs need.
 *
 * @example
 *   const pool = createMysqlPool(config, 4);
 *   const bursty = createMysqlPool(config, 5, { maxIdle: 1 });   // keeps one open when quiet
 *   const [rows] = await pool.query('SELECT 1');
 */
export function createMysqlPool(
  config: DbConfig,
  size: number,
  options: {
    maxIdle?: number;
    idleTimeoutMs?: number;
    /** Several `;`-separated statements per query (one round trip); every value still goes through placeholders. */
    multipleStatements?: boolean;
    /**
     * mysql2 captures a stack trace at every query so an error shows its caller (default true). A hot
     * path whose errors are reported by code and message, not by stack, turns it off: the capture
     * costs more than the rest of the client's work for a small statement.
     */
    trace?: boolean;
  } = {},
): Pool {
  const pool = mysql.createPool({
    host: config.host,
    port: config.port,
    user: config.user,
    password: config.password,
    ...(config.database ? { database: config.database } : {}),
    connectionLimit: size,
    // Connections idle beyond maxIdle close after idleTimeout: a service busy only in bursts gives them back.
    maxIdle: options.maxIdle ?? size,
    ...(options.idleTimeoutMs !== undefined ? { idleTimeout: options.idleTimeoutMs } : {}),
    timezone: 'Z',
    dateStrings: true,
    maxPreparedStatements: 8,
    enableKeepAlive: true,
    ...(options.multipleStatements ? { multipleStatements: true } : {}),
    ...(options.trace === false ? { trace: false } : {}),
  });
  pool.on('connection', (conn) => {
    const core = conn as unknown as { query(sql: string, cb: (err: Error | null) => void): void; destroy(): void };
    // Queued before the connection is handed out, so they run before its first statement.
    for (const sql of ["SET time_zone = '+00:00'", 'SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED']) {
      core.query(sql, (err) => {
        if (err) core.destroy();
      });
    }
  });
  return pool;
}
