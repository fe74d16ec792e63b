import type { Pool } from 'mysql2/promise';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMysqlEventSource } from '../../legacy/router/mysql-source.ts';
import { createMysqlPool } from '../../lib/db/mysql-pool.ts';
import { silentLogger } from '../../lib/logger.ts';
import { createAckProcessor, createAckSlots } from '../../router/acks.ts';
import type { EventSource } from '../../router/event-source.ts';
import { createRouterMetrics } from '../../router/metrics.ts';
import { routerSettings } from '../../router/options.ts';
import { createStreamHub, type StreamHub } from '../../router/streams.ts';
import { agentEvent } from '../helpers/agent-event.ts';
import { TEST_HV_KEYS, createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { insertEvent, seedWorld, waitFor } from '../helpers/seeded.ts';

/** Ack slots (router/acks.ts): acks never take the poll's connection, whatever their number. */
describe('ack slots', () => {
  let t: TestDatabase;
  let pool: Pool;
  const POOL = 3;

  beforeAll(async () => {
    t = await createTestDatabase('router_acks');
    pool = createMysqlPool(t.service('event_router'), POOL);
  });
  afterAll(async () => {
    await pool?.end();
    await t?.drop();
  });

  /** Runs `n` acks that each hold a connection (SLEEP on the server) and reports how many ran at once, as the server saw them. */
  async function flood(n: number): Promise<{ results: number[]; peak: number }> {
    const slots = createAckSlots(pool, POOL);
    let running = 0;
    let peak = 0;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        slots.withConnection(async (conn) => {
          peak = Math.max(peak, ++running);
          try {
            const [rows] = await conn.query('SELECT SLEEP(0.05) AS s, CONNECTION_ID() AS c, ? AS i', [i]);
            return Number((rows as Array<{ i: number }>)[0]!.i);
          } finally {
            running--;
          }
        }),
      ),
    );
    return { results, peak };
  }

  it('runs every ack, at most pool size - 1 at a time (one connection is always left to the poll), in the order they came', async () => {
    const { results, peak } = await flood(8);
    expect(results).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(peak).toBe(POOL - 1);
  });

  it('a failing ack gives its slot and connection back; the next ones still run', async () => {
    const slots = createAckSlots(pool, POOL);
    const outcomes = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) =>
        slots.withConnection(async (conn) => {
          if (i % 2 === 0) throw new Error(`ack ${i} failed`);
          await conn.query('SELECT 1');
          return i;
        }),
      ),
    );
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
    expect((await flood(4)).peak).toBe(POOL - 1);
  });

  it('withSlot bounds work that takes no connection of its own the same way', async () => {
    const slots = createAckSlots(pool, POOL);
    let running = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 6 }, () =>
        slots.withSlot(async () => {
          peak = Math.max(peak, ++running);
          await pool.query('SELECT SLEEP(0.02)');
          running--;
        }),
      ),
    );
    expect(peak).toBe(POOL - 1);
  });
});

/**
 * The ack processor (router/acks.ts) on the MySQL source, as the router wires it, without HTTP: what an
 * agent's acks record, and that a batch with another host's event records nothing.
 */
describe('acknowledgements', () => {
  let t: TestDatabase;
  let pool: Pool;
  let registry: Registry;
  let hub: StreamHub;
  let source: EventSource;
  let acks: ReturnType<typeof createAckProcessor>;
  /** The source's statements by name (`ack`: one completion transaction). */
  const queries: string[] = [];

  beforeAll(async () => {
    t = await createTestDatabase('router_ack_processor');
    await seedWorld(t.db, { hypervisors: 3, regions: 1 });
    await t.db('events').del();
    pool = createMysqlPool(t.service('event_router'), 4);
    registry = new Registry();
    const metric = createRouterMetrics(registry, { connected: () => 0, inflight: () => 0, source: () => 'mysql', harpoonConnected: () => false, harpoonCursor: () => undefined });
    const log = silentLogger();
    hub = createStreamHub({ metric, log });
    const slots = createAckSlots(pool, 4);
    const settings = routerSettings({ db: t.service('event_router'), region: 'nyc1', hypervisorKeys: TEST_HV_KEYS, legacySource: createMysqlEventSource });
    source = createMysqlEventSource({
      settings, regionId: 1, pool, hub, metric, log, countQuery: (name: string) => queries.push(name), withAckConnection: slots.withConnection, withAckSlot: slots.withSlot,
      claimsSettled: () => {}, closed: () => false,
    });
    acks = createAckProcessor({ hub, metric });
  });
  afterAll(async () => {
    await pool?.end();
    await t?.drop();
  });

  const item = (eventId: number) => ({ eventId, receivedAt: new Date() });
  const status = async (id: number) => (await t.db('events').where({ id }).first()).status as string;
  const executions = async (id: number) => (await t.db('event_executions').where({ event_id: id })).length;
  async function counter(name: string): Promise<number> {
    return (await registry.getSingleMetric(name)!.get()).values.reduce((sum, v) => sum + v.value, 0);
  }

  it('records a running event of its own host once; a repeat, in the same batch or later, is a duplicate', async () => {
    const id = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 1, status: 'running' });
    const [ackedBefore, dupBefore, countBefore] = [await counter('router_events_acked_total'), await counter('router_ack_duplicates_total'), acks.acked()];
    const completions = queries.filter((q) => q === 'ack').length;
    expect(await acks.acknowledge(1, [item(id), item(id)], source)).toEqual([
      { event_id: id, outcome: 'acked' },
      { event_id: id, outcome: 'duplicate' },
    ]);
    // The batch's repeat is answered from the row it just completed: one completion transaction, not two.
    expect(queries.filter((q) => q === 'ack').length).toBe(completions + 1);
    expect(await acks.acknowledge(1, [item(id)], source)).toEqual([{ event_id: id, outcome: 'duplicate' }]);
    expect(await status(id)).toBe('done');
    expect(await executions(id)).toBe(1);
    expect(await counter('router_events_acked_total')).toBe(ackedBefore + 1);
    expect(await counter('router_ack_duplicates_total')).toBe(dupBefore + 2);
    expect(acks.acked()).toBe(countBefore + 1);
  });

  it('an event never claimed is not_claimed, an unknown one not_found; neither is recorded or counted', async () => {
    const pending = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 1 });
    const acked = await counter('router_events_acked_total');
    const duplicates = await counter('router_ack_duplicates_total');
    expect(await acks.acknowledge(1, [item(pending), item(987_654_321)], source)).toEqual([
      { event_id: pending, outcome: 'not_claimed' },
      { event_id: 987_654_321, outcome: 'not_found' },
    ]);
    expect(await status(pending)).toBe('pending');
    expect(await executions(pending)).toBe(0);
    expect(await counter('router_events_acked_total')).toBe(acked);
    expect(await counter('router_ack_duplicates_total')).toBe(duplicates);
  });

  it('a delivered event another router already completed is a duplicate and leaves the in-flight set; one the source will not record stays in flight', async () => {
    const done = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 3, status: 'running' });
    hub.deliver(agentEvent({ event_id: done, server_id: 3, event_status: 'running' }), true);
    await t.db('events').where({ id: done }).update({ status: 'done' });
    const duplicates = await counter('router_ack_duplicates_total');
    expect(await acks.acknowledge(3, [item(done)], source)).toEqual([{ event_id: done, outcome: 'duplicate' }]);
    expect(hub.inflight.has(done)).toBe(false);
    expect(await counter('router_ack_duplicates_total')).toBe(duplicates + 1);

    // Failed meanwhile (status error): the completion records nothing; the event is not settled, nothing is counted.
    const failed = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 3, status: 'running' });
    hub.deliver(agentEvent({ event_id: failed, server_id: 3, event_status: 'running' }), true);
    await t.db('events').where({ id: failed }).update({ status: 'error' });
    const acked = await counter('router_events_acked_total');
    expect(await acks.acknowledge(3, [item(failed)], source)).toEqual([{ event_id: failed, outcome: 'not_claimed' }]);
    expect(hub.inflight.has(failed)).toBe(true);
    expect(await counter('router_events_acked_total')).toBe(acked);
    expect(await counter('router_ack_duplicates_total')).toBe(duplicates + 1);
    hub.settled(failed, 3);
  });

  it('a completion in progress is pending (what close() waits for) until it ends', async () => {
    const id = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 2, status: 'running' });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    // The real source, its completion held until the test lets it go.
    const holding: EventSource = { ...source, complete: async (...args) => { await held; return source.complete(...args); } };
    const ack = acks.acknowledge(2, [item(id)], holding);
    await waitFor(async () => acks.pending().length === 1, 5_000, 5);
    expect(await status(id)).toBe('running');
    release();
    expect(await ack).toEqual([{ event_id: id, outcome: 'acked' }]);
    expect(acks.pending()).toEqual([]);
  });

  it("a batch holding another host's event is refused whole (403): not even the own host's events are recorded", async () => {
    const mine = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 1, status: 'running' });
    const theirs = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 2, status: 'running' });
    await expect(acks.acknowledge(1, [item(mine), item(theirs)], source)).rejects.toMatchObject({
      code: 'ROUTER_ERR_FORBIDDEN',
      status: 403,
      message: expect.stringContaining(`event ${theirs} belongs to another hypervisor; nothing was recorded`),
    });
    expect([await status(mine), await status(theirs)]).toEqual(['running', 'running']);
    expect(await executions(mine)).toBe(0);
    expect(await executions(theirs)).toBe(0);
  });

  it("an event this router delivered is acked from memory, even before its claim got through, and leaves the router's in-flight set", async () => {
    const id = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 3 });
    hub.deliver(agentEvent({ event_id: id, server_id: 3, event_status: 'pending' }), true);
    expect(hub.inflight.has(id)).toBe(true);
    expect(await acks.acknowledge(3, [item(id)], source)).toEqual([{ event_id: id, outcome: 'acked' }]);
    expect(await status(id)).toBe('done');
    expect(await executions(id)).toBe(1);
    expect(hub.inflight.has(id)).toBe(false);
    // In memory for another host: refused like one read from the table.
    const other = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 3, status: 'running' });
    hub.deliver(agentEvent({ event_id: other, server_id: 3 }), true);
    await expect(acks.acknowledge(1, [item(other)], source)).rejects.toMatchObject({ code: 'ROUTER_ERR_FORBIDDEN' });
    expect(hub.inflight.has(other)).toBe(true);
  });

  it('two acks of one event at once in this process: one records, the other is a duplicate; nothing is left pending', async () => {
    for (let round = 0; round < 3; round++) {
      const id = await insertEvent(t.db, { type: 'reboot', region_id: 1, server_id: 2, status: 'running' });
      const outcomes = await Promise.all([acks.acknowledge(2, [item(id)], source), acks.acknowledge(2, [item(id)], source)]);
      expect(outcomes.flat().map((r) => r.outcome).sort()).toEqual(['acked', 'duplicate']);
      expect(await executions(id)).toBe(1);
    }
    expect(acks.pending()).toEqual([]);
  });
});

