import { existsSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventRouterPlan } from '../../../demo/event-router-stage.ts';
import { startLegacyStack, type LegacyStack } from '../../../stack/stack.ts';
import type { SeedData } from '../../../stack/seed/generate.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';
import { testStackOptions } from '../../helpers/stack.ts';
import { seedWorld, waitFor } from '../../helpers/seeded.ts';

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM && process.env.CI) throw new Error('chromium is missing on CI: .ci/run installs it with apt-get install chromium');
if (!HAVE_CHROMIUM) console.warn('dashboard.test.ts skipped: /usr/bin/chromium is not installed (apt-get install chromium)');

const ARTIFACTS = fileURLToPath(new URL('../../../out/test-artifacts/', import.meta.url));
const ADMIN_TOKEN = 'dashboard-test-admin-token-0123456789';

interface PageState {
  updates: number;
  markers: number;
  charts: Record<string, { points: number; values: number; series: string[] }>;
  steps: Array<{ feature: string; step: number }>;
}

describe.skipIf(!HAVE_CHROMIUM)('the live dashboard on the admin port, in headless Chromium', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let stack: LegacyStack;
  let browser: Browser;
  beforeAll(async () => {
    t = await createTestDatabase('dashboard');
    seed = await seedWorld(t.db, { hypervisors: 12, regions: 2 });
    const regions = seed.regions.map((r) => r.slug);
    stack = await startLegacyStack(
      testStackOptions(t, seed, {
        eventRouter: { regions, plan: eventRouterPlan(regions, 0), adminToken: ADMIN_TOKEN, pollIntervalMs: 200, modeCheckEvery: 1, dashboard: { intervalMs: 500 } },
      }),
    );
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
    await t?.drop();
  });

  it('draws live connections, and a cutover step change appears as it happens', async () => {
    const er = stack.eventRouter!;
    expect(er.dashboardUrl).toBe(`${er.adminUrl}/dashboard`);
    const page = await browser.newPage({ viewport: { width: 1400, height: 1500 } });
    const requested: string[] = [];
    page.on('request', (r) => requested.push(r.url()));
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // No token: the dashboard is read-only and open.
    const res = await page.goto(er.dashboardUrl!);
    expect(res?.status()).toBe(200);
    const state = () => page.evaluate(() => (window as unknown as { __dashboard: PageState }).__dashboard);

    // Live data: the connection chart has points with values (the agents' 12 connections among them).
    await page.waitForFunction(() => {
      const d = (window as unknown as { __dashboard?: PageState }).__dashboard;
      return !!d && d.updates >= 2 && (d.charts.connections?.values ?? 0) >= 6;
    }, undefined, { timeout: 30_000 });
    const before = await state();
    expect(before.charts.connections!.series).toEqual(expect.arrayContaining(['total', 'user dobe']));
    expect(await page.locator('#chart-connections canvas').count()).toBeGreaterThan(0);
    expect(before.steps.find((s) => s.feature === 'event-delivery')?.step).toBe(0);

    // Advance event-delivery through the admin API, as `strangler cutover advance` does.
    const advance = await fetch(`${er.adminUrl}/cutover/event-delivery/advance`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'dashboard test' }),
    });
    expect(advance.status, await advance.clone().text()).toBe(200);
    await page.waitForFunction(() => {
      const d = (window as unknown as { __dashboard: PageState }).__dashboard;
      return d.markers >= 1 && d.steps.some((s) => s.feature === 'event-delivery' && s.step === 1);
    }, undefined, { timeout: 30_000 });
    await page.locator('#steps tr[data-feature="event-delivery"][data-step="1"]').waitFor();
    expect(await page.locator('#markers li[data-feature="event-delivery"]').first().textContent()).toContain('event-delivery 0 → 1');
    // The analysis panel: the step's current analysis (each gate's verdict), passes so far, the next check.
    const analysis = page.locator('#autopilot tr[data-feature="event-delivery"]');
    await page.waitForFunction(() => /router-backlog (pass|fail|no-data|error)/.test(document.querySelector('#autopilot tr[data-feature="event-delivery"]')?.textContent ?? ''), undefined, { timeout: 30_000 });
    const cells = await analysis.locator('td').allTextContents();
    expect(cells[1]).toBe('idle');
    expect(cells[2]).toMatch(/^1\/\d+ /);
    expect(cells[4]).toMatch(/^\d+\/3$/); // passes so far / the plan's passes
    expect(cells[7]).toMatch(/^(in [\d.]+s \(every 10s\)|-)$/);
    // The agents of the first step's region leave MySQL: wait for a few more points after the change.
    const updates = (await state()).updates;
    await waitFor(async () => (await state()).updates >= updates + 4, 20_000);
    const after = await state();
    expect(after.charts.steps!.values).toBeGreaterThan(0);
    expect(after.charts.connections!.points).toBeGreaterThan(before.charts.connections!.points);

    // Works offline: every request went to the admin port; the token is nowhere in what it serves.
    expect(requested.filter((u) => !u.startsWith(er.adminUrl))).toEqual([]);
    const data = await (await fetch(`${er.adminUrl}/dashboard/data`)).text();
    expect(data).not.toContain(ADMIN_TOKEN);
    expect(await page.content()).not.toContain(ADMIN_TOKEN);
    expect(errors).toEqual([]);

    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true });
    if (process.env.STRANGLER_UPDATE_SCREENSHOTS) await copyFile(`${ARTIFACTS}dashboard.png`, fileURLToPath(new URL('../../../docs/dashboard.png', import.meta.url)));
    await page.close();
  });
});
