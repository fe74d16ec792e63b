/**
 * The connections-over-time chart of the demo report, as inline SVG.
 *
 * No script and no external resource: the report is a file people attach to
 * tickets and open offline, so the chart is plain SVG sized by a viewBox and
 * its legend is HTML (which wraps, however many MySQL users there are).
 */
import { html, type SafeHtml } from './escape-html.ts';
import { formatCompact, formatInteger, formatSeconds, parseTime } from './report-format.ts';
import type { DemoReport, StageReport } from './report-types.ts';

type ChartInput = Pick<DemoReport, 'started_at' | 'ended_at' | 'stages' | 'timeline'>;

/** Tableau 10, darkened a little where it would wash out on white. */
const USER_PALETTE = ['#4e79a7', '#e8762b', '#59a14f', '#e15759', '#76b7b2', '#b07aa1', '#c9a227', '#9c755f'];
const TOTAL_COLOUR = '#1f2933';
const OTHER_COLOUR = '#8a94a3';

/** A line on the chart: one MySQL user, or the long tail merged into one. */
export interface UserSeries {
  label: string;
  colour: string;
  /** The MySQL users summed into this line (one, except for the tail). */
  users: readonly string[];
}

/** Counts as drawn: a missing, negative or non-numeric count is no connection. */
function count(value: number | undefined): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0;
}

/**
 * Decides which users get a line and which colour each gets. The table of
 * stages uses the same colours, so it is planned once for the whole report.
 * Users are ranked by peak so the colours stay stable for the big ones, and
 * past the palette the smallest users share one grey "other" line rather
 * than recycling colours that would then mean two things.
 */
export function planUserSeries(report: Pick<DemoReport, 'stages' | 'timeline'>): UserSeries[] {
  const peaks = new Map<string, number>();
  const note = (byUser: Record<string, number> | undefined): void => {
    for (const [user, n] of Object.entries(byUser ?? {})) peaks.set(user, Math.max(peaks.get(user) ?? 0, count(n)));
  };
  for (const sample of report.timeline) note(sample.by_user);
  for (const stage of report.stages) note(stage.mysql_connections?.by_user);

  const ranked = [...peaks].sort(([a, pa], [b, pb]) => pb - pa || a.localeCompare(b));
  const own = ranked.length <= USER_PALETTE.length ? ranked : ranked.slice(0, USER_PALETTE.length - 1);
  const series: UserSeries[] = own.map(([user], i) => ({ label: user, colour: USER_PALETTE[i] ?? OTHER_COLOUR, users: [user] }));
  const tail = ranked.slice(own.length);
  if (tail.length > 0) {
    series.push({ label: `other (${tail.length} users)`, colour: OTHER_COLOUR, users: tail.map(([user]) => user) });
  }
  return series;
}

/** The colour a user's line has on the chart, for swatches elsewhere in the report. */
export function colourOfUser(series: readonly UserSeries[], user: string): string {
  return series.find((s) => s.users.includes(user))?.colour ?? OTHER_COLOUR;
}

const VIEW_WIDTH = 1160;
const MARGIN = { left: 64, right: 24 };
const PLOT_LEFT = MARGIN.left;
const PLOT_WIDTH = VIEW_WIDTH - MARGIN.left - MARGIN.right;
const PLOT_RIGHT = PLOT_LEFT + PLOT_WIDTH;

/** Below this many samples each one gets a dot: a line alone would hide how sparse they are. */
const MARKER_LIMIT = 40;
/** Roughly the width of one character of the 12-unit label font, for fitting stage names. */
const CHAR_WIDTH = 6.8;
/** The detail panel appears when the full scale is at least this many times the final stage's range. */
const DETAIL_RATIO = 8;

interface Point {
  ms: number;
  stage: string;
  total: number;
  byUser: Record<string, number>;
}

interface Band {
  stage: StageReport;
  index: number;
  from: number;
  to: number;
}

interface Line {
  series: UserSeries;
  values: number[];
}

interface TimeScale {
  x: (ms: number) => number;
  origin: number;
  end: number;
}

/** One chart area: the full range, or the detail of the range the run ends in. */
interface Panel {
  kind: 'main' | 'detail';
  viewHeight: number;
  top: number;
  height: number;
  yMax: number;
  yStep: number;
  /** Only the lowest panel names the time axis; its ticks are the same in both. */
  timeTitle: boolean;
}

interface ChartData {
  points: Point[];
  bands: Band[];
  lines: Line[];
  time: TimeScale;
}

/**
 * Renders the chart and its legend, or a "no samples" note for an empty
 * timeline.
 *
 * @example
 * const series = planUserSeries(report);
 * renderConnectionsChart(report, series).markup; // '<figure class="chart">…<svg …>…</svg>…'
 */
export function renderConnectionsChart(report: ChartInput, series: readonly UserSeries[]): SafeHtml {
  const points = samplePoints(report);
  if (points.length === 0) {
    return html`<figure class="chart chart-empty"><p class="no-samples">No samples: the timeline is empty, so there is no connections chart for this run.</p></figure>`;
  }
  const bands = stageBands(report, points);
  const lines = series.map((s) => ({ series: s, values: points.map((p) => sumUsers(p, s.users)) }));
  const data: ChartData = { points, bands, lines, time: timeScale(report, points, bands) };
  const highest = Math.max(peakOf(points.map((p) => p.total)), ...lines.map((l) => peakOf(l.values)));
  const detail = detailPanel(points, highest);
  const main = mainPanel(highest, detail === undefined);
  const skipped = report.timeline.length - points.length;

  return html`<figure class="chart">
${renderPanel(main, data)}
${detail && renderPanel(detail, data)}
${renderLegend(lines, points)}
<figcaption>${formatInteger(points.length)} ${points.length === 1 ? 'sample' : 'samples'}${skipped > 0 ? ` (${formatInteger(skipped)} without a readable time left out)` : ''}; connections as the server counts them (information_schema.PROCESSLIST); shaded bands are the migration stages.${detail ? ' The lower panel zooms in on the range the run ends in; lines above it leave the panel.' : ''}</figcaption>
</figure>`;
}

/** Samples placed in time and sorted: a sample without a readable time cannot be placed at all. */
function samplePoints(report: ChartInput): Point[] {
  const points: Point[] = [];
  for (const sample of report.timeline) {
    const ms = parseTime(sample.t);
    if (ms === undefined) continue;
    points.push({ ms, stage: sample.stage, total: count(sample.connections_total), byUser: sample.by_user ?? {} });
  }
  return points.sort((a, b) => a.ms - b.ms);
}

function sumUsers(point: Point, users: readonly string[]): number {
  return users.reduce((sum, user) => sum + count(point.byUser[user]), 0);
}

/**
 * Each stage's span from its own timestamps, falling back to the samples
 * tagged with it: a stage that crashed before writing `ended_at` should
 * still show where it ran.
 */
function stageBands(report: ChartInput, points: readonly Point[]): Band[] {
  const bands: Band[] = [];
  report.stages.forEach((stage, index) => {
    let firstTagged: number | undefined;
    let lastTagged: number | undefined;
    for (const p of points) {
      if (p.stage !== stage.name) continue;
      firstTagged ??= p.ms;
      lastTagged = p.ms;
    }
    const from = parseTime(stage.started_at) ?? firstTagged;
    const to = parseTime(stage.ended_at) ?? lastTagged;
    if (from === undefined || to === undefined || to < from) return;
    bands.push({ stage, index, from, to });
  });
  return bands;
}

function timeScale(report: ChartInput, points: readonly Point[], bands: readonly Band[]): TimeScale {
  const runStart = parseTime(report.started_at);
  const runEnd = parseTime(report.ended_at);
  // Points are sorted, so only their ends matter; bands are few.
  const starts = [points[0]!.ms, ...bands.map((b) => b.from), ...(runStart === undefined ? [] : [runStart])];
  const ends = [points[points.length - 1]!.ms, ...bands.map((b) => b.to), ...(runEnd === undefined ? [] : [runEnd])];
  const origin = Math.min(...starts);
  // A single sample still needs a time axis that has some width.
  const end = Math.max(origin + 1000, ...ends);
  return { x: (ms) => PLOT_LEFT + ((ms - origin) / (end - origin)) * PLOT_WIDTH, origin, end };
}

function mainPanel(highest: number, timeTitle: boolean): Panel {
  // An all-zero chart still gets a few integer ticks instead of fractions of a connection.
  const { yMax, yStep } = niceRange(Math.max(highest, 4), 4);
  return { kind: 'main', viewHeight: timeTitle ? 380 : 366, top: 34, height: 304, yMax, yStep, timeTitle };
}

/**
 * The point of the migration is the fall from thousands of connections to
 * tens, and on a scale that fits 15,000 the tens are a flat line on the
 * axis. So when the full scale dwarfs where the run ends, a second, shorter
 * panel shows that range, with the same time axis. Where the run ends is
 * the median of the last stage's samples (or its last sample, if higher):
 * the stage's own peak would include the spike of the cutover into it.
 */
function detailPanel(points: readonly Point[], highest: number): Panel | undefined {
  const last = points[points.length - 1]!;
  const finalStage = points.filter((p) => p.stage === last.stage).map((p) => p.total);
  const level = Math.max(median(finalStage), last.total);
  const { yMax, yStep } = niceRange(Math.max(level * 1.5, 10), 3);
  if (yMax * DETAIL_RATIO > highest) return undefined;
  return { kind: 'detail', viewHeight: 190, top: 22, height: 130, yMax, yStep, timeTitle: true };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

/** A y range from zero that ends on a round tick, in about `ticks` steps. */
function niceRange(highest: number, ticks: number): { yMax: number; yStep: number } {
  const yStep = niceStep(highest / ticks, 1);
  return { yMax: Math.max(yStep, Math.ceil(highest / yStep) * yStep), yStep };
}

/** 1, 2, 2.5 or 5 times a power of ten: steps whose multiples read as round numbers. */
function niceStep(rough: number, minimum: number): number {
  if (!(rough > 0) || !Number.isFinite(rough)) return minimum;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const fraction = rough / magnitude;
  const nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 2.5 ? 2.5 : fraction <= 5 ? 5 : 10;
  return Math.max(minimum, nice * magnitude);
}

/** Time steps people count in: seconds, then minutes, then hours. */
const TIME_STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

function timeStep(spanSeconds: number): number {
  const wanted = spanSeconds / 8;
  return TIME_STEPS_S.find((s) => s >= wanted) ?? niceStep(wanted / 86400, 1) * 86400;
}

function renderPanel(panel: Panel, data: ChartData): SafeHtml {
  const y = (value: number): number => panel.top + panel.height - (value / panel.yMax) * panel.height;
  const bottom = panel.top + panel.height;
  const { points, time } = data;
  const title =
    panel.kind === 'main'
      ? 'MySQL connections over time, total and per user, with the migration stages shaded'
      : `Detail of the same chart from 0 to ${formatInteger(panel.yMax)} connections`;
  // A nested svg clips what it holds to its own box: lines that leave the detail panel stop at its edge.
  return html`<svg class="chart-svg chart-${panel.kind}" data-panel="${panel.kind}" viewBox="0 0 ${VIEW_WIDTH} ${panel.viewHeight}" role="img">
<title>${title}</title>
${data.bands.map((b) => renderBand(b, panel, time))}
${renderYAxis(panel, y)}
${renderXAxis(bottom, time, panel.timeTitle ? panel.viewHeight : undefined)}
${panel.kind === 'detail' && html`<text class="panel-title" x="${PLOT_LEFT}" y="${panel.top - 8}">detail: 0–${formatCompact(panel.yMax)}</text>`}
<svg x="${PLOT_LEFT}" y="${panel.top}" width="${PLOT_WIDTH}" height="${panel.height}" viewBox="${PLOT_LEFT} ${panel.top} ${PLOT_WIDTH} ${panel.height}" overflow="hidden">
${renderArea(points, time, y, bottom)}
${data.lines.map((l) => renderLine(l.series.label, l.series.colour, l.values, points, time, y, 'user'))}
${renderLine('total', TOTAL_COLOUR, points.map((p) => p.total), points, time, y, 'total')}
</svg>
<rect class="plot-frame" x="${PLOT_LEFT}" y="${panel.top}" width="${PLOT_WIDTH}" height="${panel.height}"/>
</svg>`;
}

function renderYAxis(panel: Panel, y: (value: number) => number): SafeHtml {
  const ticks: number[] = [];
  for (let i = 0; i * panel.yStep <= panel.yMax + panel.yStep / 2; i++) ticks.push(i * panel.yStep);
  return html`<g class="axis axis-y">
${ticks.map((v) => {
  const at = round(y(v));
  return html`<line class="grid" x1="${PLOT_LEFT}" x2="${PLOT_RIGHT}" y1="${at}" y2="${at}"/><text x="${PLOT_LEFT - 8}" y="${at}" dy="0.32em" text-anchor="end">${formatCompact(v)}</text>`;
})}
${panel.kind === 'main' && html`<text class="axis-title" transform="translate(16 ${round(panel.top + panel.height / 2)}) rotate(-90)" text-anchor="middle">MySQL connections</text>`}
</g>`;
}

function renderXAxis(bottom: number, time: TimeScale, titleAt: number | undefined): SafeHtml {
  const spanSeconds = (time.end - time.origin) / 1000;
  const step = timeStep(spanSeconds);
  const ticks: number[] = [];
  for (let s = 0; s <= spanSeconds + 1e-9; s += step) ticks.push(s);
  return html`<g class="axis axis-x">
<line class="baseline" x1="${PLOT_LEFT}" x2="${PLOT_RIGHT}" y1="${bottom}" y2="${bottom}"/>
${ticks.map((s) => {
  const x = round(time.x(time.origin + s * 1000));
  return html`<line class="tick" x1="${x}" x2="${x}" y1="${bottom}" y2="${bottom + 5}"/><text x="${x}" y="${bottom + 18}" text-anchor="middle">${formatSeconds(s)}</text>`;
})}
${titleAt !== undefined && html`<text class="axis-title" x="${PLOT_RIGHT}" y="${titleAt - 4}" text-anchor="end">time since start</text>`}
</g>`;
}

function renderBand(band: Band, panel: Panel, time: TimeScale): SafeHtml {
  const x1 = time.x(Math.max(band.from, time.origin));
  const x2 = time.x(Math.min(band.to, time.end));
  const width = Math.max(1, x2 - x1);
  const bottom = panel.top + panel.height;
  const peak = count(band.stage.mysql_connections?.total);
  const seconds = (ms: number): string => formatSeconds((ms - time.origin) / 1000);
  const parity = band.index % 2 === 0 ? 'even' : 'odd';
  // Only the main panel names the stages; the detail sits right under it and shares its bands.
  const head = panel.kind === 'main' ? renderBandHead(band, x1, width, panel.top) : null;
  return html`<g class="stage-band stage-band-${parity}" data-stage="${band.stage.name}">
<title>${band.stage.name}: ${seconds(band.from)} to ${seconds(band.to)}, peak ${formatInteger(peak)} connections</title>
<rect class="band-fill" x="${round(x1)}" y="${panel.top}" width="${round(width)}" height="${panel.height}"/>
${head}
<line class="band-edge" x1="${round(x1)}" x2="${round(x1)}" y1="${panel.kind === 'main' ? panel.top - 22 : panel.top}" y2="${bottom}"/>
</g>`;
}

function renderBandHead(band: Band, x1: number, width: number, top: number): SafeHtml {
  const name = fitText(band.stage.name, width - 10);
  const peakText = `peak ${formatInteger(count(band.stage.mysql_connections?.total))}`;
  const showPeak = name === band.stage.name && (name.length + peakText.length + 2) * CHAR_WIDTH <= width - 10;
  return html`<rect class="band-head" x="${round(x1)}" y="${top - 22}" width="${round(width)}" height="20"/>
${name && html`<text class="band-label" x="${round(x1 + 6)}" y="${top - 8}">${name}${showPeak && html`<tspan class="band-peak" dx="6">${peakText}</tspan>`}</text>`}`;
}

/** A label cut with an ellipsis to fit a band, or nothing if not even that fits. */
function fitText(text: string, width: number): string {
  const room = Math.floor(width / CHAR_WIDTH);
  if (text.length <= room) return text;
  return room >= 4 ? `${text.slice(0, room - 1)}…` : '';
}

/** A faint fill under the total, so the fall from thousands to tens reads at a glance. */
function renderArea(points: readonly Point[], time: TimeScale, y: (value: number) => number, bottom: number): SafeHtml | null {
  if (points.length < 2) return null;
  const top = points.map((p) => `${round(time.x(p.ms))},${round(y(p.total))}`);
  const base = `${round(time.x(points[points.length - 1]!.ms))},${bottom} ${round(time.x(points[0]!.ms))},${bottom}`;
  return html`<polygon class="total-area" points="${top.join(' ')} ${base}"/>`;
}

function renderLine(
  label: string,
  colour: string,
  values: readonly number[],
  points: readonly Point[],
  time: TimeScale,
  y: (value: number) => number,
  kind: 'total' | 'user',
): SafeHtml {
  const coords = points.map((p, i) => [round(time.x(p.ms)), round(y(values[i] ?? 0))] as const);
  const markers = points.length <= MARKER_LIMIT;
  return html`<g class="series series-${kind}" data-series="${kind === 'total' ? 'total' : label}">
<title>${label}: peak ${formatInteger(peakOf(values))} connections</title>
<polyline class="line line-${kind}" points="${coords.map(([x, cy]) => `${x},${cy}`).join(' ')}" stroke="${colour}"/>
${markers && coords.map(([x, cy]) => html`<circle cx="${x}" cy="${cy}" r="${kind === 'total' ? 3 : 2.5}" fill="${colour}"/>`)}
</g>`;
}

function renderLegend(lines: readonly Line[], points: readonly Point[]): SafeHtml {
  const totalPeak = peakOf(points.map((p) => p.total));
  const item = (label: string, colour: string, peak: number, kind: string, title: string): SafeHtml =>
    html`<li class="legend-${kind}" title="${title}"><span class="swatch swatch-${kind}" style="--c:${colour}"></span><span class="legend-name">${label}</span><span class="legend-peak">peak ${formatInteger(peak)}</span></li>`;
  return html`<ul class="legend">
${item('total', TOTAL_COLOUR, totalPeak, 'total', 'all connections on the server')}
${lines.map(({ series, values }) => item(series.label, series.colour, peakOf(values), 'user', series.users.join(', ')))}
</ul>`;
}

/** Largest value, without spreading a long timeline into one call's arguments. */
function peakOf(values: Iterable<number>): number {
  let peak = 0;
  for (const v of values) if (v > peak) peak = v;
  return peak;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/** Styles the chart relies on; the page includes them in its one stylesheet. */
export const CHART_CSS = `
.chart { margin: 0; }
.chart-svg { display: block; width: 100%; height: auto; font: 12px/1 var(--sans); }
.chart-detail { margin-top: 2px; }
.chart-svg text { fill: var(--muted); }
.chart-svg .axis-title { fill: var(--faint); font-size: 11px; letter-spacing: .02em; }
.chart-svg .panel-title { fill: var(--muted); font-size: 11px; font-weight: 600; text-transform: uppercase; letter-spacing: .06em; }
.chart-svg .grid { stroke: #e8ebf0; stroke-width: 1; }
.chart-svg .baseline { stroke: #9aa3af; stroke-width: 1; }
.chart-svg .tick { stroke: #9aa3af; }
.chart-svg .plot-frame { fill: none; stroke: #d5dae1; stroke-width: 1; }
.chart-svg .stage-band-even .band-fill { fill: #f7f9fb; }
.chart-svg .stage-band-odd .band-fill { fill: #eef2f6; }
.chart-svg .stage-band-even .band-head { fill: #edf1f5; }
.chart-svg .stage-band-odd .band-head { fill: #e2e8ef; }
.chart-svg .band-edge { stroke: #b7c0cc; stroke-dasharray: 3 3; }
.chart-svg .band-label { fill: var(--ink); font-weight: 600; }
.chart-svg .band-peak { fill: var(--muted); font-weight: 400; }
.chart-svg .total-area { fill: ${TOTAL_COLOUR}; fill-opacity: .05; }
.chart-svg .line { fill: none; stroke-linejoin: round; stroke-linecap: round; }
.chart-svg .line-user { stroke-width: 1.75; }
.chart-svg .line-total { stroke-width: 1.5; stroke-dasharray: 5 3; }
.chart .legend { display: flex; flex-wrap: wrap; gap: 4px 18px; list-style: none; margin: 8px 0 0; padding: 0 0 0 ${MARGIN.left}px; font-size: 12px; }
.chart .legend li { display: flex; align-items: center; gap: 6px; }
.chart .legend-peak { color: var(--faint); font-variant-numeric: tabular-nums; }
.chart .swatch { display: inline-block; width: 16px; height: 0; border-top: 2px solid var(--c); }
.chart .swatch-total { border-top-style: dashed; }
.chart figcaption { margin-top: 6px; padding-left: ${MARGIN.left}px; color: var(--faint); font-size: 11px; }
.chart .no-samples { margin: 0; padding: 48px 16px; text-align: center; color: var(--muted); background: #f6f8fb; border: 1px dashed #cdd4dd; border-radius: 4px; }
`;
