import { describe, expect, it } from 'vitest';
import { escapeHtml } from '../../demo/escape-html.ts';
import { renderReportHtml } from '../../demo/report-html.ts';
import type { DemoReport, StageName, TimelineSample } from '../../demo/report-types.ts';

const START = Date.parse('2016-06-01T12:00:00Z');
const LEGACY_SECONDS = 120;
const ROUTER_SECONDS = 80;
const SAMPLE_EVERY_S = 2;

function at(seconds: number): string {
  return new Date(START + seconds * 1000).toISOString();
}

/**
 * The connection counts of a real run: the fleet's agents connect over the
 * first 20 s, hold ~15,000 connections through `legacy`, then drop away as
 * the Event Router (a user that exists only from its stage on) takes over.
 */
function sampleAt(seconds: number): TimelineSample {
  const stage: StageName = seconds < LEGACY_SECONDS ? 'legacy' : 'event-router';
  const by_user: Record<string, number> =
    stage === 'legacy'
      ? { dobe: Math.min(15_000, Math.round((seconds / 20) * 15_000)), cloud: 8, scheduler_v1: 1 }
      : { dobe: seconds < LEGACY_SECONDS + 6 ? 400 : 0, cloud: 8, scheduler_v1: 1, event_router: 30 };
  if (by_user.dobe === 0) delete by_user.dobe;
  const connections_total = Object.values(by_user).reduce((a, b) => a + b, 0) + 3;
  return { t: at(seconds), stage, connections_total, by_user, questions_per_s: stage === 'legacy' ? 7_400 : 310 };
}

function realisticReport(): DemoReport {
  const timeline: TimelineSample[] = [];
  for (let s = 0; s <= LEGACY_SECONDS + ROUTER_SECONDS; s += SAMPLE_EVERY_S) timeline.push(sampleAt(s));
  return {
    hypervisors: 15_000,
    regions: 12,
    database: { host: '127.0.0.1', port: 3307, name: 'strangler_demo', server_version: '10.11.6-MariaDB', source: 'throwaway' },
    started_at: at(0),
    ended_at: at(LEGACY_SECONDS + ROUTER_SECONDS),
    settings: { hypervisors: 15_000, regions: 12, poll_interval_ms: 2_500, god_query: true, seed: 'demo-2016' },
    stages: [
      {
        name: 'legacy',
        started_at: at(0),
        ended_at: at(LEGACY_SECONDS),
        mysql_connections: { total: 15_012, by_user: { dobe: 15_000, cloud: 8, scheduler_v1: 1 } },
        polling_queries_per_s: 6_123.4,
        event_latency_ms: { p50: 1_840, p99: 4_910, n: 2_400 },
        events_created: 2_400,
        events_done: 2_400,
        details: { questions_per_s: 7_400, placements: 612 },
      },
      {
        name: 'event-router',
        started_at: at(LEGACY_SECONDS),
        ended_at: at(LEGACY_SECONDS + ROUTER_SECONDS),
        mysql_connections: { total: 42, by_user: { event_router: 30, cloud: 8, scheduler_v1: 1 } },
        polling_queries_per_s: 11.8,
        event_latency_ms: { p50: 38.2, p99: 212.7, n: 1_600 },
        events_created: 1_600,
        events_done: 1_600,
        details: { routers: 12 },
      },
    ],
    lost_events: 0,
    duplicate_executions: 0,
    overcommitted_hosts: 0,
    timeline,
    processes: [
      { role: 'legacy-api', pid: 4101, peak_rss_bytes: 96 * 1024 * 1024 },
      { role: 'dobe-fleet', pid: 4102, peak_rss_bytes: 1_310_720_000 },
      { role: 'event-router', pid: 4210, peak_rss_bytes: 72.5 * 1024 * 1024 },
    ],
  };
}

/** The `points` of the first polyline of a series, as [x, y] pairs. */
function seriesPoints(page: string, series: string): Array<[number, number]> {
  const group = page.match(new RegExp(`<g class="series[^"]*" data-series="${escapeRegExp(series)}">[\\s\\S]*?</g>`));
  expect(group, `series ${series}`).not.toBeNull();
  const points = group![0].match(/<polyline[^>]*\spoints="([^"]*)"/);
  expect(points).not.toBeNull();
  return points![1]!
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((pair) => pair.split(',').map(Number) as [number, number]);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function stageRow(page: string, stage: string): string {
  const row = page.match(new RegExp(`<tr data-stage="${escapeRegExp(stage)}">[\\s\\S]*?</tr>`));
  expect(row, `row for ${stage}`).not.toBeNull();
  return row![0];
}

describe('report.html', () => {
  it('is one self-contained document with no reference to anything outside it', () => {
    const page = renderReportHtml(realisticReport());
    expect(page.startsWith('<!doctype html>')).toBe(true);
    expect(page).not.toMatch(/https?:\/\//i);
    expect(page).not.toMatch(/\/\/[a-z0-9-]+\.[a-z]/i);
    expect(page).not.toMatch(/\b(src|href|srcset|xlink:href|action)\s*=/i);
    expect(page).not.toMatch(/url\(|@import|<link\b|<script\b|<img\b|<iframe\b/i);
    expect(page).not.toMatch(/NaN|Infinity|undefined|\[object/);
  });

  it('draws the total and every user as a line with one point per sample', () => {
    const report = realisticReport();
    const page = renderReportHtml(report);
    expect(page).toContain('<svg');
    for (const series of ['total', 'dobe', 'cloud', 'scheduler_v1', 'event_router']) {
      const points = seriesPoints(page, series);
      expect(points, series).toHaveLength(report.timeline.length);
      expect(points.flat().every(Number.isFinite)).toBe(true);
    }
    // Time runs left to right, and the legacy peak sits far above the event-router tail.
    const total = seriesPoints(page, 'total');
    expect(total.every(([x], i) => i === 0 || x > total[i - 1]![0])).toBe(true);
    const legacyPeakY = total[30]![1];
    const routerY = total[total.length - 1]![1];
    expect(routerY - legacyPeakY).toBeGreaterThan(200);
  });

  it('labels the axes with round values, the stages and a legend', () => {
    const page = renderReportHtml(realisticReport());
    for (const tick of ['>0<', '>5k<', '>10k<', '>15k<', '>0s<', '>1m<', '>2m<', '>3m<']) expect(page).toContain(tick);
    expect(page).toContain('data-stage="legacy"');
    expect(page).toContain('data-stage="event-router"');
    const legend = page.match(/<ul class="legend">[\s\S]*?<\/ul>/)![0];
    for (const user of ['total', 'dobe', 'cloud', 'scheduler_v1', 'event_router']) expect(legend).toContain(`>${user}<`);
  });

  it('tabulates each stage with its numbers', () => {
    const page = renderReportHtml(realisticReport());
    const legacy = stageRow(page, 'legacy');
    expect(legacy).toContain('>legacy<');
    for (const text of ['15,012', '15,000', '6,123', '1,840', '4,910', '2,400', '2m', '+0s', '12:00:00Z', 'placements', '612'])
      expect(legacy).toContain(text);
    const router = stageRow(page, 'event-router');
    expect(router).toContain('>event-router<');
    for (const text of ['>42<', '>30<', '>12<', '>38<', '>213<', '1,600', '1m20s', '+2m', 'routers']) expect(router).toContain(text);
  });

  it('prints every percentile with its n, and "n/a (n=…)" instead of a number below the minimum sample', () => {
    const report = realisticReport();
    // 1 sample (the 15,000 run that finished one event): no p50, no p99. 40 samples: a p50, no p99.
    report.stages[0]!.event_latency_ms = { p50: null, p99: null, n: 1 };
    report.stages[1]!.event_latency_ms = { p50: 38.2, p99: null, n: 40 };
    const page = renderReportHtml(report);
    const cells = (row: string) => [...row.matchAll(/<td class="num">([\s\S]*?)<\/td>/g)].map((m) => m[1]!.replace(/<[^>]+>/g, ''));
    const legacy = cells(stageRow(page, 'legacy'));
    expect(legacy.filter((c) => c === 'n/a (n=1)')).toHaveLength(2);
    const router = cells(stageRow(page, 'event-router'));
    expect(router).toContain('38 n=40');
    expect(router).toContain('n/a (n=40)');
    expect(stageRow(page, 'legacy')).not.toMatch(/>0(\.0)?</);
  });

  it('sets the same bursts side by side, rate by rate: lock waits, backlog and where the waits are, with n on every percentile', () => {
    const report = realisticReport();
    const burst = { seconds: 5, requests_sent: 200, requests_failed: 3, table_locks_waited: 0, lock_waiting_transactions_peak: 0, events_unfinished_peak: 0 };
    const quiet = { innodb_row_lock_waits: 0, innodb_row_lock_time_ms: 0, threads_running_peak: 3, threads_running_mean: 1.2, lock_waits_seen: {}, oldest_statement_ms: { max: 1, n: 10 } };
    report.stages[0]!.contention = [
      { ...burst, ...quiet, rate_per_s: 40, achieved_rate_per_s: 39.5, cloud_request_ms: { p50: 20, p99: 90, n: 197 } },
      {
        ...burst,
        rate_per_s: 400,
        achieved_rate_per_s: 212.4,
        innodb_row_lock_waits: 1_234,
        innodb_row_lock_time_ms: 56_789,
        threads_running_peak: 87,
        threads_running_mean: 31.5,
        oldest_statement_ms: { max: 4_321, n: 120 },
        lock_waits_seen: { 'events by cloud': 17, 'hypervisors by scheduler_v1': 40, 'events by dobe': 2, 'droplets by cloud': 1 },
        events_unfinished_peak: 3_456,
        cloud_request_ms: { p50: 420, p99: 9_100, n: 1_970 },
      },
    ];
    report.stages[1]!.contention = [
      { ...burst, ...quiet, rate_per_s: 40, achieved_rate_per_s: 40, cloud_request_ms: { p50: 12, p99: null, n: 60 } },
      { ...burst, ...quiet, rate_per_s: 400, achieved_rate_per_s: 398, cloud_request_ms: { p50: 15, p99: 80, n: 1_990 } },
    ];
    const page = renderReportHtml(report);
    expect(page).toContain('Locks and backlog under the same load');
    const table = page.match(/<table class="contention">[\s\S]*?<\/table>/)![0];
    // Rate by rate: at each rate the stages sit next to each other.
    expect([...table.matchAll(/<tr data-stage="([^"]+)" data-rate="(\d+)"/g)].map((m) => `${m[1]}@${m[2]}`)).toEqual([
      'legacy@40',
      'event-router@40',
      'legacy@400',
      'event-router@400',
    ]);
    const legacy = table.match(/<tr data-stage="legacy" data-rate="400">[\s\S]*?<\/tr>/)![0];
    for (const text of ['400 / 212', '1,234 (56,789)', '87 / 32', '4,321', 'of 120 samples', '3,456', '420', '9,100', 'n=1,970']) expect(legacy).toContain(text);
    // The three places most waited on, largest first; the fourth is left out.
    expect(legacy).toMatch(/hypervisors by scheduler_v1 <span class="n">40<\/span>, events by cloud <span class="n">17<\/span>, events by dobe/);
    expect(legacy).not.toContain('droplets by cloud');
    const router = table.match(/<tr data-stage="event-router" data-rate="40">[\s\S]*?<\/tr>/)![0];
    expect(router).toContain('n/a (n=60)');
    expect(router).toContain('—');
    expect(renderReportHtml(realisticReport())).not.toContain('class="contention"');
  });

  it('shows the headline, the settings and the processes', () => {
    const page = renderReportHtml(realisticReport());
    for (const text of ['15,000', '>12<', '127.0.0.1:3307', 'strangler_demo', '10.11.6-MariaDB', 'throwaway', '3m20s', '15,012 → 42'])
      expect(page).toContain(text);
    for (const text of ['poll_interval_ms', '2,500', 'god_query', 'true', 'demo-2016']) expect(page).toContain(text);
    for (const text of ['legacy-api', '4101', '96.0', 'dobe-fleet', '1,250', '72.5']) expect(page).toContain(text);
  });

  it('shows the safety numbers, green at zero and red otherwise', () => {
    const clean = renderReportHtml(realisticReport());
    for (const key of ['lost_events', 'duplicate_executions', 'overcommitted_hosts']) {
      expect(clean).toMatch(new RegExp(`class="check check-ok" data-safety="${key}">\\s*<span class="check-value">0</span>`));
    }
    const dirty = renderReportHtml({ ...realisticReport(), duplicate_executions: 3 });
    expect(dirty).toMatch(/class="check check-bad" data-safety="duplicate_executions">\s*<span class="check-value">3<\/span>/);
    expect(dirty).toMatch(/class="check check-ok" data-safety="lost_events"/);
  });

  it('escapes every string that comes from the report', () => {
    const evil = '<script>alert(1)</script>';
    const report = realisticReport();
    report.timeline = report.timeline.map((s) => ({ ...s, by_user: { ...s.by_user, [evil]: 2 } }));
    report.stages[0]!.mysql_connections.by_user[evil] = 2;
    report.stages[0]!.details = { [evil]: evil };
    report.settings[evil] = evil;
    report.settings['quote"attr'] = `"><img onerror=x>`;
    report.database.name = evil;
    report.processes.push({ role: evil, pid: 1, peak_rss_bytes: 1 });

    const page = renderReportHtml(report);
    expect(page).not.toContain('<script');
    expect(page).not.toContain('<img');
    expect(page).not.toContain('onerror=x>');
    expect(page).toContain('&quot;&gt;&lt;img onerror=x&gt;');
    expect(page).toContain(escapeHtml(evil));
    expect(page).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  });

  it('says there are no samples when the timeline is empty', () => {
    const page = renderReportHtml({ ...realisticReport(), timeline: [] });
    expect(page).toMatch(/no samples/i);
    expect(page).not.toContain('<svg');
    // The rest of the report still renders.
    expect(stageRow(page, 'legacy')).toContain('15,012');
  });

  it('copes with a single sample in a single stage', () => {
    const report = realisticReport();
    report.timeline = [sampleAt(30)];
    report.stages = [report.stages[0]!];
    const page = renderReportHtml(report);
    expect(seriesPoints(page, 'total')).toHaveLength(1);
    // One point is no line: it needs a dot to be visible at all.
    expect(page).toMatch(/data-series="total">[\s\S]*?<circle /);
    expect(page).not.toMatch(/NaN|Infinity/);
  });

  it('copes with huge values and samples out of order', () => {
    const report = realisticReport();
    report.timeline = report.timeline
      .map((s, i) => ({ ...s, connections_total: i * 1e11, by_user: { dobe: i * 1e11 } }))
      .reverse();
    const page = renderReportHtml(report);
    const total = seriesPoints(page, 'total');
    expect(total).toHaveLength(report.timeline.length);
    expect(total.flat().every(Number.isFinite)).toBe(true);
    expect(page).toMatch(/>\d+(\.\d+)?T</);
    expect(page).not.toMatch(/NaN|Infinity/);
  });

  it('keeps a line for a user seen in only some samples, at zero elsewhere', () => {
    const report = realisticReport();
    const page = renderReportHtml(report);
    const router = seriesPoints(page, 'event_router');
    const zeroY = Math.max(...router.map(([, y]) => y));
    const seen = report.timeline.filter((s) => 'event_router' in s.by_user).length;
    expect(router.filter(([, y]) => y === zeroY)).toHaveLength(report.timeline.length - seen);
  });

  it('adds a detail panel when the run ends far below its peak, and only then', () => {
    const migrated = renderReportHtml(realisticReport());
    expect(migrated).toContain('data-panel="detail"');
    expect(migrated).toMatch(/detail: 0–\d+</);

    const report = realisticReport();
    report.timeline = report.timeline.filter((s) => s.stage === 'legacy');
    report.stages = [report.stages[0]!];
    expect(renderReportHtml(report)).not.toContain('data-panel="detail"');
  });

  it('merges the smallest users into one line once the palette runs out', () => {
    const report = realisticReport();
    const many = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`svc_${String(i).padStart(2, '0')}`, 100 - i]));
    report.timeline = report.timeline.map((s) => ({ ...s, by_user: { ...s.by_user, ...many } }));
    const page = renderReportHtml(report);
    const legend = page.match(/<ul class="legend">[\s\S]*?<\/ul>/)![0];
    expect(legend.match(/<li /g)).toHaveLength(1 + 8);
    expect(legend).toMatch(/>other \(\d+ users\)</);
    expect(seriesPoints(page, 'total')).toHaveLength(report.timeline.length);
  });
});
