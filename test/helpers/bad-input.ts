import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import type { Registry } from 'prom-client';
import { chunk, type RequestSpec, type WireAnswer } from './raw-http.ts';

/** Every code runbooks/errors.md documents (its tables' first column). */
export const DOCUMENTED_CODES: ReadonlySet<string> = new Set(
  [...readFileSync(new URL('../../runbooks/errors.md', import.meta.url), 'utf8').matchAll(/^\| `([A-Z]+_ERR_[A-Z_]+)`/gm)].map((m) => m[1]!),
);

/**
 * The promise every refusal keeps: the status asked for, a JSON body
 * `{ code, message }` whose code is documented in runbooks/errors.md and
 * whose message is a short sentence (never an echo of a huge input).
 */
export function expectRefusal(answer: WireAnswer, status: number | number[], code?: string | RegExp, what = ''): void {
  const statuses = Array.isArray(status) ? status : [status];
  const where = `${what} → ${answer.status} ${answer.text.slice(0, 300)}`;
  expect(statuses, where).toContain(answer.status);
  expect(answer.headers['content-type'] ?? '', where).toMatch(/^application\/json/);
  expect(answer.json, where).toMatchObject({ code: expect.any(String), message: expect.any(String) });
  expect(DOCUMENTED_CODES.has(answer.json.code), `${where}: code ${answer.json.code} is not in runbooks/errors.md`).toBe(true);
  expect(answer.json.message.length, where).toBeGreaterThan(10);
  expect(answer.json.message.length, where).toBeLessThan(1000);
  if (code !== undefined) expect(answer.json.code, where).toMatch(code);
}

/** A case: what to send, and the refusal it must get. */
export interface BadCase {
  name: string;
  status: number | number[];
  code?: string | RegExp;
  /** The body (with content-type application/json unless `headers` says otherwise). */
  body?: string | Buffer;
  headers?: Record<string, string>;
  /** Written after the head instead of `body` (streamed bodies). */
  stream?: Buffer[];
  /** Appended to the row's path (a query string). */
  suffix?: string;
  /** Replaces the row's path. */
  path?: string;
}

/** An endpoint that takes a JSON body; one row of the table is one such endpoint. */
export interface BodyEndpoint {
  name: string;
  service: string;
  method: string;
  path: string;
  /** Valid credentials (Authorization header), or none. */
  auth: () => Record<string, string>;
  /** A valid body; the generic cases are derived from it (and never send it unchanged). */
  sample: Record<string, unknown>;
  /** The body limit, in bytes: a body of 2 × limit is refused as too large. */
  limit: number;
  /** Cases only this endpoint has (unknown regions, SQL-looking values, out-of-range fields). */
  cases: BadCase[];
  /** True where an empty body is a valid request (the cutover verbs), so the empty-body case is skipped. */
  emptyIsValid?: boolean;
}

const json = (value: unknown) => JSON.stringify(value);

/**
 * The cases every JSON endpoint must refuse, derived from its sample body:
 * malformed and truncated JSON, wrong content types, bodies that are not
 * objects, unknown fields (prototype keys included), deep nesting, and
 * bodies over the limit declared or streamed chunked without a length.
 */
export function genericBodyCases(e: BodyEndpoint): BadCase[] {
  const sample = json(e.sample);
  const cases: BadCase[] = [
    { name: 'truncated JSON', status: 400, body: sample.slice(0, Math.max(1, sample.length - 5)) },
    { name: 'JSON cut after a key', status: 400, body: '{"' + Object.keys(e.sample)[0] + '":' },
    { name: 'single-quoted pseudo-JSON', status: 400, body: sample.replace(/"/g, "'") },
    { name: 'trailing garbage', status: 400, body: sample + '}' },
    { name: 'two documents', status: 400, body: sample + sample },
    { name: 'invalid UTF-8', status: 400, body: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) },
    { name: 'NUL byte', status: 400, body: '{"\u0000' },
    { name: 'text/plain content type', status: 415, body: sample, headers: { 'content-type': 'text/plain' } },
    { name: 'form content type', status: 415, body: 'a=1&b=2', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
    { name: 'no content type', status: 415, body: sample, headers: { 'content-type': '' } },
    { name: 'an array', status: 422, body: '[]' },
    { name: 'a string', status: 422, body: '"' + 'x'.repeat(50) + '"' },
    { name: 'a number', status: 422, body: '42' },
    { name: 'null', status: 422, body: 'null' },
    { name: 'true', status: 422, body: 'true' },
    { name: 'an unknown field', status: 422, body: json({ ...e.sample, x_unknown_field: 1 }) },
    { name: 'a __proto__ key', status: 422, body: '{"__proto__":{"admin":true},' + sample.slice(1) },
    { name: 'a constructor key', status: 422, body: '{"constructor":{"prototype":{"admin":true}},' + sample.slice(1) },
    // Refused before parsing (lib/http/json-body.ts: deeper than 32 levels), so no validator recurses into it.
    { name: 'deep nesting', status: 400, body: '{"deep":' + '['.repeat(3000) + ']'.repeat(3000) + '}' },
    {
      name: 'a huge declared Content-Length (nothing sent)',
      status: 413,
      headers: { 'content-type': 'application/json', 'content-length': String(100 * 1024 * 1024) },
    },
    {
      name: 'a body over the limit with Content-Length',
      status: 413,
      body: '{"pad":"' + 'x'.repeat(2 * e.limit) + '"}',
    },
    {
      name: 'a chunked body over the limit (no Content-Length)',
      status: 413,
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      stream: [chunk('{"pad":"'), ...Array.from({ length: Math.ceil((2 * e.limit) / 16384) }, () => chunk('x'.repeat(16384))), chunk('"}'), Buffer.from('0\r\n\r\n')],
    },
    {
      name: 'a chunked malformed body',
      status: 400,
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      stream: [chunk(sample.slice(0, 3)), chunk('<<<'), Buffer.from('0\r\n\r\n')],
    },
  ];
  if (!e.emptyIsValid) cases.push({ name: 'an empty body', status: 400, body: '' });
  // Every field in turn with values of the wrong type.
  for (const [key, value] of Object.entries(e.sample)) {
    for (const wrong of [[], {}, true, typeof value === 'string' ? 12345 : 'x1']) {
      cases.push({ name: `${key} as ${json(wrong)}`, status: 422, body: json({ ...e.sample, [key]: wrong }) });
    }
  }
  return cases;
}

/** The request a case makes of an endpoint. */
export function caseRequest(e: BodyEndpoint, c: BadCase): RequestSpec {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...e.auth(), ...c.headers };
  if (headers['content-type'] === '') delete headers['content-type'];
  return { method: e.method, path: c.path ?? e.path + (c.suffix ?? ''), headers, ...(c.body !== undefined ? { body: c.body } : {}) };
}

/** `http_requests_total` answered with a 5xx by the shared shell of one service. */
export async function serverErrors(registry: Registry | undefined): Promise<number> {
  if (!registry) return 0;
  const metric = await registry.getSingleMetric('http_requests_total')?.get();
  return (metric?.values ?? []).filter((v) => String(v.labels.status).startsWith('5')).reduce((n, v) => n + v.value, 0);
}
