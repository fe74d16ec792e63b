import type { Knex } from 'knex';
import { V1_BUSY_TYPES, type V1BusyList, type V1Server } from './rank.ts';

/** A create event waiting for a host, with what the ranking needs of its droplet. */
export interface UnscheduledEvent {
  id: number;
  droplet_id: number;
  customer_id: number;
  region_id: number;
  size_slug: string;
  size_memory: number;
  size_vcpus: number;
  size_disk: number;
}

/**
 * The poll V1 ran every second: create events nobody has placed yet, less
 * those of regions the `scheduling` cutover has moved to Scheduler V2.
 */
export async function fetchUnscheduled(db: Knex, limit: number, excludeRegionIds: readonly number[] = []): Promise<UnscheduledEvent[]> {
  const q = db('events as e');
  if (excludeRegionIds.length > 0) q.whereNotIn('e.region_id', excludeRegionIds);
  return q
    .join('droplets as d', 'd.id', 'e.droplet_id')
    .join('sizes as sz', 'sz.id', 'd.size_id')
    .where({ 'e.type': 'create', 'e.status': 'pending' })
    .whereNull('e.server_id')
    .orderBy('e.id')
    .limit(limit)
    .select(
      'e.id',
      'e.droplet_id',
      'd.customer_id',
      'e.region_id',
      'sz.slug as size_slug',
      'sz.memory as size_memory',
      'sz.vcpus as size_vcpus',
      'sz.disk as size_disk',
    );
}

/** Host state as V1 knew it: the `servers` rows the agents write, re-read on every pass. */
export async function fetchServers(db: Knex, regionIds: number[]): Promise<V1Server[]> {
  return db('servers')
    .whereIn('region_id', regionIds)
    .orderBy('id')
    .select('id', 'name', 'region_id', 'cpus', 'memory', 'disk', 'vmcount', 'memfree', 'diskfree_actual', 'error_count', 'state');
}

/** The Perl `$busylist`: unfinished events of the busy types, by server name and type. */
export async function fetchBusyList(db: Knex, regionIds: number[]): Promise<V1BusyList> {
  const rows: Array<{ name: string; type: string; id: number }> = await db('events as e')
    .join('servers as s', 's.id', 'e.server_id')
    .whereIn('e.status', ['pending', 'running'])
    .whereIn('e.type', [...V1_BUSY_TYPES])
    .whereIn('s.region_id', regionIds)
    .select('s.name', 'e.type', 'e.id');
  const busy: V1BusyList = {};
  for (const row of rows) {
    const entry = (busy[row.name] ??= {});
    entry[row.type as (typeof V1_BUSY_TYPES)[number]] ??= row.id;
  }
  return busy;
}

/** The Perl `$droplet_counts_by_server` for one customer. */
export async function fetchUserDroplets(db: Knex, customerId: number): Promise<Record<string, number>> {
  const rows: Array<{ server_id: number; n: number }> = await db('droplets')
    .where({ customer_id: customerId })
    .whereNotNull('server_id')
    .whereNot('status', 'archived')
    .groupBy('server_id')
    .select('server_id', db.raw('COUNT(*) AS n'));
  return Object.fromEntries(rows.map((r) => [String(r.server_id), Number(r.n)]));
}
