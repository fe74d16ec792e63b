import { describe, expect, it } from 'vitest';
import { histogramQuantile } from '../../../lib/metrics/histogram-quantile.ts';

const b = (pairs: Array<[number, number]>) => pairs.map(([le, count]) => ({ le, count }));

describe('histogramQuantile (lib/metrics/histogram-quantile.ts)', () => {
  it('interpolates histogram_quantile like PromQL', () => {
    expect(histogramQuantile(0.5, b([[0.1, 50], [0.5, 100], [Infinity, 100]]))).toBeCloseTo(0.1);
    expect(histogramQuantile(0.75, b([[0.1, 50], [0.5, 100], [Infinity, 100]]))).toBeCloseTo(0.3);
    expect(histogramQuantile(0.25, b([[0.1, 50], [0.5, 100], [Infinity, 100]]))).toBeCloseTo(0.05);
    // The rank falls in +Inf: the highest finite bound.
    expect(histogramQuantile(0.99, b([[0.1, 10], [0.5, 20], [Infinity, 100]]))).toBe(0.5);
    expect(histogramQuantile(0.99, b([[0.1, 0], [Infinity, 0]]))).toBeNaN();
    expect(histogramQuantile(0.99, b([[0.1, 5], [0.5, 10]]))).toBeNaN(); // no +Inf
  });

  it('makes dipping counts monotonic first, as Prometheus does (where the dashboard and the gates used to differ)', () => {
    // Bucket deltas across a restart: the 0.5 bucket reads below the 0.1 bucket. Made monotonic the counts are
    // 5, 5, 10, 10, so rank 6 of 10 falls one fifth into (0.5, 1]: 0.6. The dashboard's former copy,
    // without the fix, interpolated from the dipped count 3 and answered 0.5 + 0.5 * 3/7 ≈ 0.714.
    const dipped = b([[0.1, 5], [0.5, 3], [1, 10], [Infinity, 10]]);
    expect(histogramQuantile(0.6, dipped)).toBeCloseTo(0.6, 10);
    expect(histogramQuantile(0.6, dipped)).toBeCloseTo(histogramQuantile(0.6, b([[0.1, 5], [0.5, 5], [1, 10], [Infinity, 10]])), 10);
    expect(histogramQuantile(0.4, dipped)).toBeCloseTo(0.08, 10);
  });

  it('answers NaN for q out of data, and ±Inf for q out of range, as PromQL', () => {
    expect(histogramQuantile(Number.NaN, b([[1, 1], [Infinity, 1]]))).toBeNaN();
    expect(histogramQuantile(-0.1, b([[1, 1], [Infinity, 1]]))).toBe(Number.NEGATIVE_INFINITY);
    expect(histogramQuantile(1.1, b([[1, 1], [Infinity, 1]]))).toBe(Number.POSITIVE_INFINITY);
    expect(histogramQuantile(0.5, b([[Infinity, 0]]))).toBeNaN();
  });
});
