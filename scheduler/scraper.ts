import type { Logger } from '../lib/logger.ts';
import { schedulerError } from './errors.ts';
import { hostMetricsFromSamples, type HostMetrics } from './host-metrics.ts';
import { parsePromText } from '../lib/metrics/prom-text.ts';

/** A host-metrics endpoint (normally one per region). `name` labels metrics and logs; the URL never does. */
export interface MetricsEndpoint {
  name: string;
  url: string;
}

export interface EndpointStatus {
  name: string;
  /** Date.now() of the last successful scrape, if any. */
  last_success_ms?: number;
  last_error?: string;
  hosts: number;
  incomplete: number;
}

export interface ScrapeObserver {
  scraped(endpoint: string, seconds: number, ok: boolean): void;
}

export interface HostScraper {
  /** Scrapes every endpoint now (a scrape already running is joined, not duplicated). */
  scrapeNow(): Promise<void>;
  /** Scrapes unless the last complete round finished less than `maxAgeMs` ago. */
  ensureFresh(maxAgeMs: number): Promise<void>;
  /** Every hypervisor seen, by name; where two endpoints report one, the newer report wins. */
  hosts(): ReadonlyMap<string, HostMetrics>;
  status(): EndpointStatus[];
  start(intervalMs: number): void;
  close(): void;
}

/**
 * Scrapes the regions' host-metrics endpoints (scheduler/HOST_METRICS.md).
 * A failed endpoint keeps its last good snapshot: its hosts then age past
 * `maxStalenessMs` and stop being chosen, which is the safe direction.
 */
export function createHostScraper(options: {
  endpoints: MetricsEndpoint[];
  timeoutMs: number;
  logger: Logger;
  observer?: ScrapeObserver;
}): HostScraper {
  const state = new Map<string, { snapshot: Map<string, HostMetrics>; status: EndpointStatus }>(
    options.endpoints.map((e) => [e.name, { snapshot: new Map(), status: { name: e.name, hosts: 0, incomplete: 0 } }]),
  );
  let merged = new Map<string, HostMetrics>();
  let lastRoundMs = 0;
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  async function scrapeOne(endpoint: MetricsEndpoint): Promise<void> {
    const entry = state.get(endpoint.name)!;
    const started = performance.now();
    try {
      const res = await fetch(endpoint.url, { signal: AbortSignal.timeout(options.timeoutMs), headers: { accept: 'text/plain' } });
      const text = await res.text();
      if (res.status !== 200) throw schedulerError('SCHEDULER_ERR_SCRAPE_FAILED', `endpoint ${endpoint.name} answered ${res.status}`);
      const { hosts, incomplete } = hostMetricsFromSamples(parsePromText(text).samples);
      entry.snapshot = hosts;
      entry.status = { name: endpoint.name, last_success_ms: Date.now(), hosts: hosts.size, incomplete: incomplete.length };
      options.observer?.scraped(endpoint.name, (performance.now() - started) / 1000, true);
    } catch (err) {
      const message = (err as Error).message;
      entry.status = { ...entry.status, last_error: message };
      options.observer?.scraped(endpoint.name, (performance.now() - started) / 1000, false);
      options.logger.warn({ code: 'SCHEDULER_ERR_SCRAPE_FAILED', endpoint: endpoint.name, err: message }, 'host-metrics scrape failed; keeping the last snapshot');
    }
  }

  function merge(): void {
    const next = new Map<string, HostMetrics>();
    for (const { snapshot } of state.values()) {
      for (const [name, host] of snapshot) {
        const seen = next.get(name);
        if (!seen || seen.last_report_ms < host.last_report_ms) next.set(name, host);
      }
    }
    merged = next;
  }

  function scrapeNow(): Promise<void> {
    running ??= Promise.all(options.endpoints.map(scrapeOne))
      .then(() => {
        merge();
        lastRoundMs = Date.now();
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  }

  return {
    scrapeNow,
    async ensureFresh(maxAgeMs) {
      if (Date.now() - lastRoundMs >= maxAgeMs) await scrapeNow();
    },
    hosts: () => merged,
    status: () => [...state.values()].map((s) => ({ ...s.status })),
    start(intervalMs) {
      const tick = () => {
        void scrapeNow().finally(() => {
          if (timer !== undefined) timer = setTimeout(tick, intervalMs);
        });
      };
      timer = setTimeout(tick, 0);
    },
    close() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
