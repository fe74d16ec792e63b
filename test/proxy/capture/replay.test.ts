import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRandom } from '../../../stack/seed/prng.ts';
import { createProxy, type Proxy } from '../../../proxy/create-proxy.ts';
import { dropletApiRoutes } from '../../../proxy/droplet-api.ts';
import { createStaticState } from '../../../proxy/static-state.ts';
import { mixKey, readCapture, type CaptureEntry } from '../../../proxy/capture/format.ts';
import { createCaptureRecorder } from '../../../proxy/capture/recorder.ts';
import { secretAlias } from '../../../proxy/capture/redact.ts';
import { replayCapture } from '../../../proxy/capture/replay.ts';
import { shippedReplayScript } from '../../../proxy/capture/k6-script.ts';
import { runCli } from '../../helpers/cli.ts';
import { runK6Script } from '../../helpers/k6-standin.ts';
import { startUpstream, type ReceivedRequest, type TestUpstream } from '../../helpers/upstream.ts';

const TOKENS = ['dop_v1_alice_0123456789abcdef', 'dop_v1_bob_0123456789abcdef00', 'dop_v1_carol_0123456789abcdef'];
const COOKIE = 'session=s3cr3t-session-cookie';
const QUERY_TOKEN = 'query-token-9876543210';

/** The mix sent through the recording proxy: 60 requests over about 1.5 s. */
const MIX: Array<{ method: string; path: (i: number) => string; route: string; weight: number; body?: (i: number) => unknown }> = [
  { method: 'GET', path: () => `/v2/droplets?page=1&access_token=${QUERY_TOKEN}`, route: '/v2/droplets', weight: 4 },
  { method: 'POST', path: () => '/v2/droplets', route: '/v2/droplets', weight: 2, body: (i) => ({ name: `web-${i}`, region: 'nyc1', size: '1gb', image: 'debian-8-x64', password: 'hunter2-root' }) },
  { method: 'GET', path: (i) => `/v2/droplets/${100 + i}`, route: '/v2/droplets/:id', weight: 2 },
  { method: 'POST', path: (i) => `/v2/droplets/${100 + i}/actions`, route: '/v2/droplets/:id/actions', weight: 1, body: () => ({ type: 'reboot' }) },
  { method: 'DELETE', path: (i) => `/v2/droplets/${100 + i}`, route: '/v2/droplets/:id', weight: 1 },
];
const ROUTES: Array<[RegExp, string]> = [
  [/^\/v2\/droplets\/?(\?.*)?$/, '/v2/droplets'],
  [/^\/v2\/droplets\/\d+\/actions$/, '/v2/droplets/:id/actions'],
  [/^\/v2\/droplets\/\d+$/, '/v2/droplets/:id'],
];
function keyOf(r: ReceivedRequest): string {
  const route = ROUTES.find(([re]) => re.test(r.url))?.[1] ?? r.url;
  return `${r.method} ${route}`;
}
function countBy<T>(items: T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) out[key(item)] = (out[key(item)] ?? 0) + 1;
  return out;
}

describe('traffic capture and replay', () => {
  let dir: string;
  let origin: TestUpstream;
  let proxy: Proxy;
  let captureFile: string;
  const sent: Array<{ key: string; token: string }> = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strangler-replay-'));
    captureFile = join(dir, 'capture.jsonl');
    origin = await startUpstream('origin');
    const recorder = createCaptureRecorder({ file: captureFile, source: 'test' });
    proxy = createProxy({ routes: { 'droplet-api': dropletApiRoutes([origin.url]) }, state: createStaticState(), onExchange: recorder.record });
    const { url } = await proxy.start();
    const deck = MIX.flatMap((m) => Array.from({ length: m.weight }, () => m));
    for (let i = 0; i < 60; i++) {
      const m = deck[i % deck.length]!;
      const token = TOKENS[i % TOKENS.length]!;
      const body = m.body?.(i);
      const res = await fetch(url + m.path(i), {
        method: m.method,
        headers: { authorization: `Bearer ${token}`, cookie: COOKIE, 'x-customer-ref': `c${i % 3}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      await res.arrayBuffer();
      expect(res.status).toBe(200);
      sent.push({ key: `${m.method} ${m.route}`, token });
      await sleep(25);
    }
    await proxy.close();
    expect(await recorder.close()).toMatchObject({ recorded: 60, dropped: 0 });
  });
  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('records every request with method, route, headers, body, timing and status, and no secret on disk', async () => {
    const text = await readFile(captureFile, 'utf8');
    for (const secret of [...TOKENS, 's3cr3t-session-cookie', QUERY_TOKEN, 'hunter2-root']) expect(text).not.toContain(secret);
    const { meta, entries } = await readCapture(captureFile);
    expect(meta).toMatchObject({ type: 'meta', version: 1, sample_rate: 1, source: 'test' });
    expect(entries).toHaveLength(60);
    expect(countBy(entries, mixKey)).toEqual(countBy(sent, (s) => s.key));
    // Offsets follow the arrival times: 60 requests about 25+ ms apart.
    expect(entries[0]!.t_ms).toBe(0);
    expect(entries[59]!.t_ms).toBeGreaterThan(1400);
    expect(entries.every((e, i) => i === 0 || e.t_ms >= entries[i - 1]!.t_ms)).toBe(true);
    const first = entries[0]!;
    expect(first).toMatchObject({ method: 'GET', route: '/v2/droplets', feature: 'droplet-api', status: 200 });
    expect(first.headers.authorization).toBe(`Bearer [REDACTED:${secretAlias(TOKENS[0]!)}]`);
    expect(first.headers.cookie).toBe(`[REDACTED:${secretAlias(COOKIE)}]`);
    expect(first.headers['x-customer-ref']).toBe('c0');
    expect(first.headers).not.toHaveProperty('host');
    expect(first.headers).not.toHaveProperty('x-request-id');
    expect(first.path).toBe(`/v2/droplets?page=1&access_token=%5BREDACTED%3A${secretAlias(QUERY_TOKEN)}%5D`);
    const create = entries.find((e) => e.method === 'POST' && e.route === '/v2/droplets')!;
    expect(JSON.parse(create.body!)).toMatchObject({ region: 'nyc1', size: '1gb', password: '[REDACTED]' });
    expect(create.duration_ms).toBeGreaterThan(0);
  });

  it('samples: about the share asked for, counted', async () => {
    const file = join(dir, 'sampled.jsonl');
    const prng = createRandom(42);
    const recorder = createCaptureRecorder({ file, sampleRate: 0.25, random: () => prng.next() });
    for (let i = 0; i < 400; i++) {
      recorder.record({ method: 'GET', url: `/v2/droplets/${i}`, headers: {}, body: undefined, status: 200, startedAt: i, durationMs: 1, feature: 'droplet-api', route: '/v2/droplets/:id', target: 'legacy' });
    }
    const stats = await recorder.close();
    expect(stats.recorded + stats.skipped).toBe(400);
    expect(stats.recorded).toBeGreaterThan(60);
    expect(stats.recorded).toBeLessThan(140);
    expect((await readCapture(file)).entries).toHaveLength(stats.recorded);
  });

  it('strangler replay run reproduces the mix against a real server, with the tokens put back', async () => {
    const target = await startUpstream('replay-target');
    try {
      const map = join(dir, 'tokens.json');
      await writeFile(map, JSON.stringify(Object.fromEntries(TOKENS.map((t, i) => [secretAlias(t), `replayed-token-${i}`]))));
      const { code, stdout, stderr } = await runCli(['replay', 'run', captureFile, '--target', target.url, '--rps', '300', '--token-map', map, '--json']);
      expect(code, stderr).toBe(0);
      const summary = JSON.parse(stdout);
      // The cookie had no replacement in the map: every request went without it, and says so.
      expect(summary).toMatchObject({ sent: 60, failed: 0, status: { '200': 60 }, missing_tokens: 60 });
      expect(summary.latency_ms.p99).toBeGreaterThan(0);
      expect(summary.latency_ms.p99).toBeGreaterThanOrEqual(summary.latency_ms.p50);
      // The mix: the count per method + route is the capture's (tolerance: 5% of the total, per route).
      const got = countBy(target.requests, keyOf);
      const want = countBy(sent, (s) => s.key);
      expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
      for (const [key, n] of Object.entries(want)) expect(Math.abs(got[key]! - n), key).toBeLessThanOrEqual(Math.ceil(0.05 * 60));
      // Each customer's requests carry that customer's replacement token; the cookie had no replacement.
      const byToken = countBy(target.requests, (r) => String(r.headers.authorization));
      expect(byToken).toEqual({ 'Bearer replayed-token-0': 20, 'Bearer replayed-token-1': 20, 'Bearer replayed-token-2': 20 });
      expect(target.requests.every((r) => r.headers.cookie === undefined)).toBe(true);
      const created = target.requests.find((r) => r.method === 'POST' && r.url === '/v2/droplets')!;
      expect(JSON.parse(created.body)).toMatchObject({ name: expect.stringMatching(/^web-/), region: 'nyc1' });
    } finally {
      await target.close();
    }
  });

  it('keeps the capture pacing, scaled by --rate', async () => {
    const target = await startUpstream('paced');
    try {
      const { entries } = await readCapture(captureFile);
      const span = entries[entries.length - 1]!.t_ms;
      const slow = await replayCapture(entries, { target: target.url, pacing: { rate: 1 }, tokens: { fallback: 'x-token-0123456789' } });
      const fast = await replayCapture(entries, { target: target.url, pacing: { rate: 4 }, tokens: { fallback: 'x-token-0123456789' } });
      expect(slow.sent).toBe(60);
      expect(fast.sent).toBe(60);
      // The schedule is a floor (a busy machine only adds to it): 1x takes the capture's span, 4x a quarter.
      expect(slow.duration_s * 1000).toBeGreaterThanOrEqual(span * 0.95);
      expect(fast.duration_s * 1000).toBeGreaterThanOrEqual((span / 4) * 0.95);
      expect(fast.duration_s).toBeLessThan(slow.duration_s * 0.6);
      expect(target.requests.every((r) => r.headers.authorization === 'Bearer x-token-0123456789')).toBe(true);
    } finally {
      await target.close();
    }
  });

  it('strangler replay k6 writes a script whose requests, run against stand-ins for k6/http and SharedArray, are the capture', async () => {
    const script = join(dir, 'k6', 'replay.js');
    const { code, stdout, stderr } = await runCli(['replay', 'k6', captureFile, '--out', script, '--rate', '2x', '--target', 'http://proxy.test:9405', '--json']);
    expect(code, stderr).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ script, requests: 60 });
    const { entries } = await readCapture(captureFile);
    const run = await runK6Script(script, { env: { TOKEN: 'k6-token-0123456789' }, iterations: entries.length });
    expect(run.requests).toHaveLength(60);
    run.requests.forEach((r, i) => {
      const e: CaptureEntry = entries[i]!;
      expect(r.method).toBe(e.method);
      expect(r.url).toBe(`http://proxy.test:9405${e.path}`);
      expect(r.body).toBe(e.method === 'GET' ? null : (e.body ?? null));
      expect(r.params.headers!.authorization).toBe('Bearer k6-token-0123456789');
      expect(r.params.headers!['x-customer-ref']).toBe(e.headers['x-customer-ref']);
      expect(r.params.tags!.name).toBe(mixKey(e));
    });
    const scenario = run.options.scenarios!.replay!;
    expect(scenario.executor).toBe('ramping-arrival-rate');
    // The stages carry every request once, at twice the capture's pace.
    const stages = scenario.stages as Array<{ target: number; duration: string }>;
    expect(stages.reduce((n, s) => n + s.target, 0)).toBe(60);
    expect(stages.length).toBeLessThanOrEqual(Math.ceil(entries[59]!.t_ms / 2 / 1000) + 1);
    expect(Object.keys(run.options.thresholds!).sort()).toEqual(['http_req_duration', 'http_req_failed']);
    const summary = JSON.parse(run.summary!.stdout!);
    expect(summary).toMatchObject({ requests: 3, failed_rate: 0, latency_ms: { p99: 3 }, thresholds: { http_req_failed: { 'rate<0.01': true } } });
    expect(run.summary).toHaveProperty(['k6-summary.json']);
  });

  it('k6/ ships scripts that run under the stand-ins', async () => {
    const repo = new URL('../../../k6/', import.meta.url).pathname;
    const smoke = await runK6Script(join(repo, 'smoke.js'), { env: { BASE_URL: 'http://x.test', TOKEN: 't-0123456789' }, iterations: 1 });
    expect(smoke.requests.map((r) => `${r.method} ${r.url}`)).toContain('GET http://x.test/v2/droplets?per_page=20');
    expect(smoke.requests.every((r) => r.params.headers?.authorization === 'Bearer t-0123456789' || !r.url.includes('/v2/'))).toBe(true);
    const burst = await runK6Script(join(repo, 'create-burst.js'), { env: { BASE_URL: 'http://x.test', TOKEN: 't-0123456789' }, iterations: 3 });
    expect(burst.requests).toHaveLength(3);
    expect(burst.requests.every((r) => r.method === 'POST' && r.url === 'http://x.test/v2/droplets' && JSON.parse(r.body!).region)).toBe(true);
    expect(burst.options.scenarios!.burst!.executor).toBe('ramping-arrival-rate');
    const shipped = await readFile(join(repo, 'replay.js'), 'utf8');
    expect(shipped, 'k6/replay.js is generated: node --import tsx -e "import(\'./proxy/capture/k6-script.ts\').then((m) => process.stdout.write(m.shippedReplayScript()))" > k6/replay.js').toBe(shippedReplayScript());
    const replay = await runK6Script(join(repo, 'replay.js'), { env: { BASE_URL: 'http://x.test', TOKEN: 't-0123456789', CAPTURE: captureFile }, iterations: 5 });
    expect(replay.requests.map((r) => r.method)).toEqual((await readCapture(captureFile)).entries.slice(0, 5).map((e) => e.method));
  });
});
