import { cutoverError } from './errors.ts';
import type { FetchLike, GateReading } from './gates.ts';
import type { PrometheusGate } from './plan.ts';
import { boundedReading } from './providers.ts';
import { parseValue } from '../../lib/metrics/prom-text.ts';

/** An answer bigger than this is a query that selects far too much, not a gate. */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

interface PromAnswer {
  status?: string;
  error?: string;
  errorType?: string;
  data?: { resultType?: string; result?: unknown };
}

/**
 * The numbers an instant query answered: one per sample of a vector, one for a scalar;
 * NaN samples (0/0 of an idle rate) are left out, so an idle ratio reads as no data.
 */
export function promValues(answer: PromAnswer): number[] {
  const data = answer.data;
  if (!data || typeof data !== 'object') throw cutoverError('CUTOVER_ERR_PROVIDER', 'Prometheus answered without data');
  const toNumber = (pair: unknown): number | undefined => (Array.isArray(pair) && typeof pair[1] === 'string' ? parseValue(pair[1]) : undefined);
  let values: Array<number | undefined>;
  switch (data.resultType) {
    case 'vector':
      values = Array.isArray(data.result) ? data.result.map((s: { value?: unknown }) => toNumber(s?.value)) : [];
      break;
    case 'scalar':
      values = [toNumber(data.result)];
      break;
    default:
      throw cutoverError('CUTOVER_ERR_PROVIDER', `the query answered a ${String(data.resultType)}; a gate needs an instant vector or a scalar (no range selector at the top level)`);
  }
  return values.filter((v): v is number => v !== undefined && !Number.isNaN(v));
}

/**
 * Runs a prometheus gate's PromQL at the server's `/api/v1/query` (now) and judges the
 * aggregate of the samples against its bounds.
 *
 * @example
 *   await queryPrometheus({ kind: 'prometheus', service: 'prometheus', query: 'max(router_pending_events)', max: 1000 }, base, { baseUrl: 'http://127.0.0.1:9090', fetch, timeoutMs: 2000 });
 */
export async function queryPrometheus(
  gate: PrometheusGate,
  base: Pick<GateReading, 'gate' | 'kind' | 'service'>,
  options: { baseUrl: string; fetch: FetchLike; timeoutMs: number },
): Promise<GateReading> {
  const url = new URL('api/v1/query', options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`);
  url.searchParams.set('query', gate.query);
  let text: string;
  let status: number;
  try {
    const res = await options.fetch(url.toString(), { signal: AbortSignal.timeout(options.timeoutMs), headers: { accept: 'application/json' } });
    status = res.status;
    text = await res.text();
  } catch (cause) {
    const why = (cause as Error).name === 'TimeoutError' ? `no answer within ${options.timeoutMs} ms` : (cause as Error).message;
    throw cutoverError('CUTOVER_ERR_PROVIDER', `Prometheus at ${url.host} (service ${gate.service}): ${why}`, {}, cause);
  }
  if (text.length > MAX_ANSWER_BYTES) throw cutoverError('CUTOVER_ERR_PROVIDER', `Prometheus at ${url.host} answered over ${MAX_ANSWER_BYTES} bytes; narrow the query`);
  let answer: PromAnswer;
  try {
    answer = JSON.parse(text) as PromAnswer;
  } catch (cause) {
    throw cutoverError('CUTOVER_ERR_PROVIDER', `Prometheus at ${url.host} answered HTTP ${status} that is not JSON; is service ${gate.service} a Prometheus server?`, {}, cause);
  }
  if (answer.status !== 'success') {
    throw cutoverError('CUTOVER_ERR_PROVIDER', `Prometheus refused the query (HTTP ${status}, ${answer.errorType ?? 'error'}): ${answer.error ?? 'no message'}`);
  }
  const values = promValues(answer);
  const agg = gate.aggregate ?? 'max';
  if (values.length === 0) {
    return { ...base, threshold: { ...(gate.max !== undefined ? { max: gate.max } : {}), ...(gate.min !== undefined ? { min: gate.min } : {}) }, verdict: 'no-data', value: null, message: `the query returned no samples: ${clip(gate.query)}` };
  }
  const value =
    agg === 'sum' ? values.reduce((a, b) => a + b, 0) :
    agg === 'min' ? Math.min(...values) :
    agg === 'avg' ? values.reduce((a, b) => a + b, 0) / values.length :
    Math.max(...values);
  return boundedReading(base, value, gate, `${agg} of ${values.length} sample${values.length === 1 ? '' : 's'} of ${clip(gate.query)}`);
}

function clip(text: string): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > 100 ? `${one.slice(0, 97)}...` : one;
}
