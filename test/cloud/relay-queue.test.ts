import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Knex } from 'knex';
import { Registry } from 'prom-client';
import { createCloudMetrics } from '../../cloud/metrics.ts';
import { insertOutbox, type OutboxEvent, type OutboxRow } from '../../cloud/outbox.ts';
import { createOutboxRelay, type OutboxRelay, type OutboxRelayOptions } from '../../cloud/relay.ts';
import { createHarpoonClient } from '../../harpoon/client.ts';
import type { Harpoon } from '../../harpoon/create-harpoon.ts';
import { createKnex } from '../../lib/db/knex.ts';
import { freePort } from '../../lib/net/free-port.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { HARPOON_TOKEN, startHarpoon } from '../helpers/harpoon.ts';
import { recordingLogger } from '../helpers/logs.ts';
import { metricValue } from '../helpers/upstream.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

/**
 * The relay's own queue (cloud/relay.ts) against a real Harpoon and the real outbox table, without a Cloud
 * above it: how rows are cut into requests, which failures are retried and which park a row, what a scan
 * takes over, and what close() waits for. The fetch under the Harpoon client is the real one, watched: each
 * POST's number of events is recorded, and one test holds a request open.
 */
const READ_TOKEN = 'test-harpoon-read-only-token-0001';

interface OutboxState {
  id: number;
  lease_owner: string | null;
  lease_live: number;
  parked_at: Date | null;
  attempts: number;
  last_error: string | null;
}

describe('the outbox relay on its own: requests, failures, scans, close', () => {
  let t: TestDatabase;
  let harpoon: Harpoon;
  let harpoonUrl = '';
  let db: Knex;
  let droplets: Array<{ id: number; customer_id: number }> = [];
  let region = '';
  const relays: OutboxRelay[] = [];

  beforeAll(async () => {
    t = await createTestDatabase('cloud_relay_queue');
    const seed = await seedWorld(t.db, { hypervisors: 2, regions: 1 });
    region = seed.regions[0]!.slug;
    droplets = (await t.db('droplets').orderBy('id').select('id', 'customer_id')) as Array<{ id: number; customer_id: number }>;
    ({ harpoon, url: harpoonUrl } = await startHarpoon(t.service('harpoon'), {
      tokens: { tests: HARPOON_TOKEN, reader: { token: READ_TOKEN, scopes: ['read'] } },
    }));
    db = createKnex(t.service('cloud'), { poolMax: 4 });
  });
  afterEach(async () => {
    await Promise.all(relays.splice(0).map((r) => r.close()));
    await t.db('event_outbox').delete();
  });
  afterAll(async () => {
    await db?.destroy();
    await harpoon?.close();
    await t?.drop();
  });

  /** A create event for the i-th seeded droplet (Harpoon accepts several creates per droplet; each row has its own key). */
  const event = (i: number, over: Partial<OutboxEvent> = {}): OutboxEvent => {
    const d = droplets[i % droplets.length]!;
    return { type: 'create', region, droplet_id: d.id, customer_id: d.customer_id, server_id: null, args: {}, ...over } as OutboxEvent;
  };

  /** An outbox row for `e`, as insertOutbox writes it (lease columns aside). */
  const rowOf = (e: OutboxEvent) => ({ droplet_id: e.droplet_id, customer_id: e.customer_id, type: e.type, payload: JSON.stringify(e) });

  /** Rows committed by a Cloud that is gone: their lease ran out a second ago. Returns the ids of all such rows. */
  async function orphanRows(events: OutboxEvent[]): Promise<number[]> {
    for (let i = 0; i < events.length; i += 200) {
      await t.db('event_outbox').insert(events.slice(i, i + 200).map((e) => ({ ...rowOf(e), lease_owner: 'gone:1:dead', lease_until: t.db.raw('NOW(3) - INTERVAL 1 SECOND') })));
    }
    return (await t.db('event_outbox').where('lease_owner', 'gone:1:dead').orderBy('id').pluck('id')) as number[];
  }

  const outbox = async (): Promise<OutboxState[]> =>
    (await t.db('event_outbox')
      .orderBy('id')
      .select('id', 'lease_owner', 'parked_at', 'attempts', 'last_error', t.db.raw('COALESCE(lease_until > NOW(3), 0) AS lease_live'))) as OutboxState[];

  /** A counter's value, read with the tree's one Prometheus parser. */
  const metric = async (registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> =>
    metricValue(await registry.metrics(), name, labels) ?? NaN;

  interface Watched {
    relay: OutboxRelay;
    registry: Registry;
    /** Events per POST /v1/events, in the order the requests went out. */
    sizes: number[];
    logs: ReturnType<typeof recordingLogger>;
  }

  function watchedRelay(
    o: Partial<OutboxRelayOptions> & { url?: string; token?: string; hold?: Promise<void> } = {},
  ): Watched {
    const sizes: number[] = [];
    const watchedFetch: typeof fetch = async (input, init) => {
      if (init?.method === 'POST') {
        sizes.push((JSON.parse(String(init.body)) as { events: unknown[] }).events.length);
        if (o.hold) await o.hold;
      }
      return fetch(input, init);
    };
    const registry = new Registry();
    const logs = recordingLogger('info');
    const { url, token, hold: _hold, ...options } = o;
    const relay = createOutboxRelay({
      db,
      harpoon: createHarpoonClient({ urls: url ?? harpoonUrl, token: token ?? HARPOON_TOKEN, fetch: watchedFetch, attempts: 1 }),
      logger: logs.logger,
      metrics: createCloudMetrics(registry),
      minBackoffMs: 10,
      maxBackoffMs: 40,
      ...options,
    });
    relays.push(relay);
    return { relay, registry, sizes, logs };
  }

  const commit = (relay: OutboxRelay, e: OutboxEvent): Promise<OutboxRow> => db.transaction((trx) => insertOutbox(trx, e, relay.lease()));

  it('a burst goes out in requests of at most `batch` rows; each row gets its event once and its row is deleted', async () => {
    const w = watchedRelay({ batch: 3 });
    const rows: OutboxRow[] = [];
    for (let i = 0; i < 7; i++) rows.push(await commit(w.relay, event(i)));
    // Submitted in one turn: the first row leaves alone, the rest queue behind it and go three at a time.
    const answers = await Promise.all(rows.map((r) => w.relay.submit(r)));
    expect(w.sizes).toEqual([1, 3, 3]);
    expect(answers.map((a) => a?.key)).toEqual(rows.map((r) => `outbox-${r.id}`));
    expect(answers.map((a) => a?.droplet_id)).toEqual(rows.map((r) => r.event.droplet_id));
    expect(new Set(answers.map((a) => a?.id)).size).toBe(7);
    // The counter moves after the rows' delete: wait for both.
    await waitFor(async () => ((await outbox()).length === 0 && (await metric(w.registry, 'cloud_outbox_relayed_total')) === 7 ? true : undefined), 5000, 20);
    const keys = (await t.db('events').whereIn('harpoon_key', rows.map((r) => `outbox-${r.id}`)).pluck('harpoon_key')) as string[];
    expect(keys.sort()).toEqual(rows.map((r) => `outbox-${r.id}`).sort());
    expect(w.relay.pending()).toBe(0);
    expect(await metric(w.registry, 'cloud_outbox_relayed_total')).toBe(7);
    expect(await metric(w.registry, 'cloud_outbox_relay_failures_total')).toBe(0);
  });

  it('a request Harpoon refuses whole is retried row by row: the bad row is parked at once, the others relayed', async () => {
    const w = watchedRelay({ batch: 10 });
    const ids = await orphanRows([event(0), event(1, { region: 'Not A Slug' }), event(2)]);
    await w.relay.scan();
    const state = await waitFor(async () => {
      const s = await outbox();
      return s.length === 1 && s[0]!.parked_at !== null && (await metric(w.registry, 'cloud_outbox_relayed_total')) === 2 ? s : undefined;
    }, 5000, 20);
    expect(w.sizes).toEqual([3, 1, 1, 1]);
    expect(state[0]).toMatchObject({ id: ids[1], lease_owner: null, attempts: 0 });
    expect(state[0]!.last_error).toMatch(/^HARPOON_ERR_VALIDATION: events\[0\]\.region must be a region slug/);
    const relayed = (await t.db('events').whereIn('harpoon_key', [`outbox-${ids[0]}`, `outbox-${ids[2]}`]).pluck('harpoon_key')) as string[];
    expect(relayed.sort()).toEqual([`outbox-${ids[0]}`, `outbox-${ids[2]}`].sort());
    expect(await metric(w.registry, 'cloud_outbox_taken_total')).toBe(3);
    expect(await metric(w.registry, 'cloud_outbox_relayed_total')).toBe(2);
    expect(await metric(w.registry, 'cloud_outbox_rejected_total')).toBe(1);
    expect(await metric(w.registry, 'cloud_outbox_parked_total', { reason: 'refused' })).toBe(1);
    expect(await metric(w.registry, 'cloud_outbox_parked_total', { reason: 'attempts' })).toBe(0);
    expect(await metric(w.registry, 'cloud_outbox_relay_failures_total')).toBe(0);
    const parkedLine = w.logs.records().find((r) => r.code === 'CLOUD_ERR_OUTBOX_PARKED');
    expect(parkedLine).toMatchObject({ level: 50, outbox_id: ids[1], type: 'create', reason: 'refused', component: 'cloud-outbox' });
    expect(String(parkedLine?.why)).toMatch(/^HARPOON_ERR_VALIDATION: /);
    expect(w.logs.records().find((r) => r.msg.startsWith('took over outbox rows'))).toMatchObject({ level: 30, rows: 3 });
  });

  it('an item Harpoon refuses in an accepted request is parked; its neighbours are relayed in the same request', async () => {
    const w = watchedRelay({ batch: 10 });
    const ids = await orphanRows([event(0), event(1), event(2)]);
    // The middle row's key already names another droplet's event (an outbox whose ids started again, say).
    const [other] = await createHarpoonClient({ urls: harpoonUrl, token: HARPOON_TOKEN }).createEvents([{ ...event(3), key: `outbox-${ids[1]}` }]);
    expect(other).toHaveProperty('event');
    await w.relay.scan();
    const state = await waitFor(async () => {
      const s = await outbox();
      return s.length === 1 && s[0]!.parked_at !== null && (await metric(w.registry, 'cloud_outbox_relayed_total')) === 2 ? s : undefined;
    }, 5000, 20);
    expect(w.sizes).toEqual([3]);
    expect(state[0]).toMatchObject({ id: ids[1], attempts: 0, lease_owner: null });
    expect(state[0]!.last_error).toMatch(new RegExp(`^HARPOON_ERR_KEY_CONFLICT: key "outbox-${ids[1]}" already created event`));
    expect(await metric(w.registry, 'cloud_outbox_relayed_total')).toBe(2);
    expect(await metric(w.registry, 'cloud_outbox_rejected_total')).toBe(1);
    expect(await metric(w.registry, 'cloud_outbox_parked_total', { reason: 'refused' })).toBe(1);
  });

  for (const [status, token, why] of [
    [401, 'test-harpoon-unknown-token-00001', /^the service token is not valid$/],
    [403, READ_TOKEN, /^the token "reader" may not /],
  ] as const) {
    it(`a ${status} (a token rotation under way) is retried with the failure counted on the row, never parked as refused`, async () => {
      const w = watchedRelay({ token, maxAttempts: 3 });
      const row = await commit(w.relay, event(0));
      expect(await w.relay.submit(row)).toBeUndefined();
      // The write's answer comes before the park is written.
      const [state] = await waitFor(async () => {
        const rows = await outbox();
        return rows[0]?.parked_at ? rows : undefined;
      }, 5000, 20);
      expect(state).toMatchObject({ id: row.id, attempts: 3, lease_owner: null });
      expect(state!.parked_at).not.toBeNull();
      expect(w.sizes).toEqual([1, 1, 1]);
      expect(await metric(w.registry, 'cloud_outbox_rejected_total')).toBe(0);
      expect(await metric(w.registry, 'cloud_outbox_parked_total', { reason: 'attempts' })).toBe(1);
      expect(await metric(w.registry, 'cloud_outbox_relay_failures_total')).toBe(3);
      const warnings = w.logs.records().filter((r) => r.msg.startsWith('could not relay outbox rows to Harpoon'));
      expect(warnings.map((r) => r.rows)).toEqual([1, 1, 1]);
      // Backoff doubles from minBackoffMs up to maxBackoffMs: 10, 20, 40.
      expect(warnings.map((r) => r.retryInMs)).toEqual([10, 20, 40]);
      for (const w of warnings) expect(String(w.err)).toMatch(why);
      expect(state!.last_error).toMatch(new RegExp(`^3 failed relays, the last: ${why.source.slice(1)}`));
    });
  }

  it('Harpoon down, then up: the failures are counted on the rows, the backoff stays under its cap, then each row is relayed once', async () => {
    const port = await freePort();
    const w = watchedRelay({ url: `http://127.0.0.1:${port}`, minBackoffMs: 20, maxBackoffMs: 50 });
    const rows = [await commit(w.relay, event(3)), await commit(w.relay, event(4))];
    const answers = rows.map((r) => w.relay.submit(r));
    await waitFor(async () => ((await outbox()).every((r) => r.attempts >= 3) ? true : undefined), 10_000, 20);
    const later = await startHarpoon(t.service('harpoon'), { port });
    try {
      const events = await Promise.all(answers);
      expect(events.map((e) => e?.key)).toEqual(rows.map((r) => `outbox-${r.id}`));
      await waitFor(async () => ((await outbox()).length === 0 && (await metric(w.registry, 'cloud_outbox_relayed_total')) === 2 ? true : undefined), 5000, 20);
      const count = await t.db('events').whereIn('harpoon_key', rows.map((r) => `outbox-${r.id}`)).count({ n: '*' }).first();
      expect(Number(count?.n)).toBe(2);
      const retries = w.logs.records().filter((r) => r.msg.startsWith('could not relay outbox rows to Harpoon')).map((r) => Number(r.retryInMs));
      expect(retries.slice(0, 3)).toEqual([20, 40, 50]);
      expect(Math.max(...retries)).toBe(50);
      expect(await metric(w.registry, 'cloud_outbox_relay_failures_total')).toBe(retries.length);
      expect(await metric(w.registry, 'cloud_outbox_relayed_total')).toBe(2);
      // After a success the backoff starts again from the bottom.
      const next = await commit(w.relay, event(5));
      await later.harpoon.close();
      expect(await Promise.race([w.relay.submit(next), new Promise((r) => setTimeout(() => r('still pending'), 300))])).toBe('still pending');
      const after = w.logs.records().filter((r) => r.msg.startsWith('could not relay outbox rows to Harpoon')).map((r) => Number(r.retryInMs));
      expect(after[retries.length]).toBe(20);
    } finally {
      await later.harpoon.close();
    }
  });

  it('a scan takes at most a page of expired rows, counts rows it already holds once, and leaves live and parked leases alone', async () => {
    const port = await freePort();
    // Nothing listens: taken rows stay queued, so the counts below are the scan's alone.
    const w = watchedRelay({ url: `http://127.0.0.1:${port}`, minBackoffMs: 60_000, maxBackoffMs: 60_000 });
    const orphans = await orphanRows(Array.from({ length: 501 }, (_, i) => event(i)));
    const live = (await t.db('event_outbox').insert({ ...rowOf(event(0)), lease_owner: 'other:2:live', lease_until: t.db.raw('NOW(3) + INTERVAL 60 SECOND') })) as number[];
    const parked = (await t.db('event_outbox').insert({ ...rowOf(event(1)), lease_owner: null, lease_until: t.db.raw('NOW(3) - INTERVAL 1 SECOND'), parked_at: t.db.raw('NOW(3)') })) as number[];

    await w.relay.scan();
    expect(w.relay.pending()).toBe(500);
    expect(await metric(w.registry, 'cloud_outbox_taken_total')).toBe(500);
    let state = await outbox();
    const mine = state.filter((r) => r.lease_owner === w.relay.lease().owner);
    expect(mine.map((r) => r.id)).toEqual(orphans.slice(0, 500));
    expect(mine.every((r) => Number(r.lease_live) === 1)).toBe(true);
    expect(state.find((r) => r.id === orphans[500])?.lease_owner).toBe('gone:1:dead');

    await w.relay.scan();
    expect(w.relay.pending()).toBe(501);
    expect(await metric(w.registry, 'cloud_outbox_taken_total')).toBe(501);
    state = await outbox();
    expect(state.filter((r) => r.lease_owner === w.relay.lease().owner).map((r) => r.id)).toEqual(orphans);
    expect(state.find((r) => r.id === live[0])).toMatchObject({ lease_owner: 'other:2:live', lease_live: 1 });
    expect(state.find((r) => r.id === parked[0])).toMatchObject({ lease_owner: null });
    // A scan with nothing expired takes nothing and queues nothing more.
    await w.relay.scan();
    expect(w.relay.pending()).toBe(501);
    expect(w.logs.records().filter((r) => r.msg.startsWith('took over outbox rows')).map((r) => r.rows)).toEqual([500, 1]);
  });

  it('a live relay renews the leases of the rows it holds, so another relay takes them only once it stops renewing', async () => {
    const port = await freePort();
    const a = watchedRelay({ url: `http://127.0.0.1:${port}`, leaseMs: 2000, scanMs: 1000, minBackoffMs: 60_000, maxBackoffMs: 60_000 });
    const b = watchedRelay({ url: `http://127.0.0.1:${port}`, leaseMs: 2000, scanMs: 1000, minBackoffMs: 60_000, maxBackoffMs: 60_000 });
    const row = await commit(a.relay, event(0));
    void a.relay.submit(row);
    await new Promise((r) => setTimeout(r, 1200));
    await a.relay.scan();
    // Past the lease the row was written with (2 s), well within the one renewed at 1.2 s.
    await new Promise((r) => setTimeout(r, 1200));
    await b.relay.scan();
    expect(await metric(b.registry, 'cloud_outbox_taken_total')).toBe(0);
    expect((await outbox())[0]).toMatchObject({ id: row.id, lease_owner: a.relay.lease().owner, lease_live: 1 });
    // A stops renewing (as if it hung): once the renewed lease runs out, B takes the row.
    await new Promise((r) => setTimeout(r, 1500));
    await b.relay.scan();
    expect(await metric(b.registry, 'cloud_outbox_taken_total')).toBe(1);
    expect(b.relay.pending()).toBe(1);
    expect((await outbox())[0]).toMatchObject({ id: row.id, lease_owner: b.relay.lease().owner, lease_live: 1 });
  });

  it('start() takes expired rows at once and then scans every scanMs', async () => {
    const w = watchedRelay({ scanMs: 100, leaseMs: 1000 });
    const [first] = await orphanRows([event(0)]);
    await w.relay.start();
    expect(w.relay.pending() + (await metric(w.registry, 'cloud_outbox_relayed_total'))).toBe(1);
    const [second] = await orphanRows([event(1)]);
    await waitFor(async () => ((await outbox()).length === 0 && (await metric(w.registry, 'cloud_outbox_relayed_total')) === 2 ? true : undefined), 5000, 20);
    expect(await metric(w.registry, 'cloud_outbox_taken_total')).toBe(2);
    const keys = (await t.db('events').whereIn('harpoon_key', [`outbox-${first}`, `outbox-${second}`]).pluck('harpoon_key')) as string[];
    expect(keys).toHaveLength(2);
  });

  it('close() lets the request in flight finish, answers the waiting writes with undefined, gives the leases up, and is idempotent', async () => {
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    const w = watchedRelay({ hold, leaseMs: 120_000 });
    const first = await commit(w.relay, event(0));
    const second = await commit(w.relay, event(1));
    const inFlight = w.relay.submit(first);
    const queued = w.relay.submit(second);
    expect(w.sizes).toEqual([1]);
    const closing = w.relay.close();
    expect(w.relay.close()).toBe(closing);
    let closed = false;
    void closing.then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(closed).toBe(false);
    release();
    await closing;
    // The request that was out finished and its row went; the queued one was not sent and stays, its lease given up.
    expect((await inFlight)?.key).toBe(`outbox-${first.id}`);
    expect(await queued).toBeUndefined();
    expect(w.sizes).toEqual([1]);
    expect(await outbox()).toEqual([expect.objectContaining({ id: second.id, lease_owner: w.relay.lease().owner, lease_live: 0 })]);
    // Closed: a submit answers undefined at once and sends nothing; a scan takes nothing.
    expect(await w.relay.submit(await commit(w.relay, event(2)))).toBeUndefined();
    await w.relay.scan();
    expect(w.sizes).toEqual([1]);
    expect(await metric(w.registry, 'cloud_outbox_taken_total')).toBe(0);
    // Another Cloud takes the released row at its next scan, long before the two-minute lease.
    const other = watchedRelay();
    await other.relay.scan();
    expect(await metric(other.registry, 'cloud_outbox_taken_total')).toBe(1);
  });

  it('a database that goes away under a running relay: each failed statement is logged, the relay keeps its rows and stops cleanly', async () => {
    const port = await freePort();
    const own = createKnex(t.service('cloud'), { poolMax: 2 });
    const w = watchedRelay({ db: own, url: `http://127.0.0.1:${port}`, scanMs: 50, leaseMs: 1000, minBackoffMs: 20, maxBackoffMs: 20 });
    await w.relay.start();
    const row = await commit(w.relay, event(0));
    await own.destroy();
    const answer = w.relay.submit(row);
    const warned = (text: string) => w.logs.records().filter((r) => r.level === 40 && r.msg.startsWith(text));
    await waitFor(async () => (warned('could not count the failed relay').length > 0 && warned('outbox scan failed').length > 0 ? true : undefined), 10_000, 20);
    expect(w.relay.pending()).toBe(1);
    await w.relay.close();
    expect(await answer).toBeUndefined();
    expect(warned('could not give the outbox leases up')).toHaveLength(1);
    for (const line of [...warned('could not count the failed relay'), ...warned('outbox scan failed'), ...warned('could not give the outbox leases up')]) {
      expect(line.err).toEqual(expect.any(String));
      expect(line.component).toBe('cloud-outbox');
    }
    // The row is as the failed relays left it: still this relay's, no attempt counted, nothing parked.
    expect(await outbox()).toEqual([expect.objectContaining({ id: row.id, attempts: 0, parked_at: null, lease_owner: w.relay.lease().owner })]);
  });

  it('close() during a backoff stops the retries: no request after it', async () => {
    const port = await freePort();
    const w = watchedRelay({ url: `http://127.0.0.1:${port}`, minBackoffMs: 200, maxBackoffMs: 200, scanMs: 50, leaseMs: 1000 });
    await w.relay.start();
    const answer = w.relay.submit(await commit(w.relay, event(0)));
    await waitFor(async () => (w.sizes.length >= 1 ? true : undefined), 5000, 10);
    await w.relay.close();
    expect(await answer).toBeUndefined();
    const sent = w.sizes.length;
    await new Promise((r) => setTimeout(r, 500));
    expect(w.sizes.length).toBe(sent);
    expect(await metric(w.registry, 'cloud_outbox_taken_total')).toBe(0);
  });
});
