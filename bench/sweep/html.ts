import { html, type SafeHtml } from '../../demo/escape-html.ts';
import { formatCompact, formatInteger, formatMeasure } from '../../demo/report-format.ts';
import type { Knee, SweepReport, SweepRow } from './types.ts';

interface Metric {
  key: string;
  title: string;
  unit: string;
  value: (r: SweepRow) => number | null;
  /** Log scale for figures that span orders of magnitude (connections, queries, latency). */
  log: boolean;
}

const METRICS: Metric[] = [
  { key: 'connections', title: 'MySQL connections (server, peak)', unit: '', value: (r) => r.connections, log: true },
  { key: 'polling', title: 'Polling queries per second (server, idle)', unit: '/s', value: (r) => r.polling_queries_per_s, log: true },
  { key: 'p99', title: 'Event delivery latency p99 (only from n ≥ 100)', unit: ' ms', value: (r) => r.latency_ms.p99, log: true },
  { key: 'p50', title: 'Event delivery latency p50 (only from n ≥ 20)', unit: ' ms', value: (r) => r.latency_ms.p50, log: true },
  { key: 'errors', title: 'Cloud error rate (%)', unit: '%', value: (r) => Math.round(r.cloud_error_rate * 1000) / 10, log: false },
  { key: 'cpu', title: 'mariadbd CPU (cores)', unit: '', value: (r) => r.mariadbd_cpu_cores, log: false },
  { key: 'rss', title: 'mariadbd memory (MB)', unit: ' MB', value: (r) => r.mariadbd_rss_mb, log: false },
];

const PALETTE = ['#d1495b', '#edae49', '#00798c', '#30638e', '#003d5b', '#8d6a9f', '#5b8e7d', '#bc4b51', '#6c757d'];
const W = 560;
const H = 260;
const PAD = { left: 56, right: 16, top: 16, bottom: 36 };

/**
 * `sweep.html`: one self-contained page (inline SVG and CSS, nothing fetched),
 * a chart per figure with a line per series and each series' knee marked,
 * then every row in a table with its sample sizes.
 */
export function renderSweepHtml(report: SweepReport): string {
  const series = [...new Set(report.rows.map((r) => r.series))].sort();
  const colour = (s: string) => PALETTE[series.indexOf(s) % PALETTE.length]!;
  const sizes = [...new Set(report.rows.map((r) => r.size))].sort((a, b) => a - b);
  const page = html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>strangler sweep</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:20px}h2{font-size:15px;margin:0 0 4px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:18px}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}
table{border-collapse:collapse;margin-top:18px;font-size:12px}td,th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right}
th:first-child,td:first-child,td:nth-child(2){text-align:left}.dim{color:#888}.knee{color:#b00}
svg text{font-size:11px;fill:#444}
</style></head><body>
<h1>Breaking points: each architecture at each fleet size</h1>
<p>Settings: ${Object.entries(report.settings).map(([k, v]) => `${k}=${v}`).join(', ')}. Machine: ${report.machine.cpus} cores,
${formatInteger(report.machine.total_memory_mb)} MB, load average ${report.machine.load_average.map((l) => l.toFixed(1)).join(' / ')}.
Updated ${report.updated_at}.</p>
<p class="legend">${series.map((s) => html`<span><i style="background:${colour(s)}"></i>${s}</span>`)}</p>
<h2>Knees</h2>
<ul>${report.knees.length === 0 ? html`<li class="dim">No series left its flat part at the sizes measured.</li>` : report.knees.map((k) => html`<li><b>${k.series}</b> at ${formatInteger(k.size)} hypervisors: ${k.reason}</li>`)}</ul>
${report.failures.length ? html`<h2>Runs that failed</h2><ul>${report.failures.map((f) => html`<li>${f.variant} at ${formatInteger(f.size)}${f.stage ? ` (${f.stage})` : ''}: ${f.code} — ${f.message}</li>`)}</ul>` : ''}
<div class="charts">${METRICS.map((m) => renderChart(m, report.rows, series, sizes, report.knees, colour))}</div>
${renderTable(report.rows)}
</body></html>
`;
  return page.toString();
}

function renderChart(metric: Metric, rows: readonly SweepRow[], series: readonly string[], sizes: readonly number[], knees: readonly Knee[], colour: (s: string) => string): SafeHtml {
  const values = rows.map(metric.value).filter((v): v is number => v !== null && Number.isFinite(v));
  if (values.length === 0 || sizes.length === 0) return html`<figure><h2>${metric.title}</h2><p class="dim">no data</p></figure>`;
  const xs = { min: Math.min(...sizes), max: Math.max(...sizes) };
  const positive = values.filter((v) => v > 0);
  const useLog = metric.log && positive.length > 0;
  const ys = useLog ? { min: Math.min(...positive), max: Math.max(...positive) } : { min: 0, max: Math.max(...values, 1e-9) };
  const x = (size: number) =>
    PAD.left + (xs.max === xs.min ? 0.5 : (Math.log(size) - Math.log(xs.min)) / (Math.log(xs.max) - Math.log(xs.min))) * (W - PAD.left - PAD.right);
  const y = (v: number) => {
    const t = useLog ? (ys.max === ys.min ? 0.5 : (Math.log(Math.max(v, ys.min)) - Math.log(ys.min)) / (Math.log(ys.max) - Math.log(ys.min))) : v / ys.max;
    return H - PAD.bottom - t * (H - PAD.top - PAD.bottom);
  };
  const lines = series.map((s) => {
    const pts = rows
      .filter((r) => r.series === s)
      .sort((a, b) => a.size - b.size)
      .map((r) => [r.size, metric.value(r)] as const)
      .filter((p): p is readonly [number, number] => p[1] !== null && (!useLog || p[1] > 0));
    const knee = knees.find((k) => k.series === s);
    const kneePoint = knee ? pts.find((p) => p[0] === knee.size) : undefined;
    return html`<g data-series="${s}"><polyline fill="none" stroke="${colour(s)}" stroke-width="2" points="${pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ')}"/>
${pts.map((p) => html`<circle cx="${x(p[0]).toFixed(1)}" cy="${y(p[1]).toFixed(1)}" r="2.5" fill="${colour(s)}"><title>${s} at ${p[0]}: ${formatMeasure(p[1])}${metric.unit}</title></circle>`)}
${kneePoint ? html`<circle class="knee" cx="${x(kneePoint[0]).toFixed(1)}" cy="${y(kneePoint[1]).toFixed(1)}" r="7" fill="none" stroke="#b00" stroke-width="2"><title>knee of ${s}: ${knee!.reason}</title></circle>` : ''}</g>`;
  });
  const yTicks = useLog ? logTicks(ys.min, ys.max) : [0, ys.max / 2, ys.max];
  return html`<figure><h2>${metric.title}</h2><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${metric.title}">
<line x1="${PAD.left}" y1="${H - PAD.bottom}" x2="${W - PAD.right}" y2="${H - PAD.bottom}" stroke="#999"/>
<line x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${H - PAD.bottom}" stroke="#999"/>
${sizes.map((s) => html`<text x="${x(s).toFixed(1)}" y="${H - PAD.bottom + 16}" text-anchor="middle">${formatCompact(s)}</text>`)}
<text x="${(W + PAD.left) / 2}" y="${H - 4}" text-anchor="middle">hypervisors</text>
${yTicks.map((v) => html`<text x="${PAD.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${formatCompact(v)}</text>`)}
${lines}
</svg></figure>`;
}

function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let p = Math.floor(Math.log10(min)); p <= Math.ceil(Math.log10(max)); p++) {
    const v = 10 ** p;
    if (v >= min / 1.0001 && v <= max * 1.0001) ticks.push(v);
  }
  return ticks.length >= 2 ? ticks : [min, max];
}

function renderTable(rows: readonly SweepRow[]): SafeHtml {
  const sorted = [...rows].sort((a, b) => a.series.localeCompare(b.series) || a.size - b.size);
  const ms = (v: number | null, n: number) => (v === null ? html`<span class="dim">n/a (n=${n})</span>` : html`${formatMeasure(v)} <span class="dim">n=${formatInteger(n)}</span>`);
  return html`<table><thead><tr><th>series</th><th>thread handling / god query</th><th>hypervisors</th><th>connections</th><th>polling q/s</th><th>p50 ms</th><th>p99 ms</th>
<th>Cloud errors</th><th>mariadbd cores</th><th>mariadbd MB</th><th>Threads_running peak</th><th>row lock waits</th></tr></thead><tbody>
${sorted.map(
  (r) => html`<tr><td>${r.series}</td><td>${r.thread_handling} / ${r.god_query}</td><td>${formatInteger(r.size)}</td><td>${formatInteger(r.connections)}</td>
<td>${formatMeasure(r.polling_queries_per_s)}</td><td>${ms(r.latency_ms.p50, r.latency_ms.n)}</td><td>${ms(r.latency_ms.p99, r.latency_ms.n)}</td>
<td>${(r.cloud_error_rate * 100).toFixed(1)}%</td><td>${r.mariadbd_cpu_cores ?? '—'}</td><td>${r.mariadbd_rss_mb ?? '—'}</td><td>${r.threads_running_peak ?? '—'}</td><td>${r.innodb_row_lock_waits ?? '—'}</td></tr>`,
)}
</tbody></table>`;
}
