import type { Knex } from 'knex';
import type { HostReserved } from './state.ts';

/** One placement to commit: event → host, with the generation the ranking saw. */
export interface PlacementIntent {
  event_id: number;
  region_id: number;
  droplet_id: number;
  server_id: number;
  expected_generation: number;
  memory: number;
  disk: number;
  decision: DecisionRow;
}

/** A row of `placement_decisions`. */
export interface DecisionRow {
  event_id: number;
  replica: string;
  outcome: 'placed' | 'failed' | 'waiting';
  server_id: number | null;
  policy: string;
  score: number | null;
  hosts_total: number;
  hosts_available: number;
  attempts: number;
  conflicts: number;
  summary: string;
}

export interface RoundResult {
  committed: PlacementIntent[];
  /** Hosts whose CAS failed (generation moved, or the ledger had no room left). */
  conflictedHosts: number[];
  conflicted: PlacementIntent[];
  /** Events no longer leased to this replica (lease expired and taken, or placed by someone else). */
  lost: PlacementIntent[];
  /** Events of regions the fence says this replica may no longer place in (the `scheduling` cutover moved them back). */
  fenced: PlacementIntent[];
}

/**
 * Read first in a commit's transaction (scheduler/create-scheduler-v2.ts
 * builds it from lib/cutover/scheduling.ts): which regions this replica may
 * still place in, under a lock that orders the commit against cutover changes.
 */
export type CommitFence = (trx: Knex.Transaction) => Promise<(regionId: number) => boolean>;

const MAX_SUMMARY = 1024;

/**
 * Commits a round of placements in one READ COMMITTED transaction, in a
 * fixed number of statements whatever the round's size:
 *
 * 0. with a `fence` (V2 following the `scheduling` cutover), read which
 *    regions it may place in under a shared lock on the cutover row; the
 *    round's events of other regions are left alone (`fenced`);
 * 1. lock the round's hosts in ascending id order (one global lock order,
 *    so replicas never deadlock each other) and read, under that lock, each
 *    host's generation and its ledger: the sizes of its non-archived,
 *    non-error droplets;
 * 2. a host group wins if its generation is still the one the ranking saw
 *    and the ledger plus the group's sizes fits the allocatable capacity;
 *    otherwise its placements go back to be re-ranked (a conflict);
 * 3. the compare-and-swap itself, for all winners at once:
 *    `UPDATE servers SET generation = generation + 1 WHERE (id, generation) IN ((?, ?), …)`;
 * 4. set events.server_id/available_at and droplets.server_id of the
 *    winners in one statement, guarded by the lease (the event is still
 *    pending, unplaced and claimed by this replica), and insert their
 *    decisions.
 *
 * Leases are almost always still held, so step 4 checks them instead of a
 * locking read first. If any is not (its lease expired and another replica
 * took the event, or it was decided elsewhere), the transaction is rolled
 * back and the round is committed again the careful way (commitCareful):
 * the events still leased are locked first and the rest are `lost`.
 *
 * Every V2 placement moves its host's generation under the row lock, so a
 * generation that still matches proves no other replica placed there since
 * this one looked, and the ledger read after the lock includes every
 * placement committed before: two replicas cannot over-commit a host.
 */
export async function commitRound(db: Knex, replica: string, all: PlacementIntent[], reserved: HostReserved, fence?: CommitFence): Promise<RoundResult> {
  if (all.length === 0) return { committed: [], conflictedHosts: [], conflicted: [], lost: [], fenced: [] };
  try {
    return await db.transaction(
      async (trx) => {
        const { intents, fenced } = await splitByFence(trx, all, fence);
        if (intents.length === 0) return { committed: [], conflictedHosts: [], conflicted: [], lost: [], fenced };
        const byHost = groupByHost(intents);
        const rows = await lockHostsWithLedger(trx, [...byHost.keys()].sort((a, b) => a - b));
        const judged = await swapFitting(trx, byHost, rows, reserved);
        if (judged.committed.length > 0) {
          if ((await placeLeased(trx, replica, judged.committed)) !== 2 * judged.committed.length) throw new LeaseMoved();
          await trx('placement_decisions').insert(judged.committed.map((i) => clampDecision(i.decision)));
        }
        return { ...judged, lost: [], fenced };
      },
      { isolationLevel: 'read committed' },
    );
  } catch (err) {
    if (!(err instanceof LeaseMoved)) throw err;
    return commitCareful(db, replica, all, reserved, fence);
  }
}

/** Thrown inside commitRound's transaction to roll it back: some event is no longer leased to this replica. */
class LeaseMoved extends Error {}

/**
 * events.server_id (with available_at, and the lease cleared) and
 * droplets.server_id of each placement in one statement, only for events
 * still pending, unplaced and leased to `replica`; returns the rows changed
 * (two per placement when every lease held).
 */
async function placeLeased(trx: Knex.Transaction, replica: string, placements: readonly PlacementIntent[]): Promise<number> {
  const cases = placements.map(() => 'WHEN ? THEN ?').join(' ');
  const hosts = placements.flatMap((i) => [i.event_id, i.server_id]);
  // By id: the (server_id, status) index the optimizer otherwise picks matches every pending unplaced
  // event, the whole backlog during a burst, and the statement would read (and lock) all of them.
  const result = await trx.raw(
    `UPDATE events e FORCE INDEX (PRIMARY) JOIN droplets d ON d.id = e.droplet_id
        SET e.server_id = CASE e.id ${cases} END, e.available_at = CURRENT_TIMESTAMP(3), e.claim_expires_at = NULL,
            d.server_id = CASE e.id ${cases} END, d.updated_at = CURRENT_TIMESTAMP(3)
      WHERE e.id IN (${placements.map(() => '?').join(',')}) AND e.claimed_by = ? AND e.status = 'pending' AND e.server_id IS NULL`,
    [...hosts, ...hosts, ...placements.map((i) => i.event_id), replica],
  );
  return affectedRows(result);
}

/**
 * commitRound when some lease may have moved: the events still leased to
 * this replica are locked first (`FOR UPDATE`) and only they are placed;
 * the others are `lost`.
 */
async function commitCareful(db: Knex, replica: string, all: PlacementIntent[], reserved: HostReserved, fence?: CommitFence): Promise<RoundResult> {
  return db.transaction(
    async (trx) => {
      const { intents, fenced } = await splitByFence(trx, all, fence);
      if (intents.length === 0) return { committed: [], conflictedHosts: [], conflicted: [], lost: [], fenced };
      const ours = new Set(
        (
          (await trx('events')
            .whereIn(
              'id',
              intents.map((i) => i.event_id),
            )
            .where({ claimed_by: replica, status: 'pending' })
            .whereNull('server_id')
            .orderBy('id')
            .select('id')
            .forUpdate()) as Array<{ id: number | string }>
        ).map((r) => Number(r.id)),
      );
      const lost = intents.filter((i) => !ours.has(i.event_id));
      const byHost = groupByHost(intents.filter((i) => ours.has(i.event_id)));
      const committed: PlacementIntent[] = [];
      const conflicted: PlacementIntent[] = [];
      const conflictedHosts: number[] = [];
      if (byHost.size > 0) {
        const hostIds = [...byHost.keys()].sort((a, b) => a - b);
        const rows = await lockHostsWithLedger(trx, hostIds);
        const judged = await swapFitting(trx, byHost, rows, reserved);
        committed.push(...judged.committed);
        conflicted.push(...judged.conflicted);
        conflictedHosts.push(...judged.conflictedHosts);
      }
      if (committed.length > 0) {
        const ids = committed.map((i) => i.event_id);
        const eventCase = committed.map(() => 'WHEN ? THEN ?').join(' ');
        await trx.raw(
          `UPDATE events SET server_id = CASE id ${eventCase} END, available_at = CURRENT_TIMESTAMP(3), claim_expires_at = NULL
            WHERE id IN (${ids.map(() => '?').join(',')})`,
          [...committed.flatMap((i) => [i.event_id, i.server_id]), ...ids],
        );
        await setDropletHosts(trx, committed);
        await trx('placement_decisions').insert(committed.map((i) => clampDecision(i.decision)));
      }
      return { committed, conflicted, conflictedHosts, lost, fenced };
    },
    { isolationLevel: 'read committed' },
  );
}

/**
 * Fails events no host can ever take, as V1 did: the event and its droplet
 * go to `error`, with the explanation as the event's message.
 */
export async function failEvents(
  db: Knex,
  replica: string,
  failures: Array<{ event_id: number; region_id?: number; droplet_id: number | null; decision: DecisionRow }>,
  fence?: CommitFence,
): Promise<number[]> {
  const failed: number[] = [];
  for (const f of failures) {
    const done = await db.transaction(async (trx) => {
      if (fence && f.region_id !== undefined && !(await fence(trx))(f.region_id)) return false;
      const n = await trx('events')
        .where({ id: f.event_id, claimed_by: replica, status: 'pending' })
        .whereNull('server_id')
        .update({ status: 'error', message: f.decision.summary.slice(0, 255), finished_at: trx.raw('CURRENT_TIMESTAMP(3)'), claim_expires_at: null });
      if (n !== 1) return false;
      if (f.droplet_id !== null) await trx('droplets').where({ id: f.droplet_id }).update({ status: 'error' });
      await trx('placement_decisions').insert(clampDecision(f.decision));
      return true;
    });
    if (done) failed.push(f.event_id);
  }
  return failed;
}

/** Records decisions that change nothing else (the first wait of an event). */
export async function recordDecisions(db: Knex, rows: DecisionRow[]): Promise<void> {
  if (rows.length > 0) await db('placement_decisions').insert(rows.map(clampDecision));
}

export interface LockedHost {
  id: number;
  generation: number | string;
  memory: number;
  disk: number;
  used_memory: number | string;
  used_disk: number | string;
}

/**
 * Locks hosts in ascending id order (one global lock order: replicas never
 * deadlock each other) and reads, under that lock, each one's generation and
 * ledger: the sizes of its non-archived, non-error droplets.
 */
export async function lockHostsWithLedger(trx: Knex.Transaction, hostIds: readonly number[]): Promise<Map<number, LockedHost>> {
  // One pass over each host's droplets for both sums: a scalar subquery returns one column, so they come
  // back as "memory disk"; two subqueries read every droplet (and its size) twice.
  const locked = (await trx.raw(
    `SELECT s.id, s.generation, s.memory, s.disk,
            (SELECT CONCAT(COALESCE(SUM(z.memory), 0), ' ', COALESCE(SUM(z.disk), 0)) FROM droplets d JOIN sizes z ON z.id = d.size_id
              WHERE d.server_id = s.id AND d.status NOT IN ('archived', 'error')) AS used
       FROM servers s WHERE s.id IN (${hostIds.map(() => '?').join(',')}) ORDER BY s.id FOR UPDATE`,
    [...hostIds],
  )) as [Array<Omit<LockedHost, 'used_memory' | 'used_disk'> & { used: string }>];
  return new Map(
    locked[0].map(({ used, ...r }) => {
      const [memory, disk] = used.split(' ');
      return [r.id, { ...r, used_memory: Number(memory), used_disk: Number(disk) }];
    }),
  );
}

/** Step 0 of a commit: the fence's verdict, read first in the transaction (none: everything is allowed). */
export async function splitByFence(trx: Knex.Transaction, all: PlacementIntent[], fence: CommitFence | undefined): Promise<{ intents: PlacementIntent[]; fenced: PlacementIntent[] }> {
  const allowed = fence ? await fence(trx) : undefined;
  if (!allowed) return { intents: all, fenced: [] };
  return { intents: all.filter((i) => allowed(i.region_id)), fenced: all.filter((i) => !allowed(i.region_id)) };
}

/** Placements by host. */
export function groupByHost(intents: readonly PlacementIntent[]): Map<number, PlacementIntent[]> {
  const byHost = new Map<number, PlacementIntent[]>();
  for (const i of intents) {
    const list = byHost.get(i.server_id) ?? [];
    list.push(i);
    byHost.set(i.server_id, list);
  }
  return byHost;
}

/**
 * A host's group of placements wins if the host's generation is still the
 * one the ranking saw and its ledger plus the group fits the allocatable
 * capacity; the winners' generations move in one compare-and-swap. The
 * hosts must be locked by `trx` (lockHostsWithLedger).
 */
export async function swapFitting(
  trx: Knex.Transaction,
  byHost: Map<number, PlacementIntent[]>,
  rows: Map<number, LockedHost>,
  reserved: HostReserved,
): Promise<Pick<RoundResult, 'committed' | 'conflicted' | 'conflictedHosts'>> {
  const committed: PlacementIntent[] = [];
  const conflicted: PlacementIntent[] = [];
  const conflictedHosts: number[] = [];
  const winners: Array<[number, number]> = [];
  for (const serverId of [...byHost.keys()].sort((a, b) => a - b)) {
    const group = byHost.get(serverId)!;
    const row = rows.get(serverId);
    const memory = group.reduce((sum, i) => sum + i.memory, 0);
    const disk = group.reduce((sum, i) => sum + i.disk, 0);
    const fits =
      row !== undefined &&
      Number(row.generation) === group[0]!.expected_generation &&
      Number(row.used_memory) + memory <= row.memory - reserved.memory &&
      Number(row.used_disk) + disk <= row.disk - reserved.disk;
    if (fits) {
      committed.push(...group);
      winners.push([serverId, group[0]!.expected_generation]);
    } else {
      conflicted.push(...group);
      conflictedHosts.push(serverId);
    }
  }
  if (winners.length > 0) {
    const swapped = await trx.raw(`UPDATE servers SET generation = generation + 1 WHERE (id, generation) IN (${winners.map(() => '(?, ?)').join(', ')})`, winners.flat());
    // The rows are locked by this transaction: nothing can have moved them since the read.
    if (affectedRows(swapped) !== winners.length) throw new Error(`generation CAS moved ${affectedRows(swapped)} of ${winners.length} locked hosts`);
  }
  return { committed, conflicted, conflictedHosts };
}

/** droplets.server_id of each placement, in one statement. */
export async function setDropletHosts(trx: Knex.Transaction, placements: ReadonlyArray<{ droplet_id: number; server_id: number }>): Promise<void> {
  const cases = placements.map(() => 'WHEN ? THEN ?').join(' ');
  await trx.raw(
    `UPDATE droplets SET server_id = CASE id ${cases} END, updated_at = CURRENT_TIMESTAMP(3)
      WHERE id IN (${placements.map(() => '?').join(',')})`,
    [...placements.flatMap((i) => [i.droplet_id, i.server_id]), ...placements.map((i) => i.droplet_id)],
  );
}

export function clampDecision(d: DecisionRow): DecisionRow {
  return d.summary.length <= MAX_SUMMARY ? d : { ...d, summary: d.summary.slice(0, MAX_SUMMARY - 1) + '…' };
}

export function affectedRows(result: unknown): number {
  // mysql2 through knex.raw: [ResultSetHeader, fields]
  const header = Array.isArray(result) ? result[0] : result;
  return Number((header as { affectedRows?: number }).affectedRows ?? 0);
}
