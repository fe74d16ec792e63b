import { invalidOption } from '../../lib/errors.ts';
import { silentLogger, type Logger } from '../../lib/logger.ts';
import { histogramQuantile } from '../../lib/metrics/histogram-quantile.ts';
import { parsePromText, type Sample } from '../../lib/metrics/prom-text.ts';

/** A service whose /metrics the dashboard scrapes. */
export interface DashboardSource {
  /** The scrape job (dashboards/prometheus.yml names). */
  job: string;
  /** Its base URL or /metrics URL. */
  url: string;
}

export interface DashboardCollectorOptions {
  sources?: DashboardSource[];
  /** Scrape interval (default 2000 ms). */
  intervalMs?: number;
  /** Points kept per series (default 900: half an hour at 2 s). */
  capacity?: number;
  /** Rates and latency quantiles are taken over this many intervals (default 3). */
  windowTicks?: number;
  scrapeTimeoutMs?: number;
  fetch?: typeof fetch;
  logger?: Logger;
}

/** One chart's series, aligned on `t` (uPlot's layout): `data[0]` is t (seconds), `data[i+1]` is series i. */
export interface ChartData {
  series: string[];
  data: Array<Array<number | null>>;
}

export interface DashboardData {
  now: number;
  interval_ms: number;
  charts: Record<ChartId, ChartData>;
  /** Each feature's current step, as the cutover admin's metric says. */
  steps: Array<{ feature: string; step: number; step_name: string; mode: string }>;
  /** The server's max_connections (a limit, not a series: it would flatten the connections chart). */
  max_connections: number | null;
  /** Sources and whether their last scrape worked. */
  sources: Array<{ job: string; url: string; up: boolean; error?: string }>;
}

export const CHARTS = ['connections', 'polling', 'latency', 'requests', 'errors', 'shadow', 'steps'] as const;
export type ChartId = (typeof CHARTS)[number];

interface Frame {
  t: number;
  /** Derived values by chart, then series. */
  values: Record<ChartId, Map<string, number | null>>;
  /** Cumulative counters (summed over sources) for rates: key → value. */
  counters: Map<string, number>;
  steps: DashboardData['steps'];
  maxConnections?: number;
}

const label = (s: Sample, name: string) => s.labels[name] ?? '';

function sumBy(samples: Sample[], name: string, key: (s: Sample) => string | undefined, into: Map<string, number>, prefix: string): void {
  for (const s of samples) {
    if (s.name !== name || !Number.isFinite(s.value)) continue;
    const k = key(s);
    if (k === undefined) continue;
    into.set(`${prefix}${k}`, (into.get(`${prefix}${k}`) ?? 0) + s.value);
  }
}

/** histogram_quantile over bucket deltas (lib/metrics/histogram-quantile.ts, as the gates read it); null without data. */
function quantileFromBuckets(deltas: Array<{ le: number; count: number }>, q: number): number | null {
  const value = histogramQuantile(q, deltas);
  return Number.isNaN(value) ? null : value;
}

/**
 * The live dashboard's data: scrapes every source's /metrics on the server
 * (the same text Prometheus reads), derives the panels' series — MySQL
 * connections by user and in total, polling queries per second, event
 * delivery latency, proxy requests and 5xx per feature and target, shadow
 * mismatch rate, each feature's step — and keeps them in a ring buffer.
 *
 * @example
 *   const collector = createDashboardCollector({ sources: [{ job: 'monitor', url: monitorUrl }] });
 *   collector.start(); … collector.data().charts.connections
 */
export function createDashboardCollector(options: DashboardCollectorOptions = {}) {
  const intervalMs = options.intervalMs ?? 2000;
  if (!Number.isInteger(intervalMs) || intervalMs < 100) throw invalidOption('intervalMs', options.intervalMs, 'an integer >= 100');
  const capacity = options.capacity ?? 900;
  if (!Number.isInteger(capacity) || capacity < 2) throw invalidOption('capacity', options.capacity, 'an integer >= 2');
  const windowTicks = options.windowTicks ?? 3;
  // A slow scrape only delays the next tick (ticks never overlap).
  const timeoutMs = options.scrapeTimeoutMs ?? Math.max(5000, intervalMs);
  const doFetch = options.fetch ?? fetch;
  const log = (options.logger ?? silentLogger()).child({ component: 'dashboard' });
  const sources: Array<DashboardSource & { up: boolean; error?: string }> = [];
  const frames: Frame[] = [];
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  function addSource(source: DashboardSource): void {
    const url = `${source.url.replace(/\/metrics$/, '').replace(/\/$/, '')}/metrics`;
    if (!/^https?:\/\//.test(url)) throw invalidOption('sources.url', source.url, 'an http:// URL');
    if (!sources.some((s) => s.url === url)) sources.push({ job: source.job, url, up: false });
  }
  for (const s of options.sources ?? []) addSource(s);

  async function scrape(source: (typeof sources)[number]): Promise<Sample[]> {
    try {
      const res = await doFetch(source.url, { signal: AbortSignal.timeout(timeoutMs) });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      const { samples } = parsePromText(await res.text());
      source.up = true;
      delete source.error;
      return samples;
    } catch (err) {
      source.up = false;
      source.error = (err as Error).message.slice(0, 200);
      return [];
    }
  }

  function rate(now: Frame, key: string): number | null {
    const back = frames[Math.max(0, frames.length - windowTicks)];
    if (!back || back === now) return null;
    const a = back.counters.get(key);
    const b = now.counters.get(key);
    const dt = now.t - back.t;
    if (b === undefined || dt <= 0) return null;
    const d = b - (a ?? 0);
    // A counter that went down restarted: no rate for this window.
    return d < 0 ? null : d / dt;
  }

  function deltaOf(now: Frame, key: string): number | null {
    const back = frames[Math.max(0, frames.length - windowTicks)];
    if (!back || back === now) return null;
    const b = now.counters.get(key);
    if (b === undefined) return null;
    const d = b - (back.counters.get(key) ?? 0);
    return d < 0 ? null : d;
  }

  async function tick(): Promise<void> {
    const samples = (await Promise.all(sources.map(scrape))).flat();
    const t = Date.now() / 1000;
    const values = Object.fromEntries(CHARTS.map((c) => [c, new Map<string, number | null>()])) as Frame['values'];
    const counters = new Map<string, number>();
    const gauges = new Map<string, number>();
    sumBy(samples, 'mysql_global_status_threads_connected', () => 'total', gauges, 'conn:');
    let maxConnections: number | undefined;
    for (const x of samples) if (x.name === 'mysql_global_variables_max_connections') maxConnections = x.value;
    sumBy(samples, 'mysql_info_schema_processes_by_user', (s) => label(s, 'mysql_user'), gauges, 'conn:user ');
    sumBy(samples, 'mysql_info_schema_user_statistics_select_commands_total', (s) => label(s, 'user'), counters, 'poll:SELECTs by ');
    sumBy(samples, 'dobe_god_queries_total', () => 'god queries (agents)', counters, 'poll:');
    sumBy(samples, 'router_db_queries_total', () => 'Event Router queries', counters, 'poll:');
    sumBy(samples, 'router_delivery_latency_seconds_bucket', (s) => label(s, 'le'), counters, 'lat:');
    sumBy(samples, 'proxy_requests_total', (s) => `${label(s, 'feature')} → ${label(s, 'target')}`, counters, 'req:');
    sumBy(samples, 'proxy_requests_total', (s) => (/^5/.test(label(s, 'status')) ? `${label(s, 'feature')} → ${label(s, 'target')}` : undefined), counters, 'err:');
    sumBy(samples, 'proxy_shadow_comparisons_total', (s) => label(s, 'feature'), counters, 'shadow-all:');
    sumBy(samples, 'proxy_shadow_comparisons_total', (s) => (label(s, 'result') === 'mismatch' ? label(s, 'feature') : undefined), counters, 'shadow-bad:');
    const steps: Frame['steps'] = [];
    for (const s of samples) {
      if (s.name !== 'cutover_feature_step' || steps.some((x) => x.feature === label(s, 'feature'))) continue;
      steps.push({ feature: label(s, 'feature'), step: s.value, step_name: label(s, 'step_name'), mode: label(s, 'mode') });
    }
    // A scrape that failed this tick keeps the steps last read (the page shows the source as down).
    if (steps.length === 0 && sources.some((x) => !x.up)) steps.push(...(frames.at(-1)?.steps ?? []));
    const frame: Frame = { t, values, counters, steps, ...(maxConnections !== undefined ? { maxConnections } : {}) };
    frames.push(frame);
    if (frames.length > capacity) frames.shift();

    for (const [k, v] of gauges) values.connections.set(k.slice('conn:'.length), v);
    for (const k of counters.keys()) {
      if (k.startsWith('poll:')) values.polling.set(k.slice(5), rate(frame, k));
      else if (k.startsWith('req:')) values.requests.set(k.slice(4), rate(frame, k));
      else if (k.startsWith('err:')) values.errors.set(k.slice(4), rate(frame, k));
      else if (k.startsWith('shadow-all:')) {
        const feature = k.slice('shadow-all:'.length);
        const all = deltaOf(frame, k);
        const bad = deltaOf(frame, `shadow-bad:${feature}`) ?? 0;
        values.shadow.set(feature, all ? bad / all : null);
      }
    }
    const buckets: Array<{ le: number; count: number }> = [];
    for (const k of counters.keys()) {
      if (!k.startsWith('lat:')) continue;
      const d = deltaOf(frame, k);
      if (d !== null) buckets.push({ le: k === 'lat:+Inf' ? Infinity : Number(k.slice(4)), count: d });
    }
    const p50 = quantileFromBuckets(buckets, 0.5);
    const p99 = quantileFromBuckets(buckets, 0.99);
    values.latency.set('p50 (ms)', p50 === null ? null : Math.round(p50 * 10_000) / 10);
    values.latency.set('p99 (ms)', p99 === null ? null : Math.round(p99 * 10_000) / 10);
    for (const s of steps) values.steps.set(s.feature, s.step);
  }

  function chart(id: ChartId): ChartData {
    const names: string[] = [];
    for (const f of frames) for (const k of f.values[id].keys()) if (!names.includes(k)) names.push(k);
    names.sort((a, b) => (a === 'total' ? -1 : b === 'total' ? 1 : a.localeCompare(b)));
    const data: ChartData['data'] = [frames.map((f) => Math.round(f.t * 1000) / 1000)];
    for (const n of names) data.push(frames.map((f) => { const v = f.values[id].get(n); return v === undefined || v === null || !Number.isFinite(v) ? null : Math.round(v * 1000) / 1000; }));
    return { series: names, data };
  }

  return {
    addSource,
    /** Takes one reading now (tests; the timer calls it too). */
    tick,
    data(): DashboardData {
      return {
        now: Date.now() / 1000,
        interval_ms: intervalMs,
        charts: Object.fromEntries(CHARTS.map((c) => [c, chart(c)])) as Record<ChartId, ChartData>,
        steps: frames.at(-1)?.steps ?? [],
        max_connections: frames.at(-1)?.maxConnections ?? null,
        sources: sources.map((s) => ({ job: s.job, url: s.url, up: s.up, ...(s.error ? { error: s.error } : {}) })),
      };
    },
    start(): void {
      if (timer) return;
      const loop = () => {
        running = tick().catch((err: Error) => log.warn({ err: err.message }, 'dashboard scrape failed'));
        void running.then(() => {
          if (timer) timer = setTimeout(loop, intervalMs);
        });
      };
      timer = setTimeout(loop, 0);
    },
    async close(): Promise<void> {
      clearTimeout(timer);
      timer = undefined;
      await running;
    },
  };
}

export type DashboardCollector = ReturnType<typeof createDashboardCollector>;
