import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarpoon, type Harpoon } from '../../harpoon/create-harpoon.ts';
import { scopedHarpoonTokens } from '../../stack/harpoon-tokens.ts';
import type { SeedData } from '../../stack/seed/generate.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { insertEvent, seedWorld } from '../helpers/seeded.ts';

/**
 * Issue 12, point 11, its last part: Cloud's token (create + read) could create a reboot, power or destroy
 * event naming any hypervisor, whose agent then acts on a droplet it does not hold. Harpoon now addresses
 * such an event only to the hypervisor its droplet's latest placed create event names
 * (harpoon/droplet-servers.ts); anything else is 422 HARPOON_ERR_WRONG_SERVER and writes nothing.
 */
const T = { cloud: 'cloud-token-0123456789abcdef', router: 'router-token-0123456789abcdef', scheduler: 'sched-token-0123456789abcdef' };

describe('Harpoon addresses droplet events only to the droplet’s hypervisor (issue 12 point 11)', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let harpoon: Harpoon;
  let url: string;
  let region: string;
  /** Two seeded droplets on hypervisor `a` and one on `b` (the seed's droplets have no events at all). */
  let a: number;
  let b: number;
  let onA: number[];
  let onB: number;

  const call = async (token: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, body: (text.startsWith('{') ? JSON.parse(text) : {}) as Record<string, any> };
  };
  const counts = async () => {
    const [events] = (await t.db('events').count({ n: '*' })) as Array<{ n: number }>;
    const [log] = (await t.db('event_log').count({ n: '*' })) as Array<{ n: number }>;
    return { events: Number(events!.n), log: Number(log!.n) };
  };
  const expectRefused = async (token: string, body: unknown, pattern: RegExp) => {
    const before = await counts();
    const r = await call(token, 'POST', '/v1/events', body);
    expect(r, JSON.stringify(r.body)).toMatchObject({ status: 422, body: { code: 'HARPOON_ERR_WRONG_SERVER' } });
    expect(r.body.message).toMatch(pattern);
    expect(await counts()).toEqual(before);
  };

  beforeAll(async () => {
    t = await createTestDatabase('adv_harpoon_addressing');
    seed = await seedWorld(t.db, { hypervisors: 2, regions: 1 });
    await t.db('events').del();
    region = seed.regions[0]!.slug;
    [a, b] = [seed.servers[0]!.id, seed.servers[1]!.id];
    onA = seed.droplets.filter((d) => d.server_id === a).map((d) => d.id);
    onB = seed.droplets.find((d) => d.server_id === b)!.id;
    expect(onA.length).toBeGreaterThanOrEqual(2);
    const tokens = scopedHarpoonTokens({ cloud: T.cloud, scheduler: T.scheduler, routers: { [region]: T.router } });
    harpoon = createHarpoon({ db: t.service('harpoon'), tokens });
    url = (await harpoon.start()).url;
  });
  afterAll(async () => {
    await harpoon?.close();
    await t?.drop();
  });

  it('a Harpoon-era droplet: refused while its create is unplaced, then only on the hypervisor the scheduler placed it on', async () => {
    const droplet = onA[0]!;
    // Cloud's create arrives unplaced; placing it at creation is the scheduler's scope alone.
    expect((await call(T.cloud, 'POST', '/v1/events', { type: 'create', region, droplet_id: droplet, server_id: a })).status).toBe(403);
    const made = await call(T.cloud, 'POST', '/v1/events', { type: 'create', region, droplet_id: droplet });
    expect(made.status).toBe(201);
    const create = made.body.event.id as number;
    await expectRefused(T.cloud, { type: 'reboot', region, droplet_id: droplet, server_id: a }, /still being created/);

    expect((await call(T.scheduler, 'POST', `/v1/events/${create}/status`, { server_id: a })).status).toBe(200);
    // The forged one: the same droplet, another hypervisor; and one with no hypervisor at all.
    await expectRefused(T.cloud, { type: 'destroy', region, droplet_id: droplet, server_id: b }, new RegExp(`hypervisor ${a}, where its create event ${create} placed it, not to hypervisor ${b}`));
    await expectRefused(T.cloud, { type: 'power_off', region, droplet_id: droplet }, /not to no hypervisor/);

    const legit = await call(T.cloud, 'POST', '/v1/events', { type: 'reboot', region, droplet_id: droplet, server_id: a, key: 'outbox-1' });
    expect(legit.status, JSON.stringify(legit.body)).toBe(201);
    expect(legit.body.event).toMatchObject({ type: 'reboot', server_id: a, droplet_id: droplet, status: 'pending' });
    expect(legit.body.event.available_at).not.toBeNull();
    // The relay's retry with the same key is still the same event.
    expect((await call(T.cloud, 'POST', '/v1/events', { type: 'reboot', region, droplet_id: droplet, server_id: a, key: 'outbox-1' })).status).toBe(200);
    const log = await t.db('event_log').where({ event_id: legit.body.event.id }).select('kind', 'server_id');
    expect(log).toEqual([{ kind: 'created', server_id: a }]);
  });

  it('a batch writes the well-addressed events and refuses the misaddressed one alone', async () => {
    const droplet = onA[0]!;
    const before = await counts();
    const r = await call(T.cloud, 'POST', '/v1/events', {
      events: [
        { type: 'power_off', region, droplet_id: droplet, server_id: a },
        { type: 'destroy', region, droplet_id: droplet, server_id: b },
        { type: 'power_on', region, droplet_id: droplet, server_id: a },
      ],
    });
    expect(r.status).toBe(200);
    expect(r.body.events[0].event).toMatchObject({ type: 'power_off', server_id: a });
    expect(r.body.events[1].error.code).toBe('HARPOON_ERR_WRONG_SERVER');
    expect(r.body.events[2].event).toMatchObject({ type: 'power_on', server_id: a });
    expect(await counts()).toEqual({ events: before.events + 2, log: before.log + 2 });
    expect(await t.db('events').where({ droplet_id: droplet, server_id: b }).count({ n: '*' })).toEqual([{ n: 0 }]);
  });

  it('a droplet created before Harpoon (its create event written straight to the table) keeps its hypervisor', async () => {
    const droplet = onA[1]!;
    const legacyCreate = await insertEvent(t.db, { type: 'create', region_id: seed.regions[0]!.id, droplet_id: droplet, server_id: a, status: 'done' });
    await expectRefused(T.cloud, { type: 'reboot', region, droplet_id: droplet, server_id: b }, new RegExp(`its create event ${legacyCreate} placed it`));
    expect((await call(T.cloud, 'POST', '/v1/events', { type: 'reboot', region, droplet_id: droplet, server_id: a })).status).toBe(201);
  });

  it('a seeded droplet with no event at all is pinned by its first event', async () => {
    expect((await call(T.cloud, 'POST', '/v1/events', { type: 'reboot', region, droplet_id: onB, server_id: b })).status).toBe(201);
    await expectRefused(T.cloud, { type: 'destroy', region, droplet_id: onB, server_id: a }, new RegExp(`hypervisor ${b}, where its event \\d+ addressed it`));
  });

  it("a host's event (pdu_reboot, …, or any event for no droplet) picks the hypervisor itself: Cloud's token may not create one", async () => {
    const before = await counts();
    for (const body of [
      { type: 'pdu_reboot', region, server_id: a },
      { type: 'reboot', region, server_id: a },
      { type: 'node_unresponsive', region, droplet_id: onB, server_id: b },
      { events: [{ type: 'reboot', region, droplet_id: onB, server_id: b }, { type: 'ipmi_reboot', region, server_id: a }] },
    ]) {
      const r = await call(T.cloud, 'POST', '/v1/events', body);
      expect(r, JSON.stringify(r.body)).toMatchObject({ status: 403, body: { code: 'HARPOON_ERR_FORBIDDEN' } });
    }
    expect(await counts()).toEqual(before);
  });
});
