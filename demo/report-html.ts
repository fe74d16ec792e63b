/**
 * `report.html`: the demo's report as one self-contained page.
 *
 * Inline CSS and inline SVG only, with no script and no external URL, so the
 * file can be mailed, attached to a ticket or opened on an air-gapped host
 * and look the same. Every value from the report goes through the escaping
 * `html` template, because user-chosen names (MySQL users, settings, stage
 * details) end up on the page.
 */
import { html, trustedHtml, type SafeHtml } from './escape-html.ts';
import { CHART_CSS, colourOfUser, planUserSeries, renderConnectionsChart, type UserSeries } from './report-chart.ts';
import {
  MISSING,
  formatClock,
  formatDateTime,
  formatInteger,
  formatMeasure,
  formatMegabytes,
  formatSeconds,
  parseTime,
} from './report-format.ts';
import type { DemoReport, StageReport } from './report-types.ts';
import { formatPercentile } from '../lib/metrics/sample-percentiles.ts';

/**
 * Renders the whole report as one HTML document.
 *
 * @example
 * import { readFile, writeFile } from 'node:fs/promises';
 * const report: DemoReport = JSON.parse(await readFile(`${dir}/report.json`, 'utf8'));
 * await writeFile(`${dir}/report.html`, renderReportHtml(report));
 */
export function renderReportHtml(report: DemoReport): string {
  const series = planUserSeries(report);
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Control-plane migration report: ${formatInteger(report.hypervisors)} hypervisors, ${formatDateTime(parseTime(report.started_at))}</title>
<style>${trustedHtml(PAGE_CSS)}${trustedHtml(CHART_CSS)}</style>
</head>
<body>
<main>
${renderHeadline(report)}
<section class="panel">
<h2>MySQL connections over time</h2>
${renderConnectionsChart(report, series)}
</section>
<section class="panel">
<h2>Stages</h2>
${renderStageTable(report, series)}
${renderContention(report)}
</section>
<div class="columns">
<section class="panel">
<h2>Run settings</h2>
${renderSettings(report.settings)}
</section>
<section class="panel">
<h2>Processes</h2>
${renderProcesses(report.processes)}
</section>
</div>
<footer>Generated from <code>report.json</code>. Self-contained: no script, no external resource.</footer>
</main>
</body>
</html>
`.markup;
}

function renderHeadline(report: DemoReport): SafeHtml {
  const start = parseTime(report.started_at);
  const end = parseTime(report.ended_at);
  const runSeconds = start !== undefined && end !== undefined ? (end - start) / 1000 : Number.NaN;
  const db = report.database;
  return html`<header class="headline">
<div class="title">
<h1>Control-plane migration</h1>
<p class="subtitle">${formatDateTime(start)} → ${formatDateTime(end)}</p>
</div>
<div class="stats">
${stat('Hypervisors', formatInteger(report.hypervisors))}
${stat('Regions', formatInteger(report.regions))}
${stat('Run time', formatSeconds(runSeconds))}
${renderConnectionsDrop(report.stages)}
<div class="stat stat-db">
<div class="stat-label">Database</div>
<div class="stat-value db-name">${db.host}:${db.port} <span class="dim">/</span> ${db.name}</div>
<div class="stat-note">${db.server_version} · ${db.source}</div>
</div>
</div>
<div class="safety" aria-label="Safety checks">
${safety('Lost events', 'lost_events', report.lost_events)}
${safety('Duplicate executions', 'duplicate_executions', report.duplicate_executions)}
${safety('Over-committed hosts', 'overcommitted_hosts', report.overcommitted_hosts)}
</div>
${report.failed ? html`<p class="failed" role="alert">Stage <strong>${report.failed.stage}</strong> failed (${report.failed.code}): ${report.failed.message}. The stages before it are complete and measured; the run stopped there.</p>` : ''}
</header>`;
}

function stat(label: string, value: string): SafeHtml {
  return html`<div class="stat"><div class="stat-label">${label}</div><div class="stat-value">${value}</div></div>`;
}

/** The migration's point in one figure: peak connections in the first stage against the last. */
function renderConnectionsDrop(stages: readonly StageReport[]): SafeHtml | null {
  const first = stages[0];
  const last = stages[stages.length - 1];
  if (first === undefined || last === undefined) return null;
  const value =
    first === last
      ? formatInteger(first.mysql_connections.total)
      : `${formatInteger(first.mysql_connections.total)} → ${formatInteger(last.mysql_connections.total)}`;
  const note = first === last ? `peak, ${first.name}` : `peak, ${first.name} → ${last.name}`;
  return html`<div class="stat"><div class="stat-label">MySQL connections</div><div class="stat-value">${value}</div><div class="stat-note">${note}</div></div>`;
}

/**
 * A safety number is either zero or a failed run; anything that is not a
 * clean zero (including a missing value) is shown as a failure, and the
 * word beside it says so for readers who cannot tell green from red.
 */
function safety(label: string, key: string, value: number): SafeHtml {
  const ok = value === 0;
  return html`<div class="check ${ok ? 'check-ok' : 'check-bad'}" data-safety="${key}">
<span class="check-value">${formatInteger(value)}</span>
<span class="check-label">${label}</span>
<span class="check-verdict">${ok ? 'OK' : 'FAIL'}</span>
</div>`;
}

function renderStageTable(report: DemoReport, series: readonly UserSeries[]): SafeHtml {
  if (report.stages.length === 0) return html`<p class="empty">No stage ran.</p>`;
  const origin = parseTime(report.started_at) ?? parseTime(report.stages[0]?.started_at);
  return html`<div class="table-wrap"><table class="stages">
<thead>
<tr>
<th rowspan="2">Stage</th><th rowspan="2">Started</th><th rowspan="2" class="num">Duration</th>
<th colspan="2" class="group">MySQL connections (peak)</th>
<th rowspan="2" class="num">Polling<br>queries/s</th>
<th colspan="2" class="group">Event latency (ms)</th>
<th colspan="2" class="group">Events</th>
<th rowspan="2">Details</th>
</tr>
<tr>
<th class="num">Total</th><th>By user</th>
<th class="num">p50</th><th class="num">p99</th>
<th class="num">Created</th><th class="num">Done</th>
</tr>
</thead>
<tbody>
${report.stages.map((stage) => renderStageRow(stage, origin, series))}
</tbody>
</table></div>`;
}

function renderStageRow(stage: StageReport, origin: number | undefined, series: readonly UserSeries[]): SafeHtml {
  const start = parseTime(stage.started_at);
  const end = parseTime(stage.ended_at);
  const offset = start !== undefined && origin !== undefined ? `+${formatSeconds((start - origin) / 1000)}` : MISSING;
  const duration = start !== undefined && end !== undefined ? formatSeconds((end - start) / 1000) : MISSING;
  // Unequal counts are worth a second look (events still in flight at the stage's end).
  const pending = stage.events_created !== stage.events_done;
  return html`<tr data-stage="${stage.name}">
<th scope="row" class="stage-name">${stage.name}</th>
<td class="started" title="${formatDateTime(start)}">${offset}<span class="dim clock">${formatClock(start)}</span></td>
<td class="num">${duration}</td>
<td class="num strong">${formatInteger(stage.mysql_connections.total)}</td>
<td>${renderByUser(stage.mysql_connections.by_user, series)}</td>
<td class="num">${formatMeasure(stage.polling_queries_per_s)}</td>
<td class="num">${renderPercentile(stage.event_latency_ms.p50, stage.event_latency_ms.n)}</td>
<td class="num">${renderPercentile(stage.event_latency_ms.p99, stage.event_latency_ms.n)}</td>
<td class="num">${formatInteger(stage.events_created)}</td>
<td class="num${pending ? ' warn' : ''}">${formatInteger(stage.events_done)}</td>
<td>${renderDetails(stage.details)}</td>
</tr>`;
}

/**
 * The same bursts at every stage, side by side, rate by rate: lock waits and the backlog inside the
 * server while services still write `events` directly, and what is left once Harpoon alone writes it.
 */
function renderContention(report: DemoReport): SafeHtml {
  const stages = report.stages.filter((s) => s.contention?.length);
  if (stages.length === 0) return html``;
  const rates = [...new Set(stages.flatMap((s) => s.contention!.map((c) => c.rate_per_s)))];
  const seconds = stages[0]!.contention![0]!.seconds;
  return html`<h2>Locks and backlog under the same load</h2>
<p class="dim">After each stage, bursts of ${rates.map((r) => formatInteger(r)).join(', ')} customer requests/s for ${formatInteger(seconds)} s each (creates, actions, destroys, reads), each drained before the next; figures from the server: SHOW GLOBAL STATUS deltas, and every 0.5 s Threads_running, the oldest running statement (PROCESSLIST), the transactions waiting for a lock and on which table (INNODB_TRX, INNODB_LOCKS), and the events pending or running.</p>
<div class="table-wrap"><table class="contention"><thead><tr><th>Rate asked / reached</th><th>Stage</th><th class="num">Requests (failed)</th><th class="num">Row lock waits (ms)</th>
<th class="num">Table locks waited</th><th class="num">Threads_running peak / mean</th><th class="num">Oldest statement ms (max)</th><th>Lock waits seen (table by user)</th><th class="num">Events queued peak</th><th class="num">Cloud p50</th><th class="num">Cloud p99</th></tr></thead><tbody>
${rates.flatMap((rate) =>
  stages.flatMap((stage) => {
    const c = stage.contention!.find((x) => x.rate_per_s === rate);
    if (!c) return [];
    return [html`<tr data-stage="${stage.name}" data-rate="${rate}"><td class="num">${formatInteger(rate)} / ${formatMeasure(c.achieved_rate_per_s)}</td><th scope="row">${stage.name}</th><td class="num">${formatInteger(c.requests_sent)} (${formatInteger(c.requests_failed)})</td>
<td class="num">${formatInteger(c.innodb_row_lock_waits)} (${formatInteger(c.innodb_row_lock_time_ms)})</td><td class="num">${formatInteger(c.table_locks_waited)}</td>
<td class="num">${formatInteger(c.threads_running_peak)} / ${formatMeasure(c.threads_running_mean)}</td>
<td class="num">${formatInteger(c.oldest_statement_ms.max)}<span class="dim n"> of ${formatInteger(c.oldest_statement_ms.n)} samples</span></td><td>${renderWaits(c.lock_waits_seen)}</td><td class="num">${formatInteger(c.events_unfinished_peak)}</td>
<td class="num">${renderPercentile(c.cloud_request_ms.p50, c.cloud_request_ms.n)}</td><td class="num">${renderPercentile(c.cloud_request_ms.p99, c.cloud_request_ms.n)}</td></tr>`];
  }),
)}
</tbody></table></div>`;
}

/** The three places most waited on, largest first; none is a dash, not an empty cell. */
function renderWaits(seen: Record<string, number>): SafeHtml {
  const top = Object.entries(seen).sort(([a, x], [b, y]) => y - x || a.localeCompare(b)).slice(0, 3);
  if (top.length === 0) return html`<span class="dim">${MISSING}</span>`;
  return html`${top.map(([where, n], i) => html`${i ? ', ' : ''}${where} <span class="n">${formatInteger(n)}</span>`)}`;
}

/** A percentile always with its sample size; below the minimum sample, "n/a (n=…)", never a number. */
function renderPercentile(value: number | null | undefined, n: number | undefined): SafeHtml {
  const size = n ?? 0;
  if (value === null || value === undefined) return html`<span class="dim">${formatPercentile(null, size)}</span>`;
  return html`${formatMeasure(value)}<span class="dim n"> n=${formatInteger(size)}</span>`;
}

/** Largest first, each with its chart colour, so a row reads like the chart above it. */
function renderByUser(byUser: Record<string, number> | undefined, series: readonly UserSeries[]): SafeHtml {
  const entries = Object.entries(byUser ?? {}).sort(([a, x], [b, y]) => y - x || a.localeCompare(b));
  if (entries.length === 0) return html`<span class="dim">${MISSING}</span>`;
  return html`<ul class="by-user">${entries.map(
    ([user, n]) =>
      html`<li><span class="dot" style="--c:${colourOfUser(series, user)}"></span>${user} <span class="n">${formatInteger(n)}</span></li>`,
  )}</ul>`;
}

function renderDetails(details: Record<string, number | string> | undefined): SafeHtml {
  const entries = Object.entries(details ?? {});
  if (entries.length === 0) return html`<span class="dim">${MISSING}</span>`;
  return html`<dl class="details">${entries.map(([key, value]) => html`<div><dt>${key}</dt><dd>${formatValue(value)}</dd></div>`)}</dl>`;
}

function formatValue(value: number | string | boolean): string {
  if (typeof value === 'number') return Number.isInteger(value) ? formatInteger(value) : formatMeasure(value);
  return String(value);
}

function renderSettings(settings: DemoReport['settings']): SafeHtml {
  const entries = Object.entries(settings ?? {});
  if (entries.length === 0) return html`<p class="empty">No settings recorded.</p>`;
  return html`<table class="kv">
<tbody>
${entries.map(([key, value]) => html`<tr><th scope="row">${key}</th><td>${formatValue(value)}</td></tr>`)}
</tbody>
</table>`;
}

function renderProcesses(processes: DemoReport['processes']): SafeHtml {
  if (processes.length === 0) return html`<p class="empty">No processes recorded.</p>`;
  const totalBytes = processes.reduce((sum, p) => sum + (Number.isFinite(p.peak_rss_bytes) ? p.peak_rss_bytes : 0), 0);
  return html`<table class="processes">
<thead><tr><th>Role</th><th class="num">PID</th><th class="num">Peak RSS (MB)</th></tr></thead>
<tbody>
${processes.map((p) => html`<tr><td>${p.role}</td><td class="num dim">${p.pid}</td><td class="num">${formatMegabytes(p.peak_rss_bytes)}</td></tr>`)}
</tbody>
<tfoot><tr><th scope="row">Sum of peaks</th><td></td><td class="num">${formatMegabytes(totalBytes)}</td></tr></tfoot>
</table>`;
}

const PAGE_CSS = `
:root {
  --sans: -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", "Liberation Sans", sans-serif;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
  --ink: #1f2933; --muted: #52606d; --faint: #7b8794; --line: #e4e7eb; --panel: #ffffff; --page: #f5f7fa;
  --ok: #1a7f37; --ok-bg: #e9f6ec; --bad: #c62828; --bad-bg: #fdecea; --warn: #9a6700;
}
* { box-sizing: border-box; }
html { background: var(--page); }
body { margin: 0; color: var(--ink); font: 13px/1.45 var(--sans); }
main { max-width: 1240px; margin: 0 auto; padding: 20px 20px 32px; }
h1 { margin: 0; font-size: 20px; font-weight: 650; letter-spacing: -.01em; }
h2 { margin: 0 0 10px; font-size: 13px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: .06em; }
code { font: 12px var(--mono); }
.dim { color: var(--faint); }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 14px 16px 16px; margin-top: 14px; }
.columns { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
.columns > .panel { margin-top: 14px; }
.headline { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 16px; display: grid; grid-template-columns: 1fr auto; gap: 14px 24px; align-items: start; }
.headline .title { grid-column: 1 / -1; display: flex; align-items: baseline; gap: 14px; flex-wrap: wrap; }
.subtitle { margin: 0; color: var(--faint); font-variant-numeric: tabular-nums; }
.stats { display: flex; flex-wrap: wrap; gap: 10px 28px; }
.stat-label { color: var(--faint); font-size: 11px; text-transform: uppercase; letter-spacing: .06em; }
.stat-value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; }
.stat-note { color: var(--faint); font-size: 12px; }
.stat-db .stat-value { font: 600 15px/1.9 var(--mono); }
.safety { display: flex; gap: 8px; }
.failed { margin: 8px 0 0; padding: 8px 12px; border-left: 4px solid #c0392b; background: #fdecea; }
.check { display: grid; grid-template-columns: auto auto; grid-template-rows: auto auto; column-gap: 10px; align-items: center; padding: 8px 12px; border-radius: 5px; border: 1px solid; min-width: 150px; }
.check-value { grid-row: 1 / 3; font-size: 28px; font-weight: 700; font-variant-numeric: tabular-nums; }
.check-label { font-size: 12px; color: var(--ink); }
.check-verdict { font-size: 11px; font-weight: 700; letter-spacing: .08em; }
.check-ok { background: var(--ok-bg); border-color: #b7e1c1; color: var(--ok); }
.check-bad { background: var(--bad-bg); border-color: #f5b7b1; color: var(--bad); }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 10px; text-align: left; vertical-align: top; border-bottom: 1px solid var(--line); }
thead th { font-size: 11px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; background: #f8f9fb; border-bottom: 1px solid #d5dae1; vertical-align: bottom; }
thead th.group { text-align: center; border-bottom: 1px solid var(--line); }
tbody tr:hover { background: #fafbfc; }
.num { text-align: right; white-space: nowrap; }
.strong { font-weight: 600; }
.warn { color: var(--warn); }
.stage-name { font: 600 13px var(--mono); white-space: nowrap; }
.started { white-space: nowrap; }
.started .clock { display: block; font-size: 11px; }
.by-user, .details { list-style: none; margin: 0; padding: 0; display: flex; flex-wrap: wrap; gap: 2px 12px; }
.by-user li { white-space: nowrap; }
.by-user .n { font-weight: 600; }
.dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%; background: var(--c); margin-right: 5px; vertical-align: 0; }
.details div { white-space: nowrap; }
.details dt { display: inline; color: var(--faint); }
.details dt::after { content: ":"; }
.details dd { display: inline; margin: 0 0 0 4px; }
.kv th { font: 12px var(--mono); color: var(--muted); font-weight: 400; width: 50%; word-break: break-all; }
.kv td { text-align: right; word-break: break-word; }
.processes tfoot th, .processes tfoot td { font-weight: 600; border-bottom: 0; border-top: 1px solid #d5dae1; }
.empty { margin: 0; color: var(--faint); }
footer { margin-top: 16px; color: var(--faint); font-size: 11px; text-align: center; }
@media (max-width: 900px) { .columns { grid-template-columns: 1fr; } .headline { grid-template-columns: 1fr; } }
@media print { html { background: #fff; } .panel, .headline { border-color: #ccc; break-inside: avoid; } }
`;
