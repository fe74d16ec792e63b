import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLockdownEffect } from '../../harpoon/lockdown-effect.ts';
import { readEventGrants } from '../../harpoon/lockdown.ts';
import { lockdownPreflight, statementTouches } from '../../harpoon/lockdown-preflight.ts';
import { formatMysqlUrl } from '../../lib/db/config.ts';
import { createKnex } from '../../lib/db/knex.ts';
import type { ServiceUser } from '../../lib/db/service-users.ts';
import { createCutoverAdmin, type CutoverAdmin } from '../../proxy/cutover/admin.ts';
import { validatePlan } from '../../proxy/cutover/plan.ts';
import { adminApi } from '../helpers/admin-api.ts';
import { runCli } from '../helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { seedWorld } from '../helpers/seeded.ts';

/**
 * Issue 12: "before lockdown, a preflight lists which users touched those tables recently and refuses
 * while anyone but Harpoon still does". Before, advancing lockdown revoked `events` from a service that
 * was still polling it: the mistake showed up as that service failing. Now the step watches the server
 * first (information_schema.PROCESSLIST sampled over a window), refuses with the users named and
 * revokes nothing; an explicit override goes on and says so in the history.
 */
const TOKEN = 'operator-token-preflight-0123456789';
const PLAN = validatePlan({ version: 1, features: { lockdown: { steps: [{ name: 'harpoon-only', mode: 'full', soak_seconds: 0, gates: [] }] } } });

/** A service still at it: statements on one table back to back, each long enough to be seen running. */
function poll(db: Knex, table: string): { stop(): Promise<void> } {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) await db.raw('SELECT SLEEP(0.03) AS s, (SELECT COUNT(*) FROM ??) AS n', [table]).catch(() => new Promise((r) => setTimeout(r, 30)));
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

describe('the lockdown preflight: refuses while anyone but Harpoon touches event data', () => {
  let t: TestDatabase;
  let admin: CutoverAdmin;
  let url: string;
  const pools = new Map<ServiceUser, Knex>();
  const api = adminApi(() => url, TOKEN);
  const state = async () => ({
    grants: await readEventGrants(t.db, t.name),
    recorded: (await t.db('harpoon_lockdown').count({ n: '*' }).first())!.n,
    step: ((await t.db('cutover_features').where({ feature: 'lockdown' }).first('step')) as { step: number } | undefined)?.step ?? 0,
  });

  beforeAll(async () => {
    t = await createTestDatabase('adv_preflight');
    await seedWorld(t.db, { hypervisors: 2, regions: 1 });
    for (const user of ['dobe', 'cloud'] as const) pools.set(user, createKnex(t.service(user), { poolMax: 1 }));
    admin = createCutoverAdmin({
      db: t.service('proxy'),
      tokens: { operator: TOKEN },
      services: {},
      plan: PLAN,
      watch: false,
      effects: { lockdown: createLockdownEffect({ admin: t.db, database: t.name, preflight: { windowMs: 1500 } }) },
    });
    url = (await admin.start()).url;
  });
  afterAll(async () => {
    await admin?.close();
    for (const pool of pools.values()) await pool.destroy();
    await t?.drop();
  });

  it('reads the event-data tables a statement names, ignoring literals and comments', () => {
    expect(statementTouches('SELECT e.id FROM `events` e JOIN droplets d ON d.id = e.droplet_id')).toEqual({ operation: 'SELECT', tables: ['events'] });
    expect(statementTouches("UPDATE event_outbox SET lease_owner = 'events' WHERE id = 1")).toEqual({ operation: 'UPDATE', tables: ['event_outbox'] });
    expect(statementTouches('INSERT INTO event_log (event_id) SELECT id FROM strangler.events')).toEqual({ operation: 'INSERT', tables: ['event_log', 'events'] });
    expect(statementTouches("SELECT * FROM information_schema.TABLE_PRIVILEGES WHERE TABLE_NAME IN ('events', 'event_log') /* events */")).toEqual({ operation: 'SELECT', tables: [] });
    expect(statementTouches('SELECT * FROM harpoon_events_archive, eventsx')).toEqual({ operation: 'SELECT', tables: [] });
    expect(statementTouches('REPLACE INTO events (id) VALUES (1)').operation).toBe('INSERT');
  });

  it('refuses lockdown while dobe still polls events, naming it; revokes nothing; an override goes on and is recorded', async () => {
    const dobe = poll(pools.get('dobe')!, 'events');
    try {
      const before = await state();
      const refused = await api('POST', '/cutover/lockdown/advance', { reason: 'harpoon alone' });
      expect(refused.status).toBe(409);
      expect(refused.body.code).toBe('HARPOON_ERR_LOCKDOWN_PREFLIGHT');
      expect(refused.body.message).toMatch(/users other than Harpoon still touch event data: dobe \(SELECT on events, seen in \d+ of \d+ samples\)/);
      expect(refused.body.message).toMatch(/nothing was revoked/);
      expect(await state()).toEqual(before);
      expect(await pools.get('dobe')!('events').count({ n: '*' })).toBeDefined();
      const history = await api('GET', '/cutover/history?feature=lockdown');
      expect(history.body.entries[0]).toMatchObject({ action: 'advance-refused' });
      expect(history.body.entries[0].reason).toMatch(/^lockdown refused: users other than Harpoon still touch event data: dobe/);

      // The operator's own look, as a CLI against the live database (reads only).
      const cli = await runCli(['cutover', 'preflight-lockdown', '--database', t.name, '--window-ms', '1000', '--json'], { env: { MYSQL_URL: formatMysqlUrl(t.server) } });
      expect(cli.code, cli.stderr).toBe(3);
      const seen = JSON.parse(cli.stdout) as { ok: boolean; offenders: string[]; touched: Array<{ user: string; table: string; allowed: boolean }>; sources: Record<string, boolean> };
      expect(seen).toMatchObject({ ok: false, offenders: ['dobe'] });
      expect(seen.touched).toContainEqual(expect.objectContaining({ user: 'dobe', table: 'events', allowed: false }));
      expect(seen.sources.processlist).toBe(true);

      const overridden = await api('POST', '/cutover/lockdown/advance', { reason: 'dobe is being retired', override_preflight: true });
      expect(overridden.status, JSON.stringify(overridden.body)).toBe(200);
      const entry = (await api('GET', '/cutover/history?feature=lockdown')).body.entries[0];
      expect(entry).toMatchObject({ action: 'advance' });
      expect(entry.reason).toMatch(/^PREFLIGHT OVERRIDDEN: still touching event data: dobe \(SELECT on events.*— dobe is being retired$/);
      const status = await api('GET', '/cutover/status');
      expect(status.body.effects.lockdown.preflight).toMatchObject({ ok: false, overridden: true, offenders: [expect.stringMatching(/^dobe /)] });
      expect((await state()).recorded).toBeGreaterThan(0);
    } finally {
      await dobe.stop();
    }
    expect((await api('POST', '/cutover/lockdown/rollback', { reason: 'try again without dobe' })).status).toBe(200);
  });

  it("lets lockdown through when only Harpoon and Cloud's outbox hand-off are at event data", async () => {
    const cloud = poll(pools.get('cloud')!, 'event_outbox');
    try {
      const p = await lockdownPreflight(t.db, t.name, { windowMs: 1000 });
      expect(p).toMatchObject({ ok: true, offenders: [] });
      expect(p.touched).toContainEqual(expect.objectContaining({ user: 'cloud', table: 'event_outbox', allowed: true }));
      // What this server offers, as it says itself.
      const [[vars]] = (await t.db.raw('SELECT @@GLOBAL.performance_schema AS ps')) as [[{ ps: number }]];
      expect(p.sources.performance_schema).toBe(Number(vars.ps) === 1);
      if (p.sources.userstat) expect(p.table_activity?.event_outbox?.rows_read).toBeGreaterThanOrEqual(0);
      const advanced = await api('POST', '/cutover/lockdown/advance', { reason: 'writers on harpoon' });
      expect(advanced.status, JSON.stringify(advanced.body)).toBe(200);
      expect((await api('GET', '/cutover/history?feature=lockdown')).body.entries[0].reason).toMatch(/^preflight: no one but Harpoon .*— writers on harpoon$/);
    } finally {
      await cloud.stop();
    }
  });
});
