import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVER_TIMEOUTS } from '../../lib/http/node-server.ts';
import { CUTOVER_TOKEN, SERVICES, startAdversarialStack, tableSnapshot, type AdversarialStack, type ServiceName } from '../helpers/adversarial-stack.ts';
import { expectRefusal, serverErrors } from '../helpers/bad-input.ts';
import { call, chunk, requestBytes, sleep, wire, type WireAnswer } from '../helpers/raw-http.ts';

/**
 * Slow and stuck clients, with real sockets, on every port at once: a
 * slowloris sending its headers a byte at a time, a client that connects
 * and says nothing, and a client streaming a body nobody asked for after it
 * was refused. The server must cut each off on time (the headers within
 * SERVER_TIMEOUTS.headersTimeout, enforced every second), answer what it
 * can as JSON, and meanwhile keep serving everyone else — including a burst
 * of concurrent bad requests — with nothing written.
 */

const HEADERS_MS = SERVER_TIMEOUTS.headersTimeout;
/** Node sweeps its connections every connectionsCheckingInterval; allow that and a busy machine. */
const SLACK_MS = SERVER_TIMEOUTS.connectionsCheckingInterval + 3000;

let s: AdversarialStack;

beforeAll(async () => {
  s = await startAdversarialStack('adv_slow');
});

afterAll(async () => {
  await s?.close();
});

/** Sends `text` one byte every `everyMs`, never finishing the headers (unless the text does). */
function dribble(text: string, everyMs: number): Array<string | (() => Promise<void>)> {
  return [...text].flatMap((c) => [c, () => sleep(everyMs)]);
}

describe('slow clients', () => {
  it(
    'every port closes a slowloris and a silent client within its headers timeout, while serving others and refusing a burst of bad requests',
    async () => {
      const before = await tableSnapshot(s.t.db, s.t.name);
      const errorsBefore = await Promise.all(SERVICES.map((svc) => serverErrors(s.registries[svc])));
      const slow: Array<{ service: ServiceName; kind: string; answer: Promise<WireAnswer> }> = [];
      for (const service of SERVICES) {
        const port = s.ports[service];
        // Two slowloris clients per port (one byte every 300 ms: far more than enough for 10 s) and one silent one.
        for (let i = 0; i < 2; i++) {
          slow.push({
            service,
            kind: 'slowloris',
            answer: wire(port, 'G', { body: dribble(`ET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow-${i}: ${'z'.repeat(200)}`, 300), timeoutMs: HEADERS_MS + SLACK_MS + 5000 }),
          });
        }
        slow.push({ service, kind: 'silent', answer: wire(port, '', { timeoutMs: HEADERS_MS + SLACK_MS + 5000 }) });
      }
      const started = Date.now();

      // While they hold their sockets: good requests keep being answered, and bad ones refused, everywhere.
      let good = 0;
      let bad = 0;
      const badRequests: Array<[ServiceName, Parameters<typeof call>[1], number]> = [
        ['cloud', { method: 'POST', path: '/v2/droplets', headers: { authorization: `Bearer ${s.customerToken}`, 'content-type': 'application/json' }, body: '{"name":' }, 400],
        ['cloud', { method: 'GET', path: '/v2/droplets', headers: { authorization: 'Bearer forged' } }, 401],
        ['router', { method: 'GET', path: `/v1/regions/${s.region}/hypervisors/${s.hostB.id}/events`, headers: { authorization: `Bearer ${s.hv(s.hostA)}` } }, 403],
        ['proxy', { method: 'POST', path: `/v1/regions/${s.region}/hypervisors/${s.hostA.id}/acks`, headers: { authorization: `Bearer ${s.hv(s.hostA)}`, 'content-type': 'application/json' }, body: '[' }, 400],
        ['proxy', { method: 'GET', path: '/v1/regions/ams9/hypervisors/1/events' }, 404],
        ['proxyAdmin', { method: 'GET', path: '/admin/upstreams', headers: { authorization: 'Bearer nope' } }, 401],
        ['cutover', { method: 'POST', path: '/cutover/event-delivery/rollback', headers: { authorization: `Bearer ${CUTOVER_TOKEN}`, 'content-type': 'application/json' }, body: '{"to":"sideways"}' }, 422],
        ['scheduler', { method: 'POST', path: '/explain', headers: { 'content-type': 'application/json', authorization: `Bearer ${CUTOVER_TOKEN}` }, body: '{"region":"ams9","size":"2gb"}' }, 422],
        ['monitor', { method: 'GET', path: '/x/../metrics' }, 404],
      ];
      const deadline = started + HEADERS_MS - 1000;
      const exercise = async () => {
        while (Date.now() < deadline) {
          const round = await Promise.all([
            ...SERVICES.map(async (service) => {
              const a = await call(s.ports[service], s.good[service], 5000);
              expect(a.status, `${service} while slow clients wait: ${a.text}`).toBe(200);
              good++;
            }),
            // 27 concurrent refusals per round, three of each kind.
            ...[...badRequests, ...badRequests, ...badRequests].map(async ([service, spec, status]) => {
              const a = await call(s.ports[service], spec, 5000);
              expectRefusal(a, status, undefined, `${service} ${spec.method} ${spec.path}`);
              bad++;
            }),
          ]);
          expect(round.length).toBeGreaterThan(0);
          await sleep(300);
        }
        expect(good).toBeGreaterThanOrEqual(SERVICES.length * 3);
        expect(bad).toBeGreaterThanOrEqual(27 * 3);
      };

      try {
        await exercise();
      } catch (err) {
        // A failed assertion above must not leave the slow sockets to hold the servers' close().
        for (const { answer } of slow) void answer.then((a) => a.done());
        throw err;
      }
      for (const { service, kind, answer } of slow) {
        const a = await answer;
        const closedAt = await Promise.race([a.closed, sleep(2000).then(() => -1)]);
        const what = `${service} ${kind}: answered ${a.status} after ${a.ms} ms, closed at ${closedAt} ms`;
        expect(closedAt, what).toBeGreaterThan(0);
        expect(closedAt, what).toBeGreaterThanOrEqual(HEADERS_MS - 1000);
        expect(closedAt, what).toBeLessThanOrEqual(HEADERS_MS + SLACK_MS);
        // What started a request is told why it was cut off; a silent socket is just closed.
        if (kind === 'slowloris') expectRefusal(a, 408, 'HTTP_ERR_REQUEST_TIMEOUT', what);
        a.done();
      }
      expect(await tableSnapshot(s.t.db, s.t.name)).toEqual(before);
      expect(await Promise.all(SERVICES.map((svc) => serverErrors(s.registries[svc])))).toEqual(errorsBefore);
      for (const service of SERVICES) expect((await call(s.ports[service], s.good[service])).status).toBe(200);
    },
    HEADERS_MS + 30_000,
  );

  it.each([
    ['cloud', () => ({ method: 'POST', path: '/v2/droplets', headers: { authorization: 'Bearer forged-token-000' } }), 401],
    ['router', () => ({ method: 'POST', path: `/v1/regions/${s.region}/hypervisors/${s.hostA.id}/acks`, headers: { authorization: 'Bearer hv.1.forged' } }), 401],
    ['cutover', () => ({ method: 'POST', path: '/cutover/event-delivery/advance', headers: { authorization: 'Bearer forged-token-000000' } }), 401],
    ['proxy', () => ({ method: 'POST', path: '/v1/regions/ams9/hypervisors/1/acks', headers: {} }), 404],
    ['proxy', () => ({ method: 'POST', path: '/no/such/route', headers: {} }), 404],
    ['harpoon', () => ({ method: 'POST', path: '/v1/events', headers: { authorization: 'Bearer forged-token-000000' } }), 401],
  ] as const)(
    '%s: a refused request streaming a body is answered and cut off, not drained',
    async (service, spec, status) => {
      const head = requestBytes({ ...spec(), headers: { ...spec().headers, 'content-type': 'application/json', 'transfer-encoding': 'chunked', connection: 'keep-alive' } });
      // Up to 8 s of body, 1 KiB every 20 ms, unless the server hangs up first.
      const body: Array<Buffer | (() => Promise<void>)> = [chunk('{"pad":"')];
      for (let i = 0; i < 400; i++) body.push(chunk('p'.repeat(1024)), () => sleep(20));
      const a = await wire(s.ports[service], head, { body, timeoutMs: 5000 });
      try {
        expectRefusal(a, status, undefined, service);
        const closedAt = await Promise.race([a.closed, sleep(3000).then(() => -1)]);
        expect(closedAt, `${service}: answered at ${a.ms} ms, still open 3 s later`).toBeGreaterThanOrEqual(0);
        expect(closedAt - a.ms).toBeLessThan(2000);
      } finally {
        a.done();
      }
      expect((await call(s.ports[service], s.good[service])).status).toBe(200);
    },
  );
});
