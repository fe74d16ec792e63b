import { sendJson } from '../../lib/http/respond.ts';
import type { Router } from '../../lib/http/router.ts';
import { resolveOrder } from '../catalog.ts';
import { countDroplets, getDroplet, listDroplets } from '../droplet-store.ts';
import { cloudError } from '../errors.ts';
import { customerRoute, readBody, type CloudDeps } from '../handler.ts';
import type { OutboxRow } from '../outbox.ts';
import { createDroplet, enqueueDropletEvent } from '../queue.ts';
import { waitRelayed } from '../relay.ts';
import { isoTime, pageLinks, serializeAction, serializeDroplet, serializeHarpoonAction } from '../../contracts/droplet-api.ts';
import { parseActionRequest, parseCreateDroplet, parseId, parsePagination } from '../validate.ts';

/**
 * /v2/droplets and /v2/droplets/:id/actions, after DigitalOcean's v2 API.
 * Validation runs to the end before the first write, so a refused request
 * leaves no row behind.
 *
 * A write whose event went to the outbox (event-writes, README.md) waits up
 * to relayWaitMs for Harpoon to hold it, then answers exactly as a direct
 * write would. Past the bound it answers with what is known: the create's
 * `links.actions` is empty, an action is `202` with `id: null`, a DELETE is
 * `204` as always. The event is committed either way and relayed later.
 */
export function addDropletRoutes(router: Router, deps: CloudDeps): void {
  const { db, metrics } = deps;
  const log = deps.logger;

  async function relayed(row: OutboxRow, route: string) {
    metrics.outboxWritten.inc({ type: row.event.type });
    // decidePath refuses the outbox without a harpoon option, and createCloud makes the relay with it.
    const event = await waitRelayed(deps.events.relay!, row, deps.events.relayWaitMs);
    if (!event) metrics.answeredBeforeRelay.inc({ route });
    return event;
  }

  router.add(
    'POST',
    '/v2/droplets',
    customerRoute(deps, async (ctx, customer) => {
      const request = parseCreateDroplet(await readBody(deps, ctx));
      const order = await resolveOrder(db, customer.id, request);
      const created = await createDroplet(db, { customer, name: request.name, order, features: request.features, requestId: ctx.requestId }, deps.events);
      metrics.dropletsCreated.inc();
      let eventId: number | undefined;
      if (created.event.kind === 'direct') {
        metrics.eventsWritten.inc({ type: 'create' });
        eventId = created.event.eventId;
      } else {
        eventId = (await relayed(created.event.row, '/v2/droplets'))?.id;
      }
      log.debug({ requestId: ctx.requestId, customer_id: customer.id, droplet_id: created.dropletId, event_id: eventId, path: created.event.kind }, 'droplet created');
      const droplet = serializeDroplet({
        id: created.dropletId,
        name: request.name,
        status: 'new',
        locked: false,
        created_at: created.createdAt,
        server_id: null,
        region_id: order.region.id,
        region_slug: order.region.slug,
        region_name: order.region.name,
        size_slug: order.size.slug,
        memory: order.size.memory,
        vcpus: order.size.vcpus,
        disk: order.size.disk,
        image_id: order.image.id,
        image_slug: order.image.slug,
        image_name: order.image.name,
        image_distribution: order.image.distribution,
        features: [...request.features].sort(),
        ips: [],
      });
      sendJson(ctx.res, 202, {
        droplet,
        links: { actions: eventId === undefined ? [] : [{ id: eventId, rel: 'create', href: `/v2/actions/${eventId}` }] },
      });
    }),
  );

  router.add(
    'GET',
    '/v2/droplets',
    customerRoute(deps, async (ctx, customer) => {
      const { page, perPage } = parsePagination(ctx.query);
      const [total, rows] = await Promise.all([
        countDroplets(db, customer.id),
        listDroplets(db, customer.id, { limit: perPage, offset: (page - 1) * perPage }),
      ]);
      sendJson(ctx.res, 200, { droplets: rows.map(serializeDroplet), links: pageLinks('/v2/droplets', page, perPage, total), meta: { total } });
    }),
  );

  router.add(
    'GET',
    '/v2/droplets/:id',
    customerRoute(deps, async (ctx, customer) => {
      const id = parseId(ctx.params.id, 'droplet');
      const droplet = await getDroplet(db, customer.id, id);
      if (!droplet) throw cloudError('CLOUD_ERR_NOT_FOUND', `droplet ${id} not found`);
      sendJson(ctx.res, 200, { droplet: serializeDroplet(droplet) });
    }),
  );

  router.add(
    'DELETE',
    '/v2/droplets/:id',
    customerRoute(deps, async (ctx, customer) => {
      const id = parseId(ctx.params.id, 'droplet');
      const result = await enqueueDropletEvent(db, { customerId: customer.id, dropletId: id, type: 'destroy', requestId: ctx.requestId }, deps.events);
      if (result.kind === 'outbox') {
        const event = await relayed(result.row, '/v2/droplets/:id');
        log.debug({ requestId: ctx.requestId, customer_id: customer.id, droplet_id: id, event_id: event?.id, outbox_id: result.row.id }, 'destroy queued through the outbox');
      } else if (result.kind === 'event') {
        metrics.eventsWritten.inc({ type: 'destroy' });
        log.debug({ requestId: ctx.requestId, customer_id: customer.id, droplet_id: id, event_id: result.event.id }, 'destroy queued');
      } else {
        log.debug({ requestId: ctx.requestId, customer_id: customer.id, droplet_id: id, outcome: result.kind }, 'destroy without a new event');
      }
      ctx.res.writeHead(204);
      ctx.res.end();
    }),
  );

  router.add(
    'POST',
    '/v2/droplets/:id/actions',
    customerRoute(deps, async (ctx, customer) => {
      const id = parseId(ctx.params.id, 'droplet');
      const type = parseActionRequest(await readBody(deps, ctx));
      const result = await enqueueDropletEvent(db, { customerId: customer.id, dropletId: id, type, requestId: ctx.requestId }, deps.events);
      if (result.kind === 'outbox') {
        const event = await relayed(result.row, '/v2/droplets/:id/actions');
        if (event) {
          sendJson(ctx.res, 201, { action: serializeHarpoonAction(event) });
          return;
        }
        // Accepted and committed, but Harpoon has not numbered it yet: the id is unknown, not absent.
        const now = deps.events.clock().toISOString().replace('T', ' ').replace('Z', '');
        const action = { id: null, status: 'in-progress', type, started_at: isoTime(now), completed_at: null, resource_id: id, resource_type: 'droplet', region_slug: result.regionSlug };
        sendJson(ctx.res, 202, { action });
        return;
      }
      // Only a destroy can end without a new event; an action either writes one or throws.
      if (result.kind !== 'event') throw new Error(`action ${type} ended as ${result.kind}`);
      metrics.eventsWritten.inc({ type });
      log.debug({ requestId: ctx.requestId, customer_id: customer.id, droplet_id: id, event_id: result.event.id, type }, 'action queued');
      sendJson(ctx.res, 201, { action: serializeAction(result.event) });
    }),
  );
}
