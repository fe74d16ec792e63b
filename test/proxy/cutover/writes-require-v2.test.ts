import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCutoverAdmin, type CutoverAdmin } from '../../../proxy/cutover/admin.ts';
import { loadDefaultPlan, validatePlan, type CutoverPlan } from '../../../proxy/cutover/plan.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';

const TOKEN = 'operator-token-0123456789abcdef';

/** The default plan's steps and requirements, with the soaks and gates taken out so the test can move it at once. */
function defaultShape(): CutoverPlan {
  const plan = loadDefaultPlan();
  const features = Object.fromEntries(
    Object.entries(plan.features).map(([name, spec]) => [name, { ...spec, steps: spec!.steps.map((s) => ({ ...s, soak_seconds: 0, gates: [] })) }]),
  );
  return validatePlan({ ...plan, features });
}

/**
 * Found by `npm run chaos`: with event-writes at full the routers take
 * Harpoon's stream, and a `scheduling` rollback gave regions back to
 * Scheduler V1, whose direct UPDATEs the stream never carries — their
 * events were placed and never delivered. The default plan now requires
 * scheduling at full for event-writes' full step, so a scheduling rollback
 * rolls event-writes back first (and lockdown before it).
 */
describe("the default plan: event-writes at full needs Scheduler V2 everywhere", () => {
  let t: TestDatabase;
  let admin: CutoverAdmin;
  let url: string;
  const api = async (path: string, body: unknown = {}) => {
    const res = await fetch(`${url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const step = async (feature: string) => ((await t.db('cutover_features').where({ feature }).first('step_name')) as { step_name: string }).step_name;
  const through = async (feature: string) => {
    for (let i = 0; i < 10; i++) {
      const res = await api(`/cutover/${feature}/advance`);
      if (res.status !== 200) return res;
    }
    throw new Error('too many steps');
  };

  beforeAll(async () => {
    t = await createTestDatabase('cutover_writes_v2');
    admin = createCutoverAdmin({ db: t.service('proxy'), tokens: { operator: TOKEN }, services: {}, plan: defaultShape(), watch: false });
    url = (await admin.start()).url;
  });
  afterAll(async () => {
    await admin?.close();
    await t?.drop();
  });

  it('refuses event-writes full while V1 still places somewhere, and a scheduling rollback takes event-writes back', async () => {
    await through('event-delivery');
    await api('/cutover/scheduling/advance'); // shadow: V1 still places everywhere
    const refused = await through('event-writes');
    expect(refused.status).toBe(409);
    expect(refused.body.code).toBe('CUTOVER_ERR_REQUIREMENT');
    expect(await step('event-writes')).toBe('canary-25pct');
    await through('scheduling');
    expect(await step('scheduling')).toBe('all-regions');
    await through('event-writes');
    expect(await step('event-writes')).toBe('full');

    const back = await api('/cutover/scheduling/rollback', { to: 'previous' });
    expect(back.status).toBe(200);
    expect(await step('scheduling')).not.toBe('all-regions');
    expect(await step('event-writes')).toBe('legacy');
  }, 30_000);
});
