import { parsePromText } from '../../lib/metrics/prom-text.ts';
import { metricsUrl, type FetchLike, type ServiceMap } from './gates.ts';
import { gateName, isScrapeGate, type CutoverPlan, type Gate, type ScrapeGate } from './plan.ts';
import { queryPrometheus } from './provider-prometheus.ts';
import { readWebValue } from './provider-web.ts';
import { parseSelector } from './selectors.ts';

/** The selector fields of each scrape gate kind, and whether the field names a histogram. */
const SELECTOR_FIELDS: Record<ScrapeGate['kind'], Array<{ field: string; histogram?: boolean }>> = {
  error_rate: [{ field: 'errors' }, { field: 'total' }],
  shadow_mismatch_rate: [{ field: 'mismatches' }, { field: 'total' }],
  latency: [{ field: 'histogram', histogram: true }],
  gauge: [{ field: 'metric' }],
};

/** What one URL's /metrics names: sample names and `# TYPE` families (a labelled counter never incremented has only the latter). */
interface Served {
  url: string;
  names: Set<string>;
}

function urlsOf(services: ServiceMap, service: string): string[] {
  const v = Object.hasOwn(services, service) ? services[service] : undefined;
  return v === undefined ? [] : typeof v === 'string' ? [v] : [...v];
}

/**
 * Checks a valid plan against the running services a config names: every
 * scrape gate's metrics are served on its service's /metrics (each URL),
 * every Prometheus gate's query returns samples, every web gate's path
 * answers a value. Returns one problem per line, each naming the gate's JSON
 * path (`features.catalog.steps[1].gates[0].errors: …`); database gates
 * (invariant, budget) are read by the admin itself and not checked here.
 *
 * @example
 *   const problems = await checkPlanServed(plan, config.services ?? {});
 *   if (problems.length) process.exitCode = 2;
 */
export async function checkPlanServed(plan: CutoverPlan, services: ServiceMap, options: { fetch?: FetchLike; timeoutMs?: number } = {}): Promise<string[]> {
  const doFetch: FetchLike = options.fetch ?? ((url, init) => fetch(url, init));
  const timeoutMs = options.timeoutMs ?? 5000;
  const scrapes = new Map<string, Promise<Served>>();
  const scrape = (base: string): Promise<Served> => {
    let p = scrapes.get(base);
    if (!p) {
      p = (async () => {
        const url = metricsUrl(base);
        const res = await doFetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'text/plain;version=0.0.4' } });
        if (!res.ok) throw new Error(`GET ${url} answered HTTP ${res.status}`);
        const parsed = parsePromText(await res.text());
        return { url, names: new Set([...parsed.samples.map((s) => s.name), ...parsed.types.keys()]) };
      })();
      p.catch(() => undefined);
      scrapes.set(base, p);
    }
    return p;
  };
  const problems: string[] = [];
  const checkGate = async (path: string, gate: Gate, name: string): Promise<void> => {
    const service = gate.service ?? 'database';
    if (gate.kind === 'invariant' || gate.kind === 'budget') return;
    const urls = urlsOf(services, service);
    if (urls.length === 0) {
      problems.push(`${path}.service: gate ${name} reads service "${service}", which the config's "services" does not name (add "${service}": "http://host:port")`);
      return;
    }
    if (isScrapeGate(gate)) {
      for (const base of urls) {
        let served: Served;
        try {
          served = await scrape(base);
        } catch (err) {
          problems.push(`${path}.service: service "${service}" at ${base} did not serve /metrics: ${(err as Error).message}`);
          continue;
        }
        for (const { field, histogram } of SELECTOR_FIELDS[gate.kind]) {
          const metric = parseSelector((gate as unknown as Record<string, string>)[field]!).metric;
          const found = histogram ? served.names.has(`${metric}_bucket`) || served.names.has(metric) : served.names.has(metric);
          if (!found) problems.push(`${path}.${field}: metric "${metric}" is not served by service "${service}" (${served.url} has ${served.names.size} metric names, none of them this one)`);
        }
      }
      return;
    }
    const base = { gate: name, kind: gate.kind, service };
    for (const baseUrl of urls) {
      try {
        const reading = gate.kind === 'prometheus' ? await queryPrometheus(gate, base, { baseUrl, fetch: doFetch, timeoutMs }) : await readWebValue(gate, base, { baseUrl, fetch: doFetch, timeoutMs });
        if (reading.verdict === 'no-data') problems.push(`${path}.${gate.kind === 'prometheus' ? 'query' : 'json_path'}: ${reading.message} (service "${service}" at ${baseUrl})`);
      } catch (err) {
        problems.push(`${path}.${gate.kind === 'prometheus' ? 'query' : 'path'}: ${(err as Error).message}`);
      }
    }
  };
  const checks: Array<Promise<void>> = [];
  for (const [feature, spec] of Object.entries(plan.features)) {
    spec?.steps.forEach((step, i) => {
      step.gates.forEach((gate, j, all) => checks.push(checkGate(`features.${feature}.steps[${i}].gates[${j}]`, gate, gateName(gate, j, all))));
    });
  }
  await Promise.all(checks);
  return problems.sort();
}
