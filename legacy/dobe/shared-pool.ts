import mysql, { type Pool } from 'mysql2/promise';
import type { DbConfig } from '../../lib/db/config.ts';

const pools = new Map<string, Pool>();

/**
 * One pool per MySQL user and size in this process: what a connection pooler
 * in front of MySQL gives a fleet worker's agents (they take turns on
 * `connections` connections instead of holding one each). Kept for the
 * process's life, as a pooler is: the fleet worker's exit ends them.
 *
 * @example
 *   const pool = sharedPool(dobeConfig, 8);
 *   const dual = sharedPool(dobeConfig, 8, true); // agents that read the cutover row with each poll
 */
export function sharedPool(db: DbConfig, connections: number, multipleStatements = false): Pool {
  const key = `${db.user}@${db.host}:${db.port}/${db.database ?? ''}#${connections}${multipleStatements ? '+multi' : ''}`;
  let pool = pools.get(key);
  if (!pool) {
    pool = mysql.createPool({
      host: db.host,
      port: db.port,
      user: db.user,
      password: db.password,
      ...(db.database ? { database: db.database } : {}),
      connectionLimit: connections,
      maxIdle: connections,
      queueLimit: 0,
      // As the agents' own connections: text protocol, no prepared statements to preallocate.
      maxPreparedStatements: 8,
      dateStrings: true,
      timezone: 'Z',
      ...(multipleStatements ? { multipleStatements: true } : {}),
    });
    // Sessions in UTC, as every agent connection (lib/db/connection.ts).
    pool.on('connection', (conn) => void conn.query("SET time_zone = '+00:00'"));
    pools.set(key, pool);
  }
  return pool;
}
