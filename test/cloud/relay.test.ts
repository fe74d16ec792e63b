import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarpoon, type Harpoon } from '../../harpoon/create-harpoon.ts';
import { EVENT_WRITES } from '../../domain/features.ts';
import { freePort } from '../../lib/net/free-port.ts';
import type { SeedData } from '../../stack/seed/generate.ts';
import { cloudClient, startTestCloud, type TestCloud } from '../helpers/cloud.ts';
import { startCloudProcess, type CloudProcess } from '../helpers/cloud-process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { createBody, eventsPerDroplet, setFeature } from '../helpers/event-writes.ts';
import { HARPOON_TOKEN, HARPOON_TOKENS } from '../helpers/harpoon.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';
import { readOutboxHealth } from '../../cloud/outbox.ts';
import { Registry } from 'prom-client';
import { createCloudMetrics } from '../../cloud/metrics.ts';
import { createOutboxRelay, type OutboxRelayOptions } from '../../cloud/relay.ts';
import { createHarpoonClient } from '../../harpoon/client.ts';
import { createKnex } from '../../lib/db/knex.ts';
import { silentLogger } from '../../lib/logger.ts';
import { createCutoverAdmin } from '../../proxy/cutover/admin.ts';
import { validatePlan } from '../../proxy/cutover/plan.ts';
import { runCli } from '../helpers/cli.ts';

/**
 * The relay's leases (cloud/relay.ts, migrations/010): a live Cloud relays a dead one's rows once their
 * lease expires, exactly once in Harpoon; a row Harpoon refuses, or one that fails too often, is parked,
 * counted and shown by the table-wide gauge.
 */
const LEASE_MS = 2000;
const SCAN_MS = 200;

interface OutboxState {
  id: number;
  lease_owner: string | null;
  parked_at: Date | null;
  attempts: number;
  last_error: string | null;
}

describe('the outbox relay: leases, take-over, parking', () => {
  let t: TestDatabase;
  let seed: SeedData;
  let harpoon: Harpoon | undefined;
  let harpoonPort = 0;
  const procs: CloudProcess[] = [];
  const clouds: TestCloud[] = [];

  beforeAll(async () => {
    t = await createTestDatabase('cloud_relay_leases');
    seed = await seedWorld(t.db, { hypervisors: 2, regions: 1 });
    await setFeature(t.db, EVENT_WRITES, 'full');
    harpoonPort = await freePort();
  });
  afterAll(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    for (const c of clouds) await c.cloud.close();
    await harpoon?.close();
    await t?.drop();
  });

  const outbox = async (): Promise<OutboxState[]> => (await t.db('event_outbox').orderBy('id').select('id', 'lease_owner', 'parked_at', 'attempts', 'last_error')) as OutboxState[];
  const metric = (text: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

  const sum = async (line: RegExp): Promise<number> => {
    let n = 0;
    for (const c of clouds) n += Number(line.exec(await c.registry.metrics())?.[1] ?? 0);
    return n;
  };

  async function liveCloud(extra: { maxAttempts?: number; port?: number; leaseMs?: number } = {}): Promise<TestCloud> {
    const c = await startTestCloud(t, {
      directEvents: undefined,
      harpoon: { urls: [`http://127.0.0.1:${extra.port ?? harpoonPort}`], token: HARPOON_TOKEN },
      relayWaitMs: 100,
      outbox: { leaseMs: extra.leaseMs ?? LEASE_MS, scanMs: SCAN_MS, ...(extra.maxAttempts ? { maxAttempts: extra.maxAttempts } : {}) },
    });
    clouds.push(c);
    return c;
  }

  it('a Cloud killed with leased rows: a live Cloud leaves them while the lease is renewed, then relays each exactly once', async () => {
    // Harpoon is down: every create stays in the outbox, leased by the Cloud that wrote it.
    const a = await startCloudProcess({ db: t.service('cloud'), port: await freePort(), harpoon: { urls: [`http://127.0.0.1:${harpoonPort}`], token: HARPOON_TOKEN }, relayWaitMs: 100, outbox: { leaseMs: LEASE_MS, scanMs: SCAN_MS } });
    procs.push(a);
    const api = cloudClient(a.url);
    const token = seed.tokens.get(seed.customers[0]!.id)!;
    for (let i = 0; i < 5; i++) expect((await api('POST', '/v2/droplets', { token, json: createBody(`lease-${i}`, seed) })).status).toBe(202);
    const ids = (await t.db('droplets').where('name', 'like', 'lease-%').orderBy('id').pluck('id')) as number[];
    const owners = new Set((await outbox()).map((r) => r.lease_owner));
    expect(owners.size).toBe(1);
    const ownerA = [...owners][0]!;
    expect(ownerA).toMatch(/:\d+:/);

    // B is live and scanning; A is alive and renews: after more than a lease, the rows are still A's.
    const b = await liveCloud();
    await new Promise((r) => setTimeout(r, LEASE_MS * 2));
    expect((await outbox()).map((r) => r.lease_owner)).toEqual([ownerA, ownerA, ownerA, ownerA, ownerA]);
    expect(metric(await b.registry.metrics(), 'cloud_outbox_taken_total')).toBe(0);

    // A dies without draining, then Harpoon comes up: B takes A's rows once their lease expires and relays them.
    a.child.kill('SIGKILL');
    await a.exited;
    harpoon = createHarpoon({ db: t.service('harpoon'), tokens: HARPOON_TOKENS, port: harpoonPort });
    await harpoon.start();
    const state = await waitFor(async () => {
      const s = await eventsPerDroplet(t.db, ids);
      return s.outbox === 0 ? s : undefined;
    }, 30_000, 100);
    expect([...state.counts.values()]).toEqual([1, 1, 1, 1, 1]);
    const keys = (await t.db('events').whereIn('droplet_id', ids).pluck('harpoon_key')) as string[];
    expect(new Set(keys).size).toBe(5);
    const text = await b.registry.metrics();
    expect(metric(text, 'cloud_outbox_taken_total')).toBe(5);
    expect(metric(text, 'cloud_outbox_relayed_total')).toBe(5);
    expect(metric(text, 'cloud_outbox_parked_rows')).toBe(0);
  });

  it('a clean close gives the leases up: another Cloud relays the rows at its next scan, not after the lease', async () => {
    const deadPort = await freePort();
    // C points at no Harpoon, so its rows stay, under a lease far longer than the wait below; D relays to the real one.
    const c = await liveCloud({ port: deadPort, leaseMs: 120_000 });
    const token = seed.tokens.get(seed.customers[0]!.id)!;
    expect((await cloudClient(c.url)('POST', '/v2/droplets', { token, json: createBody('released-0', seed) })).status).toBe(202);
    await liveCloud();
    await new Promise((r) => setTimeout(r, SCAN_MS * 3));
    expect((await outbox()).length).toBe(1);
    await c.cloud.close();
    await waitFor(async () => ((await outbox()).length === 0 ? true : undefined), 10_000, 50);
    // B or D took it (C's lease had two minutes left).
    expect(await sum(/^cloud_outbox_taken_total (\S+)$/m)).toBe(6);
    const id = (await t.db('droplets').where('name', 'released-0').first('id')) as { id: number };
    expect((await eventsPerDroplet(t.db, [id.id])).counts.get(id.id)).toBe(1);
  });

  it('a poison row (Harpoon refuses it) is parked, counted and shown, and never retried', async () => {
    const b = clouds[0]!;
    const droplet = (await t.db('droplets').first('id', 'customer_id')) as { id: number; customer_id: number };
    const payload = { type: 'create', region: 'atlantis', droplet_id: droplet.id, customer_id: droplet.customer_id, server_id: null, args: {} };
    const [id] = (await t.db('event_outbox').insert({ droplet_id: droplet.id, customer_id: droplet.customer_id, type: 'create', payload: JSON.stringify(payload) })) as number[];
    const parked = await waitFor(async () => (await outbox()).find((r) => r.id === id && r.parked_at !== null), 10_000, 50);
    expect(parked.last_error).toMatch(/HARPOON_ERR_UNKNOWN_REGION/);
    expect(parked.lease_owner).toBeNull();
    // Whichever live Cloud took it parked it; the gauge is the table's, the same on every Cloud.
    expect(await sum(/^cloud_outbox_parked_total\{reason="refused"\} (\S+)$/m)).toBe(1);
    expect(metric(await b.registry.metrics(), 'cloud_outbox_parked_rows')).toBe(1);
    // Parked rows are left alone: several scans later nothing changed, and Harpoon has no event for it.
    await new Promise((r) => setTimeout(r, SCAN_MS * 5));
    expect((await outbox()).find((r) => r.id === id)).toEqual(parked);
    expect(await t.db('events').where('harpoon_key', `outbox-${id}`).first()).toBeUndefined();

    // The alarm an operator sees: a line in `strangler cutover status` (the admin's outbox report, as the stack wires it).
    const token = 'operator-token-outbox-0123456789abcdef';
    const admin = createCutoverAdmin({
      db: t.service('proxy'),
      tokens: { operator: token },
      services: {},
      plan: validatePlan({ version: 1, features: { 'event-writes': { steps: [{ name: 'full', mode: 'full', soak_seconds: 0, gates: [] }] } } }),
      watch: false,
      reports: { outbox: () => readOutboxHealth(t.db) },
    });
    const { url } = await admin.start();
    try {
      const status = await runCli(['cutover', 'status', '--url', url], { env: { STRANGLER_ADMIN_TOKEN: token } });
      expect(status.stdout).toMatch(/^OUTBOX PARKED: 1 row cannot be relayed to Harpoon/m);
      const json = await runCli(['cutover', 'status', '--url', url, '--json'], { env: { STRANGLER_ADMIN_TOKEN: token } });
      expect(JSON.parse(json.stdout).effects.outbox).toMatchObject({ parked: 1, pending: 0 });
    } finally {
      await admin.close();
    }
    await t.db('event_outbox').where('id', id).delete();
  });

  it('a row that keeps failing (Harpoon unreachable) is parked after maxAttempts, with the count kept on the row', async () => {
    const deadPort = await freePort();
    const e = await liveCloud({ port: deadPort, maxAttempts: 3 });
    const token = seed.tokens.get(seed.customers[0]!.id)!;
    expect((await cloudClient(e.url)('POST', '/v2/droplets', { token, json: createBody('attempts-0', seed) })).status).toBe(202);
    const parked = await waitFor(async () => (await outbox()).find((r) => r.parked_at !== null), 15_000, 50);
    expect(parked.attempts).toBe(3);
    expect(parked.last_error).toMatch(/3 failed relays/);
    const text = await e.registry.metrics();
    expect(text).toMatch(/^cloud_outbox_parked_total\{reason="attempts"\} 1$/m);
    expect(metric(text, 'cloud_outbox_parked_rows')).toBe(1);
  });
});

/** The relay's options are checked once, at construction, each error naming the option, the value and the range. */
describe('outbox relay options', () => {
  const db = createKnex({ host: '127.0.0.1', port: 9, user: 'nobody', password: '' }, { poolMax: 1 });
  afterAll(() => db.destroy());
  const relay = (o: Partial<OutboxRelayOptions>) =>
    createOutboxRelay({ db, harpoon: createHarpoonClient({ urls: 'http://127.0.0.1:9', token: HARPOON_TOKEN }), logger: silentLogger(), metrics: createCloudMetrics(new Registry()), ...o });

  it('accepts the bounds and refuses one past each, and fractions', () => {
    for (const ok of [{ leaseMs: 200, scanMs: 50 }, { leaseMs: 3_600_000, scanMs: 3_600_000 }, { leaseMs: 1000, scanMs: 50 }, { maxAttempts: 1 }]) expect(() => relay(ok), JSON.stringify(ok)).not.toThrow();
    const refused = (o: Partial<OutboxRelayOptions>, message: string) => expect(() => relay(o), JSON.stringify(o)).toThrow(expect.objectContaining({ code: 'CONFIG_ERR_INVALID_OPTION', message }));
    refused({ leaseMs: 199 }, 'option "leaseMs" must be an integer number of ms from 200 to 3600000, got 199');
    refused({ leaseMs: 3_600_001 }, 'option "leaseMs" must be an integer number of ms from 200 to 3600000, got 3600001');
    refused({ leaseMs: 1000.5 }, 'option "leaseMs" must be an integer number of ms from 200 to 3600000, got 1000.5');
    refused({ leaseMs: 1000, scanMs: 49 }, 'option "scanMs" must be an integer number of ms from 50 to 1000, got 49');
    refused({ leaseMs: 1000, scanMs: 1001 }, 'option "scanMs" must be an integer number of ms from 50 to 1000, got 1001');
    refused({ maxAttempts: 0 }, 'option "maxAttempts" must be an integer >= 1, got 0');
    refused({ maxAttempts: 1.5 }, 'option "maxAttempts" must be an integer >= 1, got 1.5');
  });
});
