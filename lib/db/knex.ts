import knexFactory, { type Knex } from 'knex';
import type { DbConfig } from './config.ts';

/**
 * A knex instance over mysql2 with a bounded pool. Dates stay strings in
 * UTC so that timestamps round-trip exactly whatever the host's zone.
 *
 * @example
 *   const db = createKnex(config, { poolMax: 4 });
 *   await db('events').where({ id }).first();
 *   await db.destroy();
 */
export function createKnex(config: DbConfig, options: { poolMin?: number; poolMax?: number; connectTimeoutMs?: number } = {}): Knex {
  return knexFactory({
    client: 'mysql2',
    connection: {
      host: config.host,
      port: config.port,
      user: config.user,
      password: config.password,
      ...(config.database ? { database: config.database } : {}),
      timezone: 'Z',
      dateStrings: true,
      supportBigNumbers: true,
      bigNumberStrings: false,
      maxPreparedStatements: 64,
      connectTimeout: options.connectTimeoutMs ?? 10_000,
    },
    // knex prints pool and driver warnings to the console by default; the callers' logs carry the errors that matter.
    log: { warn() {}, error() {}, deprecate() {}, debug() {} },
    pool: {
      min: options.poolMin ?? 0,
      max: options.poolMax ?? 4,
      // CURRENT_TIMESTAMP(3) and client-side Dates must agree whatever the server's zone.
      afterCreate(conn: { query(sql: string, cb: (err: Error | null) => void): void }, done: (err: Error | null, conn: unknown) => void) {
        conn.query("SET time_zone = '+00:00'", (err) => done(err, conn));
      },
    },
  });
}

/**
 * Opens `connections` pool connections now, with overlapping queries (each
 * takes its own connection). With `poolMin` equal to them the pool keeps
 * them: a service that connected while the server was idle never has to
 * log in to a saturated one, where a login waits in the thread pool behind
 * every queued query (the legacy stage at 15,000 agents).
 *
 * @example
 *   const db = createKnex(config, { poolMin: 4, poolMax: 4 });
 *   await warmPool(db, 4);
 */
export async function warmPool(db: Knex, connections: number): Promise<void> {
  await Promise.all(Array.from({ length: connections }, () => db.raw('SELECT SLEEP(0.05)')));
}
