import type { Logger } from '../lib/logger.ts';
import { schedulerError } from './errors.ts';
import { hostMetricsFromSamples, type HostMetrics } from '../lib/metrics/host-metrics.ts';
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
  /** Scrapes every endpoint now (an endpoint's scrape already running is joined, not duplicated). */
  scrapeNow(): Promise<void>;
  /**
   * Scrapes the endpoints whose last scrape finished `maxAgeMs` ago or more; with `regions` (slugs), only
   * those that serve one of them (and those not yet known to serve any region).
   */
  ensureFresh(maxAgeMs: number, regions?: ReadonlySet<string>): Promise<void>;
  /** Every hypervisor seen, by name; where two endpoints report one, the newer report wins. */
  hosts(): ReadonlyMap<string, HostMetrics>;
  status(): EndpointStatus[];
  /**
   * Scrapes in the background every `intervalMs`. With `focus` (the region slugs the replica places in now,
   * undefined for all), endpoints serving none of them are scraped only every `othersEveryMs`: fresh enough
   * never to be stale, at a fraction of the cost when replicas split the regions between them.
   */
  start(intervalMs: number, options?: { focus?: () => ReadonlySet<string> | undefined; othersEveryMs?: number }): void;
  close(): void;
}

interface EndpointState {
  endpoint: MetricsEndpoint;
  snapshot: Map<string, HostMetrics>;
  status: EndpointStatus;
  /** Regions of the hosts it reported last (undefined until its first successful scrape). */
  regions: Set<string> | undefined;
  /** Date.now() when its last scrape (good or failed) finished. */
  finishedMs: number;
  running: Promise<void> | undefined;
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
  const state: EndpointState[] = options.endpoints.map((endpoint) => ({
    endpoint,
    snapshot: new Map(),
    status: { name: endpoint.name, hosts: 0, incomplete: 0 },
    regions: undefined,
    finishedMs: 0,
    running: undefined,
  }));
  let merged = new Map<string, HostMetrics>();
  let timer: NodeJS.Timeout | undefined;

  async function fetchOne(entry: EndpointState): Promise<void> {
    const { endpoint } = entry;
    const started = performance.now();
    try {
      const res = await fetch(endpoint.url, { signal: AbortSignal.timeout(options.timeoutMs), headers: { accept: 'text/plain' } });
      const text = await res.text();
      if (res.status !== 200) throw schedulerError('SCHEDULER_ERR_SCRAPE_FAILED', `endpoint ${endpoint.name} answered ${res.status}`);
      const { hosts, incomplete } = hostMetricsFromSamples(parsePromText(text).samples);
      entry.snapshot = hosts;
      entry.regions = new Set([...hosts.values()].map((h) => h.region));
      entry.status = { name: endpoint.name, last_success_ms: Date.now(), hosts: hosts.size, incomplete: incomplete.length };
      options.observer?.scraped(endpoint.name, (performance.now() - started) / 1000, true);
    } catch (err) {
      const message = (err as Error).message;
      entry.status = { ...entry.status, last_error: message };
      options.observer?.scraped(endpoint.name, (performance.now() - started) / 1000, false);
      options.logger.warn({ code: 'SCHEDULER_ERR_SCRAPE_FAILED', endpoint: endpoint.name, err: message }, 'host-metrics scrape failed; keeping the last snapshot');
    } finally {
      entry.finishedMs = Date.now();
    }
  }

  function scrapeOne(entry: EndpointState): Promise<void> {
    entry.running ??= fetchOne(entry).finally(() => {
      entry.running = undefined;
    });
    return entry.running;
  }

  function merge(): void {
    const next = new Map<string, HostMetrics>();
    for (const { snapshot } of state) {
      for (const [name, host] of snapshot) {
        const seen = next.get(name);
        if (!seen || seen.last_report_ms < host.last_report_ms) next.set(name, host);
      }
    }
    merged = next;
  }

  async function scrape(entries: EndpointState[]): Promise<void> {
    if (entries.length === 0) return;
    await Promise.all(entries.map(scrapeOne));
    merge();
  }

  const serves = (entry: EndpointState, regions: ReadonlySet<string> | undefined) =>
    regions === undefined || entry.regions === undefined || [...entry.regions].some((r) => regions.has(r));

  return {
    scrapeNow: () => scrape(state),
    async ensureFresh(maxAgeMs, regions) {
      const now = Date.now();
      await scrape(state.filter((e) => serves(e, regions) && now - e.finishedMs >= maxAgeMs));
    },
    hosts: () => merged,
    status: () => state.map((s) => ({ ...s.status })),
    start(intervalMs, startOptions = {}) {
      const othersEveryMs = Math.max(intervalMs, startOptions.othersEveryMs ?? intervalMs);
      const tick = () => {
        const focus = startOptions.focus?.();
        const now = Date.now();
        // Endpoints in focus every tick; the others once they are othersEveryMs old (a tick's slack included).
        const due = state.filter((e) => serves(e, focus) || now - e.finishedMs >= othersEveryMs - intervalMs / 2);
        void scrape(due).finally(() => {
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
