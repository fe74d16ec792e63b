import type { Knex } from 'knex';
import type { HarpoonClient } from '../harpoon/client.ts';
import { cloudError, isDeadlock } from './errors.ts';
import { readEventWrites, readsViaHarpoon, writesViaHarpoon } from './event-writes.ts';
import { insertOutbox, outboxTypes, type OutboxEvent, type OutboxRow } from './outbox.ts';
import type { EventRecord } from '../contracts/droplet-api.ts';
import type { ResolvedOrder } from './catalog.ts';
import type { ActionType, DropletFeature } from './validate.ts';

/**
 * Cloud's side of the queue. Every write puts its event in the same
 * transaction as the rows it is about, so a hypervisor never sees an event
 * for a droplet that does not exist, and a droplet never exists without the
 * event that builds it. Where the event goes is decided inside that
 * transaction from the `event-writes` row, read under a share lock (the
 * fence, event-writes.ts): the `events` table itself (legacy), or an
 * `event_outbox` row that the relay hands to Harpoon (relay.ts).
 */

/** How Cloud reaches Harpoon, when it is configured to. */
export interface EventPaths {
  harpoon?: HarpoonClient;
}

/** Where a committed write's event is: written to events (its id known), or in the outbox for Harpoon. */
export type WrittenEvent = { kind: 'direct'; eventId: number } | { kind: 'outbox'; row: OutboxRow };

async function decidePath(trx: Knex.Transaction, paths: EventPaths, customerId: number): Promise<{ viaHarpoon: boolean; readHarpoon: boolean }> {
  const routing = await readEventWrites(trx, { lock: true });
  const viaHarpoon = writesViaHarpoon(routing, customerId);
  if (viaHarpoon && !paths.harpoon) {
    throw cloudError('CLOUD_ERR_EVENTS_UNAVAILABLE', `event-writes is ${routing.mode} and sends this customer's events to Harpoon, but this Cloud has no harpoon option; nothing was written`);
  }
  return { viaHarpoon, readHarpoon: readsViaHarpoon(routing) };
}

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
  event: WrittenEvent;
  createdAt: string;
}

/**
 * Inserts the droplet, its keys and features and its `create` event
 * (server_id NULL: the scheduler places it) in one transaction, after
 * checking the customer's droplet limit under a lock. The event is an
 * events row or an outbox row, never both.
 */
export async function createDroplet(db: Knex, d: NewDroplet, paths: EventPaths = {}): Promise<CreatedDroplet> {
  return transact(db, async (trx) => {
    const { viaHarpoon } = await decidePath(trx, paths, d.customer.id);
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
    // The request id lets an operator follow an event back to the API call that made it.
    const args = { size: d.order.size.slug, image: d.order.image.slug, region: d.order.region.slug, features: d.features, request_id: d.requestId };
    let event: WrittenEvent;
    if (viaHarpoon) {
      const outboxEvent: OutboxEvent = { type: 'create', region: d.order.region.slug, droplet_id: dropletId!, customer_id: d.customer.id, server_id: null, args };
      event = { kind: 'outbox', row: await insertOutbox(trx, outboxEvent) };
    } else {
      const [eventId] = (await trx('events').insert({
        type: 'create',
        status: 'pending',
        server_id: null,
        region_id: d.order.region.id,
        customer_id: d.customer.id,
        droplet_id: dropletId,
        args: JSON.stringify(args),
      })) as number[];
      event = { kind: 'direct', eventId: eventId! };
    }
    const row = (await trx('droplets').where('id', dropletId).first('created_at')) as { created_at: string };
    return { dropletId: dropletId!, event, createdAt: row.created_at };
  });
}

export type DropletEventType = 'destroy' | ActionType;

export type EnqueueResult =
  | { kind: 'event'; event: EventRecord }
  /** Committed to the outbox: Harpoon gets it from the relay. */
  | { kind: 'outbox'; row: OutboxRow; regionSlug: string }
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
  paths: EventPaths = {},
): Promise<EnqueueResult> {
  return transact(db, async (trx) => {
    const { viaHarpoon, readHarpoon } = await decidePath(trx, paths, input.customerId);
    // Locking the droplet row serialises Cloud's writers for one droplet: two
    // DELETEs cannot both decide that no destroy is in flight.
    const droplet = (await trx('droplets')
      .where({ id: input.dropletId, customer_id: input.customerId })
      .whereNot('status', 'archived')
      .forUpdate()
      .first('id', 'server_id', 'region_id')) as { id: number; server_id: number | null; region_id: number } | undefined;
    if (!droplet) throw cloudError('CLOUD_ERR_NOT_FOUND', `droplet ${input.dropletId} not found`);
    // Events committed but still in the outbox are in flight too. The outbox is read first: the relay
    // deletes a row only after Harpoon committed its event, so a row gone at this read is an event
    // the Harpoon read below sees (below full both reads share one snapshot, which sees one or the other).
    const queued = await outboxTypes(trx, droplet.id);
    const inFlight = [...queued, ...(readHarpoon ? await harpoonInFlight(paths.harpoon!, droplet.id) : await mysqlInFlight(trx, droplet.id))];
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
    if (viaHarpoon) {
      const region = (await trx('regions').where('id', droplet.region_id).first('slug')) as { slug: string };
      const outboxEvent: OutboxEvent = {
        type: input.type,
        region: region.slug,
        droplet_id: droplet.id,
        customer_id: input.customerId,
        server_id: droplet.server_id,
        args: { request_id: input.requestId },
      };
      return { kind: 'outbox', row: await insertOutbox(trx, outboxEvent), regionSlug: region.slug };
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

async function mysqlInFlight(trx: Knex.Transaction, dropletId: number): Promise<string[]> {
  return (await trx('events').where('droplet_id', dropletId).whereIn('status', ['pending', 'running']).pluck('type')) as string[];
}

/** At event-writes full Cloud may not read `events`: Harpoon answers "what is in flight for this droplet". */
async function harpoonInFlight(harpoon: HarpoonClient, dropletId: number): Promise<string[]> {
  try {
    const { events } = await harpoon.listEvents({ dropletId, status: ['pending', 'running'], limit: 1000 });
    return events.map((e) => e.type);
  } catch (cause) {
    throw cloudError('CLOUD_ERR_EVENTS_UNAVAILABLE', `cannot read droplet ${dropletId}'s events from Harpoon (${(cause as Error).message}); nothing was written, retry`, cause);
  }
}

const EVENT_COLUMNS = ['e.id', 'e.type', 'e.status', 'e.droplet_id', 'r.slug as region_slug', 'e.created_at', 'e.finished_at'];

function customerEvents(db: Knex, customerId: number) {
  return db('events as e').join('regions as r', 'r.id', 'e.region_id').where('e.customer_id', customerId);
}

/** One of the customer's events with its region slug; others' events read as missing. */
export async function readEvent(db: Knex, customerId: number, eventId: number): Promise<EventRecord | undefined> {
  return (await customerEvents(db, customerId).where('e.id', eventId).first(EVENT_COLUMNS)) as EventRecord | undefined;
}

/** A page of the customer's events (of one droplet, when given), newest first, and how many there are: what Harpoon's action lists return. */
export async function listEvents(
  db: Knex,
  scope: { customerId: number; dropletId?: number },
  page: { limit: number; offset: number },
): Promise<{ rows: EventRecord[]; total: number }> {
  const scoped = () => {
    const q = db('events as e').where('e.customer_id', scope.customerId);
    return scope.dropletId === undefined ? q : q.andWhere('e.droplet_id', scope.dropletId);
  };
  const [rows, counted] = await Promise.all([
    scoped().join('regions as r', 'r.id', 'e.region_id').orderBy('e.id', 'desc').limit(page.limit).offset(page.offset).select(EVENT_COLUMNS) as Promise<EventRecord[]>,
    scoped().count({ n: '*' }) as Promise<Array<{ n: number | string }>>,
  ]);
  return { rows, total: Number(counted[0]?.n ?? 0) };
}
