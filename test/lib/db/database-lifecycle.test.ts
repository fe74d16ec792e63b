import { describe, expect, inject, it } from 'vitest';
import { dropDatabase, prepareDatabase, uniqueDatabaseName } from '../../../lib/db/database.ts';
import { createKnex } from '../../../lib/db/knex.ts';
import { SERVICE_GRANTS } from '../../../lib/db/service-users.ts';
import { TEST_PASSWORDS } from '../../helpers/database.ts';

async function tablePrivileges(database: string): Promise<Array<{ user: string; table: string; privs: string }>> {
  const db = createKnex(inject('dbAdmin'), { poolMax: 1 });
  try {
    const [rows] = (await db.raw('SELECT User AS user, Table_name AS `table`, Table_priv AS privs FROM mysql.tables_priv WHERE Db = ?', [database])) as [
      Array<{ user: string; table: string; privs: string }>,
    ];
    return rows;
  } finally {
    await db.destroy();
  }
}

describe('a database of its own', () => {
  it('is created with least-privilege table grants per service, and dropped without leaving grants behind', async () => {
    const name = uniqueDatabaseName('t_lifecycle');
    await prepareDatabase(inject('dbAdmin'), name, TEST_PASSWORDS);
    const grants = await tablePrivileges(name);
    for (const [user, tables] of Object.entries(SERVICE_GRANTS)) {
      for (const [table, privileges] of Object.entries(tables)) {
        const row = grants.find((g) => g.user === user && g.table === table);
        expect(row, `${user} on ${table}`).toBeDefined();
        expect(row!.privs.split(',').sort()).toEqual([...privileges].map((p) => p[0] + p.slice(1).toLowerCase()).sort());
      }
    }
    // Nobody but the grants above: the scheduler has no grant on customers, Cloud none on servers.
    expect(grants.find((g) => g.user === 'scheduler_v1' && g.table === 'customers')).toBeUndefined();
    expect(grants.find((g) => g.user === 'cloud' && g.table === 'servers')).toBeUndefined();
    await dropDatabase(inject('dbAdmin'), name);
    expect(await tablePrivileges(name)).toEqual([]);
  });
});
