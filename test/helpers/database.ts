import { inject } from 'vitest';
import type { Knex } from 'knex';
import type { DbConfig } from '../../lib/db/config.ts';
import { dropDatabase, prepareDatabase, uniqueDatabaseName } from '../../lib/db/database.ts';
import { createKnex } from '../../lib/db/knex.ts';
import { serviceDbConfig, type DbPasswords, type ServiceUser } from '../../lib/db/service-users.ts';
import { freshKeyRing, type HypervisorKeyRing } from '../../lib/auth/hypervisor-keys.ts';
import { loadStackSecrets } from '../../lib/secrets/stack-secrets.ts';

/**
 * Service users are server-wide: a test with other passwords would change
 * them under a stack running on the same server, so tests use the same
 * secrets file as everything else on this machine (lib/secrets/stack-secrets.ts).
 */
export const TEST_PASSWORDS: DbPasswords = loadStackSecrets(process.env).secrets.db;

/** This test process's hypervisor token keys: a fresh ring, kept nowhere; routers started by the file get it. */
export const TEST_HV_KEYS: HypervisorKeyRing = freshKeyRing();

export interface TestDatabase {
  name: string;
  admin: DbConfig;
  /**
   * `admin` over the server's control port where it has one: a session that never waits in the thread
   * pool's queue behind the other test files' statements (for a test that times what the server does).
   */
  control: DbConfig;
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
  const admin = await prepareDatabase(server, name, TEST_PASSWORDS);
  const db = createKnex(admin, { poolMax: 4 });
  const controlPort = inject('dbControlPort');
  return {
    name,
    admin,
    control: controlPort ? { ...admin, port: controlPort } : admin,
    server,
    db,
    service: (user) => serviceDbConfig(server, name, user, TEST_PASSWORDS),
    async drop() {
      await db.destroy();
      await dropDatabase(server, name);
    },
  };
}
