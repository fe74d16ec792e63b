import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarpoonClient, type HarpoonClientError } from '../../harpoon/client.ts';
import type { Harpoon } from '../../harpoon/create-harpoon.ts';
import type { Change } from '../../harpoon/types.ts';
import { createLogPruner } from '../../harpoon/log-pruner.ts';
import { createMysqlPool } from '../../lib/db/mysql-pool.ts';
import { silentLogger } from '../../lib/logger.ts';
import { Registry } from 'prom-client';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { HARPOON_TOKEN, startHarpoon } from '../helpers/harpoon.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

/**
 * event_log pruning (harpoon/log-pruner.ts): entries past the retention window go, in bounded batches,
 * by whichever replica holds the prune lock; entries a resuming subscriber still needs stay; a cursor
 * older than what is kept gets an explicit 410 HARPOON_ERR_CURSOR_TOO_OLD, never a stream with a gap.
 */
// Long enough that the ten new entries stay inside the window while the test reads them on a loaded machine.
const RETENTION_MS = 4000;
const KEEP = 5;

describe('event_log pruning', () => {
  let t: TestDatabase;
  let region: string;
  const replicas: Array<{ harpoon: Harpoon; url: string }> = [];

  beforeAll(async () => {
    t = await createTestDatabase('harpoon_prune');
    const seed = await seedWorld(t.db, { hypervisors: 2, regions: 1 });
    region = seed.regions[0]!.slug;
    // Two replicas on one database, both pruning on a timer: the named lock lets one at a time delete.
    // A ring of KEEP entries, so an old cursor must be served from the log, not from memory.
    for (let i = 0; i < 2; i++) {
      replicas.push(await startHarpoon(t.service('harpoon'), { ringSize: KEEP, prune: { retentionMs: RETENTION_MS, batch: 7, intervalMs: 100 } }));
    }
  });
  afterAll(async () => {
    for (const r of replicas) await r.harpoon.close();
    await t?.drop();
  });

  const logIds = async (): Promise<number[]> => ((await t.db('event_log').orderBy('id').pluck('id')) as Array<number | string>).map(Number);
  const metric = async (r: { url: string }, name: string): Promise<number> => {
    const text = await (await fetch(`${r.url}/metrics`)).text();
    return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  };

  it('deletes entries behind the window in batches, keeps what a resuming subscriber needs, and answers a too-old cursor explicitly', async () => {
    const client = createHarpoonClient({ urls: [replicas[0]!.url], token: HARPOON_TOKEN });
    // 20 old entries (10 creates, 10 status changes), then, once they are past the window, 10 new ones.
    const old = await client.createEvents(Array.from({ length: 10 }, () => ({ type: 'create' as const, region })));
    for (const r of old) if ('event' in r) await client.setStatus(r.event.id, { status: 'running' });
    const oldIds = await logIds();
    expect(oldIds).toHaveLength(20);
    await new Promise((r) => setTimeout(r, RETENTION_MS + 200));
    const fresh = await client.createEvents(Array.from({ length: 10 }, () => ({ type: 'create' as const, region })));
    expect(fresh.every((r) => 'event' in r)).toBe(true);
    const all = await logIds();
    const newIds = all.filter((id) => !oldIds.includes(id));
    expect(newIds).toHaveLength(10);

    // Every old entry goes (3 batches of at most 7), none of the new ones: they are inside the window.
    await waitFor(async () => ((await logIds()).length === 10 ? true : undefined), 20_000, 50);
    expect(await logIds()).toEqual(newIds);
    const horizon = oldIds.at(-1)!;
    const [h] = (await t.db('event_log_horizon').pluck('pruned_through')) as Array<number | string>;
    expect(Number(h)).toBe(horizon);
    // Counted once across both replicas: the lock let one delete each entry.
    expect((await metric(replicas[0]!, 'harpoon_event_log_pruned_total')) + (await metric(replicas[1]!, 'harpoon_event_log_pruned_total'))).toBe(20);
    // The size gauges are read from the server after each run (every 100 ms here).
    await waitFor(async () => ((await metric(replicas[1]!, 'harpoon_event_log_horizon')) === horizon ? true : undefined), 5000, 50);
    expect(await metric(replicas[1]!, 'harpoon_event_log_bytes')).toBeGreaterThan(0);
    expect(Number.isFinite(await metric(replicas[1]!, 'harpoon_event_log_rows'))).toBe(true);

    // A subscriber that left at the horizon resumes on the other replica and gets every change after it, once, in order.
    const got: Change[] = [];
    const resumed = createHarpoonClient({ urls: [replicas[1]!.url], token: HARPOON_TOKEN }).subscribe({ cursor: horizon, onChange: (c) => got.push(c) });
    await waitFor(async () => (got.length >= 10 ? true : undefined), 10_000, 20);
    resumed.close();
    expect(got.map((c) => c.cursor)).toEqual(newIds);

    // One from before the horizon: an explicit 410, not a stream that silently skips the pruned entries.
    const raw = await fetch(`${replicas[1]!.url}/v1/stream?cursor=${horizon - 1}`, { headers: { authorization: `Bearer ${HARPOON_TOKEN}` } });
    expect(raw.status).toBe(410);
    const body = (await raw.json()) as { code: string; message: string };
    expect(body.code).toBe('HARPOON_ERR_CURSOR_TOO_OLD');
    expect(body.message).toContain(`pruned through ${horizon}`);
    // The client stops and says so instead of reconnecting forever from a cursor that cannot be served.
    const tooOld = await new Promise<HarpoonClientError>((resolve) => {
      createHarpoonClient({ urls: [replicas[0]!.url], token: HARPOON_TOKEN }).subscribe({ cursor: 0, onChange: () => undefined, onTooOld: resolve });
    });
    expect(tooOld).toMatchObject({ status: 410, code: 'HARPOON_ERR_CURSOR_TOO_OLD' });
    expect(await metric(replicas[0]!, 'harpoon_stream_too_old_total')).toBe(1);
  });

  it('keeps what a subscriber catching up still reads, and prunes only while it holds the named lock', async () => {
    for (const r of replicas.splice(0)) await r.harpoon.close();
    const { harpoon, url } = await startHarpoon(t.service('harpoon'), { prune: false });
    replicas.push({ harpoon, url });
    const client = createHarpoonClient({ urls: [url], token: HARPOON_TOKEN });
    // What the first test's replicas left (their last runs may have pruned some of its entries), and these 12.
    const before = (await logIds()).length;
    await client.createEvents(Array.from({ length: 12 }, () => ({ type: 'create' as const, region })));
    const ids = await logIds();
    expect(ids).toHaveLength(before + 12);
    const pool = createMysqlPool(t.service('harpoon'), 1);
    let protect: number | undefined = ids[3]!;
    const pruner = createLogPruner({ pool, registry: new Registry(), logger: silentLogger(), retentionMs: 0, keepRows: 2, batch: 4, protectFrom: () => protect });
    const lock = await t.db.client.acquireConnection();
    try {
      // Another replica's run holds the lock: this one does nothing.
      await t.db.raw(`SELECT GET_LOCK(CONCAT('harpoon_prune:', ?), 0)`, [t.name]).connection(lock);
      expect(await pruner.pruneOnce()).toMatchObject({ ran: false, deleted: 0 });
      expect(await logIds()).toEqual(ids);
      await t.db.raw(`SELECT RELEASE_LOCK(CONCAT('harpoon_prune:', ?))`, [t.name]).connection(lock);
    } finally {
      await t.db.client.releaseConnection(lock);
    }
    // A subscriber still catching up from ids[3]: nothing after it goes, whatever the window says.
    expect(await pruner.pruneOnce()).toMatchObject({ ran: true, deleted: 4, horizon: ids[3] });
    expect(await logIds()).toEqual(ids.slice(4));
    // It caught up: everything but the newest keepRows goes, in batches of 4.
    protect = undefined;
    expect(await pruner.pruneOnce()).toMatchObject({ ran: true, deleted: ids.length - 6, horizon: ids.at(-3) });
    expect(await logIds()).toEqual(ids.slice(-2));
    await pruner.close();
    await pool.end();
  });

  it('a catch-up that pruning overtakes (another replica pruned mid-read) ends with an explicit too-old frame, not a gap', async () => {
    for (const r of replicas.splice(0)) await r.harpoon.close();
    const { harpoon, url } = await startHarpoon(t.service('harpoon'), { prune: false, ringSize: 2 });
    replicas.push({ harpoon, url });
    await createHarpoonClient({ urls: [url], token: HARPOON_TOKEN }).createEvents(Array.from({ length: 8 }, () => ({ type: 'create' as const, region })));
    const ids = await logIds();
    const from = ids[0]!;
    const lock = await t.db.client.acquireConnection();
    let text: string;
    try {
      // The catch-up's read waits behind this lock; meanwhile "another replica" prunes past the subscriber's cursor.
      await t.db.raw('LOCK TABLES ??.event_log WRITE', [t.name]).connection(lock);
      const res = await fetch(`${url}/v1/stream?cursor=${from}`, { headers: { authorization: `Bearer ${HARPOON_TOKEN}` } });
      expect(res.status).toBe(200);
      await t.db.raw('DELETE FROM ??.event_log WHERE id <= ?', [t.name, ids[3]]).connection(lock);
      await t.db('event_log_horizon').update({ pruned_through: ids[3] });
      await t.db.raw('UNLOCK TABLES').connection(lock);
      text = await res.text(); // the stream ends after the frame
    } finally {
      await t.db.raw('UNLOCK TABLES').connection(lock).catch(() => undefined);
      await t.db.client.releaseConnection(lock);
    }
    expect(text).toMatch(/^event: too-old\ndata: .*"code":"HARPOON_ERR_CURSOR_TOO_OLD"/m);
    // Not one change was written: the subscriber is never handed a stream with ids[1..3] missing.
    expect(text).not.toMatch(/"kind":/);
    expect(await metric(replicas[0]!, 'harpoon_stream_too_old_total')).toBe(1);
  });
});
