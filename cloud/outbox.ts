import type { Knex } from 'knex';
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
}

/** The idempotency key of an outbox row's event: a retry, from any Cloud, returns the first event. */
export function outboxKey(id: number): string {
  return `outbox-${id}`;
}

export async function insertOutbox(trx: Knex.Transaction, event: OutboxEvent): Promise<OutboxRow> {
  const [id] = (await trx('event_outbox').insert({
    droplet_id: event.droplet_id,
    customer_id: event.customer_id,
    type: event.type,
    payload: JSON.stringify(event),
  })) as number[];
  return { id: Number(id), event };
}

/** Types of a droplet's events that are committed but not yet in Harpoon: in flight as far as Cloud is concerned. */
export async function outboxTypes(trx: Knex.Transaction, dropletId: number): Promise<string[]> {
  return (await trx('event_outbox').where('droplet_id', dropletId).pluck('type')) as string[];
}

/** A page of rows in id order after `afterId`: the start-up recovery read. */
export async function readOutboxPage(db: Knex, afterId: number, limit: number): Promise<OutboxRow[]> {
  const rows = (await db('event_outbox').where('id', '>', afterId).orderBy('id').limit(limit).select('id', 'payload')) as Array<{ id: number; payload: string }>;
  return rows.map((r) => ({ id: Number(r.id), event: JSON.parse(r.payload) as OutboxEvent }));
}

export async function deleteOutbox(db: Knex, ids: number[]): Promise<void> {
  if (ids.length > 0) await db('event_outbox').whereIn('id', ids).delete();
}
