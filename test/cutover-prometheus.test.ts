import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { baselineFor, evaluateGate, type Scrape } from '../proxy/cutover/gates.ts';
import type { Gate, PlanStep } from '../proxy/cutover/plan.ts';
import {
  counterIncrease,
  histogramQuantile,
  labelsMatch,
  parsePrometheusText,
  parseSelector,
  select,
  seriesKey,
} from '../proxy/cutover/prometheus.ts';

describe('the Prometheus text parser', () => {
  it('reads comments, HELP/TYPE, escaped label values, +Inf buckets, special values and timestamps', () => {
    const text = [
      '# A free comment, with "quotes" and {braces}',
      '# HELP proxy_requests_total Requests, by \\\\feature\\\\ and target.\\nSecond line.',
      '# TYPE proxy_requests_total counter',
      'proxy_requests_total{feature="event-delivery",path="/v2/say \\"hi\\"",note="a\\\\b\\nc"} 42',
      'proxy_requests_total{feature="x",comma="a,b}c",} 7 1395066363000',
      '',
      '   ',
      '# TYPE lat_seconds histogram',
      'lat_seconds_bucket{le="0.1"} 3',
      'lat_seconds_bucket{le="+Inf"} 5',
      'lat_seconds_sum 1.5e-1',
      'lat_seconds_count 5',
      'weird:name_total 1E3',
      'nan_gauge NaN',
      'neg_inf -Inf',
      'spaced_metric   {  a = "1" ,  b="2"  }   -12.5   -100',
      'no_labels .5',
      '# EOF',
    ].join('\r\n');
    const parsed = parsePrometheusText(text);
    expect(parsed.types.get('proxy_requests_total')).toBe('counter');
    expect(parsed.types.get('lat_seconds')).toBe('histogram');
    expect(parsed.help.get('proxy_requests_total')).toBe('Requests, by \\feature\\ and target.\nSecond line.');
    const [first, second, ...rest] = parsed.samples;
    expect(first).toEqual({
      name: 'proxy_requests_total',
      labels: { feature: 'event-delivery', path: '/v2/say "hi"', note: 'a\\b\nc' },
      value: 42,
    });
    expect(second).toEqual({ name: 'proxy_requests_total', labels: { feature: 'x', comma: 'a,b}c' }, value: 7, timestampMs: 1395066363000 });
    const byName = new Map(rest.map((s) => [s.name + JSON.stringify(s.labels), s]));
    expect(byName.get('lat_seconds_bucket{"le":"+Inf"}')!.value).toBe(5);
    expect(byName.get('lat_seconds_sum{}')!.value).toBeCloseTo(0.15);
    expect(byName.get('weird:name_total{}')!.value).toBe(1000);
    expect(Number.isNaN(byName.get('nan_gauge{}')!.value)).toBe(true);
    expect(byName.get('neg_inf{}')!.value).toBe(Number.NEGATIVE_INFINITY);
    expect(byName.get('spaced_metric{"a":"1","b":"2"}')).toEqual({ name: 'spaced_metric', labels: { a: '1', b: '2' }, value: -12.5, timestampMs: -100 });
    expect(byName.get('no_labels{}')!.value).toBe(0.5);
    expect(parsed.samples).toHaveLength(11);
  });

  it('names the line of malformed input', () => {
    const bad: Array<[string, RegExp]> = [
      ['ok 1\nbroken{a="1" 2', /line 2: expected "," or "}"/],
      ['x{a="unterminated} 1', /unterminated quoted value/],
      ['x{a=1} 1', /expected a quoted value/],
      ['x{a="1",a="2"} 1', /label a appears twice/],
      ['x 12abc', /is not a number/],
      ['x', /has no value/],
      ['x 1 2 3', /unexpected text/],
      ['x 1 1.5', /timestamp "1.5" of x is not an integer/],
      ['{a="1"} 1', /expected a metric name/],
      ['9x 1', /expected a metric name/],
    ];
    for (const [input, message] of bad) {
      expect(() => parsePrometheusText(input), input).toThrow(message);
      try {
        parsePrometheusText(input);
      } catch (err) {
        expect((err as { code: string }).code).toBe('CUTOVER_ERR_METRICS_PARSE');
      }
    }
  });

  it('round-trips what prom-client writes, labels with quotes, backslashes and newlines included', async () => {
    const registry = new Registry();
    const c = new Counter({ name: 'tricky_total', help: 'with "quotes" \\ and\nnewline', labelNames: ['v'], registers: [registry] });
    const values = ['plain', 'say "hi"', 'back\\slash', 'new\nline', 'braces {a="b"}, commas', 'unicodé ✓'];
    values.forEach((v, i) => c.inc({ v }, i + 1));
    const h = new Histogram({ name: 'rt_seconds', help: 'h', buckets: [0.1, 1], registers: [registry] });
    h.observe(0.05);
    h.observe(5);
    const parsed = parsePrometheusText(await registry.metrics());
    expect(parsed.help.get('tricky_total')).toBe('with "quotes" \\ and\nnewline');
    const got = new Map(select(parsed.samples, parseSelector('tricky_total')).map((s) => [s.labels.v, s.value]));
    values.forEach((v, i) => expect(got.get(v), v).toBe(i + 1));
    expect(select(parsed.samples, parseSelector(`rt_seconds{le='+Inf'}`), '_bucket')[0]!.value).toBe(2);
  });
});

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

  it('interpolates histogram_quantile like PromQL', () => {
    const b = (pairs: Array<[number, number]>) => pairs.map(([le, count]) => ({ le, count }));
    expect(histogramQuantile(0.5, b([[0.1, 50], [0.5, 100], [Infinity, 100]]))).toBeCloseTo(0.1);
    expect(histogramQuantile(0.75, b([[0.1, 50], [0.5, 100], [Infinity, 100]]))).toBeCloseTo(0.3);
    expect(histogramQuantile(0.25, b([[0.1, 50], [0.5, 100], [Infinity, 100]]))).toBeCloseTo(0.05);
    // The rank falls in +Inf: the highest finite bound.
    expect(histogramQuantile(0.99, b([[0.1, 10], [0.5, 20], [Infinity, 100]]))).toBe(0.5);
    expect(histogramQuantile(0.99, b([[0.1, 0], [Infinity, 0]]))).toBeNaN();
    expect(histogramQuantile(0.99, b([[0.1, 5], [0.5, 10]]))).toBeNaN(); // no +Inf
  });

  it('judges gates over the window between a baseline and now', async () => {
    const registry = new Registry();
    const requests = new Counter({ name: 'proxy_requests_total', help: 'r', labelNames: ['feature', 'target', 'status'], registers: [registry] });
    const latency = new Histogram({ name: 'proxy_request_duration_seconds', help: 'l', labelNames: ['feature'], buckets: [0.01, 0.1, 1], registers: [registry] });
    const backlog = new Gauge({ name: 'router_pending_events', help: 'b', labelNames: ['region'], registers: [registry] });
    const scrape = async (): Promise<Scrape> => ({ at: new Date(), samples: parsePrometheusText(await registry.metrics()).samples });
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
