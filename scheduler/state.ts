import type { Knex } from 'knex';
import { V1_BUSY_TYPES, type V1BusyType } from '../domain/busy-types.ts';
import type { HostCandidate } from './filters.ts';
import type { HostMetrics } from '../lib/metrics/host-metrics.ts';
import type { HostRewind } from './rewind.ts';

/** An event of one of V1's busy types, pending or running on a host. */
export interface InflightEvent {
  id: number;
  type: V1BusyType;
  /** The droplet's size, for creates (what the agent has not yet taken out of memfree). */
  memory: number;
  disk: number;
}

/**
 * What a replica keeps per host. Inventory (name, region, totals) comes from
 * `servers`; `generation` is the CAS token; `used_*` is the reservation
 * ledger (sum of the sizes of the host's non-archived, non-error droplets,
 * placed or running); `inflight` is the busy list. Live state (memfree,
 * errors, state, …) is never read from `servers`: it comes from metrics.
 */
export interface HostRecord {
  id: number;
  name: string;
  region_id: number;
  memory: number;
  disk: number;
  /** Inventory cores, used only when the metrics lack them. */
  inventory_cpus: number;
  generation: number;
  used_memory: number;
  used_disk: number;
  /** The ledger's droplet count: what vmcount will be once the agent has run every placed create. */
  used_count: number;
  inflight: Map<number, InflightEvent>;
}

export interface HostReserved {
  memory: number;
  disk: number;
}

interface HostRow {
  id: number;
  name: string;
  region_id: number;
  memory: number;
  disk: number;
  cpus: number;
  generation: number | string;
  used_memory: number | string | null;
  used_disk: number | string | null;
  used_count: number | string | null;
}

interface InflightRow {
  id: number | string;
  server_id: number;
  type: string;
  memory: number | null;
  disk: number | null;
}

const BUSY = new Set<string>(V1_BUSY_TYPES);

/**
 * The hosts of a replica's regions and their CAS/ledger/busy state, kept
 * in memory and refreshed from the database by the replica's own loop
 * (never concurrently with a placement round, so no write here races).
 */
export class HostStore {
  readonly byId = new Map<number, HostRecord>();
  readonly byName = new Map<string, HostRecord>();
  private readonly byRegion = new Map<number, HostRecord[]>();
  /**
   * Where busy lists come from: `events` (read from MySQL, as V1 did) or
   * `external` (pushed by applyBusy from Harpoon's stream: no statement on
   * `events`, which Harpoon mode must not issue).
   */
  private inflightSource: 'events' | 'external' = 'events';
  /** external source: which host each busy event is on, and since when (Date.now()) it is known busy. */
  private readonly busyHost = new Map<number, number>();
  private readonly busySince = new Map<number, number>();

  constructor(
    private readonly db: Knex,
    /** Region ids this replica schedules; undefined for all. */
    private readonly regionIds: readonly number[] | undefined,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  hostsInRegion(regionId: number): readonly HostRecord[] {
    return this.byRegion.get(regionId) ?? [];
  }

  /**
   * Loads inventory, generations, ledgers and busy lists of all hosts in
   * scope from one consistent snapshot, replacing what was known. Run at
   * start and every inventory refresh (it scans the droplets table once).
   */
  async loadAll(): Promise<void> {
    const { hosts, inflight } = await this.read(undefined);
    const kept = this.inflightSource === 'external' ? new Map([...this.byId].map(([id, h]) => [id, h.inflight])) : undefined;
    this.byId.clear();
    this.byName.clear();
    this.byRegion.clear();
    for (const row of hosts) {
      const record = toRecord(row);
      const busy = kept?.get(record.id);
      if (busy) record.inflight = busy;
      this.byId.set(record.id, record);
      this.byName.set(record.name, record);
      const list = this.byRegion.get(record.region_id) ?? [];
      list.push(record);
      this.byRegion.set(record.region_id, list);
    }
    for (const list of this.byRegion.values()) list.sort((a, b) => a.id - b.id);
    if (this.inflightSource === 'events') this.setInflight(inflight, undefined);
  }

  /**
   * Switches where busy lists come from. To `external`, every list is
   * emptied (the feed's catch-up fills them); to `events`, the next
   * refreshInflight() reads them again.
   */
  useInflightSource(source: 'events' | 'external'): void {
    if (source === this.inflightSource) return;
    this.inflightSource = source;
    this.clearInflight();
  }

  clearInflight(): void {
    for (const host of this.byId.values()) host.inflight.clear();
    this.busyHost.clear();
    this.busySince.clear();
  }

  /**
   * external source: busy events known busy for longer than `olderThanMs`
   * (oldest first, at most `limit`). A completion written straight to MySQL
   * (a router's last direct ack while it switches) never reaches the
   * stream: the caller re-reads these through Harpoon.
   */
  staleBusy(olderThanMs: number, limit: number, now = Date.now()): number[] {
    const out: number[] = [];
    for (const [id, since] of this.busySince) {
      if (now - since < olderThanMs) continue;
      out.push(id);
      if (out.length >= limit) break;
    }
    return out;
  }

  /**
   * external source: one event's new state. A busy-type event pending or
   * running on a host is on that host's busy list; anything else is not.
   */
  applyBusy(event: { id: number; type: string; status: string; server_id: number | null }, size?: { memory: number; disk: number }): void {
    const was = this.busyHost.get(event.id);
    let known: InflightEvent | undefined;
    if (was !== undefined) {
      known = this.byId.get(was)?.inflight.get(event.id);
      this.byId.get(was)?.inflight.delete(event.id);
      this.busyHost.delete(event.id);
      this.busySince.delete(event.id);
    }
    if (event.server_id === null || !BUSY.has(event.type) || (event.status !== 'pending' && event.status !== 'running')) return;
    const host = this.byId.get(event.server_id);
    if (!host) return;
    // A create this replica placed keeps the size it booked; others' sizes come from the event's args.
    host.inflight.set(event.id, { id: event.id, type: event.type as V1BusyType, memory: size?.memory ?? known?.memory ?? 0, disk: size?.disk ?? known?.disk ?? 0 });
    this.busyHost.set(event.id, host.id);
    this.busySince.set(event.id, Date.now());
  }

  /** Re-reads some hosts (after a CAS conflict): generation, ledger and busy list, from one snapshot. */
  async reread(ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    const { hosts, inflight } = await this.read(ids);
    for (const row of hosts) {
      const known = this.byId.get(row.id);
      if (!known) continue;
      const fresh = toRecord(row);
      known.generation = fresh.generation;
      known.used_memory = fresh.used_memory;
      known.used_disk = fresh.used_disk;
      known.used_count = fresh.used_count;
    }
    if (this.inflightSource === 'events') this.setInflight(inflight, new Set(ids));
  }

  /**
   * Refreshes the busy lists (pending/running events of V1's busy types) of
   * every host, or of the hosts of `regions`. Cheap: the `(status, type,
   * server_id)` index holds exactly those rows. Run before ranking each
   * batch, as V1 re-read its busy list each pass.
   */
  async refreshInflight(regions?: readonly number[]): Promise<void> {
    if (this.inflightSource === 'external') return;
    if (regions === undefined) {
      this.setInflight(await this.readInflight(this.db, undefined), undefined);
      return;
    }
    const hosts = new Set<number>();
    for (const r of regions) for (const h of this.hostsInRegion(r)) hosts.add(h.id);
    this.setInflight(await this.readInflight(this.db, undefined, regions), hosts);
  }

  /**
   * Books a placement in the local view while a round is ranked, so later
   * events of the same round see the host busy and its room taken. Undone
   * if the round does not commit it; on commit only the generation moves.
   */
  reserve(host: HostRecord, eventId: number, size: { memory: number; disk: number }): void {
    host.used_memory += size.memory;
    host.used_disk += size.disk;
    host.used_count += 1;
    host.inflight.set(eventId, { id: eventId, type: 'create', memory: size.memory, disk: size.disk });
    if (this.inflightSource === 'external') {
      this.busyHost.set(eventId, host.id);
      this.busySince.set(eventId, Date.now());
    }
  }

  unreserve(host: HostRecord, eventId: number, size: { memory: number; disk: number }): void {
    host.used_memory -= size.memory;
    host.used_disk -= size.disk;
    host.used_count -= 1;
    host.inflight.delete(eventId);
    if (this.busyHost.get(eventId) === host.id) {
      this.busyHost.delete(eventId);
      this.busySince.delete(eventId);
    }
  }

  /**
   * The host as filters see it, right now. Memory/disk free is the lower of
   * what the agent last reported minus the creates it has not applied yet,
   * and what the ledger leaves of the allocatable capacity; vmcount counts
   * those creates too. With `rewind` (shadow mode), the host as it was at
   * an earlier moment (scheduler/rewind.ts).
   */
  candidate(host: HostRecord, metrics: HostMetrics | undefined, nowMs: number, reserved: HostReserved, rewind?: HostRewind, busyNow?: readonly InflightEvent[]): HostCandidate {
    // Module-level helpers, not closures: this runs for every host of a region each round.
    const acc: InflightTally = { memory: 0, disk: 0, creates: 0, busy: {} };
    for (const e of busyNow ?? host.inflight.values()) if (!leftOut(rewind, e)) tally(acc, e);
    if (rewind) for (const e of rewind.busy) if (!host.inflight.has(e.id)) tally(acc, e);
    const { memory: createMemory, disk: createDisk, creates, busy } = acc;
    let memfree = metrics?.memfree_mb;
    let diskfree = metrics?.diskfree_gb;
    let vmcount = metrics?.vmcount ?? 0;
    if (metrics && rewind) {
      // Only what the agent had already reported is in its numbers.
      for (const r of rewind.reported) {
        if (r.at_ms > metrics.last_report_ms) continue;
        memfree! += r.memory;
        diskfree! += r.disk;
        vmcount += r.vmcount;
      }
      // And what happened before the moment is in them only if reported since.
      for (const r of rewind.unreported) {
        if (r.at_ms <= metrics.last_report_ms) continue;
        memfree! += r.memory;
        diskfree! += r.disk;
        vmcount += r.vmcount;
      }
    }
    const allocatableMemory = host.memory - reserved.memory;
    const allocatableDisk = host.disk - reserved.disk;
    const ledgerMemory = allocatableMemory - host.used_memory + (rewind?.ledger_memory ?? 0);
    const ledgerDisk = allocatableDisk - host.used_disk + (rewind?.ledger_disk ?? 0);
    return {
      id: host.id,
      name: host.name,
      region_id: host.region_id,
      memory: host.memory,
      disk: host.disk,
      allocatable_memory: allocatableMemory,
      allocatable_disk: allocatableDisk,
      cpus: metrics?.cpus ?? host.inventory_cpus,
      // The higher of the two, as memfree takes the lower: a create the agent ran a moment ago is in the ledger before its report.
      vmcount: Math.max(Math.max(0, vmcount) + creates, host.used_count + (rewind?.ledger_count ?? 0)),
      memfree: memfree !== undefined ? Math.min(memfree - createMemory, ledgerMemory) : ledgerMemory,
      diskfree_actual: diskfree !== undefined ? Math.min(diskfree - createDisk, ledgerDisk) : ledgerDisk,
      error_count: metrics?.error_count ?? 0,
      state: metrics?.state ?? '',
      busy,
      metrics_age_ms: metrics ? Math.max(0, nowMs - metrics.last_report_ms) : undefined,
    };
  }

  /**
   * One region's busy lists read now, host id → events, leaving the store's
   * own untouched: POST /explain runs beside a placement round, whose view
   * must not change under it. Undefined when the lists come from Harpoon's
   * stream (they are then current without a read).
   */
  async readBusy(regionId: number): Promise<Map<number, InflightEvent[]> | undefined> {
    if (this.inflightSource === 'external') return undefined;
    const out = new Map<number, InflightEvent[]>();
    for (const row of await this.readInflight(this.db, undefined, [regionId])) {
      if (!BUSY.has(row.type)) continue;
      const list = out.get(row.server_id) ?? [];
      list.push(toInflight(row));
      out.set(row.server_id, list);
    }
    return out;
  }

  private setInflight(rows: InflightRow[], onlyHosts: Set<number> | undefined): void {
    for (const host of this.byId.values()) if (!onlyHosts || onlyHosts.has(host.id)) host.inflight.clear();
    for (const row of rows) {
      const host = this.byId.get(row.server_id);
      if (!host || (onlyHosts && !onlyHosts.has(host.id)) || !BUSY.has(row.type)) continue;
      const event = toInflight(row);
      host.inflight.set(event.id, event);
    }
  }

  private async read(ids: readonly number[] | undefined): Promise<{ hosts: HostRow[]; inflight: InflightRow[] }> {
    // One snapshot for both statements: a generation newer than the busy list it goes with could let a
    // replica CAS successfully onto a host whose new create it has not seen.
    return this.db.transaction(
      async (trx) => {
        const ledger = trx('droplets as d')
          .join('sizes as z', 'z.id', 'd.size_id')
          .whereNotNull('d.server_id')
          .whereNotIn('d.status', ['archived', 'error'])
          .groupBy('d.server_id')
          .select('d.server_id', trx.raw('SUM(z.memory) AS used_memory'), trx.raw('SUM(z.disk) AS used_disk'), trx.raw('COUNT(*) AS used_count'));
        if (ids) ledger.whereIn('d.server_id', ids);
        else if (this.regionIds) ledger.whereIn('d.region_id', this.regionIds);
        const hostsQuery = trx('servers as s')
          .leftJoin(ledger.as('u'), 'u.server_id', 's.id')
          .select('s.id', 's.name', 's.region_id', 's.memory', 's.disk', 's.cpus', 's.generation', 'u.used_memory', 'u.used_disk', 'u.used_count');
        if (ids) hostsQuery.whereIn('s.id', ids);
        else if (this.regionIds) hostsQuery.whereIn('s.region_id', this.regionIds);
        const hosts = (await hostsQuery) as HostRow[];
        const inflight = this.inflightSource === 'events' ? await this.readInflight(trx, ids) : [];
        return { hosts, inflight };
      },
      { isolationLevel: 'repeatable read' },
    );
  }

  private async readInflight(db: Knex | Knex.Transaction, ids: readonly number[] | undefined, regions?: readonly number[]): Promise<InflightRow[]> {
    const q = db('events as e')
      .leftJoin('droplets as d', 'd.id', 'e.droplet_id')
      .leftJoin('sizes as z', 'z.id', 'd.size_id')
      .whereIn('e.status', ['pending', 'running'])
      .whereIn('e.type', [...V1_BUSY_TYPES])
      .whereNotNull('e.server_id')
      .select('e.id', 'e.server_id', 'e.type', 'z.memory', 'z.disk');
    if (ids) q.whereIn('e.server_id', ids);
    else if (regions) q.whereIn('e.region_id', regions);
    else if (this.regionIds) q.whereIn('e.region_id', this.regionIds);
    return (await q) as InflightRow[];
  }
}

/** What a host's busy list adds up to: creates not yet in the agent's numbers, and the oldest event of each type. */
interface InflightTally {
  memory: number;
  disk: number;
  creates: number;
  busy: Partial<Record<V1BusyType, number>>;
}

function tally(acc: InflightTally, e: InflightEvent): void {
  if (e.type === 'create') {
    acc.memory += e.memory;
    acc.disk += e.disk;
    acc.creates++;
  }
  const seen = acc.busy[e.type];
  if (seen === undefined || e.id < seen) acc.busy[e.type] = e.id;
}

/** Shadow mode: events that had not happened yet (or were skipped) at the rewound moment. */
function leftOut(rewind: HostRewind | undefined, e: InflightEvent): boolean {
  return rewind !== undefined && (rewind.skip.has(e.id) || (e.id >= rewind.after_id && !rewind.placed_before.has(e.id)));
}

function toInflight(row: InflightRow): InflightEvent {
  return { id: Number(row.id), type: row.type as V1BusyType, memory: Number(row.memory ?? 0), disk: Number(row.disk ?? 0) };
}

function toRecord(row: HostRow): HostRecord {
  return {
    id: row.id,
    name: row.name,
    region_id: row.region_id,
    memory: row.memory,
    disk: row.disk,
    inventory_cpus: row.cpus,
    generation: Number(row.generation),
    used_memory: Number(row.used_memory ?? 0),
    used_disk: Number(row.used_disk ?? 0),
    used_count: Number(row.used_count ?? 0),
    inflight: new Map(),
  };
}
