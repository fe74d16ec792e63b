/** One cumulative bucket: observations ≤ `le`. */
export interface Bucket {
  le: number;
  count: number;
}

/**
 * The q-quantile of a cumulative histogram, interpolated linearly inside
 * the bucket that holds it, as PromQL's histogram_quantile: a rank in the
 * +Inf bucket answers the highest finite bound; no +Inf bucket or no
 * observations answers NaN. Counts are first made monotonic (each bucket at
 * least the one below it), as Prometheus does: bucket deltas taken across a
 * restart, or scraped while a histogram was being written, can dip, and
 * without this a dip moves the answer. The gates and the dashboard both use
 * this one, so they show the same p99 for the same data.
 *
 * @example
 *   histogramQuantile(0.5, [{ le: 0.1, count: 50 }, { le: 0.5, count: 100 }, { le: Infinity, count: 100 }]) // 0.1
 */
export function histogramQuantile(q: number, buckets: ReadonlyArray<Bucket>): number {
  if (Number.isNaN(q)) return Number.NaN;
  if (q < 0) return Number.NEGATIVE_INFINITY;
  if (q > 1) return Number.POSITIVE_INFINITY;
  const sorted = [...buckets].filter((b) => !Number.isNaN(b.le)).sort((a, b) => a.le - b.le);
  if (sorted.length < 2 || sorted.at(-1)!.le !== Number.POSITIVE_INFINITY) return Number.NaN;
  let max = 0;
  const counts = sorted.map((b) => (max = Math.max(max, b.count)));
  const total = counts.at(-1)!;
  if (total === 0) return Number.NaN;
  const rank = q * total;
  let i = counts.findIndex((c) => c >= rank);
  if (i === sorted.length - 1) return sorted[sorted.length - 2]!.le;
  if (i < 0) i = sorted.length - 1;
  const end = sorted[i]!.le;
  if (i === 0 && end <= 0) return end;
  const start = i === 0 ? 0 : sorted[i - 1]!.le;
  const below = i === 0 ? 0 : counts[i - 1]!;
  const inBucket = counts[i]! - below;
  return inBucket === 0 ? end : start + (end - start) * ((rank - below) / inBucket);
}
