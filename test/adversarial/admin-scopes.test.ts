import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCutoverAdmin, type CutoverAdmin } from '../../proxy/cutover/admin.ts';
import { validatePlan } from '../../proxy/cutover/plan.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

/**
 * Issue 12, point 4: the followers' token was a full admin token; taken from a router's options it
 * advanced event-delivery and could run lockdown's GRANT/REVOKE. (Seen succeed before the fix: the
 * follower's advance answered 200.) Now a read token reads, an operate token moves features without
 * side effects, and only a lockdown-scoped token moves lockdown; every refusal is a 403 that writes nothing.
 */
const OPERATOR = 'operator-token-0123456789abcdef';
const FOLLOWER = 'follower-token-0123456789abcdef';
const OPERATE_ONLY = 'operate-token-0123456789abcdef';
const full = () => ({ steps: [{ name: 'full', mode: 'full', soak_seconds: 0, gates: [] }] });
const PLAN = validatePlan({
  version: 1,
  features: { 'event-delivery': full(), scheduling: full(), 'event-writes': full(), 'event-reads': full(), lockdown: full() },
});

describe('admin token scopes (issue 12 point 4)', () => {
  let t: TestDatabase;
  let admin: CutoverAdmin;
  let url: string;
  let applied = 0;
  const call = async (token: string, method: string, path: string) => {
    const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: (await res.json()) as { code?: string; features?: unknown[] } };
  };
  const history = async () => Number(((await t.db('cutover_history').count({ n: '*' }).first()) as { n: number }).n);
  const modes = async () => Object.fromEntries(((await t.db('cutover_features').select('feature', 'mode')) as Array<{ feature: string; mode: string }>).map((r) => [r.feature, r.mode]));

  beforeAll(async () => {
    t = await createTestDatabase('adv_scopes');
    admin = createCutoverAdmin({
      db: t.service('proxy'),
      tokens: { operator: OPERATOR, followers: { token: FOLLOWER, scopes: ['read'] }, ci: { token: OPERATE_ONLY, scopes: ['read', 'operate'] } },
      services: {},
      plan: PLAN,
      watch: false,
      effects: { lockdown: { apply: async () => void applied++ } },
    });
    url = (await admin.start()).url;
  });
  afterAll(async () => {
    await admin?.close();
    await t?.drop();
  });

  it('a follower token reads the state and nothing more', async () => {
    expect((await call(FOLLOWER, 'GET', '/cutover/state')).status).toBe(200);
    expect((await call(FOLLOWER, 'GET', '/cutover/status')).status).toBe(200);
    const before = { history: await history(), modes: await modes() };
    for (const verb of ['advance', 'rollback', 'pause', 'resume']) {
      for (const feature of ['event-delivery', 'lockdown']) {
        const r = await call(FOLLOWER, 'POST', `/cutover/${feature}/${verb}`);
        expect(r.status, `${verb} ${feature}`).toBe(403);
        expect(r.body.code).toBe('CUTOVER_ERR_FORBIDDEN');
      }
    }
    expect(await history()).toBe(before.history);
    expect(await modes()).toEqual(before.modes);
    expect(applied).toBe(0);
  });

  it('an operate token moves features without side effects, never lockdown', async () => {
    expect((await call(OPERATE_ONLY, 'POST', '/cutover/event-delivery/advance')).status).toBe(200);
    const r = await call(OPERATE_ONLY, 'POST', '/cutover/lockdown/advance');
    expect(r.status).toBe(403);
    expect(r.body.code).toBe('CUTOVER_ERR_FORBIDDEN');
    expect((await modes()).lockdown).toBe('legacy');
    expect(applied).toBe(0);
    // The operator's own token (every scope) may.
    expect((await call(OPERATOR, 'POST', '/cutover/lockdown/advance')).status).toBe(200);
    expect(applied).toBe(1);
  });
});
