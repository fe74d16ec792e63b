// k6/replay.js (strangler): replays any capture at RPS requests/s, in capture order.
// Run with k6 (https://k6.io):  k6 run -e BASE_URL=http://127.0.0.1:9405 -e TOKEN=<api token> <this file>
// Environment: BASE_URL, TOKEN (fills every redacted credential), TOKEN_MAP (a JSON file
// {"<alias>": "<token>", "*": "<default>"} mapping the capture's [REDACTED:<alias>] values),
// CAPTURE (the JSONL file, default "capture.jsonl"), SUMMARY (k6's full summary, JSON).
import http from 'k6/http';
import { check } from 'k6';
import { SharedArray } from 'k6/data';
import encoding from 'k6/encoding';
import exec from 'k6/execution';

const CAPTURE = __ENV.CAPTURE || "capture.jsonl";
const BASE_URL = (__ENV.BASE_URL || "http://127.0.0.1:9405").replace(/\/$/, '');
const REDACTED = /\[REDACTED(?::([0-9a-f]{6,64}))?\]/;

// Read once in the init context and shared read-only by every VU.
const entries = new SharedArray('capture', function () {
  return open(CAPTURE)
    .split('\n')
    .filter(function (line) { return line.trim() !== ''; })
    .map(function (line) { return JSON.parse(line); })
    .filter(function (e) { return e.type === 'request'; })
    .sort(function (a, b) { return a.t_ms - b.t_ms; });
});
const tokenMap = __ENV.TOKEN_MAP ? JSON.parse(open(__ENV.TOKEN_MAP)) : {};

const RPS = Number(__ENV.RPS || 10);
if (!__ENV.CAPTURE) throw new Error('set CAPTURE to a capture file (strangler replay record …)');
export const options = {
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
};

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
  const out = { stdout: JSON.stringify(summary, null, 2) + '\n' };
  out[__ENV.SUMMARY || 'k6-summary.json'] = JSON.stringify(data, null, 2);
  return out;
}
