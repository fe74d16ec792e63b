import type { Knex } from 'knex';
import type { SizeSpec } from './filters.ts';

/** A create event this replica holds a lease on, with what ranking needs. */
export interface ClaimedEvent {
  id: number;
  droplet_id: number | null;
  customer_id: number | null;
  region_id: number;
  size: SizeSpec | null;
  /** performance.now() when the claim committed (placement latency starts here). */
  claimed_at: number;
  /** The event's created_at, ms since the epoch (queueing time). */
  created_ms: number;
}

interface DetailRow {
  id: number | string;
  droplet_id: number | null;
  region_id: number;
  created_at: string;
  customer_id: number | null;
  slug: string | null;
  memory: number | null;
  vcpus: number | null;
  disk: number | null;
}

/** Created by migrations/001_legacy_schema.ts: `(status, type, server_id)`. */
const CLAIM_INDEX = 'events_status_type_server_id_index';

/**
 * Leases up to `limit` unscheduled create events for `replica`, oldest
 * first. `FOR UPDATE SKIP LOCKED` in a short transaction: replicas claiming
 * at the same moment get disjoint rows instead of waiting on each other. An
 * event whose lease expired (its replica died, or it was told to wait) is
 * claimable again. The lease is on the database clock, so replicas' clocks
 * do not matter.
 */
export async function claimEvents(
  db: Knex,
  replica: string,
  options: {
    limit: number;
    leaseMs: number;
    regionIds?: readonly number[];
    /** Only events created at least this long ago (helping with another replica's regions). */
    olderThanMs?: number;
    /** Called with the ids once they are locked, before the lease is written (to start reading their details meanwhile). */
    onLocked?: (ids: number[]) => void;
  },
): Promise<number[]> {
  return db.transaction(
    async (trx) => {
      // The legacy (status, type, server_id) index returns rows in id order (its implicit suffix), so the
      // LIMIT stops the scan and only the rows returned are locked; a plan that sorts would lock every
      // candidate and leave nothing for the other replicas to claim. FORCE INDEX keeps the plan.
      const q = trx
        .from(trx.raw('?? FORCE INDEX (??)', ['events', CLAIM_INDEX]))
        .where({ type: 'create', status: 'pending' })
        .whereNull('server_id')
        .where((w) => w.whereNull('claim_expires_at').orWhere('claim_expires_at', '<', trx.raw('CURRENT_TIMESTAMP(3)')))
        .orderBy('id')
        .limit(options.limit)
        .select('id')
        .forUpdate()
        .skipLocked();
      if (options.regionIds) q.whereIn('region_id', options.regionIds);
      if (options.olderThanMs !== undefined) q.where('created_at', '<', trx.raw('CURRENT_TIMESTAMP(3) - INTERVAL ? MICROSECOND', [Math.round(options.olderThanMs * 1000)]));
      const ids = ((await q) as Array<{ id: number | string }>).map((r) => Number(r.id));
      if (ids.length === 0) return ids;
      options.onLocked?.(ids);
      await trx('events')
        .whereIn('id', ids)
        .update({ claimed_by: replica, claim_expires_at: leaseExpiry(trx, options.leaseMs) });
      return ids;
    },
    { isolationLevel: 'read committed' },
  );
}

/**
 * claimEvents, then what ranking needs of the claimed events (loadClaimed);
 * the details are read on another connection while the claim writes its
 * lease and commits, so the batch waits for one round trip less. A plain
 * read: it neither waits for nor takes the claim's row locks.
 *
 * @example
 *   const events = await claimAndLoad(db, 'v2-a', { limit: 100, leaseMs: 5000 });
 */
export async function claimAndLoad(db: Knex, replica: string, options: Omit<Parameters<typeof claimEvents>[2], 'onLocked'>): Promise<ClaimedEvent[]> {
  let details: Promise<ClaimedEvent[]> | undefined;
  const ids = await claimEvents(db, replica, {
    ...options,
    onLocked: (locked) => {
      details = loadClaimed(db, locked, 0);
      // Awaited below; if the claim fails first, this rejection must not go unhandled.
      details.catch(() => {});
    },
  });
  if (ids.length === 0 || !details) return [];
  const claimedAt = performance.now();
  return (await details).map((e) => ({ ...e, claimed_at: claimedAt }));
}

/** CURRENT_TIMESTAMP(3) + ms, on the database clock. */
export function leaseExpiry(db: Knex | Knex.Transaction, ms: number): Knex.Raw {
  return db.raw('CURRENT_TIMESTAMP(3) + INTERVAL ? MICROSECOND', [Math.max(0, Math.round(ms)) * 1000]);
}

/** Reads what ranking needs of claimed events: region, customer, size of the droplet. */
export async function loadClaimed(db: Knex, ids: readonly number[], claimedAt: number): Promise<ClaimedEvent[]> {
  if (ids.length === 0) return [];
  const rows = (await db('events as e')
    .leftJoin('droplets as d', 'd.id', 'e.droplet_id')
    .leftJoin('sizes as z', 'z.id', 'd.size_id')
    .whereIn('e.id', ids)
    .orderBy('e.id')
    .select('e.id', 'e.droplet_id', 'e.region_id', 'e.created_at', 'd.customer_id', 'z.slug', 'z.memory', 'z.vcpus', 'z.disk')) as DetailRow[];
  return rows.map((r) => ({
    id: Number(r.id),
    droplet_id: r.droplet_id,
    customer_id: r.customer_id,
    region_id: r.region_id,
    size: r.slug === null ? null : { slug: r.slug, memory: Number(r.memory), vcpus: Number(r.vcpus), disk: Number(r.disk) },
    claimed_at: claimedAt,
    created_ms: Date.parse(r.created_at.replace(' ', 'T') + 'Z'),
  }));
}

/**
 * Hands events back: they become claimable again after `afterMs` (0: now).
 * Only events still leased to this replica and still unscheduled are touched.
 */
export async function releaseEvents(db: Knex, replica: string, ids: readonly number[], afterMs: number): Promise<void> {
  if (ids.length === 0) return;
  await db('events')
    .whereIn('id', ids)
    .where({ claimed_by: replica, status: 'pending' })
    .whereNull('server_id')
    .update({ claim_expires_at: leaseExpiry(db, afterMs) });
}

/**
 * The customers' droplet counts by server (V1's `$droplet_counts_by_server`),
 * for a whole batch in one query. With `regions`, only droplets on hosts of
 * the region each customer is placing into (the only hosts ranked for them).
 */
export async function loadUserDroplets(
  db: Knex,
  customerIds: readonly number[],
  regions?: ReadonlyArray<readonly [customerId: number, regionId: number]>,
): Promise<Map<number, Map<number, number>>> {
  const out = new Map<number, Map<number, number>>();
  if (customerIds.length === 0) return out;
  let q: Knex.QueryBuilder;
  if (regions && regions.length > 0) {
    // The (customer_id, server_id) index holds the droplet's id too: the host's region comes from `servers`
    // (small and cached), and only the droplets in the right region are read again, by id, for their status.
    // Filtering on droplets.region_id read every customer droplet's row, in every region.
    q = db('droplets as d')
      .join('servers as s', 's.id', 'd.server_id')
      .join('droplets as live', 'live.id', 'd.id')
      .whereIn('d.customer_id', customerIds)
      .whereIn(['d.customer_id', 's.region_id'], regions.map(([c, r]) => [c, r]))
      .whereNot('live.status', 'archived');
  } else {
    q = db('droplets as d').whereIn('d.customer_id', customerIds).whereNotNull('d.server_id').whereNot('d.status', 'archived');
  }
  const rows = (await q.groupBy('d.customer_id', 'd.server_id').select('d.customer_id', 'd.server_id', db.raw('COUNT(*) AS n'))) as Array<{
    customer_id: number;
    server_id: number;
    n: number | string;
  }>;
  for (const r of rows) {
    let m = out.get(r.customer_id);
    if (!m) out.set(r.customer_id, (m = new Map()));
    m.set(r.server_id, Number(r.n));
  }
  return out;
}
