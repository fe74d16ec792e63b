import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { formatMysqlUrl } from '../../lib/db/config.ts';
import { createProgress } from '../../demo/progress.ts';
import { runDemo } from '../../demo/run-demo.ts';
import type { DemoReport } from '../../demo/report-types.ts';
import { minSamplesFor } from '../../lib/metrics/sample-percentiles.ts';

/**
 * A stage's latency: its n is the events its agents received (done ones, and any that errored), and each percentile is a number
 * exactly when the sample is large enough for it (20 for p50, 100 for p99), never otherwise.
 */
function expectLatency(stage: DemoReport['stages'][number], maxMs: number): void {
  const latency = stage.event_latency_ms;
  expect(latency.n).toBeGreaterThanOrEqual(stage.events_done);
  expect(latency.n).toBeLessThanOrEqual(stage.events_created);
  for (const [value, min] of [[latency.p50, minSamplesFor(0.5)], [latency.p99, minSamplesFor(0.99)]] as const) {
    if (latency.n < min) expect(value).toBeNull();
    else {
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThan(maxMs);
    }
  }
}

describe('npm run demo (small)', () => {
  it('runs every stage (legacy, event-router, scheduler-v2, harpoon, lockdown) under traffic and writes report.json and report.html with the server-measured numbers', async () => {
    const out = await mkdtemp(join(tmpdir(), 'strangler-demo-'));
    const hypervisors = 40;
    const report = await runDemo({
      hypervisors,
      regions: 2,
      out,
      stageSeconds: 4,
      rate: 15,
      seed: 5,
      pollIntervalMs: { min: 200, max: 400 },
      workMs: 2,
      soakSeconds: 2,
      keepDatabase: false,
      progress: createProgress(process.stderr, { quiet: true }),
      env: { MYSQL_URL: formatMysqlUrl(inject('dbAdmin')) },
    });
    const written = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as DemoReport;
    expect(written).toEqual(report);
    expect(report).toMatchObject({ hypervisors, regions: 2, lost_events: 0, duplicate_executions: 0, overcommitted_hosts: 0 });
    expect(report.database).toMatchObject({ source: 'url', name: expect.stringMatching(/^strangler_demo_/) });
    const [legacy] = report.stages;
    expect(legacy!.name).toBe('legacy');
    // One connection per agent plus the services' own, as PROCESSLIST counted them.
    expect(legacy!.mysql_connections.by_user.dobe).toBe(hypervisors);
    expect(legacy!.mysql_connections.by_user.cloud).toBeGreaterThanOrEqual(1);
    expect(legacy!.mysql_connections.total).toBeGreaterThanOrEqual(hypervisors + 2);
    expect(legacy!.polling_queries_per_s).toBeGreaterThan(hypervisors / 0.4 / 2);
    expect(legacy!.events_created).toBeGreaterThan(10);
    expect(legacy!.events_done).toBe(legacy!.events_created - Number(legacy!.details?.events_error ?? 0));
    expectLatency(legacy!, 5000);
    // event-router: event delivery moved region by region; the agents hold no MySQL connection.
    expect(report.stages.map((s) => s.name)).toEqual(['legacy', 'event-router', 'scheduler-v2', 'harpoon', 'lockdown']);
    expect(report.failed).toBeUndefined();
    const router = report.stages[1]!;
    expect(router.mysql_connections.by_user.dobe ?? 0).toBe(0);
    expect(router.mysql_connections.by_user.event_router).toBeGreaterThanOrEqual(1);
    expect(router.mysql_connections.by_user.event_router).toBeLessThanOrEqual(5 * 2);
    expect(router.mysql_connections.total).toBeLessThan(hypervisors);
    expect(router.details).toMatchObject({ cutover_steps: 'nyc1 → all-regions', agents_on_router: hypervisors, agents_on_god_query: 0 });
    expect(router.polling_queries_per_s).toBeGreaterThan(0);
    expect(router.polling_queries_per_s).toBeLessThan(legacy!.polling_queries_per_s);
    expect(router.events_created).toBeGreaterThan(10);
    expect(router.events_done).toBe(router.events_created - Number(router.details?.events_error ?? 0));
    expect(router.details?.events_error).toBe(0);
    expectLatency(router, 5000);
    expect(report.timeline.some((s) => s.stage === 'event-router')).toBe(true);
    // scheduler-v2: scheduling moved to three V2 replicas (shadow, nyc1, all); in the stage V2 placed every create.
    const v2 = report.stages[2]!;
    expect(v2.details).toMatchObject({ cutover_steps: 'shadow → nyc1 → all-regions', v2_replicas: 3, placements_by_v1: 0, overcommitted_hosts: 0 });
    expect(Number(v2.details?.placements_by_v2)).toBeGreaterThan(5);
    expect(Number(v2.details?.shadow_judged)).toBeGreaterThanOrEqual(20);
    // The demo's parity gate is the plan's: at most 10% differ over the shadow window (demo/scheduler-v2-stage.ts).
    expect(Number(v2.details?.shadow_agreement_pct)).toBeGreaterThanOrEqual(90);
    expect(v2.mysql_connections.by_user.scheduler_v2).toBeGreaterThanOrEqual(1);
    expect(v2.events_done).toBe(v2.events_created - Number(v2.details?.events_error ?? 0));
    expectLatency(v2, 5000);
    // harpoon: event writes and reads on Harpoon; the routers and V2 take its stream and poll nothing.
    const harpoon = report.stages[3]!;
    expect(harpoon.details).toMatchObject({ followers_on_harpoon: '2/2 routers, 3/3 V2 replicas', outbox_rows_left: 0, events_error: 0 });
    expect(String(harpoon.details?.cutover_steps)).toMatch(/event-writes full → event-reads shadow → .* → event-reads full$/);
    expect(Number(harpoon.details?.harpoon_changes_committed)).toBeGreaterThan(10);
    expect(Number(harpoon.details?.event_reads_shadow_comparisons)).toBeGreaterThanOrEqual(10);
    expect(harpoon.events_done).toBe(harpoon.events_created);
    expect(harpoon.mysql_connections.by_user.harpoon).toBeGreaterThanOrEqual(1);
    // lockdown: only Harpoon holds grants on events; while idle nothing reads events at all.
    const lockdown = report.stages[4]!;
    expect(lockdown.details).toMatchObject({ sole_access: 'true', events_rows_read_per_s_idle: 0 });
    // The verifier, run in the stage: no service user but Harpoon may touch event data.
    expect(report.lockdown_verification).toMatchObject({ ok: true, violations: [], owner_ok: true });
    expect(lockdown.polling_queries_per_s).toBeLessThanOrEqual(0.5);
    expect(lockdown.events_created).toBeGreaterThan(10);
    expect(lockdown.events_done).toBe(lockdown.events_created);
    expectLatency(lockdown, 5000);
    expect(report.timeline.length).toBeGreaterThanOrEqual(3);
    // The autopilot moved every step (strangler cutover run): report.json keeps each step's analysis runs,
    // and a step was left (or its run done) only after two passing runs in a row (the demo plan's passes).
    expect(router.analysis!.map((a) => a.step_name)).toEqual(['nyc1', 'all-regions']);
    expect(v2.analysis!.map((a) => a.step_name)).toEqual(['shadow', 'nyc1', 'all-regions']);
    expect(lockdown.analysis!.map((a) => `${a.feature} ${a.step_name}`)).toEqual(['lockdown harpoon-only']);
    for (const stage of report.stages.slice(1)) {
      for (const a of stage.analysis!) {
        expect(a.outcomes, `${stage.name}: ${a.feature} ${a.step_name}`).toMatch(/PP/);
        expect(a.runs).toBe(a.outcomes.length);
      }
    }
    const html = await readFile(join(out, 'report.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain(report.database.name);
  }, 400_000);
});
