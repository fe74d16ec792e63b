import { collectDefaultMetrics, type Registry } from 'prom-client';

/**
 * prom-client's gauges that end in `_total`, which `promtool check metrics`
 * rejects ("non-counter metrics should not have _total suffix"). Each is the
 * sum of a labelled gauge that stays (`nodejs_active_handles{type}`, …).
 */
const LINT_FAILING = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * The process metrics (CPU, memory, event loop lag, GC) on a service's own
 * registry, minus the series Prometheus' linter refuses.
 *
 * @example
 *   const registry = new Registry();
 *   collectProcessMetrics(registry); // process_cpu_seconds_total, nodejs_eventloop_lag_seconds, …
 */
export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of LINT_FAILING) registry.removeSingleMetric(name);
}
