import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import { createAgentStats } from '../../dobe/agent-stats.ts';
import { createDobeAgent, type DobeAgent } from '../../dobe/agent.ts';
import { createEventRouter, type EventRouter } from '../../router/event-router.ts';
import { createMysqlEventSource } from '../../legacy/router/mysql-source.ts';
import { readMysqlSnapshot } from '../../lib/metrics/mysql-snapshot.ts';
import { TEST_HV_KEYS, createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { duplicateExecutions, hvToken, openStream, postAck, setEventDelivery } from '../helpers/router.ts';
import { insertEvent, seedWorld, waitFor } from '../helpers/seeded.ts';
import { godQueryMode } from '../../legacy/dobe/god-query-mode.ts';
import { freshKeyRing } from '../../lib/auth/hypervisor-keys.ts';

describe('the Event Router', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let router: EventRouter;
  let url: string;
  let region: { id: number; slug: string };
  let other: { id: number; slug: string };
  let hosts: number[];
  let foreign: number;

  const path = (id: number, what: 'events' | 'acks' | 'mode', slug = region.slug) => `${url}/v1/regions/${slug}/hypervisors/${id}/${what}`;
  const auth = (id: number, slug = region.slug) => ({ authorization: `Bearer ${hvToken(id, slug)}` });
  const status = async (id: number) => (await t.db('events').where({ id }).first()).status as string;

  beforeAll(async () => {
    t = await createTestDatabase('router');
    seed = await seedWorld(t.db, { hypervisors: 12, regions: 2 });
    await t.db('events').del();
    region = seed.regions[0]!;
    other = seed.regions[1]!;
    hosts = seed.servers.filter((s) => s.region_id === region.id).map((s) => s.id);
    foreign = seed.servers.find((s) => s.region_id === other.id)!.id;
    await setEventDelivery(t.db, { mode: 'full' });
    router = createEventRouter({ legacySource: createMysqlEventSource, db: t.service('event_router'), region: region.slug, hypervisorKeys: TEST_HV_KEYS, pollIntervalMs: 50, port: 0, redeliverAfterMs: 1000 });
    url = (await router.start()).url;
  });
  afterAll(async () => {
    await router?.close();
    await t.drop();
  });

  it('delivers each event to exactly its own agent, which holds no MySQL connection; each is done once, by the router', async () => {
    const mine = hosts.slice(0, 4);
    const stats = createAgentStats();
    const agents: DobeAgent[] = mine.map((serverId) =>
      createDobeAgent({ polling: godQueryMode,
        serverId,
        db: t.service('dobe'),
        region: region.slug,
        routerUrl: url,
        routerToken: hvToken(serverId, region.slug),
        workMs: 2,
        routerRetryMs: { min: 50, max: 500 },
        stats,
      }),
    );
    await Promise.all(agents.map((a) => a.start()));
    try {
      await waitFor(async () => router.stats().connected === mine.length);
      expect(agents.map((a) => a.source())).toEqual(mine.map(() => 'router'));
      expect(stats.connected).toBe(0);
      await waitFor(async () => !(await readMysqlSnapshot(t.db, { database: t.name })).byUser.dobe);

      // A create with its droplet, so the router's completion changes droplet and host like the legacy one.
      const server = await t.db('servers').where({ id: mine[0] }).first();
      const size = await t.db('sizes').where({ slug: '2gb' }).first();
      const [dropletId] = await t.db('droplets').insert({ customer_id: 1, name: 'routed', region_id: region.id, size_id: size.id, image_id: 1, server_id: mine[0] });
      const ids = [await insertEvent(t.db, { type: 'create', region_id: region.id, server_id: mine[0], droplet_id: Number(dropletId), customer_id: 1 })];
      for (let i = 0; i < 20; i++) ids.push(await insertEvent(t.db, { type: 'reboot', region_id: region.id, server_id: mine[i % mine.length]! }));
      await waitFor(async () => Number((await t.db('events').whereIn('id', ids).where({ status: 'done' }).count({ n: '*' }))[0]!.n) === ids.length);

      const executions = await t.db('event_executions').whereIn('event_id', ids).orderBy('event_id');
      expect(executions).toHaveLength(ids.length);
      expect(await duplicateExecutions(t.db, ids)).toEqual([]);
      const events = await t.db('events').whereIn('id', ids).orderBy('id');
      for (const [i, e] of events.entries()) {
        expect(executions[i]).toMatchObject({ event_id: e.id, server_id: e.server_id, source: 'router' });
      }
      expect((await t.db('droplets').where({ id: dropletId }).first()).status).toBe('active');
      const after = await t.db('servers').where({ id: mine[0] }).first();
      expect(after.memfree).toBe(server.memfree - size.memory);
      expect(after.vmcount).toBe(server.vmcount + 1);
      expect(stats.eventsExecuted).toBe(ids.length);
      expect(stats.connected).toBe(0);
    } finally {
      await Promise.all(agents.map((a) => a.close()));
    }
    await waitFor(async () => router.stats().connected === 0);
  });

  it('answers 401 without a valid token, 403 for another hypervisor, 404 outside its region', async () => {
    const [a, b] = hosts as [number, number];
    const check = async (target: string, headers: Record<string, string>, code: number, errorCode: string) => {
      const res = await fetch(target, { headers });
      expect(res.status).toBe(code);
      expect(res.headers.get('content-type')).toMatch(/json/);
      expect(((await res.json()) as { code: string }).code).toBe(errorCode);
    };
    await check(path(a, 'events'), {}, 401, 'ROUTER_ERR_UNAUTHORIZED');
    await check(path(a, 'events'), { authorization: 'Bearer nonsense' }, 401, 'ROUTER_ERR_UNAUTHORIZED');
    await check(path(a, 'events'), { authorization: 'Basic abc' }, 401, 'ROUTER_ERR_UNAUTHORIZED');
    await check(path(a, 'events'), { authorization: `Bearer ${hvToken(a, region.slug, freshKeyRing())}` }, 401, 'ROUTER_ERR_UNAUTHORIZED');
    // A token minted for the right id but the wrong region does not verify either.
    await check(path(a, 'events'), { authorization: `Bearer ${hvToken(a, other.slug)}` }, 401, 'ROUTER_ERR_UNAUTHORIZED');
    await check(path(a, 'events'), { authorization: `Bearer ${hvToken(999_999, region.slug)}` }, 401, 'ROUTER_ERR_UNAUTHORIZED');
    await check(path(b, 'events'), auth(a), 403, 'ROUTER_ERR_FORBIDDEN');
    await check(path(b, 'mode'), auth(a), 403, 'ROUTER_ERR_FORBIDDEN');
    await check(path(foreign, 'events', other.slug), auth(foreign, other.slug), 404, 'ROUTER_ERR_WRONG_REGION');
    await check(path(foreign, 'events'), auth(foreign, other.slug), 404, 'ROUTER_ERR_WRONG_REGION');
    await check(path(a, 'events', other.slug), auth(a), 404, 'ROUTER_ERR_WRONG_REGION');

    // Acks: nobody acks another hypervisor's event, through either path.
    const theirs = await insertEvent(t.db, { type: 'reboot', region_id: region.id, server_id: b, status: 'running' });
    const body = { event_id: theirs, received_at: new Date().toISOString() };
    expect(await postAck(path(a, 'acks'), hvToken(a, region.slug), body)).toMatchObject({ status: 403, json: { code: 'ROUTER_ERR_FORBIDDEN' } });
    expect(await postAck(path(b, 'acks'), hvToken(a, region.slug), body)).toMatchObject({ status: 403, json: { code: 'ROUTER_ERR_FORBIDDEN' } });
    expect(await postAck(path(b, 'acks'), undefined, body)).toMatchObject({ status: 401, json: { code: 'ROUTER_ERR_UNAUTHORIZED' } });
    expect(await status(theirs)).toBe('running');
    expect(await t.db('event_executions').where({ event_id: theirs })).toHaveLength(0);
    // The owner can; a repeat is harmless.
    expect(await postAck(path(b, 'acks'), hvToken(b, region.slug), body)).toMatchObject({ status: 200, json: { event_id: theirs, duplicate: false } });
    expect(await postAck(path(b, 'acks'), hvToken(b, region.slug), body)).toMatchObject({ status: 200, json: { event_id: theirs, duplicate: true } });
    expect(await t.db('event_executions').where({ event_id: theirs })).toHaveLength(1);
  });

  it('a hypervisor cannot read another hypervisor\'s events on its own stream', async () => {
    const [a, b] = hosts.slice(4, 6) as [number, number];
    const sa = await openStream(path(a, 'events'), auth(a));
    const sb = await openStream(path(b, 'events'), auth(b));
    try {
      const forA = await insertEvent(t.db, { type: 'power_on', region_id: region.id, server_id: a });
      const forB = await insertEvent(t.db, { type: 'power_on', region_id: region.id, server_id: b });
      await waitFor(async () => sa.messages.length >= 1 && sb.messages.length >= 1);
      await new Promise((r) => setTimeout(r, 300));
      expect(sa.messages.map((m) => Number(m.id))).toEqual([forA]);
      expect(sb.messages.map((m) => Number(m.id))).toEqual([forB]);
      const row = JSON.parse(sa.messages[0]!.data);
      expect(row).toMatchObject({ event_id: forA, server_id: a, event_type: 'power_on', event_status: 'running' });
      for (const [id, owner] of [[forA, a], [forB, b]] as const) {
        expect((await postAck(path(owner, 'acks'), hvToken(owner, region.slug), { event_id: id, received_at: new Date().toISOString() })).status).toBe(200);
      }
    } finally {
      sa.close();
      sb.close();
    }
  });

  it('validates acks: 422 on bad fields, 400/413/415 on bad bodies, 409 for an event never claimed; nothing written', async () => {
    const a = hosts[0]!;
    const token = hvToken(a, region.slug);
    const id = await insertEvent(t.db, { type: 'reboot', region_id: region.id, server_id: a, status: 'running' });
    const now = new Date().toISOString();
    const bad: unknown[] = [
      {},
      { event_id: id },
      { received_at: now },
      { event_id: String(id), received_at: now },
      { event_id: -1, received_at: now },
      { event_id: 1.5, received_at: now },
      { event_id: id, received_at: 'yesterday' },
      { event_id: id, received_at: '2999-01-01T00:00:00Z' },
      { event_id: id, received_at: now, extra: 1 },
      { event_id: id, received_at: "2016-01-01T00:00:00Z' OR 1=1 --" },
      [],
      42,
      null,
      JSON.stringify('a string'),
      { acks: [] },
      { acks: [{ event_id: id, received_at: now }], more: true },
      { acks: Array.from({ length: 101 }, () => ({ event_id: id, received_at: now })) },
    ];
    for (const body of bad) {
      const res = await postAck(path(a, 'acks'), token, body);
      expect([res.status, res.json.code], JSON.stringify(body).slice(0, 80)).toEqual([422, 'ROUTER_ERR_VALIDATION']);
    }
    expect((await postAck(path(a, 'acks'), token, '{"event_id":')).status).toBe(400);
    expect((await postAck(path(a, 'acks'), token, JSON.stringify({ event_id: id, received_at: now }), { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await postAck(path(a, 'acks'), token, JSON.stringify({ event_id: id, received_at: now, pad: 'x'.repeat(70_000) }))).status).toBe(413);
    expect(await status(id)).toBe('running');
    expect(await t.db('event_executions').where({ event_id: id })).toHaveLength(0);

    const pending = await insertEvent(t.db, { type: 'reboot', region_id: region.id, server_id: hosts[1]! });
    // hosts[1] has no stream here, so its event stays pending: an ack for it is refused.
    expect(await postAck(path(hosts[1]!, 'acks'), hvToken(hosts[1]!, region.slug), { event_id: pending, received_at: now })).toMatchObject({
      status: 409,
      json: { code: 'ROUTER_ERR_NOT_CLAIMED' },
    });
    expect(await postAck(path(a, 'acks'), token, { event_id: 987_654_321, received_at: now })).toMatchObject({ status: 404, json: { code: 'ROUTER_ERR_EVENT_NOT_FOUND' } });
    // The batch form records each once.
    const res = await postAck(path(a, 'acks'), token, { acks: [{ event_id: id, received_at: now }, { event_id: id, received_at: now }] });
    expect(res).toMatchObject({ status: 200, json: { results: [{ event_id: id, duplicate: false }, { event_id: id, duplicate: true }] } });
    expect(await t.db('event_executions').where({ event_id: id })).toHaveLength(1);
    await t.db('events').where({ id: pending }).update({ status: 'done' });
  });

  it('redelivers claimed, unacknowledged events on reconnect, except those the agent says it holds (Last-Event-ID)', async () => {
    const a = hosts[2]!;
    const first = await openStream(path(a, 'events'), auth(a));
    const e1 = await insertEvent(t.db, { type: 'reboot', region_id: region.id, server_id: a });
    const e2 = await insertEvent(t.db, { type: 'reboot', region_id: region.id, server_id: a });
    await waitFor(async () => first.messages.length === 2);
    first.close();
    expect(await status(e1)).toBe('running');

    const second = await openStream(path(a, 'events'), auth(a));
    await waitFor(async () => second.messages.length === 2);
    expect(second.messages.map((m) => Number(m.id)).sort()).toEqual([e1, e2]);
    second.close();

    const third = await openStream(path(a, 'events'), { ...auth(a), 'last-event-id': String(e2) });
    await waitFor(async () => third.messages.length >= 1);
    await new Promise((r) => setTimeout(r, 200));
    expect(third.messages.map((m) => Number(m.id))).toEqual([e1]);
    for (const id of [e1, e2]) await postAck(path(a, 'acks'), hvToken(a, region.slug), { event_id: id, received_at: new Date().toISOString() });
    third.close();
    expect(await status(e1)).toBe('done');
    expect(await status(e2)).toBe('done');
  });

  it('ends a stream with `event: switch` when its hypervisor is routed back to the god query, and claims nothing more for it', async () => {
    const a = hosts[3]!;
    const s = await openStream(path(a, 'events'), auth(a));
    await waitFor(async () => router.stats().connected >= 1);
    expect(await (await fetch(path(a, 'mode'), { headers: auth(a) })).json()).toMatchObject({ source: 'router' });
    await setEventDelivery(t.db, { mode: 'legacy' });
    try {
      await s.ended;
      expect(s.messages.at(-1)).toMatchObject({ event: 'switch' });
      expect(JSON.parse(s.messages.at(-1)!.data)).toMatchObject({ source: 'god-query' });
      const id = await insertEvent(t.db, { type: 'reboot', region_id: region.id, server_id: a });
      // Connecting while not routed: told to switch at once.
      const again = await openStream(path(a, 'events'), auth(a));
      await again.ended;
      expect(again.messages.map((m) => m.event)).toEqual(['switch']);
      await new Promise((r) => setTimeout(r, 300));
      expect(await status(id)).toBe('pending');
      expect(await (await fetch(path(a, 'mode'), { headers: auth(a) })).json()).toMatchObject({ source: 'god-query' });
      await t.db('events').where({ id }).update({ status: 'done' });
    } finally {
      await setEventDelivery(t.db, { mode: 'full' });
    }
  });

  it('exposes its metrics, health and readiness', async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    for (const name of [
      'router_connected_agents',
      'router_pending_events',
      'router_inflight_events',
      'router_events_delivered_total',
      'router_events_acked_total',
      'router_delivery_latency_seconds_bucket',
      'router_db_queries_total{query="pending"}',
      'router_db_queries_total{query="claim"}',
      'router_poll_duration_seconds_count',
    ]) {
      expect(text).toContain(name);
    }
    expect(text).toMatch(/^router_events_delivered_total [1-9]/m);
    expect(text).toMatch(/^router_events_acked_total [1-9]/m);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    // A few connections for the whole region, not one per hypervisor.
    const snap = await readMysqlSnapshot(t.db, { database: t.name });
    expect(snap.byUser.event_router ?? 0).toBeLessThanOrEqual(5);
  });

  it('refuses to start for a region that does not exist', async () => {
    const r = createEventRouter({ legacySource: createMysqlEventSource, db: t.service('event_router'), region: 'atlantis1', hypervisorKeys: TEST_HV_KEYS, port: 0 });
    await expect(r.start()).rejects.toMatchObject({ code: 'ROUTER_ERR_UNKNOWN_REGION' });
    await r.close();
    expect(() => createEventRouter({ legacySource: createMysqlEventSource, db: t.service('event_router'), region: 'NYC 1', hypervisorKeys: TEST_HV_KEYS })).toThrow(/region/);
  });
});
