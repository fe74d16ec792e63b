import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_DATA_TABLES } from '../../domain/event-data.ts';
import { checkEventGrants } from '../../harpoon/grant-watcher.ts';
import { lockdown } from '../../harpoon/lockdown.ts';
import { prepareDatabase } from '../../lib/db/database.ts';
import { createKnex } from '../../lib/db/knex.ts';
import type { ServiceUser } from '../../lib/db/service-users.ts';
import { TEST_PASSWORDS, createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { setFeatureRouting } from '../helpers/router.ts';
import { seedWorld } from '../helpers/seeded.ts';
import { runCli } from '../helpers/cli.ts';
import { formatMysqlUrl } from '../../lib/db/config.ts';
import { verifyLockdown } from '../../harpoon/verify-lockdown.ts';

/**
 * Issue 12, point 5. Seen succeed before the fix: after lockdown the monitor still read `event_log`
 * payloads, and re-running the migrations granted `events` back to every service while the cutover
 * state still said lockdown was full. Now every event-data table is treated alike, a re-run keeps what
 * the cutover state says, and drift is reported.
 */
const OTHERS: ServiceUser[] = ['cloud', 'dobe', 'event_router', 'scheduler_v1', 'scheduler_v2', 'proxy', 'strangler_monitor'];

describe('lockdown complete and durable (issue 12 point 5)', () => {
  let t: TestDatabase;
  const pools = new Map<ServiceUser, Knex>();
  const denied = (err: { code?: string }) => (['ER_TABLEACCESS_DENIED_ERROR', 'ER_COLUMNACCESS_DENIED_ERROR'].includes(err.code ?? '') ? 'denied' : Promise.reject(err));
  const tryRead = (user: ServiceUser, table: string) => pools.get(user)!.raw('SELECT * FROM ?? LIMIT 1', [table]).then(() => 'ok', denied);
  /** Every (user, table) pair that can read event data, but Cloud's hand-off on its own outbox. */
  const readers = async () => {
    const out: string[] = [];
    for (const user of OTHERS) for (const table of EVENT_DATA_TABLES) if ((await tryRead(user, table)) === 'ok' && !(user === 'cloud' && table === 'event_outbox')) out.push(`${user}:${table}`);
    return out;
  };

  beforeAll(async () => {
    t = await createTestDatabase('adv_lockdown');
    await seedWorld(t.db, { hypervisors: 2, regions: 1 });
    for (const user of OTHERS) pools.set(user, createKnex(t.service(user), { poolMax: 1 }));
  });
  afterAll(async () => {
    for (const pool of pools.values()) await pool.destroy();
    await t?.drop();
  });

  it('revokes every event-data table alike, keeps it so across a migration re-run, and reports drift', async () => {
    expect(await readers()).toEqual(expect.arrayContaining(['strangler_monitor:event_log', 'cloud:events', 'event_router:events']));
    const open = await verifyLockdown({ server: t.server, database: t.name, passwords: TEST_PASSWORDS });
    expect(open.ok).toBe(false);
    expect(open.violations).toEqual(expect.arrayContaining(['strangler_monitor select event_log', 'cloud insert events']));
    await lockdown(t.db, t.name);
    await setFeatureRouting(t.db, 'lockdown', { mode: 'full' });
    // A fresh connection per user: schema-level changes reach a session at its next connection.
    for (const user of OTHERS) {
      await pools.get(user)!.destroy();
      pools.set(user, createKnex(t.service(user), { poolMax: 1 }));
    }
    expect(await readers()).toEqual([]);
    expect((await checkEventGrants(t.db, t.name)).drift).toEqual([]);

    // `strangler db migrate` / `strangler up --database X` on the locked-down database.
    await prepareDatabase(t.server, t.name, TEST_PASSWORDS);
    expect(await readers()).toEqual([]);
    await expect(pools.get('event_router')!('events').insert({ type: 'create', status: 'pending', region_id: 1 })).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    expect(await t.db('events').count({ n: '*' }).first()).toEqual({ n: 0 });
    expect((await checkEventGrants(t.db, t.name)).drift).toEqual([]);

    // The operator's verifier, as a CLI against the live database: Harpoon alone, nothing written.
    const before = await t.db('events').count({ n: '*' }).first();
    const cli = await runCli(['cutover', 'verify-lockdown', '--database', t.name, '--json'], { env: { MYSQL_URL: formatMysqlUrl(t.server) } });
    expect(cli.code, cli.stderr).toBe(0);
    const verified = JSON.parse(cli.stdout) as { ok: boolean; violations: string[]; handoffs: string[]; matrix: Record<string, Record<string, Record<string, string>>> };
    expect(verified).toMatchObject({ ok: true, violations: [] });
    expect(verified.matrix.harpoon!.events).toMatchObject({ select: 'allowed', insert: 'allowed' });
    expect(verified.matrix.strangler_monitor!.event_log!.select).toBe('denied');
    expect(verified.handoffs).toEqual(['cloud select event_outbox', 'cloud insert event_outbox', 'cloud update event_outbox', 'cloud delete event_outbox']);
    expect(await t.db('events').count({ n: '*' }).first()).toEqual(before);

    // Someone grants by hand: the check says so, and so does the verifier.
    await t.db.raw(`GRANT SELECT ON ??.event_log TO 'dobe'@'%'`, [t.name]);
    const check = await checkEventGrants(t.db, t.name);
    expect(check.lockdown).toBe(true);
    expect(check.drift.map((g) => `${g.user}:${g.table}:${g.privilege}`)).toEqual(['dobe:event_log:SELECT']);
    expect((await runCli(['cutover', 'verify-lockdown', '--database', t.name], { env: { MYSQL_URL: formatMysqlUrl(t.server) } })).code).toBe(3);
    await t.db.raw(`REVOKE SELECT ON ??.event_log FROM 'dobe'@'%'`, [t.name]);
  });
});
