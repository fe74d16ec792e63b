import { Gauge, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCutoverAdmin, type CutoverAdmin } from '../../../proxy/cutover/admin.ts';
import { validatePlan, type Gate } from '../../../proxy/cutover/plan.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';
import { startUpstream, waitFor, type TestUpstream } from '../../helpers/upstream.ts';

const gate: Gate = { name: 'backlog', kind: 'gauge', service: 'svc', metric: 'pending_events', max: 100 };
const PLAN = validatePlan({
  version: 1,
  analysis: { interval_seconds: 0.2, passes: 2 },
  features: {
    'event-delivery': {
      steps: ['a', 'b', 'c'].map((name, i) => ({ name, mode: i === 2 ? 'full' : 'canary', ...(i === 2 ? {} : { percent: 10 * (i + 1) }), soak_seconds: 0, gates: [gate] })),
    },
  },
});

describe('the autopilot on two admin replicas', { timeout: 180_000 }, () => {
  let t: TestDatabase;
  let svc: TestUpstream;
  const admins: CutoverAdmin[] = [];
  const registry = new Registry();
  new Gauge({ name: 'pending_events', help: 'p', registers: [registry] }).set(1);

  beforeAll(async () => {
    t = await createTestDatabase('autopilot_replicas');
    svc = await startUpstream('svc', async (req, res) => {
      if (req.url !== '/metrics') return false;
      res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics());
      return true;
    });
    for (const actor of ['watcher-a', 'watcher-b']) {
      const admin = createCutoverAdmin({ db: t.service('proxy'), tokens: { operator: 'replicas-token-0123456789abcdef' }, services: { svc: svc.url }, plan: PLAN, watcherActor: actor, autopilotTickMs: 50 });
      await admin.start();
      admins.push(admin);
    }
  });

  afterAll(async () => {
    for (const a of admins) await a.close();
    await svc?.close();
    await t?.drop();
  });

  it('advances each step once however many replicas analyse; the other takes over when one leaves', async () => {
    await admins[1]!.autopilot.run('event-delivery', 'operator');
    await waitFor(async () => (await admins[0]!.autopilot.view())[0]!.run === 'done', 45_000, 'the run to finish');
    const history = await admins[0]!.controller.history({ feature: 'event-delivery' });
    const advances = history.filter((h) => h.action === 'advance').reverse();
    expect(advances.map((h) => [h.from_step, h.to_step])).toEqual([[0, 1], [1, 2], [2, 3]]);
    const runs = await admins[0]!.autopilot.runs('event-delivery');
    // One replica leaves (closing gives its leases up): the other keeps the continuous analysis going.
    const before = runs.length;
    await admins.shift()!.close();
    await waitFor(async () => (await admins[0]!.autopilot.runs('event-delivery')).length >= before + 3, 45_000, 'analysis to go on');
    expect((await admins[0]!.autopilot.view())[0]!.owner).not.toBeNull();
  });
});
