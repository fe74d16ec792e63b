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
export function createKnex(config: DbConfig, options: { poolMin?: number; poolMax?: number } = {}): Knex {
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
