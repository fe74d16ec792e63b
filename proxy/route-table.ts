import { FEATURE_NAME } from '../lib/cutover/types.ts';
import { invalidOption } from '../lib/errors.ts';
import { compileRules, type CompareRules, type CompiledRules } from './compare.ts';
import { Pool, type UpstreamSet } from './upstreams.ts';

/**
 * A pool of upstream instances (base URLs, `http://host:port` with an
 * optional path prefix), or one pool per region. Region-aware targets take
 * the region from the route's `region` source; a region missing from the map
 * is answered 404 PROXY_ERR_UNKNOWN_REGION. The object forms may name the
 * pool's own health-check path (`healthPath`, e.g. "/status" for a service
 * that has no /healthz); an instance shared by several pools must be checked
 * on one path.
 */
export type Target = string[] | { urls: string[]; healthPath?: string } | { byRegion: Record<string, string[]>; healthPath?: string };

/** Where a request's sticky key (or region) comes from. */
export type ParamOrHeader = { param: string } | { header: string };

/**
 * The sticky key that buckets a request for a canary: a path param (a
 * hypervisor id), a header (x-customer-id), or `'bearer'`, the SHA-256 of the
 * request's bearer token (a customer of the droplet API; the token itself is
 * never kept). A request without its key is sent to legacy during a canary.
 */
export type StickyBy = ParamOrHeader | 'bearer';

export interface RouteSpec {
  /** One method or several; a route with GET also answers HEAD. */
  method: string | string[];
  /** A path pattern with `:param` segments, e.g. `/v1/regions/:region/hypervisors/:id/events`. */
  path: string;
  stickyBy?: StickyBy;
  /** Where the region comes from, for region-aware targets and region-limited canaries. */
  region?: ParamOrHeader;
  /** In shadow mode, also copy requests with side effects (non-GET/HEAD) to the new side. Off by default. */
  shadowWrites?: boolean;
  /** Time to the upstream's response headers, overriding the proxy's; 0 = none (long-polls). */
  responseTimeoutMs?: number;
  /** Extra shadow comparison rules for this route (added to the feature's and the proxy's). */
  compare?: CompareRules;
  /** Targets for this route only, overriding the feature's. */
  legacy?: Target;
  new?: Target;
}

export interface FeatureRoutes {
  legacy: Target;
  new: Target;
  routes: RouteSpec[];
  /** Shadow comparison rules for every route of the feature. */
  compare?: CompareRules;
}

/**
 * The route table: feature name (as the cutover plan names it) → its routes
 * and targets. Plain JSON, so a cluster can hand it to its workers.
 *
 * @example
 *   const routes: RouteTable = {
 *     'event-delivery': {
 *       legacy: { byRegion: { nyc1: ['http://10.0.1.5:8080'], sfo1: ['http://10.0.2.5:8080'] } },
 *       new: { byRegion: { nyc1: ['http://10.0.1.9:7000', 'http://10.0.1.10:7000'], sfo1: ['http://10.0.2.9:7000'] } },
 *       routes: [{ method: 'GET', path: '/v1/regions/:region/hypervisors/:id/events', region: { param: 'region' }, stickyBy: { param: 'id' } }],
 *     },
 *     'droplet-api': {
 *       legacy: ['http://127.0.0.1:8080'],
 *       new: ['http://127.0.0.1:9080'],
 *       compare: { ignore: ['$.droplet.id', '*.created_at'], unordered: [{ path: '$.droplets', by: 'name' }] },
 *       routes: [
 *         { method: 'GET', path: '/v2/droplets', stickyBy: 'bearer' },
 *         { method: 'POST', path: '/v2/droplets', stickyBy: 'bearer', shadowWrites: false },
 *       ],
 *     },
 *   };
 */
export type RouteTable = Record<string, FeatureRoutes>;

export type CompiledTarget = { kind: 'pool'; pool: Pool } | { kind: 'region'; pools: Map<string, Pool> };

export interface CompiledRoute {
  feature: string;
  /** The path pattern: the route's metrics label. */
  pattern: string;
  methods: string[];
  stickyBy: StickyBy | undefined;
  region: ParamOrHeader | undefined;
  shadowWrites: boolean;
  responseTimeoutMs: number | undefined;
  compare: CompiledRules;
  legacy: CompiledTarget;
  new: CompiledTarget;
}

const METHOD = /^[A-Z]+$/;
const PATH = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(obj: Record<string, unknown>, known: string[], where: string): void {
  for (const k of Object.keys(obj)) if (!known.includes(k)) throw invalidOption(`${where}.${k}`, obj[k], `absent (known keys: ${known.join(', ')})`);
}

function parseUpstreamUrl(value: unknown, where: string): URL {
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || url.protocol !== 'http:' || url.search || url.hash) {
    throw invalidOption(where, value, 'an http:// base URL such as "http://127.0.0.1:8080" (no query or fragment)');
  }
  if (url.username || url.password) throw invalidOption(where, '[URL with credentials]', 'a URL without user:password (it would end up in metrics labels)');
  return url;
}

function checkPoolUrls(value: unknown, where: string): URL[] {
  if (!Array.isArray(value) || value.length === 0) throw invalidOption(where, value, 'a non-empty array of upstream base URLs');
  return value.map((u, i) => parseUpstreamUrl(u, `${where}[${i}]`));
}

function checkParamOrHeader(value: unknown, where: string, params: string[]): ParamOrHeader {
  if (isPlainObject(value) && Object.keys(value).length === 1) {
    if (typeof value.param === 'string') {
      if (!params.includes(value.param)) throw invalidOption(`${where}.param`, value.param, `one of the path's params (${params.join(', ') || 'none'})`);
      return { param: value.param };
    }
    if (typeof value.header === 'string' && /^[A-Za-z0-9-]+$/.test(value.header)) return { header: value.header.toLowerCase() };
  }
  throw invalidOption(where, value, '{ param: "<path param>" } or { header: "<header name>" }');
}

function checkTimeout(value: unknown, where: string): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 3_600_000) throw invalidOption(where, value, 'an integer number of ms from 0 (none) to 3600000');
  return value as number;
}

/**
 * Validates the table and builds its pools (upstreams shared by URL). Every
 * error names the option path, e.g. `routes["event-delivery"].routes[0].path`.
 */
export function compileRouteTable(table: unknown, upstreams: UpstreamSet, globalRules: CompareRules | undefined, root = 'routes'): CompiledRoute[] {
  if (!isPlainObject(table) || Object.keys(table).length === 0) throw invalidOption(root, table, 'a route table: { "<feature>": { legacy, new, routes: [...] } }');
  const out: CompiledRoute[] = [];
  const seen = new Set<string>();
  const instances = (urls: URL[], where: string, healthPath: string | undefined) =>
    urls.map((u, i) => {
      const instance = upstreams.get(u, healthPath);
      if (!instance) throw invalidOption(`${where}[${i}]`, u.href, 'an instance checked on one health path (another pool names the same URL with a different healthPath)');
      return instance;
    });
  const buildTarget = (value: unknown, where: string, feature: string, side: 'legacy' | 'new'): { target: CompiledTarget; regions: string[] | null } => {
    if (Array.isArray(value)) {
      return { target: { kind: 'pool', pool: new Pool(feature, side, instances(checkPoolUrls(value, where), where, undefined)) }, regions: null };
    }
    const healthPath = isPlainObject(value) ? value.healthPath : undefined;
    if (healthPath !== undefined && (typeof healthPath !== 'string' || !PATH.test(healthPath))) throw invalidOption(`${where}.healthPath`, healthPath, 'a path starting with / such as "/status"');
    const shape = isPlainObject(value) ? Object.keys(value).filter((k) => k !== 'healthPath') : [];
    if (isPlainObject(value) && shape.length === 1 && shape[0] === 'urls') {
      return { target: { kind: 'pool', pool: new Pool(feature, side, instances(checkPoolUrls(value.urls, `${where}.urls`), `${where}.urls`, healthPath as string | undefined)) }, regions: null };
    }
    if (isPlainObject(value) && isPlainObject(value.byRegion) && shape.length === 1) {
      const pools = new Map<string, Pool>();
      for (const [region, urls] of Object.entries(value.byRegion)) {
        if (!/^[a-z0-9-]{1,32}$/.test(region)) throw invalidOption(`${where}.byRegion`, region, 'region slugs of lower-case letters, digits and -');
        const at = `${where}.byRegion.${region}`;
        pools.set(region, new Pool(feature, side, instances(checkPoolUrls(urls, at), at, healthPath as string | undefined)));
      }
      if (pools.size === 0) throw invalidOption(`${where}.byRegion`, value.byRegion, 'at least one region');
      return { target: { kind: 'region', pools }, regions: [...pools.keys()].sort() };
    }
    throw invalidOption(where, value, 'a pool (an array of base URLs, or { urls: [...], healthPath? }) or { byRegion: { "<region>": [base URLs] }, healthPath? }');
  };

  for (const [feature, spec] of Object.entries(table)) {
    const fw = `${root}[${JSON.stringify(feature)}]`;
    if (!FEATURE_NAME.test(feature)) throw invalidOption(root, feature, 'feature names of lower-case letters, digits, ., _ and - (as the cutover plan names them)');
    if (!isPlainObject(spec)) throw invalidOption(fw, spec, 'an object { legacy, new, routes, compare? }');
    checkKeys(spec, ['legacy', 'new', 'routes', 'compare'], fw);
    if (!Array.isArray(spec.routes) || spec.routes.length === 0) throw invalidOption(`${fw}.routes`, spec.routes, 'a non-empty array of routes');
    const featureTargets = {
      legacy: buildTarget(spec.legacy, `${fw}.legacy`, feature, 'legacy'),
      new: buildTarget(spec.new, `${fw}.new`, feature, 'new'),
    };
    (spec.routes as unknown[]).forEach((r, i) => {
      const rw = `${fw}.routes[${i}]`;
      if (!isPlainObject(r)) throw invalidOption(rw, r, 'an object { method, path, … }');
      checkKeys(r, ['method', 'path', 'stickyBy', 'region', 'shadowWrites', 'responseTimeoutMs', 'compare', 'legacy', 'new'], rw);
      const methodList = Array.isArray(r.method) ? r.method : [r.method];
      if (methodList.length === 0 || !methodList.every((m) => typeof m === 'string' && METHOD.test(m))) {
        throw invalidOption(`${rw}.method`, r.method, 'an upper-case HTTP method or an array of them, e.g. "GET" or ["PUT", "DELETE"]');
      }
      const methods = [...new Set(methodList as string[])];
      if (methods.includes('GET') && !methods.includes('HEAD')) methods.push('HEAD');
      if (typeof r.path !== 'string' || !PATH.test(r.path)) throw invalidOption(`${rw}.path`, r.path, 'a path pattern starting with / such as "/v2/droplets/:id"');
      const params = r.path
        .split('/')
        .filter((s) => s.startsWith(':'))
        .map((s) => s.slice(1));
      if (params.some((p) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(p))) throw invalidOption(`${rw}.path`, r.path, 'params named :[A-Za-z_][A-Za-z0-9_]*');
      if (['/healthz', '/readyz', '/metrics'].includes(r.path)) throw invalidOption(`${rw}.path`, r.path, 'a path other than the proxy\'s own /healthz, /readyz and /metrics');
      for (const m of methods) {
        const key = `${m} ${r.path}`;
        if (seen.has(key)) throw invalidOption(`${rw}.path`, r.path, `a route not already in the table (${key} appears twice)`);
        seen.add(key);
      }
      let stickyBy: StickyBy | undefined;
      if (r.stickyBy === 'bearer') stickyBy = 'bearer';
      else if (r.stickyBy !== undefined) stickyBy = checkParamOrHeader(r.stickyBy, `${rw}.stickyBy`, params);
      const region = r.region === undefined ? undefined : checkParamOrHeader(r.region, `${rw}.region`, params);
      if (r.shadowWrites !== undefined && typeof r.shadowWrites !== 'boolean') throw invalidOption(`${rw}.shadowWrites`, r.shadowWrites, 'true or false');
      const responseTimeoutMs = checkTimeout(r.responseTimeoutMs, `${rw}.responseTimeoutMs`);
      const legacy = r.legacy === undefined ? featureTargets.legacy : buildTarget(r.legacy, `${rw}.legacy`, feature, 'legacy');
      const next = r.new === undefined ? featureTargets.new : buildTarget(r.new, `${rw}.new`, feature, 'new');
      for (const side of [legacy, next]) {
        if (side.regions && !region) throw invalidOption(`${rw}.region`, r.region, 'a region source ({ param } or { header }) because a target is byRegion');
      }
      if (legacy.regions && next.regions && legacy.regions.join() !== next.regions.join()) {
        throw invalidOption(`${rw}.new.byRegion`, next.regions, `the same regions as legacy (${legacy.regions.join(', ')}), so a cutover can move every region`);
      }
      out.push({
        feature,
        pattern: r.path,
        methods,
        stickyBy,
        region,
        shadowWrites: r.shadowWrites === true,
        responseTimeoutMs,
        compare: compileRules([
          { rules: globalRules, option: 'shadow.compare' },
          { rules: spec.compare as CompareRules | undefined, option: `${fw}.compare` },
          { rules: r.compare as CompareRules | undefined, option: `${rw}.compare` },
        ]),
        legacy: legacy.target,
        new: next.target,
      });
    });
  }
  return out;
}
