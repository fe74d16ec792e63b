import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { baselineFor, evaluateGate, type Scrape } from '../../../proxy/cutover/gates.ts';
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
