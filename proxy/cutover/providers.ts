import type { Knex } from 'knex';
import { cutoverError } from './errors.ts';
import type { FetchLike, GateReading, ServiceMap } from './gates.ts';
import { createBudgetProvider } from './provider-budget.ts';
import { createInvariantProvider } from './provider-invariants.ts';
import { queryPrometheus } from './provider-prometheus.ts';
import { readWebValue } from './provider-web.ts';
import { gateService, type Gate, type ScrapeGate } from './plan.ts';

/**
 * Metric providers other than the built-in scrape of `/metrics`: a
 * Prometheus server (PromQL over /api/v1/query), any endpoint answering
 * JSON, and the database itself (invariants, connection/polling budget).
 * Each answers a GateReading; a provider that cannot answer reads `error`,
 * and an empty answer reads `no-data`, neither of which ever rolls back.
 */

export type ProviderGate = Exclude<Gate, ScrapeGate>;

export interface GateProviders {
  evaluate(gate: ProviderGate, name: string): Promise<GateReading>;
}

export interface GateProvidersOptions {
  /** service name → base URL(s); prometheus and web gates use the first URL of theirs. */
  services: ServiceMap;
  /** Per request. Default 2000 ms. */
  timeoutMs?: number;
  fetch?: FetchLike;
  /**
   * A connection that may read PROCESSLIST (PROCESS) and, for invariants, SELECT on events,
   * event_executions, servers, droplets and sizes. Without it, invariant and budget gates read `error`.
   */
  observer?: Knex;
  /** What each host keeps for itself (over-committed hosts). Default none. */
  hostReserved?: { memory: number; disk: number };
}

/** A reading of one number against a gate's min/max. */
export function boundedReading(
  base: Pick<GateReading, 'gate' | 'kind' | 'service'>,
  value: number,
  bounds: { max?: number | undefined; min?: number | undefined },
  what: string,
): GateReading {
  const threshold = { ...(bounds.max !== undefined ? { max: bounds.max } : {}), ...(bounds.min !== undefined ? { min: bounds.min } : {}) };
  const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toPrecision(4));
  const tooHigh = bounds.max !== undefined && value > bounds.max;
  const tooLow = bounds.min !== undefined && value < bounds.min;
  const bound = tooHigh
    ? `> max ${fmt(bounds.max!)}`
    : tooLow
      ? `< min ${fmt(bounds.min!)}`
      : [bounds.min !== undefined ? `>= min ${fmt(bounds.min)}` : '', bounds.max !== undefined ? `<= max ${fmt(bounds.max)}` : ''].filter(Boolean).join(' and ');
  return { ...base, threshold, verdict: tooHigh || tooLow ? 'fail' : 'pass', value, message: `${what} = ${fmt(value)} ${bound}` };
}

/** The reading of a gate whose provider could not answer (never rolls back). */
export function errorReading(base: Pick<GateReading, 'gate' | 'kind' | 'service' | 'threshold'>, err: unknown): GateReading {
  return { ...base, verdict: 'error', value: null, message: (err as Error).message };
}

/**
 * @example
 *   const providers = createGateProviders({ services: { prometheus: 'http://127.0.0.1:9090' }, observer: monitorKnex });
 *   const reading = await providers.evaluate({ kind: 'prometheus', service: 'prometheus', query: 'up', min: 1 }, 'targets-up');
 */
export function createGateProviders(options: GateProvidersOptions): GateProviders {
  const timeoutMs = options.timeoutMs ?? 2000;
  const doFetch: FetchLike = options.fetch ?? ((url, init) => fetch(url, init));
  const invariants = options.observer ? createInvariantProvider({ db: options.observer, hostReserved: options.hostReserved ?? { memory: 0, disk: 0 } }) : undefined;
  const budget = options.observer ? createBudgetProvider({ db: options.observer }) : undefined;
  const baseUrl = (service: string): string => {
    const v = Object.hasOwn(options.services, service) ? options.services[service] : undefined;
    const url = typeof v === 'string' ? v : v?.[0];
    if (!url) throw cutoverError('CUTOVER_ERR_SCRAPE', `service ${service} has no URL in the services map`);
    return url;
  };
  return {
    async evaluate(gate, name) {
      const base = { gate: name, kind: gate.kind, service: gateService(gate) };
      const threshold = 'max' in gate || 'min' in gate ? { ...(gate.max !== undefined ? { max: gate.max } : {}), ...('min' in gate && gate.min !== undefined ? { min: gate.min } : {}) } : {};
      try {
        switch (gate.kind) {
          case 'prometheus':
            return await queryPrometheus(gate, base, { baseUrl: baseUrl(gate.service), fetch: doFetch, timeoutMs });
          case 'web':
            return await readWebValue(gate, base, { baseUrl: baseUrl(gate.service), fetch: doFetch, timeoutMs });
          case 'invariant':
            if (!invariants) throw cutoverError('CUTOVER_ERR_PROVIDER', 'no database observer is configured in this admin (invariant gates need one)');
            return await invariants.evaluate(gate, base);
          case 'budget':
            if (!budget) throw cutoverError('CUTOVER_ERR_PROVIDER', 'no database observer is configured in this admin (budget gates need one)');
            return await budget.evaluate(gate, base);
        }
      } catch (err) {
        return errorReading({ ...base, threshold }, err);
      }
    },
  };
}
