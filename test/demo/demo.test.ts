import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { formatMysqlUrl } from '../../lib/db/config.ts';
import { createProgress } from '../../demo/progress.ts';
import { runDemo } from '../../demo/run-demo.ts';
import type { DemoReport } from '../../demo/report-types.ts';
import { minSamplesFor } from '../../lib/metrics/sample-percentiles.ts';

/**
 * A stage's latency: its n is the events its agents received (done ones, and any that errored), and each
 * percentile is a number exactly when the sample is large enough for it (20 for p50, 100 for p99), never
 * otherwise. How large the numbers are depends on the machine's load: that is bench:demo's business, not
 * this test's; here p50 ≤ p99 is the only relation asserted.
 */
function expectLatency(stage: DemoReport['stages'][number]): void {
  const latency = stage.event_latency_ms;
  expect(latency.n).toBeGreaterThanOrEqual(stage.events_done);
  expect(latency.n).toBeLessThanOrEqual(stage.events_created);
  for (const [value, min] of [[latency.p50, minSamplesFor(0.5)], [latency.p99, minSamplesFor(0.99)]] as const) {
    if (latency.n < min) expect(value).toBeNull();
    else expect(value).toBeGreaterThanOrEqual(0);
  }
  if (latency.p50 !== null && latency.p99 !== null) expect(latency.p50).toBeLessThanOrEqual(latency.p99);
}

/** Every event the stage created finished, done or (counted) in error. */
function expectAllFinished(stage: DemoReport['stages'][number]): void {
  expect(stage.events_created).toBeGreaterThan(0);
  expect(stage.events_done).toBe(stage.events_created - Number(stage.details?.events_error ?? 0));
}

/**
 * One small demo run (beforeAll), judged stage by stage so that the first failure does not hide the
 * others. Only structural facts are asserted (who holds connections, which side polls less than which,
 * what moved, nothing lost); rates and latencies under load are measured by the benchmarks.
 */
describe('npm run demo (small)', () => {
  const hypervisors = 40;
  let out: string;
  let report: DemoReport;
  const stage = (name: DemoReport['stages'][number]['name']) => {
    const found = report.stages.find((s) => s.name === name);
    if (!found) throw new Error(`the report has no ${name} stage (stages: ${report.stages.map((s) => s.name).join(', ')})`);
    return found;
  };

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'strangler-demo-'));
    report = await runDemo({
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
      contention: { rates: [10, 30], seconds: 1 },
      progress: createProgress(process.stderr, { quiet: true }),
      env: { MYSQL_URL: formatMysqlUrl(inject('dbAdmin')) },
    });
  }, 600_000);

  it('runs the five stages in order, loses nothing, doubles nothing, over-commits no host', () => {
    expect(report.failed).toBeUndefined();
    expect(report.stages.map((s) => s.name)).toEqual(['legacy', 'event-router', 'scheduler-v2', 'harpoon', 'lockdown']);
    expect(report).toMatchObject({ hypervisors, regions: 2, lost_events: 0, duplicate_executions: 0, overcommitted_hosts: 0 });
    expect(report.database).toMatchObject({ source: 'url', name: expect.stringMatching(/^strangler_demo_/) });
    expect(report.timeline.length).toBeGreaterThanOrEqual(3);
    expect(report.timeline.some((s) => s.stage === 'event-router')).toBe(true);
  });

  it('moved every step with the autopilot, each after two passing analysis runs in a row (report.json keeps them)', () => {
    // strangler cutover run: a step was left (or its run done) only after two passing runs in a row (the demo plan's passes).
    expect(stage('event-router').analysis!.map((a) => a.step_name)).toEqual(['nyc1', 'all-regions']);
    expect(stage('scheduler-v2').analysis!.map((a) => a.step_name)).toEqual(['shadow', 'nyc1', 'all-regions']);
    expect(stage('lockdown').analysis!.map((a) => `${a.feature} ${a.step_name}`)).toEqual(['lockdown harpoon-only']);
    for (const s of report.stages.slice(1)) {
      for (const a of s.analysis!) {
        expect(a.outcomes, `${s.name}: ${a.feature} ${a.step_name}`).toMatch(/PP/);
        expect(a.runs).toBe(a.outcomes.length);
      }
    }
  });

  it('writes report.json (the report it returned) and report.html', async () => {
    const written = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as DemoReport;
    expect(written).toEqual(report);
    const html = await readFile(join(out, 'report.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain(report.database.name);
  });

  it('ends every stage with the same ramp of bursts, read from the server and from Cloud, set side by side in report.html', async () => {
    for (const s of report.stages) {
      expect(s.contention!.map((c) => c.rate_per_s), s.name).toEqual([10, 30]);
      for (const c of s.contention!) {
        expect(c, s.name).toMatchObject({ seconds: 1, events_unfinished_after_drain: 0 });
        // How many requests a 1 s burst gets out depends on the machine's load; that it ran and was measured does not.
        expect(c.requests_sent, s.name).toBeGreaterThan(0);
        expect(c.threads_running_peak, s.name).toBeGreaterThanOrEqual(1);
        expect(c.cloud_request_ms.n, s.name).toBeGreaterThan(0);
        // Sampled from PROCESSLIST every 0.5 s over the burst: a sample per tick, whatever the load.
        expect(c.oldest_statement_ms.n, s.name).toBeGreaterThan(0);
        expect(c.events_unfinished_peak, s.name).toBeGreaterThanOrEqual(0);
        for (const [where, n] of Object.entries(c.lock_waits_seen)) {
          expect(where).toMatch(/^\S+ by \S+$/);
          expect(n).toBeGreaterThan(0);
        }
      }
      expect(s.details?.threads_running_peak, s.name).toBeGreaterThanOrEqual(1);
    }
    expect(report.settings).toMatchObject({ god_query: '2016', agent_connections: 'one per agent', thread_handling: expect.any(String) });
    const html = await readFile(join(out, 'report.html'), 'utf8');
    expect(html).toContain('Locks and backlog under the same load');
    for (const s of report.stages) expect(html).toMatch(new RegExp(`<table class="contention">[\\s\\S]*data-stage="${s.name}" data-rate="30"`));
  });

  it('legacy: one MySQL connection per agent, every agent polling', () => {
    const legacy = stage('legacy');
    // One connection per agent plus the services' own, as PROCESSLIST counted them.
    expect(legacy.mysql_connections.by_user.dobe).toBe(hypervisors);
    expect(legacy.mysql_connections.by_user.cloud).toBeGreaterThanOrEqual(1);
    expect(legacy.mysql_connections.total).toBeGreaterThanOrEqual(hypervisors + 2);
    expect(legacy.polling_queries_per_s).toBeGreaterThan(0);
    expectAllFinished(legacy);
    expectLatency(legacy);
  });

  it('event-router: delivery moved region by region; agents hold no MySQL connection, the routers a few, and poll less', () => {
    const router = stage('event-router');
    expect(router.details).toMatchObject({ cutover_steps: 'nyc1 → all-regions', agents_on_router: hypervisors, agents_on_god_query: 0, events_error: 0 });
    expect(router.mysql_connections.by_user.dobe ?? 0).toBe(0);
    expect(router.mysql_connections.by_user.event_router).toBeGreaterThanOrEqual(1);
    expect(router.mysql_connections.by_user.event_router).toBeLessThanOrEqual(5 * 2);
    expect(router.mysql_connections.total).toBeLessThan(hypervisors);
    expect(router.polling_queries_per_s).toBeGreaterThan(0);
    expect(router.polling_queries_per_s).toBeLessThan(stage('legacy').polling_queries_per_s);
    expectAllFinished(router);
    expectLatency(router);
  });

  it('scheduler-v2: three V2 replicas (shadow, nyc1, all) placed every create of the stage, with the plan\'s parity', () => {
    const v2 = stage('scheduler-v2');
    expect(v2.details).toMatchObject({ cutover_steps: 'shadow → nyc1 → all-regions', v2_replicas: 3, placements_by_v1: 0, overcommitted_hosts: 0 });
    expect(Number(v2.details?.placements_by_v2)).toBeGreaterThan(0);
    expect(Number(v2.details?.shadow_judged)).toBeGreaterThan(0);
    // The parity gate (at most 10% differ over the shadow step's window, demo/scheduler-v2-stage.ts) let the shadow
    // step go: the steps above say so. The agreement over the whole stage moves with the machine's load (68.7 %
    // under a load average of 47, 100 % on a quiet machine): here it only has to be a percentage.
    expect(Number(v2.details?.shadow_agreement_pct)).toBeGreaterThanOrEqual(0);
    expect(Number(v2.details?.shadow_agreement_pct)).toBeLessThanOrEqual(100);
    expect(v2.mysql_connections.by_user.scheduler_v2).toBeGreaterThanOrEqual(1);
    expectAllFinished(v2);
    expectLatency(v2);
  });

  it('harpoon: event writes and reads on Harpoon; every router and V2 replica follows its stream', () => {
    const harpoon = stage('harpoon');
    expect(harpoon.details).toMatchObject({ followers_on_harpoon: '2/2 routers, 3/3 V2 replicas', outbox_rows_left: 0, events_error: 0 });
    expect(String(harpoon.details?.cutover_steps)).toMatch(/event-writes full → event-reads shadow → .* → event-reads full$/);
    expect(Number(harpoon.details?.harpoon_changes_committed)).toBeGreaterThan(0);
    // The shadow gate needs 10 comparisons (demo/harpoon-stage.ts min_samples) before event-reads may advance.
    expect(Number(harpoon.details?.event_reads_shadow_comparisons)).toBeGreaterThanOrEqual(10);
    expect(harpoon.events_done).toBe(harpoon.events_created);
    expect(harpoon.mysql_connections.by_user.harpoon).toBeGreaterThanOrEqual(1);
    expectAllFinished(harpoon);
  });

  it('lockdown: only Harpoon holds grants on events and nothing reads events while idle', () => {
    const lockdown = stage('lockdown');
    expect(lockdown.details).toMatchObject({ sole_access: 'true', events_rows_read_per_s_idle: 0, preflight: 'only harpoon seen at event data' });
    // The verifier, run in the stage: no service user but Harpoon may touch event data.
    expect(report.lockdown_verification).toMatchObject({ ok: true, violations: [], owner_ok: true });
    // No polling-rate check here: USER_STATISTICS counts a user's statements in every database of the server, and
    // this suite shares one server between files running at once (another file's agents are `dobe` too: a CI run read
    // 17.2 q/s here). What cannot be polluted is per schema: TABLE_STATISTICS says nothing read `events` while idle.
    expect(lockdown.events_done).toBe(lockdown.events_created);
    expectAllFinished(lockdown);
    expectLatency(lockdown);
  });
});
