import { describe, expect, it } from 'vitest';
import { formatLatencySummary, formatPercentile, minSamplesFor, sampleQuantile, summarizeLatency } from '../../../lib/metrics/sample-percentiles.ts';

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('sample percentiles', () => {
  it('asks 20 samples for a p50 and 100 for a p99', () => {
    expect(minSamplesFor(0.5)).toBe(20);
    expect(minSamplesFor(0.9)).toBe(20);
    expect(minSamplesFor(0.99)).toBe(100);
    expect(minSamplesFor(0.999)).toBe(1000);
    expect(() => minSamplesFor(1)).toThrow(RangeError);
  });

  it('gives no percentile from a sample under its minimum, whatever the values', () => {
    expect(summarizeLatency([])).toEqual({ p50: null, p99: null, n: 0 });
    expect(summarizeLatency([0])).toEqual({ p50: null, p99: null, n: 1 });
    expect(summarizeLatency(range(19))).toEqual({ p50: null, p99: null, n: 19 });
    expect(summarizeLatency(range(20))).toEqual({ p50: 10, p99: null, n: 20 });
    expect(summarizeLatency(range(99)).p99).toBeNull();
  });

  it('takes the nearest rank from an unsorted sample once it is large enough', () => {
    const values = range(200).reverse();
    expect(summarizeLatency(values)).toEqual({ p50: 100, p99: 198, n: 200 });
    expect(sampleQuantile(range(100), 0.99)).toBe(99);
    expect(summarizeLatency(range(100).map((v) => v / 3), 2).p50).toBe(16.67);
  });

  it('prints n with every summary and n/a instead of a number under the minimum', () => {
    expect(formatPercentile(null, 3)).toBe('n/a (n=3)');
    expect(formatPercentile(12.5, 300, ' ms')).toBe('12.5 ms');
    expect(formatLatencySummary({ p50: 9, p99: null, n: 40 })).toBe('p50 9 ms, p99 n/a (n=40)');
    expect(formatLatencySummary({ p50: 9, p99: 31, n: 400 })).toBe('p50 9 ms, p99 31 ms (n=400)');
  });
});
