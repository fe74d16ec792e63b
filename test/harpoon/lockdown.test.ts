import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Knex } from 'knex';
import { createKnex } from '../../lib/db/knex.ts';
import type { SeedData } from '../../stack/seed/generate.ts';
import type { Harpoon } from '../../harpoon/create-harpoon.ts';
import { lockdown, parseGrantee, readEventGrants, rollbackLockdown } from '../../harpoon/lockdown.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { call, startHarpoon } from '../helpers/harpoon.ts';
import { seedWorld } from '../helpers/seeded.ts';

describe('lockdown: only Harpoon\'s MySQL user can touch events, and rollback restores exactly what was there', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let cloudDb: Knex;
  let monitorDb: Knex;
  let harpoon: Harpoon;
  let url: string;

  beforeAll(async () => {
    t = await createTestDatabase('harpoon_lockdown');
    seed = await seedWorld(t.db, { hypervisors: 2, regions: 1 });
    cloudDb = createKnex(t.service('cloud'), { poolMax: 1 });
    monitorDb = createKnex(t.service('strangler_monitor'), { poolMax: 1 });
    ({ harpoon, url } = await startHarpoon(t.service('harpoon')));
  });
  afterAll(async () => {
    await harpoon?.close();
    await cloudDb?.destroy();
    await monitorDb?.destroy();
    await t?.drop();
  });

  const cloudInsert = () => cloudDb('events').insert({ type: 'create', status: 'pending', region_id: seed.regions[0]!.id });
  const holders = async () => [...new Set((await readEventGrants(t.db, t.name)).filter((g) => g.level !== 'global').map((g) => g.user))].sort();

  it('revokes every grant on events but Harpoon\'s, and the server refuses the others', async () => {
    const before = (await readEventGrants(t.db, t.name)).filter((g) => g.level !== 'global');
    expect(await holders()).toEqual(expect.arrayContaining(['cloud', 'dobe', 'event_router', 'harpoon', 'scheduler_v1', 'scheduler_v2', 'strangler_monitor']));
    expect(before).toContainEqual(expect.objectContaining({ user: 'cloud', level: 'table', privilege: 'INSERT' }));
    expect(before).toContainEqual(expect.objectContaining({ user: 'strangler_monitor', level: 'schema', privilege: 'SELECT' }));
    await cloudInsert();

    const result = await lockdown(t.db, t.name);
    expect(result.revoked).toContainEqual({ grantee: "'cloud'@'%'", level: 'table', privilege: 'INSERT' });
    // Cloud keeps only the hand-off on its own outbox (domain/event-data.ts); nobody else touches event data.
    expect(await holders()).toEqual(['cloud', 'harpoon']);
    expect((await readEventGrants(t.db, t.name)).filter((g) => g.user === 'cloud').every((g) => g.table === 'event_outbox')).toBe(true);
    // Table-level grants take effect on an open connection's next statement.
    await expect(cloudInsert()).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    await expect(cloudDb('events').count({ n: '*' })).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    // The monitor keeps every other table (its schema grant became per-table grants), not events.
    await expect(monitorDb('regions').count({ n: '*' })).resolves.toBeDefined();
    await expect(monitorDb('events').count({ n: '*' })).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    // Cloud's other tables are untouched.
    await expect(cloudDb('regions').count({ n: '*' })).resolves.toBeDefined();
    // Harpoon still writes.
    expect((await call(url, 'POST', '/v1/events', { type: 'create', region: seed.regions[0]!.slug })).status).toBe(201);
    // A second lockdown finds nothing to do.
    expect(await lockdown(t.db, t.name)).toEqual({ revoked: [], granted: [] });

    await rollbackLockdown(t.db, t.name);
    const after = (await readEventGrants(t.db, t.name)).filter((g) => g.level !== 'global');
    expect(after).toEqual(before);
    await cloudInsert();
    // A restored schema-level grant reaches a session at its next USE or connection (MySQL's rule), not at once.
    await monitorDb.destroy();
    monitorDb = createKnex(t.service('strangler_monitor'), { poolMax: 1 });
    await expect(monitorDb('events').count({ n: '*' })).resolves.toBeDefined();
    expect(await t.db('harpoon_lockdown').count({ n: '*' })).toEqual([{ n: 0 }]);
    // And the per-table grants the lockdown added are gone again.
    const [monitorTables] = (await t.db.raw('SELECT COUNT(*) AS n FROM information_schema.TABLE_PRIVILEGES WHERE TABLE_SCHEMA = ? AND GRANTEE = ?', [
      t.name,
      "'strangler_monitor'@'%'",
    ])) as [Array<{ n: number }>];
    expect(Number(monitorTables[0]!.n)).toBe(0);
  });
});

/** Lockdown's reading and undoing of grants, on an account of the test's own with grants at every level. */
describe('lockdown of an account with schema, table and non-table grants', () => {
  let t: TestDatabase;
  let user = '';
  let grantee = '';

  beforeAll(async () => {
    t = await createTestDatabase('lockdown_levels');
    user = `probe_${t.name.slice(-8)}`;
    grantee = `'${user}'@'%'`;
    await t.db.raw('CREATE USER ??@? IDENTIFIED BY ?', [user, '%', 'probe-password-not-secret']);
    await t.db.raw('GRANT SELECT, EXECUTE ON ??.* TO ??@?', [t.name, user, '%']);
    await t.db.raw('GRANT SELECT ON ??.?? TO ??@?', [t.name, 'event_log', user, '%']);
    await t.db.raw('GRANT SELECT ON ??.?? TO ??@?', [t.name, 'droplets', user, '%']);
  });
  afterAll(async () => {
    await t?.db.raw('DROP USER IF EXISTS ??@?', [user, '%']).catch(() => {});
    await t?.drop();
  });

  const tableGrants = async () =>
    (await t.db.raw('SELECT TABLE_NAME AS t, PRIVILEGE_TYPE AS p FROM information_schema.TABLE_PRIVILEGES WHERE TABLE_SCHEMA = ? AND GRANTEE = ? ORDER BY t, p', [t.name, grantee]))[0] as Array<{ t: string; p: string }>;
  const schemaGrants = async () =>
    ((await t.db.raw('SELECT PRIVILEGE_TYPE AS p FROM information_schema.SCHEMA_PRIVILEGES WHERE TABLE_SCHEMA = ? AND GRANTEE = ? ORDER BY p', [t.name, grantee]))[0] as Array<{ p: string }>).map((r) => r.p);

  it('reads quoted grantees exactly and refuses anything else', () => {
    expect(parseGrantee(`'o''brien'@'10.0.%'`)).toEqual({ user: "o'brien", host: '10.0.%' });
    expect(parseGrantee(`'app'@'db''s.host'`)).toEqual({ user: 'app', host: "db's.host" });
    for (const bad of [`x'a'@'b'`, `'a'@'b'x`, `a@b`]) expect(() => parseGrantee(bad), bad).toThrow(/cannot read grantee/);
  });

  it('reads schema and table grants on event data, sorted, with * for the schema; a non-table privilege is not event data', async () => {
    const mine = (await readEventGrants(t.db, t.name)).filter((g) => g.user === user);
    expect(mine).toEqual([
      { grantee, user, host: '%', table: '*', level: 'schema', privilege: 'SELECT' },
      { grantee, user, host: '%', table: 'event_log', level: 'table', privilege: 'SELECT' },
    ]);
  });

  it('lockdown revokes them, granting the schema privilege back on every other table but the ones held already; rollback restores exactly the grants of before', async () => {
    const before = { tables: await tableGrants(), schema: await schemaGrants() };
    const result = await lockdown(t.db, t.name);
    expect(result.revoked.filter((r) => r.grantee === grantee)).toEqual([
      { grantee, level: 'schema', privilege: 'SELECT' },
      { grantee, level: 'table', privilege: 'SELECT', table: 'event_log' },
    ]);
    const granted = result.granted.filter((g) => g.grantee === grantee).map((g) => g.table);
    expect(granted).not.toContain('droplets'); // held at table level already: not granted, so rollback will not take it
    expect(granted).not.toContain('events');
    expect(granted).toContain('servers');
    expect(await schemaGrants()).toEqual(['EXECUTE']);
    expect((await tableGrants()).filter((g) => ['events', 'event_log', 'event_outbox'].includes(g.t))).toEqual([]);

    await rollbackLockdown(t.db, t.name);
    expect({ tables: await tableGrants(), schema: await schemaGrants() }).toEqual(before);
  });
});

/**
 * When the server refuses a GRANT or REVOKE (an administrator without GRANT OPTION), lockdown and its rollback stop
 * with HARPOON_ERR_LOCKDOWN naming the statement; a grant that is already gone is no reason to stop a rollback.
 */
describe('lockdown statements the server refuses', () => {
  let t: TestDatabase;
  let weak: Knex;
  let user = '';
  let grantee = '';
  const PASSWORD = 'weak-admin-password-not-secret';

  beforeAll(async () => {
    t = await createTestDatabase('lockdown_refused');
    user = `weak_${t.name.slice(-8)}`;
    grantee = `'${user}'@'%'`;
    // Reads and writes the database, the lockdown records included, but may not grant anything.
    await t.db.raw('CREATE USER ??@? IDENTIFIED BY ?', [user, '%', PASSWORD]);
    await t.db.raw('GRANT SELECT, INSERT, DELETE ON ??.* TO ??@?', [t.name, user, '%']);
    weak = createKnex({ ...t.admin, user, password: PASSWORD }, { poolMax: 1 });
  });
  afterAll(async () => {
    await weak?.destroy();
    await t?.db.raw('DROP USER IF EXISTS ??@?', [user, '%']).catch(() => {});
    await t?.drop();
  });

  const refused = async (p: Promise<unknown>): Promise<{ code: string; message: string }> => {
    const err = (await p.then(() => undefined, (e: unknown) => e)) as { code: string; message: string } | undefined;
    expect(err, 'expected HARPOON_ERR_LOCKDOWN').toBeDefined();
    return err!;
  };
  const record = (row: { action: 'revoked' | 'granted'; table_name: string | null; privilege: string }) =>
    t.db.withSchema(t.name).table('harpoon_lockdown').insert({ grantee, ...row });

  it('lockdown stops at the first statement refused, naming it', async () => {
    // The account's own schema grant is event data: its first step is granting the privilege back on another table.
    const err = await refused(lockdown(weak, t.name));
    expect(err.code).toBe('HARPOON_ERR_LOCKDOWN');
    expect(err.message).toMatch(new RegExp(`^GRANT (DELETE|INSERT|SELECT) ON \\w+ TO '${user}'@'%' failed: `));
    await t.db.withSchema(t.name).table('harpoon_lockdown').delete();
  });

  it('rollback stops at a GRANT or REVOKE refused, naming it, whichever kind of record it undoes', async () => {
    for (const [row, pattern] of [
      [{ action: 'granted', table_name: 'servers', privilege: 'SELECT' }, `^REVOKE SELECT ON servers FROM '${user}'@'%' failed: `],
      [{ action: 'revoked', table_name: null, privilege: 'UPDATE' }, `^GRANT UPDATE ON ${t.name}\\.\\* TO '${user}'@'%' failed: `],
      [{ action: 'revoked', table_name: 'event_log', privilege: 'UPDATE' }, `^GRANT UPDATE ON event_log TO '${user}'@'%' failed: `],
    ] as const) {
      await record(row);
      const err = await refused(rollbackLockdown(weak, t.name));
      expect([err.code, err.message]).toEqual(['HARPOON_ERR_LOCKDOWN', expect.stringMatching(new RegExp(pattern))]);
      // Nothing undone is forgotten: the record stays for the next try.
      expect(await t.db.withSchema(t.name).table('harpoon_lockdown').count({ n: '*' })).toEqual([{ n: 1 }]);
      await t.db.withSchema(t.name).table('harpoon_lockdown').delete();
    }
  });

  it('rollback of a grant lockdown made that is already gone (revoked by hand) goes on and forgets the record', async () => {
    await record({ action: 'granted', table_name: 'servers', privilege: 'UPDATE' });
    const result = await rollbackLockdown(t.db, t.name);
    expect(result.granted).toEqual([{ grantee, table: 'servers', privilege: 'UPDATE' }]);
    expect(await t.db.withSchema(t.name).table('harpoon_lockdown').count({ n: '*' })).toEqual([{ n: 0 }]);
  });
});
