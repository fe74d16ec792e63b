import mysql from 'mysql2/promise';
import type { DbConfig } from './config.ts';

/**
 * One raw mysql2 connection, as each legacy agent holds. mysql2
 * preallocates a prepared-statement cache per connection (16,000 entries
 * by default, about 550 KB): capped at 8 so 15,000 connections fit in one
 * machine. Sessions run in UTC so server and client timestamps agree.
 *
 * @example
 *   const conn = await openConnection(cfg); await conn.query('SELECT 1'); await conn.end();
 */
export async function openConnection(config: DbConfig, options: { connectTimeoutMs?: number; multipleStatements?: boolean } = {}): Promise<mysql.Connection> {
  const conn = await mysql.createConnection({
    host: config.host,
    port: config.port,
    user: config.user,
    password: config.password,
    ...(config.database ? { database: config.database } : {}),
    timezone: 'Z',
    dateStrings: true,
    maxPreparedStatements: 8,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    ...(options.multipleStatements ? { multipleStatements: true } : {}),
  });
  await conn.query("SET time_zone = '+00:00'");
  return conn;
}
