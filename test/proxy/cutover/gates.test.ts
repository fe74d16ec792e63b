import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baselineFor, createScraper, evaluateGate, evaluateStep, type Scrape } from '../../../proxy/cutover/gates.ts';
import type { Gate, PlanStep } from '../../../proxy/cutover/plan.ts';
import { parsePromText } from '../../../lib/metrics/prom-text.ts';
import { counterIncrease, labelsMatch, parseSelector, select, seriesKey } from '../../../proxy/cutover/selectors.ts';

describe('selectors', () => {
  it('parse =, !=, =~ and !~ with either quote, anchored like PromQL', () => {
    const sel = parseSelector(`proxy_requests_total{feature='event-delivery', target="new",status=~'5..',route!~"/metrics|/healthz",x!=''}`);
    expect(sel.metric).toBe('proxy_requests_total');
    expect(sel.matchers.map((m) => m.op)).toEqual(['=', '=', '=~', '!~', '!=']);
    const ok = { feature: 'event-delivery', target: 'new', status: '503', route: '/v2/droplets', x: '1' };
    expect(labelsMatch(ok, sel.matchers)).toBe(true);
    expect(labelsMatch({ ...ok, status: '5031' }, sel.matchers)).toBe(false); // anchored
    expect(labelsMatch({ ...ok, status: '200' }, sel.matchers)).toBe(false);
    expect(labelsMatch({ ...ok, route: '/metrics' }, sel.matchers)).toBe(false);
    expect(labelsMatch({ ...ok, x: '' }, sel.matchers)).toBe(false);
    // A missing label is the empty string.
    expect(labelsMatch({}, parseSelector('m{absent=""}').matchers)).toBe(true);
    expect(parseSelector('bare_metric').matchers).toEqual([]);
    // A histogram selector picks the family's _bucket series.
    const buckets = parsePromText('m_bucket{le="1"} 2\nm_bucket{le="+Inf"} 3\nm_count 3\n').samples;
    expect(select(buckets, parseSelector(`m{le='+Inf'}`), '_bucket').map((s) => s.value)).toEqual([3]);
  });

  it('reject bad selectors with CUTOVER_ERR_BAD_SELECTOR', () => {
    for (const bad of ['', '{a="1"}', 'm{a="1"', 'm{a=1}', 'm{a~"x"}', 'm{a=~"("}', 'm{a="1"} extra', 'm{a="1",,}']) {
      expect(() => parseSelector(bad), bad).toThrow(expect.objectContaining({ code: 'CUTOVER_ERR_BAD_SELECTOR' }));
    }
  });
});

describe('rates and quantiles from two scrapes', () => {
  it('treats a smaller counter as a restart', () => {
    expect(counterIncrease(15, 10)).toBe(5);
    expect(counterIncrease(3, 10)).toBe(3);
    expect(counterIncrease(7, undefined)).toBe(7);
  });

  it('judges gates over the window between a baseline and now', async () => {
    const registry = new Registry();
    const requests = new Counter({ name: 'proxy_requests_total', help: 'r', labelNames: ['feature', 'target', 'status'], registers: [registry] });
    const latency = new Histogram({ name: 'proxy_request_duration_seconds', help: 'l', labelNames: ['feature'], buckets: [0.01, 0.1, 1], registers: [registry] });
    const backlog = new Gauge({ name: 'router_pending_events', help: 'b', labelNames: ['region'], registers: [registry] });
    const scrape = async (): Promise<Scrape> => ({ at: new Date(), samples: parsePromText(await registry.metrics()).samples });
    const errorGate: Gate = {
      kind: 'error_rate',
      service: 'proxy',
      errors: `proxy_requests_total{feature='f',target='new',status=~'5..'}`,
      total: `proxy_requests_total{feature='f',target='new'}`,
      max: 0.05,
    };
    const latencyGate: Gate = { kind: 'latency', service: 'proxy', histogram: `proxy_request_duration_seconds{feature='f'}`, max_seconds: 0.1 };
    const gaugeGate: Gate = { kind: 'gauge', service: 'router', metric: 'router_pending_events', aggregate: 'sum', max: 10 };
    const step: PlanStep = { name: 's', mode: 'canary', percent: 10, soak_seconds: 0, gates: [errorGate, latencyGate, gaugeGate] };

    // Before the window: lots of errors and slow requests that must not count.
    requests.inc({ feature: 'f', target: 'new', status: '500' }, 100);
    requests.inc({ feature: 'f', target: 'new', status: '200' }, 100);
    for (let i = 0; i < 50; i++) latency.observe({ feature: 'f' }, 5);
    const base = baselineFor(step, 'proxy', await scrape());
    expect(Object.keys(base.series).length).toBeGreaterThan(0);

    const gate = (g: Gate) => ({ gate: g, name: g.kind });
    let now = await scrape();
    expect(evaluateGate(gate(errorGate), now, base)).toMatchObject({ verdict: 'no-data', samples: 0 });
    expect(evaluateGate(gate(latencyGate), now, base)).toMatchObject({ verdict: 'no-data' });
    expect(evaluateGate(gate(gaugeGate), now, undefined)).toMatchObject({ verdict: 'no-data' });

    requests.inc({ feature: 'f', target: 'new', status: '200' }, 98);
    requests.inc({ feature: 'f', target: 'new', status: '503' }, 2);
    requests.inc({ feature: 'other', target: 'new', status: '500' }, 1000);
    for (let i = 0; i < 99; i++) latency.observe({ feature: 'f' }, 0.005);
    latency.observe({ feature: 'f' }, 0.5);
    backlog.set({ region: 'nyc1' }, 4);
    backlog.set({ region: 'sfo1' }, 5);
    now = await scrape();
    expect(evaluateGate(gate(errorGate), now, base)).toMatchObject({ verdict: 'pass', value: 0.02, samples: 100 });
    const p99 = evaluateGate(gate(latencyGate), now, base);
    expect(p99).toMatchObject({ verdict: 'pass', samples: 100 });
    expect(p99.value!).toBeLessThanOrEqual(0.01);
    expect(evaluateGate(gate(gaugeGate), now, undefined)).toMatchObject({ verdict: 'pass', value: 9 });

    requests.inc({ feature: 'f', target: 'new', status: '502' }, 10);
    for (let i = 0; i < 5; i++) latency.observe({ feature: 'f' }, 0.9);
    backlog.set({ region: 'sfo1' }, 50);
    now = await scrape();
    const errors = evaluateGate(gate(errorGate), now, base);
    expect(errors.verdict).toBe('fail');
    expect(errors.value).toBeCloseTo(12 / 110);
    expect(errors.message).toMatch(/10\.91% \(12\/110 requests in .*\) > max 5\.00%/);
    expect(evaluateGate(gate(latencyGate), now, base).verdict).toBe('fail');
    expect(evaluateGate(gate(gaugeGate), now, undefined)).toMatchObject({ verdict: 'fail', value: 54 });

    // A restart (counters back near zero) counts what the new process saw.
    requests.reset();
    requests.inc({ feature: 'f', target: 'new', status: '200' }, 10);
    now = await scrape();
    expect(evaluateGate(gate(errorGate), now, base)).toMatchObject({ verdict: 'pass', value: 0, samples: 10 });
    expect(seriesKey({ name: 'a', labels: { b: '1', a: '2' } })).toBe(seriesKey({ name: 'a', labels: { a: '2', b: '1' } }));
  });
});

describe('gate verdicts at their boundaries', () => {
  const at = new Date('2026-12-07T06:00:00.000Z');
  const scrapeOf = (text: string, seconds = 0): Scrape => ({ at: new Date(at.getTime() + seconds * 1000), samples: parsePromText(text).samples });
  const judge = (gate: Gate, now: Scrape, base?: Scrape) => {
    const step: PlanStep = { name: 's', mode: 'canary', percent: 10, soak_seconds: 0, gates: [gate] };
    return evaluateGate({ gate, name: gate.kind }, now, base ? baselineFor(step, 'svc', base) : undefined);
  };
  const errors = (min_samples?: number): Gate => ({ kind: 'error_rate', service: 'svc', errors: `req_total{status='500'}`, total: 'req_total', max: 0.05, ...(min_samples !== undefined ? { min_samples } : {}) });
  const requests = (ok: number, bad: number) => `req_total{status="200"} ${ok}\nreq_total{status="500"} ${bad}\n`;

  it('an error rate exactly at max passes, one error more fails; the window is measured from the baseline', () => {
    const base = scrapeOf(requests(1000, 1000));
    expect(judge(errors(), scrapeOf(requests(1095, 1005), 12.34), base)).toMatchObject({ verdict: 'pass', value: 0.05, samples: 100, window_seconds: 12.3 });
    expect(judge(errors(), scrapeOf(requests(1094, 1006), 12.34), base)).toMatchObject({ verdict: 'fail', value: 0.06, samples: 100 });
  });

  it('min_samples requests are judged; one fewer is no-data with the rate so far', () => {
    const base = scrapeOf(requests(0, 0));
    expect(judge(errors(10), scrapeOf(requests(10, 0), 5), base)).toMatchObject({ verdict: 'pass', value: 0, samples: 10 });
    expect(judge(errors(10), scrapeOf(requests(8, 1), 5), base)).toMatchObject({ verdict: 'no-data', value: 1 / 9, samples: 9 });
    expect(judge(errors(10), scrapeOf(requests(0, 0), 5), base)).toMatchObject({ verdict: 'no-data', value: null, samples: 0 });
  });

  it("a gauge fails above its max and below its min, and passes at either bound", () => {
    const gauge = (aggregate: 'sum' | 'max' | 'min' | 'avg'): Gate => ({ kind: 'gauge', service: 'svc', metric: 'backlog', aggregate, min: 5, max: 10 });
    const text = (a: number, b: number) => `backlog{region="a"} ${a}\nbacklog{region="b"} ${b}\n`;
    expect(judge(gauge('sum'), scrapeOf(text(2, 3)))).toMatchObject({ verdict: 'pass', value: 5, threshold: { min: 5, max: 10 } });
    expect(judge(gauge('sum'), scrapeOf(text(2, 2)))).toMatchObject({ verdict: 'fail', value: 4 });
    expect(judge(gauge('sum'), scrapeOf(text(4, 6)))).toMatchObject({ verdict: 'pass', value: 10 });
    expect(judge(gauge('sum'), scrapeOf(text(5, 6)))).toMatchObject({ verdict: 'fail', value: 11 });
    expect(judge(gauge('max'), scrapeOf(text(4, 11)))).toMatchObject({ verdict: 'fail', value: 11 });
    expect(judge(gauge('min'), scrapeOf(text(4, 11)))).toMatchObject({ verdict: 'fail', value: 4 });
    expect(judge(gauge('avg'), scrapeOf(text(4, 8)))).toMatchObject({ verdict: 'pass', value: 6 });
  });

  it('a latency gate is judged from min_samples observations, and a histogram without +Inf is an error', () => {
    const gate: Gate = { kind: 'latency', service: 'svc', histogram: 'lat', max_seconds: 0.1, min_samples: 4 };
    const hist = (fast: number, slow: number) => `lat_bucket{le="0.05"} ${fast}\nlat_bucket{le="1"} ${fast + slow}\nlat_bucket{le="+Inf"} ${fast + slow}\n`;
    const base = scrapeOf(hist(0, 0));
    expect(judge(gate, scrapeOf(hist(4, 0), 1), base)).toMatchObject({ verdict: 'pass', samples: 4 });
    expect(judge(gate, scrapeOf(hist(3, 0), 1), base)).toMatchObject({ verdict: 'no-data', value: null, samples: 3 });
    expect(judge(gate, scrapeOf(hist(0, 4), 1), base)).toMatchObject({ verdict: 'fail', samples: 4 });
    expect(judge(gate, scrapeOf('lat_bucket{le="1"} 4\n', 1), scrapeOf('lat_bucket{le="1"} 0\n'))).toMatchObject({ verdict: 'error' });
    expect(judge(gate, scrapeOf('other 1\n', 1), base)).toMatchObject({ verdict: 'no-data', value: null });
  });

  it('each reading carries its threshold, its window and a message with the numbers a person acts on', () => {
    const base = scrapeOf(requests(1000, 1000));
    expect(judge(errors(), scrapeOf(requests(1095, 1005), 12.34), base)).toEqual({
      gate: 'error_rate', kind: 'error_rate', service: 'svc', threshold: { max: 0.05 },
      verdict: 'pass', value: 0.05, samples: 100, window_seconds: 12.3, message: '5.00% (5/100 requests in 12.3s) <= max 5.00%',
    });
    expect(judge(errors(), scrapeOf(requests(1094, 1006), 12.34), base).message).toBe('6.00% (6/100 requests in 12.3s) > max 5.00%');
    expect(judge(errors(10), scrapeOf(requests(1008, 1001), 5), base)).toEqual({
      gate: 'error_rate', kind: 'error_rate', service: 'svc', threshold: { max: 0.05 },
      verdict: 'no-data', value: 1 / 9, samples: 9, window_seconds: 5, message: '9 requests in 5s, fewer than min_samples 10',
    });
    // A rate below 0.1 % keeps four decimals, so a tiny error rate does not read as 0.00 %.
    expect(judge(errors(), scrapeOf(requests(1000 + 9999, 1001), 1), base).message).toBe('0.0100% (1/10000 requests in 1s) <= max 5.00%');
    const shadow: Gate = { kind: 'shadow_mismatch_rate', service: 'svc', mismatches: 'cmp_total{result="mismatch"}', total: 'cmp_total', max: 0.01 };
    const cmp = (same: number, diff: number) => `cmp_total{result="match"} ${same}\ncmp_total{result="mismatch"} ${diff}\n`;
    expect(judge(shadow, scrapeOf(cmp(198, 2), 2), scrapeOf(cmp(0, 0)))).toEqual({
      gate: 'shadow_mismatch_rate', kind: 'shadow_mismatch_rate', service: 'svc', threshold: { max: 0.01 },
      verdict: 'pass', value: 0.01, samples: 200, window_seconds: 2, message: '1.00% (2/200 comparisons in 2s) <= max 1.00%',
    });
  });

  it('a latency reading names its quantile, the observations and the bound in milliseconds; series without le are not buckets', () => {
    const hist = (fast: number, slow: number) =>
      `lat_bucket{le="0.05"} ${fast}\nlat_bucket{le="1"} ${fast + slow}\nlat_bucket{le="+Inf"} ${fast + slow}\nlat_bucket{path="/x"} 1000\n`;
    const base = scrapeOf(hist(0, 0));
    const p99: Gate = { kind: 'latency', service: 'svc', histogram: 'lat', max_seconds: 0.1 };
    const fail = judge(p99, scrapeOf(hist(3, 1), 1), base);
    expect(fail).toMatchObject({ gate: 'latency', kind: 'latency', service: 'svc', threshold: { max: 0.1 }, verdict: 'fail', samples: 4, window_seconds: 1 });
    expect(fail.value).toBeCloseTo(0.962, 9);
    expect(fail.message).toBe('p99 962.0 ms over 4 observations in 1s > max 100.0 ms');
    const p50 = judge({ ...p99, quantile: 0.5 } as Gate, scrapeOf(hist(3, 1), 1), base);
    expect(p50.verdict).toBe('pass');
    expect(p50.value).toBeCloseTo(0.05 * (2 / 3), 9);
    expect(p50.message).toBe('p50 33.3 ms over 4 observations in 1s <= max 100.0 ms');
    expect(judge({ ...p99, min_samples: 5 } as Gate, scrapeOf(hist(3, 1), 1), base)).toEqual({
      gate: 'latency', kind: 'latency', service: 'svc', threshold: { max: 0.1 },
      verdict: 'no-data', value: null, samples: 4, window_seconds: 1, message: '4 observations in 1s, fewer than min_samples 5',
    });
    // Nothing observed in the window with the default min_samples (1): no data, not a pass.
    expect(judge(p99, scrapeOf(hist(0, 0), 1), base)).toMatchObject({ verdict: 'no-data', value: null, samples: 0, message: '0 observations in 1s, fewer than min_samples 1' });
    // min_samples 0 and nothing observed: nothing was slow, so the gate passes.
    expect(judge({ ...p99, min_samples: 0 } as Gate, scrapeOf(hist(0, 0), 1), base)).toMatchObject({ verdict: 'pass', value: null, samples: 0 });
    expect(judge(p99, scrapeOf('lat_bucket{le="1"} 4\n', 1), scrapeOf('lat_bucket{le="1"} 0\n'))).toMatchObject({
      threshold: { max: 0.1 }, value: null, message: 'the histogram has no +Inf bucket',
    });
    expect(judge(p99, scrapeOf('other 1\n', 1), base)).toMatchObject({ threshold: { max: 0.1 }, message: 'no lat buckets' });
    // Series of the family without an le label are not buckets: alone, they are no data, not a broken histogram.
    expect(judge(p99, scrapeOf('lat_bucket{path="/x"} 5\n', 1), base)).toMatchObject({ verdict: 'no-data', value: null, message: 'no lat buckets' });
  });

  it('a gauge reading says which aggregate of how many series it judged, against the bounds it has', () => {
    const text = (...v: number[]) => v.map((x, i) => `backlog{region="r${i}"} ${x}`).join('\n') + '\n';
    const both: Gate = { kind: 'gauge', service: 'svc', metric: 'backlog', min: 5, max: 10 };
    expect(judge(both, scrapeOf(text(2, 3)))).toEqual({ gate: 'gauge', kind: 'gauge', service: 'svc', threshold: { min: 5, max: 10 }, verdict: 'pass', value: 5, message: 'sum of 2 series = 5 >= min 5 and <= max 10' });
    expect(judge(both, scrapeOf(text(1, 1, 2))).message).toBe('sum of 3 series = 4 < min 5');
    expect(judge(both, scrapeOf(text(5, 6))).message).toBe('sum of 2 series = 11 > max 10');
    expect(judge({ ...both, aggregate: 'avg' } as Gate, scrapeOf(text(4, 5)))).toMatchObject({ verdict: 'fail', value: 4.5, message: 'avg of 2 series = 4.500 < min 5' });
    expect(judge({ ...both, aggregate: 'max' } as Gate, scrapeOf(text(4, 9, 1)))).toMatchObject({ verdict: 'pass', value: 9, message: 'max of 3 series = 9 >= min 5 and <= max 10' });
    expect(judge({ ...both, aggregate: 'min' } as Gate, scrapeOf(text(6, 9, 7)))).toMatchObject({ verdict: 'pass', value: 6, message: 'min of 3 series = 6 >= min 5 and <= max 10' });
    const onlyMax: Gate = { kind: 'gauge', service: 'svc', metric: 'backlog', max: 10 };
    expect(judge(onlyMax, scrapeOf(text(-50)))).toEqual({ gate: 'gauge', kind: 'gauge', service: 'svc', threshold: { max: 10 }, verdict: 'pass', value: -50, message: 'sum of 1 series = -50 <= max 10' });
    const onlyMin: Gate = { kind: 'gauge', service: 'svc', metric: 'backlog', min: 1 };
    expect(judge(onlyMin, scrapeOf(text(1000)))).toEqual({ gate: 'gauge', kind: 'gauge', service: 'svc', threshold: { min: 1 }, verdict: 'pass', value: 1000, message: 'sum of 1 series = 1000 >= min 1' });
    expect(judge(onlyMin, scrapeOf('other 1\n'))).toEqual({ gate: 'gauge', kind: 'gauge', service: 'svc', threshold: { min: 1 }, verdict: 'no-data', value: null, message: 'no series matches backlog' });
  });

  it('edge readings: no requests with min_samples 0 is a 0 % rate, a p99 exactly at max passes, NaN series are not counted, absent bounds are absent', () => {
    const base = scrapeOf(requests(0, 0));
    expect(judge(errors(0), scrapeOf(requests(0, 0), 5), base)).toEqual({
      gate: 'error_rate', kind: 'error_rate', service: 'svc', threshold: { max: 0.05 },
      verdict: 'pass', value: 0, samples: 0, window_seconds: 5, message: '0.00% (0/0 requests in 5s) <= max 5.00%',
    });
    // Every observation above the last finite bound: the quantile is that bound, 100 ms, which is not over 100 ms.
    const hist = (slow: number) => `lat_bucket{le="0.1"} 0\nlat_bucket{le="+Inf"} ${slow}\n`;
    const atMax = judge({ kind: 'latency', service: 'svc', histogram: 'lat', max_seconds: 0.1 }, scrapeOf(hist(4), 1), scrapeOf(hist(0)));
    expect(atMax).toMatchObject({ verdict: 'pass', value: 0.1, message: 'p99 100.0 ms over 4 observations in 1s <= max 100.0 ms' });
    const gauge: Gate = { kind: 'gauge', service: 'svc', metric: 'backlog', max: 10 };
    const withNaN = judge(gauge, scrapeOf('backlog{region="a"} 2\nbacklog{region="b"} NaN\nbacklog{region="c"} 3\n'));
    expect(withNaN).toMatchObject({ verdict: 'pass', value: 5, message: 'sum of 2 series = 5 <= max 10' });
    // toStrictEqual: a bound the gate does not have is not even an undefined key in the reading.
    expect(withNaN.threshold).toStrictEqual({ max: 10 });
    expect(judge({ kind: 'gauge', service: 'svc', metric: 'backlog', min: 1 }, scrapeOf('backlog 4\n')).threshold).toStrictEqual({ min: 1 });
  });

  it('a provider gate handed to the scrape judge is an error reading, not a verdict', () => {
    const gate: Gate = { kind: 'prometheus', service: 'prom', query: 'vector(1)', max: 1 };
    expect(evaluateGate({ gate, name: 'promql' }, scrapeOf('x 1\n'), undefined)).toEqual({
      gate: 'promql', kind: 'prometheus', service: 'prom', threshold: { max: 1 }, verdict: 'error', value: null,
      message: 'a prometheus gate is read by its provider, not from a scrape',
    });
  });
});

describe("a step's gates against a service's live /metrics", () => {
  let counters = { ok: 0, bad: 0 };
  let server: Server;
  let url = '';
  beforeAll(async () => {
    server = createServer((_req, res) => res.end(`req_total{status="200"} ${counters.ok}\nreq_total{status="500"} ${counters.bad}\n`));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('without a baseline a windowed gate starts its window (no-data) and hands the baseline back; with it the window is judged; a dead service is an error', async () => {
    const gate: Gate = { kind: 'error_rate', service: 'svc', errors: 'req_total{status="500"}', total: 'req_total', max: 0.1 };
    const step: PlanStep = { name: 'canary', mode: 'canary', percent: 10, soak_seconds: 0, gates: [gate] };
    counters = { ok: 100, bad: 50 };
    const scraper = createScraper({ svc: url, dead: 'http://127.0.0.1:9' });
    const first = await evaluateStep(step, null, scraper);
    expect(first.readings).toEqual([
      { gate: 'error_rate:svc', kind: 'error_rate', service: 'svc', threshold: { max: 0.1 }, verdict: 'no-data', value: null, samples: 0, window_seconds: 0, message: 'no baseline for this step yet; its window starts now' },
    ]);
    const instance = new URL(url).host;
    expect(Object.keys(first.newBaselines)).toEqual(['svc']);
    expect(Object.values(first.newBaselines.svc!.series).sort((a, b) => a - b)).toEqual([50, 100]);
    expect(Object.keys(first.newBaselines.svc!.series).every((k) => k.includes(instance))).toBe(true);

    counters = { ok: 190, bad: 60 }; // 100 more requests, 10 of them errors: exactly at max
    const second = await evaluateStep(step, first.newBaselines, scraper);
    expect(second.newBaselines).toEqual({});
    expect(second.readings).toMatchObject([{ gate: 'error_rate:svc', verdict: 'pass', value: 0.1, samples: 100 }]);
    counters = { ok: 190, bad: 61 };
    expect((await evaluateStep(step, first.newBaselines, scraper)).readings).toMatchObject([{ verdict: 'fail', samples: 101 }]);

    const deadStep: PlanStep = { ...step, gates: [{ ...gate, service: 'dead' }] };
    const dead = await evaluateStep(deadStep, null, scraper);
    expect(dead.readings).toMatchObject([{ gate: 'error_rate:dead', verdict: 'error', value: null, threshold: { max: 0.1 } }]);
    expect(dead.readings[0]!.message).toMatch(/^service dead: GET 127\.0\.0\.1:9\/metrics failed/);
    expect(dead.newBaselines).toEqual({});
  });

  it('a gauge needs no baseline: judged on the first evaluation, and no baseline is taken for it', async () => {
    counters = { ok: 7, bad: 0 };
    const step: PlanStep = { name: 'canary', mode: 'canary', percent: 10, soak_seconds: 0, gates: [{ name: 'ok-count', kind: 'gauge', service: 'svc', metric: 'req_total{status="200"}', max: 10 }] };
    const first = await evaluateStep(step, null, createScraper({ svc: url }));
    expect(first.readings).toMatchObject([{ gate: 'ok-count', verdict: 'pass', value: 7 }]);
    expect(first.newBaselines).toEqual({});
  });
});
