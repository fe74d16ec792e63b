import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parsePromText, sumSamples } from '../../../lib/metrics/prom-text.ts';

describe('the Prometheus text parser (lib/metrics/prom-text.ts)', () => {
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
    const parsed = parsePromText(text);
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
      expect(() => parsePromText(input), input).toThrow(message);
      try {
        parsePromText(input);
      } catch (err) {
        expect((err as { code: string }).code).toBe('METRICS_ERR_PARSE');
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
    const parsed = parsePromText(await registry.metrics());
    expect(parsed.help.get('tricky_total')).toBe('with "quotes" \\ and\nnewline');
    const got = new Map(parsed.samples.filter((s) => s.name === 'tricky_total').map((s) => [s.labels.v, s.value]));
    values.forEach((v, i) => expect(got.get(v), v).toBe(i + 1));
    expect(sumSamples(parsed.samples, 'rt_seconds_bucket', { le: '+Inf' })).toBe(2);
  });
  it('parses labels with escapes, special values and timestamps', () => {
    const { samples } = parsePromText(
      [
        '# HELP x something',
        '# TYPE x gauge',
        'x{a="q\\"uote",b="back\\\\slash",c="new\\nline"} 1.5e3',
        'y NaN',
        'y{ a = "1" ,} +Inf 1700000000000',
        'z -Inf',
        '',
      ].join('\n'),
    );
    expect(samples[0]).toEqual({ name: 'x', labels: { a: 'q"uote', b: 'back\\slash', c: 'new\nline' }, value: 1500 });
    expect(samples[1]!.value).toBeNaN();
    expect(samples[2]).toEqual({ name: 'y', labels: { a: '1' }, value: Infinity, timestampMs: 1700000000000 });
    expect(samples[3]!.value).toBe(-Infinity);
  });

  it('reads a line the same way with and without escapes (the fast path and the walk agree)', () => {
    const plain = parsePromText('m{a="x",b="y"} 2.5 17\n').samples;
    // The backslash sends the line down the character walk.
    const walked = parsePromText('m{a="x",b="y",c="\\\\"} 2.5 17\n').samples;
    expect(plain).toEqual([{ name: 'm', labels: { a: 'x', b: 'y' }, value: 2.5, timestampMs: 17 }]);
    expect(walked).toEqual([{ name: 'm', labels: { a: 'x', b: 'y', c: '\\' }, value: 2.5, timestampMs: 17 }]);
    // A line the fast path refuses (0x10, a float timestamp) is refused by the walk too, not guessed at.
    expect(() => parsePromText('m 0x10')).toThrow(/is not a number/);
    expect(() => parsePromText('m{a="1"} 1 1.5')).toThrow(/not an integer/);
  });

  it('gives each sample its own labels when series repeat a label set', () => {
    const { samples } = parsePromText('a{h="x",r="y"} 1\nb{h="x",r="y"} 2\n');
    expect(samples.map((s) => s.labels)).toEqual([{ h: 'x', r: 'y' }, { h: 'x', r: 'y' }]);
    samples[0]!.labels.h = 'changed';
    expect(samples[1]!.labels).toEqual({ h: 'x', r: 'y' });
    // A set seen before does not let a malformed one through.
    expect(() => parsePromText('a{h="x",r="y"} 1\nc{h="x",r="y",h="z"} 3\n')).toThrow(/appears twice/);
  });

  it('sums the samples that carry the given labels, and says when there are none', () => {
    const { samples } = parsePromText('r_total{a="1",b="x"} 2\nr_total{a="1",b="y"} 3\nr_total{a="2"} 10\n');
    expect(sumSamples(samples, 'r_total', { a: '1' })).toBe(5);
    expect(sumSamples(samples, 'r_total')).toBe(15);
    expect(sumSamples(samples, 'r_total', { a: '3' })).toBeUndefined();
    expect(sumSamples(samples, 'absent_total')).toBeUndefined();
  });
});
