import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSchedulerV2, type SchedulerV2, type SchedulerV2Options } from '../../scheduler/create-scheduler-v2.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { metricsForServer, startHostMetricsServer, type HostMetricsServer, type ServerState } from '../helpers/host-metrics.ts';
import { insertEvent } from '../helpers/seeded.ts';

/**
 * Scheduler V2 against a hand-built world, so every decision is predictable.
 * nyc1: four hosts (one erroring, one in maintenance, two healthy);
 * ams2: one nearly full host. Metrics come from real HTTP endpoints, one
 * per region; the `servers` rows hold deliberately different (wrong) live
 * values, to show V2 never reads them.
 */
const OPERATOR_TOKEN = 'operator-token-0123456789abcdef';
const HOST = { cpus: 24, memory: 131072, disk: 1920, vmcount: 10, diskfree_actual: 1500, error_count: 0, state: '' };
const SERVERS: Array<ServerState & { id: number }> = [
  { id: 1, name: 'nyc1-hv0001', region_id: 1, ...HOST, memfree: 90000, error_count: 5 },
  { id: 2, name: 'nyc1-hv0002', region_id: 1, ...HOST, memfree: 60000 },
  { id: 3, name: 'nyc1-hv0003', region_id: 1, ...HOST, memfree: 50000 },
  { id: 4, name: 'nyc1-hv0004', region_id: 1, ...HOST, memfree: 80000, state: 'maintenance' },
  { id: 5, name: 'ams2-hv0001', region_id: 2, ...HOST, memfree: 1000 },
];

describe('Scheduler V2 (one replica)', () => {
  let t: TestDatabase;
  let nyc1: HostMetricsServer;
  let ams2: HostMetricsServer;
  const replicas: SchedulerV2[] = [];

  function replica(over: Partial<SchedulerV2Options> = {}): SchedulerV2 {
    const r = createSchedulerV2({
      db: t.service('scheduler_v2'),
      metricsEndpoints: [
        { name: 'nyc1', url: nyc1.url },
        { name: 'ams2', url: ams2.url },
      ],
      replicaId: `replica-${replicas.length + 1}`,
      scrapeIntervalMs: 50,
      waitRetryMs: 100,
      ...over,
    });
    replicas.push(r);
    return r;
  }

  async function createRequest(customerId: number, regionId = 1, sizeId = 1): Promise<{ dropletId: number; eventId: number }> {
    const [dropletId] = await t.db('droplets').insert({ customer_id: customerId, name: 'x', region_id: regionId, size_id: sizeId, image_id: 1 });
    const eventId = await insertEvent(t.db, { type: 'create', region_id: regionId, droplet_id: Number(dropletId), customer_id: customerId });
    return { dropletId: Number(dropletId), eventId };
  }

  beforeAll(async () => {
    t = await createTestDatabase('scheduler_v2');
    await t.db('regions').insert([
      { id: 1, slug: 'nyc1', name: 'New York 1' },
      { id: 2, slug: 'ams2', name: 'Amsterdam 2' },
    ]);
    await t.db('sizes').insert([
      { id: 1, slug: '2gb', memory: 2048, vcpus: 2, disk: 40, price_monthly: 20 },
      { id: 2, slug: '64gb', memory: 65536, vcpus: 20, disk: 640, price_monthly: 640 },
    ]);
    await t.db('images').insert({ id: 1, slug: 'debian-8-x64', name: 'Debian', distribution: 'Debian', min_disk_size: 20 });
    await t.db('customers').insert([
      { id: 1, email: 'a@example.com', name: 'A', api_token_sha256: 'a'.repeat(64) },
      { id: 2, email: 'b@example.com', name: 'B', api_token_sha256: 'b'.repeat(64) },
    ]);
    // The rows the legacy agents write say every host is empty and healthy: V2 must not believe them.
    await t.db('servers').insert(SERVERS.map((s) => ({ ...s, memfree: 129024, error_count: 0, state: '' })));
    nyc1 = await startHostMetricsServer(SERVERS.filter((s) => s.region_id === 1).map((s) => metricsForServer(s, 'nyc1')));
    ams2 = await startHostMetricsServer(SERVERS.filter((s) => s.region_id === 2).map((s) => metricsForServer(s, 'ams2')));
  });

  beforeEach(async () => {
    // Each test starts from an idle queue, fresh metrics and no busy host.
    await t.db('events').whereIn('status', ['pending', 'running']).update({ status: 'done' });
    await t.db('droplets').update({ status: 'archived' });
    for (const s of SERVERS) (s.region_id === 1 ? nyc1 : ams2).hosts.set(s.name, metricsForServer(s, s.region_id === 1 ? 'nyc1' : 'ams2'));
    nyc1.fail(undefined);
  });

  afterAll(async () => {
    for (const r of replicas) await r.close();
    await nyc1?.close();
    await ams2?.close();
    await t?.drop();
  });

  it('places on the best host by scraped metrics, sets server_id on event and droplet, bumps the generation, and stores why', async () => {
    const first = await createRequest(1);
    const second = await createRequest(2);
    const v2 = replica();
    const decisions = await v2.placeOnce();
    expect(decisions.map((d) => [d.event_id, d.outcome, d.server_name])).toEqual([
      [first.eventId, 'placed', 'nyc1-hv0002'],
      // hv0002 is now busy creating: V1's rule holds across the batch.
      [second.eventId, 'placed', 'nyc1-hv0003'],
    ]);
    const event = await t.db('events').where({ id: first.eventId }).first();
    expect(event).toMatchObject({ server_id: 2, status: 'pending', claimed_by: 'replica-1', claim_expires_at: null });
    expect(event.available_at).not.toBeNull();
    expect((await t.db('droplets').where({ id: first.dropletId }).first()).server_id).toBe(2);
    expect((await t.db('servers').where({ id: 2 }).first()).generation).toBe(1);
    const [stored] = await t.db('placement_decisions').where({ event_id: first.eventId });
    expect(stored).toMatchObject({ outcome: 'placed', server_id: 2, replica: 'replica-1', policy: 'v1-compatible', score: 60000, hosts_total: 4, hosts_available: 2, attempts: 1, conflicts: 0 });
    expect(stored.summary).toBe('placed on nyc1-hv0002 (v1-compatible score 60000): 2/4 hosts available; rejected: 1 too many errors, 1 not in service.');
    const [secondStored] = await t.db('placement_decisions').where({ event_id: second.eventId });
    expect(secondStored.summary).toBe(
      'placed on nyc1-hv0003 (v1-compatible score 50000): 1/4 hosts available; rejected: 1 too many errors, 1 not in service, 1 busy creating.',
    );
  });

  it('does not choose a host whose metrics are stale, and says so', async () => {
    nyc1.set('nyc1-hv0002', { last_report_ms: Date.now() - 60_000 });
    const request = await createRequest(1);
    const [d] = await replica({ maxStalenessMs: 5000 }).placeOnce();
    expect(d).toMatchObject({ event_id: request.eventId, outcome: 'placed', server_name: 'nyc1-hv0003' });
    expect(d!.summary).toBe('placed on nyc1-hv0003 (v1-compatible score 50000): 1/4 hosts available; rejected: 1 metrics stale, 1 too many errors, 1 not in service.');
  });

  it('waits (never fails) when the only fitting hosts are stale or busy, then places once they come back', async () => {
    nyc1.set('nyc1-hv0002', { last_report_ms: Date.now() - 60_000 });
    nyc1.set('nyc1-hv0003', { last_report_ms: Date.now() - 60_000 });
    const request = await createRequest(1);
    const v2 = replica({ maxStalenessMs: 5000 });
    const [d] = await v2.placeOnce();
    expect(d!.outcome).toBe('wait');
    expect(d!.summary).toBe('0/4 hosts available: 2 metrics stale, 1 too many errors, 1 not in service. Waiting: a host is only busy or not seen recently.');
    const event = await t.db('events').where({ id: request.eventId }).first();
    expect(event).toMatchObject({ status: 'pending', server_id: null, claimed_by: v2.replicaId });
    expect(await t.db('placement_decisions').where({ event_id: request.eventId }).select('outcome', 'summary')).toEqual([{ outcome: 'waiting', summary: d!.summary }]);

    nyc1.set('nyc1-hv0003', { last_report_ms: Date.now() });
    await new Promise((r) => setTimeout(r, 150)); // the wait back-off (waitRetryMs) and a scrape interval
    const [again] = await v2.placeOnce();
    expect(again).toMatchObject({ event_id: request.eventId, outcome: 'placed', server_name: 'nyc1-hv0003' });
  });

  it('a failed scrape keeps the last snapshot until it is too old', async () => {
    const v2 = replica({ maxStalenessMs: 400 });
    await v2.explain({ region: 'nyc1', size: '2gb' }); // a first good scrape
    nyc1.fail({ status: 500, body: 'agent exporter down' });
    expect((await v2.explain({ region: 'nyc1', size: '2gb' })).chosen?.name).toBe('nyc1-hv0002');
    await new Promise((r) => setTimeout(r, 500));
    const late = await v2.explain({ region: 'nyc1', size: '2gb' });
    expect(late.outcome).toBe('wait');
    expect(late.rejected['metrics-stale']).toBe(4);
    const metrics = await v2.registry.metrics();
    expect(metrics).toMatch(/scheduler_v2_scrape_duration_seconds_count\{endpoint="nyc1",result="error"\} [1-9]/);
    // ams2 still answers, but its hosts' report timestamps (frozen in this helper) are as old: all 5 are stale.
    expect(metrics).toMatch(/scheduler_v2_hosts\{metrics="stale"\} 5/);
  });

  it('fails an event no host can ever take, like V1, with the explanation as the message', async () => {
    const request = await createRequest(1, 2, 2); // 64 GB in ams2, whose only host has 1000 MB free
    const [d] = await replica().placeOnce();
    expect(d).toMatchObject({ outcome: 'fail', summary: '0/1 hosts available: 1 not enough memory.' });
    expect(await t.db('events').where({ id: request.eventId }).first()).toMatchObject({ status: 'error', server_id: null, message: '0/1 hosts available: 1 not enough memory.' });
    expect((await t.db('droplets').where({ id: request.dropletId }).first()).status).toBe('error');
    expect(await t.db('placement_decisions').where({ event_id: request.eventId }).first()).toMatchObject({ outcome: 'failed', server_id: null, hosts_total: 1, hosts_available: 0 });
  });

  it('never trusts metrics over the ledger: droplets placed on a host count before its agent reports them', async () => {
    // A 64 GB droplet is placed on hv0002 but its agent has not created it: the host still reports 126 GB free.
    await t.db('droplets').insert({ customer_id: 2, name: 'filler', region_id: 1, size_id: 2, image_id: 1, server_id: 2, status: 'new' });
    nyc1.set('nyc1-hv0002', { memfree_mb: 129024 });
    try {
      const r = await replica().explain({ region: 'nyc1', size: '64gb', hosts: true });
      // 131072 - 2048 reserved - 65536 placed = 63488 left by the ledger: a second 64 GB does not fit.
      expect(r.hosts!.find((h) => h.name === 'nyc1-hv0002')).toMatchObject({ passed: false, filter: 'memory', message: 'not enough memory on this server. memfree = 63488' });
      expect(r.outcome).toBe('fail');
    } finally {
      await t.db('droplets').where({ name: 'filler' }).update({ status: 'archived' });
    }
  });

  it('serves POST /explain (no writes), GET /decisions/:id, /metrics and /healthz', async () => {
    const v2 = replica({ port: 0, tokens: { operator: OPERATOR_TOKEN } });
    const { url } = await v2.start();
    const auth = { authorization: `Bearer ${OPERATOR_TOKEN}` };
    const post = (body: unknown, headers: Record<string, string> = { 'content-type': 'application/json', ...auth }) =>
      fetch(`${url}/explain`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
    const snapshot = async () => ({
      events: await t.db('events').orderBy('id').select('id', 'server_id', 'status', 'claimed_by', 'claim_expires_at'),
      decisions: (await t.db('placement_decisions').count({ n: '*' }).first())!.n,
      generations: await t.db('servers').orderBy('id').pluck('generation'),
    });
    const before = await snapshot();

    const res = await post({ region: 'nyc1', size: '2gb', hosts: true, top: 2 });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toMatchObject({
      outcome: 'place',
      policy: 'v1-compatible',
      region: { id: 1, slug: 'nyc1' },
      size: { slug: '2gb', memory: 2048, vcpus: 2, disk: 40 },
      chosen: { server_id: 2, name: 'nyc1-hv0002', score: 60000, fallback: false },
      summary: 'placed on nyc1-hv0002 (v1-compatible score 60000): 2/4 hosts available; rejected: 1 too many errors, 1 not in service.',
      hosts_total: 4,
      hosts_available: 2,
      rejected: { 'too-many-errors': 1, state: 1 },
      ranked: [
        { server_id: 2, name: 'nyc1-hv0002', score: 60000, fallback: false },
        { server_id: 3, name: 'nyc1-hv0003', score: 50000, fallback: false },
      ],
    });
    expect(body.hosts).toContainEqual({ server_id: 1, name: 'nyc1-hv0001', passed: false, filter: 'too-many-errors', message: 'TOO MANY ERRORS: errors=5' });
    expect(body.hosts).toContainEqual({ server_id: 4, name: 'nyc1-hv0004', passed: false, filter: 'state', message: 'state = maintenance' });

    const spread = await (await post({ region: 1, size: { memory: 1024, vcpus: 1, disk: 25 }, policy: 'spread', customer_id: 1 })).json();
    expect(spread.policy).toBe('spread');
    expect(spread.outcome).toBe('place');

    const bad: Array<[unknown, number, string, RegExp]> = [
      [{ region: 'atlantis', size: '2gb' }, 422, 'SCHEDULER_ERR_UNKNOWN_REGION', /unknown region "atlantis"; known: nyc1, ams2/],
      [{ region: "nyc1' OR 1=1; DROP TABLE events; --", size: '2gb' }, 422, 'SCHEDULER_ERR_VALIDATION', /"region" is required/],
      [{ region: "nyc1'; DROP TABLE x;--", size: '2gb' }, 422, 'SCHEDULER_ERR_UNKNOWN_REGION', /unknown region/],
      [{ region: 'nyc1', size: '3gb' }, 422, 'SCHEDULER_ERR_UNKNOWN_SIZE', /unknown size "3gb"; known: 2gb, 64gb/],
      [{ region: 'nyc1', size: '2gb', force: true }, 422, 'SCHEDULER_ERR_VALIDATION', /unknown field "force"/],
      [{ region: 'nyc1', size: 2 }, 422, 'SCHEDULER_ERR_VALIDATION', /"size" is required/],
      ['{"region": "nyc1", ', 400, 'HTTP_ERR_MALFORMED_JSON', /not valid JSON/],
      [JSON.stringify({ region: 'nyc1', size: '2gb', pad: 'x'.repeat(20_000) }), 413, 'HTTP_ERR_BODY_TOO_LARGE', /limit/],
    ];
    for (const [payload, status, code, message] of bad) {
      const r = await post(payload);
      const b = await r.json();
      expect({ status: r.status, code: b.code }).toEqual({ status, code });
      expect(b.message).toMatch(message);
    }
    expect((await post('{}', { 'content-type': 'text/plain', ...auth })).status).toBe(415);
    expect(await snapshot()).toEqual(before);

    const request = await createRequest(1);
    const deadline = Date.now() + 5000;
    while ((await t.db('events').where({ id: request.eventId }).first()).server_id === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const decisions = await (await fetch(`${url}/decisions/${request.eventId}`, { headers: auth })).json();
    expect(decisions.decisions).toHaveLength(1);
    expect(decisions.decisions[0]).toMatchObject({ outcome: 'placed', server_id: 2 });
    expect((await fetch(`${url}/decisions/999999`, { headers: auth })).status).toBe(404);
    expect((await (await fetch(`${url}/decisions/abc`, { headers: auth })).json()).code).toBe('SCHEDULER_ERR_VALIDATION');

    const metrics = await (await fetch(`${url}/metrics`)).text();
    for (const name of [
      'scheduler_v2_placements_total{policy="v1-compatible"} 1',
      'scheduler_v2_decisions_total{outcome="placed"} 1',
      'scheduler_v2_conflicts_total{kind="generation"} 0',
      'scheduler_v2_placement_latency_seconds_count 1',
      'scheduler_v2_scrape_age_seconds{endpoint="nyc1"}',
      'scheduler_v2_hosts{metrics="fresh"} 5',
    ]) {
      expect(metrics).toContain(name);
    }
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    await v2.close();
    await v2.close();
  });

  it('refuses bad options at creation, naming them', () => {
    const base = { db: t.service('scheduler_v2'), metricsEndpoints: [nyc1.url] };
    expect(() => createSchedulerV2({ ...base, policy: 'random' as never })).toThrow(/option "policy" must be one of v1-compatible, spread, bin-pack/);
    expect(() => createSchedulerV2({ ...base, metricsEndpoints: [] })).toThrow(/option "metricsEndpoints"/);
    expect(() => createSchedulerV2({ ...base, metricsEndpoints: ['ftp://x'] })).toThrow(/metricsEndpoints\[0\]/);
    expect(() => createSchedulerV2({ ...base, filters: ['memory', 'bogus'] })).toThrow(/unknown filter "bogus"/);
    expect(() => createSchedulerV2({ ...base, leaseMs: 0 })).toThrow(/option "leaseMs" must be a positive number/);
  });
});
