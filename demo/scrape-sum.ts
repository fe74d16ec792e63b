import { parsePromText, sumSamples } from '../lib/metrics/prom-text.ts';

/**
 * The sum of one metric's samples over several services' /metrics, as a
 * report figure (the routers run as processes, so their counters are read
 * the way Prometheus would). A service that does not answer counts 0.
 *
 * @example
 *   await scrapeSum(routerUrls, 'router_events_delivered_total')
 *   await scrapeSum(routerUrls, 'router_event_source', { source: 'harpoon' })   // routers on Harpoon's stream
 */
export async function scrapeSum(urls: readonly string[], metric: string, labels: Record<string, string> = {}): Promise<number> {
  const values = await Promise.all(
    urls.map(async (url) => {
      try {
        const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
        if (!res.ok) return 0;
        return sumSamples(parsePromText(await res.text()).samples, metric, labels) ?? 0;
      } catch {
        return 0;
      }
    }),
  );
  return values.reduce((a, b) => a + b, 0);
}
