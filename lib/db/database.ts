import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { migrationSource } from '../../migrations/index.ts';
import { assertDatabaseName, type DbConfig } from './config.ts';
import { createKnex } from './knex.ts';
import { ensureServiceUsers, revokeServiceUsers, type DbPasswords } from './service-users.ts';

/** A fresh name such as `strangler_demo_k3x9q2`, so runs never collide. */
export function uniqueDatabaseName(prefix: string): string {
  const clean = prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 40);
  return assertDatabaseName(`${clean}_${randomBytes(4).toString('hex')}`);
}

/**
 * Creates the database (if missing), runs every migration, then grants the
 * service users. Returns the admin config pointed at the new database.
 *
 * @example
 *   const cfg = await prepareDatabase(server.admin, 'strangler_demo_ab12cd34', secrets.db);
 */
export async function prepareDatabase(admin: DbConfig, database: string, passwords: DbPasswords): Promise<DbConfig> {
  assertDatabaseName(database);
  const server = createKnex({ ...admin, database: undefined }, { poolMax: 1 });
  try {
    await server.raw('CREATE DATABASE IF NOT EXISTS ?? CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci', [database]);
    const config = { ...admin, database };
    const db = createKnex(config, { poolMax: 1 });
    try {
      await migrate(db);
    } finally {
      await db.destroy();
    }
    // Table-level grants need the tables to exist, so users come after migrations.
    await ensureServiceUsers(server, database, passwords);
    return config;
  } finally {
    await server.destroy();
  }
}

export async function migrate(db: Knex): Promise<string[]> {
  const [, applied] = (await db.migrate.latest({ migrationSource })) as [number, string[]];
  return applied;
}

export async function dropDatabase(admin: DbConfig, database: string): Promise<void> {
  assertDatabaseName(database);
  const server = createKnex({ ...admin, database: undefined }, { poolMax: 1 });
  try {
    await revokeServiceUsers(server, database);
    await server.raw('DROP DATABASE IF EXISTS ??', [database]);
  } finally {
    await server.destroy();
  }
}
