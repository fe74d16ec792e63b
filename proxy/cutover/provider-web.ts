import { cutoverError } from './errors.ts';
import type { FetchLike, GateReading } from './gates.ts';
import type { WebGate } from './plan.ts';
import { boundedReading } from './providers.ts';

const MAX_ANSWER_BYTES = 1024 * 1024;

/** `data.items[0].value` (a leading `$.` allowed) → ['data', 'items', 0, 'value']. */
export function parseJsonPath(path: string): Array<string | number> {
  const body = path.replace(/^\$\.?/, '');
  const out: Array<string | number> = [];
  for (const m of body.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  return out;
}

/** The value at `path` in `doc`, or undefined when any part of the path is missing. */
export function atJsonPath(doc: unknown, path: string): unknown {
  let cur: unknown = doc;
  for (const part of parseJsonPath(path)) {
    if (typeof part === 'number') cur = Array.isArray(cur) ? cur[part] : undefined;
    else cur = typeof cur === 'object' && cur !== null && !Array.isArray(cur) && Object.hasOwn(cur, part) ? (cur as Record<string, unknown>)[part] : undefined;
    if (cur === undefined) return undefined;
  }
  return cur;
}

/**
 * GETs the web gate's URL (the service's base URL + `path`) and judges the number at
 * `json_path`: a missing value (or null) is no-data; a non-2xx answer, a body that is not
 * JSON, or a value that is not a number is an error.
 *
 * @example
 *   await readWebValue({ kind: 'web', service: 'queue', path: '/stats', json_path: 'backlog', max: 100 }, base, { baseUrl, fetch, timeoutMs: 2000 });
 */
export async function readWebValue(
  gate: WebGate,
  base: Pick<GateReading, 'gate' | 'kind' | 'service'>,
  options: { baseUrl: string; fetch: FetchLike; timeoutMs: number },
): Promise<GateReading> {
  const url = new URL(gate.path.replace(/^\//, ''), options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`);
  let text: string;
  try {
    const res = await options.fetch(url.toString(), { signal: AbortSignal.timeout(options.timeoutMs), headers: { accept: 'application/json' } });
    text = await res.text();
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
  } catch (cause) {
    const why = (cause as Error).name === 'TimeoutError' ? `no answer within ${options.timeoutMs} ms` : (cause as Error).message;
    throw cutoverError('CUTOVER_ERR_PROVIDER', `GET ${url.host}${url.pathname} (service ${gate.service}) failed: ${why}`, {}, cause);
  }
  if (text.length > MAX_ANSWER_BYTES) throw cutoverError('CUTOVER_ERR_PROVIDER', `GET ${url.host}${url.pathname} answered over ${MAX_ANSWER_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw cutoverError('CUTOVER_ERR_PROVIDER', `GET ${url.host}${url.pathname} answered something that is not JSON`, {}, cause);
  }
  const raw = atJsonPath(doc, gate.json_path);
  const threshold = { ...(gate.max !== undefined ? { max: gate.max } : {}), ...(gate.min !== undefined ? { min: gate.min } : {}) };
  if (raw === undefined || raw === null) return { ...base, threshold, verdict: 'no-data', value: null, message: `no value at ${gate.json_path} in GET ${url.pathname}` };
  const value = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : typeof raw === 'boolean' ? Number(raw) : Number.NaN;
  if (!Number.isFinite(value)) throw cutoverError('CUTOVER_ERR_PROVIDER', `${gate.json_path} in GET ${url.pathname} is ${JSON.stringify(raw).slice(0, 60)}, not a number`);
  return boundedReading(base, value, gate, `${gate.json_path} of GET ${url.pathname}`);
}
