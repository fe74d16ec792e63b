import { createServer, get, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Pool } from 'mysql2/promise';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createChangeLog, type ChangeLog } from '../../harpoon/change-log.ts';
import { readHorizon } from '../../harpoon/log-pruner.ts';
import { createHarpoonMetrics } from '../../harpoon/metrics.ts';
import { readLog } from '../../harpoon/store.ts';
import { createStreamHub, type StreamHub } from '../../harpoon/stream.ts';
import type { Change } from '../../harpoon/types.ts';
import type { EventFilter } from '../../harpoon/validate.ts';
import { createMysqlPool } from '../../lib/db/mysql-pool.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { waitFor } from '../helpers/seeded.ts';

/**
 * The stream hub (harpoon/stream.ts) on its own: a real change log over a real event_log, a node:http server whose
 * only route is hub.open, and subscribers reading the bytes. What each subscriber is sent, when, and what is counted.
 */
describe('the stream hub', () => {
  let t: TestDatabase;
  let pool: Pool;
  let server: Server;
  let url = '';
  let log: ChangeLog;
  let hub: StreamHub;
  let registry: Registry;
  /** When set, catch-up page reads wait for it. */
  let hold: Promise<void> | undefined;
  const errors: unknown[] = [];
  /** The catch-up's table reads, [after, upto, limit] each. */
  const pageReads: Array<[number, number, number]> = [];
  const clients: IncomingMessage[] = [];

  beforeAll(async () => {
    t = await createTestDatabase('stream_hub');
    pool = createMysqlPool(t.service('harpoon'), 4);
    server = createServer((req, res) => {
      const q = new URL(req.url!, 'http://x').searchParams;
      const filter: EventFilter = { regions: new Set(q.getAll('region')), types: new Set(), statuses: new Set(), unscheduled: false };
      hub.open(req, res, filter, Number(q.get('cursor') ?? 0), 'test');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await pool?.end();
    await t?.drop();
  });

  async function startHub(ringSize: number, heartbeatMs = 60_000, maxBufferedBytes = 1 << 20) {
    pageReads.length = 0;
    await t.db('event_log').del();
    await t.db('event_log_horizon').update({ pruned_through: 0 });
    registry = new Registry();
    log = createChangeLog(pool, { ringSize, gapWaitMs: 10 });
    await log.init();
    const metrics = createHarpoonMetrics(registry, { queueDepth: () => 0, subscribers: () => hub.count(), head: () => log.head(), readsInflight: () => 0 });
    hub = createStreamHub({
      log,
      readPage: async (after, upto, limit) => {
        pageReads.push([after, upto, limit]);
        await hold;
        return readLog(pool, after, upto, limit);
      },
      readHorizon: () => readHorizon(pool),
      metrics,
      heartbeatMs,
      maxBufferedBytes,
      onError: (err) => errors.push(err),
    });
  }
  beforeEach(() => {
    hold = undefined;
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.destroy();
    hub?.closeAll();
  });

  /** Commits log rows (region by slug in the payload, as Harpoon writes it) and returns them as changes. */
  async function commit(rows: Array<{ id: number; region: string; ageMs?: number; pad?: number }>): Promise<Change[]> {
    for (let i = 0; i < rows.length; i += 1000) {
      await t.db('event_log').insert(
        rows.slice(i, i + 1000).map((r) => ({
          id: r.id, event_id: r.id, kind: 'created', region_id: 1, type: 'reboot', status: 'pending',
          payload: JSON.stringify({ region: r.region, ...(r.pad ? { message: 'x'.repeat(r.pad) } : {}) }),
          committed_at: new Date(Date.now() - (r.ageMs ?? 0)).toISOString().replace('T', ' ').replace('Z', ''),
        })),
      );
    }
    return readLog(pool, Math.min(...rows.map((r) => r.id)) - 1, Math.max(...rows.map((r) => r.id)), rows.length);
  }

  /** A subscriber: the SSE frames it has read so far. */
  function subscribe(query: string) {
    let text = '';
    let ended = false;
    get(`${url}/?${query}`, (res) => {
      clients.push(res);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => (ended = true));
      res.on('error', () => {});
    }).on('error', () => {});
    const frames = () => text.split('\n\n').filter((f) => f.length > 0 && !f.startsWith('retry:'));
    return {
      frames,
      /** Cursors of the change frames. */
      ids: () => frames().filter((f) => !f.includes('event: ')).map((f) => Number(/^id: (\d+)/.exec(f)![1])),
      heartbeats: () => frames().filter((f) => f.includes('event: cursor')).length,
      ended: () => ended,
      text: () => text,
    };
  }
  const metric = async (name: string) => {
    const values = (await registry.getSingleMetric(name)!.get()).values as Array<{ value: number; metricName?: string }>;
    return Object.fromEntries(values.map((v) => [v.metricName ?? name, v.value]));
  };

  it('live: a region subscriber gets its region, a filterless one every change, batched or not; frames and delivery lag are counted; a closed subscriber is let go', async () => {
    await startHub(100);
    const nyc = subscribe('region=nyc1&cursor=0');
    const all = subscribe('cursor=0');
    await waitFor(async () => hub.count() === 2 && nyc.heartbeats() === 1 && all.heartbeats() === 1, 10_000, 10);
    await log.append(await commit([{ id: 1, region: 'nyc1', ageMs: 2_000 }, { id: 2, region: 'sfo1', ageMs: 2_000 }, { id: 3, region: 'nyc1', ageMs: 2_000 }]));
    await log.append(await commit([{ id: 4, region: 'sfo1' }]));
    await waitFor(async () => all.ids().length === 4 && nyc.ids().length === 2, 10_000, 10);
    expect(all.ids()).toEqual([1, 2, 3, 4]);
    expect(nyc.ids()).toEqual([1, 3]);
    expect((await metric('harpoon_stream_frames_total')).harpoon_stream_frames_total).toBe(6);
    const lag = await metric('harpoon_delivery_lag_seconds');
    expect(lag.harpoon_delivery_lag_seconds_count).toBe(4);
    // Three changes two seconds old and one just committed: about 6 s in all (seconds, not ms; never negative).
    expect(lag.harpoon_delivery_lag_seconds_sum).toBeGreaterThan(5.9);
    expect(lag.harpoon_delivery_lag_seconds_sum).toBeLessThan(20);

    clients[0]!.destroy();
    await waitFor(async () => hub.count() === 1, 10_000, 10);
    await log.append(await commit([{ id: 5, region: 'nyc1' }]));
    await waitFor(async () => all.ids().length === 5, 10_000, 10);
    expect((await metric('harpoon_stream_frames_total')).harpoon_stream_frames_total).toBe(7);
    expect(nyc.ids()).toEqual([1, 3]);
    expect(hub.oldestCatchUp()).toBeUndefined();
  });

  it('a subscriber catching up from the table is the oldest catch-up until it is live; heartbeats go to live subscribers only', async () => {
    await startHub(0, 40);
    await commit([1, 2, 3].map((id) => ({ id, region: 'nyc1' })));
    await log.catchUp();
    let release!: () => void;
    hold = new Promise<void>((r) => (release = r));
    // The later cursor opens first: the oldest catch-up is the lowest cursor, not the first subscriber.
    const fromTwo = subscribe('cursor=2');
    await waitFor(async () => hub.count() === 1, 10_000, 10);
    const fromOne = subscribe('cursor=1');
    const live = subscribe('cursor=3');
    await waitFor(async () => hub.count() === 3 && live.heartbeats() >= 3, 10_000, 10);
    expect(hub.oldestCatchUp()).toBe(1);
    // Only the frame every subscriber gets at open: no heartbeat while catching up.
    expect([fromOne.heartbeats(), fromTwo.heartbeats()]).toEqual([1, 1]);
    expect(live.frames().filter((f) => f.includes('event: cursor')).slice(1).every((f) => f.includes('data: {"cursor":3}'))).toBe(true);
    release();
    await waitFor(async () => fromOne.ids().length === 2 && fromTwo.ids().length === 1, 10_000, 10);
    expect([fromOne.ids(), fromTwo.ids(), live.ids()]).toEqual([[2, 3], [3], []]);
    expect(hub.oldestCatchUp()).toBeUndefined();
    await waitFor(async () => fromOne.heartbeats() >= 2, 10_000, 10);
  });

  it('a catch-up from below the pruning horizon ends with a too-old frame (HARPOON_ERR_CURSOR_TOO_OLD), counted', async () => {
    await startHub(0);
    await commit([4, 5].map((id) => ({ id, region: 'nyc1' })));
    await log.catchUp();
    await t.db('event_log_horizon').update({ pruned_through: 3 });
    const old = subscribe('cursor=1');
    await waitFor(async () => old.ended(), 10_000, 10);
    const tooOld = old.frames().find((f) => f.startsWith('event: too-old'))!;
    expect(JSON.parse(tooOld.split('data: ')[1]!)).toEqual({
      code: 'HARPOON_ERR_CURSOR_TOO_OLD',
      message: 'cursor 1 is older than the oldest change kept (event_log pruned through 3); read the current state (GET /v1/events) and resume from its cursor',
      horizon: 3,
    });
    expect(old.ids()).toEqual([]);
    expect((await metric('harpoon_stream_too_old_total')).harpoon_stream_too_old_total).toBe(1);
    expect(hub.count()).toBe(0);
    // From the horizon itself nothing was pruned that it needs.
    const fromHorizon = subscribe('cursor=3');
    await waitFor(async () => fromHorizon.ids().length === 2, 10_000, 10);
    expect(fromHorizon.ids()).toEqual([4, 5]);
  });

  it('a catch-up longer than a page is read page by page, each entry once and in order; a full last page is not taken for the end', async () => {
    await startHub(0);
    await commit(Array.from({ length: 2000 }, (_, i) => ({ id: i + 1, region: i % 2 ? 'nyc1' : 'sfo1' })));
    await log.catchUp();
    const all = subscribe('cursor=0');
    const nyc = subscribe('region=nyc1&cursor=1500');
    await waitFor(async () => all.ids().length === 2000 && nyc.ids().length === 250 && hub.oldestCatchUp() === undefined, 20_000, 20);
    expect(all.ids()).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
    expect(nyc.ids()).toEqual(Array.from({ length: 250 }, (_, i) => 1502 + 2 * i));
    // Two pages of exactly 1000 from 0, one short page from 1500; then both are live from memory.
    expect(pageReads.filter(([after]) => after !== 1500)).toEqual([[0, 2000, 1000], [1000, 2000, 1000]]);
    expect(pageReads.filter(([after]) => after === 1500)).toEqual([[1500, 2000, 1000]]);
    await log.append(await commit([{ id: 2001, region: 'nyc1' }]));
    await waitFor(async () => all.ids().length === 2001 && nyc.ids().length === 251, 10_000, 10);
  });

  it('a short page ends the catch-up even when the last ids up to the head are holes (a rolled-back batch)', async () => {
    await startHub(0);
    await commit([...Array.from({ length: 600 }, (_, i) => ({ id: i + 1, region: 'nyc1' })), { id: 700, region: 'nyc1' }]);
    await log.catchUp();
    // The log's head is 700; the table now ends at 600.
    await t.db('event_log').where('id', 700).del();
    const sub = subscribe('cursor=0');
    await waitFor(async () => sub.ids().length === 600 && hub.oldestCatchUp() === undefined, 10_000, 10);
    expect(pageReads).toEqual([[0, 700, 1000]]);
    await log.append(await commit([{ id: 701, region: 'nyc1' }]));
    await waitFor(async () => sub.ids().at(-1) === 701, 10_000, 10);
    expect(pageReads).toHaveLength(1);
  });

  it('a catch-up waits for a reader that stops reading instead of piling pages into its buffer, and goes on when it reads again', async () => {
    // 24 pages of about 1.1 MB: far more than the sockets hold. The bound is 8 MB; the catch-up stops adding past half of it.
    await startHub(0, 60_000, 8 << 20);
    const rows = 24_000;
    await commit(Array.from({ length: rows }, (_, i) => ({ id: i + 1, region: 'nyc1', pad: 1000 })));
    await log.catchUp();
    let received = 0;
    let last = 0;
    let inOrder = true;
    let response: IncomingMessage | undefined;
    let tail = '';
    get(`${url}/?cursor=0`, (res) => {
      response = res;
      clients.push(res);
      res.setEncoding('utf8');
      res.pause();
      res.on('data', (chunk: string) => {
        const parts = (tail + chunk).split('\n\n');
        tail = parts.pop()!;
        for (const f of parts) {
          const m = /^id: (\d+)\ndata:/.exec(f);
          if (!m) continue;
          const id = Number(m[1]);
          if (id !== last + 1) inOrder = false;
          last = id;
          received++;
        }
      });
    }).on('error', () => {});
    await waitFor(async () => (response ? true : undefined), 10_000, 10);
    await waitFor(async () => (pageReads.length >= 2 ? true : undefined), 10_000, 10);
    // Paused: the hub has stopped reading pages well short of the 24, and has cut nobody off.
    await new Promise((r) => setTimeout(r, 1000));
    const readsWhilePaused = pageReads.length;
    expect(readsWhilePaused).toBeLessThan(20);
    await new Promise((r) => setTimeout(r, 500));
    expect(pageReads.length).toBe(readsWhilePaused);
    expect((await metric('harpoon_stream_slow_cutoffs_total')).harpoon_stream_slow_cutoffs_total).toBe(0);
    expect(hub.count()).toBe(1);
    response!.resume();
    await waitFor(async () => (received === rows ? true : undefined), 60_000, 20);
    expect(inOrder).toBe(true);
    expect(pageReads.length).toBe(24);
    expect((await metric('harpoon_stream_slow_cutoffs_total')).harpoon_stream_slow_cutoffs_total).toBe(0);
  });

  it('a live subscriber that stops reading is cut off once its buffer passes the bound, and counted', async () => {
    await startHub(100, 60_000, 64 << 10);
    let response: IncomingMessage | undefined;
    let ended = false;
    get(`${url}/?cursor=0`, (res) => {
      response = res;
      clients.push(res);
      res.pause();
      res.on('close', () => (ended = true));
      res.on('error', () => {});
    }).on('error', () => {});
    await waitFor(async () => (response && hub.count() === 1 && hub.oldestCatchUp() === undefined ? true : undefined), 10_000, 10);
    // Live changes of about 50 KB each, to a reader that never reads: the sockets fill, then the bound.
    let id = 0;
    for (let round = 0; round < 200 && hub.count() > 0; round++) {
      const batch = Array.from({ length: 20 }, () => ({ id: ++id, region: 'nyc1', pad: 50_000 }));
      await log.append(await commit(batch));
    }
    expect(hub.count()).toBe(0);
    expect((await metric('harpoon_stream_slow_cutoffs_total')).harpoon_stream_slow_cutoffs_total).toBe(1);
    await waitFor(async () => (ended ? true : undefined), 10_000, 10);
  });

  it('closeAll ends every stream and forgets every subscriber', async () => {
    await startHub(10);
    const a = subscribe('cursor=0');
    const b = subscribe('region=nyc1&cursor=0');
    await waitFor(async () => hub.count() === 2 && a.heartbeats() === 1 && b.heartbeats() === 1, 10_000, 10);
    hub.closeAll();
    await waitFor(async () => a.ended() && b.ended(), 10_000, 10);
    expect(hub.count()).toBe(0);
    expect(errors).toEqual([]);
  });
});
