import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGrantWatcher, type GrantWatcher } from '../../harpoon/grant-watcher.ts';
import { createLockdownEffect } from '../../harpoon/lockdown-effect.ts';
import { silentLogger } from '../../lib/logger.ts';
import { createCutoverAdmin, type CutoverAdmin } from '../../proxy/cutover/admin.ts';
import { validatePlan } from '../../proxy/cutover/plan.ts';
import { createDashboardCollector } from '../../proxy/dashboard/collector.ts';
import { addDashboardRoutes } from '../../proxy/dashboard/routes.ts';
import { adminApi } from '../helpers/admin-api.ts';
import { runCli } from '../helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { seedWorld } from '../helpers/seeded.ts';

/**
 * Issue 12, "drift is a failing gate": someone grants event data back by hand on a locked-down
 * database. Before, only a metric and a status line said so, and the cutover went on advancing as if
 * lockdown held. Now every advance is refused with the `lockdown-drift` gate named, the dashboard
 * shows a red drift bar, and revoking the grant lets the advance through.
 */
const TOKEN = 'operator-token-drift-0123456789abcdef';
const PLAN = validatePlan({
  version: 1,
  features: {
    'cloud-api': { steps: [{ name: 'canary', mode: 'canary', percent: 10, soak_seconds: 0, gates: [] }, { name: 'full', mode: 'full', soak_seconds: 0, gates: [] }] },
    lockdown: { steps: [{ name: 'harpoon-only', mode: 'full', soak_seconds: 0, gates: [] }] },
  },
});

describe('lockdown drift as a failing gate and a red mark on the dashboard', () => {
  let t: TestDatabase;
  let admin: CutoverAdmin;
  let watcher: GrantWatcher;
  let url: string;

  const api = adminApi(() => url, TOKEN);
  const dashboard = async () => (await (await fetch(`${url}/dashboard/data`)).json()) as { lockdown: { state: string; drift: string[] } };
  const step = async (feature: string) => ((await t.db('cutover_features').where({ feature }).first('step')) as { step: number }).step;

  beforeAll(async () => {
    t = await createTestDatabase('adv_lockdown_drift');
    await seedWorld(t.db, { hypervisors: 2, regions: 1 });
    admin = createCutoverAdmin({
      db: t.service('proxy'),
      tokens: { operator: TOKEN },
      services: {},
      plan: PLAN,
      watch: false,
      effects: { lockdown: createLockdownEffect({ admin: t.db, database: t.name }) },
    });
    watcher = createGrantWatcher({ admin: t.db, database: t.name, registry: new Registry(), logger: silentLogger(), intervalMs: 60_000 });
    addDashboardRoutes(admin.router, { collector: createDashboardCollector({ sources: [] }), lockdown: () => watcher.last() });
    url = (await admin.start()).url;
    await watcher.start();
  });
  afterAll(async () => {
    watcher?.close();
    await admin?.close();
    await t?.db.raw(`REVOKE SELECT ON ??.event_log FROM 'dobe'@'%'`, [t.name]).catch(() => undefined);
    await t?.drop();
  });

  it('refuses every advance while a grant drifted, names the gate, shows it red; revoked, the advance goes through', async () => {
    expect((await dashboard()).lockdown.state).toBe('not-locked');
    expect((await api('POST', '/cutover/lockdown/advance', { reason: 'harpoon alone' })).status).toBe(200);
    await watcher.check();
    expect((await dashboard()).lockdown).toMatchObject({ state: 'holds', drift: [] });

    // The attack (or the mistake): a grant on event data put back by hand.
    await t.db.raw(`GRANT SELECT ON ??.event_log TO 'dobe'@'%'`, [t.name]);
    const refused = await api('POST', '/cutover/cloud-api/advance', { reason: 'next step' });
    expect(refused.status).toBe(422);
    expect(refused.body.code).toBe('CUTOVER_ERR_GATE_FAILED');
    expect(refused.body.message).toMatch(/lockdown-drift fail: lockdown drift: 'dobe'@'%' SELECT on event_log/);
    expect(await step('cloud-api')).toBe(0);
    const history = await api('GET', '/cutover/history?feature=cloud-api');
    expect(history.body.entries[0]).toMatchObject({ action: 'advance-refused' });
    expect(history.body.entries[0].readings).toEqual([expect.objectContaining({ gate: 'lockdown-drift', verdict: 'fail', value: 1 })]);

    // The autopilot is refused the same way, and says why it waits.
    expect((await api('POST', '/cutover/cloud-api/run', { reason: 'autopilot' })).status).toBe(200);
    await admin.autopilot.tick();
    const view = (await api('GET', '/cutover/autopilot')).body.features.find((f: { feature: string }) => f.feature === 'cloud-api');
    expect(view.waiting).toMatch(/advance refused \(CUTOVER_ERR_GATE_FAILED\): .*lockdown-drift fail/);
    expect(await step('cloud-api')).toBe(0);
    expect((await api('POST', '/cutover/cloud-api/stop', { reason: 'drift' })).status).toBe(200);

    // The dashboard: its data says drift, its page has the bar the script paints red.
    await watcher.check();
    expect((await dashboard()).lockdown).toMatchObject({ state: 'drift', drift: ["'dobe'@'%' SELECT on event_log"] });
    const page = await (await fetch(`${url}/dashboard`)).text();
    expect(page).toMatch(/<div id="lockdown" class="lockdown"/);
    expect(await (await fetch(`${url}/dashboard/style.css`)).text()).toMatch(/\.lockdown\[data-state="drift"\]/);
    // And cutover status keeps its line.
    const cli = await runCli(['cutover', 'status', '--url', url], { env: { STRANGLER_ADMIN_TOKEN: TOKEN } });
    expect(cli.stdout).toMatch(/^LOCKDOWN DRIFT: .*'dobe'@'%' SELECT on event_log/m);

    await t.db.raw(`REVOKE SELECT ON ??.event_log FROM 'dobe'@'%'`, [t.name]);
    await watcher.check();
    expect((await dashboard()).lockdown.state).toBe('holds');
    const advanced = await api('POST', '/cutover/cloud-api/advance', { reason: 'drift revoked' });
    expect(advanced.status).toBe(200);
    expect(advanced.body.readings).toEqual([expect.objectContaining({ gate: 'lockdown-drift', verdict: 'pass', value: 0 })]);
    expect(await step('cloud-api')).toBe(1);
  });
});
