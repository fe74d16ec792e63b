import type { FeatureRoutes, Target } from './route-table.ts';

/**
 * The `droplet-api` feature: Cloud's public routes (cloud/routes/),
 * sticky per customer (the bearer token's hash), creates and actions never
 * shadowed (they have side effects).
 *
 * @example
 *   const proxy = createProxy({ routes: { 'droplet-api': dropletApiRoutes(['http://127.0.0.1:9401']) }, state });
 */
export function dropletApiRoutes(legacy: Target, next: Target = legacy): FeatureRoutes {
  return {
    legacy,
    new: next,
    routes: [
      { method: ['GET', 'POST'], path: '/v2/droplets', stickyBy: 'bearer' },
      { method: ['GET', 'DELETE'], path: '/v2/droplets/:id', stickyBy: 'bearer' },
      { method: 'POST', path: '/v2/droplets/:id/actions', stickyBy: 'bearer' },
      { method: 'GET', path: '/v2/actions/:id', stickyBy: 'bearer' },
    ],
    compare: { ignore: ['created_at', 'started_at', 'completed_at'] },
  };
}
