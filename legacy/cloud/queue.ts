import type { Knex } from 'knex';
import { cloudError, isDeadlock } from './errors.ts';
import type { EventRecord } from './serialize.ts';
import type { ResolvedOrder } from './catalog.ts';
import type { ActionType, DropletFeature } from './validate.ts';

/**
 * Cloud's side of the 2016 queue: the `events` table. Every write puts an
 * event in the same transaction as the rows it is about, so a hypervisor
 * never sees an event for a droplet that does not exist, and a droplet
 * never exists without the event that builds it.
 */

const ATTEMPTS = 5;

/**
 * A transaction that is run again when MySQL picks it as a deadlock victim.
 * Safe because a victim is rolled back whole: nothing of the first try stays.
 * The short random pause keeps the same contenders from colliding again in step.
 */
async function transact<T>(db: Knex, work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction(work);
    } catch (err) {
      if (!isDeadlock(err) || attempt >= ATTEMPTS) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
    }
  }
}

export interface NewDroplet {
  customer: { id: number; droplet_limit: number };
  name: string;
  order: ResolvedOrder;
  features: DropletFeature[];
  requestId: string;
}

export interface CreatedDroplet {
  dropletId: number;
  eventId: number;
  createdAt: string;
}

/**
 * Inserts the droplet, its keys and features and its `create` event
 * (server_id NULL: the scheduler places it) in one transaction, after
 * checking the customer's droplet limit under a lock.
 */
export async function createDroplet(db: Knex, d: NewDroplet): Promise<CreatedDroplet> {
  return transact(db, async (trx) => {
    // A locking read over the customer's droplets: two concurrent creates
    // cannot both see room for one more. With no rows to lock the gap lock
    // can deadlock instead, which transact() retries.
    const [counted] = (await trx('droplets')
      .where('customer_id', d.customer.id)
      .whereNot('status', 'archived')
      .count({ n: '*' })
      .forUpdate()) as Array<{ n: number | string }>;
    const active = Number(counted?.n ?? 0);
    if (active >= d.customer.droplet_limit) {
      throw cloudError(
        'CLOUD_ERR_DROPLET_LIMIT',
        `you have ${active} droplets and your limit is ${d.customer.droplet_limit}; destroy one or ask support to raise the limit`,
      );
    }
    const [dropletId] = (await trx('droplets').insert({
      customer_id: d.customer.id,
      name: d.name,
      region_id: d.order.region.id,
      size_id: d.order.size.id,
      image_id: d.order.image.id,
      server_id: null,
      status: 'new',
    })) as number[];
    if (d.order.sshKeyIds.length > 0) {
      await trx('droplet_ssh_keys').insert(d.order.sshKeyIds.map((ssh_key_id) => ({ droplet_id: dropletId, ssh_key_id })));
    }
    if (d.features.length > 0) {
      await trx('droplet_features').insert(d.features.map((feature) => ({ droplet_id: dropletId, feature })));
    }
    const [eventId] = (await trx('events').insert({
      type: 'create',
      status: 'pending',
      server_id: null,
      region_id: d.order.region.id,
      customer_id: d.customer.id,
      droplet_id: dropletId,
      // The request id lets an operator follow an event back to the API call that made it.
      args: JSON.stringify({
        size: d.order.size.slug,
        image: d.order.image.slug,
        region: d.order.region.slug,
        features: d.features,
        request_id: d.requestId,
      }),
    })) as number[];
    const row = (await trx('droplets').where('id', dropletId).first('created_at')) as { created_at: string };
    return { dropletId: dropletId!, eventId: eventId!, createdAt: row.created_at };
  });
}

export type DropletEventType = 'destroy' | ActionType;

export type EnqueueResult =
  | { kind: 'event'; event: EventRecord }
  /** A destroy is already pending or running: the request is already being honoured. */
  | { kind: 'already-destroying' }
  /** The droplet never reached a hypervisor and nothing is in flight for it: archived without an event. */
  | { kind: 'archived' };

/**
 * Writes a destroy or power event for a placed droplet, addressed to its
 * hypervisor and deliverable at once (available_at now).
 *
 * Not-yet-placed rule: while the droplet's create event is still in flight
 * (server_id NULL) there is no hypervisor to address, so the request is
 * refused with CLOUD_ERR_DROPLET_NOT_READY and the caller retries once the
 * droplet is active. A droplet with no server and nothing in flight (its
 * create errored) has no VM anywhere; destroying it just archives the row.
 */
export async function enqueueDropletEvent(
  db: Knex,
  input: { customerId: number; dropletId: number; type: DropletEventType; requestId: string },
): Promise<EnqueueResult> {
  return transact(db, async (trx) => {
    // Locking the droplet row serialises Cloud's writers for one droplet: two
    // DELETEs cannot both decide that no destroy is in flight.
    const droplet = (await trx('droplets')
      .where({ id: input.dropletId, customer_id: input.customerId })
      .whereNot('status', 'archived')
      .forUpdate()
      .first('id', 'server_id', 'region_id')) as { id: number; server_id: number | null; region_id: number } | undefined;
    if (!droplet) throw cloudError('CLOUD_ERR_NOT_FOUND', `droplet ${input.dropletId} not found`);
    const inFlight = (await trx('events')
      .where('droplet_id', droplet.id)
      .whereIn('status', ['pending', 'running'])
      .pluck('type')) as string[];
    if (inFlight.includes('destroy')) {
      if (input.type === 'destroy') return { kind: 'already-destroying' };
      throw cloudError('CLOUD_ERR_DROPLET_BUSY', `droplet ${droplet.id} is being destroyed; no further actions are accepted`);
    }
    if (droplet.server_id === null) {
      if (input.type === 'destroy' && inFlight.length === 0) {
        await trx('droplets').where('id', droplet.id).update({ status: 'archived', updated_at: trx.raw('CURRENT_TIMESTAMP(3)') });
        return { kind: 'archived' };
      }
      throw cloudError(
        'CLOUD_ERR_DROPLET_NOT_READY',
        `droplet ${droplet.id} is still being created and has no hypervisor yet; wait until its status is active, then retry`,
      );
    }
    const [eventId] = (await trx('events').insert({
      type: input.type,
      status: 'pending',
      server_id: droplet.server_id,
      region_id: droplet.region_id,
      customer_id: input.customerId,
      droplet_id: droplet.id,
      available_at: trx.raw('CURRENT_TIMESTAMP(3)'),
      args: JSON.stringify({ request_id: input.requestId }),
    })) as number[];
    const event = await readEvent(trx, input.customerId, eventId!);
    return { kind: 'event', event: event! };
  });
}

/** One of the customer's events with its region slug; others' events read as missing. */
export async function readEvent(db: Knex, customerId: number, eventId: number): Promise<EventRecord | undefined> {
  return (await db('events as e')
    .join('regions as r', 'r.id', 'e.region_id')
    .where('e.id', eventId)
    .andWhere('e.customer_id', customerId)
    .first('e.id', 'e.type', 'e.status', 'e.droplet_id', 'r.slug as region_slug', 'e.created_at', 'e.finished_at')) as
    | EventRecord
    | undefined;
}
