import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLockdownEffect } from '../../../harpoon/lockdown-effect.ts';
import { createKnex } from '../../../lib/db/knex.ts';
import { createCutoverAdmin, type CutoverAdmin } from '../../../proxy/cutover/admin.ts';
import { validatePlan } from '../../../proxy/cutover/plan.ts';
import { adminApi } from '../../helpers/admin-api.ts';
import { runCli } from '../../helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';
import { seedWorld } from '../../helpers/seeded.ts';

const TOKEN = 'operator-token-0123456789abcdef';
const full = (name = 'full') => ({ steps: [{ name, mode: 'full', soak_seconds: 0, gates: [] }] });
const PLAN = validatePlan({
  version: 1,
  features: {
    'event-delivery': full(),
    scheduling: full(),
    'event-writes': { steps: [{ name: 'canary-5pct', mode: 'canary', percent: 5, soak_seconds: 0, gates: [] }, { name: 'full', mode: 'full', soak_seconds: 0, gates: [] }] },
    'event-reads': full(),
    lockdown: {
      steps: [
        {
          name: 'harpoon-only',
          mode: 'full',
          requires: { 'event-delivery': 'full', scheduling: 'full', 'event-writes': 'full', 'event-reads': 'full' },
          soak_seconds: 0,
          gates: [],
        },
      ],
    },
  },
});

describe('the lockdown step through the cutover API: requirements, the REVOKE, the cascade back', () => {
  let t: TestDatabase;
  let admin: CutoverAdmin;
  let url: string;
  let cloud: Knex;
  let regionId: number;

  const api = adminApi(() => url, TOKEN);
  const cloudCanRead = () => cloud('events').count({ n: '*' }).then(() => true, (err: { code?: string }) => (err.code === 'ER_TABLEACCESS_DENIED_ERROR' ? false : Promise.reject(err)));
  const mode = async (feature: string) => ((await t.db('cutover_features').where({ feature }).first('mode')) as { mode: string }).mode;

  beforeAll(async () => {
    t = await createTestDatabase('cutover_lockdown');
    const seed = await seedWorld(t.db, { hypervisors: 2, regions: 1 });
    regionId = seed.regions[0]!.id;
    cloud = createKnex(t.service('cloud'), { poolMax: 1 });
    admin = createCutoverAdmin({
      db: t.service('proxy'),
      tokens: { operator: TOKEN },
      services: {},
      plan: PLAN,
      watch: false,
      effects: { lockdown: createLockdownEffect({ admin: t.db, database: t.name }) },
    });
    url = (await admin.start()).url;
  });
  afterAll(async () => {
    await admin?.close();
    await cloud?.destroy();
    await t?.drop();
  });

  it('refuses lockdown until every writer is on Harpoon, and changes nothing', async () => {
    const refused = await api('POST', '/cutover/lockdown/advance', { reason: 'too early' });
    expect(refused.status).toBe(409);
    expect(refused.body.code).toBe('CUTOVER_ERR_REQUIREMENT');
    expect(refused.body.unmet.map((u: { feature: string }) => u.feature).sort()).toEqual(['event-delivery', 'event-reads', 'event-writes', 'scheduling']);
    expect(await mode('lockdown')).toBe('legacy');
    expect(await cloudCanRead()).toBe(true);
    const history = await api('GET', '/cutover/history?feature=lockdown');
    expect(history.body.entries[0]).toMatchObject({ action: 'advance-refused' });
    expect(history.body.entries[0].reason).toMatch(/event-writes is legacy, needs full/);
  });

  it('revokes on entering the step; status shows who holds grants; a writer rolling back restores them first', async () => {
    for (const f of ['event-delivery', 'scheduling', 'event-reads']) expect((await api('POST', `/cutover/${f}/advance`, {})).status).toBe(200);
    expect((await api('POST', '/cutover/event-writes/advance', {})).status).toBe(200);
    // event-writes at canary is not enough.
    expect((await api('POST', '/cutover/lockdown/advance', {})).body.code).toBe('CUTOVER_ERR_REQUIREMENT');
    expect((await api('POST', '/cutover/event-writes/advance', {})).status).toBe(200);

    const before = await api('GET', '/cutover/status');
    expect(before.body.effects.lockdown.sole_access).toBe(false);
    expect(before.body.effects.lockdown.others_with_access).toEqual(expect.arrayContaining(['cloud', 'event_router', 'scheduler_v2']));

    const locked = await api('POST', '/cutover/lockdown/advance', { reason: 'all writers on harpoon' });
    expect(locked.status).toBe(200);
    expect(await mode('lockdown')).toBe('full');
    // The server enforces it on an already-open connection.
    expect(await cloudCanRead()).toBe(false);
    await expect(cloud('events').insert({ type: 'create', status: 'pending', region_id: regionId })).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    const after = await api('GET', '/cutover/status');
    expect(after.body.effects.lockdown).toMatchObject({ sole_access: true, others_with_access: [] });
    expect(Object.keys(after.body.effects.lockdown.grants_on_events).some((g) => g.startsWith("'harpoon'"))).toBe(true);

    const cli = await runCli(['cutover', 'status', '--url', url], { env: { STRANGLER_ADMIN_TOKEN: TOKEN } });
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/grants on event data \(only Harpoon \(and administrators\) may touch events\)/);
    expect(cli.stdout).toMatch(/'harpoon'@'%': .*SELECT/);

    // Rolling event-writes back one step sends Cloud's direct writes back to events: lockdown goes first.
    const back = await api('POST', '/cutover/event-writes/rollback', { to: 'previous', reason: 'harpoon trouble' });
    expect(back.status).toBe(200);
    expect(await mode('lockdown')).toBe('legacy');
    expect(await mode('event-writes')).toBe('canary');
    expect(await cloudCanRead()).toBe(true);
    const history = await api('GET', '/cutover/history?feature=lockdown');
    expect(history.body.entries[0]).toMatchObject({ action: 'rollback' });
    expect(history.body.entries[0].reason).toMatch(/event-writes is going back to canary-5pct/);
  }, 60_000);
});
