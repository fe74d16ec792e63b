import type { RouteTable, Target } from './route-table.ts';
import { EVENT_READS } from '../domain/features.ts';

/** The cutover feature that moves Cloud's action reads to Harpoon. */
/** Cloud's public API apart from the action reads: always Cloud (no cutover moves it). */
export const CLOUD_API = 'cloud-api';

/**
 * The proxy's route table for Cloud's public API (cloud/routes/):
 *
 * - `event-reads`: GET /v2/actions/:id, GET /v2/actions, GET
 *   /v2/droplets/:id/actions — legacy → Cloud, new → Harpoon (which serves
 *   the same JSON, harpoon/actions.ts), sticky per customer by the bearer
 *   token's hash (Harpoon accepts the customer's token on /v2/actions*).
 *   GETs, so shadow copies them to Harpoon and compares. Both read the same
 *   rows, so bodies must be equal as they are; only the error `code` and
 *   `message` differ by design (CLOUD_ERR_NOT_FOUND vs HARPOON_ERR_NOT_FOUND):
 *   the status is still compared.
 * - `cloud-api`: the droplet routes, to Cloud on both sides. Writes are never
 *   shadowed, and Cloud itself moves their events (event-writes, per customer).
 *
 * @example
 *   const proxy = createProxy({ routes: publicRoutes({ cloud: [cloudUrl], harpoon: harpoonUrls }), state });
 */
export function publicRoutes(targets: { cloud: Target; harpoon: Target }): RouteTable {
  return {
    [EVENT_READS]: {
      legacy: targets.cloud,
      new: targets.harpoon,
      routes: [
        { method: 'GET', path: '/v2/actions/:id', stickyBy: 'bearer' },
        { method: 'GET', path: '/v2/actions', stickyBy: 'bearer' },
        { method: 'GET', path: '/v2/droplets/:id/actions', stickyBy: 'bearer' },
      ],
      compare: { ignore: ['$.code', '$.message'] },
    },
    [CLOUD_API]: {
      legacy: targets.cloud,
      new: targets.cloud,
      routes: [
        { method: ['GET', 'POST'], path: '/v2/droplets', stickyBy: 'bearer' },
        { method: ['GET', 'DELETE'], path: '/v2/droplets/:id', stickyBy: 'bearer' },
        { method: 'POST', path: '/v2/droplets/:id/actions', stickyBy: 'bearer' },
      ],
    },
  };
}
