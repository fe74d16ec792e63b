import { Histogram } from 'prom-client';

type Labels = Record<string, string>;

/**
 * prom-client 15's state of one label set of a histogram (lib/histogram.js,
 * the values of its `hashMap`): a count per bucket keyed by the bucket's
 * upper bound (not cumulative), the sum and the count.
 */
interface SeriesState {
  labels: Labels;
  bucketValues: Record<string, number>;
  sum: number;
  count: number;
}

type HistogramInternals = { hashMap?: Record<string, SeriesState> };

function seriesOf(histogram: Histogram<string>, labels: Labels): SeriesState | undefined {
  const all = (histogram as unknown as HistogramInternals).hashMap;
  if (all === undefined) return undefined;
  for (const series of Object.values(all)) {
    if (Object.keys(labels).every((k) => series.labels[k] === labels[k])) return series;
  }
  return undefined;
}

/**
 * Whether this prom-client keeps its histograms as flush() expects. Checked
 * once on a histogram of its own: with another layout, every observation
 * goes through prom-client's observe() as before, so the figures stay right.
 */
const BATCHABLE = (() => {
  try {
    const probe = new Histogram({ name: 'probe', help: 'probe', labelNames: ['a'], buckets: [1, 2], registers: [] });
    probe.labels({ a: 'x' }).observe(1.5);
    const s = seriesOf(probe, { a: 'x' });
    return s !== undefined && s.bucketValues['1'] === 0 && s.bucketValues['2'] === 1 && s.sum === 1.5 && s.count === 1;
  } catch {
    return false;
  }
})();

/**
 * One label set's observations of a histogram, counted in plain numbers and
 * added to the histogram when it is read (its `collect`). prom-client's
 * observe() checks the labels and hashes them into a new string on every
 * call, even on a child from `.labels()`; the proxy observes once per
 * request. A reader (a scrape, a cluster primary asking its workers) sees
 * every observation made so far, in the same buckets prom-client would have
 * put them in.
 */
export class DurationBatch {
  /** Per bucket, the last one for values above every bound (they count in sum and count only, as in prom-client). */
  private readonly counts: number[];
  private n = 0;
  private sum = 0;
  private lastValue = 0;
  private lastBucket = 0;

  private constructor(
    private readonly histogram: Histogram<string>,
    private readonly bounds: readonly number[],
    private readonly labels: Labels,
    private readonly child: { observe(v: number): void },
  ) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  /**
   * An observer for one label set: batched and registered in `pending` (the
   * histogram's collect flushes them) where prom-client allows it, else the
   * plain child. `bounds` are the histogram's buckets.
   */
  static for(histogram: Histogram<string>, bounds: readonly number[], labels: Labels, pending: Set<DurationBatch>): { observe(v: number): void } {
    const child = histogram.labels(labels);
    if (!BATCHABLE) return child;
    const batch = new DurationBatch(histogram, bounds, labels, child);
    pending.add(batch);
    return batch;
  }

  observe(v: number): void {
    // prom-client refuses these with a TypeError: let it, as it did.
    if (!Number.isFinite(v)) return this.child.observe(v);
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && v > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.n++;
    this.lastValue = v;
    this.lastBucket = i;
  }

  flush(): void {
    if (this.n === 0) return;
    // One observation through prom-client creates the series where it does not exist yet (the first
    // flush, or after a registry reset); the others are added to it.
    this.child.observe(this.lastValue);
    this.counts[this.lastBucket]!--;
    const series = seriesOf(this.histogram, this.labels);
    if (series !== undefined) {
      for (let i = 0; i < this.bounds.length; i++) series.bucketValues[String(this.bounds[i])]! += this.counts[i]!;
      series.sum += this.sum - this.lastValue;
      series.count += this.n - 1;
    }
    this.counts.fill(0);
    this.n = 0;
    this.sum = 0;
  }
}
