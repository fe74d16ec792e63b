import type { Knex } from 'knex';
import type { DirectEventRow, DirectEvents } from '../../cloud/direct-events.ts';
import type { EventRecord } from '../../contracts/droplet-api.ts';

const EVENT_COLUMNS = ['e.id', 'e.type', 'e.status', 'e.droplet_id', 'r.slug as region_slug', 'e.created_at', 'e.finished_at'];

function customerEvents(db: Knex | Knex.Transaction, customerId: number) {
  return db('events as e').join('regions as r', 'r.id', 'e.region_id').where('e.customer_id', customerId);
}

/**
 * Cloud's direct event path: INSERT and SELECT on `events` as the `cloud`
 * MySQL user, below event-writes `full` (cloud/direct-events.ts).
 *
 * @example
 *   createCloud({ db, directEvents });
 */
export const directEvents: DirectEvents = {
  async insert(trx: Knex.Transaction, row: DirectEventRow): Promise<number> {
    const [eventId] = (await trx('events').insert({
      type: row.type,
      status: 'pending',
      server_id: row.server_id,
      region_id: row.region_id,
      customer_id: row.customer_id,
      droplet_id: row.droplet_id,
      ...(row.availableNow ? { available_at: trx.raw('CURRENT_TIMESTAMP(3)') } : {}),
      args: row.args,
    })) as number[];
    return eventId!;
  },

  async inFlight(trx: Knex.Transaction, dropletId: number): Promise<string[]> {
    return (await trx('events').where('droplet_id', dropletId).whereIn('status', ['pending', 'running']).pluck('type')) as string[];
  },

  async read(db: Knex | Knex.Transaction, customerId: number, eventId: number): Promise<EventRecord | undefined> {
    return (await customerEvents(db, customerId).where('e.id', eventId).first(EVENT_COLUMNS)) as EventRecord | undefined;
  },

  async list(db: Knex, scope: { customerId: number; dropletId?: number }, page: { limit: number; offset: number }): Promise<{ rows: EventRecord[]; total: number }> {
    const scoped = () => {
      const q = db('events as e').where('e.customer_id', scope.customerId);
      return scope.dropletId === undefined ? q : q.andWhere('e.droplet_id', scope.dropletId);
    };
    const [rows, counted] = await Promise.all([
      scoped().join('regions as r', 'r.id', 'e.region_id').orderBy('e.id', 'desc').limit(page.limit).offset(page.offset).select(EVENT_COLUMNS) as Promise<EventRecord[]>,
      scoped().count({ n: '*' }) as Promise<Array<{ n: number | string }>>,
    ]);
    return { rows, total: Number(counted[0]?.n ?? 0) };
  },
};
