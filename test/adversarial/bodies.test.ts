import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CUTOVER_TOKEN, HARPOON_TOKEN, startAdversarialStack, tableSnapshot, type AdversarialStack, type ServiceName } from '../helpers/adversarial-stack.ts';
import { caseRequest, expectRefusal, genericBodyCases, serverErrors, type BadCase, type BodyEndpoint } from '../helpers/bad-input.ts';
import { call, requestBytes, wire } from '../helpers/raw-http.ts';

/**
 * Bad bodies against every endpoint that reads one, directly and through
 * the proxy. One row per endpoint: the generic cases (malformed, truncated,
 * wrong types, unknown fields, huge, chunked) come from its sample body;
 * `cases` adds what only it has (unknown regions and sizes, SQL-looking
 * values). Each must be a documented 4xx JSON refusal, write nothing (every
 * table's row count and CHECKSUM TABLE are the same after), count no 5xx,
 * and leave the service answering a good request at once.
 */
const SQL = "x'; DROP TABLE events; --";
const SQL_OR = "nyc1' OR '1'='1";

let s: AdversarialStack;
let rows: BodyEndpoint[];

beforeAll(async () => {
  s = await startAdversarialStack('adv_bodies');
  const customer = () => ({ authorization: `Bearer ${s.customerToken}` });
  const hv = () => ({ authorization: `Bearer ${s.hv(s.hostA)}` });
  const admin = () => ({ authorization: `Bearer ${CUTOVER_TOKEN}` });
  const droplet = s.seed.droplets.find((d) => d.customer_id === s.seed.customers[0]!.id)!;
  const create = { name: 'web-1', region: s.region, size: '2gb', image: s.seed.images[0]!.slug };
  const ack = { event_id: 1, received_at: new Date().toISOString() };
  const acksPath = (region = s.region, id = s.hostA.id) => `/v1/regions/${region}/hypervisors/${id}/acks`;
  const routerCases: BadCase[] = [
    { name: 'event_id as a string', status: 422, body: JSON.stringify({ ...ack, event_id: '1' }) },
    { name: 'event_id SQL-looking', status: 422, body: JSON.stringify({ ...ack, event_id: '1 OR 1=1' }) },
    { name: 'event_id negative', status: 422, body: JSON.stringify({ ...ack, event_id: -1 }) },
    { name: 'event_id fractional', status: 422, body: JSON.stringify({ ...ack, event_id: 1.5 }) },
    { name: 'event_id beyond 2^53', status: 422, body: '{"event_id":18014398509481984,"received_at":"2026-01-01T00:00:00Z"}' },
    { name: 'received_at not a time', status: 422, body: JSON.stringify({ ...ack, received_at: 'yesterday' }) },
    { name: 'received_at SQL-looking', status: 422, body: JSON.stringify({ ...ack, received_at: SQL }) },
    { name: 'received_at in the future', status: 422, body: JSON.stringify({ ...ack, received_at: '2999-01-01T00:00:00Z' }) },
    { name: 'an empty acks list', status: 422, body: JSON.stringify({ acks: [] }) },
    { name: '101 acks', status: 422, body: JSON.stringify({ acks: Array.from({ length: 101 }, (_, i) => ({ ...ack, event_id: i + 1 })) }) },
    { name: 'acks with a stray field', status: 422, body: JSON.stringify({ acks: [ack], extra: 1 }) },
  ];
  rows = [
    {
      name: 'Cloud POST /v2/droplets',
      service: 'cloud',
      method: 'POST',
      path: '/v2/droplets',
      auth: customer,
      sample: create,
      limit: 64 * 1024,
      cases: [
        { name: 'an unknown region', status: 422, code: 'CLOUD_ERR_UNKNOWN_REGION', body: JSON.stringify({ ...create, region: 'ams9' }) },
        { name: 'a SQL-looking region', status: 422, code: 'CLOUD_ERR_UNKNOWN_REGION', body: JSON.stringify({ ...create, region: SQL_OR }) },
        { name: 'a region in other case with a trailing space', status: 422, code: 'CLOUD_ERR_UNKNOWN_REGION', body: JSON.stringify({ ...create, region: `${s.region.toUpperCase()} ` }) },
        { name: 'an unknown size', status: 422, code: 'CLOUD_ERR_UNKNOWN_SIZE', body: JSON.stringify({ ...create, size: '3tb' }) },
        { name: 'a SQL-looking size', status: 422, code: 'CLOUD_ERR_UNKNOWN_SIZE', body: JSON.stringify({ ...create, size: SQL }) },
        { name: 'an unknown image', status: 422, code: 'CLOUD_ERR_UNKNOWN_IMAGE', body: JSON.stringify({ ...create, image: 'windows-95' }) },
        { name: 'a SQL-looking name', status: 422, code: 'CLOUD_ERR_VALIDATION', body: JSON.stringify({ ...create, name: SQL }) },
        { name: 'a 300-character name', status: 422, code: 'CLOUD_ERR_VALIDATION', body: JSON.stringify({ ...create, name: 'a'.repeat(300) }) },
        { name: 'ssh_keys as a string', status: 422, code: 'CLOUD_ERR_VALIDATION', body: JSON.stringify({ ...create, ssh_keys: '1,2' }) },
        { name: 'ssh_keys with Infinity', status: 422, code: 'CLOUD_ERR_VALIDATION', body: JSON.stringify(create).replace('}', ',"ssh_keys":[1e400]}') },
        { name: 'ssh_keys of someone else', status: 422, code: 'CLOUD_ERR_UNKNOWN_SSH_KEY', body: JSON.stringify({ ...create, ssh_keys: [999_999] }) },
        { name: 'a feature flag as a string', status: 422, code: 'CLOUD_ERR_VALIDATION', body: JSON.stringify({ ...create, backups: 'yes' }) },
      ],
    },
    {
      name: 'Cloud POST /v2/droplets/:id/actions',
      service: 'cloud',
      method: 'POST',
      path: `/v2/droplets/${droplet.id}/actions`,
      auth: customer,
      sample: { type: 'reboot' },
      limit: 64 * 1024,
      cases: [
        { name: 'a platform-only action', status: 422, code: 'CLOUD_ERR_VALIDATION', body: JSON.stringify({ type: 'destroy' }) },
        { name: 'a SQL-looking action', status: 422, code: 'CLOUD_ERR_VALIDATION', body: JSON.stringify({ type: "reboot' --" }) },
        { name: 'an action on a SQL-looking id', status: 404, code: 'CLOUD_ERR_NOT_FOUND', path: `/v2/droplets/${encodeURIComponent('1 OR 1=1')}/actions`, body: '{"type":"reboot"}' },
      ],
    },
    {
      name: 'Event Router POST acks',
      service: 'router',
      method: 'POST',
      path: acksPath(),
      auth: hv,
      sample: ack,
      limit: 64 * 1024,
      cases: routerCases,
    },
    {
      name: 'proxy → Event Router POST acks',
      service: 'proxy',
      method: 'POST',
      path: acksPath(),
      auth: hv,
      sample: ack,
      limit: 64 * 1024,
      cases: [
        ...routerCases,
        { name: 'an unknown region', status: 404, code: 'PROXY_ERR_UNKNOWN_REGION', path: acksPath('ams9'), body: JSON.stringify(ack) },
        { name: 'a SQL-looking region', status: 404, code: 'PROXY_ERR_UNKNOWN_REGION', path: acksPath(encodeURIComponent(SQL_OR)), body: JSON.stringify(ack) },
        {
          name: 'a body over the proxy limit',
          status: 413,
          code: 'PROXY_ERR_BODY_TOO_LARGE',
          headers: { 'content-type': 'application/json', 'content-length': String(2 * 1024 * 1024) },
        },
      ],
    },
    {
      name: 'proxy → Cloud POST /v2/droplets',
      service: 'proxy',
      method: 'POST',
      path: '/v2/droplets',
      auth: customer,
      sample: create,
      limit: 64 * 1024,
      cases: [{ name: 'an unknown region', status: 422, code: 'CLOUD_ERR_UNKNOWN_REGION', body: JSON.stringify({ ...create, region: 'ams9' }) }],
    },
    {
      name: 'Scheduler V2 POST /explain',
      service: 'scheduler',
      method: 'POST',
      path: '/explain',
      auth: admin,
      sample: { region: s.otherRegion, size: '2gb' },
      limit: 16 * 1024,
      cases: [
        { name: 'an unknown region', status: 422, code: 'SCHEDULER_ERR_UNKNOWN_REGION', body: JSON.stringify({ region: 'ams9', size: '2gb' }) },
        { name: 'a SQL-looking region', status: 422, code: 'SCHEDULER_ERR_UNKNOWN_REGION', body: JSON.stringify({ region: SQL_OR, size: '2gb' }) },
        { name: 'a region id out of range', status: 422, body: JSON.stringify({ region: 2 ** 40, size: '2gb' }) },
        { name: 'an unknown size', status: 422, code: 'SCHEDULER_ERR_UNKNOWN_SIZE', body: JSON.stringify({ region: s.otherRegion, size: '3tb' }) },
        { name: 'a SQL-looking size', status: 422, code: 'SCHEDULER_ERR_UNKNOWN_SIZE', body: JSON.stringify({ region: s.otherRegion, size: SQL }) },
        { name: 'a negative custom size', status: 422, body: JSON.stringify({ region: s.otherRegion, size: { memory: -1, vcpus: 1, disk: 1 } }) },
        { name: 'a size with a stray field', status: 422, body: JSON.stringify({ region: s.otherRegion, size: { memory: 1, vcpus: 1, disk: 1, gpu: 1 } }) },
        { name: 'top over 1000', status: 422, body: JSON.stringify({ region: s.otherRegion, size: '2gb', top: 1001 }) },
        { name: 'an unknown policy', status: 422, body: JSON.stringify({ region: s.otherRegion, size: '2gb', policy: SQL }) },
      ],
    },
    ...[
      { path: '/v1/events', sample: { type: 'reboot', region: s.region } },
      { path: '/v1/events/1/status', sample: { status: 'done' } },
      { path: '/v1/events/status', sample: { changes: [{ id: 1, status: 'done' }] } },
    ].map(
      ({ path, sample }): BodyEndpoint => ({
        name: `Harpoon POST ${path}`,
        service: 'harpoon',
        method: 'POST',
        path,
        auth: () => ({ authorization: `Bearer ${HARPOON_TOKEN}` }),
        sample,
        limit: 512 * 1024,
        cases:
          path === '/v1/events'
            ? [
                { name: 'an unknown region', status: 422, code: 'HARPOON_ERR_UNKNOWN_REGION', body: JSON.stringify({ type: 'reboot', region: 'ams9' }) },
                { name: 'a SQL-looking region', status: 422, code: 'HARPOON_ERR_VALIDATION', body: JSON.stringify({ type: 'reboot', region: SQL_OR }) },
                { name: 'an unknown size', status: 422, code: 'HARPOON_ERR_UNKNOWN_SIZE', body: JSON.stringify({ type: 'create', region: s.region, args: { size: '3tb' } }) },
                { name: 'a SQL-looking type', status: 422, code: 'HARPOON_ERR_VALIDATION', body: JSON.stringify({ type: SQL, region: s.region }) },
                { name: 'a server id past INT UNSIGNED', status: 422, code: 'HARPOON_ERR_VALIDATION', body: JSON.stringify({ type: 'reboot', region: s.region, server_id: 2 ** 32 }) },
                { name: 'a 501-event batch', status: 422, code: 'HARPOON_ERR_VALIDATION', body: JSON.stringify({ events: Array.from({ length: 501 }, () => ({ type: 'reboot', region: s.region })) }) },
                {
                  name: 'a batch with one bad region among good ones',
                  status: 422,
                  body: JSON.stringify({ events: [{ type: 'reboot', region: s.region }, { type: 'reboot', region: 'ams9' }] }),
                },
              ]
            : [{ name: 'a SQL-looking status', status: 422, code: 'HARPOON_ERR_VALIDATION', body: path.endsWith('/1/status') ? JSON.stringify({ status: "done' --" }) : JSON.stringify({ changes: [{ id: 1, status: "done' --" }] }) }],
      }),
    ),
    ...(['advance', 'rollback', 'pause', 'resume'] as const).map(
      (verb): BodyEndpoint => ({
        name: `cutover POST /cutover/:feature/${verb}`,
        service: 'cutover',
        method: 'POST',
        path: `/cutover/scheduling/${verb}`,
        auth: admin,
        sample: { reason: 'adversarial test' },
        limit: 16 * 1024,
        emptyIsValid: true,
        cases: [
          { name: 'a reason over 500 characters', status: 422, code: 'CUTOVER_ERR_VALIDATION', body: JSON.stringify({ reason: 'x'.repeat(501) }) },
          { name: 'an unknown feature', status: 404, code: 'CUTOVER_ERR_UNKNOWN_FEATURE', path: `/cutover/harpoon-magic/${verb}`, body: '{}' },
          { name: 'a SQL-looking feature', status: 404, code: 'CUTOVER_ERR_UNKNOWN_FEATURE', path: `/cutover/${encodeURIComponent("scheduling' OR '1'='1")}/${verb}`, body: '{}' },
          { name: 'a query parameter', status: 422, code: 'CUTOVER_ERR_VALIDATION', suffix: '?force=1', body: '{}' },
          ...(verb === 'advance' || verb === 'rollback'
            ? [
                { name: 'expected_version negative', status: 422, code: 'CUTOVER_ERR_VALIDATION', body: JSON.stringify({ expected_version: -1 }) },
                { name: 'expected_version as a string', status: 422, code: 'CUTOVER_ERR_VALIDATION', body: JSON.stringify({ expected_version: '1' }) },
              ]
            : []),
          ...(verb === 'rollback' ? [{ name: 'a SQL-looking target', status: 422, code: 'CUTOVER_ERR_VALIDATION', body: JSON.stringify({ to: "legacy' OR 1=1" }) }] : []),
        ],
      }),
    ),
  ];
});

afterAll(async () => {
  await s?.close();
});

async function send(e: BodyEndpoint, c: BadCase) {
  const port = s.ports[e.service as keyof typeof s.ports];
  const spec = caseRequest(e, c);
  if (!c.stream) return call(port, spec);
  const answer = await wire(port, requestBytes({ ...spec, body: undefined }).subarray(0), { body: c.stream, timeoutMs: 10_000 });
  answer.done();
  return answer;
}

describe('every JSON endpoint refuses bad bodies with a documented 4xx, writes nothing and keeps serving', () => {
  // Rows are built in beforeAll (they need the seeded ids); the names are fixed here.
  const names = [
    'Cloud POST /v2/droplets',
    'Cloud POST /v2/droplets/:id/actions',
    'Event Router POST acks',
    'proxy → Event Router POST acks',
    'proxy → Cloud POST /v2/droplets',
    'Scheduler V2 POST /explain',
    ...['/v1/events', '/v1/events/1/status', '/v1/events/status'].map((p) => `Harpoon POST ${p}`),
    ...['advance', 'rollback', 'pause', 'resume'].map((v) => `cutover POST /cutover/:feature/${v}`),
  ];
  it.each(names)('%s', async (name) => {
    const e = rows.find((r) => r.name === name)!;
    expect(e, name).toBeDefined();
    const before = await tableSnapshot(s.t.db, s.t.name);
    const errorsBefore = await serverErrors(s.registries[e.service as keyof typeof s.registries]);
    const cases = [...genericBodyCases(e), ...e.cases];
    // A few at a time: the machine is shared, and order must not matter.
    for (let i = 0; i < cases.length; i += 4) {
      await Promise.all(
        cases.slice(i, i + 4).map(async (c) => {
          const answer = await send(e, c);
          expectRefusal(answer, c.status, c.code, `${name}: ${c.name}`);
        }),
      );
    }
    expect(await tableSnapshot(s.t.db, s.t.name)).toEqual(before);
    expect(await serverErrors(s.registries[e.service as keyof typeof s.registries])).toBe(errorsBefore);
    const service = e.service as ServiceName;
    const after = await call(s.ports[service], s.good[service]);
    expect(after.status, after.text).toBe(200);
  });
});
