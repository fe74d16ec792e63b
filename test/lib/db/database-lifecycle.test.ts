import type { Knex } from 'knex';
import { describe, expect, inject, it } from 'vitest';
import { dropDatabase, prepareDatabase, uniqueDatabaseName } from '../../../lib/db/database.ts';
import { createKnex } from '../../../lib/db/knex.ts';
import { MONITOR_USER, SERVICE_GRANTS, SERVICE_USERS } from '../../../lib/db/service-users.ts';
import { TEST_PASSWORDS } from '../../helpers/database.ts';

/** A user's grants as the server reports them (SHOW GRANTS): target (`*.*`, `db`.*, `db`.`table`) → privileges, sorted. */
type GrantSet = Record<string, string>;

/**
 * Every grant of `user` that reaches `database` or the whole server, read with SHOW GRANTS: the server's
 * own answer, column and routine grants included. Grants on other databases (other tests' users are the
 * same accounts) are left out.
 */
async function grantsOf(db: Knex, user: string, database: string): Promise<GrantSet> {
  const [rows] = (await db.raw('SHOW GRANTS FOR ?@?', [user, '%'])) as [Array<Record<string, string>>];
  const out: GrantSet = {};
  for (const row of rows) {
    const line = Object.values(row)[0]!;
    const m = /^GRANT (.+) ON (\S+) TO /.exec(line);
    if (!m) throw new Error(`unexpected SHOW GRANTS line: ${line}`);
    const target = m[2]!.replace(/`/g, '');
    if (target !== '*.*' && !target.startsWith(`${database}.`)) continue;
    out[target] = m[1]!.split(/,\s*/).sort().join(', ');
  }
  return out;
}

/** What prepareDatabase must grant, and nothing else: the whole set per user. */
function expectedGrants(database: string): Record<string, GrantSet> {
  const out: Record<string, GrantSet> = {};
  for (const [user, tables] of Object.entries(SERVICE_GRANTS)) {
    const set: GrantSet = { '*.*': 'USAGE' };
    for (const [table, privileges] of Object.entries(tables)) set[`${database}.${table}`] = [...privileges].sort().join(', ');
    out[user] = set;
  }
  out[MONITOR_USER] = { '*.*': 'PROCESS', [`${database}.*`]: 'SELECT' };
  return out;
}

/** Accounts other than the service users that hold anything on the database. */
async function strangers(db: Knex, database: string): Promise<string[]> {
  const [rows] = (await db.raw(
    `SELECT DISTINCT User AS user FROM (
       SELECT User FROM mysql.db WHERE Db = ? UNION ALL SELECT User FROM mysql.tables_priv WHERE Db = ? UNION ALL SELECT User FROM mysql.columns_priv WHERE Db = ?
     ) AS g`,
    [database, database, database],
  )) as [Array<{ user: string }>];
  return rows.map((r) => r.user).filter((u) => !(SERVICE_USERS as readonly string[]).includes(u));
}

describe('a database of its own', () => {
  it('is created with exactly the least-privilege grants per service (the full SHOW GRANTS set), and dropped without leaving grants behind', async () => {
    const name = uniqueDatabaseName('t_lifecycle');
    const admin = createKnex(inject('dbAdmin'), { poolMax: 1 });
    try {
      await prepareDatabase(inject('dbAdmin'), name, TEST_PASSWORDS);
      const expected = expectedGrants(name);
      for (const user of SERVICE_USERS) expect(await grantsOf(admin, user, name), user).toEqual(expected[user]);
      expect(await strangers(admin, name)).toEqual([]);

      // An extra grant, even a narrow one, is a failure of least privilege: the comparison sees it.
      await admin.raw('GRANT DELETE ON ??.?? TO ?@?', [name, 'events', 'cloud', '%']);
      await admin.raw('GRANT SELECT (id) ON ??.?? TO ?@?', [name, 'servers', 'scheduler_v1', '%']);
      expect(await grantsOf(admin, 'cloud', name)).not.toEqual(expected.cloud);
      expect((await grantsOf(admin, 'cloud', name))[`${name}.events`]).toBe('DELETE, INSERT, SELECT');
      expect(await grantsOf(admin, 'scheduler_v1', name)).not.toEqual(expected.scheduler_v1);
      await admin.raw('REVOKE DELETE ON ??.?? FROM ?@?', [name, 'events', 'cloud', '%']);
      await admin.raw('REVOKE SELECT (id) ON ??.?? FROM ?@?', [name, 'servers', 'scheduler_v1', '%']);

      await dropDatabase(inject('dbAdmin'), name);
      for (const user of SERVICE_USERS) {
        const left = Object.keys(await grantsOf(admin, user, name)).filter((target) => target !== '*.*');
        expect(left, `${user} keeps grants on the dropped database`).toEqual([]);
      }
    } finally {
      await admin.destroy();
    }
  });
});
