import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The scrape jobs of dashboards/prometheus.yml, one file_sd file each. */
export const SCRAPE_JOBS = ['monitor', 'cloud', 'scheduler-v1', 'fleet', 'proxy', 'proxy-admin', 'event-router', 'scheduler-v2', 'harpoon'] as const;
export type ScrapeJob = (typeof SCRAPE_JOBS)[number];

export interface ScrapeTarget {
  job: ScrapeJob;
  /** The service's base URL (its /metrics is scraped). */
  url: string;
  /** Extra target labels, e.g. `{ region: 'nyc1' }`. */
  labels?: Record<string, string>;
}

/**
 * Writes Prometheus file_sd target files (`<dir>/<job>.json`) for the
 * services that are running, so dashboards/prometheus.yml scrapes exactly
 * them. Every job gets a file (an empty list when nothing runs for it), and
 * each file is replaced atomically, as Prometheus re-reads them on change.
 *
 * @example
 *   await writeScrapeTargets('out/prometheus-targets', [{ job: 'monitor', url: 'http://127.0.0.1:9104' }]);
 *   // out/prometheus-targets/monitor.json: [{"targets":["127.0.0.1:9104"],"labels":{}}]
 */
export async function writeScrapeTargets(dir: string, targets: ScrapeTarget[]): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const job of SCRAPE_JOBS) {
    const groups = targets
      .filter((t) => t.job === job)
      .map((t) => ({ targets: [new URL(t.url).host], labels: { ...t.labels } }));
    const file = join(dir, `${job}.json`);
    await writeFile(`${file}.tmp`, JSON.stringify(groups, null, 2) + '\n');
    await rename(`${file}.tmp`, file);
    written.push(file);
  }
  return written;
}
