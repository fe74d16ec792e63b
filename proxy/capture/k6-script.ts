import type { CaptureEntry } from './format.ts';
import type { Pacing } from './replay.ts';

export interface K6ScriptOptions {
  /** The capture file as the script opens it (relative to the script, as k6's open() resolves it). */
  capturePath: string;
  /** The capture's requests, to size the scenario (the script itself reads the file). */
  entries: CaptureEntry[];
  pacing: Pacing;
  /** Default BASE_URL (overridable with -e BASE_URL=…). */
  target: string;
  /** Thresholds (defaults: under 1% failed, p99 under 1000 ms). */
  maxFailedRate?: number;
  p99Ms?: number;
  /** Where the header comment says the script came from. */
  generatedBy?: string;
}

/** Stages of at most this many: longer captures are binned coarser. */
const MAX_STAGES = 120;

/**
 * Arrival-rate stages that follow the capture's own pacing, scaled: the
 * capture's requests binned by (scaled) second, each bin one stage whose
 * target is that bin's rate.
 */
export function paceStages(entries: CaptureEntry[], rate: number): { startRate: number; timeUnit: string; stages: Array<{ target: number; duration: string }> } {
  const spanMs = entries.length ? entries[entries.length - 1]!.t_ms / rate : 0;
  const binS = Math.max(1, Math.ceil(spanMs / 1000 / MAX_STAGES));
  const bins = Math.max(1, Math.ceil(spanMs / 1000 / binS + 1e-9));
  const counts = new Array<number>(bins).fill(0);
  for (const e of entries) counts[Math.min(bins - 1, Math.floor(e.t_ms / rate / 1000 / binS))]!++;
  // Targets are per timeUnit (binS seconds), so each stage carries its bin's count.
  return { startRate: counts[0]!, timeUnit: `${binS}s`, stages: counts.map((c) => ({ target: c, duration: `${binS}s` })) };
}

/**
 * A k6 script that replays a capture: a SharedArray over the JSONL file
 * (read once, shared by every VU), an arrival-rate scenario (the capture's
 * pacing scaled, or a constant rate), each iteration sending the next
 * request of the capture in order (so the mix is the capture's), redacted
 * credentials filled from TOKEN / TOKEN_MAP, thresholds on http_req_failed
 * and http_req_duration, and a handleSummary that prints a JSON summary
 * and writes k6's full one to SUMMARY (default k6-summary.json).
 *
 * @example
 *   const js = k6Script({ capturePath: './capture.jsonl', entries, pacing: { rate: 2 }, target: 'http://127.0.0.1:8000' });
 *   // k6 run -e TOKEN=… script.js
 */
export function k6Script(options: K6ScriptOptions): string {
  return renderScript(options, JSON.stringify(scenarioOptions(options), null, 2));
}

/** The generated script's `options`: the scenario sized from the capture, the thresholds. */
function scenarioOptions(options: K6ScriptOptions): Record<string, unknown> {
  const { entries, pacing } = options;
  const maxFailedRate = options.maxFailedRate ?? 0.01;
  const p99Ms = options.p99Ms ?? 1000;
  const spanS = entries.length ? entries[entries.length - 1]!.t_ms / 1000 : 0;
  const meanRps = entries.length > 1 && spanS > 0 ? entries.length / spanS : 1;
  let scenario: Record<string, unknown>;
  let peakRps: number;
  if ('rps' in pacing) {
    peakRps = pacing.rps;
    const seconds = Math.max(1, Math.ceil(entries.length / pacing.rps));
    scenario = { executor: 'constant-arrival-rate', rate: pacing.rps, timeUnit: '1s', duration: `${seconds}s` };
  } else {
    const paced = paceStages(entries, pacing.rate);
    const binS = Number.parseInt(paced.timeUnit, 10);
    peakRps = Math.max(meanRps * pacing.rate, ...paced.stages.map((s) => s.target / binS));
    scenario = { executor: 'ramping-arrival-rate', startRate: paced.startRate, timeUnit: paced.timeUnit, stages: paced.stages };
  }
  // VUs for the peak rate at about 100 ms per request, with headroom.
  const preAllocatedVUs = Math.max(2, Math.ceil(peakRps * 0.1));
  scenario = { ...scenario, preAllocatedVUs, maxVUs: Math.max(10, preAllocatedVUs * 10), gracefulStop: '10s' };
  return {
    scenarios: { replay: scenario },
    thresholds: {
      http_req_failed: [`rate<${maxFailedRate}`],
      http_req_duration: [`p(99)<${p99Ms}`],
    },
    summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
  };
}

/**
 * k6/replay.js as shipped: the same script with its scenario read from the
 * environment (RPS, default 10; DURATION, default long enough for one pass
 * over the capture), for any capture (CAPTURE, required).
 */
export function shippedReplayScript(): string {
  const optionsJs = `{
  scenarios: {
    replay: {
      executor: 'constant-arrival-rate',
      rate: RPS,
      timeUnit: '1s',
      duration: __ENV.DURATION || Math.max(1, Math.ceil(entries.length / RPS)) + 's',
      preAllocatedVUs: Math.max(2, Math.ceil(RPS / 10)),
      maxVUs: Math.max(10, Math.ceil(RPS)),
      gracefulStop: '10s',
    },
  },
  thresholds: {
    http_req_failed: ['rate<' + (__ENV.MAX_FAILED_RATE || 0.01)],
    http_req_duration: ['p(99)<' + (__ENV.P99_MS || 1000)],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
}`;
  return renderScript(
    { capturePath: 'capture.jsonl', entries: [], pacing: { rate: 1 }, target: 'http://127.0.0.1:9405', generatedBy: 'k6/replay.js (strangler): replays any capture at RPS requests/s, in capture order' },
    optionsJs,
    "const RPS = Number(__ENV.RPS || 10);\nif (!__ENV.CAPTURE) throw new Error('set CAPTURE to a capture file (strangler replay record …)');\n",
  );
}

function renderScript(options: K6ScriptOptions, optionsJs: string, prelude = ''): string {
  const { entries, pacing } = options;
  const pacingText = 'rps' in pacing ? `${pacing.rps} requests/s` : `the capture's pacing x${pacing.rate}`;
  const what = entries.length ? `: replays ${entries.length} captured requests (${pacingText})` : '';
  return `// ${options.generatedBy ?? 'Generated by strangler replay k6'}${what}.
// Run with k6 (https://k6.io):  k6 run -e BASE_URL=${options.target} -e TOKEN=<api token> ${'<this file>'}
// Environment: BASE_URL, TOKEN (fills every redacted credential), TOKEN_MAP (a JSON file
// {"<alias>": "<token>", "*": "<default>"} mapping the capture's [REDACTED:<alias>] values),
// CAPTURE (the JSONL file, default ${JSON.stringify(options.capturePath)}), SUMMARY (k6's full summary, JSON).
import http from 'k6/http';
import { check } from 'k6';
import { SharedArray } from 'k6/data';
import encoding from 'k6/encoding';
import exec from 'k6/execution';

const CAPTURE = __ENV.CAPTURE || ${JSON.stringify(options.capturePath)};
const BASE_URL = (__ENV.BASE_URL || ${JSON.stringify(options.target)}).replace(/\\/$/, '');
const REDACTED = /\\[REDACTED(?::([0-9a-f]{6,64}))?\\]/;

// Read once in the init context and shared read-only by every VU.
const entries = new SharedArray('capture', function () {
  return open(CAPTURE)
    .split('\\n')
    .filter(function (line) { return line.trim() !== ''; })
    .map(function (line) { return JSON.parse(line); })
    .filter(function (e) { return e.type === 'request'; })
    .sort(function (a, b) { return a.t_ms - b.t_ms; });
});
const tokenMap = __ENV.TOKEN_MAP ? JSON.parse(open(__ENV.TOKEN_MAP)) : {};

${prelude}export const options = ${optionsJs};

function credential(value) {
  const m = REDACTED.exec(value);
  if (!m) return value;
  const token = (m[1] && tokenMap[m[1]]) || tokenMap['*'] || __ENV.TOKEN;
  return token ? value.replace(REDACTED, token) : undefined;
}

export default function () {
  // Iterations walk the capture in order, so the request mix is the capture's.
  const e = entries[exec.scenario.iterationInTest % entries.length];
  const headers = {};
  for (const name of Object.keys(e.headers)) {
    const value = credential(e.headers[name]);
    if (value !== undefined) headers[name] = value;
  }
  let body = null;
  if (e.body !== undefined && !e.body_truncated && e.method !== 'GET' && e.method !== 'HEAD') {
    body = e.body_encoding === 'base64' ? encoding.b64decode(e.body, 'std') : e.body;
  }
  const name = e.method + ' ' + (e.route || e.path.split('?')[0]);
  const stream = (e.headers.accept || '').indexOf('text/event-stream') !== -1;
  const res = http.request(e.method, BASE_URL + e.path, body, { headers: headers, tags: { name: name }, timeout: stream ? '2s' : '10s' });
  check(res, { 'answered without a 5xx': function (r) { return r.status > 0 && r.status < 500; } });
}

export function handleSummary(data) {
  const m = data.metrics;
  const trend = (m.http_req_duration && m.http_req_duration.values) || {};
  const summary = {
    requests: m.http_reqs ? m.http_reqs.values.count : 0,
    rps: m.http_reqs ? m.http_reqs.values.rate : 0,
    failed_rate: m.http_req_failed ? m.http_req_failed.values.rate : 0,
    latency_ms: { p50: trend.med, p90: trend['p(90)'], p95: trend['p(95)'], p99: trend['p(99)'], max: trend.max },
    thresholds: Object.fromEntries(
      Object.entries(m)
        .filter(function (kv) { return kv[1].thresholds; })
        .map(function (kv) { return [kv[0], Object.fromEntries(Object.entries(kv[1].thresholds).map(function (t) { return [t[0], t[1].ok]; }))]; }),
    ),
  };
  const out = { stdout: JSON.stringify(summary, null, 2) + '\\n' };
  out[__ENV.SUMMARY || 'k6-summary.json'] = JSON.stringify(data, null, 2);
  return out;
}
`;
}
