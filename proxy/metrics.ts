import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { DurationBatch } from './duration-batch.ts';

export type Side = 'legacy' | 'new';

const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The proxy's metrics. Names and labels are a fixed interface (the cutover
 * gates read them):
 * - proxy_requests_total{feature,route,target,status}
 * - proxy_request_duration_seconds{feature,target} (streams excluded)
 * - proxy_upstream_errors_total{feature,target,code}
 * - proxy_upstream_healthy{feature,target,instance}
 * - proxy_open_streams
 * - proxy_shadow_comparisons_total{feature,route,result="match|mismatch|error"}
 * - proxy_shadow_skipped_total{feature,route,reason}
 * Requests refused before a target was chosen carry target="none".
 */
export function createProxyMetrics(registry: Registry) {
  /** Request counts kept by each route and added to the counter when it is read (see RouteMetrics). */
  const pending = new Set<RouteMetrics>();
  const requests = new Counter({
    name: 'proxy_requests_total',
    help: 'Requests answered by the proxy, by feature, route pattern, target side (legacy|new|none) and status code.',
    labelNames: ['feature', 'route', 'target', 'status'] as const,
    registers: [registry],
    collect() {
      for (const route of pending) route.flush();
    },
  });
  /** Durations kept by each route and added to the histogram when it is read (see DurationBatch). */
  const pendingDurations = new Set<DurationBatch>();
  const duration = new Histogram({
    name: 'proxy_request_duration_seconds',
    help: 'Time from the request to the end of the answer, by feature and target side (event streams excluded).',
    labelNames: ['feature', 'target'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
    collect() {
      for (const batch of pendingDurations) batch.flush();
    },
  });
  const upstreamErrors = new Counter({
    name: 'proxy_upstream_errors_total',
    help: 'Failed attempts to reach an upstream (each failover attempt counts), by feature, target side and PROXY_ERR_ code.',
    labelNames: ['feature', 'target', 'code'] as const,
    registers: [registry],
  });
  const panicRouted = new Counter({
    name: 'proxy_panic_routed_total',
    help: 'Requests sent to an instance failing its health checks because every instance of the pool was failing them (panic routing), by feature and target side.',
    labelNames: ['feature', 'target'] as const,
    registers: [registry],
  });
  const healthy = new Gauge({
    name: 'proxy_upstream_healthy',
    help: '1 when the upstream instance passes its health checks and is in the rotation, else 0.',
    labelNames: ['feature', 'target', 'instance'] as const,
    registers: [registry],
    // In a cluster, an instance counts as healthy only if every worker sees it so.
    aggregator: 'min',
  });
  const openStreams = new Gauge({
    name: 'proxy_open_streams',
    help: 'Event streams (text/event-stream answers) being relayed right now.',
    registers: [registry],
  });
  const shadowComparisons = new Counter({
    name: 'proxy_shadow_comparisons_total',
    help: 'Shadowed requests by outcome: match, mismatch (after the ignore rules), or error (the copy failed or was too large).',
    labelNames: ['feature', 'route', 'result'] as const,
    registers: [registry],
  });
  const shadowSkipped = new Counter({
    name: 'proxy_shadow_skipped_total',
    help: 'Requests in shadow mode that were not copied, by reason (overload, stream, legacy_failed, body_too_large).',
    labelNames: ['feature', 'route', 'reason'] as const,
    registers: [registry],
  });
  return { requests, duration, upstreamErrors, panicRouted, healthy, openStreams, shadowComparisons, shadowSkipped, pending, pendingDurations };
}

export type ProxyMetrics = ReturnType<typeof createProxyMetrics>;

/**
 * One route and side's metrics, on the path every proxied request takes.
 * prom-client hashes the label set on every call, even on a child from
 * `.labels()`, so requests are counted here in a plain number per status and
 * handed to proxy_requests_total when the registry is read (its `collect`),
 * and durations likewise (DurationBatch): a scrape, or a cluster primary
 * asking its workers, always sees every request answered so far.
 */
export class RouteMetrics {
  private readonly byStatus = new Map<number, { child: { inc(n: number): void }; n: number }>();
  readonly duration: { observe(v: number): void };

  constructor(
    private readonly metrics: ProxyMetrics,
    readonly feature: string,
    readonly route: string,
    readonly target: Side | 'none',
  ) {
    this.duration = DurationBatch.for(metrics.duration, DURATION_BUCKETS, { feature, target }, metrics.pendingDurations);
    metrics.pending.add(this);
  }

  count(status: number): void {
    let entry = this.byStatus.get(status);
    if (!entry) {
      const child = this.metrics.requests.labels({ feature: this.feature, route: this.route, target: this.target, status: String(status) });
      // Created at zero now, so the series exists from the first answer on.
      child.inc(0);
      entry = { child, n: 0 };
      this.byStatus.set(status, entry);
    }
    entry.n++;
  }

  flush(): void {
    for (const entry of this.byStatus.values()) {
      if (entry.n === 0) continue;
      entry.child.inc(entry.n);
      entry.n = 0;
    }
  }
}
