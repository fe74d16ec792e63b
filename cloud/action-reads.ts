import type { IncomingMessage } from 'node:http';
import { HarpoonClientError, type HarpoonClient } from '../harpoon/client.ts';
import { bearerToken, type Customer } from './auth.ts';
import { cloudError } from './errors.ts';
import { readEventWrites, readsViaHarpoon } from './event-writes.ts';
import type { DirectEvents } from './direct-events.ts';
import type { CloudDeps } from './handler.ts';
import { pageLinks, serializeAction, type ActionJson, type ActionListJson } from '../contracts/droplet-api.ts';
import type { Page } from './validate.ts';

/**
 * Cloud's action reads. Below event-writes `full` they read `events` as
 * always (the legacy direct path, injected); at `full` (and after `lockdown`, when the server refuses Cloud any
 * statement on `events`) they are Harpoon's /v2/actions answers, asked with
 * the customer's own token so Harpoon scopes them exactly as Cloud would.
 * Either way the JSON is the same (contracts/droplet-api.ts).
 */

async function harpoonFor(deps: CloudDeps, req: IncomingMessage): Promise<HarpoonClient | undefined> {
  if (!readsViaHarpoon(await readEventWrites(deps.db))) return undefined;
  if (!deps.events.asCustomer) throw cloudError('CLOUD_ERR_EVENTS_UNAVAILABLE', 'event-writes is full, so actions are read from Harpoon, but this Cloud has no harpoon option');
  return deps.events.asCustomer(bearerToken(req));
}

function direct(deps: CloudDeps): DirectEvents {
  if (!deps.events.direct) throw cloudError('CLOUD_ERR_EVENTS_UNAVAILABLE', 'event-writes is below full, so actions are read from MySQL, but this Cloud has no direct event path (directEvents)');
  return deps.events.direct;
}

function harpoonFailure(cause: unknown, notFound: string): Error {
  if (cause instanceof HarpoonClientError && cause.status === 404) return cloudError('CLOUD_ERR_NOT_FOUND', notFound);
  return cloudError('CLOUD_ERR_EVENTS_UNAVAILABLE', `cannot read actions from Harpoon (${(cause as Error).message}); retry`, cause);
}

export async function getAction(deps: CloudDeps, req: IncomingMessage, customer: Customer, id: number): Promise<ActionJson> {
  const harpoon = await harpoonFor(deps, req);
  if (harpoon) return harpoon.getAction(id).catch((err: unknown) => Promise.reject(harpoonFailure(err, `action ${id} not found`)));
  const event = await direct(deps).read(deps.db, customer.id, id);
  if (!event) throw cloudError('CLOUD_ERR_NOT_FOUND', `action ${id} not found`);
  return serializeAction(event);
}

/** `path` is the list's own path (for links), `dropletId` narrows it to one droplet (no existence check, as Harpoon: an empty list). */
export async function listActions(deps: CloudDeps, req: IncomingMessage, customer: Customer, path: string, page: Page, dropletId?: number): Promise<ActionListJson> {
  const harpoon = await harpoonFor(deps, req);
  if (harpoon) {
    const query = `page=${page.page}&per_page=${page.perPage}`;
    return harpoon.listActions(`${path}?${query}`).catch((err: unknown) => Promise.reject(harpoonFailure(err, `${path} not found`)));
  }
  const scope = { customerId: customer.id, ...(dropletId === undefined ? {} : { dropletId }) };
  const { rows, total } = await direct(deps).list(deps.db, scope, { limit: page.perPage, offset: (page.page - 1) * page.perPage });
  return { actions: rows.map(serializeAction), links: pageLinks(path, page.page, page.perPage, total), meta: { total } };
}
