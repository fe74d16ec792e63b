import type { FeatureName } from '../../lib/cutover/types.ts';
import type { Scraper } from './gates.ts';

/**
 * Shadow agreement as `strangler cutover status` shows it: for a feature
 * whose new side judges the legacy side's decisions itself (Scheduler V2 in
 * shadow mode recomputes every placement V1 makes), the counters that side
 * exports, summed over its instances and broken down by category.
 */
export interface ShadowSummary {
  service: string;
  metric: string;
  /** Instances that answered (every replica judges every decision, so counts add up over replicas). */
  instances: number;
  judged: number;
  agree: number;
  differ: number;
  /** agree / judged; null before the first judgement. */
  agreement_ratio: number | null;
  /** Differences by category (`ranked-lower`, `filtered-metrics-stale`, …), largest first. */
  by_category: Record<string, number>;
  /** Agreements other than exact ones by category (`earlier-read`: V2 agrees as of a moment V1 may have read its rows), largest first. */
  agree_by_category: Record<string, number>;
  /** Set when the service could not be scraped (the counts are then 0). */
  error?: string;
}

/** Features whose shadow mode is judged by the new service, and the counter it exports (scheduler/README.md#shadow-mode). */
export const SHADOW_SOURCES: Partial<Record<FeatureName, { service: string; metric: string }>> = {
  scheduling: { service: 'scheduler', metric: 'scheduler_v2_shadow_decisions_total' },
};

/**
 * Scrapes the shadow counters of every feature in SHADOW_SOURCES whose
 * service the scraper knows (others are left out).
 *
 * @example
 *   const shadow = await readShadowSummaries(scraper); // { scheduling: { agreement_ratio: 0.97, by_category: { 'ranked-lower': 3 }, … } }
 */
export async function readShadowSummaries(scraper: Scraper): Promise<Partial<Record<FeatureName, ShadowSummary>>> {
  const out: Partial<Record<FeatureName, ShadowSummary>> = {};
  await Promise.all(
    (Object.entries(SHADOW_SOURCES) as Array<[FeatureName, { service: string; metric: string }]>).map(async ([feature, src]) => {
      if (!scraper.configured(src.service)) return;
      const summary: ShadowSummary = { ...src, instances: 0, judged: 0, agree: 0, differ: 0, agreement_ratio: null, by_category: {}, agree_by_category: {} };
      out[feature] = summary;
      try {
        const scrape = await scraper.scrape(src.service);
        const instances = new Set<string>();
        const categories: Record<string, number> = {};
        const agreed: Record<string, number> = {};
        for (const s of scrape.samples) {
          // Every instance that answered counts, also one that has judged nothing yet (no series of the counter).
          instances.add(s.labels.instance ?? '');
          if (s.name !== src.metric || !Number.isFinite(s.value)) continue;
          if (s.labels.result === 'agree') {
            summary.agree += s.value;
            const c = s.labels.category ?? 'none';
            if (c !== 'none') agreed[c] = (agreed[c] ?? 0) + s.value;
          } else if (s.labels.result === 'differ') {
            summary.differ += s.value;
            const c = s.labels.category ?? 'unknown';
            categories[c] = (categories[c] ?? 0) + s.value;
          }
        }
        summary.instances = instances.size;
        summary.judged = summary.agree + summary.differ;
        summary.agreement_ratio = summary.judged > 0 ? summary.agree / summary.judged : null;
        const largestFirst = (counts: Record<string, number>) => Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]));
        summary.by_category = largestFirst(categories);
        summary.agree_by_category = largestFirst(agreed);
      } catch (err) {
        summary.error = (err as Error).message;
      }
    }),
  );
  return out;
}
