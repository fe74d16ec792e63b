import { inject } from 'vitest';
import type { Knex } from 'knex';
import type { DbConfig } from '../../lib/db/config.ts';
import { dropDatabase, prepareDatabase, uniqueDatabaseName } from '../../lib/db/database.ts';
import { createKnex } from '../../lib/db/knex.ts';
import { DEFAULT_DB_SECRET, serviceDbConfig, type ServiceUser } from '../../lib/db/service-users.ts';

/**
 * Service users are server-wide: a test with another secret would change
 * the passwords under a stack running on the same server, so tests use
 * the same secret as everything else.
 */
export const TEST_DB_SECRET = process.env.STRANGLER_DB_SECRET ?? DEFAULT_DB_SECRET;

export interface TestDatabase {
  name: string;
  admin: DbConfig;
  /** The server with admin rights and no database selected. */
  server: DbConfig;
  /** An admin knex on the test database, for assertions and setup. */
  db: Knex;
  service(user: ServiceUser): DbConfig;
  drop(): Promise<void>;
}

/**
 * A migrated database of its own for one test file, with the service
 * users granted. Call `drop()` in afterAll.
 */
export async function createTestDatabase(prefix: string): Promise<TestDatabase> {
  const server = inject('dbAdmin');
  const name = uniqueDatabaseName(`t_${prefix}`);
  const admin = await prepareDatabase(server, name, TEST_DB_SECRET);
  const db = createKnex(admin, { poolMax: 4 });
  return {
    name,
    admin,
    server,
    db,
    service: (user) => serviceDbConfig(server, name, user, TEST_DB_SECRET),
    async drop() {
      await db.destroy();
      await dropDatabase(server, name);
    },
  };
}
