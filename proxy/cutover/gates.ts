import { cutoverError } from './errors.ts';
import { gateName, gateService, isScrapeGate, type Gate, type PlanStep, type ScrapeGate } from './plan.ts';
import type { GateProviders } from './providers.ts';
import { histogramQuantile } from '../../lib/metrics/histogram-quantile.ts';
import { parsePromText, type Sample } from '../../lib/metrics/prom-text.ts';
import { counterIncrease, parseSelector, select, seriesKey, type Selector } from './selectors.ts';

/**
 * Gate evaluation. Windowed gates (error rate, shadow mismatch rate,
 * latency) compare two scrapes: the baseline taken when the step started
 * (stored with the feature's row) and one taken now, so they judge exactly
 * the soak window. Gauge gates read the value now.
 */

/** Where each service's `/metrics` lives: one URL, or one per instance (every Event Router, say). */
export type ServiceMap = Record<string, string | readonly string[]>;

/**
 * - pass: within the threshold;
 * - fail: over it (blocks advance; during a soak, rolls the feature back);
 * - no-data: too few samples in the window to judge, or no series matched (blocks advance, never rolls back);
 * - error: the service could not be scraped (blocks advance, never rolls back).
 */
export type GateVerdict = 'pass' | 'fail' | 'no-data' | 'error';

export interface GateReading {
  gate: string;
  kind: Gate['kind'];
  /** The service read (`database` for invariant and budget gates). */
  service: string;
  verdict: GateVerdict;
  /** The measured value (a ratio, seconds, or the gauge), null when there was nothing to measure. */
  value: number | null;
  threshold: { max?: number; min?: number };
  /** Requests, comparisons or observations in the window (windowed gates). */
  samples?: number;
  /** Length of the window judged, in seconds (windowed gates). */
  window_seconds?: number;
  /** One line for humans: what was measured against what. */
  message: string;
}

/** Per service: when the baseline scrape was taken and the values of the series the step's gates read. */
export type Baseline = Record<string, { at: string; series: Record<string, number> }>;

export interface Scrape {
  at: Date;
  samples: Sample[];
}

export type FetchLike = (url: string, init: { signal: AbortSignal; headers: Record<string, string> }) => Promise<{
  ok: boolean;
  status: number;
  text(): Promise<string>;
}>;

/** A /metrics body bigger than this is not one we want to hold in memory per gate check. */
const MAX_METRICS_BYTES = 16 * 1024 * 1024;

/** A service base URL as the gates scrape it: a bare origin means its /metrics. */
export function metricsUrl(base: string): string {
  const url = new URL(base);
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/metrics';
  return url.toString();
}

export interface Scraper {
  /** Scrapes every instance of a service; samples carry an `instance` label (host:port) so instances never merge. */
  scrape(service: string): Promise<Scrape>;
  configured(service: string): boolean;
}

export function createScraper(services: ServiceMap, options: { timeoutMs?: number; fetch?: FetchLike } = {}): Scraper {
  const timeoutMs = options.timeoutMs ?? 2000;
  const doFetch: FetchLike = options.fetch ?? ((url, init) => fetch(url, init));
  const urls = (service: string): string[] => {
    const v = Object.hasOwn(services, service) ? services[service] : undefined;
    if (v === undefined) return [];
    return typeof v === 'string' ? [v] : [...v];
  };
  async function scrapeOne(service: string, base: string): Promise<Sample[]> {
    let url: string;
    try {
      url = metricsUrl(base);
    } catch (cause) {
      throw cutoverError('CUTOVER_ERR_SCRAPE', `service ${service}: ${JSON.stringify(base)} is not a URL`, {}, cause);
    }
    const instance = new URL(url).host;
    let text: string;
    try {
      const res = await doFetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'text/plain;version=0.0.4' } });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      text = await res.text();
    } catch (cause) {
      const why = (cause as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (cause as Error).message;
      throw cutoverError('CUTOVER_ERR_SCRAPE', `service ${service}: GET ${instance}/metrics failed: ${why}`, {}, cause);
    }
    if (text.length > MAX_METRICS_BYTES) throw cutoverError('CUTOVER_ERR_SCRAPE', `service ${service}: ${instance}/metrics is over ${MAX_METRICS_BYTES} bytes`);
    const parsed = parsePromText(text);
    return parsed.samples.map((s) => ({ ...s, labels: { ...s.labels, instance } }));
  }
  return {
    configured: (service) => urls(service).length > 0,
    async scrape(service) {
      const list = urls(service);
      if (list.length === 0) throw cutoverError('CUTOVER_ERR_SCRAPE', `service ${service} has no /metrics URL in the services map`);
      const at = new Date();
      const parts = await Promise.all(list.map((u) => scrapeOne(service, u)));
      return { at, samples: parts.flat() };
    },
  };
}

// ---------------------------------------------------------------------------

interface CompiledGate {
  gate: Gate;
  name: string;
  /** Selectors whose series the window needs a baseline for, with their suffix. */
  windowed: Array<{ selector: Selector; suffix: string }>;
}

const windowedCache = new WeakMap<Gate, CompiledGate['windowed']>();

/** The selectors a gate reads over its window (none for a gauge), parsed once per gate object. */
function windowedOf(gate: Gate): CompiledGate['windowed'] {
  const cached = windowedCache.get(gate);
  if (cached) return cached;
  let windowed: CompiledGate['windowed'] = [];
  switch (gate.kind) {
    case 'error_rate':
      windowed = [
        { selector: parseSelector(gate.errors), suffix: '' },
        { selector: parseSelector(gate.total), suffix: '' },
      ];
      break;
    case 'shadow_mismatch_rate':
      windowed = [
        { selector: parseSelector(gate.mismatches), suffix: '' },
        { selector: parseSelector(gate.total), suffix: '' },
      ];
      break;
    case 'latency':
      windowed = [{ selector: parseSelector(gate.histogram), suffix: '_bucket' }];
      break;
    case 'gauge':
      break;
  }
  windowedCache.set(gate, windowed);
  return windowed;
}

function compileStep(step: PlanStep): CompiledGate[] {
  return step.gates.map((gate, i, all) => ({ gate, name: gateName(gate, i, all), windowed: windowedOf(gate) }));
}

/** The services whose series a step's windowed gates need a baseline of. */
export function windowedServices(step: PlanStep): string[] {
  return [...new Set(compileStep(step).filter((c) => c.windowed.length > 0).map((c) => gateService(c.gate)))];
}

/** Every service a step's scrape gates read (the /metrics to fetch). */
export function stepServices(step: PlanStep): string[] {
  return [...new Set(step.gates.filter(isScrapeGate).map((g) => g.service))];
}

/** The baseline entry for one service: only the series the step's gates read, to keep the row small. */
export function baselineFor(step: PlanStep, service: string, scrape: Scrape): Baseline[string] {
  const series: Record<string, number> = {};
  for (const c of compileStep(step)) {
    if (gateService(c.gate) !== service) continue;
    for (const w of c.windowed) for (const s of select(scrape.samples, w.selector, w.suffix)) series[seriesKey(s)] = s.value;
  }
  return { at: scrape.at.toISOString(), series };
}

function increaseOver(samples: Sample[], base: Record<string, number>): number {
  let sum = 0;
  for (const s of samples) sum += counterIncrease(s.value, base[seriesKey(s)]);
  return sum;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(x < 0.001 && x > 0 ? 4 : 2)}%`;
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(4);
}

function ratioReading(
  base: Omit<GateReading, 'verdict' | 'value' | 'message' | 'samples' | 'window_seconds'>,
  what: string,
  num: number,
  den: number,
  max: number,
  minSamples: number,
  windowSeconds: number,
): GateReading {
  const w = { samples: den, window_seconds: Math.round(windowSeconds * 10) / 10 };
  if (den < minSamples) {
    return { ...base, ...w, verdict: 'no-data', value: den === 0 ? null : num / den, message: `${fmt(den)} ${what} in ${w.window_seconds}s, fewer than min_samples ${minSamples}` };
  }
  const value = den === 0 ? 0 : num / den;
  const verdict = value > max ? 'fail' : 'pass';
  return {
    ...base,
    ...w,
    verdict,
    value,
    message: `${pct(value)} (${fmt(num)}/${fmt(den)} ${what} in ${w.window_seconds}s) ${verdict === 'fail' ? '>' : '<='} max ${pct(max)}`,
  };
}

/** Judges one gate against a scrape taken now and the step's baseline for its service. */
export function evaluateGate(
  compiled: { gate: Gate; name: string },
  now: Scrape,
  baseline: Baseline[string] | undefined,
): GateReading {
  const { gate, name } = compiled;
  if (!isScrapeGate(gate)) {
    return { gate: name, kind: gate.kind, service: gateService(gate), threshold: thresholdOf(gate), verdict: 'error', value: null, message: `a ${gate.kind} gate is read by its provider, not from a scrape` };
  }
  const windowed = windowedOf(gate);
  const base = { gate: name, kind: gate.kind, service: gate.service };
  const windowSeconds = baseline ? Math.max(0, (now.at.getTime() - Date.parse(baseline.at)) / 1000) : 0;
  const series = baseline?.series ?? {};
  switch (gate.kind) {
    case 'error_rate':
    case 'shadow_mismatch_rate': {
      const [numSel, denSel] = windowed;
      const num = increaseOver(select(now.samples, numSel!.selector), series);
      const den = increaseOver(select(now.samples, denSel!.selector), series);
      const what = gate.kind === 'error_rate' ? 'requests' : 'comparisons';
      return ratioReading({ ...base, threshold: { max: gate.max } }, what, num, den, gate.max, gate.min_samples ?? 1, windowSeconds);
    }
    case 'latency': {
      const q = gate.quantile ?? 0.99;
      const label = `p${fmt(q * 100)}`;
      const threshold = { max: gate.max_seconds };
      const byLe = new Map<number, number>();
      for (const s of select(now.samples, windowed[0]!.selector, '_bucket')) {
        const le = s.labels.le === undefined ? Number.NaN : (s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le));
        if (Number.isNaN(le)) continue;
        byLe.set(le, (byLe.get(le) ?? 0) + counterIncrease(s.value, series[seriesKey(s)]));
      }
      const buckets = [...byLe].map(([le, count]) => ({ le, count }));
      const count = byLe.get(Number.POSITIVE_INFINITY) ?? 0;
      const w = { samples: count, window_seconds: Math.round(windowSeconds * 10) / 10 };
      const minSamples = gate.min_samples ?? 1;
      if (buckets.length === 0) return { ...base, ...w, threshold, verdict: 'no-data', value: null, message: `no ${windowed[0]!.selector.source} buckets` };
      if (!byLe.has(Number.POSITIVE_INFINITY)) return { ...base, ...w, threshold, verdict: 'error', value: null, message: 'the histogram has no +Inf bucket' };
      if (count < minSamples || count === 0) {
        return { ...base, ...w, threshold, verdict: count === 0 && minSamples === 0 ? 'pass' : 'no-data', value: null, message: `${count} observations in ${w.window_seconds}s, fewer than min_samples ${minSamples}` };
      }
      const value = histogramQuantile(q, buckets);
      const verdict = value > gate.max_seconds ? 'fail' : 'pass';
      return {
        ...base,
        ...w,
        threshold,
        verdict,
        value,
        message: `${label} ${(value * 1000).toFixed(1)} ms over ${count} observations in ${w.window_seconds}s ${verdict === 'fail' ? '>' : '<='} max ${(gate.max_seconds * 1000).toFixed(1)} ms`,
      };
    }
    case 'gauge': {
      const threshold = { ...(gate.max !== undefined ? { max: gate.max } : {}), ...(gate.min !== undefined ? { min: gate.min } : {}) };
      const values = select(now.samples, parseSelector(gate.metric)).map((s) => s.value).filter((v) => !Number.isNaN(v));
      if (values.length === 0) return { ...base, threshold, verdict: 'no-data', value: null, message: `no series matches ${gate.metric}` };
      const agg = gate.aggregate ?? 'sum';
      const value =
        agg === 'sum' ? values.reduce((a, b) => a + b, 0) :
        agg === 'max' ? Math.max(...values) :
        agg === 'min' ? Math.min(...values) :
        values.reduce((a, b) => a + b, 0) / values.length;
      const tooHigh = gate.max !== undefined && value > gate.max;
      const tooLow = gate.min !== undefined && value < gate.min;
      const bound = tooHigh ? `> max ${fmt(gate.max!)}` : tooLow ? `< min ${fmt(gate.min!)}` : [gate.min !== undefined ? `>= min ${fmt(gate.min)}` : '', gate.max !== undefined ? `<= max ${fmt(gate.max)}` : ''].filter(Boolean).join(' and ');
      return { ...base, threshold, verdict: tooHigh || tooLow ? 'fail' : 'pass', value, message: `${agg} of ${values.length} series = ${fmt(value)} ${bound}` };
    }
  }
}

export interface StepEvaluation {
  readings: GateReading[];
  /** Baselines for services that had none (the window starts now); the caller stores them. */
  newBaselines: Baseline;
}

/**
 * Scrapes each service the step's gates read (once each) and judges every
 * gate. A windowed gate whose service has no baseline yet gets one now and
 * answers no-data: its window has only just started.
 */
export async function evaluateStep(step: PlanStep, baseline: Baseline | null, scraper: Scraper, providers?: GateProviders): Promise<StepEvaluation> {
  const compiled = compileStep(step);
  const scrapes = new Map<string, Promise<Scrape>>();
  for (const service of stepServices(step)) {
    const p = scraper.scrape(service);
    p.catch(() => {}); // judged per gate below
    scrapes.set(service, p);
  }
  const newBaselines: Baseline = {};
  const readings: GateReading[] = [];
  // Provider gates (PromQL, web JSON, invariants, budget) run beside the scrapes; each answers its own reading.
  const provided = new Map(compiled.flatMap((c) => (isScrapeGate(c.gate) ? [] : [[c, providerReading(c.gate, c.name, providers)] as const])));
  for (const c of compiled) {
    const threshold = thresholdOf(c.gate);
    const base = { gate: c.name, kind: c.gate.kind, service: gateService(c.gate), threshold };
    const pending = provided.get(c);
    if (pending || !isScrapeGate(c.gate)) {
      readings.push(await pending!);
      continue;
    }
    const gate = c.gate;
    let scrape: Scrape;
    try {
      scrape = await scrapes.get(gate.service)!;
    } catch (err) {
      readings.push({ ...base, verdict: 'error', value: null, message: (err as Error).message });
      continue;
    }
    const known = baseline?.[gate.service];
    if (c.windowed.length > 0 && !known) {
      newBaselines[gate.service] ??= baselineFor(step, gate.service, scrape);
      readings.push({ ...base, verdict: 'no-data', value: null, samples: 0, window_seconds: 0, message: 'no baseline for this step yet; its window starts now' });
      continue;
    }
    readings.push(evaluateGate({ gate, name: c.name }, scrape, known));
  }
  return { readings, newBaselines };
}

/** Scrapes the services of a step's windowed gates for a fresh baseline; services that fail are left out (filled in later). */
export async function captureBaseline(step: PlanStep, scraper: Scraper): Promise<Baseline> {
  const out: Baseline = {};
  await Promise.all(
    windowedServices(step).map(async (service) => {
      try {
        out[service] = baselineFor(step, service, await scraper.scrape(service));
      } catch {
        // The watcher or the next advance takes it when the service answers.
      }
    }),
  );
  return out;
}

async function providerReading(gate: Exclude<Gate, ScrapeGate>, name: string, providers: GateProviders | undefined): Promise<GateReading> {
  if (!providers) {
    return { gate: name, kind: gate.kind, service: gateService(gate), threshold: thresholdOf(gate), verdict: 'error', value: null, message: `no ${gate.kind} provider is configured in this admin` };
  }
  return providers.evaluate(gate, name);
}

export function thresholdOf(gate: Gate): GateReading['threshold'] {
  switch (gate.kind) {
    case 'prometheus':
    case 'web':
      return { ...(gate.max !== undefined ? { max: gate.max } : {}), ...(gate.min !== undefined ? { min: gate.min } : {}) };
    case 'invariant':
      return { max: gate.max ?? 0 };
    case 'budget':
      return {
        ...(gate.max_connections !== undefined ? { max: gate.max_connections } : {}),
        ...(gate.max_polling_queries_per_s !== undefined && gate.max_connections === undefined ? { max: gate.max_polling_queries_per_s } : {}),
      };
    case 'error_rate':
    case 'shadow_mismatch_rate':
      return { max: gate.max };
    case 'latency':
      return { max: gate.max_seconds };
    case 'gauge':
      return { ...(gate.max !== undefined ? { max: gate.max } : {}), ...(gate.min !== undefined ? { min: gate.min } : {}) };
  }
}
