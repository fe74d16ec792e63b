import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import { createHarpoonClient } from '../../harpoon/client.ts';
import type { Harpoon } from '../../harpoon/create-harpoon.ts';
import { createEventRouter } from '../../router/event-router.ts';
import { TEST_HV_KEYS, createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { HARPOON_TOKEN, startHarpoon } from '../helpers/harpoon.ts';
import { freePort, hvToken, openStream, postAck, setEventDelivery, setFeatureRouting, startRouterProcess, type RouterProcess, type TestStream } from '../helpers/router.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

/**
 * Push and claim together (issue 16): on Harpoon the router writes a placed event to its host's
 * stream without waiting for its claim. A real HTTP hop in front of Harpoon refuses the claims
 * (pending → running) while the test says so, holding an event in the window between its push and
 * its claim, where the ack must claim it and a router killed with SIGKILL must lose nothing.
 */
describe('the Event Router on Harpoon pushes an event before its claim', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let harpoon: Harpoon;
  let harpoonUrl: string;
  let gate: TestUpstream;
  let refuseClaims = true;
  const routers: RouterProcess[] = [];
  const streams: TestStream[] = [];

  beforeAll(async () => {
    t = await createTestDatabase('router_harpoon_push');
    seed = await seedWorld(t.db, { hypervisors: 6, regions: 2 });
    await t.db('events').del();
    await setEventDelivery(t.db, { mode: 'full' });
    await setFeatureRouting(t.db, 'event-writes', { mode: 'full' });
    ({ harpoon, url: harpoonUrl } = await startHarpoon(t.service('harpoon')));
    // Everything but claims goes through to Harpoon (the stream too, chunk by chunk).
    gate = await startUpstream('claim-gate', (req, res, body) => {
      if (req.method === 'POST' && req.url === '/v1/events/status' && refuseClaims && body.includes('"running"')) {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ code: 'HARPOON_ERR_UNAVAILABLE', message: 'claims refused by the test' }));
        return;
      }
      const up = request(`${harpoonUrl}${req.url}`, { method: req.method, headers: req.headers });
      up.on('response', (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      up.end(body);
    });
  });
  afterAll(async () => {
    for (const s of streams) s.close();
    for (const r of routers) r.child.kill('SIGKILL');
    await gate?.close();
    await harpoon?.close();
    await t?.drop();
  });

  const statusOf = async (id: number) => (await t.db('events').where({ id }).first('status'))?.status as string | undefined;
  const executions = async (id: number) => (await t.db('event_executions').where({ event_id: id })).length;
  const stream = async (url: string, region: string, host: number, headers: Record<string, string> = {}) => {
    const s = await openStream(`${url}/v1/regions/${region}/hypervisors/${host}/events`, { authorization: `Bearer ${hvToken(host, region)}`, ...headers });
    streams.push(s);
    return s;
  };
  const carried = (s: TestStream, id: number) => s.messages.some((m) => m.id === String(id));

  it('writes a placed event before its claim; the ack claims it (503 until Harpoon takes the claim), exactly once', async () => {
    refuseClaims = true;
    const region = seed.regions[0]!;
    const host = seed.servers.find((s) => s.region_id === region.id)!.id;
    // No legacy source: the router of the post-migration system.
    const router = createEventRouter({ db: t.service('event_router'), region: region.slug, hypervisorKeys: TEST_HV_KEYS, pollIntervalMs: 50, port: 0, harpoon: { urls: [gate.url], token: HARPOON_TOKEN } });
    const { url } = await router.start();
    try {
      await waitFor(async () => router.stats().source === 'harpoon' && (await router.registry.getSingleMetricAsString('router_harpoon_stream_connected')).endsWith(' 1'));
      const s = await stream(url, region.slug, host);
      await waitFor(async () => router.stats().connected === 1);
      const { event } = await createHarpoonClient({ urls: [harpoonUrl], token: HARPOON_TOKEN }).createEvent({ type: 'reboot', region: region.slug, server_id: host, key: 'push-1' });

      await waitFor(async () => carried(s, event.id));
      expect(await statusOf(event.id)).toBe('pending');
      const ackUrl = `${url}/v1/regions/${region.slug}/hypervisors/${host}/acks`;
      const ack = { event_id: event.id, received_at: new Date().toISOString() };
      const refused = await postAck(ackUrl, hvToken(host, region.slug), ack);
      expect(refused.status).toBe(503);
      expect(refused.json.code).toBe('ROUTER_ERR_CLAIM_FAILED');
      expect(await executions(event.id)).toBe(0);

      refuseClaims = false;
      const accepted = await postAck(ackUrl, hvToken(host, region.slug), ack);
      expect(accepted).toEqual({ status: 200, json: { event_id: event.id, duplicate: false } });
      await waitFor(async () => (await statusOf(event.id)) === 'done');
      expect(await executions(event.id)).toBe(1);
      expect((await postAck(ackUrl, hvToken(host, region.slug), ack)).json).toEqual({ event_id: event.id, duplicate: true });
      expect(await executions(event.id)).toBe(1);
    } finally {
      await router.close();
    }
  }, 60_000);

  it('a router killed with SIGKILL between the push and the claim: the next one redelivers the event and records it once', async () => {
    refuseClaims = true;
    const region = seed.regions[1]!;
    const host = seed.servers.find((s) => s.region_id === region.id)!.id;
    const port = await freePort();
    const first = await startRouterProcess({ db: t.service('event_router'), region: region.slug, port, harpoon: { urls: [gate.url], token: HARPOON_TOKEN } });
    routers.push(first);
    await waitFor(async () => /^router_harpoon_stream_connected 1$/m.test(await (await fetch(`${first.url}/metrics`)).text()));
    const s1 = await stream(first.url, region.slug, host);
    const { event } = await createHarpoonClient({ urls: [harpoonUrl], token: HARPOON_TOKEN }).createEvent({ type: 'reboot', region: region.slug, server_id: host, key: 'push-2' });
    await waitFor(async () => carried(s1, event.id));
    first.child.kill('SIGKILL');
    expect(await first.exited).toBeNull();
    expect(await statusOf(event.id)).toBe('pending');

    refuseClaims = false;
    const second = await startRouterProcess({ db: t.service('event_router'), region: region.slug, port, harpoon: { urls: [gate.url], token: HARPOON_TOKEN } });
    routers.push(second);
    // An agent that lost what it held reconnects without Last-Event-ID: the event comes again, now claimed.
    const s2 = await stream(second.url, region.slug, host);
    await waitFor(async () => carried(s2, event.id));
    await waitFor(async () => (await statusOf(event.id)) === 'running');
    const ack = await postAck(`${second.url}/v1/regions/${region.slug}/hypervisors/${host}/acks`, hvToken(host, region.slug), {
      event_id: event.id,
      received_at: new Date().toISOString(),
    });
    expect(ack).toEqual({ status: 200, json: { event_id: event.id, duplicate: false } });
    await waitFor(async () => (await statusOf(event.id)) === 'done');
    expect(await executions(event.id)).toBe(1);
  }, 90_000);
});
