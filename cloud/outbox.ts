import type { Knex } from 'knex';
import { retryDeadlocks } from '../lib/db/deadlock.ts';
import type { CreateEventInput } from '../harpoon/types.ts';

/**
 * The SQL of Cloud's transactional outbox (migrations/007_event_outbox.ts).
 * A row is written in the same transaction as the droplet rows it is about
 * and deleted once Harpoon holds its event; its id gives the Harpoon key.
 */

/** The Harpoon create request an outbox row stands for (its key comes from the row id). */
export type OutboxEvent = Omit<CreateEventInput, 'key'> & { type: CreateEventInput['type']; droplet_id: number; customer_id: number };

export interface OutboxRow {
  id: number;
  event: OutboxEvent;
  /** Failed relays so far, across every Cloud that held the row. */
  attempts?: number;
}

/** Who holds a row and for how long: set at insert, renewed while the holder retries, taken over once expired. */
export interface OutboxLease {
  owner: string;
  ms: number;
}

/** What the table holds beyond what one Cloud knows: the alarm's numbers. */
export interface OutboxHealth {
  /** Rows still to relay (not parked), by every Cloud. */
  pending: number;
  /** Rows no Cloud will relay again until an operator clears them (CLOUD_ERR_OUTBOX_PARKED). */
  parked: number;
  /** Age of the oldest row still to relay, in seconds (0 when none). */
  oldest_pending_seconds: number;
}

type Affected = [{ affectedRows: number }];

/** The idempotency key of an outbox row's event: a retry, from any Cloud, returns the first event. */
export function outboxKey(id: number): string {
  return `outbox-${id}`;
}

/** The row's lease starts with the insert, so no other Cloud takes a row its writer is about to relay. */
export async function insertOutbox(trx: Knex.Transaction, event: OutboxEvent, lease?: OutboxLease): Promise<OutboxRow> {
  const [id] = (await trx('event_outbox').insert({
    droplet_id: event.droplet_id,
    customer_id: event.customer_id,
    type: event.type,
    payload: JSON.stringify(event),
    ...(lease ? { lease_owner: lease.owner, lease_until: trx.raw('NOW(3) + INTERVAL ? MICROSECOND', [lease.ms * 1000]) } : {}),
  })) as number[];
  return { id: Number(id), event };
}

/** Types of a droplet's events that are committed but not yet in Harpoon: in flight as far as Cloud is concerned. */
export async function outboxTypes(trx: Knex.Transaction, dropletId: number): Promise<string[]> {
  return (await trx('event_outbox').where('droplet_id', dropletId).pluck('type')) as string[];
}

/*
 * The lease statements below lock outbox rows through different indexes (the lease index, the primary key, a
 * scan by owner): two of them at once (one Cloud's scan while its failed relay is counted, two Clouds' scans)
 * can deadlock. Each is a single statement, rolled back whole when picked as the victim, so it is run again.
 */

/**
 * Takes up to `limit` rows whose lease expired (their Cloud died, or stopped) for `lease.owner`, in one
 * atomic UPDATE: two Clouds scanning at once never both take a row. Returns how many it took.
 */
export async function takeExpiredLeases(db: Knex, lease: OutboxLease, limit: number): Promise<number> {
  const [res] = (await retryDeadlocks(() => db.raw(
    'UPDATE event_outbox SET lease_owner = ?, lease_until = NOW(3) + INTERVAL ? MICROSECOND WHERE parked_at IS NULL AND lease_until < NOW(3) ORDER BY id LIMIT ?',
    [lease.owner, lease.ms * 1000, limit],
  ))) as Affected;
  return res.affectedRows;
}

/** Extends the lease of every row this Cloud holds (one statement, however many), so nobody takes them over while it is alive. */
export async function renewLeases(db: Knex, lease: OutboxLease): Promise<void> {
  await retryDeadlocks(() =>
    db('event_outbox')
      .where('lease_owner', lease.owner)
      .whereNull('parked_at')
      .update({ lease_until: db.raw('NOW(3) + INTERVAL ? MICROSECOND', [lease.ms * 1000]) }),
  );
}

/** Gives this Cloud's leases up (a clean close): another Cloud takes the rows at its next scan instead of after the lease. */
export async function releaseLeases(db: Knex, owner: string): Promise<void> {
  await retryDeadlocks(() => db('event_outbox').where('lease_owner', owner).whereNull('parked_at').update({ lease_until: db.raw('NOW(3)') }));
}

/** The rows `owner` holds (after a take), in id order. */
export async function readLeased(db: Knex, owner: string, limit: number): Promise<OutboxRow[]> {
  const rows = (await db('event_outbox').where('lease_owner', owner).whereNull('parked_at').orderBy('id').limit(limit).select('id', 'payload', 'attempts')) as Array<{
    id: number;
    payload: string;
    attempts: number;
  }>;
  return rows.map((r) => ({ id: Number(r.id), event: JSON.parse(r.payload) as OutboxEvent, attempts: Number(r.attempts) }));
}

/** Counts a failed relay of these rows (the count survives a take-over by another Cloud). */
export async function recordAttempt(db: Knex, ids: number[], error: string): Promise<void> {
  if (ids.length > 0) await retryDeadlocks(() => db('event_outbox').whereIn('id', ids).update({ attempts: db.raw('attempts + 1'), last_error: error.slice(0, 500) }));
}

/** Parks a row: no Cloud relays it again until an operator clears `parked_at` (runbooks/errors.md: CLOUD_ERR_OUTBOX_PARKED). */
export async function parkOutbox(db: Knex, id: number, error: string): Promise<void> {
  await retryDeadlocks(() => db('event_outbox').where('id', id).update({ parked_at: db.raw('NOW(3)'), last_error: error.slice(0, 500), lease_owner: null }));
}

/**
 * The whole table's state, read by the server: what every Cloud still has to relay, what is parked, and how
 * old the oldest unrelayed row is (a Harpoon outage shows as age long before anything is parked).
 */
export async function readOutboxHealth(db: Knex): Promise<OutboxHealth> {
  const [[row]] = (await db.raw(
    `SELECT COUNT(*) - COUNT(parked_at) AS pending, COUNT(parked_at) AS parked,
            COALESCE(TIMESTAMPDIFF(MICROSECOND, MIN(IF(parked_at IS NULL, created_at, NULL)), NOW(3)), 0) / 1000000 AS oldest
       FROM event_outbox`,
  )) as [[{ pending: number | string; parked: number | string; oldest: number | string }]];
  return { pending: Number(row.pending), parked: Number(row.parked), oldest_pending_seconds: Math.max(0, Number(row.oldest)) };
}

export async function deleteOutbox(db: Knex, ids: number[]): Promise<void> {
  if (ids.length > 0) await db('event_outbox').whereIn('id', ids).delete();
}
