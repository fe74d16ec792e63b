import { describe, expect, it } from 'vitest';
import { renderSweepHtml } from '../../bench/sweep/html.ts';
import { findKnees } from '../../bench/sweep/knee.ts';
import type { SweepReport, SweepRow } from '../../bench/sweep/types.ts';

function row(series: string, size: number, p99: number | null, extra: Partial<SweepRow> = {}): SweepRow {
  return {
    variant: series.startsWith('migration') ? 'migration' : 'legacy-pooled',
    stage: series.includes('/') ? (series.split('/')[1] as SweepRow['stage']) : 'legacy',
    series,
    size,
    connections: size,
    polling_queries_per_s: size / 3,
    latency_ms: { p50: p99 === null ? null : p99 / 2, p99, n: p99 === null ? 30 : 400 },
    cloud_error_rate: 0,
    mariadbd_cpu_cores: 0.5,
    mariadbd_rss_mb: 300,
    threads_running_peak: 4,
    innodb_row_lock_waits: 0,
    thread_handling: 'one-thread-per-connection',
    god_query: '2016',
    ...extra,
  };
}

describe('bench:sweep knees', () => {
  it('marks the first size whose p99 leaves 2x the smallest size plus 250 ms, and none for a flat series', () => {
    const rows = [
      row('migration/legacy', 500, 2000),
      row('migration/legacy', 1000, 2400),
      row('migration/legacy', 5000, 9000),
      row('migration/legacy', 15000, 30000),
      row('migration/harpoon', 500, 12),
      row('migration/harpoon', 15000, 30),
    ];
    expect(findKnees(rows)).toEqual([{ series: 'migration/legacy', size: 5000, reason: 'p99 9000 ms > 2 × 2000 ms + 250 ms' }]);
  });

  it('falls back to p50 where the sample holds no p99, and counts errors and failed runs as breaking', () => {
    const rows = [row('legacy-pooled', 500, null, { latency_ms: { p50: 1000, p99: null, n: 40 } }), row('legacy-pooled', 2000, null, { latency_ms: { p50: 5000, p99: null, n: 40 } })];
    expect(findKnees(rows)[0]).toMatchObject({ size: 2000, reason: expect.stringMatching(/^p50 5000 ms/) });
    const erring = [row('migration/legacy', 500, 100), row('migration/legacy', 1000, 110, { cloud_error_rate: 0.2 })];
    expect(findKnees(erring)[0]).toMatchObject({ size: 1000, reason: expect.stringMatching(/error rate 20\.0%/) });
    const failed = findKnees([row('migration/legacy', 500, 100)], [{ variant: 'migration', size: 10000, code: 'DB_ERR', message: 'refused' }]);
    expect(failed).toEqual([{ series: 'migration/legacy', size: 10000, reason: 'the run failed at this size' }]);
    // Failed at scheduler-v2: the legacy stage of that run was measured and is not broken by it.
    const atStage = findKnees([row('migration/legacy', 500, 100), row('migration/scheduler-v2', 500, 100)], [{ variant: 'migration', size: 500, stage: 'scheduler-v2', code: 'X', message: 'gate' }]);
    expect(atStage).toEqual([{ series: 'migration/scheduler-v2', size: 500, reason: 'the run failed at this size' }]);
  });
});

describe('sweep.html', () => {
  it('is self-contained, draws one line per series, circles each knee and prints n with every percentile', () => {
    const rows = [row('migration/legacy', 500, 2000), row('migration/legacy', 5000, 9000), row('legacy-pooled', 500, null), row('legacy-pooled', 5000, 3000)];
    const report: SweepReport = {
      started_at: '2026-12-07T00:00:00Z',
      updated_at: '2026-12-07T00:10:00Z',
      settings: { stage_seconds: 15 },
      done: ['migration@500'],
      rows,
      failures: [],
      knees: findKnees(rows),
      machine: { cpus: 2, load_average: [1, 1, 1], total_memory_mb: 24000 },
      run_seconds: {},
    };
    const page = renderSweepHtml(report);
    expect(page).not.toMatch(/https?:\/\/|<script|<link|url\(/i);
    expect(page).not.toMatch(/NaN|undefined|Infinity/);
    expect(page.match(/<g data-series="migration\/legacy">/g)?.length).toBeGreaterThanOrEqual(5);
    expect(page).toContain('class="knee"');
    expect(page).toContain('n/a (n=30)');
    expect(page).toMatch(/9,000 <span class="dim">n=400<\/span>/);
    expect(page).toContain('<b>migration/legacy</b> at 5,000 hypervisors');
  });
});
