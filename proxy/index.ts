/**
 * The strangler-fig proxy: route table → legacy or new target per feature,
 * following the cutover state. See create-proxy.ts (one process),
 * cluster.ts (several processes on one port), admin.ts (the admin service),
 * route-table.ts (the table's format, with an example) and errors.ts (codes).
 */
export { createProxy, type Proxy, type ProxyOptions, type UpstreamStatus } from './create-proxy.ts';
export { createProxyAdmin, type ProxyAdmin, type ProxyAdminOptions } from './admin.ts';
export { createProxyCluster, workersForStreams, SOCKET_BUDGET, type ProxyCluster, type ProxyClusterOptions, type StateFactoryRef } from './cluster.ts';
export { createStaticState, type StaticStateSource, type StaticStates } from './static-state.ts';
export type { RouteTable, FeatureRoutes, RouteSpec, Target, StickyBy, ParamOrHeader } from './route-table.ts';
export { compareResponses, type CompareRules } from './compare.ts';
export { publicRoutes, CLOUD_API } from './public-routes.ts';
export { EVENT_READS } from '../domain/features.ts';
export type { ShadowSample, ShadowSettings } from './shadow.ts';
export { PROXY_ERRORS, type ProxyErrorCode } from './errors.ts';
