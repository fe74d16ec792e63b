/**
 * Events as DigitalOcean actions, exactly as Cloud serves them today
 * (contracts/droplet-api.ts is the one definition of the shape), so that
 * `event-reads` can move GET /v2/actions/:id to Harpoon behind the proxy's
 * shadow comparison without a client noticing.
 */
import { serializeAction, type ActionJson } from '../contracts/droplet-api.ts';
export { pageLinks } from '../contracts/droplet-api.ts';
import type { Catalog } from './catalog.ts';
import type { EventRow } from './store.ts';

export function toAction(row: EventRow, catalog: Catalog): ActionJson {
  return serializeAction({
    id: Number(row.id),
    type: row.type,
    status: row.status,
    droplet_id: row.droplet_id,
    region_slug: catalog.regionSlug(row.region_id),
    created_at: row.created_at,
    finished_at: row.finished_at,
  });
}
