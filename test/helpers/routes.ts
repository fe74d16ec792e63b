import type { RouteSpec } from '../../proxy/route-table.ts';

/** Cloud's droplet routes as the proxy's `droplet-api` feature routes them in tests (sticky by customer token). */
export const DROPLET_API_ROUTES: RouteSpec[] = [
  { method: 'GET', path: '/v2/droplets', stickyBy: 'bearer' },
  { method: 'POST', path: '/v2/droplets', stickyBy: 'bearer' },
  { method: 'GET', path: '/v2/droplets/:id', stickyBy: 'bearer' },
];
