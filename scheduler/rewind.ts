import type { Knex } from 'knex';
import { V1_BUSY_TYPES, type V1BusyType } from '../domain/busy-types.ts';
import type { InflightEvent } from './state.ts';

/**
 * Rewinding V2's view of the hosts to the moment Scheduler V1 decided an
 * event, for shadow mode.
 *
 * Why: the shadow judges V1's decisions after the fact, and on a loaded
 * fleet the agents have often executed V1's create (and the ones V1 placed
 * after it) by then. The ledger and the metrics then show V1's host one
 * droplet fuller than V1 saw it, and the hosts V1 skipped as busy as idle.
 * With 150 hosts a region the best host is usually several GB ahead of the
 * next one, so the judgement survives; with 1,500 (the 15,000 demo) the
 * best hosts are within one droplet of each other and nearly every
 * judgement came out `ranked-lower` (73 % of them in the 15,000 run).
 *
 * A rewind undoes, host by host, every change that happened at or after
 * the decision: creates placed from that event on (busy entry, ledger
 * room, and — once executed and reported — memfree/diskfree/vmcount),
 * destroys finished since (their room taken back), and busy events
 * finished since (busy again).
 */

/** An event that changed a host's state (placed on it, or finished there), with the moments it did. */
export interface HostChange {
  id: number;
  type: string;
  server_id: number;
  /** When the event became the host's (placed, or created with a server): events.available_at, ms; null when unknown (seeded). */
  placed_ms: number | null;
  /** events.finished_at in ms; null while pending/running. */
  finished_ms: number | null;
  customer_id: number | null;
  /** The droplet's status now: 'archived'/'error' droplets are not in the ledger. */
  droplet_status: string | null;
  memory: number;
  disk: number;
}

/** The moment V1 decided an event: when it placed (or failed) it, and the event's id (V1 ranks in id order). */
export interface DecisionMoment {
  event_id: number;
  at_ms: number;
  /**
   * When V1 read the hosts' rows and busy list, if earlier than `at_ms`: V1 reads them once per pass
   * and then places the pass's events one by one, so what finished in between is still busy (or, for
   * a destroy, still there) in its view. Finishes from this moment on are undone; placements still
   * from `at_ms`. Default `at_ms`.
   */
  read_ms?: number;
}

/** What to undo on one host for one moment (applied by HostStore.candidate). */
export interface HostRewind {
  /** Busy events to leave out: placed at or after the moment. */
  skip: ReadonlySet<number>;
  /** Busy events not among the changes (placed too recently to be loaded) are left out from this id on, as V1 ranked in id order. */
  after_id: number;
  /** Changes known to have been placed before the moment (kept, whatever their id). */
  placed_before: ReadonlySet<number>;
  /** Busy events the host had at the moment and has finished since. */
  busy: InflightEvent[];
  /** Room to give back to the ledger (negative: to take back). */
  ledger_memory: number;
  ledger_disk: number;
  /** Droplets to add to the ledger's count (negative: to take out). */
  ledger_count: number;
  /** Changes the host's metrics show once its agent reported after them (`at_ms` ≤ last report): undo these amounts. */
  reported: Array<{ at_ms: number; memory: number; disk: number; vmcount: number }>;
  /**
   * Creates and destroys finished before the moment that a report older than them does not show yet
   * (`at_ms` > last report): apply these amounts. The agent reports once a tick and V2 scrapes a tick
   * later, so V1's row can hold a create (or destroy) its metrics do not.
   */
  unreported: Array<{ at_ms: number; memory: number; disk: number; vmcount: number }>;
}

const TRACKED = [...V1_BUSY_TYPES, 'destroy'];
const BUSY = new Set<string>(V1_BUSY_TYPES);
const inLedger = (c: HostChange) => c.droplet_status !== null && c.droplet_status !== 'archived' && c.droplet_status !== 'error';

/** Was the change's placement at or after the moment? Same millisecond: V1 placed in id order. */
function placedSince(c: HostChange, m: DecisionMoment): boolean {
  if (c.id === m.event_id) return true;
  if (c.placed_ms === null) return false;
  return c.placed_ms > m.at_ms || (c.placed_ms === m.at_ms && c.id > m.event_id);
}

const finishedSince = (c: HostChange, m: DecisionMoment) => c.finished_ms !== null && c.finished_ms >= (m.read_ms ?? m.at_ms);

/**
 * Every host's rewind for one moment: hosts no change touched only leave
 * out busy events from the decided event's id on.
 *
 * @example
 *   const rewindOf = rewindTo(changes, { event_id: 42, at_ms: Date.parse('2026-12-01T15:00:00Z') });
 *   store.candidate(host, metrics, Date.now(), reserved, rewindOf(host.id));
 */
export function rewindTo(changes: readonly HostChange[], moment: DecisionMoment): (serverId: number) => HostRewind {
  const out = new Map<number, HostRewind>();
  const placedBefore = new Set<number>();
  const none: HostRewind = { skip: new Set(), after_id: moment.event_id, placed_before: placedBefore, busy: [], ledger_memory: 0, ledger_disk: 0, ledger_count: 0, reported: [], unreported: [] };
  const of = (serverId: number) => {
    let r = out.get(serverId);
    if (!r) out.set(serverId, (r = { ...none, skip: new Set<number>(), busy: [], reported: [], unreported: [] }));
    return r;
  };
  for (const c of changes) {
    const since = placedSince(c, moment);
    if (!since) placedBefore.add(c.id);
    else {
      (of(c.server_id).skip as Set<number>).add(c.id);
      if (c.type === 'create') {
        // Not the host's yet when V1 ranked: not busy, its room still free, its execution not yet on the host.
        const r = of(c.server_id);
        if (inLedger(c)) {
          r.ledger_memory += c.memory;
          r.ledger_disk += c.disk;
          r.ledger_count -= 1;
        }
        if (c.finished_ms !== null) r.reported.push({ at_ms: c.finished_ms, memory: c.memory, disk: c.disk, vmcount: -1 });
        continue;
      }
    }
    if (!finishedSince(c, moment)) {
      // Executed before the moment: in V1's row, in the metrics only once reported.
      if (c.finished_ms !== null && (c.type === 'create' || c.type === 'destroy')) {
        const sign = c.type === 'create' ? -1 : 1;
        of(c.server_id).unreported.push({ at_ms: c.finished_ms, memory: sign * c.memory, disk: sign * c.disk, vmcount: -sign });
      }
      continue;
    }
    const r = of(c.server_id);
    if (c.type === 'destroy') {
      // Its droplet still held the room when V1 ranked.
      if (!inLedger(c)) {
        r.ledger_memory -= c.memory;
        r.ledger_disk -= c.disk;
        r.ledger_count += 1;
      }
      r.reported.push({ at_ms: c.finished_ms!, memory: -c.memory, disk: -c.disk, vmcount: 1 });
    } else if (!since && BUSY.has(c.type)) {
      // Busy when V1 ranked; a create's execution is undone in the metrics and counted as in flight again.
      r.busy.push({ id: c.id, type: c.type as V1BusyType, memory: c.type === 'create' ? c.memory : 0, disk: c.type === 'create' ? c.disk : 0 });
      if (c.type === 'create') r.reported.push({ at_ms: c.finished_ms!, memory: c.memory, disk: c.disk, vmcount: -1 });
    }
  }
  return (serverId) => out.get(serverId) ?? none;
}

/**
 * The customer's droplets by host as they were at the moment: the counts
 * now, less the creates placed since (V1's own placement included).
 */
export function rewindUserDroplets(
  now: ReadonlyMap<number, number> | undefined,
  customerId: number | null,
  changes: readonly HostChange[],
  moment: DecisionMoment,
): ReadonlyMap<number, number> | undefined {
  if (!now || customerId === null) return now;
  let out: Map<number, number> | undefined;
  for (const c of changes) {
    if (c.type !== 'create' || c.customer_id !== customerId || c.droplet_status === 'archived' || !placedSince(c, moment)) continue;
    const n = (out ?? now).get(c.server_id);
    if (!n) continue;
    out ??= new Map(now);
    out.set(c.server_id, n - 1);
  }
  return out ?? now;
}

interface ChangeRow {
  id: number | string;
  type: string;
  server_id: number;
  placed_ms: number | string | null;
  finished_ms: number | string | null;
  customer_id: number | null;
  droplet_status: string | null;
  memory: number | null;
  disk: number | null;
}

const ms = (v: number | string | null) => (v === null ? null : Number(v));

/**
 * Events of V1's busy types and destroys, on a host, placed or finished at
 * or after `sinceMs`, among ids ≥ `fromId` (events already finished before
 * that id cannot have changed since). Times on the database clock.
 */
export async function loadHostChanges(db: Knex, sinceMs: number, fromId: number): Promise<HostChange[]> {
  const since = db.raw('FROM_UNIXTIME(? / 1000)', [Math.floor(sinceMs)]);
  const rows = (await db('events as e')
    .leftJoin('droplets as d', 'd.id', 'e.droplet_id')
    .leftJoin('sizes as z', 'z.id', 'd.size_id')
    .where('e.id', '>=', fromId)
    .whereNotNull('e.server_id')
    .whereIn('e.type', TRACKED)
    .where((q) => q.where('e.available_at', '>=', since).orWhere('e.finished_at', '>=', since))
    .select(
      'e.id',
      'e.type',
      'e.server_id',
      db.raw('ROUND(UNIX_TIMESTAMP(e.available_at) * 1000) AS placed_ms'),
      db.raw('ROUND(UNIX_TIMESTAMP(e.finished_at) * 1000) AS finished_ms'),
      'd.customer_id',
      'd.status as droplet_status',
      'z.memory',
      'z.disk',
    )) as ChangeRow[];
  return rows.map((r) => ({
    id: Number(r.id),
    type: r.type,
    server_id: r.server_id,
    placed_ms: ms(r.placed_ms),
    finished_ms: ms(r.finished_ms),
    customer_id: r.customer_id,
    droplet_status: r.droplet_status,
    memory: Number(r.memory ?? 0),
    disk: Number(r.disk ?? 0),
  }));
}
