import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import { createHarpoon, type Harpoon } from '../../harpoon/create-harpoon.ts';
import { lockdown, rollbackLockdown } from '../../harpoon/lockdown.ts';
import { writesViaHarpoon } from '../../cloud/event-writes.ts';
import { EVENT_WRITES } from '../../domain/features.ts';
import { cloudClient, startTestCloud, type TestCloud } from '../helpers/cloud.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { createBody, eventsPerDroplet, setFeature } from '../helpers/event-writes.ts';
import { HARPOON_TOKEN, HARPOON_TOKENS } from '../helpers/harpoon.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

describe('Cloud event-writes: the outbox to Harpoon, the fence, and reads through Harpoon at full', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let harpoon: Harpoon | undefined;
  let harpoonPort = 0;
  let cloud: TestCloud;
  let api: ReturnType<typeof cloudClient>;

  async function startHarpoonOnPort(): Promise<void> {
    harpoon = createHarpoon({ db: t.service('harpoon'), tokens: HARPOON_TOKENS, port: harpoonPort });
    harpoonPort = (await harpoon.start()).port;
  }

  beforeAll(async () => {
    t = await createTestDatabase('cloud_ew');
    seed = await seedWorld(t.db, { hypervisors: 4, regions: 2 });
    await startHarpoonOnPort();
    cloud = await startTestCloud(t, { harpoon: { urls: [`http://127.0.0.1:${harpoonPort}`], token: HARPOON_TOKEN }, relayWaitMs: 400 });
    api = cloudClient(cloud.url);
  });
  afterAll(async () => {
    await cloud?.cloud.close();
    await harpoon?.close();
    await t?.drop();
  });

  const tokenOf = (customerId: number) => seed.tokens.get(customerId)!;

  async function create(customerId: number, name: string) {
    const res = await api('POST', '/v2/droplets', { token: tokenOf(customerId), json: createBody(name, seed) });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res;
  }

  /** A droplet that a hypervisor has built: placed, active, its create done (set as the router would). */
  async function placed(customerId: number, name: string): Promise<number> {
    const res = await create(customerId, name);
    const id = res.body.droplet.id as number;
    const server = seed.servers.find((s) => s.region_id === seed.regions[0]!.id)!;
    await t.db('droplets').where({ id }).update({ server_id: server.id, status: 'active' });
    await t.db('events').where({ droplet_id: id }).update({ status: 'done', server_id: server.id, finished_at: t.db.raw('CURRENT_TIMESTAMP(3)') });
    return id;
  }

  it('canary: each customer stays on one path, and each droplet gets exactly one event either way', async () => {
    await setFeature(t.db, EVENT_WRITES, 'canary', 50);
    const customers = seed.customers.slice(0, 8).map((c) => c.id);
    const viaHarpoon = customers.filter((id) => writesViaHarpoon({ mode: 'canary', percent: 50, regions: null }, id));
    // The seed's customers fall on both sides (sticky buckets are a pure function of the id).
    expect(viaHarpoon.length).toBeGreaterThan(0);
    expect(viaHarpoon.length).toBeLessThan(customers.length);
    const made: Array<{ customer: number; droplet: number; action: number }> = [];
    for (const c of customers) {
      for (const n of [1, 2]) {
        const res = await create(c, `canary-${c}-${n}`);
        // The normal answer is today's: the create's action is linked.
        expect(res.body.links.actions).toHaveLength(1);
        made.push({ customer: c, droplet: res.body.droplet.id, action: res.body.links.actions[0].id });
      }
    }
    const { counts, outbox } = await eventsPerDroplet(t.db, made.map((m) => m.droplet));
    expect(outbox).toBe(0);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    const rows = (await t.db('events').whereIn('droplet_id', made.map((m) => m.droplet)).select('id', 'droplet_id', 'customer_id', 'harpoon_key')) as Array<{
      id: number;
      customer_id: number;
      harpoon_key: string | null;
    }>;
    for (const r of rows) {
      // Through Harpoon exactly for the canary's customers: keyed by the outbox row that carried it.
      expect(r.harpoon_key !== null, `customer ${r.customer_id}`).toBe(viaHarpoon.includes(r.customer_id));
      if (r.harpoon_key !== null) expect(r.harpoon_key).toMatch(/^outbox-\d+$/);
    }
    for (const m of made) expect(rows.find((r) => r.id === m.action)).toBeDefined();
    // An action Harpoon wrote reads through Cloud exactly like one Cloud wrote.
    const harpoonMade = made.find((m) => viaHarpoon.includes(m.customer))!;
    const read = await api('GET', `/v2/actions/${harpoonMade.action}`, { token: tokenOf(harpoonMade.customer) });
    expect(read.status).toBe(200);
    expect(read.body.action).toMatchObject({ id: harpoonMade.action, type: 'create', status: 'in-progress', resource_id: harpoonMade.droplet });
  });

  it('full after lockdown: creates, actions, destroys and action reads work without one statement on events', async () => {
    await setFeature(t.db, EVENT_WRITES, 'full');
    const customer = seed.customers[9]!.id;
    const droplet = await placed(customer, 'full-1');
    const eventsBefore = (await eventsPerDroplet(t.db, [droplet])).counts.get(droplet);
    await lockdown(t.db, t.name);
    try {
      const written = await cloud.registry.getSingleMetric('cloud_events_written_total')!.get();
      const direct = () => written.values.reduce((s, v) => s + v.value, 0);
      const directBefore = direct();
      const res = await create(customer, 'full-2');
      expect(res.body.links.actions).toHaveLength(1);
      const reboot = await api('POST', `/v2/droplets/${droplet}/actions`, { token: tokenOf(customer), json: { type: 'reboot' } });
      expect(reboot.status, JSON.stringify(reboot.body)).toBe(201);
      expect(reboot.body.action).toMatchObject({ type: 'reboot', status: 'in-progress', resource_id: droplet, resource_type: 'droplet', region_slug: seed.regions[0]!.slug });
      // Two concurrent DELETEs: the droplet row lock + outbox + Harpoon's in-flight read give one destroy.
      const [d1, d2] = await Promise.all([0, 1].map(() => api('DELETE', `/v2/droplets/${droplet}`, { token: tokenOf(customer) })));
      expect([d1!.status, d2!.status]).toEqual([204, 204]);
      const busy = await api('POST', `/v2/droplets/${droplet}/actions`, { token: tokenOf(customer), json: { type: 'power_off' } });
      expect(busy.status).toBe(422);
      expect(busy.body.code).toBe('CLOUD_ERR_DROPLET_BUSY');
      // Reads go through Harpoon, with the same shapes.
      const one = await api('GET', `/v2/actions/${reboot.body.action.id}`, { token: tokenOf(customer) });
      expect(one.status).toBe(200);
      expect(one.body.action).toEqual(reboot.body.action);
      const list = await api('GET', `/v2/droplets/${droplet}/actions?per_page=2`, { token: tokenOf(customer) });
      expect(list.status).toBe(200);
      expect(list.body.meta.total).toBe(eventsBefore! + 2);
      expect(list.body.actions.map((a: { type: string }) => a.type)).toEqual(['destroy', 'reboot']);
      expect(list.body.links.pages.next).toBe(`/v2/droplets/${droplet}/actions?page=2&per_page=2`);
      const all = await api('GET', '/v2/actions', { token: tokenOf(customer) });
      expect(all.status).toBe(200);
      expect(all.body.actions.length).toBe(all.body.meta.total);
      const other = await api('GET', `/v2/actions/${reboot.body.action.id}`, { token: tokenOf(seed.customers[10]!.id) });
      expect(other.status).toBe(404);
      expect(other.body.code).toBe('CLOUD_ERR_NOT_FOUND');
      expect(direct()).toBe(directBefore);
    } finally {
      await rollbackLockdown(t.db, t.name);
    }
    const types = (await t.db('events').where({ droplet_id: droplet }).pluck('type')) as string[];
    expect(types.filter((x) => x === 'destroy')).toHaveLength(1);
    expect(types.filter((x) => x === 'reboot')).toHaveLength(1);
  });

  it('full: four concurrent DELETEs of each of four droplets give one destroy event per droplet', async () => {
    await setFeature(t.db, EVENT_WRITES, 'full');
    const customer = seed.customers[14]!.id;
    const ids: number[] = [];
    for (let i = 0; i < 4; i++) ids.push(await placed(customer, `race-${i}`));
    const answers = await Promise.all(ids.flatMap((id) => [0, 1, 2, 3].map(() => api('DELETE', `/v2/droplets/${id}`, { token: tokenOf(customer) }))));
    expect(answers.map((a) => a.status)).toEqual(Array(16).fill(204));
    await waitFor(async () => (await eventsPerDroplet(t.db, ids)).outbox === 0 || undefined, 10_000, 50);
    const destroys = (await t.db('events').whereIn('droplet_id', ids).where({ type: 'destroy' }).groupBy('droplet_id').select('droplet_id').count({ n: '*' })) as Array<{ n: number }>;
    expect(destroys.map((d) => Number(d.n))).toEqual([1, 1, 1, 1]);
  });

  it('Harpoon down: creates still answer, the outbox holds them; Harpoon back: every droplet has exactly one event', async () => {
    await setFeature(t.db, EVENT_WRITES, 'full');
    const customer = seed.customers[11]!.id;
    await harpoon!.close();
    harpoon = undefined;
    const droplets: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await create(customer, `outage-${i}`);
      // Answered with what is known once relayWaitMs passed: the droplet, and no action id yet.
      expect(res.body.droplet).toMatchObject({ name: `outage-${i}`, status: 'new' });
      expect(res.body.links.actions).toEqual([]);
      droplets.push(res.body.droplet.id);
    }
    let state = await eventsPerDroplet(t.db, droplets);
    expect(state.outbox).toBe(5);
    expect([...state.counts.values()]).toEqual([0, 0, 0, 0, 0]);
    // An action needs Harpoon's view of what is in flight at full: refused, nothing written.
    const placedId = droplets[0]!;
    await t.db('droplets').where({ id: placedId }).update({ server_id: seed.servers[0]!.id, status: 'active' });
    const refused = await api('POST', `/v2/droplets/${placedId}/actions`, { token: tokenOf(customer), json: { type: 'reboot' } });
    expect(refused.status).toBe(503);
    expect(refused.body.code).toBe('CLOUD_ERR_EVENTS_UNAVAILABLE');
    expect((await eventsPerDroplet(t.db, droplets)).outbox).toBe(5);
    await startHarpoonOnPort();
    // The relay lets a row go (cloud_outbox_pending) just after deleting it: wait for both.
    state = await waitFor(async () => {
      const s = await eventsPerDroplet(t.db, droplets);
      return s.outbox === 0 && /^cloud_outbox_pending 0$/m.test(await cloud.registry.metrics()) ? s : undefined;
    }, 20_000, 100);
    expect([...state.counts.values()]).toEqual([1, 1, 1, 1, 1]);
    const text = await cloud.registry.metrics();
    expect(Number(/^cloud_outbox_relay_failures_total (\d+)/m.exec(text)?.[1])).toBeGreaterThan(0);
    expect(text).toMatch(/^cloud_outbox_pending 0$/m);
  });

  it('the fence: a write waits for an uncommitted switch of the event-writes row and decides from the committed state', async () => {
    await setFeature(t.db, EVENT_WRITES, 'legacy');
    const customer = seed.customers[13]!.id;
    const trx = await t.db.transaction();
    let answered = false;
    try {
      // The controller's switch to full, not yet committed: it holds the row's exclusive lock.
      await trx.raw("UPDATE cutover_features SET mode = 'full', percent = 100, version = version + 1 WHERE feature = ?", [EVENT_WRITES]);
      const pending = create(customer, 'fenced').then((res) => {
        answered = true;
        return res;
      });
      await new Promise((r) => setTimeout(r, 400));
      // Blocked on its first statement (the share-locked read): no droplet row exists yet.
      expect(answered).toBe(false);
      expect(await t.db('droplets').where({ name: 'fenced' }).first('id')).toBeUndefined();
      await trx.commit();
      const res = await pending;
      const key = (await t.db('events').where({ droplet_id: res.body.droplet.id }).pluck('harpoon_key')) as string[];
      // Decided from the committed `full`: through the outbox, not a direct INSERT.
      expect(key).toHaveLength(1);
      expect(key[0]).toMatch(/^outbox-\d+$/);
    } finally {
      if (!trx.isCompleted()) await trx.rollback();
    }
  });

  it('legacy: no outbox row and no Harpoon call; the events row is written directly as before', async () => {
    await setFeature(t.db, EVENT_WRITES, 'legacy');
    const customer = seed.customers[12]!.id;
    const res = await create(customer, 'legacy-1');
    const row = (await t.db('events').where({ id: res.body.links.actions[0].id }).first('harpoon_key', 'droplet_id')) as { harpoon_key: string | null; droplet_id: number };
    expect(row).toEqual({ harpoon_key: null, droplet_id: res.body.droplet.id });
    expect((await eventsPerDroplet(t.db, [row.droplet_id])).outbox).toBe(0);
  });
});
