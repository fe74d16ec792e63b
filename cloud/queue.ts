import type { Knex } from 'knex';
import type { HarpoonClient } from '../harpoon/client.ts';
import { retryDeadlocks } from '../lib/db/deadlock.ts';
import { cloudError } from './errors.ts';
import { readEventWrites, readsViaHarpoon, writesViaHarpoon } from './event-writes.ts';
import type { OutboxRelay } from './relay.ts';
import { insertOutbox, outboxTypes, type OutboxEvent, type OutboxRow } from './outbox.ts';
import type { EventRecord } from '../contracts/droplet-api.ts';
import type { DirectEvents } from './direct-events.ts';
import type { ResolvedOrder } from './catalog.ts';
import type { ActionType, DropletFeature } from './validate.ts';

/**
 * Cloud's side of the queue. Every write puts its event in the same
 * transaction as the rows it is about, so a hypervisor never sees an event
 * for a droplet that does not exist, and a droplet never exists without the
 * event that builds it. Where the event goes is decided inside that
 * transaction from the `event-writes` row, read under a share lock (the
 * fence, event-writes.ts): the `events` table itself (the legacy direct
 * path, injected: direct-events.ts), or an `event_outbox` row that the
 * relay hands to Harpoon (relay.ts).
 */

/** Where Cloud's events can go: Harpoon when configured, the `events` table when the legacy direct path is injected. */
export interface EventPaths {
  harpoon?: HarpoonClient;
  direct?: DirectEvents;
  /** The outbox relay: an outbox row is written under its lease (cloud/relay.ts). */
  relay?: Pick<OutboxRelay, 'lease'>;
}

/** Where a committed write's event is: written to events (its id known), or in the outbox for Harpoon. */
export type WrittenEvent = { kind: 'direct'; eventId: number } | { kind: 'outbox'; row: OutboxRow };

async function decidePath(
  trx: Knex.Transaction,
  paths: EventPaths,
  customerId: number,
): Promise<{ viaHarpoon: boolean; readHarpoon: boolean; direct: DirectEvents | undefined }> {
  const routing = await readEventWrites(trx, { lock: true });
  const viaHarpoon = writesViaHarpoon(routing, customerId);
  if (viaHarpoon && !paths.harpoon) {
    throw cloudError('CLOUD_ERR_EVENTS_UNAVAILABLE', `event-writes is ${routing.mode} and sends this customer's events to Harpoon, but this Cloud has no harpoon option; nothing was written`);
  }
  const readHarpoon = readsViaHarpoon(routing);
  // Below full, events are read (and some written) in `events` directly: only a Cloud wired with the legacy path can.
  if (!readHarpoon && !paths.direct) {
    throw cloudError('CLOUD_ERR_EVENTS_UNAVAILABLE', `event-writes is ${routing.mode}, which reads events from MySQL, but this Cloud has no direct event path (directEvents); nothing was written`);
  }
  return { viaHarpoon, readHarpoon, direct: paths.direct };
}

/** A transaction run again when MySQL picks it as a deadlock victim (rolled back whole: nothing of the first try stays). */
function transact<T>(db: Knex, work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  return retryDeadlocks(() => db.transaction(work));
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
    const { viaHarpoon, direct } = await decidePath(trx, paths, d.customer.id);
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
      event = { kind: 'outbox', row: await insertOutbox(trx, outboxEvent, paths.relay?.lease()) };
    } else {
      const eventId = await direct!.insert(trx, {
        type: 'create',
        server_id: null,
        region_id: d.order.region.id,
        customer_id: d.customer.id,
        droplet_id: dropletId!,
        args: JSON.stringify(args),
      });
      event = { kind: 'direct', eventId };
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
    const { viaHarpoon, readHarpoon, direct } = await decidePath(trx, paths, input.customerId);
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
    const inFlight = [...queued, ...(readHarpoon ? await harpoonInFlight(paths.harpoon!, droplet.id) : await direct!.inFlight(trx, droplet.id))];
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
      return { kind: 'outbox', row: await insertOutbox(trx, outboxEvent, paths.relay?.lease()), regionSlug: region.slug };
    }
    const eventId = await direct!.insert(trx, {
      type: input.type,
      server_id: droplet.server_id,
      region_id: droplet.region_id,
      customer_id: input.customerId,
      droplet_id: droplet.id,
      availableNow: true,
      args: JSON.stringify({ request_id: input.requestId }),
    });
    const event = await direct!.read(trx, input.customerId, eventId);
    return { kind: 'event', event: event! };
  });
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
