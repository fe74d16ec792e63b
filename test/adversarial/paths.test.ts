import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CUTOVER_TOKEN, ADMIN_TOKEN, HARPOON_TOKEN, SERVICES, startAdversarialStack, tableSnapshot, type AdversarialStack, type ServiceName } from '../helpers/adversarial-stack.ts';
import { expectRefusal, serverErrors } from '../helpers/bad-input.ts';
import { call, wire } from '../helpers/raw-http.ts';

/**
 * Paths, query strings and the HTTP framing itself, against every port:
 * traversal (`/../`, `%2e%2e`, `%2f`), NUL and control characters,
 * overlong paths and headers, request lines and headers Node's parser
 * refuses. Every answer is a documented 4xx JSON `{ code, message }`
 * (never a 200 for a path that only resolves after normalising), nothing
 * is written, no 5xx is counted, and each service answers a good request after.
 */

interface PathCase {
  name: string;
  /** The request bytes' head (request line and headers, without the final CRLF). */
  head: string;
  status: number | number[];
  code?: string | RegExp;
}

const CRLF = '\r\n';
const req = (line: string, headers: string[] = []) => [line, 'host: 127.0.0.1', 'connection: close', ...headers].join(CRLF) + CRLF + CRLF;

/** What every port must refuse, whatever its routes. */
const PROTOCOL_CASES: PathCase[] = [
  { name: 'a ../ traversal to /metrics', head: req('GET /x/../metrics HTTP/1.1'), status: 404 },
  { name: 'a ../ traversal from /healthz', head: req('GET /healthz/../../metrics HTTP/1.1'), status: 404 },
  { name: 'an encoded %2e%2e traversal', head: req('GET /%2e%2e/%2E%2E/etc/passwd HTTP/1.1'), status: 404 },
  { name: 'an encoded %2f traversal', head: req('GET /..%2f..%2fmetrics HTTP/1.1'), status: 404 },
  { name: 'a ./ segment', head: req('GET /./metrics HTTP/1.1'), status: 404 },
  { name: 'a double slash', head: req('GET //metrics HTTP/1.1'), status: 404 },
  { name: 'a backslash traversal', head: req('GET /..\\..\\metrics HTTP/1.1'), status: [400, 404] },
  { name: 'an encoded NUL', head: req('GET /healthz%00 HTTP/1.1'), status: 404 },
  { name: 'an absolute-form target', head: req('GET http://evil.example/metrics HTTP/1.1'), status: [400, 404] },
  { name: 'an 8 KB path', head: req(`GET /${'a'.repeat(8000)} HTTP/1.1`), status: 404 },
  { name: 'a 20 KB path', head: req(`GET /${'a'.repeat(20_000)} HTTP/1.1`), status: 431, code: 'HTTP_ERR_HEADERS_TOO_LARGE' },
  { name: 'a 20 KB header', head: req('GET /healthz HTTP/1.1', [`x-big: ${'b'.repeat(20_000)}`]), status: 431, code: 'HTTP_ERR_HEADERS_TOO_LARGE' },
  {
    name: '400 small headers',
    head: req('GET /healthz HTTP/1.1', Array.from({ length: 400 }, (_, i) => `x-h${i}: ${'v'.repeat(40)}`)),
    status: 431,
    code: 'HTTP_ERR_HEADERS_TOO_LARGE',
  },
  { name: 'a garbage request line', head: 'HELLO THERE' + CRLF + CRLF, status: 400, code: 'HTTP_ERR_BAD_REQUEST' },
  { name: 'an unknown method', head: req('BREW /healthz HTTP/1.1'), status: 400, code: 'HTTP_ERR_BAD_REQUEST' },
  { name: 'an HTTP/2 preface', head: 'PRI * HTTP/2.0' + CRLF + CRLF + 'SM' + CRLF + CRLF, status: 400, code: 'HTTP_ERR_BAD_REQUEST' },
  { name: 'a non-numeric Content-Length', head: req('POST /healthz HTTP/1.1', ['content-length: abc']), status: 400, code: 'HTTP_ERR_BAD_REQUEST' },
  { name: 'two Content-Lengths', head: req('POST /healthz HTTP/1.1', ['content-length: 1', 'content-length: 2']), status: 400, code: 'HTTP_ERR_BAD_REQUEST' },
  {
    name: 'Content-Length with Transfer-Encoding (smuggling)',
    head: req('POST /healthz HTTP/1.1', ['content-length: 4', 'transfer-encoding: chunked']),
    status: 400,
    code: 'HTTP_ERR_BAD_REQUEST',
  },
  { name: 'a NUL in a header value', head: req('GET /healthz HTTP/1.1', ['x-a: b\u0000c']), status: 400, code: 'HTTP_ERR_BAD_REQUEST' },
  { name: 'a header without a colon', head: req('GET /healthz HTTP/1.1', ['no colon here']), status: 400, code: 'HTTP_ERR_BAD_REQUEST' },
  { name: 'a space in the path', head: req('GET /a b/c HTTP/1.1'), status: 400, code: 'HTTP_ERR_BAD_REQUEST' },
];

let s: AdversarialStack;

beforeAll(async () => {
  s = await startAdversarialStack('adv_paths');
  // History to filter in the SQL-looking query below.
  for (const verb of ['pause', 'resume']) {
    const a = await call(s.ports.cutover, {
      method: 'POST',
      path: `/cutover/scheduling/${verb}`,
      headers: { authorization: `Bearer ${CUTOVER_TOKEN}`, 'content-type': 'application/json' },
      body: '{"reason":"history for the adversarial suite"}',
    });
    expect(a.status, a.text).toBe(200);
  }
});

afterAll(async () => {
  await s?.close();
});

/** The routes each service has, attacked through their parameters and query strings. */
function serviceCases(service: ServiceName): PathCase[] {
  const customer = `authorization: Bearer ${s.customerToken}`;
  const hvA = `authorization: Bearer ${s.hv(s.hostA)}`;
  const admin = `authorization: Bearer ${CUTOVER_TOKEN}`;
  const proxyAdmin = `authorization: Bearer ${ADMIN_TOKEN}`;
  const hvPath = (rest: string, region = s.region, id: string | number = s.hostA.id) => `/v1/regions/${region}/hypervisors/${id}/${rest}`;
  const get = (path: string, auth?: string) => req(`GET ${path} HTTP/1.1`, auth ? [auth] : []);
  switch (service) {
    case 'cloud':
      return [
        { name: 'a droplet id that is ..', head: get('/v2/droplets/..', customer), status: 404, code: 'CLOUD_ERR_NOT_FOUND' },
        // Before: WHATWG normalisation made this /v2/droplets/ and answered the droplet list.
        { name: 'a droplet path ending in %2e%2e', head: get('/v2/droplets/1/%2e%2e', customer), status: 404 },
        { name: 'a droplet id with %00', head: get('/v2/droplets/1%00', customer), status: 400, code: 'HTTP_ERR_BAD_PATH' },
        { name: 'a droplet id with %0a', head: get('/v2/droplets/1%0aSet-Cookie:x', customer), status: 400, code: 'HTTP_ERR_BAD_PATH' },
        { name: 'a droplet id with bad percent-encoding', head: get('/v2/droplets/%zz', customer), status: 400, code: 'HTTP_ERR_BAD_PATH' },
        { name: 'a SQL-looking droplet id', head: get('/v2/droplets/1%20OR%201%3D1', customer), status: 404, code: 'CLOUD_ERR_NOT_FOUND' },
        { name: 'a droplet id past INT UNSIGNED', head: get('/v2/droplets/4294967296', customer), status: 404, code: 'CLOUD_ERR_NOT_FOUND' },
        { name: 'an action id of 30 digits', head: get(`/v2/actions/${'9'.repeat(30)}`, customer), status: 404, code: 'CLOUD_ERR_NOT_FOUND' },
        { name: 'page=0', head: get('/v2/droplets?page=0', customer), status: 400, code: 'CLOUD_ERR_INVALID_QUERY' },
        { name: 'per_page too large', head: get('/v2/droplets?per_page=100000', customer), status: 400, code: 'CLOUD_ERR_INVALID_QUERY' },
        { name: 'a SQL-looking page', head: get('/v2/droplets?page=1%20OR%201=1', customer), status: 400, code: 'CLOUD_ERR_INVALID_QUERY' },
        { name: 'an unknown filter', head: get('/v2/droplets?tag_name=x', customer), status: 400, code: 'CLOUD_ERR_INVALID_QUERY' },
        { name: 'a repeated parameter', head: get('/v2/droplets?page=1&page=2', customer), status: 400, code: 'CLOUD_ERR_INVALID_QUERY' },
        { name: 'DELETE of a SQL-looking id', head: req('DELETE /v2/droplets/1;DROP%20TABLE%20droplets HTTP/1.1', [customer]), status: 404, code: 'CLOUD_ERR_NOT_FOUND' },
        { name: 'PUT on a droplet', head: req('PUT /v2/droplets/1 HTTP/1.1', [customer]), status: 405, code: 'HTTP_ERR_METHOD_NOT_ALLOWED' },
      ];
    case 'router':
    case 'proxy': {
      const viaProxy = service === 'proxy';
      return [
        { name: 'a hypervisor id that is %2e%2e', head: get(hvPath('events', s.region, '%2e%2e'), hvA), status: viaProxy ? [400, 403] : 403 },
        { name: 'a region that is %2e%2e', head: get(hvPath('events', '%2e%2e'), hvA), status: 404 },
        { name: 'a hypervisor id with %00', head: get(hvPath('events', s.region, `${s.hostA.id}%00`), hvA), status: 400, code: /_ERR_BAD_PATH$/ },
        { name: 'a traversal to the other host', head: get(`${hvPath('events')}/../../${s.hostB.id}/events`, hvA), status: 404 },
        { name: 'a SQL-looking region', head: get(hvPath('mode', "nyc1'%20OR%20'1'='1"), hvA), status: 404 },
        { name: 'an unknown region', head: get(hvPath('mode', 'ams9'), hvA), status: 404 },
        { name: 'a hypervisor id of 30 digits', head: get(hvPath('mode', s.region, '9'.repeat(30)), hvA), status: 403 },
        { name: 'DELETE on the stream', head: req(`DELETE ${hvPath('events')} HTTP/1.1`, [hvA]), status: 405 },
        ...(viaProxy ? [{ name: 'a droplet path ending in %2e%2e', head: get('/v2/droplets/1/%2e%2e', customer), status: 404 }] : []),
      ];
    }
    case 'cutover':
      return [
        { name: 'a feature that is %2e%2e', head: req('POST /cutover/%2e%2e/advance HTTP/1.1', [admin]), status: 404, code: 'CUTOVER_ERR_UNKNOWN_FEATURE' },
        { name: 'a feature with %00', head: req('POST /cutover/scheduling%00/advance HTTP/1.1', [admin]), status: 400, code: 'HTTP_ERR_BAD_PATH' },
        { name: 'history limit 0', head: get('/cutover/history?limit=0', admin), status: 422, code: 'CUTOVER_ERR_VALIDATION' },
        { name: 'history limit not a number', head: get('/cutover/history?limit=ten', admin), status: 422, code: 'CUTOVER_ERR_VALIDATION' },
        { name: 'history before past 2^53', head: get(`/cutover/history?before=${'9'.repeat(20)}`, admin), status: 422, code: 'CUTOVER_ERR_VALIDATION' },
        { name: 'history with an unknown parameter', head: get('/cutover/history?actor=alice', admin), status: 422, code: 'CUTOVER_ERR_VALIDATION' },
        { name: 'status with a parameter', head: get('/cutover/status?x=1', admin), status: 422, code: 'CUTOVER_ERR_VALIDATION' },
      ];
    case 'scheduler':
      return [
        { name: 'a non-numeric event id', head: get('/decisions/abc', admin), status: 422, code: 'SCHEDULER_ERR_VALIDATION' },
        { name: 'a SQL-looking event id', head: get('/decisions/1%20OR%201=1', admin), status: 422, code: 'SCHEDULER_ERR_VALIDATION' },
        { name: 'event id 0', head: get('/decisions/0', admin), status: 422, code: 'SCHEDULER_ERR_VALIDATION' },
        { name: 'an event id of 30 digits', head: get(`/decisions/${'9'.repeat(30)}`, admin), status: 422, code: 'SCHEDULER_ERR_VALIDATION' },
        { name: 'an event with no decision', head: get('/decisions/987654321', admin), status: 404, code: 'SCHEDULER_ERR_NOT_FOUND' },
        { name: 'an event id with %00', head: get('/decisions/1%00', admin), status: 400, code: 'HTTP_ERR_BAD_PATH' },
        { name: 'GET on /explain', head: get('/explain'), status: 405, code: 'HTTP_ERR_METHOD_NOT_ALLOWED' },
        { name: '/decisions without a token', head: get('/decisions/1'), status: 401, code: 'SCHEDULER_ERR_UNAUTHORIZED' },
      ];
    case 'proxyAdmin':
      return [
        { name: 'a limit that is not a number', head: get('/admin/shadow/samples?limit=abc', proxyAdmin), status: 400, code: 'PROXY_ERR_BAD_QUERY' },
        { name: 'a limit too large', head: get('/admin/shadow/samples?limit=100000', proxyAdmin), status: 400, code: 'PROXY_ERR_BAD_QUERY' },
        { name: 'a traversal out of /admin', head: get('/admin/../metrics', proxyAdmin), status: 404 },
      ];
    case 'monitor':
      return [{ name: 'a route the monitor does not have', head: get('/v2/droplets'), status: 404, code: 'HTTP_ERR_NOT_FOUND' }];
    case 'harpoon': {
      const svc = `authorization: Bearer ${HARPOON_TOKEN}`;
      return [
        { name: 'an event id that is %2e%2e', head: get('/v1/events/%2e%2e', svc), status: 404, code: 'HARPOON_ERR_NOT_FOUND' },
        { name: 'an event id with %00', head: get('/v1/events/1%00', svc), status: 400, code: 'HTTP_ERR_BAD_PATH' },
        { name: 'a SQL-looking event id', head: get('/v1/events/1%20OR%201=1', svc), status: 404, code: 'HARPOON_ERR_NOT_FOUND' },
        { name: 'a SQL-looking region filter', head: get("/v1/events?region=nyc1'%20OR%20'1'='1", svc), status: 400, code: 'HARPOON_ERR_INVALID_QUERY' },
        { name: 'an unknown query parameter', head: get('/v1/events?drop=1', svc), status: 400, code: 'HARPOON_ERR_INVALID_QUERY' },
        { name: 'a limit too large', head: get('/v1/events?limit=100000', svc), status: 400, code: 'HARPOON_ERR_INVALID_QUERY' },
        { name: 'a stream cursor that is not a number', head: get('/v1/stream?cursor=abc', svc), status: 400 },
        { name: 'an action id of 30 digits', head: get(`/v2/actions/${'9'.repeat(30)}`, customer), status: 404, code: 'HARPOON_ERR_NOT_FOUND' },
      ];
    }
  }
}

describe('paths, query strings and HTTP framing', () => {
  it.each(SERVICES)('%s: every case is a documented 4xx JSON refusal; nothing written; still serving', async (service) => {
    const before = await tableSnapshot(s.t.db, s.t.name);
    const errorsBefore = await serverErrors(s.registries[service]);
    const cases = [...PROTOCOL_CASES, ...serviceCases(service)];
    for (let i = 0; i < cases.length; i += 4) {
      await Promise.all(
        cases.slice(i, i + 4).map(async (c) => {
          const answer = await wire(s.ports[service], c.head, { timeoutMs: 10_000 });
          answer.done();
          expectRefusal(answer, c.status, c.code, `${service}: ${c.name}`);
        }),
      );
    }
    expect(await tableSnapshot(s.t.db, s.t.name)).toEqual(before);
    expect(await serverErrors(s.registries[service])).toBe(errorsBefore);
    const after = await call(s.ports[service], s.good[service]);
    expect(after.status, after.text).toBe(200);
  });

  it('a SQL-looking filter on the cutover history is refused as an unknown feature (a value, not SQL)', async () => {
    const headers = { authorization: `Bearer ${CUTOVER_TOKEN}` };
    const all = await call(s.ports.cutover, { method: 'GET', path: '/cutover/history', headers });
    expect(all.status).toBe(200);
    expect(all.json.entries.length).toBeGreaterThanOrEqual(2);
    for (const feature of ["scheduling' OR '1'='1", 'scheduling%27%20OR%20%271%27%3D%271', "x' UNION SELECT * FROM cutover_history --"]) {
      const a = await call(s.ports.cutover, { method: 'GET', path: `/cutover/history?feature=${encodeURIComponent(feature)}`, headers });
      expectRefusal(a, 404, 'CUTOVER_ERR_UNKNOWN_FEATURE', feature);
      expect(a.json.entries).toBeUndefined();
    }
  });
});
