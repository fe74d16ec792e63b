/**
 * Percentiles of a sample of measurements (latencies), always with their
 * sample size, and never from a sample too small to mean anything.
 *
 * The rule: a q-quantile needs at least `1 / (1 - q)` samples, or its
 * nearest rank is the maximum (a "p99" of 30 samples is the slowest one),
 * and never fewer than MIN_SAMPLES_ANY. So a p50 needs 20 samples, a p99 100.
 * Below that the value is `null` and a report shows "n/a (n=…)".
 */

/** The smallest sample any percentile is reported from. */
export const MIN_SAMPLES_ANY = 20;

/**
 * Samples a q-quantile needs (q in (0, 1)).
 *
 * @example
 *   minSamplesFor(0.5);  // 20
 *   minSamplesFor(0.99); // 100
 */
export function minSamplesFor(q: number): number {
  if (!(q > 0 && q < 1)) throw new RangeError(`quantile must be in (0, 1), got ${q}`);
  return Math.max(MIN_SAMPLES_ANY, Math.ceil(1 / (1 - q) - 1e-9));
}

/** p50 and p99 of a sample, each `null` where the sample is too small for it, and the sample size. */
export interface LatencySummary {
  p50: number | null;
  p99: number | null;
  n: number;
}

/**
 * Nearest-rank quantile of an ascending list, or `null` below the minimum sample for q.
 *
 * @example
 *   sampleQuantile([1, 2, 3], 0.5); // null (n=3 < 20)
 */
export function sampleQuantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length < minSamplesFor(q)) return null;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/**
 * p50/p99 of unsorted values, rounded to `decimals`.
 *
 * @example
 *   summarizeLatency(values); // { p50: 12.5, p99: 48.1, n: 450 } or { p50: 9, p99: null, n: 40 }
 */
export function summarizeLatency(values: readonly number[], decimals = 1): LatencySummary {
  const sorted = [...values].sort((a, b) => a - b);
  const scale = 10 ** decimals;
  const round = (v: number | null) => (v === null ? null : Math.round(v * scale) / scale);
  return { p50: round(sampleQuantile(sorted, 0.5)), p99: round(sampleQuantile(sorted, 0.99)), n: sorted.length };
}

/**
 * How a report prints one percentile: the value with its unit, or "n/a (n=…)".
 *
 * @example
 *   formatPercentile(null, 3);     // 'n/a (n=3)'
 *   formatPercentile(48.1, 450, ' ms'); // '48.1 ms'
 */
export function formatPercentile(value: number | null, n: number, unit = ''): string {
  return value === null ? `n/a (n=${n})` : `${value}${unit}`;
}

/**
 * A summary on one line: both percentiles and the sample size.
 *
 * @example
 *   formatLatencySummary({ p50: 9, p99: null, n: 40 }); // 'p50 9 ms, p99 n/a (n=40)'
 *   formatLatencySummary({ p50: 9, p99: 31, n: 400 }); // 'p50 9 ms, p99 31 ms (n=400)'
 */
export function formatLatencySummary(s: LatencySummary, unit = ' ms'): string {
  const p50 = s.p50 === null ? 'n/a' : `${s.p50}${unit}`;
  const p99 = s.p99 === null ? 'n/a' : `${s.p99}${unit}`;
  return `p50 ${p50}, p99 ${p99} (n=${s.n})`;
}
